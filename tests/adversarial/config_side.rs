//! Config-side attacks: what someone who can land a file in the allowlist repository (or the
//! ConfigMap) tries. Shape bombs (aliases that expand a billion times, nesting tens of thousands
//! of levels deep, in any document and in gateway.yaml), symlinks out of the watched tree, a
//! namespace folder granting another tenant, and `exportTo` tricks.
//!
//! Each attack asserts the exact error `check` prints (`FILE:LINE:COL: message`, exit 1) and,
//! against a running gateway, the same error in its log, a failed reload counted, and the last
//! good snapshot still serving; the `exportTo` cases that load assert who is allowed and denied.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::common::*;

/// An allowlist that works: app1 may reach `web.test:8000`, dialling `upstream`.
fn serving_config(upstream: SocketAddr) -> ConfigDir {
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/web.yaml",
        &static_entry("web", "web.test", 8000, "TCP", upstream),
    );
    config
}

/// Runs `egress-gateway check` on `dir`: (exit code, stderr).
pub(crate) fn check(dir: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(["check", "--config"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run check");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `check` on `dir` fails with exit 1 and prints `error` (a `FILE:LINE:COL: message` tail).
fn assert_check_refuses(dir: &Path, error: &str) {
    let (code, stderr) = check(dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(error), "expected {error:?} in:\n{stderr}");
    assert!(!stderr.contains("overflow"), "{stderr}");
}

/// Starts a gateway on a working allowlist, lets `attack` change the config directory, and
/// checks that the reload fails with `error` in the log while the last good snapshot serves;
/// then `check` must print the same error.
async fn attack_reload(attack: impl FnOnce(&ConfigDir), error: &str) {
    let echo = echo_server().await;
    let config = serving_config(echo);
    let gateway = Gateway::start(&config);
    gateway.wait_watching();
    let failures = gateway.reloads("failure");

    attack(&config);
    gateway.wait_metric(
        "egress_config_reloads_total",
        &[("result", "failure")],
        |n| n > failures,
    );
    // The log is JSON, where quotes are escaped: match the part before the first one.
    gateway.wait_log(error.split('"').next().unwrap_or(error));
    let mut tunnel = open_tunnel(APP1, gateway.addr("connect"), "web.test:8000").await;
    echo_roundtrip(&mut tunnel, b"last good snapshot")
        .await
        .expect("the last good snapshot still serves");
    assert_eq!(gateway.generation(), 1.0);
    assert_eq!(
        gateway.metric("egress_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert_check_refuses(config.path(), error);
}

/// Nine levels of ten aliases each: a billion `x` once expanded.
fn billion_laughs() -> String {
    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut previous = 'a';
    for name in 'b'..='i' {
        let refs = vec![format!("*{previous}"); 10].join(", ");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        previous = name;
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_billion_laughs_in_a_serviceentry_file_is_refused() {
    let bomb = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: bomb}}\nspec:\n  hosts: [bomb.test]\n---\n{}",
        billion_laughs()
    );
    attack_reload(
        |config| {
            config.replace_entry("app1/bomb.yaml", &bomb);
        },
        "bomb.yaml:10:36: aliases expand to more than 10000 nodes",
    )
    .await;
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry("app1/bomb.yaml", &bomb);
    assert_check_refuses(config.path(), "refused as an alias bomb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_billion_laughs_in_gateway_yaml_is_refused() {
    attack_reload(
        |config| {
            let text = format!("{}x-bomb:\n{}", gateway_yaml(""), indent(&billion_laughs()));
            std::fs::write(config.path().join("gateway.yaml"), text).expect("write");
        },
        "gateway.yaml:12:38: aliases expand to more than 10000 nodes",
    )
    .await;
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recursive_alias_is_refused() {
    attack_reload(
        |config| {
            config.replace_entry(
                "app1/loop.yaml",
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: &m {name: loop, self: *m}\n",
            );
        },
        "loop.yaml:3:33: alias refers to a node that contains it: recursive aliases are refused",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_nesting_sixty_thousand_levels_deep_in_the_first_document_is_refused() {
    attack_reload(
        |config| {
            config.replace_entry("app1/deep.yaml", &format!("{}x\n", "- ".repeat(60_000)));
        },
        "deep.yaml:1:129: nesting deeper than 64 levels",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_nesting_in_a_later_document_is_refused() {
    attack_reload(
        |config| {
            let deep = format!(
                "{}---\nspec: {}{}\n",
                entry_yaml("ok", "  hosts: [ok.test]\n  ports: [{number: 443, name: https, protocol: TLS}]\n  resolution: DNS\n"),
                "[".repeat(200),
                "]".repeat(200)
            );
            config.replace_entry("app1/flow.yaml", &deep);
        },
        "flow.yaml:9:70: nesting deeper than 64 levels",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_inside_a_list_item_is_refused() {
    attack_reload(
        |config| {
            let mut text =
                String::from("apiVersion: v1\nkind: List\nitems:\n- kind: ServiceEntry\n  spec:\n");
            for depth in 0..100 {
                text.push_str(&format!("{}k{depth}:\n", " ".repeat(4 + 2 * depth)));
            }
            config.replace_entry("app1/list.yaml", &text);
        },
        "list.yaml:67:130: nesting deeper than 64 levels",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_in_gateway_yaml_is_refused() {
    attack_reload(
        |config| {
            let text = format!(
                "{}x-deep: {}1{}\n",
                gateway_yaml(""),
                "[".repeat(100),
                "]".repeat(100)
            );
            std::fs::write(config.path().join("gateway.yaml"), text).expect("write");
        },
        "gateway.yaml:8:72: nesting deeper than 64 levels",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_file_leading_out_of_the_tree_is_refused() {
    let outside = tempfile::tempdir().expect("outside");
    let secret = outside.path().join("other-team.yaml");
    std::fs::write(&secret, entry_yaml("stolen", "  hosts: [stolen.test]\n  ports: [{number: 443, name: https, protocol: TLS}]\n  resolution: DNS\n")).expect("write");
    attack_reload(
        |config| {
            let link = config.path().join("serviceentries/app1/stolen.yaml");
            std::os::unix::fs::symlink(&secret, link).expect("symlink");
        },
        "stolen.yaml:1:1: symlink leads out of the serviceentries tree",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_folder_leading_out_of_the_tree_is_refused() {
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("x.yaml"), "kind: Anything\n").expect("write");
    attack_reload(
        |config| {
            let link = config.path().join("serviceentries/app2");
            std::os::unix::fs::symlink(outside.path(), link).expect("symlink");
        },
        "app2:1:1: symlink leads out of the serviceentries tree",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_style_symlinks_inside_the_tree_still_load() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    let app1 = config.path().join("serviceentries/app1");
    std::fs::create_dir_all(app1.join("..2026_12_07/")).expect("mkdir");
    std::fs::write(
        app1.join("..2026_12_07/web.yaml"),
        static_entry("web", "web.test", 8000, "TCP", echo),
    )
    .expect("write");
    std::os::unix::fs::symlink("..2026_12_07", app1.join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/web.yaml", app1.join("web.yaml")).expect("symlink");
    let (code, stderr) = check(config.path());
    assert_eq!(code, Some(0), "{stderr}");
    let gateway = Gateway::start(&config);
    let mut tunnel = open_tunnel(APP1, gateway.addr("connect"), "web.test:8000").await;
    echo_roundtrip(&mut tunnel, b"via ..data")
        .await
        .expect("echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_folder_cannot_grant_another_namespace() {
    let grant = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: gift\n  namespace: app2\nspec:\n  hosts: [web.test]\n  ports: [{number: 8000, name: tcp, protocol: TCP}]\n  resolution: DNS\n";
    attack_reload(
        |config| {
            config.replace_entry("app1/gift.yaml", grant);
        },
        "gift.yaml:5:3: ServiceEntry app2/gift: metadata.namespace \"app2\" differs from the folder \"app1\": a namespace folder holds only its own namespace's entries",
    )
    .await;
}

/// An entry document for `web.test:8000` (dialling `upstream`) with `extra` under `spec:`.
fn exported(name: &str, upstream: SocketAddr, extra: &str) -> String {
    format!(
        "{}{extra}",
        static_entry(name, "web.test", 8000, "TCP", upstream)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_everyone_combined_with_a_name_is_refused() {
    let echo = echo_server().await;
    let text = exported("wide", echo, "  exportTo: [\"*\", app1]\n");
    attack_reload(
        |config| {
            config.replace_entry("app2/wide.yaml", &text);
        },
        "wide.yaml:11:3: ServiceEntry wide: spec.exportTo: `*` already exports to every namespace",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_a_name_that_is_not_a_namespace_is_refused() {
    let echo = echo_server().await;
    for (value, at) in [
        ("App1", "11:14"),
        ("app1 ", "11:14"),
        ("app*", "11:14"),
        ("", "11:14"),
    ] {
        let text = exported("odd", echo, &format!("  exportTo: [\"{value}\"]\n"));
        let config = serving_config(echo);
        config.entry("app2/odd.yaml", &text);
        assert_check_refuses(
            config.path(),
            &format!("odd.yaml:{at}: ServiceEntry odd: spec.exportTo[0]: exportTo value {value:?} is not `.`, `*`, `~` or a namespace name"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_visibility_holds_at_run_time() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    // app2's entry with the default exportTo (own namespace only): app1 cannot use it.
    config.entry(
        "app2/own.yaml",
        &static_entry("own", "own.test", 8000, "TCP", echo),
    );
    // `~`: visible to nobody, not even its owner.
    config.entry(
        "app2/hidden.yaml",
        &format!(
            "{}  exportTo: [\"~\"]\n",
            static_entry("hidden", "hidden.test", 8000, "TCP", echo)
        ),
    );
    // Exported by name to app1 only: app1 may use it, its owner app2 may not.
    config.entry(
        "app2/shared.yaml",
        &format!(
            "{}  exportTo: [app1]\n",
            static_entry("shared", "shared.test", 8000, "TCP", echo)
        ),
    );
    let gateway = Gateway::start(&config);
    let proxy = gateway.addr("connect");
    for (tenant, authority, want) in [
        (APP2, "own.test:8000", None),
        (APP1, "own.test:8000", Some("not_allowlisted")),
        (APP2, "hidden.test:8000", Some("not_allowlisted")),
        (APP1, "hidden.test:8000", Some("not_allowlisted")),
        (APP1, "shared.test:8000", None),
        (APP2, "shared.test:8000", Some("not_allowlisted")),
    ] {
        let answer = connect_request(tenant, proxy, authority).await;
        match want {
            None => assert_eq!(answer.status, 200, "{tenant} {authority}: {}", answer.head),
            Some(reason) => {
                assert_eq!(answer.status, 403, "{tenant} {authority}: {}", answer.head);
                assert_eq!(answer.deny_reason().as_deref(), Some(reason));
            }
        }
    }
}
