//! `egress-gateway check` warns, with `FILE:LINE:COL`, about addresses an operator wrote into a
//! ServiceEntry (`spec.addresses`, IP endpoints) that reach ranges the SSRF guard refuses in DNS
//! answers: those addresses are trusted, so `0.0.0.0/0` would make loopback and cloud metadata
//! reachable through any IP literal. The config still loads (exit 0); public addresses stay quiet.

use std::path::Path;
use std::process::Command;

const GATEWAY_YAML: &str = "listeners:\n  connect: {address: \"127.0.0.1:0\"}\nadmin: {address: \"127.0.0.1:0\"}\nidentity:\n  sources:\n    - {cidr: \"127.0.0.2/32\", namespace: app1}\n";

const EVERYTHING: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: everything}
spec:
  hosts: [\"any.internal\"]
  addresses: [\"8.8.8.0/24\", \"0.0.0.0/0\"]
  ports:
    - {number: 22, name: ssh, protocol: TCP}
  resolution: NONE
";

const ENDPOINTS: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: endpoints}
spec:
  hosts: [\"svc.example.com\"]
  ports:
    - {number: 443, name: https, protocol: HTTPS}
  resolution: STATIC
  endpoints:
    - address: 8.8.8.8
    - address: 169.254.169.254
    - address: 10.1.2.3
    - address: \"::ffff:127.0.0.1\"
    - address: 64:ff9b::a9fe:a9fe
";

fn write(dir: &Path, relative: &str, content: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

#[test]
fn check_warns_about_trusted_addresses_that_reach_refused_ranges() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "gateway.yaml", GATEWAY_YAML);
    write(
        dir.path(),
        "serviceentries/app1/everything.yaml",
        EVERYTHING,
    );
    write(dir.path(), "serviceentries/app1/endpoints.yaml", ENDPOINTS);
    let output = Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(["check", "--config"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run egress-gateway check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("config OK"), "{stdout}");

    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning:")).collect();
    let at = |file: &str, line: u32, needle: &str| {
        let prefix = format!("{file}:{line}:");
        warnings
            .iter()
            .find(|w| w.contains(&prefix) && w.contains(needle))
            .unwrap_or_else(|| panic!("no warning at {prefix} naming {needle:?}:\n{stderr}"))
    };
    let everything = at(
        "everything.yaml",
        6,
        "spec.addresses[1]: address \"0.0.0.0/0\" is trusted",
    );
    for range in [
        "loopback 127.0.0.0/8",
        "cloud metadata 169.254.169.254/32",
        "private-use 10.0.0.0/8",
    ] {
        assert!(everything.contains(range), "{everything}");
    }
    assert!(everything.contains("more refused ranges"), "{everything}");
    at(
        "endpoints.yaml",
        11,
        "is in cloud metadata 169.254.169.254/32",
    );
    at("endpoints.yaml", 12, "is in private-use 10.0.0.0/8");
    at("endpoints.yaml", 13, "is in loopback 127.0.0.0/8");
    at(
        "endpoints.yaml",
        14,
        "is in cloud metadata 169.254.169.254/32",
    );
    assert_eq!(
        warnings.len(),
        5,
        "8.8.8.0/24 and 8.8.8.8 are quiet:\n{stderr}"
    );
}
