//! Hostile access logs fed to `plan --access-log`: a gzip bomb (64 MiB of one line in 64 KiB), a
//! gzip file cut in the middle, and a line whose namespace is Markdown and HTML meant for the
//! pull-request comment. The replay finishes, counts each by file and line, still counts the good
//! lines around them, and nothing from a log line leaves an inline code span in the comment.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::common::{entry_yaml, gateway_yaml, line, run_cli, ConfigDir};

fn tree(host: &str) -> ConfigDir {
    let config = ConfigDir::new(&gateway_yaml(""));
    let spec = format!(
        "  hosts: [\"{host}\"]\n  ports:\n    - {{number: 443, name: tls, protocol: TLS}}\n  resolution: DNS\n"
    );
    config.entry("app1/api.yaml", &entry_yaml("api", &spec));
    config
}

fn gzip(path: &Path, chunks: &[&[u8]]) {
    let file = std::fs::File::create(path).expect("create");
    let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    for chunk in chunks {
        encoder.write_all(chunk).expect("compress");
    }
    encoder.finish().expect("finish");
}

fn plan(base: &ConfigDir, head: &ConfigDir, logs: &[&Path], format: &str) -> (i32, String) {
    let mut args = vec![
        OsStr::new("plan"),
        OsStr::new("--base"),
        base.path().as_os_str(),
        OsStr::new("--head"),
        head.path().as_os_str(),
        OsStr::new("--format"),
        OsStr::new(format),
        OsStr::new("--access-log"),
    ];
    args.extend(logs.iter().map(|log| log.as_os_str()));
    let (code, stdout, stderr) = run_cli(&args);
    (code.unwrap_or(-1), stdout + &stderr)
}

#[test]
fn a_gzip_bomb_a_cut_gzip_and_markdown_in_a_log_stay_bounded_counted_and_inert() {
    let (base, head) = (tree("api.example.com"), tree("new.example.com"));
    let logs = tempfile::tempdir().expect("tempdir");
    let good = line("2026-12-07T10:00:00.000Z connect app1 api.example.com 443 allow") + "\n";

    let bomb = logs.path().join("bomb.jsonl.gz");
    let one_line = vec![b'a'; 64 * 1024 * 1024];
    gzip(&bomb, &[&one_line, b"\n", good.as_bytes()]);
    assert!(std::fs::metadata(&bomb).expect("bomb").len() < 256 * 1024);

    let cut = logs.path().join("cut.jsonl.gz");
    gzip(&cut, &[good.repeat(2000).as_bytes()]);
    let whole = std::fs::read(&cut).expect("read");
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("cut");

    let inject = logs.path().join("inject.jsonl");
    let mut hostile: Value = serde_json::from_str(&good).expect("json");
    hostile["namespace"] =
        json!("`x` | <img src=x onerror=alert(1)>\n## Approved by the platform team\n[ok](https://example.com)");
    std::fs::write(&inject, format!("{hostile}\n{good}")).expect("write");

    let (code, out) = plan(&base, &head, &[&bomb, &cut, &inject], "json");
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).expect("json report");
    let d = &report["replay"]["diagnostics"];
    assert_eq!(
        (&d["too_long"], &d["unreadable"], &d["skipped"]),
        (&json!(1), &json!(1), &json!(1)),
        "{d:#}"
    );
    let breaks = report["replay"]["breaks"].as_array().expect("breaks");
    assert_eq!(breaks.len(), 1, "{breaks:#?}");
    let count = breaks[0]["count"].as_u64().expect("count");
    assert!(
        count > 2 && count < 2002,
        "the lines after the bomb, some of the cut file and the one after the hostile line count: {count}"
    );

    let (code, markdown) = plan(&base, &head, &[&bomb, &cut, &inject], "markdown");
    assert_eq!(code, 0, "{markdown}");
    assert!(markdown.contains("api.example.com"), "{markdown}");
    for line in markdown.lines() {
        assert!(
            !line.starts_with("## Approved") && !line.starts_with("[ok]"),
            "a log line made its own Markdown: {line}"
        );
        if line.contains("<img") || line.contains("](https://") {
            let code_span = line
                .strip_prefix("- `")
                .and_then(|rest| rest.strip_suffix('`'))
                .unwrap_or_else(|| panic!("log text outside a code span: {line}"));
            assert!(
                !code_span.contains('`'),
                "the code span was broken out of: {line}"
            );
        }
    }
}
