//! Hosted repositories with the real git client against the real server: clone, push (which
//! starts pipelines as their triggers say), shallow clones, fetch by commit id, protocol v2;
//! and polling a project's repository.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::server_support::TestServer;
use super::support::*;

const STEP: &str = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo \"built $CODEBUILD_RESOLVED_SOURCE_VERSION\"\n";

fn pipeline(triggers: &str) -> String {
    format!(
        "name: hello\ntriggers:\n{triggers}stages:\n  - name: build\n    actions:\n      - name: step\n        type: build\n        executor: local\n        buildspec: step.yml\n"
    )
}

/// git with an identity, failing the test when it fails; its stdout and stderr.
fn git_ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .envs(env.iter().copied())
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "git {args:?}\n{o}\n{e}");
    (o, e)
}

fn commit_all(dir: &Path, files: &[(&str, &str)]) -> String {
    for (p, text) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    git_ok(dir, &["add", "-A"], &[]);
    git_ok(dir, &["commit", "-q", "-m", "change"], &[]);
    git_ok(dir, &["rev-parse", "HEAD"], &[]).0
}

fn ok(server: &TestServer, args: &[&str]) -> Run {
    let r = server.slipway(args);
    assert_eq!(
        r.code,
        0,
        "slipway {args:?}\n{}\n--- server\n{}",
        r.explain(),
        server.log()
    );
    r
}

/// The project's executions, oldest first.
fn executions(server: &TestServer, project: &str) -> Vec<Value> {
    let r = ok(server, &["execution", "ls", project, "--json"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let mut items = v["items"].as_array().unwrap().clone();
    items.reverse();
    items
}

/// Waits (at most `limit`) until the project has `n` executions; returns them.
fn wait_for_count(server: &TestServer, project: &str, n: usize, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let items = executions(server, project);
        if items.len() >= n {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "{project}: {} execution(s) after {limit:?}, want {n}: {items:#?}\n--- server\n{}",
            items.len(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A hosted project `hello`: its clone URL.
fn hosted(server: &TestServer) -> String {
    let r = ok(server, &["project", "create", "hello"]);
    let url = format!("{}/git/hello.git", server.url);
    assert!(r.stdout.contains(&url), "{}", r.explain());
    let show = ok(server, &["project", "show", "hello"]);
    assert!(
        show.stdout.contains(&format!("clone       {url}")),
        "{}",
        show.explain()
    );
    url
}

#[test]
fn a_push_starts_the_pipelines_its_triggers_match_at_the_pushed_commit() {
    let s = Scratch::new();
    let server = TestServer::start(&s.data());
    let url = hosted(&server);
    let work = s.path().join("work");
    let (_, err) = git_ok(s.path(), &["clone", &url, "work"], &[]);
    assert!(err.contains("empty repository"), "{err}");
    let triggers = "  - push:\n      branches: [main]\n      file-paths: { excludes: [\"docs/**\"] }\n  - push: { tags: [\"v*\"] }\n";
    let first = commit_all(
        &work,
        &[
            (".slipway/pipeline.yml", &pipeline(triggers)),
            ("step.yml", STEP),
        ],
    );
    git_ok(&work, &["push", "-q", "origin", "main"], &[]);
    let items = wait_for_count(&server, "hello", 1, Duration::from_secs(30));
    assert_eq!(items[0]["revision"], first.as_str(), "{:#}", items[0]);
    assert_eq!(items[0]["trigger"], "push");
    assert_eq!(items[0]["source_ref"], "refs/heads/main");

    // A branch the filter does not name, and a change only to an excluded path: nothing.
    git_ok(&work, &["checkout", "-q", "-b", "wip"], &[]);
    commit_all(&work, &[("src/a.rs", "1")]);
    git_ok(&work, &["push", "-q", "origin", "wip"], &[]);
    git_ok(&work, &["checkout", "-q", "main"], &[]);
    commit_all(&work, &[("docs/guide.md", "words")]);
    git_ok(&work, &["push", "-q", "origin", "main"], &[]);
    // A tag does start it; being evaluated after the pushes above (one project's refs are
    // handed on in order), it is the second execution only if they started nothing.
    git_ok(&work, &["tag", "v1.0"], &[]);
    git_ok(&work, &["push", "-q", "origin", "v1.0"], &[]);
    let items = wait_for_count(&server, "hello", 2, Duration::from_secs(30));
    assert_eq!(items[1]["source_ref"], "refs/tags/v1.0", "{items:#?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(executions(&server, "hello").len(), 2);
    // A deleted branch starts nothing; the execution ran the pushed commit.
    git_ok(&work, &["push", "-q", "origin", ":wip"], &[]);
    let log = ok(&server, &["logs", "hello#1"]);
    assert!(
        log.stdout.contains(&format!("built {first}")),
        "{}",
        log.explain()
    );
}

#[test]
fn hosted_repositories_serve_shallow_clones_fetch_by_commit_and_protocol_v2() {
    let s = Scratch::new();
    let server = TestServer::start(&s.data());
    let url = hosted(&server);
    let work = s.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git_ok(&work, &["init", "-q", "-b", "main"], &[]);
    git_ok(&work, &["remote", "add", "origin", &url], &[]);
    let first = commit_all(&work, &[("a.txt", "1")]);
    // A few MiB that do not compress: the pack streams through the server both ways.
    let noise: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(work.join("noise.bin"), &noise).unwrap();
    let second = commit_all(&work, &[("a.txt", "2")]);
    git_ok(&work, &["push", "-q", "origin", "main"], &[]);

    let (_, trace) = git_ok(
        s.path(),
        &["-c", "protocol.version=2", "ls-remote", &url],
        &[("GIT_TRACE_PACKET", "1")],
    );
    assert!(trace.contains("version 2"), "no protocol v2 in:\n{trace}");
    git_ok(
        s.path(),
        &[
            "-c",
            "protocol.version=2",
            "clone",
            "-q",
            "--depth",
            "1",
            &url,
            "shallow",
        ],
        &[],
    );
    let shallow = s.path().join("shallow");
    assert_eq!(
        git_ok(&shallow, &["rev-list", "--count", "HEAD"], &[]).0,
        "1"
    );
    assert_eq!(git_ok(&shallow, &["rev-parse", "HEAD"], &[]).0, second);
    assert_eq!(std::fs::read(shallow.join("noise.bin")).unwrap(), noise);
    // What a runner does: fetch one commit by its id, shallow, into an empty repository.
    let runner = s.path().join("runner");
    std::fs::create_dir_all(&runner).unwrap();
    git_ok(&runner, &["init", "-q"], &[]);
    git_ok(&runner, &["fetch", "-q", "--depth", "1", &url, &first], &[]);
    assert_eq!(git_ok(&runner, &["rev-parse", "FETCH_HEAD"], &[]).0, first);
    // A partial clone (blobs fetched on demand).
    git_ok(
        s.path(),
        &["clone", "-q", "--filter=blob:none", &url, "partial"],
        &[],
    );
    let partial = s.path().join("partial");
    assert_eq!(
        git_ok(
            &partial,
            &["config", "remote.origin.partialclonefilter"],
            &[]
        )
        .0,
        "blob:none"
    );
    assert_eq!(std::fs::read(partial.join("a.txt")).unwrap(), b"2");
    // The old protocol too.
    git_ok(
        s.path(),
        &["-c", "protocol.version=0", "clone", "-q", &url, "full"],
        &[],
    );
    assert_eq!(
        git_ok(
            &s.path().join("full"),
            &["rev-list", "--count", "HEAD"],
            &[]
        )
        .0,
        "2"
    );
    // No such repository: 404, and git says so.
    let out = Command::new("git")
        .args(["ls-remote", &format!("{}/git/nope.git", server.url)])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The repository has no pipeline file: the pushes started nothing, and said why.
    assert!(executions(&server, "hello").is_empty());
}

#[test]
fn polling_a_local_repository_starts_on_a_new_commit() {
    let s = Scratch::new();
    let repo = s.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git_ok(&repo, &["init", "-q", "-b", "main"], &[]);
    // No triggers: pushes (here, new commits) to the default branch start it.
    commit_all(
        &repo,
        &[
            (
                ".slipway/pipeline.yml",
                &pipeline("").replace("triggers:\n", ""),
            ),
            ("step.yml", STEP),
        ],
    );
    let server = TestServer::start(&s.data());
    ok(
        &server,
        &[
            "project",
            "create",
            "hello",
            "--git",
            repo.to_str().unwrap(),
        ],
    );
    let show = ok(&server, &["project", "show", "hello"]);
    assert!(show.stdout.contains("polling     1m"), "{}", show.explain());
    ok(
        &server,
        &["project", "set", "hello", "--poll-interval", "1s"],
    );
    let show = ok(&server, &["project", "show", "hello"]);
    assert!(show.stdout.contains("polling     1s"), "{}", show.explain());
    // The first poll only records the refs.
    std::thread::sleep(Duration::from_secs(3));
    assert!(executions(&server, "hello").is_empty());
    let next = commit_all(&repo, &[("src/a.rs", "1")]);
    let items = wait_for_count(&server, "hello", 1, Duration::from_secs(10));
    assert_eq!(items[0]["revision"], next.as_str());
    assert_eq!(items[0]["trigger"], "poll");
    assert_eq!(items[0]["source_ref"], "refs/heads/main");
    // Off: new commits are not picked up.
    ok(
        &server,
        &["project", "set", "hello", "--poll-interval", "off"],
    );
    commit_all(&repo, &[("src/a.rs", "2")]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(executions(&server, "hello").len(), 1);
}

#[test]
fn a_backup_carries_hosted_repositories_to_a_new_data_directory() {
    let s = Scratch::new();
    let mut server = TestServer::start(&s.data());
    let url = hosted(&server);
    let work = s.path().join("work");
    git_ok(
        s.path(),
        &["clone", "-q", &url, work.to_str().unwrap()],
        &[],
    );
    let sha = commit_all(
        &work,
        &[
            (".slipway/pipeline.yml", &pipeline("")),
            (
                "step.yml",
                "version: 0.2\nphases:\n  build:\n    commands:\n      - echo restored\n",
            ),
        ],
    );
    git_ok(&work, &["push", "-q", "origin", "HEAD:main"], &[]);
    wait_for_count(&server, "hello", 1, Duration::from_secs(30));
    let file = s.path().join("backup.tar");
    ok(&server, &["backup", file.to_str().unwrap()]);
    server.stop();

    let data2 = s.path().join("data2");
    let r = super::server_support::run_with_deadline(
        {
            let mut c = Command::new(bin());
            c.args([
                "--data",
                data2.to_str().unwrap(),
                "restore",
                file.to_str().unwrap(),
            ]);
            c
        },
        Duration::from_secs(120),
    );
    assert_eq!(r.code, 0, "{}", r.explain());
    // The restored server serves the repository from its own data directory.
    let restored = TestServer::start(&data2);
    let show = ok(&restored, &["project", "show", "hello", "--json"]);
    let v: Value = serde_json::from_str(&show.stdout).unwrap();
    let git = v["git"].as_str().unwrap();
    assert!(git.starts_with(data2.to_str().unwrap()), "{git}");
    let url2 = format!("{}/git/hello.git", restored.url);
    let (head, _) = git_ok(s.path(), &["ls-remote", &url2, "refs/heads/main"], &[]);
    assert!(head.starts_with(&sha), "{head}");
    let r = ok(&restored, &["pipeline", "start", "hello", "--follow"]);
    assert!(r.stdout.contains("restored"), "{}", r.explain());
}
