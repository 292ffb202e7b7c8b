//! The client verbs against a real `slipway server`: projects, starting and following
//! executions, approvals, cancel, retry, rerun, backup and restore. Builds run on the local
//! executor, so these tests need git but no Docker engine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::server_support::TestServer;
use super::support::*;

const GREET: &str = "name: hello
variables:
  - { name: GREETING, default: hi }
stages:
  - name: build
    actions:
      - name: greet
        type: build
        executor: local
        buildspec: greet.yml
        env: { GREETING: \"#{variables.GREETING}\" }
";

const GREET_YML: &str = "version: 0.2
phases:
  build:
    commands:
      - echo hello from slipway
      - echo \"greeting=$GREETING\"
";

/// A one-action pipeline whose buildspec runs `commands`.
fn one_build(commands: &[&str]) -> Vec<(&'static str, String)> {
    let mut yml = String::from("version: 0.2\nphases:\n  build:\n    commands:\n");
    for c in commands {
        yml.push_str(&format!("      - {c}\n"));
    }
    vec![
        (
            ".slipway/pipeline.yml",
            "name: hello\nstages:\n  - name: build\n    actions:\n      - name: step\n        type: build\n        executor: local\n        buildspec: step.yml\n".to_string(),
        ),
        ("step.yml", yml),
    ]
}

/// `<scratch>/repo` as a git repository with one commit of `files`.
fn git_repo(s: &Scratch, files: &[(&str, String)]) -> PathBuf {
    for (path, text) in files {
        s.write(&format!("repo/{path}"), text);
    }
    let repo = s.path().join("repo");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "pipeline"]);
    repo
}

/// A server over `<scratch>/data` with project `hello` on `files`.
fn server_with(s: &Scratch, files: &[(&str, String)]) -> TestServer {
    let repo = git_repo(s, files);
    let server = TestServer::start(&s.data());
    let r = server.slipway(&[
        "project",
        "create",
        "hello",
        "--git",
        repo.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}\n--- server\n{}", r.explain(), server.log());
    server
}

fn greet_files() -> Vec<(&'static str, String)> {
    vec![
        (".slipway/pipeline.yml", GREET.to_string()),
        ("greet.yml", GREET_YML.to_string()),
    ]
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

/// `pipeline start hello`: the execution's name from `started hello#N`.
fn start(server: &TestServer) -> String {
    let r = ok(server, &["pipeline", "start", "hello"]);
    let line = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("started "))
        .unwrap_or_else(|| panic!("no `started` line\n{}", r.explain()));
    line.split_whitespace().next().unwrap().to_string()
}

fn show_json(server: &TestServer, execution: &str) -> Value {
    let r = ok(server, &["execution", "show", execution, "--json"]);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{}", r.explain()))
}

/// Polls `execution show --json` until `done` holds (at most 60 s).
fn wait_for(
    server: &TestServer,
    execution: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = show_json(server, execution);
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{execution}: still not {what} after 60 s: {v:#}\n--- server\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn waiting_approval(v: &Value) -> bool {
    v["approvals"]
        .as_array()
        .is_some_and(|a| a.iter().any(|a| a["status"] == "waiting"))
}

#[test]
fn projects_are_created_listed_and_shown_and_a_duplicate_is_refused() {
    let s = Scratch::new();
    let repo = git_repo(&s, &greet_files());
    let server = TestServer::start(&s.data());

    // A relative local path is sent as an absolute one.
    let r = server.slipway_in(
        Some(s.path()),
        &["project", "create", "hello", "--git", "repo"],
    );
    assert_eq!(r.code, 0, "{}", r.explain());
    assert!(
        r.stdout.contains("created project hello"),
        "{}",
        r.explain()
    );

    let dup = server.slipway(&[
        "project",
        "create",
        "hello",
        "--git",
        repo.to_str().unwrap(),
    ]);
    assert_eq!(dup.code, 2, "{}", dup.explain());
    assert!(dup.stderr.starts_with("error: "), "{}", dup.explain());

    let ls = ok(&server, &["project", "ls"]);
    let repo_abs = repo.canonicalize().unwrap().display().to_string();
    assert!(ls.stdout.starts_with("NAME"), "{}", ls.explain());
    assert!(ls.stdout.contains("hello"), "{}", ls.explain());
    assert!(ls.stdout.contains(&repo_abs), "{}", ls.explain());

    let json: Value =
        serde_json::from_str(&ok(&server, &["project", "ls", "--json"]).stdout).unwrap();
    assert_eq!(json["items"][0]["name"], "hello");
    assert_eq!(json["items"][0]["git"], repo_abs.as_str());

    let show = ok(&server, &["project", "show", "hello"]);
    assert!(show.stdout.contains(&repo_abs), "{}", show.explain());

    let missing = server.slipway(&["project", "show", "nope"]);
    assert_eq!(missing.code, 2, "{}", missing.explain());
}

#[test]
fn a_started_pipeline_is_followed_to_its_end_with_its_log_lines() {
    let s = Scratch::new();
    let server = server_with(&s, &greet_files());

    let r = ok(
        &server,
        &["pipeline", "start", "hello", "--var", "GREETING=bonjour"],
    );
    assert!(r.stdout.contains("started hello#1"), "{}", r.explain());
    assert!(
        r.stdout.contains("slipway logs -f hello#1"),
        "{}",
        r.explain()
    );

    let f = ok(&server, &["logs", "-f", "hello#1"]);
    assert!(
        f.stdout.contains("[greet] hello from slipway"),
        "{}",
        f.explain()
    );
    assert!(
        f.stdout.contains("[greet] greeting=bonjour"),
        "{}",
        f.explain()
    );
    assert!(
        f.stdout.contains("==> hello#1 succeeded"),
        "{}",
        f.explain()
    );

    // Stored, not followed; a bare project is its latest execution.
    let stored = ok(&server, &["logs", "hello"]);
    assert!(
        stored.stdout.contains("[greet] hello from slipway"),
        "{}",
        stored.explain()
    );

    // The stored log, unprefixed.
    let raw = ok(&server, &["logs", "hello#1", "--action", "greet", "--raw"]);
    assert!(
        raw.stdout.contains("hello from slipway"),
        "{}",
        raw.explain()
    );
    assert!(!raw.stdout.contains("[greet]"), "{}", raw.explain());

    // Events as JSON lines, ending with the execution's end.
    let json = ok(&server, &["logs", "hello#1", "--json"]);
    let last: Value = serde_json::from_str(json.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "execution_finished", "{}", json.explain());

    // `--follow` on start: the default variable this time.
    let f2 = ok(&server, &["pipeline", "start", "hello", "--follow"]);
    assert!(f2.stdout.contains("started hello#2"), "{}", f2.explain());
    assert!(
        f2.stdout.contains("[greet] greeting=hi"),
        "{}",
        f2.explain()
    );

    let ls = ok(&server, &["execution", "ls", "hello"]);
    let rows: Vec<&str> = ls.stdout.lines().collect();
    assert!(rows[0].starts_with("EXECUTION"), "{}", ls.explain());
    assert!(
        rows[1].starts_with("hello#2") && rows[1].contains("succeeded"),
        "{}",
        ls.explain()
    );
    assert!(
        rows[2].starts_with("hello#1") && rows[2].contains("cli"),
        "{}",
        ls.explain()
    );

    let one = ok(
        &server,
        &["execution", "ls", "hello", "--limit", "1", "--json"],
    );
    let v: Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{}", one.explain());
    assert_eq!(v["items"][0]["number"], 2);

    let show = ok(&server, &["execution", "show", "hello#1"]);
    assert!(
        show.stdout.starts_with("hello#1  succeeded"),
        "{}",
        show.explain()
    );
    assert!(
        show.stdout.contains("GREETING=bonjour"),
        "{}",
        show.explain()
    );
    assert!(
        show.stdout
            .lines()
            .any(|l| l.starts_with("build") && l.contains("greet") && l.contains("succeeded")),
        "{}",
        show.explain()
    );
}

#[test]
fn a_failing_build_makes_follow_exit_1() {
    let s = Scratch::new();
    let server = server_with(&s, &one_build(&["echo about to fail", "exit 3"]));
    let r = server.slipway(&["pipeline", "start", "hello", "--follow"]);
    assert_eq!(r.code, 1, "{}", r.explain());
    assert!(r.stdout.contains("[step] about to fail"), "{}", r.explain());
    assert!(r.stdout.contains("==> hello#1 failed"), "{}", r.explain());
    // Without -f, logs exit 0 whatever the result.
    ok(&server, &["logs", "hello#1"]);
    let v = show_json(&server, "hello#1");
    assert_eq!(v["status"], "failed");
}

#[test]
fn an_invalid_pipeline_is_refused_with_its_problems() {
    let s = Scratch::new();
    let server = server_with(
        &s,
        &[(
            ".slipway/pipeline.yml",
            "name: hello\nstages:\n  - name: build\n    actions:\n      - name: x\n        type: bulid\n".to_string(),
        )],
    );
    let r = server.slipway(&["pipeline", "start", "hello"]);
    assert_eq!(r.code, 2, "{}", r.explain());
    assert!(r.stderr.contains("pipeline.yml:"), "{}", r.explain());
}

const APPROVAL: &str = "name: hello
stages:
  - name: build
    actions:
      - { name: greet, type: build, executor: local, buildspec: greet.yml }
  - name: gate
    actions:
      - { name: ok, type: approval, message: Ship it? }
  - name: ship
    actions:
      - { name: deploy, type: build, executor: local, buildspec: ship.yml }
";

fn approval_files() -> Vec<(&'static str, String)> {
    vec![
        (".slipway/pipeline.yml", APPROVAL.to_string()),
        ("greet.yml", GREET_YML.to_string()),
        (
            "ship.yml",
            "version: 0.2\nphases:\n  build:\n    commands: [echo shipped]\n".to_string(),
        ),
    ]
}

#[test]
fn an_approved_execution_goes_on_and_succeeds() {
    let s = Scratch::new();
    let server = server_with(&s, &approval_files());
    let e = start(&server);
    wait_for(&server, &e, "waiting for approval", waiting_approval);

    let show = ok(&server, &["execution", "show", &e]);
    assert!(
        show.stdout
            .contains("waiting for approval: gate/ok: Ship it?"),
        "{}",
        show.explain()
    );
    assert!(
        show.stdout.contains(&format!("slipway approve {e}")),
        "{}",
        show.explain()
    );

    let a = ok(&server, &["approve", &e, "--comment", "lgtm"]);
    assert!(
        a.stdout.contains("approved hello#1 gate/ok (by tester)"),
        "{}",
        a.explain()
    );

    let f = ok(&server, &["logs", "-f", &e]);
    assert!(f.stdout.contains("[deploy] shipped"), "{}", f.explain());
    assert!(
        f.stdout.contains("[ok] approved by tester: lgtm"),
        "{}",
        f.explain()
    );

    // Nothing waits any more: the server's conflict is a usage error.
    let again = server.slipway(&["approve", &e]);
    assert_eq!(again.code, 2, "{}", again.explain());
}

#[test]
fn a_rejected_execution_fails() {
    let s = Scratch::new();
    let server = server_with(&s, &approval_files());
    let e = start(&server);
    wait_for(&server, &e, "waiting for approval", waiting_approval);
    let r = ok(
        &server,
        &[
            "reject",
            &e,
            "--action",
            "gate/ok",
            "--comment",
            "not today",
        ],
    );
    assert!(
        r.stdout.contains("rejected hello#1 gate/ok"),
        "{}",
        r.explain()
    );
    let f = server.slipway(&["logs", "-f", &e]);
    assert_eq!(f.code, 1, "{}", f.explain());
    assert!(!f.stdout.contains("[deploy] shipped"), "{}", f.explain());
    let v = show_json(&server, &e);
    assert_eq!(v["status"], "failed", "{v:#}");
}

#[test]
fn a_cancelled_long_build_stops_quickly() {
    let s = Scratch::new();
    let server = server_with(&s, &one_build(&["echo sleeping", "sleep 30"]));
    let e = start(&server);
    wait_for(&server, &e, "running its build", |v| {
        v["actions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["status"] == "running"))
    });
    let t = Instant::now();
    let c = ok(&server, &["execution", "cancel", &e]);
    assert!(c.stdout.contains("hello#1"), "{}", c.explain());
    let f = server.slipway(&["logs", "-f", &e]);
    assert_eq!(f.code, 1, "{}", f.explain());
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "cancelling took {:?}",
        t.elapsed()
    );
    let v = show_json(&server, &e);
    assert_eq!(v["status"], "cancelled", "{v:#}");
}

#[test]
fn following_picks_up_after_the_server_was_killed_and_restarted() {
    let s = Scratch::new();
    let mut server = server_with(&s, &one_build(&["echo one", "sleep 3", "echo two"]));
    let e = start(&server);
    let follow = server.background(&["logs", "-f", &e, "--json"]);
    wait_for(&server, &e, "running its build", |v| {
        v["actions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["status"] == "running"))
    });
    let addr = server.addr();
    server.kill();
    std::thread::sleep(Duration::from_millis(500));
    let restarted = TestServer::start_on(&s.data(), &addr);
    let f = follow.join().unwrap();
    let v = show_json(&restarted, &e);
    assert!(v["status"] != "running", "{v:#}\n{}", f.explain());
    let code = if v["status"] == "succeeded" { 0 } else { 1 };
    assert_eq!(f.code, code, "{}", f.explain());
    assert!(
        f.stderr.contains("reconnecting after event"),
        "{}",
        f.explain()
    );
    // Every event once, in order, with none missing across the reconnection.
    let seqs: Vec<u64> = f
        .events()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let all: Vec<u64> = (1..=v["last_seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, all, "{}", f.explain());
    assert!(
        f.of_type("log").iter().any(|l| l["text"] == "one\n"),
        "{}",
        f.explain()
    );
}

#[test]
fn a_retry_that_changes_nothing_fails_again_on_attempt_2() {
    let s = Scratch::new();
    let server = server_with(&s, &one_build(&["exit 1"]));
    let e = start(&server);
    let f = server.slipway(&["logs", "-f", &e]);
    assert_eq!(f.code, 1, "{}", f.explain());

    let r = server.slipway(&["execution", "retry", &e, "--follow"]);
    assert_eq!(r.code, 1, "{}", r.explain());
    let v = show_json(&server, &e);
    assert_eq!(v["status"], "failed", "{v:#}");
    assert_eq!(v["number"], 1, "a retry keeps the number");
    assert_eq!(v["actions"][0]["attempt"], 2, "{v:#}");
    let show = ok(&server, &["execution", "show", &e]);
    assert!(
        show.stdout
            .lines()
            .any(|l| l.starts_with("build") && l.contains("failed") && l.contains(" 2 ")),
        "{}",
        show.explain()
    );
}

#[test]
fn a_retry_succeeds_once_what_the_build_needed_exists() {
    let s = Scratch::new();
    let flag = s.path().join("flag");
    let check = format!("test -f {}", flag.display());
    let server = server_with(&s, &one_build(&[check.as_str()]));
    let e = start(&server);
    let f = server.slipway(&["logs", "-f", &e]);
    assert_eq!(f.code, 1, "{}", f.explain());

    std::fs::write(&flag, "").unwrap();
    let r = server.slipway(&["execution", "retry", &e, "-f"]);
    assert_eq!(r.code, 0, "{}\n--- server\n{}", r.explain(), server.log());
    assert!(r.stdout.contains("retrying hello#1"), "{}", r.explain());
    let v = show_json(&server, &e);
    assert_eq!(v["status"], "succeeded", "{v:#}");
    assert_eq!(v["actions"][0]["attempt"], 2, "{v:#}");

    // A succeeded execution cannot be retried.
    let again = server.slipway(&["execution", "retry", &e]);
    assert_eq!(again.code, 2, "{}", again.explain());
}

#[test]
fn a_rerun_is_a_new_execution() {
    let s = Scratch::new();
    let server = server_with(&s, &greet_files());
    let e = start(&server);
    ok(&server, &["logs", "-f", &e]);
    let r = ok(&server, &["execution", "rerun", &e]);
    assert!(
        r.stdout.contains("started hello#2 (a rerun of hello#1)"),
        "{}",
        r.explain()
    );
    let f = ok(&server, &["logs", "-f", "hello#2"]);
    assert!(
        f.stdout.contains("[greet] hello from slipway"),
        "{}",
        f.explain()
    );
    let v = show_json(&server, "hello#2");
    assert_eq!(v["rerun_of"], 1, "{v:#}");
    assert_eq!(v["status"], "succeeded", "{v:#}");
}

#[test]
fn client_errors_have_their_exit_codes() {
    let s = Scratch::new();
    let server = server_with(&s, &greet_files());
    let bad = server.slipway(&["logs", "hello#x"]);
    assert_eq!(bad.code, 2, "{}", bad.explain());
    assert!(bad.stderr.contains("PROJECT#NUMBER"), "{}", bad.explain());

    let none = server.slipway(&["logs", "hello"]);
    assert_eq!(none.code, 2, "{}", none.explain());
    assert!(
        none.stderr.contains("no executions yet"),
        "{}",
        none.explain()
    );

    let missing = server.slipway(&["execution", "show", "hello#99"]);
    assert_eq!(missing.code, 2, "{}", missing.explain());

    let nope = server.slipway(&["pipeline", "start", "nope"]);
    assert_eq!(nope.code, 2, "{}", nope.explain());

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = server.slipway(&[
        "project",
        "ls",
        "--server",
        &format!("http://127.0.0.1:{port}"),
    ]);
    assert_eq!(down.code, 1, "{}", down.explain());
    assert!(
        down.stderr
            .contains("cannot reach the Slipway server at http://127.0.0.1:")
            && down.stderr.contains("slipway server"),
        "{}",
        down.explain()
    );
}

fn ls_json(server: &TestServer) -> Vec<(u64, String)> {
    let r = ok(server, &["execution", "ls", "hello", "--json"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["number"].as_u64().unwrap(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_backup_restores_into_a_fresh_data_directory() {
    let s = Scratch::new();
    let mut server = server_with(&s, &greet_files());
    let e = start(&server);
    ok(&server, &["logs", "-f", &e]);
    let e2 = start(&server);
    ok(&server, &["logs", "-f", &e2]);
    let before = ls_json(&server);
    assert_eq!(before.len(), 2);

    let file = s.path().join("backup.tar");
    let b = ok(&server, &["backup", file.to_str().unwrap()]);
    assert!(b.stdout.starts_with("wrote "), "{}", b.explain());
    assert!(file.is_file());
    assert!(!s.path().join("backup.tar.partial").exists());
    server.stop();

    // The original database has projects: restore refuses it.
    let refused = run_in(
        &s,
        &[
            "restore",
            file.to_str().unwrap(),
            "--data",
            s.data().to_str().unwrap(),
        ],
    );
    assert_eq!(refused.code, 2, "{}", refused.explain());
    assert!(
        refused.stderr.contains("already has projects"),
        "{}",
        refused.explain()
    );

    let fresh = s.path().join("restored");
    let r = run_in(
        &s,
        &[
            "restore",
            file.to_str().unwrap(),
            "--data",
            fresh.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.explain());
    assert!(
        r.stdout.contains("1 projects, 2 executions"),
        "{}",
        r.explain()
    );
    assert!(
        files_in(&fresh.join("store/blobs/sha256")) > 0,
        "{}",
        r.explain()
    );

    let restored = TestServer::start(&fresh);
    assert_eq!(ls_json(&restored), before);
    let logs = ok(&restored, &["logs", &e]);
    assert!(
        logs.stdout.contains("[greet] hello from slipway"),
        "{}",
        logs.explain()
    );
    let raw = ok(&restored, &["logs", &e, "--action", "greet", "--raw"]);
    assert!(
        raw.stdout.contains("hello from slipway"),
        "{}",
        raw.explain()
    );
    // The restored server goes on numbering after the last execution.
    assert_eq!(start(&restored), "hello#3");
}

/// A copy of a backup with one blob's content changed, or with `end.json` left out.
fn altered_backup(from: &Path, to: &Path, tamper: bool) {
    let mut src = tar::Archive::new(std::fs::File::open(from).unwrap());
    let mut dst = tar::Builder::new(std::fs::File::create(to).unwrap());
    let mut tampered = false;
    for entry in src.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if path.starts_with("blobs") && tamper && !tampered {
            data.extend_from_slice(b"tampered");
            tampered = true;
        }
        if path.as_os_str() == "end.json" && !tamper {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        dst.append_data(&mut h, &path, data.as_slice()).unwrap();
    }
    dst.finish().unwrap();
}

#[test]
fn restore_reports_a_blob_that_does_not_match_its_name_and_refuses_a_cut_archive() {
    let s = Scratch::new();
    let mut server = server_with(&s, &greet_files());
    let e = start(&server);
    ok(&server, &["logs", "-f", &e]);
    let file = s.path().join("backup.tar");
    ok(&server, &["backup", file.to_str().unwrap()]);
    server.stop();

    let tampered = s.path().join("tampered.tar");
    altered_backup(&file, &tampered, true);
    let into = s.path().join("t");
    let r = run_in(
        &s,
        &[
            "restore",
            tampered.to_str().unwrap(),
            "--data",
            into.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.explain());
    assert!(
        r.stderr.contains("did not match their names"),
        "{}",
        r.explain()
    );

    let cut = s.path().join("cut.tar");
    altered_backup(&file, &cut, false);
    let into = s.path().join("c");
    let r = run_in(
        &s,
        &[
            "restore",
            cut.to_str().unwrap(),
            "--data",
            into.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.explain());
    assert!(r.stderr.contains("cut short"), "{}", r.explain());
    // Nothing was imported: a complete backup still restores there.
    let r = run_in(
        &s,
        &[
            "restore",
            file.to_str().unwrap(),
            "--data",
            into.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.explain());
}

/// Runs an offline verb (no server).
fn run_in(s: &Scratch, args: &[&str]) -> Run {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(args)
        .current_dir(s.path())
        .env_remove("SLIPWAY_LOG");
    super::server_support::run_with_deadline(cmd, Duration::from_secs(120))
}
