//! curl in a pod: the answer (exit code, status, what curl printed, how long it took), and curl
//! through the plaintext CONNECT listener or the mTLS listener.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::state;
use crate::{Pod, PROXY, PROXY_TLS};

pub struct Curl {
    pub exit: i32,
    pub status: u16,
    /// Response head(s) and body as curl printed them (`-D -` puts heads on stdout).
    pub out: String,
    err: String,
    pub took: Duration,
}

impl Curl {
    pub fn deny_reason(&self) -> Option<&str> {
        self.out.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-egress-deny-reason")
                .then(|| value.trim())
        })
    }

    pub fn alert_access_denied(&self) -> bool {
        self.exit == 35 && self.err.contains("alert access denied")
    }
}

impl std::fmt::Display for Curl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} status {} in {:?}\nstdout: {}\nstderr: {}",
            self.exit,
            self.status,
            self.took,
            self.out.trim(),
            self.err.trim()
        )
    }
}

/// Runs `curl -sS -D - <args>` in `pod` with no proxy settings unless `env` adds them; the last
/// stdout line is the status code.
pub fn curl(pod: Pod, env: &[(&str, &str)], args: &[&str]) -> Curl {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", pod.ns, "curl", "-sS", "-D", "-"])
        .args(["--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::null());
    for var in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        command.env_remove(var);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let started = Instant::now();
    let output = command.output().expect("run curl in the pod");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (out, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Curl {
        exit: output.status.code().unwrap_or(-1),
        status: status.trim().parse().unwrap_or(0),
        out: out.to_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
        took,
    }
}

pub fn cacert() -> String {
    state("ca.pem")
}

/// A curl through the plaintext CONNECT listener, tunnelled (`-p`).
pub fn via_connect(pod: Pod, url: &str) -> Curl {
    let ca = cacert();
    curl(pod, &[], &["-p", "-x", PROXY, "--cacert", &ca, url])
}

/// A curl through the mTLS listener with `tenant`'s workload certificate.
pub fn via_mtls(pod: Pod, tenant: &str, url: &str) -> Curl {
    let (ca, cert, key) = (
        cacert(),
        state(&format!("{tenant}.pem")),
        state(&format!("{tenant}-key.pem")),
    );
    curl(
        pod,
        &[],
        &[
            "--proxy",
            PROXY_TLS,
            "--proxy-cacert",
            &ca,
            "--proxy-cert",
            &cert,
            "--proxy-key",
            &key,
            "--cacert",
            &ca,
            url,
        ],
    )
}
