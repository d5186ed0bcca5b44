//! A real Squid from Debian's packages as a parent proxy: it requires `alice`'s password, lets
//! `CONNECT` reach only `origin.parent.test` (resolved from its own hosts file to 127.0.0.1; the
//! gateway cannot resolve `*.parent.test`), and denies the rest. Plaintext (`http_port`) or TLS
//! (`https_port` with a certificate the test issues).
//!
//! Needs `squid` (`apt-get install squid`; `.ci/run` installs it). Squid runs as its
//! `cache_effective_user`, so its folder is world-writable and lives only for the test.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pki::Issued;
use super::WAIT;

/// The password Squid requires of `alice`.
pub const PASSWORD: &str = "s3cret-parent-pass";

/// A running Squid, stopped on drop.
pub struct Squid {
    child: Child,
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Squid {
    /// A plaintext parent.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A parent spoken to over TLS with `certificate`.
    pub fn start_tls(certificate: &Issued) -> Self {
        Self::start_with(Some(certificate))
    }

    fn start_with(certificate: Option<&Issued>) -> Self {
        let dir = tempfile::tempdir().expect("squid dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777))
            .expect("chmod squid dir");
        let addr = free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let hash = Command::new("openssl")
            .args(["passwd", "-apr1", PASSWORD])
            .output()
            .expect("openssl passwd");
        let hash = String::from_utf8(hash.stdout).expect("utf8 hash");
        write(dir.path(), "passwd", &format!("alice:{}", hash.trim()));
        write(
            dir.path(),
            "hosts",
            "127.0.0.1 origin.parent.test blocked.parent.test\n",
        );
        let port_line = match certificate {
            None => format!("http_port {addr}"),
            Some(issued) => {
                write(dir.path(), "cert.pem", &issued.cert);
                write(dir.path(), "key.pem", &issued.key);
                format!(
                    "https_port {addr} tls-cert={} tls-key={}",
                    path("cert.pem"),
                    path("key.pem")
                )
            }
        };
        let conf = format!(
            "{port_line}\npid_filename none\ncache deny all\nshutdown_lifetime 0 seconds\n\
             access_log stdio:{access}\ncache_log {cache}\nhosts_file {hosts}\n\
             dns_nameservers 127.0.0.1\n\
             auth_param basic program /usr/lib/squid/basic_ncsa_auth {passwd}\n\
             acl authed proxy_auth REQUIRED\nacl allowed_dst dstdomain origin.parent.test\n\
             http_access deny !authed\nhttp_access allow CONNECT allowed_dst\nhttp_access deny all\n",
            access = path("access.log"),
            cache = path("cache.log"),
            hosts = path("hosts"),
            passwd = path("passwd"),
        );
        write(dir.path(), "squid.conf", &conf);
        let child = Command::new("squid")
            .args(["-N", "-f"])
            .arg(dir.path().join("squid.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("squid must be installed (apt-get install squid)");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "squid did not listen on {addr}: {}",
                std::fs::read_to_string(dir.path().join("cache.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, addr, dir }
    }

    /// Squid's access log: one line per request it saw.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Waits until Squid has logged a line containing `needle` (it writes at the request's end).
    pub fn wait_logged(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.access_log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(dir: &Path, name: &str, content: &str) {
    let file = dir.join(name);
    std::fs::write(&file, content).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}
