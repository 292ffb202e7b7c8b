//! `on_change` over a real commit history made with git: which pipelines each change starts,
//! and the reasons the others give.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use slipway_store::Db;

use super::*;

const STEP: &str = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo hi\n";

/// A pipeline file named `name` with `triggers` (YAML lines under `triggers:`, or none).
fn pipeline(name: &str, triggers: &str) -> String {
    let t = if triggers.is_empty() {
        String::new()
    } else {
        format!("triggers:\n{triggers}")
    };
    format!(
        "name: {name}\n{t}stages:\n  - name: build\n    actions:\n      - name: step\n        type: build\n        executor: local\n        buildspec: step.yml\n"
    )
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Writes (or with `None` removes) files and commits them on the current branch.
fn commit(repo: &Path, files: &[(&str, Option<&str>)]) -> String {
    for (p, text) in files {
        let path = repo.join(p);
        match text {
            Some(t) => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, t).unwrap();
            }
            None => std::fs::remove_file(&path).unwrap(),
        }
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "change"]);
    git(repo, &["rev-parse", "HEAD"])
}

struct World {
    _dir: tempfile::TempDir,
    sched: Arc<Scheduler>,
    project: ProjectRow,
    repo: PathBuf,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("work")).unwrap();
    let db = Db::connect(&format!("sqlite:{}", data.join("slipway.db").display()))
        .await
        .unwrap();
    let engine = crate::tests::engine(&data).await;
    let sched = Scheduler::new(Arc::new(db), data, engine, 4);
    let project = sched
        .db
        .create_project("hello", repo.to_str().unwrap(), 1)
        .await
        .unwrap();
    World {
        _dir: dir,
        sched,
        project,
        repo,
    }
}

fn push(git_ref: &str, before: Option<&str>, after: &str) -> Change {
    Change::Push {
        git_ref: git_ref.into(),
        before: before.map(String::from),
        after: after.into(),
        pusher: None,
    }
}

fn pr(action: PullRequestAction, base: &str, base_sha: &str, head: &str, head_sha: &str) -> Change {
    Change::PullRequest {
        action,
        number: 7,
        base_ref: format!("refs/heads/{base}"),
        base_sha: base_sha.into(),
        head_ref: format!("refs/heads/{head}"),
        head_sha: head_sha.into(),
        title: None,
        author: None,
        url: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_start_the_pipelines_whose_triggers_match() {
    let w = world().await;
    let r = &w.repo;
    let a = commit(
        r,
        &[
            (
                ".slipway/pipelines/default.yml",
                Some(&pipeline("default", "")),
            ),
            (
                ".slipway/pipelines/src.yml",
                Some(&pipeline(
                    "src",
                    "  - push:\n      branches: [main, \"feature/**\"]\n      file-paths: { includes: [\"src/**\"], excludes: [\"src/**/*.md\"] }\n",
                )),
            ),
            (
                ".slipway/pipelines/tags.yml",
                Some(&pipeline("tags", "  - push: { tags: [\"v*\"] }\n")),
            ),
            (
                ".slipway/pipelines/pr.yml",
                Some(&pipeline(
                    "pr",
                    "  - pull-request: { events: [opened, updated], branches: [main], file-paths: [\"src/**\"] }\n",
                )),
            ),
            (
                ".slipway/pipelines/nightly.yml",
                Some(&pipeline("nightly", "  - schedule: \"0 3 * * *\"\n")),
            ),
            ("step.yml", Some(STEP)),
            ("src/lib.rs", Some("1")),
            ("docs/a.md", Some("1")),
        ],
    );
    let b = commit(r, &[("docs/a.md", Some("2"))]);
    let c = commit(r, &[("src/lib.rs", Some("2"))]);
    let d = commit(r, &[("src/notes.md", Some("excluded"))]);
    git(r, &["checkout", "-q", "-b", "feature/x", &a]);
    let e = commit(r, &[("src/b.rs", Some("new"))]);
    git(r, &["checkout", "-q", "-b", "feature/docs", &c]);
    let f = commit(r, &[("docs/b.md", Some("new"))]);
    git(r, &["checkout", "-q", "-b", "broken", &c]);
    let broken = commit(
        r,
        &[(".slipway/pipelines/src.yml", Some("name: src\nstages: 3\n"))],
    );
    git(r, &["checkout", "-q", "main"]);
    git(r, &["tag", "v1", &c]);
    let zero = ZERO_SHA;

    use PullRequestAction::*;
    // (what happened, the pipelines it starts, a reason it must give)
    let cases: Vec<(&str, Change, &[&str], &str)> = vec![
        (
            "docs-only push to main",
            push("refs/heads/main", Some(&a), &b),
            &["default"],
            "pipeline src: none of the 1 changed file(s) matches file-paths [src/**] excluding [src/**/*.md]",
        ),
        (
            "source push to main",
            push("refs/heads/main", Some(&b), &c),
            &["default", "src"],
            "pipeline tags: its push filter is for tags only",
        ),
        (
            "a push of an excluded path only",
            push("refs/heads/main", Some(&c), &d),
            &["default"],
            "pipeline src: none of the 1 changed file(s)",
        ),
        (
            "several commits at once",
            push("refs/heads/main", Some(&a), &d),
            &["default", "src"],
            "",
        ),
        (
            "a new branch, changes since main",
            push("refs/heads/feature/x", None, &e),
            &["src"],
            "pipeline default: it has no triggers, so only pushes to the default branch (main) start it",
        ),
        (
            "a new docs branch",
            push("refs/heads/feature/docs", Some(zero), &f),
            &[],
            "pipeline src: none of the 1 changed file(s)",
        ),
        (
            "a branch no filter names",
            push("refs/heads/other", None, &c),
            &[],
            "pipeline src: branch other does not match branches [main, feature/**]",
        ),
        (
            "a tag",
            push("refs/tags/v1", None, &c),
            &["tags"],
            "pipeline src: tag pushes start it only with a `tags` filter",
        ),
        (
            "a deleted branch",
            push("refs/heads/main", Some(&d), zero),
            &[],
            "branch deleted (refs/heads/main): nothing starts",
        ),
        (
            "invalid pipeline files",
            push("refs/heads/broken", Some(&c), &broken),
            &[],
            "have errors",
        ),
        (
            "a pull request opened",
            pr(Opened, "main", &c, "feature/x", &e),
            &["pr"],
            "pipeline default: it has no pull-request trigger",
        ),
        (
            "a pull request closed",
            pr(Closed, "main", &c, "feature/x", &e),
            &[],
            "pipeline pr: event closed is not one of [opened, updated]",
        ),
        (
            "a pull request to another branch",
            pr(Updated, "feature/docs", &f, "feature/x", &e),
            &[],
            "pipeline pr: target branch feature/docs does not match branches [main]",
        ),
        (
            "a pull request changing docs only",
            pr(Updated, "main", &c, "feature/docs", &f),
            &[],
            "pipeline pr: none of the 1 changed file(s)",
        ),
        (
            "the nightly schedule",
            Change::Schedule {
                pipeline: "nightly".into(),
                cron: "0 3 * * *".into(),
            },
            &["nightly"],
            "",
        ),
        (
            "a schedule that is gone",
            Change::Schedule {
                pipeline: "nightly".into(),
                cron: "0 4 * * *".into(),
            },
            &[],
            "pipeline nightly: has no schedule `0 4 * * *` any more",
        ),
    ];
    let mut failures = Vec::new();
    for (what, change, want, reason) in cases {
        let origin = Origin {
            source: "test".into(),
            delivery: None,
        };
        let out = on_change(&w.sched, &w.project, change.clone(), origin)
            .await
            .unwrap_or_else(|e| panic!("{what}: {}", e.message));
        let mut got = Vec::new();
        for name in &out.started {
            let n: u64 = name.rsplit('#').next().unwrap().parse().unwrap();
            let row = w
                .sched
                .db
                .execution(w.project.id, n)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.trigger, "test", "{what}");
            match &change {
                Change::Push { git_ref, .. } => {
                    assert_eq!(row.source_ref.as_deref(), Some(git_ref.as_str()), "{what}")
                }
                Change::PullRequest { head_sha, .. } => {
                    assert_eq!(row.revision.as_deref(), Some(head_sha.as_str()), "{what}")
                }
                Change::Schedule { .. } => {
                    assert_eq!(row.source_ref.as_deref(), Some("refs/heads/main"), "{what}")
                }
            }
            got.push(row.pipeline);
        }
        got.sort();
        let reasons = out.skipped.join("\n");
        if got != want || !reasons.contains(reason) {
            failures.push(format!(
                "{what}: started {got:?}, want {want:?}; reasons:\n  {}\n  (want one containing {reason:?})",
                out.skipped.join("\n  ")
            ));
        }
    }
    w.sched.shutdown(Duration::from_secs(10)).await;
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_push_to_an_empty_default_branch_counts_every_file_as_changed() {
    let w = world().await;
    let a = commit(
        &w.repo,
        &[
            (
                ".slipway/pipeline.yml",
                Some(&pipeline("src", "  - push: { file-paths: [\"src/**\"] }\n")),
            ),
            ("step.yml", Some(STEP)),
            ("src/lib.rs", Some("1")),
        ],
    );
    let origin = Origin {
        source: "push".into(),
        delivery: None,
    };
    let out = on_change(
        &w.sched,
        &w.project,
        push("refs/heads/main", None, &a),
        origin,
    )
    .await
    .unwrap();
    assert_eq!(out.started, vec!["hello#1"], "{:?}", out.skipped);
    w.sched.shutdown(Duration::from_secs(10)).await;
}
