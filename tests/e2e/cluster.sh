#!/usr/bin/env bash
# Cluster in a box: a multi-tenant "cluster" built from network namespaces on one machine, for
# end-to-end tests of egress-gateway (tests/e2e/main.rs) and for trying it by hand.
#
#   tests/e2e/cluster.sh up [--gateway[=BIN]]   build the box (cleans up a previous one first);
#                                               --gateway also starts egress-gateway in eg-gw on
#                                               a box config (BIN defaults to target/release, then
#                                               target/debug)
#   tests/e2e/cluster.sh down                   remove everything `up` made, even after a failed run
#   tests/e2e/cluster.sh exec POD CMD...        run CMD in a pod (eg-app1-a, app1-a, app1, gw, inet)
#   tests/e2e/cluster.sh status                 what exists right now
#
# Root only. Needs iproute2 (ip netns, veth, bridge), iptables, dnsmasq, openssl, python3, curl.
#
# The box (documentation address ranges only; nothing is routed outside it):
#
#   pods                       eg-gw (router + gateway)                 eg-inet ("internet")
#   eg-app1-a 198.51.100.17 ─┐ br-pods 198.51.100.1/24                  eth0 192.0.2.254/24
#   eg-app1-b 198.51.100.18 ─┼─ REDIRECT tcp 203.0.113.0/24:             203.0.113.10 api.example.test
#   eg-app2-a 198.51.100.33 ─┘   443,8443 -> :15443 (sni listener)       203.0.113.11 web.example.test
#     default via 198.51.100.1   80,8080  -> :15080 (http listener)      203.0.113.12 other.example.test
#     resolv.conf: 203.0.113.53 uplink 192.0.2.1/24 ───────────────────  203.0.113.13 rebind target
#                              connect 192.0.2.1:3128                    203.0.113.53 dnsmasq
#                              connect_tls 192.0.2.1:3129 (mTLS)         203.0.113.54 rebinding DNS
#                              FORWARD: only pod DNS to 203.0.113.53     203.0.113.55 silent DNS
#                              canary on 127.0.0.1:80,443               origins: http 80,8080
#                                                                        https 443,8443
#
# Dual stack: every link above also carries IPv6 from 2001:db8::/32 (pods 2001:db8:100::17, ::18,
# ::33 via 2001:db8:100::1; uplink 2001:db8:2::1 <-> 2001:db8:2::fe; origins in 2001:db8:113::/64),
# ip6tables REDIRECTs the same ports, and FORWARD drops everything but pod DNS in both families:
#   v4only.example.test   A 203.0.113.20 only       v6only.example.test AAAA 2001:db8:113::20 only
#   dual.example.test     A 203.0.113.21 and AAAA 2001:db8:113::21
#   dropped6.example.test A 203.0.113.22 and AAAA 2001:db8:113::22, whose packets eg-inet drops
#                         silently (Happy Eyeballs: the IPv4 attempt must win within the stagger)
#
# DNS (dnsmasq on 203.0.113.53, TTL 0, no cache): the names above, plus
#   private.example.test  -> 10.20.30.40          metadata.example.test -> 169.254.169.254
#   loopback.example.test -> 127.0.0.1            mapped.example.test   -> ::ffff:127.0.0.1 (AAAA)
#   *.rebind.example.test and rebind.example.test -> forwarded to 203.0.113.54, whose A answer
#   alternates 203.0.113.13 / 127.0.0.1 / 203.0.113.13 / 169.254.169.254 ... with TTL 0.
# Those private/metadata/loopback addresses are DNS answers only, never configured anywhere.
#
# State (certificates, logs, PID files, a box gateway config) lives in $EG_BOX_STATE
# (default /run/egress-gateway-box): ca.pem, origin.pem, gateway.pem, app1.pem/app1-key.pem,
# app2.pem/app2-key.pem, logs/*.log (origin.log, rebind.log, canary.log: one JSON line per event).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STATE=${EG_BOX_STATE:-/run/egress-gateway-box}
LOCK=/run/egress-gateway-box.lock

NS_GW=eg-gw
NS_INET=eg-inet
PODS=(eg-app1-a eg-app1-b eg-app2-a)
declare -A POD_ADDR=([eg-app1-a]=198.51.100.17 [eg-app1-b]=198.51.100.18 [eg-app2-a]=198.51.100.33)
declare -A POD_ADDR6=([eg-app1-a]=2001:db8:100::17 [eg-app1-b]=2001:db8:100::18 [eg-app2-a]=2001:db8:100::33)
declare -A POD_VETH=([eg-app1-a]=vp-app1-a [eg-app1-b]=vp-app1-b [eg-app2-a]=vp-app2-a)
ALL_NS=("$NS_GW" "$NS_INET" "${PODS[@]}")

GW_POD_SIDE=198.51.100.1
GW_UPLINK=192.0.2.1
INET_LINK=192.0.2.254
API=203.0.113.10
WEB=203.0.113.11
OTHER=203.0.113.12
REBIND_PUBLIC=203.0.113.13
DNS=203.0.113.53
REBIND_DNS=203.0.113.54
SILENT_DNS=203.0.113.55
# IPv6 (dual stack): the same roles, from 2001:db8::/32.
GW_POD_SIDE6=2001:db8:100::1
GW_UPLINK6=2001:db8:2::1
INET_LINK6=2001:db8:2::fe
V4ONLY=203.0.113.20
V6ONLY6=2001:db8:113::20
DUAL=203.0.113.21
DUAL6=2001:db8:113::21
DROPPED=203.0.113.22
DROPPED6=2001:db8:113::22
SNI_PORT=15443
HTTP_PORT=15080

die() { echo "cluster.sh: $*" >&2; exit 1; }
say() { echo "cluster.sh: $*" >&2; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, veth, iptables)"
}

need_tools() {
    local missing=()
    for tool in ip iptables dnsmasq openssl curl python3 flock getent; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [ "${#missing[@]}" = 0 ] || die "missing tools: ${missing[*]} (Debian: apt-get install -y iproute2 iptables dnsmasq-base openssl curl python3 util-linux libc-bin)"
}

lock() {
    exec 9>"$LOCK"
    flock -w 60 9 || die "another cluster.sh holds $LOCK"
}

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

# start_bg NAME NS CMD...: runs CMD in NS in the background, output to logs/NAME.log, PID tracked.
start_bg() {
    local name=$1 ns=$2; shift 2
    ip netns exec "$ns" "$@" </dev/null >"$STATE/logs/$name.log" 2>&1 9>&- &
    echo $! >"$STATE/pids/$name.pid"
}

# wait_tcp NS ADDR PORT: until something accepts on ADDR:PORT inside NS (5 s at most).
wait_tcp() {
    local ns=$1 addr=$2 port=$3
    for _ in $(seq 1 100); do
        if in_ns "$ns" bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    die "nothing listens on $addr:$port in $ns (see $STATE/logs/)"
}

# wait_udp NS ADDR PORT: until a socket is bound to ADDR:PORT (UDP) inside NS.
wait_udp() {
    local ns=$1 addr=$2 port=$3
    for _ in $(seq 1 100); do
        if in_ns "$ns" ss -Hlun "src $addr:$port" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.05
    done
    die "nothing bound to udp $addr:$port in $ns (see $STATE/logs/)"
}

# --- down ----------------------------------------------------------------------------------------

do_down() {
    local pidfile pid ns
    if [ -d "$STATE/pids" ]; then
        for pidfile in "$STATE"/pids/*.pid; do
            [ -e "$pidfile" ] || continue
            pid=$(cat "$pidfile" 2>/dev/null || true)
            if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
        done
        for _ in $(seq 1 40); do
            local alive=0
            for pidfile in "$STATE"/pids/*.pid; do
                [ -e "$pidfile" ] || continue
                pid=$(cat "$pidfile" 2>/dev/null || true)
                if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then alive=1; fi
            done
            [ "$alive" = 0 ] && break
            sleep 0.05
        done
        for pidfile in "$STATE"/pids/*.pid; do
            [ -e "$pidfile" ] || continue
            pid=$(cat "$pidfile" 2>/dev/null || true)
            if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
            rm -f "$pidfile"
        done
    fi
    for ns in "${ALL_NS[@]}"; do
        if ns_exists "$ns"; then
            # Anything still running inside the box's namespaces was started in it (a gateway a
            # crashed test left behind, say): end those processes by PID before deleting.
            for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
                kill -KILL "$pid" 2>/dev/null || true
            done
            ip netns del "$ns" 2>/dev/null || say "could not delete netns $ns"
        fi
        rm -rf "/etc/netns/$ns"
    done
    rm -rf "$STATE"
}

# --- certificates --------------------------------------------------------------------------------

# issue NAME CN EXTENSIONS: a P-256 key and a certificate signed by the box CA.
issue() {
    local name=$1 cn=$2 ext=$3
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$STATE/$name-key.pem" -out "$STATE/tmp/$name.csr" -subj "/CN=$cn" 2>/dev/null
    printf '%b\n' "$ext" >"$STATE/tmp/$name.ext"
    openssl x509 -req -in "$STATE/tmp/$name.csr" -CA "$STATE/ca.pem" -CAkey "$STATE/ca-key.pem" \
        -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$STATE/tmp/$name.ext" \
        -out "$STATE/$name.pem" 2>/dev/null
}

make_pki() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -keyout "$STATE/ca-key.pem" -out "$STATE/ca.pem" -subj "/CN=egress box CA $(date +%s)" \
        2>/dev/null
    local server="basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth"
    local client="basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth"
    issue origin "example.test" "$server\nsubjectAltName=DNS:*.example.test,DNS:example.test,DNS:*.rebind.example.test"
    issue gateway "gateway.box.test" "$server\nsubjectAltName=DNS:gateway.box.test,IP:$GW_UPLINK,IP:$GW_POD_SIDE,IP:$GW_UPLINK6"
    issue app1 "app1" "$client\nsubjectAltName=URI:spiffe://cluster.local/ns/app1/sa/default"
    issue app2 "app2" "$client\nsubjectAltName=URI:spiffe://cluster.local/ns/app2/sa/default"
}

dump_logs() {
    local log
    for log in "$STATE"/logs/*; do
        [ -s "$log" ] || continue
        echo "--- $log (tail)" >&2
        tail -n 20 "$log" >&2 || true
    done
}

# --- up ------------------------------------------------------------------------------------------

make_network() {
    local ns pod
    for ns in "${ALL_NS[@]}"; do
        ip netns add "$ns"
        in_ns "$ns" ip link set lo up
    done

    # eg-gw: the pods' router and the gateway's home.
    in_ns "$NS_GW" ip link add br-pods type bridge
    in_ns "$NS_GW" ip addr add "$GW_POD_SIDE/24" dev br-pods
    in_ns "$NS_GW" ip link set br-pods up
    in_ns "$NS_GW" ip -6 addr add "$GW_POD_SIDE6/64" dev br-pods nodad
    for pod in "${PODS[@]}"; do
        ip link add "${POD_VETH[$pod]}" netns "$NS_GW" type veth peer name eth0 netns "$pod"
        in_ns "$NS_GW" ip link set "${POD_VETH[$pod]}" master br-pods up
        in_ns "$pod" ip addr add "${POD_ADDR[$pod]}/24" dev eth0
        in_ns "$pod" ip link set eth0 up
        in_ns "$pod" ip route add default via "$GW_POD_SIDE"
        in_ns "$pod" ip -6 addr add "${POD_ADDR6[$pod]}/64" dev eth0 nodad
        in_ns "$pod" ip -6 route add default via "$GW_POD_SIDE6"
        mkdir -p "/etc/netns/$pod"
        printf 'nameserver %s\noptions timeout:1 attempts:2\n' "$DNS" >"/etc/netns/$pod/resolv.conf"
    done
    ip link add uplink netns "$NS_GW" type veth peer name eth0 netns "$NS_INET"
    in_ns "$NS_GW" ip addr add "$GW_UPLINK/24" dev uplink
    in_ns "$NS_GW" ip link set uplink up
    in_ns "$NS_GW" ip route add 203.0.113.0/24 via "$INET_LINK"
    in_ns "$NS_GW" ip -6 addr add "$GW_UPLINK6/64" dev uplink nodad
    in_ns "$NS_GW" ip -6 route add 2001:db8:113::/64 via "$INET_LINK6"
    in_ns "$NS_GW" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
    in_ns "$NS_GW" sh -c 'echo 1 >/proc/sys/net/ipv6/conf/all/forwarding'
    mkdir -p "/etc/netns/$NS_GW"
    printf 'nameserver %s\noptions timeout:1 attempts:2\n' "$DNS" >"/etc/netns/$NS_GW/resolv.conf"

    # eg-inet: the origins' addresses; routes back to the box only.
    in_ns "$NS_INET" ip addr add "$INET_LINK/24" dev eth0
    for addr in "$API" "$WEB" "$OTHER" "$REBIND_PUBLIC" "$DNS" "$REBIND_DNS" "$SILENT_DNS"; do
        in_ns "$NS_INET" ip addr add "$addr/24" dev eth0
    done
    in_ns "$NS_INET" ip addr add "$V4ONLY/24" dev eth0
    in_ns "$NS_INET" ip addr add "$DUAL/24" dev eth0
    in_ns "$NS_INET" ip addr add "$DROPPED/24" dev eth0
    in_ns "$NS_INET" ip -6 addr add "$INET_LINK6/64" dev eth0 nodad
    for addr in "$V6ONLY6" "$DUAL6" "$DROPPED6"; do
        in_ns "$NS_INET" ip -6 addr add "$addr/64" dev eth0 nodad
    done
    in_ns "$NS_INET" ip link set eth0 up
    in_ns "$NS_INET" ip route add 198.51.100.0/24 via "$GW_UPLINK"
    in_ns "$NS_INET" ip -6 route add 2001:db8:100::/64 via "$GW_UPLINK6"
    # The AAAA answer of dropped6.example.test leads nowhere: SYNs vanish, nothing answers.
    in_ns "$NS_INET" ip6tables -w 5 -A INPUT -d "$DROPPED6" -j DROP

    # Transparent redirect (in the gateway's own namespace, so SO_ORIGINAL_DST sees the pod's
    # destination), and no way out for pods except DNS to the box resolver.
    local ipt=(ip netns exec "$NS_GW" iptables -w 5)
    "${ipt[@]}" -t nat -A PREROUTING -i br-pods -p tcp -d 203.0.113.0/24 -m multiport --dports 443,8443 \
        -j REDIRECT --to-ports "$SNI_PORT"
    "${ipt[@]}" -t nat -A PREROUTING -i br-pods -p tcp -d 203.0.113.0/24 -m multiport --dports 80,8080 \
        -j REDIRECT --to-ports "$HTTP_PORT"
    "${ipt[@]}" -P FORWARD DROP
    "${ipt[@]}" -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    "${ipt[@]}" -A FORWARD -i br-pods -o uplink -d "$DNS" -p udp --dport 53 -j ACCEPT
    "${ipt[@]}" -A FORWARD -i br-pods -o uplink -d "$DNS" -p tcp --dport 53 -j ACCEPT
    local ip6t=(ip netns exec "$NS_GW" ip6tables -w 5)
    "${ip6t[@]}" -t nat -A PREROUTING -i br-pods -p tcp -d 2001:db8:113::/64 -m multiport --dports 443,8443 \
        -j REDIRECT --to-ports "$SNI_PORT"
    "${ip6t[@]}" -t nat -A PREROUTING -i br-pods -p tcp -d 2001:db8:113::/64 -m multiport --dports 80,8080 \
        -j REDIRECT --to-ports "$HTTP_PORT"
    "${ip6t[@]}" -P FORWARD DROP
}

make_services() {
    cat >"$STATE/dnsmasq.conf" <<EOF
# egress-gateway box DNS: authoritative for example.test, TTL 0, no cache, no upstream.
port=53
listen-address=$DNS
bind-interfaces
no-resolv
no-hosts
no-poll
cache-size=0
no-negcache
local-ttl=0
user=root
log-queries
log-facility=$STATE/logs/dnsmasq-queries.log
local=/example.test/
host-record=api.example.test,$API
host-record=web.example.test,$WEB
host-record=other.example.test,$OTHER
host-record=private.example.test,10.20.30.40
host-record=metadata.example.test,169.254.169.254
host-record=loopback.example.test,127.0.0.1
host-record=mapped.example.test,::ffff:127.0.0.1
host-record=v4only.example.test,$V4ONLY
host-record=v6only.example.test,$V6ONLY6
host-record=dual.example.test,$DUAL,$DUAL6
host-record=dropped6.example.test,$DROPPED,$DROPPED6
server=/rebind.example.test/$REBIND_DNS
EOF
    start_bg dnsmasq "$NS_INET" dnsmasq --keep-in-foreground --conf-file="$STATE/dnsmasq.conf"
    start_bg origin "$NS_INET" "$(py)" "$HERE/boxnet.py" origin \
        --cert "$STATE/origin.pem" --key "$STATE/origin-key.pem" --log "$STATE/logs/origin.jsonl" \
        --http 80 --http 8080 --https 443 --https 8443
    start_bg rebind-dns "$NS_INET" "$(py)" "$HERE/boxnet.py" rebind --addr "$REBIND_DNS" \
        --zone rebind.example.test --public "$REBIND_PUBLIC" --forbidden 127.0.0.1 \
        --forbidden 169.254.169.254 --log "$STATE/logs/rebind.jsonl"
    start_bg silent-dns "$NS_INET" "$(py)" "$HERE/boxnet.py" blackhole --addr "$SILENT_DNS"
    start_bg canary "$NS_GW" "$(py)" "$HERE/boxnet.py" canary --addr 127.0.0.1 --port 80 --port 443 \
        --log "$STATE/logs/canary.jsonl"

    wait_tcp "$NS_INET" "$API" 443
    wait_tcp "$NS_INET" "$API" 8443
    wait_tcp "$NS_INET" "$WEB" 80
    wait_tcp "$NS_INET" "$WEB" 8080
    wait_tcp "$NS_INET" "$V6ONLY6" 443
    wait_tcp "$NS_GW" 127.0.0.1 443
    wait_tcp "$NS_INET" "$SILENT_DNS" 53
    wait_udp "$NS_INET" "$REBIND_DNS" 53
    # The readiness probe above touched the canary: start its log empty.
    : >"$STATE/logs/canary.jsonl"
    for _ in $(seq 1 100); do
        if in_ns eg-app1-a getent ahostsv4 api.example.test >/dev/null 2>&1; then return 0; fi
        sleep 0.05
    done
    die "box DNS does not answer from the pods (see $STATE/logs/dnsmasq.log)"
}

py() { if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi; }

# The box gateway config for `up --gateway`: the same shape tests/e2e/main.rs uses.
write_gateway_config() {
    local dir=$STATE/gateway
    mkdir -p "$dir/serviceentries/app1" "$dir/serviceentries/app2"
    cat >"$dir/gateway.yaml" <<EOF
listeners:
  connect: {address: "[::]:3128"}
  connect_tls: {address: "[::]:3129"}
  sni: {address: "[::]:$SNI_PORT", port: 443}
  http: {address: "[::]:$HTTP_PORT", port: 80}
admin: {address: "127.0.0.1:9901"}
tls: {cert: $STATE/gateway.pem, key: $STATE/gateway-key.pem, client_ca: $STATE/ca.pem}
identity:
  trust_domain: cluster.local
  sources:
    - {cidr: "198.51.100.16/28", namespace: app1}
    - {cidr: "198.51.100.32/28", namespace: app2}
    - {cidr: "2001:db8:100::10/124", namespace: app1}
    - {cidr: "2001:db8:100::30/124", namespace: app2}
dns:
  servers: ["$DNS:53"]
timeouts: {connect: 3s}
EOF
    cat >"$dir/serviceentries/app1/egress.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.test]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.example.test]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http-alt, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dual-stack}
spec:
  hosts: [v4only.example.test, v6only.example.test, dual.example.test, dropped6.example.test]
  ports: [{number: 443, name: https, protocol: HTTPS}, {number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
# Allowlisted on purpose: their DNS answers are what the gateway must refuse (forbidden_address).
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: attacks}
spec:
  hosts: [private.example.test, metadata.example.test, loopback.example.test, mapped.example.test, rebind.example.test]
  ports: [{number: 443, name: https, protocol: HTTPS}, {number: 80, name: http, protocol: HTTP}]
  resolution: DNS
EOF
    cat >"$dir/serviceentries/app2/egress.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: other}
spec:
  hosts: [other.example.test]
  ports: [{number: 443, name: https, protocol: HTTPS}, {number: 80, name: http, protocol: HTTP}]
  resolution: DNS
EOF
}

start_gateway() {
    local bin=$1
    if [ -z "$bin" ]; then
        for bin in "$ROOT/target/release/egress-gateway" "$ROOT/target/debug/egress-gateway" ""; do
            [ -n "$bin" ] && [ -x "$bin" ] && break
        done
        [ -n "$bin" ] || die "no egress-gateway binary: cargo build --release, or pass --gateway=BIN"
    fi
    [ -x "$bin" ] || die "$bin is not executable"
    write_gateway_config
    ip netns exec "$NS_GW" env RUST_LOG=info "$bin" run --config "$STATE/gateway" \
        </dev/null >"$STATE/logs/gateway.access.jsonl" 2>"$STATE/logs/gateway.log" 9>&- &
    echo $! >"$STATE/pids/gateway.pid"
    for _ in $(seq 1 100); do
        grep -q "gateway ready" "$STATE/logs/gateway.log" 2>/dev/null && break
        kill -0 "$(cat "$STATE/pids/gateway.pid")" 2>/dev/null ||
            die "the gateway exited: $(tail -5 "$STATE/logs/gateway.log")"
        sleep 0.05
    done
    grep -q "gateway ready" "$STATE/logs/gateway.log" || die "the gateway is not ready: see $STATE/logs/gateway.log"
    say "gateway running in $NS_GW (config $STATE/gateway, access log $STATE/logs/gateway.access.jsonl)"
}

do_up() {
    local gateway=0 bin=""
    for arg in "$@"; do
        case $arg in
            --gateway) gateway=1 ;;
            --gateway=*) gateway=1; bin=${arg#--gateway=} ;;
            *) die "up: unknown argument $arg" ;;
        esac
    done
    need_tools
    do_down
    mkdir -p "$STATE/pids" "$STATE/logs" "$STATE/tmp"
    # A failure half-way leaves nothing behind.
    # shellcheck disable=SC2154 # rc is assigned inside the trap string
    trap 'rc=$?; if [ "$rc" != 0 ]; then say "up failed; logs, then cleaning up"; dump_logs; do_down; fi; exit "$rc"' EXIT
    make_pki
    make_network
    make_services
    if [ "$gateway" = 1 ]; then start_gateway "$bin"; fi
    trap - EXIT
    say "box is up (state in $STATE)"
}

# --- exec / status -------------------------------------------------------------------------------

pod_ns() {
    case $1 in
        gw | gateway | eg-gw) echo "$NS_GW" ;;
        inet | internet | eg-inet) echo "$NS_INET" ;;
        eg-*) echo "$1" ;;
        app1) echo eg-app1-a ;;
        app2) echo eg-app2-a ;;
        *) echo "eg-$1" ;;
    esac
}

do_exec() {
    [ "$#" -ge 2 ] || die "usage: cluster.sh exec POD CMD..."
    local ns
    ns=$(pod_ns "$1"); shift
    ns_exists "$ns" || die "no such pod/namespace: $ns (is the box up?)"
    exec ip netns exec "$ns" "$@"
}

do_status() {
    local ns pidfile up=1
    for ns in "${ALL_NS[@]}"; do
        if ns_exists "$ns"; then
            echo "netns $ns: $(in_ns "$ns" ip -4 -o addr show scope global | awk '{print $4}' | paste -sd' ')"
        else
            echo "netns $ns: absent"; up=0
        fi
    done
    if [ -d "$STATE/pids" ]; then
        for pidfile in "$STATE"/pids/*.pid; do
            [ -e "$pidfile" ] || continue
            local pid
            pid=$(cat "$pidfile")
            if kill -0 "$pid" 2>/dev/null; then
                echo "process $(basename "$pidfile" .pid): pid $pid running"
            else
                echo "process $(basename "$pidfile" .pid): pid $pid dead"; up=0
            fi
        done
    else
        up=0
    fi
    echo "state: $STATE"
    [ "$up" = 1 ]
}

main() {
    [ "$#" -ge 1 ] || die "usage: cluster.sh up [--gateway[=BIN]] | down | exec POD CMD... | status"
    local command=$1; shift
    case $command in
        up) need_root; lock; do_up "$@" ;;
        down) need_root; lock; do_down; say "box is down" ;;
        exec) need_root; do_exec "$@" ;;
        status) need_root; do_status ;;
        *) die "unknown command $command" ;;
    esac
}

main "$@"
