//! Webhooks from the forges' documented payloads (tests/fixtures/hooks/), signed as each
//! forge signs them; commit statuses and notifications received by a local HTTP server that
//! checks each request as the forge's API documentation specifies.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::{Value, json};
use slipway_model::Status;
use tower::ServiceExt;

use super::*;
use crate::notify::StatusReport;
use crate::tests::engine;
use crate::{Config, Server, api};

fn fixture(path: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hooks")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fixture with fields replaced (`/`-separated paths into the JSON).
fn fixture_with(path: &str, set: &[(&str, Value)]) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture(path)).unwrap();
    for (at, value) in set {
        let ptr = format!("/{at}");
        *v.pointer_mut(&ptr)
            .unwrap_or_else(|| panic!("{path}: no {at}")) = value.clone();
    }
    serde_json::to_vec_pretty(&v).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

/// What a parsed delivery means, in one line, for table-driven checks.
fn summary(p: &Parsed) -> String {
    match p {
        Parsed::Ping => "ping".into(),
        Parsed::Ignore(why) => format!("ignore: {why}"),
        Parsed::Change(Change::Push {
            git_ref,
            before,
            after,
            pusher,
        }) => format!(
            "push {git_ref} {}..{} by {}",
            &before.as_deref().unwrap_or("-")[..7.min(before.as_deref().unwrap_or("-").len())],
            &after[..7],
            pusher.as_deref().unwrap_or("-")
        ),
        Parsed::Change(Change::PullRequest {
            action,
            number,
            base_ref,
            base_sha,
            head_ref,
            head_sha,
            author,
            ..
        }) => format!(
            "pr#{number} {action:?} {head_ref}@{} -> {base_ref}@{} by {}",
            &head_sha[..7],
            if base_sha.is_empty() {
                "?"
            } else {
                &base_sha[..7]
            },
            author.as_deref().unwrap_or("-")
        ),
        Parsed::Change(other) => format!("{other:?}"),
    }
}

fn check(forge: Forge, event: &str, body: &[u8], expect: &str) {
    let got = match forge {
        Forge::GitHub => github::parse(event, body),
        Forge::GitLab => gitlab::parse(event, body),
        Forge::Gitea => gitea::parse(event, body),
    };
    let got = got
        .map(|p| summary(&p))
        .unwrap_or_else(|e| format!("error: {e}"));
    assert!(
        got.starts_with(expect),
        "{forge:?} {event}:\n  got    {got}\n  expect {expect}"
    );
}

#[test]
fn documented_payloads_become_changes() {
    use Forge::*;
    let gh_pr = |action: &str| {
        fixture_with(
            "github/pull_request_opened.json",
            &[("action", json!(action))],
        )
    };
    let gl_mr = |action: &str, oldrev: Value| {
        fixture_with(
            "gitlab/merge_request_update.json",
            &[
                ("object_attributes/action", json!(action)),
                ("object_attributes/oldrev", oldrev),
            ],
        )
    };
    let cases: Vec<(Forge, &str, Vec<u8>, &str)> = vec![
        (
            GitHub,
            "push",
            fixture("github/push.json"),
            "push refs/heads/main 6113728..0d1a26e by mona",
        ),
        (
            GitHub,
            "push",
            fixture("github/push_deleted.json"),
            "push refs/heads/feature 0d1a26e..0000000 by mona",
        ),
        (
            GitHub,
            "pull_request",
            gh_pr("opened"),
            "pr#2 Opened refs/heads/feature@ec26c3e -> refs/heads/main@f95f852 by mona",
        ),
        (GitHub, "pull_request", gh_pr("reopened"), "pr#2 Opened"),
        (GitHub, "pull_request", gh_pr("synchronize"), "pr#2 Updated"),
        (GitHub, "pull_request", gh_pr("closed"), "pr#2 Closed"),
        (
            GitHub,
            "pull_request",
            gh_pr("labeled"),
            "ignore: pull_request action `labeled`",
        ),
        (GitHub, "ping", fixture("github/ping.json"), "ping"),
        (GitHub, "issues", b"{}".to_vec(), "ignore: event `issues`"),
        (GitHub, "push", b"{\"ref\": 1}".to_vec(), "error: "),
        (
            GitLab,
            "Push Hook",
            fixture("gitlab/push.json"),
            "push refs/heads/main 95790bf..da15608 by jsmith",
        ),
        (
            GitLab,
            "Tag Push Hook",
            fixture("gitlab/tag_push.json"),
            "push refs/tags/v1.0.0 0000000..82b3d5a by jsmith",
        ),
        (
            GitLab,
            "Merge Request Hook",
            gl_mr("update", json!("95790bf891e76fee5e1747ab589903a6a1f80f22")),
            "pr#1 Updated refs/heads/ms-viewport@da15608 -> refs/heads/main@? by root",
        ),
        (
            GitLab,
            "Merge Request Hook",
            gl_mr("update", Value::Null),
            "ignore: merge request updated without new commits",
        ),
        (
            GitLab,
            "Merge Request Hook",
            gl_mr("open", Value::Null),
            "pr#1 Opened",
        ),
        (
            GitLab,
            "Merge Request Hook",
            gl_mr("reopen", Value::Null),
            "pr#1 Opened",
        ),
        (
            GitLab,
            "Merge Request Hook",
            gl_mr("close", Value::Null),
            "pr#1 Closed",
        ),
        (
            GitLab,
            "Merge Request Hook",
            gl_mr("merge", Value::Null),
            "pr#1 Closed",
        ),
        (
            GitLab,
            "Merge Request Hook",
            gl_mr("approved", Value::Null),
            "ignore: merge request action `approved`",
        ),
        (
            GitLab,
            "Note Hook",
            b"{\"object_kind\":\"note\"}".to_vec(),
            "ignore: event `Note Hook` (note)",
        ),
        (
            Gitea,
            "push",
            fixture("gitea/push.json"),
            "push refs/heads/main 28e1879..bffeb74 by gitea",
        ),
        (
            Gitea,
            "pull_request_sync",
            fixture("gitea/pull_request_sync.json"),
            "pr#7 Updated refs/heads/greeting@bffeb74 -> refs/heads/main@28e1879 by gitea",
        ),
        (
            Gitea,
            "pull_request",
            fixture_with(
                "gitea/pull_request_sync.json",
                &[("action", json!("opened"))],
            ),
            "pr#7 Opened",
        ),
        (
            Gitea,
            "pull_request",
            fixture_with(
                "gitea/pull_request_sync.json",
                &[("action", json!("closed"))],
            ),
            "pr#7 Closed",
        ),
        (
            Gitea,
            "pull_request",
            fixture_with(
                "gitea/pull_request_sync.json",
                &[("action", json!("edited"))],
            ),
            "ignore: pull_request action `edited`",
        ),
        (Gitea, "delete", b"{}".to_vec(), "ignore: ref deleted"),
    ];
    for (forge, event, body, expect) in cases {
        check(forge, event, &body, expect);
    }
}

#[test]
fn signatures_are_checked_over_the_raw_body() {
    let secret = "It's a Secret to Everybody";
    let body = b"Hello, World!";
    // GitHub's documented test vector for this secret and payload.
    let expect = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(sign(secret, body), expect);
    let gh = |v: &str| headers(&[("x-hub-signature-256", v)]);
    assert!(github::verify(secret, &gh(&format!("sha256={expect}")), body).is_ok());
    let upper = format!("sha256={}", expect.to_uppercase());
    assert!(
        github::verify(secret, &gh(&upper), body).is_ok(),
        "hex of either case"
    );
    assert!(
        github::verify(secret, &gh(expect), body).is_err(),
        "no prefix"
    );
    assert!(github::verify(secret, &gh(&format!("sha256={expect}")), b"Hello, World?").is_err());
    assert!(github::verify("another", &gh(&format!("sha256={expect}")), body).is_err());
    assert!(github::verify(secret, &gh("sha256=zz"), body).is_err());
    let sha1_only = headers(&[("x-hub-signature", "sha1=abc")]);
    let e = github::verify(secret, &sha1_only, body).unwrap_err();
    assert!(e.contains("only X-Hub-Signature-256"), "{e}");
    assert!(github::verify(secret, &HeaderMap::new(), body).is_err());

    assert!(gitea::verify(secret, &headers(&[("x-gitea-signature", expect)]), body).is_ok());
    assert!(gitea::verify(secret, &headers(&[("x-forgejo-signature", expect)]), body).is_ok());
    assert!(
        gitea::verify(
            secret,
            &headers(&[("x-gitea-signature", &format!("sha256={expect}"))]),
            body
        )
        .is_err()
    );
    assert!(gitea::verify(secret, &HeaderMap::new(), body).is_err());

    assert!(gitlab::verify(secret, &headers(&[("x-gitlab-token", secret)])).is_ok());
    assert!(gitlab::verify(secret, &headers(&[("x-gitlab-token", "It's a Secret")])).is_err());
    assert!(gitlab::verify(secret, &HeaderMap::new()).is_err());
}

#[test]
fn delivery_ids_come_from_each_forges_header() {
    let h = headers(&[
        ("x-github-delivery", "72d3162e"),
        ("x-github-event", "push"),
    ]);
    assert_eq!(
        (github::delivery(&h), github::event(&h)),
        (Some("72d3162e"), Some("push"))
    );
    let h = headers(&[
        ("x-gitlab-event-uuid", "u1"),
        ("x-gitlab-event", "Push Hook"),
    ]);
    assert_eq!(gitlab::delivery(&h), Some("u1"));
    let h = headers(&[("x-gitlab-event-uuid", "u1"), ("idempotency-key", "k1")]);
    assert_eq!(
        gitlab::delivery(&h),
        Some("k1"),
        "the same on GitLab's retries"
    );
    let h = headers(&[("x-gitea-delivery", "g1"), ("x-forgejo-delivery", "f1")]);
    assert_eq!(gitea::delivery(&h), Some("f1"));
    let h = headers(&[("x-gitea-event", "push")]);
    assert_eq!(gitea::event(&h), Some("push"));
}

#[test]
fn commit_status_requests_follow_each_forges_api() {
    let r = |status| StatusReport {
        api: "https://forge.example/api/",
        repo: "octo-org/hello",
        sha: "abc123",
        status,
        target_url: "http://ci/api/v1/projects/p/executions/1",
        description: "p#1 succeeded",
        context: "slipway/p",
    };
    let g = github::status_request(&r(Status::Succeeded));
    assert_eq!(
        g.url,
        "https://forge.example/api/repos/octo-org/hello/statuses/abc123"
    );
    assert_eq!(
        g.body,
        json!({"state": "success", "target_url": "http://ci/api/v1/projects/p/executions/1",
               "description": "p#1 succeeded", "context": "slipway/p"})
    );
    let l = gitlab::status_request(&r(Status::Running));
    assert_eq!(
        l.url,
        "https://forge.example/api/projects/octo-org%2Fhello/statuses/abc123"
    );
    assert_eq!(l.body["state"], "running");
    assert_eq!(l.body["name"], "slipway/p");
    let t = gitea::status_request(&r(Status::TimedOut));
    assert_eq!(
        t.url,
        "https://forge.example/api/repos/octo-org/hello/statuses/abc123"
    );
    assert_eq!(t.body["state"], "failure");
    for (s, gh, gl, gt) in [
        (Status::Queued, "pending", "pending", "pending"),
        (Status::Running, "pending", "running", "pending"),
        (Status::Waiting, "pending", "pending", "pending"),
        (Status::Succeeded, "success", "success", "success"),
        (Status::Failed, "failure", "failed", "failure"),
        (Status::TimedOut, "failure", "failed", "failure"),
        (Status::Cancelled, "error", "canceled", "error"),
        (Status::Fault, "error", "failed", "error"),
        (Status::Superseded, "error", "canceled", "error"),
    ] {
        assert_eq!(
            (github::state(s), gitlab::state(s), gitea::state(s)),
            (gh, gl, gt),
            "{s}"
        );
    }
}

// ------------------------------------------------------------------ in-process server

struct Harness {
    _dir: tempfile::TempDir,
    server: Server,
    repo: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> String {
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

const PIPELINE: &str = "name: p\nstages:\n  - name: build\n    actions:\n      - name: hello\n        type: build\n        buildspec: buildspec.yml\n";
const BUILDSPEC: &str = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo hi\n";

/// A server over a repository with a pipeline (no triggers: pushes to main start it), and
/// project `p` made over the API.
async fn harness(tune: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".slipway")).unwrap();
    std::fs::write(repo.join(".slipway/pipeline.yml"), PIPELINE).unwrap();
    std::fs::write(repo.join("buildspec.yml"), BUILDSPEC).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    let data = dir.path().join("data");
    let mut c = Config::defaults(data.clone());
    c.listen = "127.0.0.1:0".parse().unwrap();
    tune(&mut c);
    let server = Server::start(c, engine(&data).await).await.unwrap();
    let h = Harness {
        _dir: dir,
        server,
        repo,
    };
    let (st, v) = h
        .call(
            "POST",
            "/api/v1/projects",
            &[],
            Some(json!({"name": "p", "git": h.repo.display().to_string()}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    h
}

impl Harness {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        hdrs: &[(&str, &str)],
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        for (k, v) in hdrs {
            req = req.header(*k, *v);
        }
        let req = req.body(body.map_or(Body::empty(), Body::from)).unwrap();
        let resp = api::routes(self.server.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn secret(&self) -> String {
        let (_, v) = self.call("GET", "/api/v1/projects/p", &[], None).await;
        v["webhook_secret"].as_str().unwrap().to_string()
    }

    /// A GitHub delivery of `body`, signed with `secret`.
    async fn github(
        &self,
        event: &str,
        id: &str,
        body: &[u8],
        secret: &str,
    ) -> (StatusCode, Value) {
        let sig = format!("sha256={}", sign(secret, body));
        let body = String::from_utf8(body.to_vec()).unwrap();
        self.call(
            "POST",
            "/hooks/github/p",
            &[
                ("x-github-event", event),
                ("x-github-delivery", id),
                ("x-hub-signature-256", &sig),
            ],
            Some(body),
        )
        .await
    }

    async fn deliveries(&self) -> Vec<Value> {
        let (st, v) = self
            .call("GET", "/api/v1/projects/p/deliveries", &[], None)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["items"].as_array().unwrap().clone()
    }

    /// A second commit on main: (before, after).
    fn commit(&self) -> (String, String) {
        let before = git(&self.repo, &["rev-parse", "HEAD"]);
        std::fs::write(self.repo.join("README.md"), "hello\n").unwrap();
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "-q", "-m", "two"]);
        (before, git(&self.repo, &["rev-parse", "HEAD"]))
    }

    async fn wait_terminal(&self, n: u64) -> Value {
        for _ in 0..400 {
            let (_, v) = self
                .call(
                    "GET",
                    &format!("/api/v1/projects/p/executions/{n}"),
                    &[],
                    None,
                )
                .await;
            if !matches!(v["status"].as_str(), Some("queued" | "running" | "waiting")) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("p#{n} did not end");
    }
}

#[tokio::test]
async fn a_signed_push_starts_an_execution_and_its_replay_starts_nothing() {
    let h = harness(|_| {}).await;
    let secret = h.secret().await;
    assert_eq!(secret.len(), 64);
    let (before, after) = h.commit();
    let body = fixture_with(
        "github/push.json",
        &[("before", json!(before)), ("after", json!(after))],
    );
    let (st, v) = h.github("push", "d-1", &body, &secret).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["started"], json!(["p#1"]));
    let done = h.wait_terminal(1).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["trigger"], "github");
    assert_eq!(done["revision"], json!(after));

    let (st, v) = h.github("push", "d-1", &body, &secret).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["message"], "duplicate delivery, ignored");
    let (_, list) = h
        .call("GET", "/api/v1/projects/p/executions", &[], None)
        .await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "the replay started nothing"
    );

    let log = h.deliveries().await;
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["status"], 200);
    assert!(
        log[0]["outcome"]
            .as_str()
            .unwrap()
            .contains("duplicate delivery d-1"),
        "{log:?}"
    );
    assert_eq!(log[1]["status"], 202);
    assert_eq!(log[1]["delivery_id"], "d-1");
    assert_eq!(log[1]["event"], "push");
    assert_eq!(log[1]["started"], json!(["p#1"]));
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_refused_and_recorded() {
    let h = harness(|_| {}).await;
    let body = fixture("github/push.json");
    let (st, v) = h
        .github("push", "d-2", &body, "not the secret at all")
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["code"], "unauthorized");
    let (st, _) = h
        .call(
            "POST",
            "/hooks/github/p",
            &[("x-github-event", "push")],
            Some("{}".into()),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = h
        .call(
            "POST",
            "/hooks/gitlab/p",
            &[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", "nope")],
            Some("{}".into()),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = h
        .call(
            "POST",
            "/hooks/gitea/p",
            &[("x-gitea-event", "push"), ("x-gitea-signature", "00")],
            Some("{}".into()),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = h
        .call("POST", "/hooks/github/nope", &[], Some("{}".into()))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let log = h.deliveries().await;
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(
        log.iter()
            .all(|d| d["status"] == 401 && d.get("delivery_id").is_none()),
        "{log:?}"
    );
    let github = &log[3];
    assert!(
        github["outcome"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{github}"
    );
    assert!(
        github["outcome"]
            .as_str()
            .unwrap()
            .contains("(delivery d-2)"),
        "{github}"
    );
    // A refused delivery's id is not claimed: the real one with that id is taken up.
    let secret = h.secret().await;
    let (st, v) = h
        .github("ping", "d-2", &fixture("github/ping.json"), &secret)
        .await;
    assert_eq!((st, v["message"].as_str()), (StatusCode::OK, Some("pong")));
}

#[tokio::test]
async fn deleted_branches_pings_and_other_events_answer_why_nothing_started() {
    let h = harness(|_| {}).await;
    let secret = h.secret().await;
    let (st, v) = h
        .github("push", "d-3", &fixture("github/push_deleted.json"), &secret)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["started"], json!([]));
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("branch deleted (refs/heads/feature)"),
        "{v}"
    );
    let (st, v) = h.github("issues", "d-4", b"{}", &secret).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = h.github("push", "d-5", b"not json", &secret).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let log = h.deliveries().await;
    let outcomes: Vec<&str> = log.iter().map(|d| d["outcome"].as_str().unwrap()).collect();
    assert!(
        outcomes[0].starts_with("unreadable push payload"),
        "{outcomes:?}"
    );
    assert!(outcomes[1].contains("event `issues`"), "{outcomes:?}");
    assert!(outcomes[2].contains("branch deleted"), "{outcomes:?}");
}

#[tokio::test]
async fn gitlab_and_forgejo_deliveries_start_executions() {
    let h = harness(|_| {}).await;
    let secret = h.secret().await;
    let (before, after) = h.commit();
    let body = fixture_with(
        "gitlab/push.json",
        &[("before", json!(before)), ("after", json!(after))],
    );
    let (st, v) = h
        .call(
            "POST",
            "/hooks/gitlab/p",
            &[
                ("x-gitlab-event", "Push Hook"),
                ("x-gitlab-token", &secret),
                ("x-gitlab-event-uuid", "gl-1"),
            ],
            Some(String::from_utf8(body).unwrap()),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["started"], json!(["p#1"]));
    let (before2, after2) = {
        std::fs::write(h.repo.join("README.md"), "again\n").unwrap();
        git(&h.repo, &["commit", "-q", "-am", "three"]);
        (after.clone(), git(&h.repo, &["rev-parse", "HEAD"]))
    };
    let body = fixture_with(
        "gitea/push.json",
        &[("before", json!(before2)), ("after", json!(after2))],
    );
    let sig = sign(&secret, &body);
    let (st, v) = h
        .call(
            "POST",
            "/hooks/gitea/p",
            &[
                ("x-forgejo-event", "push"),
                ("x-gitea-event", "push"),
                ("x-forgejo-delivery", "fj-1"),
                ("x-forgejo-signature", &sig),
                ("x-gitea-signature", &sig),
            ],
            Some(String::from_utf8(body).unwrap()),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["started"], json!(["p#2"]));
    let log = h.deliveries().await;
    assert_eq!(log[0]["source"], "gitea");
    assert_eq!(log[0]["delivery_id"], "fj-1");
    assert_eq!(log[1]["source"], "gitlab");
    h.wait_terminal(1).await;
    h.wait_terminal(2).await;
}

#[tokio::test]
async fn settings_change_over_patch_and_the_token_is_never_shown() {
    let h = harness(|_| {}).await;
    let (_, v) = h
        .call(
            "GET",
            "/api/v1/projects/p",
            &[("host", "ci.example:8080")],
            None,
        )
        .await;
    assert_eq!(
        v["webhook_urls"]["github"],
        "http://ci.example:8080/hooks/github/p"
    );
    assert_eq!(
        v["webhook_urls"]["gitea"],
        "http://ci.example:8080/hooks/gitea/p"
    );
    let patch = json!({"webhook_secret": "0123456789abcdef-new", "forge": "forgejo",
        "forge_api": "https://code.example/api/v1/", "forge_repo": "me/p", "forge_token": "t0k",
        "notify_urls": ["https://chat.example/hook"]});
    let (st, v) = h
        .call("PATCH", "/api/v1/projects/p", &[], Some(patch.to_string()))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["webhook_secret"], "0123456789abcdef-new");
    assert_eq!(v["forge"], "gitea");
    assert_eq!(v["forge_api"], "https://code.example/api/v1");
    assert_eq!(v["forge_token_set"], true);
    assert!(!v.to_string().contains("t0k"), "{v}");
    assert_eq!(v["notify_urls"], json!(["https://chat.example/hook"]));
    for bad in [
        json!({"webhook_secret": "short"}),
        json!({"forge": "bitbucket"}),
        json!({"notify_urls": ["ftp://x"]}),
        json!({"forge_api": "api.github.com"}),
    ] {
        let (st, v) = h
            .call("PATCH", "/api/v1/projects/p", &[], Some(bad.to_string()))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    let clear = json!({"forge_token": "", "notify_urls": []});
    let (_, v) = h
        .call("PATCH", "/api/v1/projects/p", &[], Some(clear.to_string()))
        .await;
    assert!(
        v.get("forge_token_set").is_none() && v.get("notify_urls").is_none(),
        "{v}"
    );
}

/// What the fake forge and the fake chat receiver were sent.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
}

/// A local HTTP server standing in for a forge's API and a notification receiver: it records
/// every request and answers 500 to the first `fail_first` notifications.
async fn fake_remote(fail_first: usize) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s2 = seen.clone();
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let seen = s2.clone();
        let failures = failures.clone();
        async move {
            let path = req.uri().path().to_string();
            let headers = req.headers().clone();
            let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            seen.lock().unwrap().push(Seen {
                path: path.clone(),
                headers,
                body,
            });
            if path == "/notify"
                && failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < fail_first
            {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            StatusCode::CREATED
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn statuses_reach_the_forge_and_notifications_are_retried() {
    let (remote, seen) = fake_remote(1).await;
    let h = harness(|c| {
        c.notify.retry_backoff = Duration::from_millis(20);
        c.notify.public_url = Some("https://ci.example".into());
    })
    .await;
    let patch = json!({"forge": "github", "forge_api": format!("{remote}/api/v3"),
        "forge_repo": "octo-org/hello", "forge_token": "ghp_t0k",
        "notify_urls": [format!("{remote}/notify")]});
    let (st, v) = h
        .call("PATCH", "/api/v1/projects/p", &[], Some(patch.to_string()))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let secret = h.secret().await;
    // Long enough to be seen running (the notifier reports the status it finds; quicker
    // changes collapse into the last).
    std::fs::write(
        h.repo.join("buildspec.yml"),
        BUILDSPEC.replace("echo hi", "sleep 1"),
    )
    .unwrap();
    let (before, after) = h.commit();
    let body = fixture_with(
        "github/push.json",
        &[("before", json!(before)), ("after", json!(after))],
    );
    let (st, v) = h.github("push", "d-9", &body, &secret).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(h.wait_terminal(1).await["status"], "succeeded");

    // Wait for the final status and the notification's retry.
    let mut statuses = Vec::new();
    let mut notes = Vec::new();
    for _ in 0..200 {
        let all = seen.lock().unwrap().clone();
        statuses = all
            .iter()
            .filter(|s| s.path != "/notify")
            .cloned()
            .collect::<Vec<_>>();
        notes = all
            .iter()
            .filter(|s| s.path == "/notify")
            .cloned()
            .collect::<Vec<_>>();
        let done = statuses
            .last()
            .is_some_and(|s| s.body["state"] == "success")
            && notes.iter().any(|n| n.body["status"] == "succeeded");
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let states: Vec<&str> = statuses
        .iter()
        .map(|s| s.body["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.first(), Some(&"pending"), "{statuses:?}");
    assert_eq!(states.last(), Some(&"success"), "{statuses:?}");
    for s in &statuses {
        assert_eq!(
            s.path,
            format!("/api/v3/repos/octo-org/hello/statuses/{after}")
        );
        assert_eq!(s.headers["authorization"], "Bearer ghp_t0k");
        assert_eq!(s.headers["accept"], "application/vnd.github+json");
        assert_eq!(s.body["context"], "slipway/p");
        assert_eq!(
            s.body["target_url"],
            "https://ci.example/api/v1/projects/p/executions/1"
        );
        assert!(
            s.body["description"].as_str().unwrap().starts_with("p#1 "),
            "{s:?}"
        );
    }
    // The first notification got a 500 and was sent again.
    assert!(notes.len() >= 2, "{notes:?}");
    assert_eq!(notes[0].body, notes[1].body, "a retry sends the same body");
    let last = notes.last().unwrap();
    assert!(
        last.body["text"]
            .as_str()
            .unwrap()
            .starts_with("p#1 succeeded (pipeline p, commit "),
        "{last:?}"
    );
    assert_eq!(
        last.body["url"],
        "https://ci.example/api/v1/projects/p/executions/1"
    );
    assert_eq!(last.body["revision"], json!(after));

    let (_, log) = h
        .call("GET", "/api/v1/projects/p/notifications", &[], None)
        .await;
    let items = log["items"].as_array().unwrap();
    let retried = items
        .iter()
        .find(|n| n["kind"] == "webhook" && n["attempts"] == 2)
        .expect("a retried notification");
    assert_eq!(retried["state"], "delivered");
    assert_eq!(retried["last_status"], 201);
    assert!(
        items.iter().any(|n| n["kind"] == "status"
            && n["event"] == "succeeded"
            && n["state"] == "delivered"),
        "{log}"
    );
    assert!(
        !log.to_string().contains("ghp_t0k"),
        "the token is not logged"
    );
}
