//! Forge webhooks against the real server: a GitHub push delivery, signed as GitHub signs it
//! and naming a real local commit, starts an execution; its commit statuses reach a local
//! HTTP server playing GitHub's API (which checks path, method, headers and body as GitHub
//! documents them); a notification receiver that answers 500 once gets the notification
//! again. No forge can run here, so the forge's side is this local server (docs/webhooks.md).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::server_support::TestServer;
use super::support::*;

/// One request the fake forge or receiver got.
#[derive(Clone, Debug)]
struct Got {
    method: String,
    path: String,
    /// Lowercase names.
    headers: Vec<(String, String)>,
    body: Value,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 request (headers, then a Content-Length body).
fn read_request(stream: &mut TcpStream) -> Option<Got> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Got {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

/// A local server standing in for GitHub's API and a chat webhook: records every request,
/// answers 500 to the first request to `/notify` and 201 to everything else.
fn fake_remote() -> (String, Arc<Mutex<Vec<Got>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut failed_once = false;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(req) = read_request(&mut stream) else {
                continue;
            };
            let fail = req.path == "/notify" && !failed_once;
            failed_once |= fail;
            g.lock().unwrap().push(req);
            let answer = if fail {
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\nboom"
            } else {
                "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (format!("http://{addr}"), got)
}

/// POSTs `body` to the server; the status and the JSON answer.
fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn git_out(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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

#[test]
fn a_signed_github_push_starts_an_execution_reported_back_as_commit_statuses() {
    let s = Scratch::new();
    let repo = s.path().join("repo");
    std::fs::create_dir_all(repo.join(".slipway")).unwrap();
    std::fs::write(
        repo.join(".slipway/pipeline.yml"),
        "name: hello\nstages:\n  - name: build\n    actions:\n      - name: step\n        type: build\n        executor: local\n        buildspec: step.yml\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("step.yml"),
        "version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 1\n",
    )
    .unwrap();
    git_out(&repo, &["init", "-q", "-b", "main"]);
    git_out(&repo, &["add", "-A"]);
    git_out(&repo, &["commit", "-q", "-m", "one"]);
    let config = s.write("slipway.toml", "[notify]\nretry_backoff = \"100ms\"\n");
    let server = TestServer::start_with(
        &s.data(),
        "127.0.0.1:0",
        &["--config", config.to_str().unwrap()],
    );
    let (remote, got) = fake_remote();

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
    let notify = format!("{remote}/notify");
    let api = format!("{remote}/api/v3");
    ok(
        &server,
        &[
            "project",
            "set",
            "hello",
            "--forge",
            "github",
            "--forge-api",
            &api,
            "--repo",
            "octo-org/hello",
            "--forge-token",
            "ghp_e2e",
            "--notify-url",
            &notify,
        ],
    );
    let shown = ok(&server, &["project", "show", "hello"]).stdout;
    let hook_url = format!("{}/hooks/github/hello", server.url);
    assert!(shown.contains(&hook_url), "{shown}");
    assert!(
        shown.contains("token set") && !shown.contains("ghp_e2e"),
        "{shown}"
    );
    let project: Value =
        serde_json::from_str(&ok(&server, &["project", "show", "hello", "--json"]).stdout).unwrap();
    let secret = project["webhook_secret"].as_str().unwrap().to_string();

    // A push made locally, delivered as GitHub delivers it.
    let before = git_out(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("README.md"), "hello\n").unwrap();
    git_out(&repo, &["add", "-A"]);
    git_out(&repo, &["commit", "-q", "-m", "two"]);
    let after = git_out(&repo, &["rev-parse", "HEAD"]);
    let fixture = repo_root().join("crates/slipway-server/tests/fixtures/hooks/github/push.json");
    let mut payload: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    payload["before"] = json!(before);
    payload["after"] = json!(after);
    let body = serde_json::to_vec(&payload).unwrap();
    let sig = format!("sha256={}", slipway_server::hooks::sign(&secret, &body));
    let headers = [
        ("x-github-event", "push"),
        ("x-github-delivery", "e2e-1"),
        ("x-hub-signature-256", sig.as_str()),
    ];
    let (status, answer) = post(&server.addr(), "/hooks/github/hello", &headers, &body);
    assert_eq!(status, 202, "{answer}\n--- server\n{}", server.log());
    assert_eq!(answer["started"], json!(["hello#1"]));

    // A replay starts nothing; a forged signature is refused.
    let (status, answer) = post(&server.addr(), "/hooks/github/hello", &headers, &body);
    assert_eq!(
        (status, answer["message"].as_str()),
        (200, Some("duplicate delivery, ignored"))
    );
    let forged = [
        ("x-github-event", "push"),
        ("x-github-delivery", "e2e-2"),
        ("x-hub-signature-256", "sha256=00"),
    ];
    assert_eq!(
        post(&server.addr(), "/hooks/github/hello", &forged, &body).0,
        401
    );

    // The final commit status and the retried notification arrive.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let all = got.lock().unwrap().clone();
        let success = all.iter().any(|g| g.body["state"] == "success");
        let notified = all
            .iter()
            .filter(|g| g.path == "/notify" && g.body["status"] == "succeeded")
            .count();
        if success && notified >= 1 && all.iter().filter(|g| g.path == "/notify").count() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no final status or notification: {all:#?}\n--- server\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = got.lock().unwrap().clone();
    let statuses: Vec<&Got> = all.iter().filter(|g| g.path != "/notify").collect();
    assert_eq!(
        statuses.first().unwrap().body["state"],
        "pending",
        "{statuses:#?}"
    );
    for st in &statuses {
        assert_eq!(st.method, "POST");
        assert_eq!(
            st.path,
            format!("/api/v3/repos/octo-org/hello/statuses/{after}")
        );
        assert_eq!(st.header("authorization"), Some("Bearer ghp_e2e"));
        assert_eq!(st.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(st.header("content-type"), Some("application/json"));
        assert_eq!(st.body["context"], "slipway/hello");
        assert_eq!(
            st.body["target_url"],
            format!("{}/api/v1/projects/hello/executions/1", server.url)
        );
        let keys: Vec<&String> = st.body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["context", "description", "state", "target_url"]);
    }
    let notes: Vec<&Got> = all.iter().filter(|g| g.path == "/notify").collect();
    assert_eq!(
        notes[0].body, notes[1].body,
        "the retry after the 500 sends the same body"
    );
    let last = notes.last().unwrap();
    let text = last.body["text"].as_str().unwrap();
    assert!(text.starts_with("hello#1 "), "{text}");
    assert_eq!(last.body["execution"], "hello#1");
    assert_eq!(last.body["revision"], json!(after));

    let log = ok(&server, &["project", "deliveries", "hello"]).stdout;
    assert!(log.contains("started hello#1"), "{log}");
    assert!(log.contains("duplicate delivery e2e-1, ignored"), "{log}");
    assert!(log.contains("401"), "{log}");
    let sent: Value =
        serde_json::from_str(&ok(&server, &["project", "notifications", "hello", "--json"]).stdout)
            .unwrap();
    let items = sent["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|n| n["kind"] == "webhook" && n["attempts"] == 2 && n["state"] == "delivered"),
        "{sent:#}"
    );
    assert!(
        items.iter().any(|n| n["kind"] == "status"
            && n["event"] == "succeeded"
            && n["state"] == "delivered"),
        "{sent:#}"
    );
    let done: Value =
        serde_json::from_str(&ok(&server, &["execution", "show", "hello#1", "--json"]).stdout)
            .unwrap();
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["trigger"], "github");
}
