//! Onboarding a tenant without a rollout, as the deployment in `deploy/` does it: the real
//! gateway runs on a config directory laid out like the pod's `/etc` (gateway.yaml in
//! `egress-gateway/`, the allowlist ConfigMap projected whole into `egress-allowlist/`, reached
//! through the manifest's own `serviceentries.dir`), with the kubelet's `..data` symlink layout.
//! A new tenant's flat file arrives the way the kubelet publishes a ConfigMap change (a new
//! timestamped folder, then one atomic `..data` swap): the same process picks it up, the new
//! tenant gets out, and a tunnel opened before the change keeps working.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;

/// `serviceentries.dir` of the gateway.yaml the manifests ship.
fn manifest_allowlist_dir() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/base/config/gateway.yaml");
    let text = std::fs::read_to_string(&path).expect("read deploy/base/config/gateway.yaml");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("gateway.yaml parses");
    yaml["serviceentries"]["dir"]
        .as_str()
        .expect("serviceentries.dir")
        .to_owned()
}

/// A kubelet-style ConfigMap volume: `..<generation>/` holds the files, `..data` points at it,
/// and each key is a symlink through `..data`.
struct ConfigMapVolume {
    root: PathBuf,
    generation: u32,
}

impl ConfigMapVolume {
    fn new(root: PathBuf, files: &[(&str, String)]) -> Self {
        std::fs::create_dir_all(&root).expect("mkdir volume");
        let mut volume = Self {
            root,
            generation: 0,
        };
        volume.publish(files);
        volume
    }

    /// Publishes a new set of files with one atomic `..data` swap, like the kubelet's
    /// AtomicWriter: new folder, `..data_tmp` symlink renamed over `..data`, key symlinks for
    /// new keys, then the old folder removed.
    fn publish(&mut self, files: &[(&str, String)]) {
        self.generation += 1;
        let folder = format!("..2026_12_07_00_00_0{}.000000001", self.generation);
        std::fs::create_dir(self.root.join(&folder)).expect("mkdir generation");
        for (key, content) in files {
            std::fs::write(self.root.join(&folder).join(key), content).expect("write key");
        }
        let tmp = self.root.join("..data_tmp");
        symlink(&folder, &tmp).expect("symlink ..data_tmp");
        let old = std::fs::read_link(self.root.join("..data")).ok();
        std::fs::rename(&tmp, self.root.join("..data")).expect("swap ..data");
        for (key, _) in files {
            let link = self.root.join(key);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(key), &link).expect("key symlink");
            }
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(self.root.join(old)).expect("remove old generation");
        }
    }
}

/// A flat allowlist file: a STATIC entry owned by `namespace` through `metadata.namespace`.
fn flat_entry(namespace: &str, name: &str, host: &str, upstream: std::net::SocketAddr) -> String {
    static_entry(name, host, 7000, "TCP", upstream).replace(
        &format!("metadata: {{name: {name}}}"),
        &format!("metadata: {{name: {name}, namespace: {namespace}}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tenant_gets_out_without_a_restart_and_open_tunnels_survive() {
    let echo = echo_server().await;
    let etc = tempfile::tempdir().expect("temp dir");
    let config = etc.path().join("egress-gateway");
    std::fs::create_dir_all(&config).expect("mkdir config");
    let dir = manifest_allowlist_dir();
    std::fs::write(
        config.join("gateway.yaml"),
        gateway_yaml(&format!("serviceentries: {{dir: \"{dir}\"}}\n")),
    )
    .expect("write gateway.yaml");
    let allowlist = config.join(&dir);
    let app1 = (
        "app1.echo.yaml",
        flat_entry("app1", "echo", "app1-echo.test", echo),
    );
    let mut volume = ConfigMapVolume::new(allowlist, std::slice::from_ref(&app1));

    let gateway = Gateway::start_at(&config);
    let proxy = gateway.addr("connect");
    let pid = gateway.pid();
    let mut before = open_tunnel(APP1, proxy, "app1-echo.test:7000").await;
    echo_roundtrip(&mut before, b"before onboarding")
        .await
        .expect("echo");
    let refused = connect_request(APP2, proxy, "app2-echo.test:7000").await;
    assert_eq!(
        refused.status, 403,
        "app2 is not onboarded yet: {}",
        refused.head
    );
    let generation = gateway.generation();

    // Onboarding app2: one more key in the same ConfigMap, nothing else.
    let app2 = (
        "app2.echo.yaml",
        flat_entry("app2", "echo", "app2-echo.test", echo),
    );
    volume.publish(&[app1, app2]);
    gateway.wait_metric("egress_config_generation", &[], |g| g > generation);

    let mut onboarded = open_tunnel(APP2, proxy, "app2-echo.test:7000").await;
    echo_roundtrip(&mut onboarded, b"app2 is out")
        .await
        .expect("echo");
    echo_roundtrip(&mut before, b"still open after onboarding")
        .await
        .expect("the tunnel opened before survives");
    assert_eq!(
        gateway.pid(),
        pid,
        "the same process serves both generations"
    );
    assert_eq!(gateway.reloads("failure"), 0.0);
    // Each file is owned by the namespace it names, not by a folder: app1 cannot use app2's entry.
    let crossed = connect_request(APP1, proxy, "app2-echo.test:7000").await;
    assert_eq!(crossed.status, 403, "{}", crossed.head);
}
