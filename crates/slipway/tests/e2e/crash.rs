//! Crash safety: the real server killed with SIGKILL mid-execution, again and again, on SQLite
//! and on PostgreSQL. Nothing it stored is lost, nothing stays running, its processes and
//! containers are gone, and the execution ends as its retry policy says.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::server_support::TestServer;
use super::support::{IMAGE, Scratch, containers_labelled, docker, git, processes_in};

/// A PostgreSQL database of its own for one test, dropped when the guard goes.
struct PgDb {
    admin: String,
    name: String,
    pub url: String,
}

impl PgDb {
    /// `None` (loudly) when PostgreSQL tests are skipped; panics when they cannot run.
    fn create() -> Option<PgDb> {
        if std::env::var("SLIPWAY_SKIP_POSTGRES_TESTS").as_deref() == Ok("1") {
            eprintln!("!!! SKIPPED: PostgreSQL test (SLIPWAY_SKIP_POSTGRES_TESTS=1) !!!");
            return None;
        }
        let admin = std::env::var("SLIPWAY_TEST_POSTGRES_URL").expect(
            "SLIPWAY_TEST_POSTGRES_URL is not set: run scripts/test.sh (or set SLIPWAY_SKIP_POSTGRES_TESTS=1 to skip loudly)",
        );
        let name = format!("e2e_{}", std::process::id())
            + &format!("_{}", Instant::now().elapsed().as_nanos())
            + &uniq();
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Some(PgDb {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&self.admin, "-q", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

fn uniq() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{t}")
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql (installed with PostgreSQL by scripts/provision.sh)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A pipeline whose first build prints a numbered line every 50 ms for about 3 s and may be
/// retried on infrastructure failures; then an approval; then a last build.
fn repo(s: &Scratch, image: Option<&str>) -> String {
    let image = image
        .map(|i| format!("        image: {i}\n        executor: docker\n"))
        .unwrap_or_default();
    let pipeline = format!(
        "name: crash\nstages:\n  - name: build\n    actions:\n      - name: ticks\n        type: build\n        buildspec: ticks.yml\n{image}        retry:\n          attempts: 8\n          on: [infrastructure]\n  - name: gate\n    actions:\n      - name: ok\n        type: approval\n  - name: after\n    actions:\n      - name: last\n        type: build\n        buildspec: last.yml\n"
    );
    s.write("repo/.slipway/pipeline.yml", &pipeline);
    s.write(
        "repo/ticks.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo tick-$i; sleep 0.05; done\n",
    );
    s.write(
        "repo/last.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo the end\n",
    );
    let dir = s.path().join("repo");
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "init"]);
    dir.display().to_string()
}

fn show(server: &TestServer, e: &str) -> Value {
    let r = server.slipway(&["execution", "show", e, "--json"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    serde_json::from_str(&r.stdout).expect("execution show --json")
}

/// Every stored event, by seq, as the API returns them.
fn stored_events(server: &TestServer) -> BTreeMap<u64, Value> {
    let r = server.slipway(&["logs", "crash#1", "--json"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    r.events()
        .into_iter()
        .map(|e| (e["seq"].as_u64().unwrap(), e))
        .collect()
}

/// Containers labelled with the runner id a server over `data` uses.
fn containers_of(data: &Path) -> Vec<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf %s '{}' | sha256sum | cut -c1-12",
            data.display()
        ))
        .output()
        .unwrap();
    let runner = format!("server-{}", String::from_utf8_lossy(&out.stdout).trim());
    containers_labelled(&runner)
}

fn wait_until(
    server: &TestServer,
    what: &str,
    limit: Duration,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let t = Instant::now();
    loop {
        let v = show(server, "crash#1");
        if f(&v) {
            return v;
        }
        assert!(
            t.elapsed() < limit,
            "waited {limit:?} for {what}: {v:#}\n--- server\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ticks_running(v: &Value) -> bool {
    v["actions"].as_array().is_some_and(|a| {
        a.iter()
            .any(|a| a["action"] == "ticks" && a["status"] == "running")
    })
}

/// The scenario: kill the server three times while `ticks` runs, check what survived each
/// time, then let the execution finish.
fn killed_repeatedly(database: Option<&str>, image: Option<&str>) {
    let s = Scratch::new();
    let data = s.data();
    let repo = repo(&s, image);
    let extra: Vec<&str> = match database {
        Some(url) => vec!["--database", url],
        None => vec![],
    };
    let mut server = TestServer::start_with(&data, "127.0.0.1:0", &extra);
    let r = server.slipway(&["project", "create", "crash", "--git", &repo]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let r = server.slipway(&["pipeline", "start", "crash"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let addr = server.addr();
    for round in 0..3u64 {
        wait_until(
            &server,
            "ticks to run",
            Duration::from_secs(60),
            ticks_running,
        );
        // Some lines in: kill at a different point each round.
        std::thread::sleep(Duration::from_millis(300 + 250 * round));
        let before = stored_events(&server);
        assert!(!before.is_empty());
        server.kill();
        server = TestServer::start_with(&data, &addr, &extra);
        // Everything stored before the kill is still there, unchanged.
        let after = stored_events(&server);
        for (seq, e) in &before {
            assert_eq!(
                after.get(seq),
                Some(e),
                "round {round}: event {seq} changed or was lost"
            );
        }
        // The killed server's processes are gone (only the new attempt's may run).
        let v = show(&server, "crash#1");
        assert_ne!(v["status"], "queued", "{v:#}");
    }
    let v = wait_until(&server, "the approval", Duration::from_secs(60), |v| {
        v["status"] == "waiting"
    });
    let ticks = &v["actions"][0];
    assert_eq!(ticks["status"], "succeeded", "{v:#}");
    assert_eq!(
        ticks["attempt"], 4,
        "three interrupted attempts, then one whole: {v:#}"
    );
    let r = server.slipway(&["approve", "crash#1"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let r = server.slipway(&["logs", "-f", "crash#1"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let events: Vec<Value> = stored_events(&server).into_values().collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gaps");
    let interrupted = events
        .iter()
        .filter(|e| {
            e["type"] == "action_finished"
                && e["reason"] == "interrupted: the server stopped while it ran"
        })
        .count();
    assert_eq!(interrupted, 3);
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "execution_resumed")
            .count(),
        3
    );
    // The final attempt printed every line once.
    let last_attempt_lines: Vec<&str> = events
        .iter()
        .skip_while(|e| !(e["type"] == "action_started" && e["attempt"] == 4))
        .filter(|e| e["type"] == "log" && e["action"] == "ticks")
        .flat_map(|e| e["text"].as_str().unwrap().lines())
        .filter(|l| l.starts_with("tick-"))
        .collect();
    assert_eq!(last_attempt_lines.len(), 60, "{last_attempt_lines:?}");
    server.stop();
    assert_eq!(
        processes_in(&data),
        Vec::<String>::new(),
        "processes left behind"
    );
    if image.is_some() {
        assert_eq!(
            containers_of(&data),
            Vec::<String>::new(),
            "containers left behind"
        );
    }
}

#[test]
fn a_server_killed_mid_execution_loses_nothing_on_sqlite() {
    killed_repeatedly(None, None);
}

#[test]
fn a_server_killed_mid_execution_loses_nothing_on_postgres() {
    let Some(db) = PgDb::create() else { return };
    killed_repeatedly(Some(&db.url), None);
}

#[test]
fn a_server_killed_mid_docker_build_leaves_no_container() {
    if !docker() {
        return;
    }
    killed_repeatedly(None, Some(IMAGE));
}

#[test]
fn an_approval_keeps_its_deadline_across_a_restart() {
    let s = Scratch::new();
    let data = s.data();
    s.write(
        "repo/.slipway/pipeline.yml",
        "name: gate\nstages:\n  - name: gate\n    actions:\n      - name: ok\n        type: approval\n        timeout: 4s\n",
    );
    let dir = s.path().join("repo");
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "init"]);
    let mut server = TestServer::start(&data);
    let r = server.slipway(&["project", "create", "gate", "--git", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let r = server.slipway(&["pipeline", "start", "gate"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let t = Instant::now();
    loop {
        let v = show(&server, "gate#1");
        if v["status"] == "waiting" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{v:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(2000));
    let addr = server.addr();
    server.kill();
    let server = TestServer::start_with(&data, &addr, &[]);
    let t = Instant::now();
    let v = loop {
        let v = show(&server, "gate#1");
        if v["status"] != "waiting" && v["status"] != "running" {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{v:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(v["status"], "timed_out", "{v:#}");
    let approval = &v["approvals"][0];
    let waited = v["finished_ms"].as_i64().unwrap() - approval["requested_ms"].as_i64().unwrap();
    assert!(
        (3_900..5_500).contains(&waited),
        "timed out {waited} ms after it was asked: the 4 s deadline should not restart\n{v:#}"
    );
}
