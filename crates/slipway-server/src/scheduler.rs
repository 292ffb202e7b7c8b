//! Executions on the server: started, queued, run by the engine, their events persisted and
//! announced, cancelled, retried, re-run, and recovered after a crash.
//!
//! Every state change is an event appended to the store first; the API, `logs -f` and the
//! metrics read the store, so what a client sees is what would survive a crash.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use slipway_engine::events::now_ms;
use slipway_engine::{
    ApprovalRequest, Approver, Decision, Engine, EventSink, ExecutionRequest, PriorAction, Resume,
    run_execution,
};
use slipway_model::Status;
use slipway_proto::api::{Execution, StartExecution};
use slipway_proto::{Event, EventBody};
use slipway_spec::pipeline::{ExecutionMode, Pipeline};
use slipway_store::{Db, ExecutionRow, NewExecution, ProjectRow};
use tokio::sync::{Mutex, Semaphore, broadcast, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use crate::source;

/// Why an action that was running when the server stopped is not running any more.
pub const INTERRUPTED: &str = "interrupted: the server stopped while it ran";

/// Executions running in this process, by id.
struct Running {
    cancel: CancellationToken,
}

type ApprovalKey = (i64, String, String);

pub struct Scheduler {
    pub db: Arc<Db>,
    pub data: PathBuf,
    engine: Engine,
    /// An execution id after new events of it were stored.
    pub updates: broadcast::Sender<i64>,
    running: Mutex<HashMap<i64, Running>>,
    /// Execution name (`hello#3`) -> id, for the approver, which only knows the name.
    names: std::sync::Mutex<HashMap<String, i64>>,
    waiters: std::sync::Mutex<HashMap<ApprovalKey, oneshot::Sender<Decision>>>,
    execution_slots: Arc<Semaphore>,
    repo_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    pub tasks: TaskTracker,
    /// Executions waiting for a slot (metrics).
    queued: std::sync::atomic::AtomicI64,
    /// Execution modes: who may run, and who may enter which stage.
    lanes: crate::modes::Lanes,
    /// Agents' jobs: recovery re-attaches to those still open.
    agents: std::sync::OnceLock<Arc<crate::agents::Agents>>,
}

impl Scheduler {
    /// `engine` is used with this scheduler's approver in place of its own.
    pub fn new(db: Arc<Db>, data: PathBuf, engine: Engine, max_executions: usize) -> Arc<Self> {
        let (updates, _) = broadcast::channel(4096);
        Arc::new_cyclic(|me: &std::sync::Weak<Scheduler>| {
            let mut engine = engine;
            engine.approver = Arc::new(StoreApprover {
                scheduler: me.clone(),
            });
            Scheduler {
                db,
                data,
                engine,
                updates,
                running: Mutex::default(),
                names: Default::default(),
                waiters: Default::default(),
                execution_slots: Arc::new(Semaphore::new(max_executions.max(1))),
                repo_locks: Mutex::default(),
                tasks: TaskTracker::new(),
                queued: Default::default(),
                lanes: Default::default(),
                agents: Default::default(),
            }
        })
    }

    /// Agents whose open jobs recovery re-attaches to (set once at start).
    pub fn set_agents(&self, agents: Arc<crate::agents::Agents>) {
        let _ = self.agents.set(agents);
    }

    pub fn queue_depth(&self) -> i64 {
        self.queued.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn project(&self, name: &str) -> Result<ProjectRow, ApiError> {
        self.db
            .project(name)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no project `{name}`")))
    }

    pub async fn execution(&self, project: &str, number: u64) -> Result<ExecutionRow, ApiError> {
        let p = self.project(project).await?;
        self.db
            .execution(p.id, number)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no execution {project}#{number}")))
    }

    /// Resolves the revision, reads the pipeline at it, records a queued execution and starts
    /// it in the background. Returns once it is recorded.
    pub async fn start(
        self: &Arc<Self>,
        project: &str,
        req: StartExecution,
        rerun_of: Option<u64>,
    ) -> Result<ExecutionRow, ApiError> {
        let p = self.project(project).await?;
        let (dir, sha) = self.resolve(&p, req.revision.as_deref()).await?;
        let tree = self.export(&dir, &sha).await?;
        let pipeline = match self.pipeline_in(&tree, &p.name, req.pipeline.as_deref()) {
            Ok(pl) => pl,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tree);
                return Err(e);
            }
        };
        if let Some(unknown) = req
            .variables
            .keys()
            .find(|k| !pipeline.variables.iter().any(|v| &v.name == *k))
        {
            let _ = std::fs::remove_dir_all(&tree);
            return Err(ApiError::invalid(format!(
                "pipeline `{}` has no variable `{unknown}`",
                pipeline.name
            )));
        }
        let row = self
            .db
            .create_execution(&NewExecution {
                project_id: p.id,
                pipeline: pipeline.name.clone(),
                revision: Some(sha),
                source_ref: req.source_ref.clone().or_else(|| req.revision.clone()),
                trigger: req.trigger.clone().unwrap_or_else(|| "api".into()),
                variables: req.variables.clone(),
                rerun_of,
                created_ms: now_ms(),
            })
            .await?;
        metrics::counter!("slipway_executions_started_total").increment(1);
        let _ = self.updates.send(row.id);
        self.spawn(row.clone(), pipeline, tree, None).await;
        Ok(row)
    }

    pub(crate) async fn resolve(
        &self,
        p: &ProjectRow,
        rev: Option<&str>,
    ) -> Result<(PathBuf, String), ApiError> {
        let lock = {
            let mut locks = self.repo_locks.lock().await;
            locks.entry(p.name.clone()).or_default().clone()
        };
        let _one_fetch_at_a_time = lock.lock().await;
        let dir = source::refresh(&self.data, &p.name, &p.git)
            .await
            .map_err(|e| ApiError::invalid(format!("project `{}`: {e}", p.name)))?;
        let sha = source::resolve(&dir, rev)
            .await
            .map_err(|e| ApiError::invalid(format!("project `{}`: {e}", p.name)))?;
        Ok((dir, sha))
    }

    async fn export(&self, dir: &std::path::Path, sha: &str) -> Result<PathBuf, ApiError> {
        let tree = self
            .data
            .join("work")
            .join(format!("src-{}", uuid::Uuid::now_v7()));
        source::export(dir, sha, &tree)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(tree)
    }

    fn pipeline_in(
        &self,
        tree: &std::path::Path,
        project: &str,
        name: Option<&str>,
    ) -> Result<Pipeline, ApiError> {
        let all = source::pipelines(tree, project).map_err(|details| ApiError {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_pipeline",
            message: "the pipeline files at this revision have errors".into(),
            details,
        })?;
        source::choose(all, name).map_err(ApiError::invalid)
    }

    /// Runs an execution in the background: waits for a slot, runs the engine, persists its
    /// events, cleans up its source tree.
    async fn spawn(
        self: &Arc<Self>,
        row: ExecutionRow,
        pipeline: Pipeline,
        tree: PathBuf,
        resume: Option<Resume>,
    ) {
        let cancel = CancellationToken::new();
        self.running.lock().await.insert(
            row.id,
            Running {
                cancel: cancel.clone(),
            },
        );
        let name = format!("{}#{}", row.project, row.number);
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), row.id);
        let me = self.clone();
        self.tasks.spawn(async move {
            let id = row.id;
            let lane = me.lanes.lane(row.project_id, &pipeline.name);
            me.queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // `queued` mode: this pipeline's executions one at a time, in order.
            let turn = match pipeline.execution_mode {
                ExecutionMode::Queued => tokio::select! {
                    t = lane.turn() => t.map(Some),
                    _ = cancel.cancelled() => None,
                },
                _ => Some(None),
            };
            let slot = match turn {
                Some(_) => tokio::select! {
                    s = me.execution_slots.clone().acquire_owned() => s.ok(),
                    _ = cancel.cancelled() => None,
                },
                None => None,
            };
            me.queued.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            if slot.is_none() {
                me.finish_unstarted(&row, Status::Cancelled, "cancelled while queued")
                    .await;
            } else {
                let gate = (pipeline.execution_mode == ExecutionMode::Superseded)
                    .then(|| lane.gate(row.number));
                me.run(row, pipeline, tree.clone(), resume, gate, cancel)
                    .await;
            }
            drop(slot);
            drop(turn);
            let _ = tokio::fs::remove_dir_all(&tree).await;
            me.running.lock().await.remove(&id);
            me.names
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
            let _ = me.updates.send(id);
        });
    }

    async fn finish_unstarted(&self, row: &ExecutionRow, status: Status, reason: &str) {
        if let Err(e) = self
            .db
            .set_execution_status(row.id, status, Some(reason), now_ms())
            .await
        {
            tracing::error!(execution = row.id, error = %e, "recording the execution's end");
        }
    }

    async fn run(
        self: &Arc<Self>,
        row: ExecutionRow,
        pipeline: Pipeline,
        tree: PathBuf,
        resume: Option<Resume>,
        gate: Option<Arc<dyn slipway_engine::StageGate>>,
        cancel: CancellationToken,
    ) {
        let name = format!("{}#{}", row.project, row.number);
        let (sink, rx) = EventSink::channel_after(name.clone(), 1024, row.last_seq);
        let persister = tokio::spawn(self.clone().persist(row.id, rx));
        let req = ExecutionRequest {
            pipeline,
            source: tree,
            revision: row.revision.clone(),
            source_version: row.source_ref.clone().or(row.revision.clone()),
            variables: row.variables.clone().into_iter().collect(),
            overrides: Vec::new(),
            default_image: None,
            default_executor: None,
            privileged: false,
            trigger: row.trigger.clone(),
            project: row.project.clone(),
            number: row.number,
            resume,
            gate,
        };
        let started = std::time::Instant::now();
        let result = run_execution(&self.engine, req, sink, cancel).await;
        let _ = persister.await;
        let reason = result
            .actions
            .iter()
            .find(|a| !a.status.is_success())
            .map(|a| {
                format!(
                    "{}/{}: {}",
                    a.stage,
                    a.action,
                    a.reason.clone().unwrap_or_else(|| a.status.to_string())
                )
            });
        if let Err(e) = self
            .db
            .set_execution_status(row.id, result.status, reason.as_deref(), now_ms())
            .await
        {
            tracing::error!(execution = %name, error = %e, "recording the execution's end");
        }
        metrics::counter!("slipway_executions_finished_total", "status" => result.status.as_str())
            .increment(1);
        metrics::histogram!("slipway_execution_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        tracing::info!(execution = %name, status = %result.status, "execution finished");
    }

    /// Stores an execution's events in batches as they come, announcing each batch. A store
    /// that fails is retried: an event is never dropped while the server lives.
    async fn persist(self: Arc<Self>, id: i64, mut rx: tokio::sync::mpsc::Receiver<Event>) {
        let mut batch: Vec<Event> = Vec::with_capacity(256);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            let mut delay = Duration::from_millis(50);
            while let Err(e) = self.db.append_events(id, &batch).await {
                tracing::warn!(execution = id, error = %e, "storing events; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            for e in &batch {
                self.after_stored(id, e).await;
            }
            batch.clear();
            let _ = self.updates.send(id);
        }
    }

    /// Side effects of a stored event: an approval that ended without a decision is closed.
    async fn after_stored(&self, id: i64, e: &Event) {
        if let EventBody::ActionFinished {
            stage,
            action,
            status,
            duration_ms,
            reason,
            ..
        } = &e.body
        {
            metrics::histogram!("slipway_action_duration_seconds", "status" => status.as_str())
                .record(*duration_ms as f64 / 1000.0);
            if *status != Status::Succeeded && *status != Status::Failed {
                let _ = self
                    .db
                    .decide_approval(
                        id,
                        stage,
                        action,
                        *status,
                        "slipway",
                        reason.as_deref(),
                        e.time_ms,
                    )
                    .await;
            }
        }
    }

    /// Stops a queued or running execution; its builds are killed and containers removed.
    pub async fn cancel(&self, row: &ExecutionRow) -> Result<(), ApiError> {
        if row.status.is_terminal() {
            return Err(ApiError::conflict(format!(
                "{}#{} already ended ({})",
                row.project, row.number, row.status
            )));
        }
        match self.running.lock().await.get(&row.id) {
            Some(r) => {
                r.cancel.cancel();
                Ok(())
            }
            None => {
                // Not ours to run (left by a crash before recovery got to it): end it here.
                self.db
                    .set_execution_status(row.id, Status::Cancelled, Some("cancelled"), now_ms())
                    .await?;
                Ok(())
            }
        }
    }

    /// Runs a failed execution's failed actions again (and what follows them), in place.
    pub async fn retry(self: &Arc<Self>, row: &ExecutionRow, by: &str) -> Result<(), ApiError> {
        let retriable = matches!(
            row.status,
            Status::Failed | Status::Cancelled | Status::TimedOut | Status::Fault
        );
        if !retriable || self.running.lock().await.contains_key(&row.id) {
            return Err(ApiError::conflict(format!(
                "{}#{} has status `{}`; only a failed, cancelled or timed-out execution can be retried",
                row.project, row.number, row.status
            )));
        }
        self.resume(
            row,
            Resume {
                reason: format!("retry requested by {by}"),
                prior: self.prior(row.id).await?,
                fresh_budget: true,
            },
        )
        .await
    }

    /// A new execution at the same revision, pipeline and variables.
    pub async fn rerun(self: &Arc<Self>, row: &ExecutionRow) -> Result<ExecutionRow, ApiError> {
        self.start(
            &row.project,
            StartExecution {
                pipeline: Some(row.pipeline.clone()),
                revision: row.revision.clone(),
                variables: row.variables.clone(),
                trigger: Some("rerun".into()),
                source_ref: row.source_ref.clone(),
            },
            Some(row.number),
        )
        .await
    }

    async fn prior(&self, id: i64) -> Result<BTreeMap<(String, String), PriorAction>, ApiError> {
        Ok(self
            .db
            .actions(id)
            .await?
            .into_iter()
            .map(|a| {
                (
                    (a.stage.clone(), a.action.clone()),
                    PriorAction {
                        status: a.status,
                        attempts: a.attempt,
                        reason: a.reason,
                        outputs: a.outputs,
                        artifacts: a.artifacts,
                    },
                )
            })
            .collect())
    }

    /// Continues an execution from what its actions' rows say.
    async fn resume(self: &Arc<Self>, row: &ExecutionRow, resume: Resume) -> Result<(), ApiError> {
        let p = self.project(&row.project).await?;
        let sha = row.revision.clone();
        let (dir, sha) = self.resolve(&p, sha.as_deref()).await?;
        let tree = self.export(&dir, &sha).await?;
        let pipeline = match self.pipeline_in(&tree, &p.name, Some(&row.pipeline)) {
            Ok(pl) => pl,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tree);
                return Err(e);
            }
        };
        let fresh = self
            .db
            .execution_by_id(row.id)
            .await?
            .ok_or_else(|| ApiError::not_found("the execution is gone"))?;
        self.spawn(fresh, pipeline, tree, Some(resume)).await;
        Ok(())
    }

    /// After a restart: no execution stays running. Actions that were running are recorded as
    /// interrupted (a fault); each execution then continues, its retry policies deciding
    /// whether interrupted actions run again. Queued ones simply start.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, ApiError> {
        let open = self
            .db
            .executions_with_status(&[Status::Queued, Status::Running, Status::Waiting])
            .await?;
        let n = open.len();
        for row in open {
            let name = format!("{}#{}", row.project, row.number);
            let now = now_ms();
            let mut seq = row.last_seq;
            let mut events = Vec::new();
            for a in self.db.actions(row.id).await? {
                // A job an agent still runs (or that waits for one) is re-attached on resume.
                let on_agent = match self.agents.get() {
                    Some(ag) => ag.has_open_job(row.id, &a.stage, &a.action).await,
                    None => false,
                };
                if a.status == Status::Running && !on_agent {
                    seq += 1;
                    events.push(Event {
                        v: slipway_proto::EVENT_SCHEMA_VERSION,
                        seq,
                        time_ms: now,
                        execution: name.clone(),
                        body: EventBody::ActionFinished {
                            stage: a.stage,
                            action: a.action,
                            attempt: a.attempt,
                            status: Status::Fault,
                            duration_ms: a.started_ms.map(|s| (now - s).max(0) as u64).unwrap_or(0),
                            reason: Some(INTERRUPTED.into()),
                            outputs: Default::default(),
                            artifacts: Vec::new(),
                            reports: Vec::new(),
                            log: None,
                        },
                    });
                }
            }
            if !events.is_empty() {
                self.db.append_events(row.id, &events).await?;
            }
            let outcome = if row.last_seq == 0 {
                // Never started: start it from the beginning.
                match self
                    .resolve(&self.project(&row.project).await?, row.revision.as_deref())
                    .await
                {
                    Ok((dir, sha)) => match self.export(&dir, &sha).await {
                        Ok(tree) => {
                            match self.pipeline_in(&tree, &row.project, Some(&row.pipeline)) {
                                Ok(pl) => {
                                    self.spawn(row.clone(), pl, tree, None).await;
                                    Ok(())
                                }
                                Err(e) => Err(e),
                            }
                        }
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                }
            } else {
                let resume = Resume {
                    reason: "the server restarted".into(),
                    prior: self.prior(row.id).await?,
                    fresh_budget: false,
                };
                self.resume(&row, resume).await
            };
            if let Err(e) = outcome {
                tracing::warn!(execution = %name, error = %e.message, "cannot continue after the restart");
                self.db
                    .set_execution_status(
                        row.id,
                        Status::Fault,
                        Some(&format!(
                            "the server restarted and could not continue it: {}",
                            e.message
                        )),
                        now,
                    )
                    .await?;
            }
        }
        Ok(n)
    }

    /// Approves or rejects a waiting approval action of an execution.
    pub async fn decide(
        &self,
        row: &ExecutionRow,
        action: Option<&str>,
        decision: Decision,
    ) -> Result<slipway_proto::api::Approval, ApiError> {
        let approvals = self.db.approvals(row.id).await?;
        let waiting: Vec<_> = approvals
            .iter()
            .filter(|a| a.status == Status::Waiting)
            .collect();
        let chosen = match action {
            Some(name) => approvals
                .iter()
                .find(|a| a.action == name || format!("{}/{}", a.stage, a.action) == name)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "{}#{} has no approval action `{name}`",
                        row.project, row.number
                    ))
                })?,
            None => match waiting.as_slice() {
                [one] => *one,
                [] => {
                    return Err(ApiError::conflict(format!(
                        "nothing in {}#{} waits for approval",
                        row.project, row.number
                    )));
                }
                many => {
                    return Err(ApiError::invalid(format!(
                        "several approvals wait ({}); name one with `action`",
                        many.iter()
                            .map(|a| format!("{}/{}", a.stage, a.action))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            },
        };
        let status = if decision.approved {
            Status::Succeeded
        } else {
            Status::Failed
        };
        let changed = self
            .db
            .decide_approval(
                row.id,
                &chosen.stage,
                &chosen.action,
                status,
                &decision.by,
                decision.comment.as_deref(),
                now_ms(),
            )
            .await?;
        if !changed {
            return Err(ApiError::conflict(format!(
                "{}/{} of {}#{} is not waiting (it is {})",
                chosen.stage, chosen.action, row.project, row.number, chosen.status
            )));
        }
        let key = (row.id, chosen.stage.clone(), chosen.action.clone());
        let waiter = self
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        if let Some(w) = waiter {
            let _ = w.send(decision);
        }
        self.db
            .approvals(row.id)
            .await?
            .into_iter()
            .find(|a| a.stage == chosen.stage && a.action == chosen.action)
            .ok_or_else(|| ApiError::internal("the approval vanished"))
    }

    /// Cancels every running execution and waits (up to `grace`) for them to stop.
    pub async fn shutdown(&self, grace: Duration) {
        for r in self.running.lock().await.values() {
            r.cancel.cancel();
        }
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("executions still stopping after {grace:?}; recovery finishes them");
        }
    }

    /// What an execution row looks like on the wire.
    pub fn view(row: &ExecutionRow) -> Execution {
        Execution {
            project: row.project.clone(),
            number: row.number,
            name: format!("{}#{}", row.project, row.number),
            pipeline: row.pipeline.clone(),
            revision: row.revision.clone(),
            source_ref: row.source_ref.clone(),
            trigger: row.trigger.clone(),
            status: row.status,
            reason: row.reason.clone(),
            variables: row.variables.clone(),
            created_ms: row.created_ms,
            started_ms: row.started_ms,
            finished_ms: row.finished_ms,
            rerun_of: row.rerun_of,
        }
    }
}

/// Approvals recorded in the store and decided through the API.
struct StoreApprover {
    scheduler: std::sync::Weak<Scheduler>,
}

#[async_trait]
impl Approver for StoreApprover {
    async fn decide(&self, r: &ApprovalRequest) -> Decision {
        let refuse = |why: &str| Decision {
            approved: false,
            timed_out: false,
            by: "slipway".into(),
            comment: Some(why.into()),
        };
        let Some(s) = self.scheduler.upgrade() else {
            return refuse("the server is stopping");
        };
        let id = s
            .names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&r.execution)
            .copied();
        let Some(id) = id else {
            return refuse("unknown execution");
        };
        let (tx, rx) = oneshot::channel();
        let key = (id, r.stage.clone(), r.action.clone());
        s.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), tx);
        // A decision stored just before a crash, which the engine never saw, stands (the
        // action is still waiting); a decision of an earlier attempt (before a retry) does not.
        let still_waiting = s.db.actions(id).await.ok().is_some_and(|v| {
            v.iter()
                .any(|a| a.stage == r.stage && a.action == r.action && a.status == Status::Waiting)
        });
        let existing = s.db.approvals(id).await.ok().and_then(|v| {
            v.into_iter()
                .find(|a| a.stage == r.stage && a.action == r.action)
        });
        // Still waiting from before a restart: the first deadline stands.
        let kept_deadline = match &existing {
            Some(a) if still_waiting && a.status == Status::Waiting => Some(a.deadline_ms),
            _ => None,
        };
        match existing {
            Some(a)
                if still_waiting
                    && (a.status == Status::Succeeded || a.status == Status::Failed) =>
            {
                s.waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                return Decision {
                    approved: a.status == Status::Succeeded,
                    timed_out: false,
                    by: a.decided_by.unwrap_or_default(),
                    comment: a.comment,
                };
            }
            _ => {}
        }
        let now = now_ms();
        let deadline = kept_deadline
            .unwrap_or_else(|| now + r.timeout.as_millis().min(i64::MAX as u128) as i64);
        if let Err(e) =
            s.db.request_approval(id, &r.stage, &r.action, r.message.as_deref(), now, deadline)
                .await
        {
            tracing::error!(error = %e, "recording an approval request");
        }
        drop(s);
        let left = std::time::Duration::from_millis((deadline - now).max(0) as u64);
        tokio::select! {
            d = rx => match d {
                Ok(d) => d,
                Err(_) => refuse("the server is stopping"),
            },
            _ = tokio::time::sleep(left) => Decision {
                approved: false,
                timed_out: true,
                by: "slipway".into(),
                comment: Some("no decision before the deadline".into()),
            },
        }
    }
}
