//! The API driven in-process: a real SQLite database, the local executor, real git.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use slipway_engine::Engine;
use slipway_executor::{ExecutorConfig, LocalConfig, RunnerId};
use tower::ServiceExt;

use crate::{Config, Server, api};

struct Harness {
    _dir: tempfile::TempDir,
    server: Server,
    repo: std::path::PathBuf,
}

pub(crate) async fn engine(data: &Path) -> Engine {
    let local = ExecutorConfig::Local(LocalConfig {
        clear_env: false,
        ..Default::default()
    })
    .build(RunnerId("server-tests".into()))
    .await
    .unwrap();
    Engine {
        executors: slipway_engine::Executors {
            local,
            docker: None,
            images: None,
        },
        store: slipway_store::BlobStore::open(data.join("store")).unwrap(),
        work_root: data.join("work"),
        cache_root: data.join("cache"),
        artifacts_dir: None,
        secrets: Arc::new(slipway_engine::secrets::FileAndEnvSecrets::env_only()),
        approver: Arc::new(Never),
        batch_concurrency: 1,
        approval_timeout: Duration::from_secs(60),
        registry: None,
        retry_backoff: Duration::ZERO,
        job_slots: None,
        dispatch: None,
    }
}

struct Never;

#[async_trait::async_trait]
impl slipway_engine::Approver for Never {
    async fn decide(&self, _: &slipway_engine::ApprovalRequest) -> slipway_engine::Decision {
        std::future::pending().await
    }
}

fn git(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

/// A server over a temp data directory and a repository holding `files`.
async fn harness(files: &[(&str, &str)]) -> Harness {
    harness_with(files, |_| {}).await
}

async fn harness_with(files: &[(&str, &str)], tune: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for (p, text) in files {
        let path = repo.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    let data = dir.path().join("data");
    let mut c = Config::defaults(data.clone());
    c.listen = "127.0.0.1:0".parse().unwrap();
    tune(&mut c);
    let server = Server::start(c, engine(&data).await).await.unwrap();
    Harness {
        _dir: dir,
        server,
        repo,
    }
}

impl Harness {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(match body {
                Some(b) => Body::from(b.to_string()),
                None => Body::empty(),
            })
            .unwrap();
        let resp = api::routes(self.server.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    async fn project(&self) {
        let (st, _) = self
            .call(
                "POST",
                "/api/v1/projects",
                Some(json!({"name": "p", "git": self.repo.display().to_string()})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED);
    }

    async fn wait_terminal(&self, n: u64) -> Value {
        for _ in 0..400 {
            let (_, v) = self
                .call("GET", &format!("/api/v1/projects/p/executions/{n}"), None)
                .await;
            if !matches!(v["status"].as_str(), Some("queued" | "running" | "waiting")) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("p#{n} did not end");
    }
}

const PIPELINE: &str = "name: p\nstages:\n  - name: build\n    actions:\n      - name: hello\n        type: build\n        buildspec: buildspec.yml\n";
const BUILDSPEC: &str =
    "version: 0.2\nphases:\n  build:\n    commands:\n      - echo hello from the build\n";

#[tokio::test]
async fn the_router_serves_every_route_in_the_table() {
    let h = harness(&[("buildspec.yml", BUILDSPEC)]).await;
    for (info, _) in api::table() {
        let uri = info
            .path
            .replace("{project}", "nope")
            .replace("{number}", "1")
            .replace("{stage}", "s")
            .replace("{action}", "a");
        let uri = if uri.ends_with("/gc") {
            format!("{uri}?dry_run=true")
        } else {
            uri
        };
        let req = Request::builder()
            .method(info.method)
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let resp = api::routes(h.server.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let st = resp.status();
        let json = resp
            .headers()
            .get("content-type")
            .is_some_and(|c| c.to_str().unwrap_or("").contains("json"));
        assert_ne!(st, StatusCode::METHOD_NOT_ALLOWED, "{} {uri}", info.method);
        // The router's own 404 has no body; ours says what was not found, as JSON.
        assert!(
            st != StatusCode::NOT_FOUND || json,
            "{} {uri} is not routed",
            info.method
        );
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_api_route() {
    let h = harness(&[("buildspec.yml", BUILDSPEC)]).await;
    let (st, doc) = h.call("GET", "/api/v1/openapi.json", None).await;
    assert_eq!(st, StatusCode::OK);
    for (info, _) in api::table() {
        if !info.path.starts_with("/api/v1/") || info.path.ends_with("openapi.json") {
            continue;
        }
        let op = &doc["paths"][&info.path][info.method.to_lowercase()];
        assert!(
            op.is_object(),
            "{} {} missing from openapi.json",
            info.method,
            info.path
        );
    }
}

#[tokio::test]
async fn an_execution_runs_and_its_events_and_log_are_stored() {
    let h = harness(&[
        (".slipway/pipeline.yml", PIPELINE),
        ("buildspec.yml", BUILDSPEC),
    ])
    .await;
    h.project().await;
    let (st, v) = h
        .call("POST", "/api/v1/projects/p/executions", Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["name"], "p#1");
    let done = h.wait_terminal(1).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["actions"][0]["action"], "hello");
    let (_, page) = h
        .call(
            "GET",
            "/api/v1/projects/p/executions/1/events?after=0",
            None,
        )
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.first().unwrap()["type"], "execution_started");
    assert_eq!(items.last().unwrap()["type"], "execution_finished");
    let seqs: Vec<u64> = items.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "gapless");
    let (st, log) = h
        .call(
            "GET",
            "/api/v1/projects/p/executions/1/actions/build/hello/log",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        log.as_str().unwrap().contains("hello from the build\n"),
        "{log}"
    );
    let (_, list) = h.call("GET", "/api/v1/projects/p/executions", None).await;
    assert_eq!(list["items"][0]["number"], 1);
}

#[tokio::test]
async fn an_invalid_pipeline_is_refused_with_file_line_and_column() {
    let bad =
        "name: p\nstages:\n  - name: build\n    actions:\n      - name: x\n        type: biuld\n";
    let h = harness(&[(".slipway/pipeline.yml", bad)]).await;
    h.project().await;
    let (st, v) = h
        .call("POST", "/api/v1/projects/p/executions", Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["code"], "invalid_pipeline");
    let first = v["details"][0].as_str().unwrap();
    assert!(first.starts_with(".slipway/pipeline.yml:6:"), "{first}");
    let (_, list) = h.call("GET", "/api/v1/projects/p/executions", None).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing recorded"
    );
}

#[tokio::test]
async fn errors_are_json_with_stable_codes() {
    let h = harness(&[("buildspec.yml", BUILDSPEC)]).await;
    let (st, v) = h.call("GET", "/api/v1/projects/nope", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "not_found");
    h.project().await;
    let (st, v) = h
        .call(
            "POST",
            "/api/v1/projects",
            Some(json!({"name": "p", "git": "/x"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(v["code"], "conflict");
    let (st, v) = h
        .call(
            "POST",
            "/api/v1/projects",
            Some(json!({"name": "../etc", "git": "/x"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "invalid");
    let (st, v) = h
        .call(
            "POST",
            "/api/v1/projects/p/executions",
            Some(json!({"revision": "no-such-branch"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("no-such-branch"),
        "{v}"
    );
}

#[tokio::test]
async fn retention_prunes_beyond_the_count_keeps_the_newest_succeeded_and_sweeps_their_blobs() {
    let failing = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo unique-$CODEBUILD_BUILD_NUMBER\n      - test $CODEBUILD_BUILD_NUMBER -ne 3\n";
    let h = harness_with(
        &[
            (".slipway/pipeline.yml", PIPELINE),
            ("buildspec.yml", failing),
        ],
        |c| {
            c.retention.keep_per_project = Some(1);
            c.retention.max_age = None;
            c.retention.blob_grace = Duration::ZERO;
        },
    )
    .await;
    h.project().await;
    for n in 1..=3u64 {
        h.call("POST", "/api/v1/projects/p/executions", Some(json!({})))
            .await;
        h.wait_terminal(n).await;
    }
    let (_, two) = h.call("GET", "/api/v1/projects/p/executions/2", None).await;
    let log2 = two["actions"][0]["log"].as_str().unwrap().to_string();
    let blob2 = h
        .server
        .state
        .blobs
        .path(&slipway_model::Digest::parse(&log2).unwrap());
    assert!(blob2.is_file());
    // #3 failed and is the newest: kept by the count; #2 is the newest succeeded: kept too.
    let (st, dry) = h.call("POST", "/api/v1/gc?dry_run=true", None).await;
    assert_eq!(st, StatusCode::OK, "{dry}");
    assert_eq!(dry["executions"], json!(["p#1"]), "{dry}");
    let (_, still) = h.call("GET", "/api/v1/projects/p/executions/1", None).await;
    assert_eq!(still["number"], 1, "a dry run removes nothing");
    let (_, done) = h.call("POST", "/api/v1/gc?dry_run=false", None).await;
    assert_eq!(done["executions"], json!(["p#1"]), "{done}");
    assert!(
        done["blobs"].as_u64().unwrap() >= 1,
        "#1's log is swept: {done}"
    );
    let (st, _) = h.call("GET", "/api/v1/projects/p/executions/1", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(blob2.is_file(), "a kept execution's log stays");
}

#[tokio::test]
async fn metrics_count_executions_by_status_in_prometheus_text() {
    let h = harness(&[
        (".slipway/pipeline.yml", PIPELINE),
        ("buildspec.yml", BUILDSPEC),
    ])
    .await;
    h.project().await;
    h.call("POST", "/api/v1/projects/p/executions", Some(json!({})))
        .await;
    h.wait_terminal(1).await;
    let (st, text) = h.call("GET", "/metrics", None).await;
    assert_eq!(st, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    assert!(
        text.contains("slipway_executions{status=\"succeeded\"}"),
        "{text}"
    );
    assert!(text.contains("slipway_queue_depth"), "{text}");
    assert!(text.contains("slipway_action_duration_seconds"), "{text}");
}

fn two_stages(mode: &str) -> String {
    format!(
        "name: p\nexecution-mode: {mode}\nstages:\n  - name: build\n    actions:\n      - name: b\n        type: build\n        buildspec: slow.yml\n  - name: deploy\n    actions:\n      - name: d\n        type: build\n        buildspec: slow.yml\n"
    )
}

const SLOW: &str = "version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 0.4\n";

#[tokio::test]
async fn superseded_mode_replaces_the_execution_waiting_for_a_stage() {
    let pipeline = two_stages("superseded");
    let h = harness(&[(".slipway/pipeline.yml", &pipeline), ("slow.yml", SLOW)]).await;
    h.project().await;
    for _ in 0..3 {
        let (st, v) = h
            .call("POST", "/api/v1/projects/p/executions", Some(json!({})))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    let one = h.wait_terminal(1).await;
    let two = h.wait_terminal(2).await;
    let three = h.wait_terminal(3).await;
    assert_eq!(one["status"], "succeeded", "{one}");
    assert_eq!(two["status"], "superseded", "{two}");
    assert_eq!(three["status"], "succeeded", "{three}");
    assert_eq!(
        two["actions"].as_array().unwrap().len(),
        0,
        "#2 never entered a stage"
    );
}

#[tokio::test]
async fn queued_mode_runs_one_execution_at_a_time_in_order() {
    let pipeline = two_stages("queued");
    let h = harness(&[(".slipway/pipeline.yml", &pipeline), ("slow.yml", SLOW)]).await;
    h.project().await;
    for _ in 0..2 {
        h.call("POST", "/api/v1/projects/p/executions", Some(json!({})))
            .await;
    }
    let one = h.wait_terminal(1).await;
    let two = h.wait_terminal(2).await;
    assert_eq!(one["status"], "succeeded", "{one}");
    assert_eq!(two["status"], "succeeded", "{two}");
    assert!(
        two["started_ms"].as_i64().unwrap() >= one["finished_ms"].as_i64().unwrap(),
        "#2 started after #1 finished: {one} {two}"
    );
}

#[tokio::test]
async fn parallel_mode_runs_executions_side_by_side() {
    let pipeline = two_stages("parallel");
    let h = harness(&[(".slipway/pipeline.yml", &pipeline), ("slow.yml", SLOW)]).await;
    h.project().await;
    for _ in 0..2 {
        h.call("POST", "/api/v1/projects/p/executions", Some(json!({})))
            .await;
    }
    let one = h.wait_terminal(1).await;
    let two = h.wait_terminal(2).await;
    assert!(
        two["started_ms"].as_i64().unwrap() < one["finished_ms"].as_i64().unwrap(),
        "#2 ran beside #1: {one} {two}"
    );
}
