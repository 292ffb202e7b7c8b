//! An execution of a pipeline: stages in order, actions of equal run order in parallel,
//! artifacts and output variables flowing from earlier actions to later ones.
//!
//! The same code serves `slipway run` (a throwaway store, approvals at the terminal) and,
//! later, the server (a persistent store, approvals from the API).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use slipway_executor::{Executor, ServiceContainer};
use slipway_model::Status;
use slipway_proto::{ArtifactRef, EventBody, ReportSummary};
use slipway_spec::buildspec::{self, BatchBuild, BatchKind, Buildspec};
use slipway_spec::pipeline::{
    self, Action, ActionKind, ExecutorChoice, Pipeline, RetryOn, StageFailure,
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::build::{BuildEnvironment, BuildIds, BuildJob, BuildResult, run_build};
use crate::events::EventSink;
use crate::secrets::SecretSource;

/// A person's answer to an approval action.
#[derive(Clone, Debug)]
pub struct Decision {
    pub approved: bool,
    /// Nobody decided before the approval's deadline (one set before a restart, say).
    pub timed_out: bool,
    pub by: String,
    pub comment: Option<String>,
}

/// Answers approval actions. Called once per approval action (again after a resume),
/// possibly concurrently; dropped unfinished when the execution is cancelled or the approval
/// times out, so it must hold nothing that needs cleaning up.
#[async_trait]
pub trait Approver: Send + Sync {
    async fn decide(&self, request: &ApprovalRequest) -> Decision;
}

/// What an approval action asks.
#[derive(Clone, Debug)]
pub struct ApprovalRequest {
    pub execution: String,
    pub stage: String,
    pub action: String,
    pub message: Option<String>,
    /// How long it waits before it fails as timed out (the engine enforces it).
    pub timeout: Duration,
}

/// The executors an engine may use; Docker only when an engine answered.
#[derive(Clone)]
pub struct Executors {
    pub local: Arc<dyn Executor>,
    pub docker: Option<Arc<dyn Executor>>,
    /// Image builds and pushes (the Docker engine), for image actions.
    pub images: Option<Arc<dyn slipway_executor::ImageBuilder>>,
}

/// What an engine needs that outlives one execution.
#[derive(Clone)]
pub struct Engine {
    pub executors: Executors,
    pub store: slipway_store::BlobStore,
    pub work_root: PathBuf,
    pub cache_root: PathBuf,
    pub artifacts_dir: Option<PathBuf>,
    pub secrets: Arc<dyn SecretSource>,
    pub approver: Arc<dyn Approver>,
    /// Batch builds running at once.
    pub batch_concurrency: usize,
    /// How long an approval action waits when its `timeout:` says nothing (CodePipeline: 7 days).
    pub approval_timeout: Duration,
    /// Slipway's own registry, where image actions push unless they name another.
    pub registry: Option<crate::image::RegistryTarget>,
    /// The pause before an action's first retry, doubled for each further one (at most 5 min).
    pub retry_backoff: Duration,
    /// Build actions running at once across every execution of this engine (the embedded
    /// runner's concurrency); `None`: no limit.
    pub job_slots: Option<Arc<tokio::sync::Semaphore>>,
    /// Where build actions with `runs-on` go (the server's agents); `None`: they run here.
    pub dispatch: Option<Arc<dyn crate::dispatch::Dispatch>>,
}

/// Admission to a stage, for execution modes: a pipeline in `superseded` mode lets one
/// execution into a stage at a time, with at most one waiting before it; a newer arrival
/// supersedes the waiting one.
#[async_trait]
pub trait StageGate: Send + Sync {
    /// Waits until the execution may enter `stage`; the returned slot is held while the stage
    /// runs and released when dropped. `None`: a newer execution superseded this one while it
    /// waited. Dropping the future (cancellation) gives up the wait.
    async fn enter(&self, stage: &str) -> Option<Box<dyn Send>>;
}

/// Continues an execution that stopped: what already ran is not run again.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// Why it runs again (the `execution_resumed` event's reason).
    pub reason: String,
    /// Actions that ran before, by `(stage, action)`: their latest attempt.
    pub prior: BTreeMap<(String, String), PriorAction>,
    /// A person asked (`retry`): failed actions get their whole retry policy again. Otherwise
    /// (recovery) an interrupted attempt counts against it.
    pub fresh_budget: bool,
}

/// The latest attempt of an action in an earlier part of the execution.
#[derive(Clone, Debug)]
pub struct PriorAction {
    pub status: Status,
    pub attempts: u32,
    pub reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub artifacts: Vec<ArtifactRef>,
}

/// One execution to run.
#[derive(Clone)]
pub struct ExecutionRequest {
    pub pipeline: Pipeline,
    /// The repository's files (a working tree, or a revision exported to a directory).
    pub source: PathBuf,
    pub revision: Option<String>,
    pub source_version: Option<String>,
    /// Pipeline variable values over their defaults.
    pub variables: Vec<(String, String)>,
    /// Environment variables over everything (`--env`).
    pub overrides: Vec<(String, String)>,
    /// The image for build actions that name none (`--image`).
    pub default_image: Option<String>,
    /// Executor for build actions that name none (`--executor`); else docker when an image is given.
    pub default_executor: Option<ExecutorChoice>,
    pub privileged: bool,
    pub trigger: String,
    pub project: String,
    pub number: u64,
    /// Set when the execution continues after a stop instead of starting.
    pub resume: Option<Resume>,
    /// Admission to stages (the `superseded` execution mode); `None`: enter at once.
    pub gate: Option<Arc<dyn StageGate>>,
}

/// One action's end, for summaries.
#[derive(Clone, Debug)]
pub struct ActionSummary {
    pub stage: String,
    pub action: String,
    pub status: Status,
    pub duration: Duration,
    pub attempts: u32,
    pub reason: Option<String>,
    pub reports: Vec<ReportSummary>,
    pub artifacts: Vec<ArtifactRef>,
    pub outputs: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct ExecutionResult {
    pub status: Status,
    pub duration: Duration,
    pub actions: Vec<ActionSummary>,
}

/// State shared by the actions of one execution.
struct Shared {
    /// `namespace -> (name -> value)`, including `variables` and `slipway`.
    vars: BTreeMap<String, BTreeMap<String, String>>,
    /// Output artifact name -> tar blob path.
    artifacts: BTreeMap<String, PathBuf>,
}

/// Runs a whole execution, emitting its events. Never panics on the user's files; a failed
/// execution is `Ok` with `status: Failed`.
pub async fn run_execution(
    engine: &Engine,
    req: ExecutionRequest,
    events: EventSink,
    cancel: CancellationToken,
) -> ExecutionResult {
    let started = Instant::now();
    match &req.resume {
        None => {
            events
                .emit(EventBody::ExecutionStarted {
                    pipeline: req.pipeline.name.clone(),
                    revision: req.revision.clone(),
                    trigger: req.trigger.clone(),
                })
                .await
        }
        Some(r) => {
            events
                .emit(EventBody::ExecutionResumed {
                    reason: r.reason.clone(),
                })
                .await
        }
    }
    let mut vars: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut pv = BTreeMap::new();
    for v in &req.pipeline.variables {
        if let Some(d) = &v.default {
            pv.insert(v.name.clone(), d.clone());
        }
    }
    for (k, v) in &req.variables {
        pv.insert(k.clone(), v.clone());
    }
    vars.insert("variables".into(), pv);
    let mut sv = BTreeMap::new();
    sv.insert("ExecutionId".into(), events.execution().to_string());
    sv.insert("PipelineName".into(), req.pipeline.name.clone());
    sv.insert(
        "SourceRevision".into(),
        req.revision.clone().unwrap_or_default(),
    );
    // CodePipeline's one built-in variable, under its own name.
    let cp = BTreeMap::from([(
        "PipelineExecutionId".to_string(),
        events.execution().to_string(),
    )]);
    vars.insert("slipway".into(), sv);
    vars.insert("codepipeline".into(), cp);
    let shared = Arc::new(Mutex::new(Shared {
        vars,
        artifacts: BTreeMap::new(),
    }));

    let mut summaries: Vec<ActionSummary> = Vec::new();
    let mut status = Status::Succeeded;
    for stage in &req.pipeline.stages {
        if status != Status::Succeeded {
            for a in &stage.actions {
                summaries.push(skipped(
                    &stage.name,
                    &a.name,
                    "an earlier stage did not succeed",
                ));
            }
            continue;
        }
        // Actions that succeeded before a resume count as done: their outputs flow on.
        let mut stage_results: BTreeMap<String, ActionSummary> = BTreeMap::new();
        if let Some(resume) = &req.resume {
            for a in &stage.actions {
                let key = (stage.name.clone(), a.name.clone());
                if let Some(p) = resume.prior.get(&key).filter(|p| p.status.is_success()) {
                    let mut s = shared.lock().await;
                    if let Some(ns) = &a.namespace {
                        s.vars.insert(ns.clone(), p.outputs.clone());
                    }
                    for art in &p.artifacts {
                        s.artifacts
                            .insert(art.name.clone(), engine.store.path(&art.digest));
                    }
                    stage_results.insert(a.name.clone(), prior_summary(&stage.name, a, p));
                }
            }
            if stage_results.len() == stage.actions.len() {
                summaries.extend(
                    stage
                        .actions
                        .iter()
                        .filter_map(|a| stage_results.remove(&a.name)),
                );
                continue;
            }
        }
        let _stage_slot = match &req.gate {
            None => None,
            Some(gate) => {
                let entered = tokio::select! {
                    e = gate.enter(&stage.name) => e,
                    _ = cancel.cancelled() => None,
                };
                match entered {
                    Some(slot) => Some(slot),
                    None => {
                        status = if cancel.is_cancelled() {
                            Status::Cancelled
                        } else {
                            Status::Superseded
                        };
                        let why = if cancel.is_cancelled() {
                            "cancelled while waiting to enter the stage"
                        } else {
                            "superseded by a newer execution"
                        };
                        for a in &stage.actions {
                            match stage_results.remove(&a.name) {
                                Some(done) => summaries.push(done),
                                None => summaries.push(skipped(&stage.name, &a.name, why)),
                            }
                        }
                        continue;
                    }
                }
            }
        };
        let stage_started = Instant::now();
        events
            .emit(EventBody::StageStarted {
                stage: stage.name.clone(),
            })
            .await;
        let retries = match stage.on_failure {
            StageFailure::Retry(n) => n,
            _ => 0,
        };
        let mut stage_status = Status::Succeeded;
        for group in Pipeline::stage_groups(stage) {
            let mut try_n = 0;
            let mut todo: Vec<&Action> = group
                .iter()
                .copied()
                .filter(|a| !stage_results.contains_key(&a.name))
                .collect();
            loop {
                let futs = todo.iter().map(|a| {
                    let prior = match (&req.resume, try_n) {
                        (Some(r), 0) => r.prior.get(&(stage.name.clone(), a.name.clone())),
                        _ => None,
                    };
                    let fresh = req.resume.as_ref().is_some_and(|r| r.fresh_budget);
                    run_action(
                        engine,
                        &req,
                        &stage.name,
                        a,
                        (prior, fresh),
                        &events,
                        &shared,
                        &cancel,
                    )
                });
                let results = futures::future::join_all(futs).await;
                for r in results {
                    stage_results.insert(r.action.clone(), r);
                }
                let failed: Vec<&Action> = todo
                    .iter()
                    .copied()
                    .filter(|a| {
                        stage_results
                            .get(&a.name)
                            .is_some_and(|r| !r.status.is_success())
                    })
                    .collect();
                if failed.is_empty() || try_n >= retries || cancel.is_cancelled() {
                    break;
                }
                try_n += 1;
                todo = failed;
            }
            if let Some(bad) = group
                .iter()
                .filter_map(|a| stage_results.get(&a.name))
                .find(|r| !r.status.is_success())
            {
                stage_status = bad.status;
                break;
            }
        }
        for a in &stage.actions {
            match stage_results.remove(&a.name) {
                Some(r) => summaries.push(r),
                None => summaries.push(skipped(
                    &stage.name,
                    &a.name,
                    "an earlier action in the stage did not succeed",
                )),
            }
        }
        if stage_status != Status::Succeeded && stage.on_failure == StageFailure::Rollback {
            // Rolling back deployments needs the server's deployer (the deployments issue).
            tracing::warn!(stage = %stage.name, "on-failure: rollback needs a server; the stage fails");
        }
        events
            .emit(EventBody::StageFinished {
                stage: stage.name.clone(),
                status: stage_status,
                duration_ms: stage_started.elapsed().as_millis() as u64,
            })
            .await;
        status = stage_status;
    }
    if cancel.is_cancelled() && status == Status::Succeeded {
        status = Status::Cancelled;
    }
    events
        .emit(EventBody::ExecutionFinished {
            status,
            duration_ms: started.elapsed().as_millis() as u64,
        })
        .await;
    ExecutionResult {
        status,
        duration: started.elapsed(),
        actions: summaries,
    }
}

fn prior_summary(stage: &str, a: &Action, p: &PriorAction) -> ActionSummary {
    ActionSummary {
        stage: stage.into(),
        action: a.name.clone(),
        status: p.status,
        duration: Duration::ZERO,
        attempts: p.attempts,
        reason: p.reason.clone(),
        reports: Vec::new(),
        artifacts: p.artifacts.clone(),
        outputs: p.outputs.clone(),
    }
}

fn skipped(stage: &str, action: &str, why: &str) -> ActionSummary {
    ActionSummary {
        stage: stage.into(),
        action: action.into(),
        status: Status::Skipped,
        duration: Duration::ZERO,
        attempts: 0,
        reason: Some(why.into()),
        reports: Vec::new(),
        artifacts: Vec::new(),
        outputs: BTreeMap::new(),
    }
}

fn kind_name(k: &ActionKind) -> &'static str {
    match k {
        ActionKind::Build(_) => "build",
        ActionKind::Image(_) => "image",
        ActionKind::Deploy(_) => "deploy",
        ActionKind::Approval(_) => "approval",
    }
}

async fn interpolate(shared: &Arc<Mutex<Shared>>, text: &str) -> Result<String, String> {
    if !text.contains("#{") {
        return Ok(text.to_string());
    }
    let s = shared.lock().await;
    pipeline::vars::interpolate(text, |ns, name| {
        s.vars.get(ns).and_then(|m| m.get(name)).cloned()
    })
    .map_err(|missing| format!("unresolved variable(s): {}", missing.join(", ")))
}

fn retry_allowed(action: &Action, status: Status) -> bool {
    action.retry.on.iter().any(|on| match on {
        RetryOn::Any => !status.is_success(),
        RetryOn::Infrastructure => status == Status::Fault,
        RetryOn::Timeout => status == Status::TimedOut,
    })
}

/// Runs one action with its retry policy and records its outputs. `prior` is its latest
/// attempt before a resume, with whether its retry budget starts afresh.
#[allow(clippy::too_many_arguments)]
async fn run_action(
    engine: &Engine,
    req: &ExecutionRequest,
    stage: &str,
    action: &Action,
    (prior, fresh_budget): (Option<&PriorAction>, bool),
    events: &EventSink,
    shared: &Arc<Mutex<Shared>>,
    cancel: &CancellationToken,
) -> ActionSummary {
    let started = Instant::now();
    let mut attempts = action.retry.attempts.max(1);
    let mut attempt = 0;
    if let Some(p) = prior {
        attempt = p.attempts;
        if fresh_budget {
            attempts += p.attempts;
        } else if p.status.is_terminal() && !(attempt < attempts && retry_allowed(action, p.status))
        {
            // Recovery: the interrupted attempt was the last its retry policy allows.
            return prior_summary(stage, action, p);
        } else if !p.status.is_terminal() {
            // Waiting for approval (or never started): the same attempt goes on.
            attempt = attempt.saturating_sub(1);
        }
    }
    loop {
        attempt += 1;
        let executor_name = match &action.kind {
            ActionKind::Build(b) if remote(engine, b) => Some(
                match crate::dispatch::remote_executor(
                    b,
                    req.default_executor,
                    req.default_image.as_ref(),
                ) {
                    ExecutorChoice::Local => "local",
                    ExecutorChoice::Docker => "docker",
                }
                .to_string(),
            ),
            ActionKind::Build(b) => Some(
                choose_executor(engine, req, b)
                    .map(|(n, _)| n)
                    .unwrap_or("none")
                    .to_string(),
            ),
            _ => None,
        };
        events
            .emit(EventBody::ActionStarted {
                stage: stage.into(),
                action: action.name.clone(),
                attempt,
                kind: kind_name(&action.kind).into(),
                executor: executor_name,
            })
            .await;
        let t = Instant::now();
        let out =
            run_action_once(engine, req, stage, action, attempt, events, shared, cancel).await;
        events
            .emit(EventBody::ActionFinished {
                stage: stage.into(),
                action: action.name.clone(),
                attempt,
                status: out.status,
                duration_ms: t.elapsed().as_millis() as u64,
                reason: out.reason.clone(),
                outputs: out.exported.clone(),
                artifacts: out.artifacts.clone(),
                reports: out.reports.clone(),
                log: out.log.clone(),
            })
            .await;
        let retry =
            attempt < attempts && !cancel.is_cancelled() && retry_allowed(action, out.status);
        if retry {
            let pause = engine
                .retry_backoff
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(Duration::from_secs(300));
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = cancel.cancelled() => {}
                }
            }
            continue;
        }
        if out.status.is_success() {
            let mut s = shared.lock().await;
            if let Some(ns) = &action.namespace {
                s.vars.insert(ns.clone(), out.exported.clone());
            }
            for a in &out.artifacts {
                s.artifacts
                    .insert(a.name.clone(), engine.store.path(&a.digest));
            }
        }
        return ActionSummary {
            stage: stage.into(),
            action: action.name.clone(),
            status: out.status,
            duration: started.elapsed(),
            attempts: attempt,
            reason: out.reason,
            reports: out.reports,
            artifacts: out.artifacts,
            outputs: out.exported,
        };
    }
}

/// The build goes to an agent: it names `runs-on` and the engine has somewhere to send it.
fn remote(engine: &Engine, b: &pipeline::BuildAction) -> bool {
    !b.runs_on.is_empty() && engine.dispatch.is_some()
}

fn choose_executor(
    engine: &Engine,
    req: &ExecutionRequest,
    b: &pipeline::BuildAction,
) -> Result<(&'static str, Arc<dyn Executor>), String> {
    let image = b.image.as_ref().or(req.default_image.as_ref());
    let choice = b.executor.or(req.default_executor);
    match choice {
        Some(ExecutorChoice::Local) => Ok(("local", engine.executors.local.clone())),
        Some(ExecutorChoice::Docker) => match &engine.executors.docker {
            Some(d) => Ok(("docker", d.clone())),
            None => Err("the docker executor was asked for but no Docker engine answers".into()),
        },
        None => match (&engine.executors.docker, image) {
            (Some(d), Some(_)) => Ok(("docker", d.clone())),
            _ => Ok(("local", engine.executors.local.clone())),
        },
    }
}

fn failed(status: Status, reason: impl Into<String>) -> BuildResult {
    BuildResult::ended(status, Some(reason.into()))
}

#[allow(clippy::too_many_arguments)]
async fn run_action_once(
    engine: &Engine,
    req: &ExecutionRequest,
    stage: &str,
    action: &Action,
    attempt: u32,
    events: &EventSink,
    shared: &Arc<Mutex<Shared>>,
    cancel: &CancellationToken,
) -> BuildResult {
    match &action.kind {
        ActionKind::Build(b) => {
            // An agent brings its own executors: none is needed here for a remote build.
            let executor = if remote(engine, b) {
                engine.executors.local.clone()
            } else {
                match choose_executor(engine, req, b) {
                    Ok((_, x)) => x,
                    Err(e) => return failed(Status::Fault, e),
                }
            };
            let path = req.source.join(&b.buildspec);
            let bs = match load_buildspec(&path, &b.buildspec).await {
                Ok(bs) => bs,
                Err(e) => return failed(Status::Failed, e),
            };
            let mut env = Vec::new();
            for (k, v) in &b.env {
                match interpolate(shared, v).await {
                    Ok(v) => env.push((k.clone(), v)),
                    Err(e) => return failed(Status::Failed, format!("env.{k}: {e}")),
                }
            }
            let image = match b.image.as_ref().or(req.default_image.as_ref()) {
                Some(i) => match interpolate(shared, i).await {
                    Ok(i) => Some(i),
                    Err(e) => return failed(Status::Failed, format!("image: {e}")),
                },
                None => None,
            };
            let inputs = match input_artifacts(action, shared).await {
                Ok(v) => v,
                Err(e) => return e,
            };
            let job = BuildJob {
                stage: stage.into(),
                action: action.name.clone(),
                attempt,
                source: req.source.clone(),
                buildspec: bs,
                image,
                privileged: b.privileged || req.privileged,
                services: b
                    .services
                    .iter()
                    .map(|s| ServiceContainer {
                        name: s.name.clone(),
                        image: s.image.clone(),
                        env: s.env.clone(),
                        command: s.command.clone(),
                    })
                    .collect(),
                project_env: env,
                overrides: req.overrides.clone(),
                inputs,
                primary_artifact: action
                    .outputs
                    .first()
                    .cloned()
                    .unwrap_or_else(|| action.name.clone()),
                ids: BuildIds {
                    build_id: format!("{}:{}", req.project, uuid::Uuid::now_v7()),
                    build_number: req.number,
                    initiator: format!("slipway/{}", req.trigger),
                    source_version: req.source_version.clone(),
                    resolved_source_version: req.revision.clone(),
                    batch_identifier: None,
                    project: req.project.clone(),
                },
                timeout: action.timeout,
                cancel: cancel.child_token(),
            };
            if let (Some(d), true) = (&engine.dispatch, remote(engine, b)) {
                return run_remote(req, b, job, events, d.as_ref()).await;
            }
            // The embedded runner's concurrency: the build waits (queued) for a slot.
            let _slot = match &engine.job_slots {
                Some(s) => tokio::select! {
                    p = s.clone().acquire_owned() => p.ok(),
                    _ = cancel.cancelled() => return failed(Status::Cancelled, "cancelled while queued"),
                },
                None => None,
            };
            let benv = BuildEnvironment {
                executor,
                store: engine.store.clone(),
                work_root: engine.work_root.clone(),
                cache_root: engine.cache_root.clone(),
                artifacts_dir: engine.artifacts_dir.clone(),
                secrets: engine.secrets.clone(),
                events: events.clone(),
            };
            run_build_or_batch(&benv, job, engine.batch_concurrency, &req.source).await
        }
        ActionKind::Approval(a) => {
            let msg = match &a.message {
                Some(m) => match interpolate(shared, m).await {
                    Ok(m) => Some(m),
                    Err(e) => return failed(Status::Failed, format!("message: {e}")),
                },
                None => None,
            };
            events
                .emit(EventBody::ApprovalWaiting {
                    stage: stage.into(),
                    action: action.name.clone(),
                    message: msg.clone(),
                })
                .await;
            let timeout = a.timeout.unwrap_or(engine.approval_timeout);
            let request = ApprovalRequest {
                execution: events.execution().to_string(),
                stage: stage.to_string(),
                action: action.name.clone(),
                message: msg.clone(),
                timeout,
            };
            let decided = tokio::select! {
                d = engine.approver.decide(&request) => Some(d),
                _ = tokio::time::sleep(timeout) => None,
                _ = cancel.cancelled() => return failed(Status::Cancelled, "cancelled while waiting for approval"),
            };
            let d = match decided {
                Some(d) if !d.timed_out => d,
                _ => return failed(Status::TimedOut, format!("no decision within {timeout:?}")),
            };
            events
                .emit(EventBody::ApprovalDecided {
                    stage: stage.into(),
                    action: action.name.clone(),
                    approved: d.approved,
                    by: d.by.clone(),
                    comment: d.comment.clone(),
                })
                .await;
            if d.approved {
                BuildResult::ended(Status::Succeeded, None)
            } else {
                failed(
                    Status::Failed,
                    format!(
                        "rejected by {}{}",
                        d.by,
                        d.comment.map(|c| format!(": {c}")).unwrap_or_default()
                    ),
                )
            }
        }
        ActionKind::Image(img) => {
            let mut spec = img.clone();
            for (what, field) in [
                ("dockerfile", &mut spec.dockerfile),
                ("context", &mut spec.context),
                ("repository", &mut spec.repository),
            ] {
                match interpolate(shared, field).await {
                    Ok(v) => *field = v,
                    Err(e) => return failed(Status::Failed, format!("{what}: {e}")),
                }
            }
            for t in spec.tags.iter_mut().chain(spec.target.iter_mut()) {
                match interpolate(shared, t).await {
                    Ok(v) => *t = v,
                    Err(e) => return failed(Status::Failed, format!("tags: {e}")),
                }
            }
            for (k, v) in spec.build_args.iter_mut() {
                match interpolate(shared, v).await {
                    Ok(x) => *v = x,
                    Err(e) => return failed(Status::Failed, format!("build-args.{k}: {e}")),
                }
            }
            let inputs = match input_artifacts(action, shared).await {
                Ok(v) => v,
                Err(e) => return e,
            };
            let _slot = match &engine.job_slots {
                Some(s) => tokio::select! {
                    p = s.clone().acquire_owned() => p.ok(),
                    _ = cancel.cancelled() => return failed(Status::Cancelled, "cancelled while queued"),
                },
                None => None,
            };
            let job = crate::image::ImageJob {
                stage,
                action: &action.name,
                spec,
                inputs,
            };
            crate::image::run_image(engine, req, job, events, cancel).await
        }
        ActionKind::Deploy(d) => failed(
            Status::Skipped,
            format!(
                "deploy to `{}` needs a Slipway server; skipped in a local run",
                d.environment
            ),
        ),
    }
}

/// Hands a build action with `runs-on` to the engine's dispatch (an agent runs it).
async fn run_remote(
    req: &ExecutionRequest,
    b: &pipeline::BuildAction,
    job: BuildJob,
    events: &EventSink,
    dispatch: &dyn crate::dispatch::Dispatch,
) -> BuildResult {
    dispatch
        .run(
            crate::dispatch::RemoteBuild {
                job,
                buildspec_path: b.buildspec.clone(),
                runs_on: b.runs_on.clone(),
                executor: crate::dispatch::remote_executor(
                    b,
                    req.default_executor,
                    req.default_image.as_ref(),
                ),
            },
            events,
        )
        .await
}

/// The action's input artifacts other than `source` (which the workspace starts from), as
/// (name, tar path); an input nobody produced fails the action.
async fn input_artifacts(
    action: &Action,
    shared: &Arc<Mutex<Shared>>,
) -> Result<Vec<(String, PathBuf)>, BuildResult> {
    let s = shared.lock().await;
    let mut v = Vec::new();
    for name in action
        .inputs
        .iter()
        .filter(|n| *n != pipeline::SOURCE_ARTIFACT)
    {
        match s.artifacts.get(name) {
            Some(p) => v.push((name.clone(), p.clone())),
            None => {
                return Err(failed(
                    Status::Failed,
                    format!("input artifact `{name}` was not produced"),
                ));
            }
        }
    }
    Ok(v)
}

/// Reads and parses a buildspec, rendering its diagnostics into the error.
pub async fn load_buildspec(path: &Path, shown: &str) -> Result<Buildspec, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("{shown}: {e}"))?;
    let (bs, diags) = buildspec::parse(&text);
    match bs {
        Some(bs) => Ok(bs),
        None => Err(diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.render(shown))
            .collect::<Vec<_>>()
            .join("\n")),
    }
}

/// Runs a build, or the batch its buildspec describes (parallel builds, fast-fail).
pub async fn run_build_or_batch(
    env: &BuildEnvironment,
    job: BuildJob,
    concurrency: usize,
    source: &Path,
) -> BuildResult {
    let Some(batch) = job.buildspec.batch.clone() else {
        return run_build(env, job).await;
    };
    let mut builds: Vec<BatchBuild> = match &batch.kind {
        BatchKind::List(l) | BatchKind::Graph(l) => l.clone(),
        BatchKind::Matrix(m) => m.expand(),
        BatchKind::Fanout {
            parallelism,
            ignore_failure,
        } => (1..=*parallelism)
            .map(|i| BatchBuild {
                identifier: format!("fanout{i}"),
                buildspec: None,
                env: Default::default(),
                ignore_failure: *ignore_failure,
                depend_on: Vec::new(),
                debug_session: false,
            })
            .collect(),
    };
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let fast_fail = batch.fast_fail;
    let stop = job.cancel.child_token();
    let results: Arc<Mutex<BTreeMap<String, BuildResult>>> = Arc::default();
    // Graph order: a build starts when everything it depends on has succeeded.
    let mut pending: Vec<BatchBuild> = std::mem::take(&mut builds);
    let mut done_ok: std::collections::BTreeSet<String> = Default::default();
    let mut overall = Status::Succeeded;
    let mut reason = None;
    while !pending.is_empty() {
        let (ready, rest): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|b| b.depend_on.iter().all(|d| done_ok.contains(d)));
        pending = rest;
        if ready.is_empty() {
            for b in &pending {
                results.lock().await.insert(
                    b.identifier.clone(),
                    failed(Status::Skipped, "a build it depends on did not succeed"),
                );
            }
            break;
        }
        let mut handles = Vec::new();
        for b in ready {
            let mut sub = job.clone();
            sub.buildspec.batch = None;
            if let Some(path) = &b.buildspec {
                match load_buildspec(&source.join(path), path).await {
                    Ok(mut bs) => {
                        bs.batch = None;
                        sub.buildspec = bs;
                    }
                    Err(e) => {
                        results
                            .lock()
                            .await
                            .insert(b.identifier.clone(), failed(Status::Failed, e));
                        continue;
                    }
                }
            }
            sub.action = format!("{}/{}", job.action, b.identifier);
            sub.ids.batch_identifier = Some(b.identifier.clone());
            if let Some(img) = &b.env.image {
                sub.image = Some(img.clone());
            }
            if let Some(p) = b.env.privileged_mode {
                sub.privileged = p;
            }
            sub.project_env.extend(b.env.variables.iter().cloned());
            sub.cancel = stop.child_token();
            let env = env.clone();
            let sem = sem.clone();
            let results = results.clone();
            let stop = stop.clone();
            let id = b.identifier.clone();
            let ignore = b.ignore_failure;
            handles.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                let r = if stop.is_cancelled() {
                    failed(Status::Cancelled, "fast-fail: another build failed")
                } else {
                    run_build(&env, sub).await
                };
                if fast_fail && !ignore && !r.status.is_success() {
                    stop.cancel();
                }
                results.lock().await.insert(id, r);
            }));
        }
        for h in handles {
            let _ = h.await;
        }
        for (id, r) in results.lock().await.iter() {
            if r.status.is_success() {
                done_ok.insert(id.clone());
            }
        }
    }
    let results = std::mem::take(&mut *results.lock().await);
    let mut artifacts = Vec::new();
    let mut reports = Vec::new();
    let mut exported = BTreeMap::new();
    let ignore: std::collections::BTreeSet<String> = match &batch.kind {
        BatchKind::List(l) | BatchKind::Graph(l) => l
            .iter()
            .filter(|b| b.ignore_failure)
            .map(|b| b.identifier.clone())
            .collect(),
        BatchKind::Fanout {
            ignore_failure: true,
            parallelism,
        } => (1..=*parallelism).map(|i| format!("fanout{i}")).collect(),
        _ => Default::default(),
    };
    for (id, r) in results {
        if !r.status.is_success() && !ignore.contains(&id) && overall == Status::Succeeded {
            overall = r.status;
            reason = Some(format!(
                "batch build {id}: {}",
                r.reason.clone().unwrap_or_else(|| r.status.to_string())
            ));
        }
        artifacts.extend(r.artifacts.into_iter().map(|mut a| {
            a.name = format!("{id}/{}", a.name);
            a
        }));
        reports.extend(r.reports);
        for (k, v) in r.exported {
            exported.insert(format!("{id}.{k}"), v);
        }
    }
    BuildResult {
        status: overall,
        reason,
        exported,
        artifacts,
        reports,
        log: None,
        duration: started.elapsed(),
    }
}
