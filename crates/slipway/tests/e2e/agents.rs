//! Agents as separate processes of the real binary: registration, `runs-on` jobs on the local
//! executor and on the Docker engine with their logs and artifacts, cancellation, an agent
//! killed (and one frozen) mid-job and its job retried on another, leftovers removed when it
//! restarts, and a server killed and restarted while an agent runs a job without a log line
//! lost or doubled. Figures (pickup latency, lease loss detection, log throughput) are printed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::server_support::TestServer;
use super::support::{IMAGE, Scratch, bin, containers_labelled, docker, git, processes_in};

/// A lease of 2 s, no pause before retries: the lost-agent tests finish quickly.
const CONFIG: &str = "[agents]\nlease_ttl = \"2s\"\n[timeouts]\nretry_backoff = \"0s\"\n";

/// `slipway agent run` as a child process, stopped when dropped.
struct TestAgent {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    pub work_dir: PathBuf,
}

impl TestAgent {
    fn start(server: &TestServer, token: &str, work_dir: &Path, extra: &[&str]) -> TestAgent {
        let mut child = Command::new(bin())
            .args(["agent", "run", "--server", &server.url, "--token", token])
            .arg("--work-dir")
            .arg(work_dir)
            .args(extra)
            .env_remove("SLIPWAY_SERVER")
            .env("SLIPWAY_LOG", "slipway_agent=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start slipway agent run");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<()>();
        let stderr = child.stderr.take().expect("stderr");
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("waiting for jobs") {
                    let _ = tx.send(());
                }
                let mut l = l.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let agent = TestAgent {
            child: Some(child),
            log,
            work_dir: work_dir.to_path_buf(),
        };
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            panic!("the agent did not start\n{}", agent.log());
        }
        agent
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A repository whose pipeline is `pipeline` with the given buildspecs, committed.
fn repo(s: &Scratch, pipeline: &str, files: &[(&str, &str)]) -> String {
    s.write("repo/.slipway/pipeline.yml", pipeline);
    for (name, text) in files {
        s.write(&format!("repo/{name}"), text);
    }
    let dir = s.path().join("repo");
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "init"]);
    dir.display().to_string()
}

fn server(s: &Scratch) -> TestServer {
    let config = s.write("slipway.toml", CONFIG);
    TestServer::start_with(
        &s.data(),
        "127.0.0.1:0",
        &["--config", config.to_str().unwrap()],
    )
}

fn token(server: &TestServer) -> String {
    let r = server.slipway(&["agent", "token", "create"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let t = r.stdout.trim().to_string();
    assert!(t.starts_with("slpr_") && t.len() == 69, "{t}");
    t
}

fn show(server: &TestServer, e: &str) -> Value {
    let r = server.slipway(&["execution", "show", e, "--json"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    serde_json::from_str(&r.stdout).expect("execution show --json")
}

fn events(server: &TestServer, e: &str) -> Vec<Value> {
    let r = server.slipway(&["logs", e, "--json"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    r.events()
}

fn wait_for(
    server: &TestServer,
    e: &str,
    what: &str,
    limit: Duration,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let t = Instant::now();
    loop {
        let v = show(server, e);
        if f(&v) {
            return v;
        }
        assert!(
            t.elapsed() < limit,
            "waited {limit:?} for {what}: {v:#}\n--- server\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ended(v: &Value) -> bool {
    !matches!(v["status"].as_str(), Some("queued" | "running" | "waiting"))
}

/// The text of an action's stored `log` events, in order.
fn logged(events: &[Value], action: &str) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "log" && e["action"] == action)
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

fn agent_id(agent: &TestAgent) -> i64 {
    let text = std::fs::read_to_string(agent.work_dir.join("agent.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["agent_id"].as_i64().unwrap()
}

/// A runs-on build that makes an artifact, then an embedded build that reads it.
fn build_and_consume(executor: &str) -> String {
    let docker = if executor == "docker" {
        format!("        executor: docker\n        image: {IMAGE}\n")
    } else {
        String::new()
    };
    format!(
        "name: ag\nstages:\n  - name: build\n    actions:\n      - name: compile\n        type: build\n        runs-on: [linux]\n{docker}        outputs: [bin]\n  - name: use\n    actions:\n      - name: check\n        type: build\n        buildspec: check.yml\n        inputs: [bin]\n"
    )
}

const COMPILE: &str = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo first-command-ns $(date +%s%N)\n      - i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo line-$i; done\n      - mkdir -p out && echo built-on-agent > out/app\nartifacts:\n  files: ['out/**/*']\n";
const CHECK: &str = "version: 0.2\nphases:\n  build:\n    commands:\n      - cat out/app\n";

fn runs_a_job(executor: &str) {
    let s = Scratch::new();
    let server = server(&s);
    let repo = repo(
        &s,
        &build_and_consume(executor),
        &[("buildspec.yml", COMPILE), ("check.yml", CHECK)],
    );
    let token = token(&server);
    let exec_flag = ["--executor", executor];
    let agent = TestAgent::start(
        &server,
        &token,
        &s.path().join("agent"),
        &[&["--labels", "linux,x86"][..], &exec_flag[..]].concat(),
    );
    let r = server.slipway(&["agent", "ls", "--json"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let ls: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        ls["items"][0]["labels"],
        serde_json::json!(["linux", "x86"]),
        "{ls:#}"
    );
    assert_eq!(
        server
            .slipway(&["project", "create", "ag", "--git", &repo])
            .code,
        0
    );
    assert_eq!(server.slipway(&["pipeline", "start", "ag"]).code, 0);
    let v = wait_for(&server, "ag#1", "the end", Duration::from_secs(120), ended);
    assert_eq!(
        v["status"],
        "succeeded",
        "{v:#}\n--- agent\n{}\n--- server\n{}",
        agent.log(),
        server.log()
    );
    let evs = events(&server, "ag#1");
    let text = logged(&evs, "compile");
    for i in 1..=200 {
        assert_eq!(
            text.lines().filter(|l| *l == format!("line-{i}")).count(),
            1,
            "line-{i} once\n{text}"
        );
    }
    // The artifact reached the server: the embedded build read it.
    assert!(logged(&evs, "check").contains("built-on-agent"), "{evs:#?}");
    // The log the agent wrote is what the events carried.
    let raw = server.slipway(&["logs", "ag#1", "--action", "compile", "--raw"]);
    assert_eq!(raw.code, 0, "{}", raw.explain());
    assert_eq!(
        raw.stdout, text,
        "the stored log blob and the log events differ"
    );
    // Pickup: from the action queued (action_started) to its first command running.
    let started = evs
        .iter()
        .find(|e| e["type"] == "action_started" && e["action"] == "compile")
        .unwrap()["time_ms"]
        .as_i64()
        .unwrap();
    // (busybox's `date` may not know %N: then there is no figure.)
    let first = text
        .lines()
        .find_map(|l| l.strip_prefix("first-command-ns "))
        .and_then(|ns| ns.trim().parse::<i64>().ok());
    if let Some(ns) = first {
        eprintln!(
            "FIGURE pickup ({executor}): {} ms from queued to the first command",
            ns / 1_000_000 - started
        );
    }
    if executor == "docker" {
        let id = agent_id(&agent);
        assert_eq!(
            containers_labelled(&format!("agent-{id}")),
            Vec::<String>::new()
        );
    }
}

#[test]
fn an_agent_runs_a_runs_on_job_on_the_local_executor() {
    runs_a_job("local");
}

#[test]
fn an_agent_runs_a_runs_on_job_on_docker() {
    if !docker() {
        return;
    }
    runs_a_job("docker");
}

const SLEEPY: &str = "name: ag\nstages:\n  - name: build\n    actions:\n      - name: long\n        type: build\n        runs-on: [linux]\n        retry:\n          attempts: 2\n          on: [infrastructure]\n";
const TICKS: &str = "version: 0.2\nphases:\n  build:\n    commands:\n      - i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo tick-$i; sleep 0.1; done\n";

#[test]
fn cancel_reaches_the_agent_within_a_second() {
    let s = Scratch::new();
    let server = server(&s);
    let repo = repo(
        &s,
        SLEEPY,
        &[(
            "buildspec.yml",
            "version: 0.2\nphases:\n  build:\n    commands:\n      - echo started\n      - sleep 60\n",
        )],
    );
    let token = token(&server);
    let agent = TestAgent::start(
        &server,
        &token,
        &s.path().join("agent"),
        &["--labels", "linux"],
    );
    assert_eq!(
        server
            .slipway(&["project", "create", "ag", "--git", &repo])
            .code,
        0
    );
    assert_eq!(server.slipway(&["pipeline", "start", "ag"]).code, 0);
    let t = Instant::now();
    while !logged(&events(&server, "ag#1"), "long").contains("started") {
        assert!(t.elapsed() < Duration::from_secs(60), "{}", agent.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let r = server.slipway(&["execution", "cancel", "ag#1"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    // The sleep is gone from the agent's work directory: the agent killed it.
    while !processes_in(&agent.work_dir).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still running: {:?}",
            processes_in(&agent.work_dir)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = t.elapsed();
    let v = wait_for(&server, "ag#1", "the end", Duration::from_secs(30), ended);
    eprintln!(
        "FIGURE cancel: the agent's command was killed {} ms after the cancel request",
        killed.as_millis()
    );
    assert_eq!(v["status"], "cancelled", "{v:#}");
    assert!(
        killed < Duration::from_millis(1500),
        "cancel took {killed:?}"
    );
}

#[test]
fn a_killed_agent_loses_its_lease_and_the_job_runs_on_another() {
    let s = Scratch::new();
    let server = server(&s);
    let repo = repo(&s, SLEEPY, &[("buildspec.yml", TICKS)]);
    let token = token(&server);
    let mut a = TestAgent::start(&server, &token, &s.path().join("a"), &["--labels", "linux"]);
    assert_eq!(
        server
            .slipway(&["project", "create", "ag", "--git", &repo])
            .code,
        0
    );
    assert_eq!(server.slipway(&["pipeline", "start", "ag"]).code, 0);
    let t = Instant::now();
    while !logged(&events(&server, "ag#1"), "long").contains("tick-5\n") {
        assert!(t.elapsed() < Duration::from_secs(60), "{}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The second agent starts only now, so the first attempt is surely the first agent's.
    let b = TestAgent::start(&server, &token, &s.path().join("b"), &["--labels", "linux"]);
    assert!(
        !processes_in(&a.work_dir).is_empty(),
        "the job runs in a's work directory"
    );
    a.kill();
    let killed = Instant::now();
    let t = Instant::now();
    let lost = loop {
        let evs = events(&server, "ag#1");
        if let Some(e) = evs
            .iter()
            .find(|e| e["type"] == "action_finished" && e["attempt"] == 1)
        {
            break e.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no end of attempt 1\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let detected = killed.elapsed();
    eprintln!(
        "FIGURE lease loss: attempt 1 ended {} ms after the agent was killed (lease 2 s)",
        detected.as_millis()
    );
    assert_eq!(lost["status"], "fault", "{lost:#}");
    assert!(
        lost["reason"].as_str().unwrap().contains("lost"),
        "{lost:#}"
    );
    assert!(detected < Duration::from_secs(5), "{detected:?}");
    let v = wait_for(&server, "ag#1", "the end", Duration::from_secs(120), ended);
    assert_eq!(v["status"], "succeeded", "{v:#}\n--- b\n{}", b.log());
    assert_eq!(v["actions"][0]["attempt"], 2, "{v:#}");
    // Each attempt has its own log: the second printed every tick once.
    let evs = events(&server, "ag#1");
    let second: String = evs
        .iter()
        .skip_while(|e| !(e["type"] == "action_started" && e["attempt"] == 2))
        .filter(|e| e["type"] == "log" && e["action"] == "long")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        second.lines().filter(|l| l.starts_with("tick-")).count(),
        60,
        "{second}"
    );
    // The killed agent's build still runs (nobody killed its process group) until the agent
    // restarts and removes what it left: its processes and its workspaces.
    let left = processes_in(&a.work_dir);
    let restarted = TestAgent::start(&server, &token, &a.work_dir.clone(), &["--labels", "linux"]);
    assert!(
        restarted
            .log()
            .contains("removed what an earlier run of this agent left"),
        "{}\nleft before: {left:?}",
        restarted.log()
    );
    let t = Instant::now();
    while !processes_in(&restarted.work_dir).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{:?}",
            processes_in(&restarted.work_dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let work = std::fs::read_dir(restarted.work_dir.join("work"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(work, 0, "workspaces left");
    // The other agent's work directory is not touched.
    assert!(b.work_dir.join("agent.json").exists());
}

#[test]
fn a_late_agent_finds_its_lease_gone_and_stops_its_job() {
    let s = Scratch::new();
    let server = server(&s);
    let repo = repo(&s, SLEEPY, &[("buildspec.yml", TICKS)]);
    let token = token(&server);
    let a = TestAgent::start(&server, &token, &s.path().join("a"), &["--labels", "linux"]);
    assert_eq!(
        server
            .slipway(&["project", "create", "ag", "--git", &repo])
            .code,
        0
    );
    assert_eq!(server.slipway(&["pipeline", "start", "ag"]).code, 0);
    let t = Instant::now();
    while !logged(&events(&server, "ag#1"), "long").contains("tick-3\n") {
        assert!(t.elapsed() < Duration::from_secs(60), "{}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Frozen past its lease: the job is retried elsewhere.
    a.signal(libc::SIGSTOP);
    let b = TestAgent::start(&server, &token, &s.path().join("b"), &["--labels", "linux"]);
    wait_for(&server, "ag#1", "attempt 2", Duration::from_secs(30), |v| {
        v["actions"][0]["attempt"] == 2
    });
    a.signal(libc::SIGCONT);
    // Back, it learns the lease is gone and stops its build.
    let t = Instant::now();
    while !processes_in(&a.work_dir).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{:?}\n{}",
            processes_in(&a.work_dir),
            a.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(a.log().contains("lease lost"), "{}", a.log());
    let v = wait_for(&server, "ag#1", "the end", Duration::from_secs(120), ended);
    assert_eq!(v["status"], "succeeded", "{v:#}\n{}", b.log());
    // Nothing of the late attempt 1 arrived after attempt 2 started.
    let evs = events(&server, "ag#1");
    let after: Vec<&Value> = evs
        .iter()
        .skip_while(|e| !(e["type"] == "action_started" && e["attempt"] == 2))
        .filter(|e| e["type"] == "log")
        .collect();
    let ticks: Vec<&str> = after
        .iter()
        .flat_map(|e| e["text"].as_str().unwrap().lines())
        .filter(|l| l.starts_with("tick-"))
        .collect();
    assert_eq!(ticks.len(), 60, "{ticks:?}");
}

#[test]
fn a_server_restarted_mid_job_loses_and_doubles_no_log_line() {
    let s = Scratch::new();
    let mut server = server(&s);
    let n = 20_000;
    let pipeline = "name: ag\nstages:\n  - name: build\n    actions:\n      - name: lines\n        type: build\n        runs-on: [linux]\n";
    let spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo line-$i; if [ $((i % 2000)) = 0 ]; then sleep 0.5; fi; done\n"
    );
    let repo = repo(&s, pipeline, &[("buildspec.yml", &spec)]);
    let token = token(&server);
    let agent = TestAgent::start(
        &server,
        &token,
        &s.path().join("agent"),
        &["--labels", "linux"],
    );
    assert_eq!(
        server
            .slipway(&["project", "create", "ag", "--git", &repo])
            .code,
        0
    );
    assert_eq!(server.slipway(&["pipeline", "start", "ag"]).code, 0);
    let started = Instant::now();
    let addr = server.addr();
    let config = s.path().join("slipway.toml");
    for round in 0..2 {
        let t = Instant::now();
        while !logged(&events(&server, "ag#1"), "lines")
            .contains(&format!("line-{}\n", 3000 + round * 4000))
        {
            assert!(t.elapsed() < Duration::from_secs(60), "{}", agent.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        server.kill();
        // Down for a while: the agent keeps running and buffers.
        std::thread::sleep(Duration::from_millis(1500));
        server = TestServer::start_with(&s.data(), &addr, &["--config", config.to_str().unwrap()]);
    }
    let v = wait_for(&server, "ag#1", "the end", Duration::from_secs(180), ended);
    let took = started.elapsed();
    assert_eq!(
        v["status"],
        "succeeded",
        "{v:#}\n--- agent\n{}\n--- server\n{}",
        agent.log(),
        server.log()
    );
    assert_eq!(
        v["actions"][0]["attempt"], 1,
        "the job was re-attached, not retried: {v:#}"
    );
    let evs = events(&server, "ag#1");
    let seqs: Vec<u64> = evs.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gaps");
    let text = logged(&evs, "lines");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("line-")).collect();
    let want: Vec<String> = (1..=n).map(|i| format!("line-{i}")).collect();
    assert_eq!(lines.len(), n, "lines stored: {} of {n}", lines.len());
    assert!(
        lines.iter().zip(&want).all(|(a, b)| a == b),
        "in order, each once"
    );
    // The agent's own log (uploaded at the end) says the same.
    let raw = server.slipway(&["logs", "ag#1", "--action", "lines", "--raw"]);
    assert_eq!(raw.code, 0, "{}", raw.explain());
    assert_eq!(
        raw.stdout, text,
        "the agent's log and the stored events differ"
    );
    eprintln!(
        "FIGURE log throughput through the agent: {n} lines in {:.1} s with two server restarts ({:.0} lines/s)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}
