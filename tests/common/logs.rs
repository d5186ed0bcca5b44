//! Access-log files as the gateway writes them, for the replay and suggest tests: lines built
//! from a few fields, written plain or gzip.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;

/// One access-log line as the gateway writes it, from `TS LISTENER NAMESPACE HOST PORT DECISION`
/// (a deny is `not_allowlisted`; port 443 carries the host as SNI).
pub fn line(fields: &str) -> String {
    let [ts, listener, namespace, host, port, decision] = fields
        .split(' ')
        .collect::<Vec<_>>()
        .try_into()
        .expect("six fields");
    let port: u16 = port.parse().expect("port");
    let reason = if decision == "deny" {
        "not_allowlisted"
    } else {
        "none"
    };
    json!({
        "ts": ts, "listener": listener, "namespace": namespace, "identity": "10.0.0.7",
        "src": "10.0.0.7:40000", "host": host, "port": port,
        "sni": if port == 443 { Some(host) } else { None },
        "decision": decision, "reason": reason, "service_entry": null, "upstream": null,
        "parent": null, "bytes_egress": 0, "bytes_ingress": 0, "duration_ms": 1
    })
    .to_string()
}

pub fn write_plain(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write log");
    path
}

pub fn write_gzip(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).expect("create log");
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    gz.write_all((lines.join("\n") + "\n").as_bytes())
        .expect("gzip");
    gz.finish().expect("finish gzip");
    path
}

/// Runs `egress-gateway ARGS` and returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run egress-gateway");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
