//! The worked GitOps example (`deploy/examples/gitops/github-actions.yaml`) run as GitHub would
//! run it, on a real git repository holding the example config: every `run:` step in order with
//! the workflow's and the step's environment, `${{ … }}` values filled in as GitHub fills them,
//! a `gh` on `PATH` that records the comment instead of posting it, and the job stopping at the
//! first failing step. Only the step that pulls the image is left out: the binary under test is
//! put on `PATH` instead.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

const WORKFLOW: &str = "deploy/examples/gitops/github-actions.yaml";
const PULL_REQUEST: &str = "7";

/// A repository with the example config on `main` (also as `origin/main`) and a branch `pr`.
struct Repository {
    dir: tempfile::TempDir,
}

impl Repository {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("repo dir");
        let repo = Self { dir };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
            &repo.path().join("egress"),
        );
        repo.commit("the cluster's allowlists");
        repo.git(&["update-ref", "refs/remotes/origin/main", "HEAD"]);
        repo.git(&["checkout", "--quiet", "-b", "pr"]);
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) {
        let status = Command::new("git")
            .args(["-c", "user.name=ci", "-c", "user.email=ci@example.com"])
            .args(args)
            .current_dir(self.path())
            .status()
            .expect("git");
        assert!(status.success(), "git {args:?}");
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
    }

    fn write(&self, relative: &str, content: &str) {
        let path = self.path().join("egress/serviceentries").join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// What one run of the job did.
struct JobRun {
    /// `(step name, exit code)` of every step that ran, in order.
    steps: Vec<(String, i32)>,
    /// The comment `gh` was asked to post, if any.
    comment: Option<String>,
    /// Everything the steps printed (stderr, then stdout, per step).
    log: String,
}

/// Runs the workflow's `plan` job in `repo` for a pull request carrying `labels`.
fn run_job(repo: &Repository, labels: &[&str]) -> JobRun {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workflow: Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join(WORKFLOW)).expect("workflow"))
            .expect("workflow parses");
    let runner = tempfile::tempdir().expect("runner temp");
    let bin = runner.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_egress-gateway"),
        bin.join("egress-gateway"),
    )
    .expect("link the binary");
    let comment_file = runner.path().join("comment.md");
    fake_gh(&bin.join("gh"), &comment_file);
    let output_file = runner.path().join("github_output");
    std::fs::write(&output_file, "").expect("output file");

    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.extend(strings(&workflow["env"]));
    env.insert(
        "RUNNER_TEMP".into(),
        runner.path().join("work").display().to_string(),
    );
    std::fs::create_dir_all(runner.path().join("work")).expect("work");
    env.insert("GITHUB_BASE_REF".into(), "main".into());
    env.insert("GITHUB_OUTPUT".into(), output_file.display().to_string());
    env.insert(
        "GITHUB_PATH".into(),
        runner.path().join("github_path").display().to_string(),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.insert("PATH".into(), path);

    let steps = workflow["jobs"]["plan"]["steps"]
        .as_sequence()
        .expect("steps");
    let mut run = JobRun {
        steps: Vec::new(),
        comment: None,
        log: String::new(),
    };
    for step in steps {
        let (Some(name), Some(script)) = (step["name"].as_str(), step["run"].as_str()) else {
            continue;
        };
        if name == "Install egress-gateway" || skipped_by_labels(step, labels) {
            continue;
        }
        let outputs = read_outputs(&output_file);
        let mut step_env = env.clone();
        for (key, value) in strings(&step["env"]) {
            step_env.insert(key, expression(&value, &outputs));
        }
        let output = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .env_clear()
            .envs(&step_env)
            .current_dir(repo.path())
            .output()
            .expect("run step");
        let code = output.status.code().unwrap_or(-1);
        run.log.push_str(&String::from_utf8_lossy(&output.stderr));
        run.log.push_str(&String::from_utf8_lossy(&output.stdout));
        run.steps.push((name.to_owned(), code));
        if code != 0 {
            break;
        }
    }
    run.comment = std::fs::read_to_string(&comment_file).ok();
    run
}

/// A `gh` that has no earlier comment to edit and records the new comment's body.
fn fake_gh(path: &PathBuf, comment_file: &Path) {
    let script = format!(
        "#!/bin/sh\n[ \"$1 $2 $3\" = \"pr comment {PULL_REQUEST}\" ] || exit 2\nfor arg in \"$@\"; do [ \"$arg\" = --edit-last ] && exit 1; done\n[ \"$4\" = --body-file ] || exit 2\ncp \"$5\" {}\n",
        comment_file.display()
    );
    std::fs::write(path, script).expect("gh");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod gh");
}

fn strings(map: &Value) -> Vec<(String, String)> {
    map.as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect()
}

/// Fills in the `${{ … }}` values the workflow uses, as GitHub would for pull request 7.
fn expression(value: &str, outputs: &BTreeMap<String, String>) -> String {
    match value.trim() {
        "${{ github.token }}" => "token-for-the-test".into(),
        "${{ github.event.pull_request.number }}" => PULL_REQUEST.into(),
        "${{ steps.plan.outputs.status }}" => outputs.get("status").cloned().unwrap_or_default(),
        other => {
            assert!(
                !other.contains("${{"),
                "an expression the test does not know: {other}"
            );
            other.to_owned()
        }
    }
}

/// The only `if:` in the workflow: the gate is skipped once the risk is accepted by label.
fn skipped_by_labels(step: &Value, labels: &[&str]) -> bool {
    match step["if"].as_str() {
        None => false,
        Some(condition) => {
            assert!(
                condition.contains(
                    "!contains(github.event.pull_request.labels.*.name, 'egress-risk-accepted')"
                ),
                "an `if:` the test does not know: {condition}"
            );
            labels.contains(&"egress-risk-accepted")
        }
    }
}

fn read_outputs(file: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn step_codes(run: &JobRun) -> Vec<(&str, i32)> {
    run.steps.iter().map(|(n, c)| (n.as_str(), *c)).collect()
}

#[test]
fn a_risky_pull_request_gets_its_plan_as_a_comment_and_fails_until_the_risk_is_accepted() {
    let repo = Repository::new();
    // A new wildcard for app1, a closed database port, and a renamed file that changes nothing.
    repo.write(
        "app1/raw-content.yaml",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: raw-content}\nspec:\n  hosts: [\"*.githubusercontent.com\"]\n  ports:\n    - {number: 443, name: tls, protocol: TLS}\n  resolution: NONE\n",
    );
    std::fs::remove_file(repo.path().join("egress/serviceentries/app1/database.yaml"))
        .expect("remove");
    std::fs::rename(
        repo.path().join("egress/serviceentries/app2/packages.yaml"),
        repo.path().join("egress/serviceentries/app2/mirrors.yaml"),
    )
    .expect("rename");
    repo.commit("app1 reads raw GitHub content; the orders database moved");

    let run = run_job(&repo, &[]);
    assert_eq!(
        step_codes(&run),
        [
            ("Check the pull request's tree", 0),
            ("Plan against the base branch", 0),
            ("Post the plan", 0),
            ("Fail while a risk is not accepted", 1),
        ],
        "{}",
        run.log
    );
    let comment = run.comment.expect("a comment was posted");
    assert!(comment.starts_with("## Egress allowlist plan"), "{comment}");
    assert!(comment.contains("*.githubusercontent.com"), "{comment}");
    assert!(comment.contains("orders-db.example.net"), "{comment}");
    assert!(comment.to_lowercase().contains("wildcard"), "{comment}");
    assert!(
        !comment.contains("app2"),
        "a rename is no change: {comment}"
    );
    assert!(run.log.contains("egress-risk-accepted"), "{}", run.log);

    let accepted = run_job(&repo, &["egress-risk-accepted"]);
    assert_eq!(
        step_codes(&accepted),
        [
            ("Check the pull request's tree", 0),
            ("Plan against the base branch", 0),
            ("Post the plan", 0),
        ],
        "{}",
        accepted.log
    );
}

#[test]
fn an_invalid_tree_stops_the_job_at_check_with_the_file_and_line() {
    let repo = Repository::new();
    repo.write(
        "app1/broken.yaml",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: broken}\nspec:\n  hosts: [\"api.example.com\"]\n  ports:\n    - {number: 99999, name: https, protocol: TLS}\n",
    );
    repo.commit("a typo");
    let run = run_job(&repo, &[]);
    assert_eq!(
        step_codes(&run),
        [("Check the pull request's tree", 1)],
        "{}",
        run.log
    );
    assert!(
        run.log
            .contains("egress/serviceentries/app1/broken.yaml:7:"),
        "{}",
        run.log
    );
    assert!(run.comment.is_none());
}
