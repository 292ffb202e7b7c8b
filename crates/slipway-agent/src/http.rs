//! The job protocol over HTTP (docs/agents.md): registration, and a [`JobSource`] that talks
//! to a Slipway server with the agent's token. Connection failures, timeouts and 5xx are
//! `Retry` (a restarting server loses nothing the agent holds); a 409 `lease_lost` is
//! `LeaseLost`; other refusals are `Fatal`.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use slipway_model::Digest;
use slipway_proto::job::{
    Assignment, ChunkAck, EventChunk, Heartbeat, HeartbeatReply, JOB_PROTOCOL_VERSION, JobResult,
    LeaseReply, LeaseRequest, Register, Registered, VERSION_HEADER,
};
use slipway_store::BlobStore;

use crate::{JobSource, SourceError};

/// A server, and the agent's token once it has one.
pub struct HttpSource {
    base: Url,
    http: reqwest::Client,
    token: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("slipway-agent/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default()
}

fn url(base: &Url, segments: &[&str]) -> Url {
    let mut u = base.clone();
    if let Ok(mut p) = u.path_segments_mut() {
        p.pop_if_empty().extend(["api", "v1"]).extend(segments);
    }
    u
}

/// Exchanges a registration token for the agent's own.
pub async fn register(server: &Url, r: &Register) -> Result<Registered, SourceError> {
    let http = client();
    let req = http
        .post(url(server, &["agent", "register"]))
        .header(VERSION_HEADER, JOB_PROTOCOL_VERSION.to_string())
        .timeout(Duration::from_secs(30))
        .json(r);
    decode(req.send().await).await
}

async fn decode<T: DeserializeOwned>(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, SourceError> {
    let resp = check(sent).await?;
    resp.json::<T>()
        .await
        .map_err(|e| SourceError::Retry(format!("reading the answer: {e}")))
}

async fn check(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, SourceError> {
    let resp = sent.map_err(|e| SourceError::Retry(format!("the server is unreachable: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    let err: Option<slipway_proto::api::ApiError> = serde_json::from_str(&text).ok();
    let (code, message) = match err {
        Some(e) => (e.code, e.message),
        None => (String::new(), text),
    };
    Err(match status {
        StatusCode::CONFLICT if code == "lease_lost" => SourceError::LeaseLost(message),
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
            SourceError::Retry(format!("{s}: {message}"))
        }
        s => SourceError::Fatal(format!("{s}: {message}")),
    })
}

impl HttpSource {
    pub fn new(base: Url, token: String) -> Self {
        Self {
            base,
            http: client(),
            token,
        }
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.http
            .request(method, url(&self.base, segments))
            .bearer_auth(&self.token)
            .header(VERSION_HEADER, JOB_PROTOCOL_VERSION.to_string())
    }

    async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        segments: &[&str],
        body: &B,
        timeout: Duration,
    ) -> Result<T, SourceError> {
        let req = self
            .request(Method::POST, segments)
            .timeout(timeout)
            .json(body);
        decode(req.send().await).await
    }
}

#[async_trait]
impl JobSource for HttpSource {
    async fn lease(&self, wait: Duration) -> Result<Option<Assignment>, SourceError> {
        let body = LeaseRequest {
            version: JOB_PROTOCOL_VERSION,
            wait_ms: wait.as_millis() as u64,
        };
        let r: LeaseReply = self
            .post(&["agent", "lease"], &body, wait + Duration::from_secs(10))
            .await?;
        Ok(r.job)
    }

    async fn heartbeat(
        &self,
        job: i64,
        lease_id: &str,
        wait: Duration,
    ) -> Result<HeartbeatReply, SourceError> {
        let body = Heartbeat {
            lease_id: lease_id.to_string(),
            wait_ms: wait.as_millis() as u64,
        };
        let id = job.to_string();
        // A heartbeat that cannot get through within the wait plus a little is retried at
        // once, so a lease is never left to lapse behind a stuck connection.
        self.post(
            &["agent", "jobs", &id, "heartbeat"],
            &body,
            wait + Duration::from_secs(2),
        )
        .await
    }

    async fn send_events(&self, job: i64, chunk: &EventChunk) -> Result<ChunkAck, SourceError> {
        let id = job.to_string();
        self.post(
            &["agent", "jobs", &id, "events"],
            chunk,
            Duration::from_secs(30),
        )
        .await
    }

    async fn fetch_blob(&self, digest: &Digest, into: &BlobStore) -> Result<(), SourceError> {
        let resp = check(
            self.request(Method::GET, &["agent", "blobs", digest.as_str()])
                .send()
                .await,
        )
        .await?;
        let mut w = into
            .writer()
            .await
            .map_err(|e| SourceError::Fatal(e.to_string()))?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| SourceError::Retry(format!("download cut short: {e}")))?;
            w.write(&chunk)
                .await
                .map_err(|e| SourceError::Fatal(e.to_string()))?;
        }
        w.finish_expecting(digest)
            .await
            .map(|_| ())
            .map_err(|e| SourceError::Retry(format!("download of {digest}: {e}")))
    }

    async fn put_blob(&self, digest: &Digest, from: &BlobStore) -> Result<(), SourceError> {
        let f = from
            .open_blob(digest)
            .await
            .map_err(|e| SourceError::Fatal(e.to_string()))?;
        let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
        let req = self
            .request(Method::PUT, &["agent", "blobs", digest.as_str()])
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        check(req.send().await).await.map(|_| ())
    }

    async fn finish(&self, job: i64, result: &JobResult) -> Result<(), SourceError> {
        let id = job.to_string();
        let req = self
            .request(Method::POST, &["agent", "jobs", &id, "result"])
            .timeout(Duration::from_secs(30))
            .json(result);
        check(req.send().await).await.map(|_| ())
    }
}
