#!/usr/bin/env bash
# Measure a direct (no proxy) baseline plus each installed peer proxy, in ONE run,
# on loopback only, and print a table with ratios vs direct.
#
#   ./run-peers.sh                       # all peers that are installed, and the gateway
#   PEERS="tinyproxy haproxy gateway" SECS=3 ./run-peers.sh
#   PEERS=target TARGET_CONNECT=127.0.0.1:3128 TARGET_SNI=127.0.0.1:8443 \
#       TARGET_CMD="/path/to/proxy --config proxy.conf" ./run-peers.sh
#
# Core layout (2-core box): origin + load driver pinned to DRIVER_CORE (0),
# the proxy under test pinned to PROXY_CORE (1). The direct baseline runs with the
# driver and origin on the same core as in the proxied runs.
set -u
. "$(dirname "$0")/lib.sh"     # settings (SECS, WORKERS, ...), helpers, start_<peer>
RESULTS=$RUN/results.txt
: > "$RESULTS"

drv() { taskset -c "$DRIVER_CORE" timeout 180 "$LG" "$@" | tee -a "$RESULTS"; }

run_scenarios() {  # label connect_addr sni_addr pids
  local label=$1 ca=$2 sa=$3 pids=$4 n
  if [ -n "$ca" ]; then
    drv connect-rate --proxy "$ca" --target allowed.test:9000 --workers 1 --secs "$SECS" --warmup "$WARMUP" --label "$label" --pids "$pids"
    drv connect-rate --proxy "$ca" --target allowed.test:9000 --workers "$WORKERS" --secs "$SECS" --warmup "$WARMUP" --label "$label" --pids "$pids"
    for n in $TP_CONNS; do
      drv throughput --proxy "$ca" --target allowed.test:9001 --conns "$n" --secs "$SECS" --warmup "$WARMUP" --label "$label" --pids "$pids"
    done
  fi
  if [ -n "$sa" ]; then
    drv sni-rate --proxy "$sa" --target allowed.test --workers 1 --secs "$SECS" --warmup "$WARMUP" --label "$label" --pids "$pids"
    drv sni-rate --proxy "$sa" --target allowed.test --workers "$WORKERS" --secs "$SECS" --warmup "$WARMUP" --label "$label" --pids "$pids"
  fi
}

# ------------------------------------------------------------------ main
(cd "$LAB/loadgen" && CARGO_TARGET_DIR="$STATE/target" cargo build --release -q) || exit 1   # a no-op when up to date
log "host: $(nproc) cores, kernel $(uname -r); driver+origin on core $DRIVER_CORE, proxy on core $PROXY_CORE"

taskset -c "$DRIVER_CORE" "$LG" origin --echo $ORIGIN_ECHO --echo $ORIGIN_BAD --source $ORIGIN_SRC \
  --tls $ORIGIN_TLS --max-secs 3600 >"$RUN/origin.log" 2>&1 &
STARTED+=($!)
for hp in $ORIGIN_ECHO $ORIGIN_SRC $ORIGIN_BAD $ORIGIN_TLS; do wait_port "$hp" || exit 1; done

log "direct baseline"
# Direct: same driver, same origin, no proxy (echo/source/TLS origins dialed directly).
drv connect-rate --direct $ORIGIN_ECHO --workers 1 --secs "$SECS" --warmup "$WARMUP" --label direct
drv connect-rate --direct $ORIGIN_ECHO --workers "$WORKERS" --secs "$SECS" --warmup "$WARMUP" --label direct
for n in $TP_CONNS; do
  drv throughput --direct $ORIGIN_SRC --conns "$n" --secs "$SECS" --warmup "$WARMUP" --label direct
done
drv sni-rate --direct $ORIGIN_TLS --target allowed.test --workers 1 --secs "$SECS" --warmup "$WARMUP" --label direct
drv sni-rate --direct $ORIGIN_TLS --target allowed.test --workers "$WORKERS" --secs "$SECS" --warmup "$WARMUP" --label direct

VERSIONS=""
for peer in $PEERS; do
  peer_up "$peer"; rc=$?
  if [ $rc = 2 ]; then log "$peer: not installed, skipped"; echo "SKIP label=$peer not-installed" >> "$RESULTS"; continue; fi
  if [ $rc = 1 ]; then log "$peer: failed to start (see $RUN/$peer/)"; echo "SKIP label=$peer start-failed" >> "$RESULTS"; peer_down "$peer"; continue; fi
  label=$peer; [ "$peer" = target ] && label=$TARGET_NAME
  VERSIONS="$VERSIONS\n  $label: $(version_of "$peer")"
  log "$peer: pid(s) ${PIDS:--}, CONNECT=${CONNECT_ADDR:--} SNI=${SNI_ADDR:--}"
  # Policy check first: the same allow/deny probes for every peer.
  taskset -c "$DRIVER_CORE" timeout 120 "$LG" check ${CONNECT_ADDR:+--connect $CONNECT_ADDR} \
     ${SNI_ADDR:+--sni $SNI_ADDR} --label "$label" | tee -a "$RESULTS"
  run_scenarios "$label" "$CONNECT_ADDR" "$SNI_ADDR" "$PIDS"
  peer_down "$peer"
  for kind in connect sni; do
    [ "$kind" = connect ] && [ -z "$CONNECT_ADDR" ] && continue
    [ "$kind" = sni ] && [ -z "$SNI_ADDR" ] && continue
    peer_up "$peer" || { log "$peer: restart failed"; peer_down "$peer"; continue; }
    [ -z "$PIDS" ] && { log "$peer: no PID known (set TARGET_PID), idle/RSS skipped"; continue; }
    if [ "$kind" = connect ]; then
      drv idle --proxy "$CONNECT_ADDR" --target allowed.test:9000 --n "$IDLE_N" --hold 2 --pids "$PIDS" --label "$label"
    else
      drv idle --sni --proxy "$SNI_ADDR" --target allowed.test --n "$IDLE_N" --hold 2 --pids "$PIDS" --label "$label"
    fi
    peer_down "$peer"
  done
done

echo "run finished $(date -u '+%F %T UTC') on $(nproc) cores, kernel $(uname -r)"
echo "settings: SECS=$SECS WARMUP=$WARMUP WORKERS=$WORKERS TP_CONNS=\"$TP_CONNS\" IDLE_N=$IDLE_N" \
     "driver+origin on core $DRIVER_CORE, proxy on core $PROXY_CORE"
echo "versions:$(printf "$VERSIONS")"
python3 "$LAB/table.py" "$RESULTS"
