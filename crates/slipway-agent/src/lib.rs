//! slipway-agent: the job loop of `slipway agent run`. It leases jobs from a [`JobSource`]
//! (the server over HTTP: [`http::HttpSource`]), prepares a workspace from the source blob
//! and input artifacts, runs the build with the same engine and executors as the server's
//! embedded runner, sends its events in numbered chunks ([`uplink`]) while heartbeats keep
//! the lease (and bring cancellation), uploads artifacts and the log, and reports the result.
//!
//! Architecture invariant: the loop never talks HTTP itself (only through `JobSource`), and
//! never removes anything outside its own work directory or without its own runner id.

pub mod http;
mod job;
pub mod uplink;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use slipway_model::Digest;
use slipway_proto::job::{Assignment, ChunkAck, EventChunk, HeartbeatReply, JobResult};
use slipway_store::BlobStore;
use tokio_util::sync::CancellationToken;

/// Why a call to the job source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The job's lease is gone (expired, or the job ended): stop the job, report nothing.
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// Worth trying again: the server is unreachable, restarting or not ready.
    #[error("{0}")]
    Retry(String),
    /// Trying again will not help (a refused token, a bad request).
    #[error("{0}")]
    Fatal(String),
}

/// Where jobs come from and where their events and results go. Every method may be called
/// concurrently for different jobs; each is safe to call again after an error (the server
/// side is idempotent: a chunk or result sent twice is stored once).
#[async_trait]
pub trait JobSource: Send + Sync {
    /// Waits up to `wait` for a job this agent can run.
    async fn lease(&self, wait: Duration) -> Result<Option<Assignment>, SourceError>;
    /// Renews the lease; the source may hold the call up to `wait` and answers early on a
    /// cancellation.
    async fn heartbeat(
        &self,
        job: i64,
        lease_id: &str,
        wait: Duration,
    ) -> Result<HeartbeatReply, SourceError>;
    async fn send_events(&self, job: i64, chunk: &EventChunk) -> Result<ChunkAck, SourceError>;
    /// Copies a blob of the source's store into `into` (verified by digest).
    async fn fetch_blob(&self, digest: &Digest, into: &BlobStore) -> Result<(), SourceError>;
    /// Copies a blob of `from` into the source's store, streamed.
    async fn put_blob(&self, digest: &Digest, from: &BlobStore) -> Result<(), SourceError>;
    async fn finish(&self, job: i64, result: &JobResult) -> Result<(), SourceError>;
}

/// How an agent runs its jobs.
#[derive(Clone)]
pub struct AgentConfig {
    /// Workspaces, the local blob store, caches and session records live below it; the
    /// agent removes whatever a killed predecessor left here at start.
    pub work_dir: PathBuf,
    pub concurrency: usize,
    pub local: Option<Arc<dyn slipway_executor::Executor>>,
    pub docker: Option<Arc<dyn slipway_executor::Executor>>,
}

impl AgentConfig {
    pub fn store(&self) -> std::io::Result<BlobStore> {
        BlobStore::open(self.work_dir.join("store")).map_err(std::io::Error::other)
    }
}

/// Runs jobs until `shutdown`: `concurrency` loops, each leasing one job at a time. Jobs
/// running at shutdown are stopped and reported as faults (`the agent stopped`).
pub async fn run(
    source: Arc<dyn JobSource>,
    config: AgentConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let store = config.store()?;
    let mut loops = Vec::new();
    for slot in 0..config.concurrency.max(1) {
        let source = source.clone();
        let config = config.clone();
        let store = store.clone();
        let shutdown = shutdown.clone();
        loops.push(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            while !shutdown.is_cancelled() {
                let leased = tokio::select! {
                    r = source.lease(Duration::from_secs(25)) => r,
                    _ = shutdown.cancelled() => break,
                };
                match leased {
                    Ok(Some(a)) => {
                        backoff = Duration::from_millis(200);
                        tracing::info!(slot, job = a.job_id, execution = %a.execution, stage = %a.spec.stage, action = %a.spec.action, attempt = a.spec.attempt, "job leased");
                        job::run(source.as_ref(), &config, &store, a, &shutdown).await;
                    }
                    Ok(None) => backoff = Duration::from_millis(200),
                    Err(SourceError::Fatal(e)) => {
                        tracing::error!(error = %e, "the server refuses this agent");
                        shutdown.cancel();
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "no lease; trying again in {backoff:?}");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.cancelled() => break,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }));
    }
    for l in loops {
        let _ = l.await;
    }
    Ok(())
}

/// Removes what a killed predecessor over the same work directory left: its local
/// sessions' process groups, its containers and networks (by runner id, owner gone) and
/// every workspace below the work directory. Returns what was removed, for the log.
pub async fn remove_leftovers(config: &AgentConfig) -> String {
    let mut said = Vec::new();
    for (what, ex) in [
        ("local sessions", &config.local),
        ("containers and networks", &config.docker),
    ] {
        if let Some(ex) = ex {
            match ex.remove_orphans().await {
                Ok(0) => {}
                Ok(n) => said.push(format!("{n} {what}")),
                Err(e) => tracing::warn!(error = %e, "looking for leftover {what}"),
            }
        }
    }
    let mut dirs = 0;
    for sub in ["work", "jobs"] {
        let dir = config.work_dir.join(sub);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                let gone = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                if gone.is_ok() {
                    dirs += 1;
                }
            }
        }
    }
    if dirs > 0 {
        said.push(format!("{dirs} workspaces"));
    }
    said.join(", ")
}
