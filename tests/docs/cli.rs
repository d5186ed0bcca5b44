//! `docs/cli.md` against the binary's own `--help`: each command's help text appears verbatim,
//! every subcommand and flag has a row, and every documented one exists.

use std::collections::BTreeSet;
use std::process::Command;

use super::markdown::{fenced_blocks, keyed_rows};
use super::{assert_same, doc, repo};

/// The binary's name as the docs write it.
const BINARY: &str = "egress-gateway";

/// `egress-gateway ARGS`'s stdout; the command must succeed.
fn output(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(args)
        .output()
        .expect("run egress-gateway");
    assert!(out.status.success(), "egress-gateway {args:?} failed");
    String::from_utf8(out.stdout).expect("utf-8 help")
}

/// Subcommand names listed under `Commands:` in the top-level help (clap's own `help` left out).
fn subcommands(top_help: &str) -> Vec<String> {
    top_help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect()
}

/// Long flags on the option lines of a help text.
fn flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| {
            let names = l.split("  ").next().unwrap_or_default();
            names
                .split([' ', ','])
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_cli_reference_says_what_help_says() {
    let text = doc("cli.md");
    let path = repo().join("docs/cli.md");
    let top = output(&["--help"]);
    let mut commands = vec![(format!("$ {BINARY} --help"), top.clone())];
    for sub in subcommands(&top) {
        let help = output(&[&sub, "--help"]);
        commands.push((format!("$ {BINARY} {sub} --help"), help));
    }
    let blocks: Vec<(String, String)> = fenced_blocks(&text)
        .into_iter()
        .filter_map(|(_, body)| {
            let (first, rest) = body.split_once('\n')?;
            first
                .starts_with(&format!("$ {BINARY}"))
                .then(|| (first.to_owned(), rest.to_owned()))
        })
        .collect();
    let code: BTreeSet<String> = commands.iter().map(|(c, _)| c.clone()).collect();
    let documented: BTreeSet<String> = blocks.iter().map(|(c, _)| c.clone()).collect();
    assert_same("help texts", &path, &code, &documented);
    for (command, help) in &commands {
        let (_, shown) = blocks.iter().find(|(c, _)| c == command).expect("checked");
        assert_eq!(
            shown.trim_end(),
            help.trim_end(),
            "docs/cli.md: the block for `{command}` is not what the binary prints"
        );
    }

    let all_flags: BTreeSet<String> = commands.iter().flat_map(|(_, h)| flags(h)).collect();
    let documented: BTreeSet<String> = keyed_rows(&text)
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.starts_with("--"))
        .collect();
    assert_same("CLI flags", &path, &all_flags, &documented);
    let subs: BTreeSet<String> = subcommands(&top).into_iter().collect();
    let documented: BTreeSet<String> = keyed_rows(&text)
        .into_iter()
        .filter_map(|(key, _)| key.strip_prefix(&format!("{BINARY} ")).map(str::to_owned))
        .collect();
    assert_same("CLI subcommands", &path, &subs, &documented);
}
