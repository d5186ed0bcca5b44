//! DNS answers for every forbidden class: an allowlisted name whose A/AAAA records point at
//! loopback, private, CGNAT, metadata, multicast or reserved addresses, or at an IPv6 form that
//! carries one of them (NAT64, 6to4, Teredo, SIIT, IPv4-mapped, IPv4-compatible). Each CONNECT
//! must be refused `403 forbidden_address` before anything is dialled, with its access-log line,
//! counter, and no leaked descriptor or active connection. The other front ends (absolute-form
//! on `connect`, the `http` listener, the `sni` listener) refuse the same answers the same way.
//!
//! A gateway under test dials whatever a DNS answer says, so each attack runs inside a network
//! namespace of its own that has only loopback: the test re-runs itself there through
//! `ip netns exec`, with dnsmasq on the namespace's 127.0.0.1:53 as the gateway's only resolver.
//! Nothing reaches the machine's own resolver or network. Needs root, `ip` and `dnsmasq`; without
//! them each test prints `SKIPPED: <reason>` and passes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::attack::{deny_header, raw_exchange, status_of, Outcome, Probe};
use crate::common::{entry_yaml, transparent_gateway_yaml, ConfigDir, Gateway, APP1, WAIT};
use crate::hello::Hello;

/// Set in the re-run inside the namespace.
const INSIDE: &str = "EGRESS_DNS_ANSWERS_NETNS";
/// The allowlisted name every attack resolves.
const NAME: &str = "target.attack.test";
/// The CONNECT port app1 may reach it on (TCP: nothing to sniff, the dial follows the decision).
const TCP_PORT: u16 = 9443;
/// The TLS alert `access_denied`.
const ACCESS_DENIED: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 49];

/// The front end an attack comes through.
#[derive(Debug, Clone, Copy)]
enum Front {
    /// `CONNECT name:9443` on the `connect` listener.
    Connect,
    /// `GET http://name/` (absolute-form) on the `connect` listener.
    AbsoluteForm,
    /// `GET /` with `Host: name` on the transparent `http` listener (port 80).
    HttpListener,
    /// A ClientHello naming `name` on the transparent `sni` listener (port 443).
    SniListener,
}

impl Front {
    /// Listener, port, bytes sent.
    fn ask(self) -> (&'static str, u16, Vec<u8>) {
        match self {
            Self::Connect => (
                "connect",
                TCP_PORT,
                format!("CONNECT {NAME}:{TCP_PORT} HTTP/1.1\r\nHost: {NAME}:{TCP_PORT}\r\n\r\n")
                    .into_bytes(),
            ),
            Self::AbsoluteForm => (
                "connect",
                80,
                format!("GET http://{NAME}/ HTTP/1.1\r\nHost: {NAME}\r\n\r\n").into_bytes(),
            ),
            Self::HttpListener => (
                "http",
                80,
                format!("GET / HTTP/1.1\r\nHost: {NAME}\r\n\r\n").into_bytes(),
            ),
            Self::SniListener => ("sni", 443, Hello::named(NAME).record()),
        }
    }
}

/// Runs attack `test` (its function name) through `front` with `NAME` answering `records`
/// (dnsmasq `host-record` addresses): here when already inside the namespace, else in a fresh
/// one.
fn attack(test: &str, front: Front, records: &[&str]) {
    if std::env::var_os(INSIDE).is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(refused_inside(test, front, records));
        return;
    }
    if let Some(reason) = unavailable() {
        println!("SKIPPED: {reason}");
        return;
    }
    let netns = Netns::create(test);
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let output = Command::new("ip")
        .args(["netns", "exec", &netns.name])
        .arg(std::env::current_exe().expect("test binary"))
        .args(["--exact", &format!("{module}::{test}"), "--nocapture"])
        .env(INSIDE, "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the attack inside the namespace");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} inside {}:\n{stdout}\n{}",
        netns.name,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The attack proper, inside the namespace: ask for the allowlisted name, exact refusal.
async fn refused_inside(test: &str, front: Front, records: &[&str]) {
    let dns = Dnsmasq::start(records);
    let config = ConfigDir::new(&transparent_gateway_yaml(
        &[],
        "dns:\n  servers: [\"127.0.0.1:53\"]\ntimeouts: {connect: 2s}\n",
    ));
    config.entry(
        "app1/target.yaml",
        &entry_yaml(
            "target",
            &format!(
                "  hosts: [\"{NAME}\"]\n  ports:\n    - {{number: {TCP_PORT}, name: tcp, protocol: TCP}}\n    - {{number: 80, name: http, protocol: HTTP}}\n    - {{number: 443, name: tls, protocol: TLS}}\n  resolution: DNS\n"
            ),
        ),
    );
    let gw = Gateway::start(&config);
    let (listener, port, request) = front.ask();
    let probe = Probe::before(&gw, Outcome::deny(listener, "app1", "forbidden_address"));

    let answer = raw_exchange(APP1, gw.addr(listener), &request).await;
    let what = format!("{test} ({front:?}): {NAME} -> {records:?}");
    match front {
        Front::SniListener => assert_eq!(answer, ACCESS_DENIED, "{what}"),
        _ => {
            let text = String::from_utf8_lossy(&answer);
            assert_eq!(status_of(&answer), 403, "{what}: {text}");
            assert_eq!(
                deny_header(&answer).as_deref(),
                Some("forbidden_address"),
                "{what}: {text}"
            );
        }
    }
    let line = probe.confirm(&gw, &what);
    assert_eq!(line["host"], NAME, "{what}: {line}");
    assert_eq!(line["port"], port, "{what}: {line}");
    assert!(line["upstream"].is_null(), "{what}: dialled {line}");
    drop(dns);
}

/// Why the namespace cannot be built here, if it cannot.
fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1));
    if euid != Some("0") {
        return Some(format!(
            "DNS-answer attacks need root for network namespaces (effective uid {})",
            euid.unwrap_or("?")
        ));
    }
    for tool in ["ip", "dnsmasq"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!(
                "DNS-answer attacks need `{tool}` (Debian: iproute2, dnsmasq-base)"
            ));
        }
    }
    None
}

/// A network namespace with only loopback (up), deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(test: &str) -> Self {
        let short: String = test
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(20)
            .collect();
        let name = format!("egdns-{}-{short}", std::process::id());
        let run = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("run ip");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["netns", "add", &name]);
        let netns = Self { name };
        run(&["-n", &netns.name, "link", "set", "lo", "up"]);
        netns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// dnsmasq on 127.0.0.1:53 of the current namespace, authoritative for `attack.test`, no cache;
/// killed on drop.
struct Dnsmasq {
    child: Child,
}

impl Dnsmasq {
    fn start(records: &[&str]) -> Self {
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--port=53",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--cache-size=0",
                "--no-negcache",
                "--local-ttl=0",
                "--user=root",
                "--pid-file=",
                "--local=/attack.test/",
            ])
            .arg(format!("--host-record={NAME},{}", records.join(",")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dnsmasq");
        let dns = Self { child };
        dns.wait_listening();
        dns
    }

    /// Waits (bounded) until something listens on udp 127.0.0.1:53.
    fn wait_listening(&self) {
        let deadline = Instant::now() + WAIT;
        while !std::fs::read_to_string("/proc/net/udp")
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains(" 0100007F:0035 "))
        {
            assert!(Instant::now() < deadline, "dnsmasq did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test per forbidden class: `name => [records], why`, asked for by CONNECT.
macro_rules! forbidden_answers {
    ($($name:ident => [$($record:literal),+], $why:literal;)+) => {$(
        #[doc = $why]
        #[test]
        fn $name() {
            attack(stringify!($name), Front::Connect, &[$($record),+]);
        }
    )+};
}

/// NAT64-wrapped metadata through absolute-form on the `connect` listener.
#[test]
fn absolute_form_nat64_metadata() {
    attack(
        "absolute_form_nat64_metadata",
        Front::AbsoluteForm,
        &["64:ff9b::a9fe:a9fe"],
    );
}

/// 6to4-wrapped loopback through the transparent `http` listener.
#[test]
fn http_listener_six_to_four_loopback() {
    attack(
        "http_listener_six_to_four_loopback",
        Front::HttpListener,
        &["2002:7f00:1::1"],
    );
}

/// Teredo-wrapped private client through the transparent `sni` listener.
#[test]
fn sni_listener_teredo_private() {
    attack(
        "sni_listener_teredo_private",
        Front::SniListener,
        &["2001:0:4136:e378:8000:63bf:f5ff:fffe"],
    );
}

/// Metadata through the transparent `sni` listener.
#[test]
fn sni_listener_metadata() {
    attack(
        "sni_listener_metadata",
        Front::SniListener,
        &["169.254.169.254"],
    );
}

forbidden_answers! {
    loopback_v4 => ["127.0.0.1"], "IPv4 loopback: the gateway host itself.";
    loopback_v4_far => ["127.254.3.2"], "Anywhere in 127.0.0.0/8, not only 127.0.0.1.";
    loopback_v6 => ["::1"], "IPv6 loopback.";
    private_10 => ["10.1.2.3"], "RFC 1918 10.0.0.0/8.";
    private_172 => ["172.16.5.4"], "RFC 1918 172.16.0.0/12.";
    private_192_168 => ["192.168.1.1"], "RFC 1918 192.168.0.0/16.";
    cgnat => ["100.64.0.1"], "Shared address space 100.64.0.0/10.";
    metadata_v4 => ["169.254.169.254"], "Cloud metadata.";
    link_local_v4 => ["169.254.1.1"], "IPv4 link-local.";
    metadata_v6 => ["fd00:ec2::254"], "Cloud metadata over IPv6.";
    nat64_metadata => ["64:ff9b::a9fe:a9fe"], "NAT64 well-known prefix carrying 169.254.169.254.";
    nat64_loopback => ["64:ff9b::7f00:1"], "NAT64 well-known prefix carrying 127.0.0.1.";
    nat64_local_use => ["64:ff9b:1::808:808"], "Local-use NAT64 prefix (RFC 8215), refused whole.";
    six_to_four_loopback => ["2002:7f00:1::1"], "6to4 carrying 127.0.0.1 in bits 16..48.";
    six_to_four_private => ["2002:c0a8:101::1"], "6to4 carrying 192.168.1.1.";
    teredo_private_client => ["2001:0:4136:e378:8000:63bf:f5ff:fffe"], "Teredo whose client (inverted) is 10.0.0.1.";
    teredo_private_server => ["2001:0:a00:1::f7f7:f7f7"], "Teredo whose server is 10.0.0.1.";
    ipv4_mapped_loopback => ["::ffff:127.0.0.1"], "IPv4-mapped loopback.";
    ipv4_mapped_metadata => ["::ffff:169.254.169.254"], "IPv4-mapped metadata.";
    ipv4_compatible => ["::127.0.0.1"], "Deprecated IPv4-compatible form, refused whole.";
    siit_private => ["::ffff:0:a00:1"], "SIIT IPv4-translated 10.0.0.1.";
    unique_local => ["fd12:3456::1"], "IPv6 unique-local fc00::/7.";
    link_local_v6 => ["fe80::1"], "IPv6 link-local.";
    site_local_v6 => ["fec0::1"], "Deprecated IPv6 site-local.";
    multicast_v4 => ["224.0.0.1"], "IPv4 multicast.";
    multicast_v6 => ["ff02::1"], "IPv6 multicast.";
    unspecified_v4 => ["0.0.0.0"], "0.0.0.0 connects to the local host.";
    unspecified_v6 => ["::"], ":: connects to the local host.";
    this_network => ["0.1.2.3"], "0.0.0.0/8.";
    broadcast => ["255.255.255.255"], "Limited broadcast.";
    reserved_240 => ["240.0.0.1"], "Reserved 240.0.0.0/4.";
    benchmarking_v4 => ["198.18.0.1"], "Benchmarking 198.18.0.0/15.";
    documentation_v4 => ["192.0.2.1"], "Documentation TEST-NET-1 (refused: not globally reachable).";
    dns64_discovery => ["192.0.0.170"], "IETF protocol assignment answered by the local DNS64.";
    discard_only_v6 => ["100::1"], "Discard-only 100::/64.";
    every_answer_forbidden => ["127.0.0.1", "10.0.0.1", "::1", "fd00::1"], "Several answers, each forbidden: none is dialled.";
}
