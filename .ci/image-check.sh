#!/usr/bin/env bash
# Builds the container image from the Dockerfile with no network and runs it the way
# deploy/base/deployment.yaml runs the pod, then checks it through the running container.
#
#   bash .ci/image-check.sh          (as root; needs podman, runc, curl, python3)
#
# 1. A static binary is built on the host (the Dockerfile's own command) and the Dockerfile's
#    `prebuilt` stage puts it into the `scratch` runtime image: no base image is pulled.
# 2. The container runs with uid/gid 65532, a read-only root filesystem (and no tmpfs on
#    it), every capability dropped, no privilege escalation, host networking with every
#    listener on 127.0.0.1, and the config mounted read-only in the kubelet's layout:
#      ..2026_a/{gateway.yaml,serviceentries/...}, ..data -> ..2026_a,
#      gateway.yaml -> ..data/gateway.yaml, serviceentries -> ..data/serviceentries
#    (files root:65532 mode 0440, as defaultMode 0440 + fsGroup 65532 give them).
# 3. Through it: /readyz, an allowed CONNECT (bytes from a local origin) and a denied one
#    (403 not_allowlisted), a ConfigMap-style swap (new ..2026_b, atomic rename of ..data)
#    that the gateway reloads, and SIGTERM (`podman stop`) with a tunnel open: /readyz turns
#    503, the drain lasts timeouts.drain and the process exits 0 before the stop timeout.
# Prints the image size and how long the check took. Everything runs on 127.0.0.x; podman
# keeps its storage in a temporary directory that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

DRAIN=3                      # timeouts.drain (seconds) in the test config
STOP_TIMEOUT=$((DRAIN + 10)) # podman stop's grace period before SIGKILL
IMAGE=localhost/egress-gateway:check
NAME=egress-gateway-check
TENANT=127.0.0.2             # identity.sources maps it to namespace app1

started=$SECONDS
fail() {
    echo "image-check: FAIL: $*" >&2
    exit 1
}
note() { printf 'image-check: %s\n' "$*"; }

for tool in podman runc curl python3; do
    command -v "$tool" >/dev/null || fail "needs $tool (apt-get install podman runc curl python3)"
done

work=$(mktemp -d /tmp/egress-image-check.XXXXXX)
origin_pid=
holder_pid=
stop_pid=
podman_() {
    podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs \
        --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
}
cleanup() {
    local rc=$?
    set +e
    [ -n "$stop_pid" ] && wait "$stop_pid" 2>/dev/null
    if [ "$rc" -ne 0 ] && podman_ container exists "$NAME" 2>/dev/null; then
        echo "--- container log ---" >&2
        podman_ logs "$NAME" >&2 2>&1 || true
    fi
    podman_ rm -f -t 0 "$NAME" >/dev/null 2>&1
    podman_ rmi -f "$IMAGE" >/dev/null 2>&1
    [ -n "$holder_pid" ] && kill "$holder_pid" 2>/dev/null
    [ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
# Debian's podman sets per-container ulimits that an unprivileged sandbox may not raise.
printf '[containers]\ndefault_ulimits = []\n' >"$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"

# --- 1. static binary, image --------------------------------------------------------------
triple=$(rustc -vV | sed -n 's/^host: //p')
binary=target/$triple/release/egress-gateway
note "building $binary (static)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$triple"
ldd "$binary" 2>&1 | grep -q 'statically linked\|not a dynamic executable' ||
    fail "$binary is not static: $(ldd "$binary" 2>&1)"

note "podman build --target prebuilt"
podman_ build --quiet --network none --target prebuilt --build-arg "BINARY=$binary" \
    -t "$IMAGE" -f Dockerfile . >/dev/null
size=$(podman_ image inspect --format '{{.Size}}' "$IMAGE")
note "image size: $size bytes ($((size / 1024 / 1024)) MiB); binary $(stat -c %s "$binary") bytes"

# --- 2. config in the kubelet's layout, origin, container --------------------------------
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r CONNECT ADMIN ORIGIN < <(free_ports 3)

mkdir -p "$work/www"
echo "hello from the origin" >"$work/www/hello.txt"
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$ORIGIN" \
    >"$work/origin.log" 2>&1 &
origin_pid=$!

# wait_for WHAT SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds; fails early
# if the container, once started, has exited.
wait_for() {
    local what=$1 deadline=$((SECONDS + $2))
    shift 2
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for $what"
        if [ -n "$container_started" ] &&
            [ "$(podman_ inspect --format '{{.State.Status}}' "$NAME")" = exited ]; then
            fail "the container exited while waiting for $what"
        fi
        sleep 0.2
    done
}
container_started=
origin_up() { curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$ORIGIN/hello.txt"; }
wait_for "the origin on 127.0.0.1:$ORIGIN" 10 origin_up

# entry HOST PROTOCOL PORT: a ServiceEntry for HOST:PORT, dialled at 127.0.0.1:ORIGIN.
entry() {
    cat <<EOF
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${1%%.*}}
spec:
  hosts: ["$1"]
  ports:
    - {number: $3, name: port, protocol: $2, targetPort: $ORIGIN}
  resolution: STATIC
  endpoints:
    - address: 127.0.0.1
EOF
}
# generation DIR HOST...: writes ..DIR with gateway.yaml and app1's entries: each HOST as
# HTTP on the origin's port, and tunnel.test:7000 as opaque TCP (a tunnel that only the drain
# deadline closes; an HTTP one is closed between requests when draining starts).
generation() {
    local gen="$work/config/..$1"
    shift
    mkdir -p "$gen/serviceentries/app1"
    cat >"$gen/gateway.yaml" <<EOF
listeners:
  connect: {address: "127.0.0.1:$CONNECT"}
admin: {address: "127.0.0.1:$ADMIN"}
identity:
  sources:
    - {cidr: "$TENANT/32", namespace: app1}
serviceentries:
  dir: serviceentries
timeouts: {sniff: 5s, connect: 5s, idle: 60s, drain: ${DRAIN}s}
EOF
    entry tunnel.test TCP 7000 >"$gen/serviceentries/app1/tunnel.yaml"
    local host
    for host in "$@"; do
        entry "$host" HTTP "$ORIGIN" >"$gen/serviceentries/app1/${host%%.*}.yaml"
    done
    chown -R 0:65532 "$gen"
    find "$gen" -type d -exec chmod 0755 {} +
    find "$gen" -type f -exec chmod 0440 {} +
}
mkdir -p "$work/config"
chmod 0755 "$work/config"
generation 2026_12_07_00_00_00.000000001 allowed.test
ln -s ..2026_12_07_00_00_00.000000001 "$work/config/..data"
ln -s ..data/gateway.yaml "$work/config/gateway.yaml"
ln -s ..data/serviceentries "$work/config/serviceentries"

note "podman run (uid 65532, read-only root, no capabilities)"
podman_ run -d --name "$NAME" --network host \
    --user 65532:65532 --read-only --read-only-tmpfs=false --cap-drop=ALL \
    --security-opt no-new-privileges \
    -v "$work/config:/etc/egress-gateway:ro" -e RUST_LOG=info \
    "$IMAGE" run --config /etc/egress-gateway --log-format json >/dev/null
container_started=yes

# --- 3. through the running container ----------------------------------------------------
admin_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$ADMIN$1" || true; }
ready() { [ "$(admin_status /readyz)" = 200 ]; }
wait_for "/readyz 200" 30 ready
note "/readyz 200"

# What the kernel says about the gateway process: the pod's security context took effect.
pid=$(podman_ inspect --format '{{.State.Pid}}' "$NAME")
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
gids=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
caps=$(awk '/^Cap(Prm|Eff|Bnd):/ {print $2}' "/proc/$pid/status" | sort -u)
nnp=$(awk '/^NoNewPrivs:/ {print $2}' "/proc/$pid/status")
root_options=$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | tail -n 1)
[ "$uids" = "65532 65532 65532 65532" ] || fail "uids $uids, want 65532"
[ "$gids" = "65532 65532 65532 65532" ] || fail "gids $gids, want 65532"
[ "$caps" = 0000000000000000 ] || fail "capabilities left: $caps"
[ "$nnp" = 1 ] || fail "NoNewPrivs $nnp"
case ",$root_options," in *,ro,*) ;; *) fail "root filesystem mounted $root_options" ;; esac
note "process: uid/gid 65532, no capabilities, no_new_privs, root filesystem read-only"

# connect_status HOST: the CONNECT answer the tenant gets for HOST:ORIGIN; the origin's body
# (if any) lands in $work/body and the proxy's response headers in $work/headers.
connect_status() {
    rm -f "$work/body" "$work/headers"
    curl -s --max-time 5 --interface "$TENANT" --proxytunnel -x "http://127.0.0.1:$CONNECT" \
        -D "$work/headers" -o "$work/body" -w '%{http_connect}' \
        "http://$1:$ORIGIN/hello.txt" || true
}
status=$(connect_status allowed.test)
[ "$status" = 200 ] || fail "allowed CONNECT answered $status"
grep -q "hello from the origin" "$work/body" || fail "no origin bytes through the tunnel"
note "allowed CONNECT: 200, origin bytes through the tunnel"

status=$(connect_status other.test)
[ "$status" = 403 ] || fail "denied CONNECT answered $status"
grep -qi '^x-egress-deny-reason: not_allowlisted' "$work/headers" ||
    fail "denied CONNECT without x-egress-deny-reason: not_allowlisted: $(cat "$work/headers")"
note "denied CONNECT: 403 not_allowlisted"

# The kubelet's update: a new timestamped directory, then ..data renamed over atomically.
generation 2026_12_07_00_01_00.000000002 allowed.test other.test
ln -sfn ..2026_12_07_00_01_00.000000002 "$work/config/..data_tmp"
mv -T "$work/config/..data_tmp" "$work/config/..data"
rm -rf "$work/config/..2026_12_07_00_00_00.000000001"
reloaded() {
    curl -s --max-time 2 "http://127.0.0.1:$ADMIN/metrics" | grep -q '^egress_config_generation 2$' &&
        [ "$(connect_status other.test)" = 200 ]
}
wait_for "the ..data swap to be reloaded (generation 2, other.test allowed)" 30 reloaded
note "..data swap reloaded: generation 2, other.test now allowed"

# A tunnel left open, so that SIGTERM has something to drain.
python3 - "$CONNECT" "$TENANT" >"$work/holder.log" 2>&1 <<'EOF' &
import socket, sys
proxy, tenant = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", proxy), timeout=60, source_address=(tenant, 0))
s.sendall(b"CONNECT tunnel.test:7000 HTTP/1.1\r\nHost: tunnel.test:7000\r\n\r\n")
head = b""
while not head.endswith(b"\r\n\r\n"):
    byte = s.recv(1)
    if not byte:
        break
    head += byte
print(head.split(b"\r\n")[0].decode(), flush=True)
while s.recv(4096):
    pass
EOF
holder_pid=$!
tunnel_open() { grep -q '^HTTP/1.1 200' "$work/holder.log"; }
wait_for "a tunnel to hold open" 10 tunnel_open

stop_started=$(date +%s%N)
podman_ stop -t "$STOP_TIMEOUT" "$NAME" >/dev/null &
stop_pid=$!
draining() { [ "$(admin_status /readyz)" = 503 ]; }
wait_for "/readyz 503 while draining" 10 draining
note "SIGTERM: /readyz 503 while draining"
wait "$stop_pid" || fail "podman stop failed"
elapsed_ms=$((($(date +%s%N) - stop_started) / 1000000))
exit_code=$(podman_ inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$exit_code" = 0 ] || fail "exit code $exit_code after SIGTERM (137 = killed)"
[ "$elapsed_ms" -ge $((DRAIN * 1000 - 500)) ] ||
    fail "stopped after ${elapsed_ms} ms: the open tunnel was not drained for ${DRAIN} s"
[ "$elapsed_ms" -le $((DRAIN * 1000 + 3000)) ] ||
    fail "stopped after ${elapsed_ms} ms, more than timeouts.drain (${DRAIN} s) + 3 s"
podman_ logs "$NAME" 2>&1 | grep -q '"stopped"' || fail "no \"stopped\" line in the log"
note "SIGTERM: drained ${elapsed_ms} ms (timeouts.drain ${DRAIN} s), exit code 0"

note "OK in $((SECONDS - started)) s; image $size bytes"
