//! One leased job, start to end: workspace from the source blob and inputs, the build (or
//! batch) through the engine, heartbeats beside it, events through the uplink, artifacts
//! and the log uploaded, the result reported; the workspace removed whatever happened.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use slipway_engine::secrets::FileAndEnvSecrets;
use slipway_engine::{BuildEnvironment, BuildIds, BuildJob, BuildResult, EventSink};
use slipway_executor::ServiceContainer;
use slipway_model::{Digest, Status};
use slipway_proto::job::{Assignment, JobResult};
use slipway_store::BlobStore;
use tokio_util::sync::CancellationToken;

use crate::{AgentConfig, JobSource, SourceError};

/// Why the job's token fired.
const RUNNING: u8 = 0;
const CANCELLED: u8 = 1;
const LEASE_LOST: u8 = 2;
const AGENT_STOPPING: u8 = 3;

pub(crate) async fn run(
    source: &dyn JobSource,
    config: &AgentConfig,
    store: &BlobStore,
    a: Assignment,
    shutdown: &CancellationToken,
) {
    let dir = config.work_dir.join("jobs").join(a.job_id.to_string());
    let started = Instant::now();
    let cancel = CancellationToken::new();
    let why = Arc::new(AtomicU8::new(RUNNING));
    // Heartbeats keep the lease and bring cancellation; a lost lease stops the job.
    let beats = {
        let cancel = cancel.clone();
        let why = why.clone();
        let ttl = Duration::from_millis(a.lease_ttl_ms.max(300));
        let lease = a.lease_id.clone();
        let job = a.job_id;
        async move {
            let mut failing_since: Option<Instant> = None;
            loop {
                match source.heartbeat(job, &lease, ttl / 3).await {
                    Ok(r) => {
                        failing_since = None;
                        if r.cancel && why.load(Ordering::SeqCst) == RUNNING {
                            tracing::info!(job, "cancelled by the server");
                            why.store(CANCELLED, Ordering::SeqCst);
                            cancel.cancel();
                        }
                        if r.cancel {
                            // Keep the lease while the job winds down.
                            tokio::time::sleep(ttl / 4).await;
                        }
                    }
                    Err(SourceError::LeaseLost(e)) => {
                        tracing::warn!(job, error = %e, "lease lost: stopping the job");
                        why.store(LEASE_LOST, Ordering::SeqCst);
                        cancel.cancel();
                        return;
                    }
                    Err(e) => {
                        // The server may be restarting: the job goes on, its events wait.
                        let since = *failing_since.get_or_insert_with(Instant::now);
                        tracing::debug!(job, error = %e, down_for = ?since.elapsed(), "heartbeat failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200).min(ttl / 4)).await;
                    }
                }
            }
        }
    };
    let stopping = async {
        shutdown.cancelled().await;
        if why.load(Ordering::SeqCst) == RUNNING {
            why.store(AGENT_STOPPING, Ordering::SeqCst);
        }
        cancel.cancel();
        std::future::pending::<()>().await
    };
    let work = run_job(
        source,
        config,
        store,
        &a,
        &dir,
        cancel.clone(),
        why.clone(),
        started,
    );
    tokio::pin!(work);
    tokio::pin!(beats);
    tokio::pin!(stopping);
    let mut beating = true;
    // The job always runs to its end: a cancel, a lost lease or a stopping agent only fire
    // its token, so its processes and containers are cleaned up on the way out.
    loop {
        tokio::select! {
            _ = &mut work => break,
            _ = &mut beats, if beating => beating = false,
            _ = &mut stopping => {}
        }
    }
    if tokio::fs::remove_dir_all(&dir).await.is_err() && dir.exists() {
        tracing::warn!(dir = %dir.display(), "could not remove the job's directory");
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_job(
    source: &dyn JobSource,
    config: &AgentConfig,
    store: &BlobStore,
    a: &Assignment,
    dir: &Path,
    cancel: CancellationToken,
    why: Arc<AtomicU8>,
    started: Instant,
) {
    let spec = &a.spec;
    let (sink, rx) = EventSink::channel(a.execution.clone(), 1024);
    let uplink = crate::uplink::run(source, a.job_id, &a.lease_id, rx);
    // The events end with the build (every sink clone is dropped), so the uplink finishes.
    let build = build(config, store, source, a, dir, sink, cancel.clone());
    let (mut result, sent) = tokio::join!(build, uplink);
    match why.load(Ordering::SeqCst) {
        LEASE_LOST => return,
        AGENT_STOPPING => {
            result.status = Status::Fault;
            result.reason = Some("the agent stopped while it ran".into());
        }
        _ => {}
    }
    let sent = match sent {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(job = a.job_id, error = %e, "events could not be delivered; the job is dropped");
            return;
        }
    };
    tracing::info!(job = a.job_id, chunks = sent.chunks, events = sent.events, retries = sent.retries, status = %result.status, "job ran; reporting");
    // Artifacts and the log, then the result that names them.
    let mut blobs: Vec<Digest> = result.artifacts.iter().map(|x| x.digest.clone()).collect();
    blobs.extend(result.log.clone());
    for d in &blobs {
        if let Err(e) = retrying(|| source.put_blob(d, store), &why).await {
            tracing::warn!(job = a.job_id, digest = %d, error = %e, "upload failed");
            if matches!(e, SourceError::LeaseLost(_)) {
                return;
            }
            result.status = Status::Fault;
            result.reason = Some(format!("uploading {d}: {e}"));
        }
    }
    let report = JobResult {
        lease_id: a.lease_id.clone(),
        chunks: sent.chunks,
        status: result.status,
        reason: result.reason.clone(),
        outputs: result.exported.clone(),
        artifacts: result.artifacts.clone(),
        reports: result.reports.clone(),
        log: result.log.clone(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    match retrying(|| source.finish(a.job_id, &report), &why).await {
        Ok(()) => tracing::info!(job = a.job_id, status = %report.status, "result reported"),
        Err(e) => tracing::warn!(job = a.job_id, error = %e, "the result could not be reported"),
    }
    for d in blobs
        .iter()
        .chain([&spec.source])
        .chain(spec.inputs.iter().map(|(_, d)| d))
    {
        let _ = store.remove(d);
    }
}

/// Calls `f` until it succeeds, the lease is lost, or it fails for good.
async fn retrying<F, Fut>(mut f: F, why: &AtomicU8) -> Result<(), SourceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), SourceError>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match f().await {
            Err(SourceError::Retry(e)) => {
                if why.load(Ordering::SeqCst) == LEASE_LOST {
                    return Err(SourceError::LeaseLost(e));
                }
                tracing::debug!(error = %e, "retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// Prepares and runs the build; every failure to prepare is a result, not an error.
async fn build(
    config: &AgentConfig,
    store: &BlobStore,
    source: &dyn JobSource,
    a: &Assignment,
    dir: &Path,
    sink: EventSink,
    cancel: CancellationToken,
) -> BuildResult {
    let spec = &a.spec;
    let fault = |why: String| BuildResult::ended(Status::Fault, Some(why));
    let executor = match spec.executor.as_str() {
        "docker" => config.docker.clone(),
        "local" => config.local.clone(),
        _ => None,
    };
    let Some(executor) = executor else {
        return fault(format!("this agent has no {} executor", spec.executor));
    };
    // The source tree and the input artifacts, from the server's blob store.
    let mut wanted: Vec<&Digest> = vec![&spec.source];
    wanted.extend(spec.inputs.iter().map(|(_, d)| d));
    for d in wanted {
        if store.contains(d) {
            continue;
        }
        let got = tokio::select! {
            r = fetch(source, d, store) => r,
            _ = cancel.cancelled() => return BuildResult::ended(Status::Cancelled, Some("cancelled before it started".into())),
        };
        if let Err(e) = got {
            return fault(format!("downloading {d}: {e}"));
        }
    }
    let src = dir.join("src");
    let empty = dir.join("empty");
    if let Err(e) = tokio::fs::create_dir_all(&empty).await {
        return fault(format!("{}: {e}", empty.display()));
    }
    let tree = [("source".to_string(), store.path(&spec.source))];
    if let Err(e) = slipway_engine::workspace::prepare(&empty, &src, &tree).await {
        return fault(format!("unpacking the source: {e}"));
    }
    let buildspec = match slipway_engine::execution::load_buildspec(
        &src.join(&spec.buildspec),
        &spec.buildspec,
    )
    .await
    {
        Ok(b) => b,
        Err(e) => return BuildResult::ended(Status::Failed, Some(e)),
    };
    let work_root = config.work_dir.join("work");
    let _ = tokio::fs::create_dir_all(&work_root).await;
    let env = BuildEnvironment {
        executor,
        store: store.clone(),
        work_root,
        cache_root: config.work_dir.join("cache"),
        artifacts_dir: None,
        secrets: Arc::new(FileAndEnvSecrets::env_only()),
        events: sink,
    };
    let job = BuildJob {
        stage: spec.stage.clone(),
        action: spec.action.clone(),
        attempt: spec.attempt,
        source: src.clone(),
        buildspec,
        image: spec.image.clone(),
        privileged: spec.privileged,
        services: spec
            .services
            .iter()
            .map(|s| ServiceContainer {
                name: s.name.clone(),
                image: s.image.clone(),
                env: s.env.clone(),
                command: s.command.clone(),
            })
            .collect(),
        project_env: spec.env.clone(),
        overrides: spec.overrides.clone(),
        inputs: spec
            .inputs
            .iter()
            .map(|(n, d)| (n.clone(), store.path(d)))
            .collect(),
        primary_artifact: spec.primary_artifact.clone(),
        ids: BuildIds {
            build_id: spec.ids.build_id.clone(),
            build_number: spec.ids.build_number,
            initiator: spec.ids.initiator.clone(),
            source_version: spec.ids.source_version.clone(),
            resolved_source_version: spec.ids.resolved_source_version.clone(),
            batch_identifier: None,
            project: spec.project.clone(),
        },
        timeout: spec.timeout_ms.map(Duration::from_millis),
        cancel,
    };
    slipway_engine::execution::run_build_or_batch(&env, job, 2, &src).await
}

async fn fetch(source: &dyn JobSource, d: &Digest, store: &BlobStore) -> Result<(), SourceError> {
    let why = AtomicU8::new(RUNNING);
    retrying(|| source.fetch_blob(d, store), &why).await
}
