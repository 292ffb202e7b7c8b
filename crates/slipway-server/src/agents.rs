//! Agents: the server's side of the job protocol (docs/agents.md). Build actions with
//! `runs-on` are queued here as jobs ([`Agents`] is the engine's `Dispatch`); agents take them
//! with a long poll, hold them by a lease renewed by heartbeats, send their events in numbered
//! chunks that are acknowledged only once stored, upload artifacts and logs into the blob
//! store, and report the result. A lease that runs out ends the job as a fault (the action's
//! retry policy decides what follows); a late agent finds its lease gone.
//!
//! Exactly-once events: a chunk is acknowledged after its events are in the store, and the
//! job row remembers the last acknowledged chunk and the seq its last event got. A server
//! killed while it stored a chunk re-attaches to the job after the restart and skips the
//! events of that chunk it had stored already (counted after the remembered seq) when the
//! agent sends it again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use slipway_engine::events::now_ms;
use slipway_engine::{BuildResult, Dispatch, EventSink, RemoteBuild};
use slipway_model::{Digest, Status};
use slipway_proto::EventBody;
use slipway_proto::api::Page;
use slipway_proto::job::{
    AgentInfo, Assignment, BuildIds, ChunkAck, EventChunk, Heartbeat, HeartbeatReply,
    JOB_PROTOCOL_VERSION, JobResult, JobSpec, LeaseReply, LeaseRequest, Register, Registered,
    RegistrationToken, Service, VERSION_HEADER,
};
use slipway_spec::pipeline::ExecutorChoice;
use slipway_store::db::{AgentRow, JobRow, JobState, NewAgent, NewJob};
use slipway_store::{BlobStore, Db};
use tokio::sync::{broadcast, watch};

use crate::AppState;
use crate::error::ApiError;

/// The longest a lease request or heartbeat is held open.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// How long a chunk may take to be stored before the agent is told to send it again.
const STORE_WAIT: Duration = Duration::from_secs(20);
/// Finished jobs are kept this long (a late result or chunk is answered, not refused).
const KEEP_DONE: Duration = Duration::from_secs(24 * 3600);

/// The agents' half of the server: the job queue, leases, and the jobs this process waits on.
pub struct Agents {
    db: Arc<Db>,
    blobs: BlobStore,
    lease_ttl: Duration,
    /// Bumped when a job is queued or ends: waiting lease requests look again.
    queue: watch::Sender<u64>,
    /// The scheduler's "events of execution N were stored" broadcast.
    stored: OnceLock<broadcast::Sender<i64>>,
    /// Jobs an execution of this process waits on, by job id.
    live: Mutex<HashMap<i64, Arc<LiveJob>>>,
    /// Source trees already packed, by directory.
    sources: tokio::sync::Mutex<HashMap<PathBuf, Digest>>,
}

/// A job an execution of this process waits on.
struct LiveJob {
    execution_id: i64,
    stage: String,
    action: String,
    events: EventSink,
    /// Chunks are stored one at a time; the count is the events of the next chunk that a
    /// killed predecessor had stored already.
    chunks: tokio::sync::Mutex<u64>,
    cancel: watch::Sender<bool>,
    /// Set when the job's row says done.
    done: watch::Sender<bool>,
}

/// Who is calling: an agent whose token checked out.
struct Caller {
    agent: AgentRow,
}

impl Agents {
    pub fn new(db: Arc<Db>, blobs: BlobStore, lease_ttl: Duration) -> Arc<Self> {
        Arc::new(Agents {
            db,
            blobs,
            lease_ttl,
            queue: watch::channel(0).0,
            stored: OnceLock::new(),
            live: Mutex::default(),
            sources: Default::default(),
        })
    }

    /// Connects the scheduler's stored-events broadcast; called once, before jobs run.
    pub fn attach(&self, stored: broadcast::Sender<i64>) {
        let _ = self.stored.set(stored);
    }

    fn ttl_ms(&self) -> i64 {
        self.lease_ttl.as_millis() as i64
    }

    /// At start: agents get a whole lease term to report in before they count as lost.
    pub async fn after_restart(&self) -> Result<(), ApiError> {
        let n = self.db.extend_leases(now_ms() + self.ttl_ms()).await?;
        if n > 0 {
            tracing::info!(
                leases = n,
                "agents hold jobs from before the restart; waiting for them to report in"
            );
        }
        Ok(())
    }

    /// Whether an action of an execution has a job not yet done: recovery re-attaches to it
    /// rather than failing the action.
    pub async fn has_open_job(&self, execution_id: i64, stage: &str, action: &str) -> bool {
        match self.db.open_jobs(execution_id).await {
            Ok(jobs) => jobs.iter().any(|j| j.stage == stage && j.action == action),
            Err(e) => {
                tracing::warn!(error = %e, "reading agent jobs during recovery");
                false
            }
        }
    }

    /// Ends jobs whose lease ran out, every quarter lease (at most every second), and prunes
    /// old finished jobs, until `stop`.
    pub async fn run_sweeper(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let every = (self.lease_ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut last_prune = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e.message, "expiring agent leases");
            }
            if last_prune.elapsed() > Duration::from_secs(600) {
                last_prune = std::time::Instant::now();
                let _ = self
                    .db
                    .prune_jobs(now_ms() - KEEP_DONE.as_millis() as i64)
                    .await;
            }
        }
    }

    async fn sweep(&self) -> Result<(), ApiError> {
        let now = now_ms();
        for j in self.db.expired_leases(now).await? {
            let agent = match j.agent_id {
                Some(id) => self
                    .db
                    .agents()
                    .await?
                    .into_iter()
                    .find(|a| a.id == id)
                    .map(|a| format!("`{}`", a.name))
                    .unwrap_or_else(|| format!("#{id}")),
                None => "?".into(),
            };
            let reason = format!(
                "agent {agent} lost: no heartbeat for {}",
                slipway_spec::pipeline::format_duration(self.lease_ttl)
            );
            let result = fault_result(&j, &reason);
            if self.db.expire_lease(j.id, now, &result).await? {
                tracing::warn!(job = j.id, stage = %j.stage, action = %j.action, "{reason}");
                self.job_ended(j.id);
            }
        }
        Ok(())
    }

    fn live(&self, job: i64) -> Option<Arc<LiveJob>> {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&job)
            .cloned()
    }

    fn job_ended(&self, job: i64) {
        if let Some(l) = self.live(job) {
            l.done.send_replace(true);
        }
        self.queue.send_modify(|n| *n += 1);
    }

    /// A tar of the execution's source tree in the blob store (packed once per tree).
    async fn pack_source(&self, dir: &Path) -> Result<Digest, String> {
        let mut packed = self.sources.lock().await;
        if let Some(d) = packed.get(dir)
            && self.blobs.contains(d)
        {
            return Ok(d.clone());
        }
        let store = self.blobs.clone();
        let from = dir.to_path_buf();
        let d = tokio::task::spawn_blocking(move || -> Result<Digest, String> {
            let w = store.sync_writer().map_err(|e| e.to_string())?;
            let mut b = tar::Builder::new(w);
            b.follow_symlinks(false);
            b.append_dir_all(".", &from).map_err(|e| e.to_string())?;
            let w = b.into_inner().map_err(|e| e.to_string())?;
            w.finish().map(|(d, _)| d).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        if packed.len() > 256 {
            packed.clear();
        }
        packed.insert(dir.to_path_buf(), d.clone());
        Ok(d)
    }

    async fn execution_id(&self, project: &str, number: u64) -> Result<i64, String> {
        let p = self
            .db
            .project(project)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no project `{project}`"))?;
        Ok(self
            .db
            .execution(p.id, number)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no execution {project}#{number}"))?
            .id)
    }

    /// Queues the job (or finds the one a killed predecessor queued for this attempt).
    async fn queue(&self, b: &RemoteBuild, execution_id: i64) -> Result<JobRow, String> {
        let job = &b.job;
        if let Some(j) = self
            .db
            .job_for(execution_id, &job.stage, &job.action, job.attempt)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(j);
        }
        let source = self.pack_source(&job.source).await?;
        let mut inputs = Vec::new();
        for (name, path) in &job.inputs {
            // Input artifacts are blobs of this store, named by their digest's hex.
            let hex = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let d = Digest::parse(&format!("sha256:{hex}"))
                .map_err(|_| format!("input artifact {name} is not in the blob store"))?;
            inputs.push((name.clone(), d));
        }
        let executor = match b.executor {
            ExecutorChoice::Local => "local",
            ExecutorChoice::Docker => "docker",
        };
        let spec = JobSpec {
            project: job.ids.project.clone(),
            number: job.ids.build_number,
            stage: job.stage.clone(),
            action: job.action.clone(),
            attempt: job.attempt,
            buildspec: b.buildspec_path.clone(),
            executor: executor.into(),
            image: job.image.clone(),
            privileged: job.privileged,
            services: job
                .services
                .iter()
                .map(|s| Service {
                    name: s.name.clone(),
                    image: s.image.clone(),
                    env: s.env.clone(),
                    command: s.command.clone(),
                })
                .collect(),
            env: job.project_env.clone(),
            overrides: job.overrides.clone(),
            source,
            inputs,
            primary_artifact: job.primary_artifact.clone(),
            ids: BuildIds {
                build_id: job.ids.build_id.clone(),
                build_number: job.ids.build_number,
                initiator: job.ids.initiator.clone(),
                source_version: job.ids.source_version.clone(),
                resolved_source_version: job.ids.resolved_source_version.clone(),
            },
            timeout_ms: job.timeout.map(|t| t.as_millis() as u64),
        };
        self.db
            .queue_job(&NewJob {
                execution_id,
                stage: job.stage.clone(),
                action: job.action.clone(),
                attempt: job.attempt,
                labels: b.runs_on.clone(),
                executor: executor.into(),
                spec: serde_json::to_string(&spec).map_err(|e| e.to_string())?,
                now_ms: now_ms(),
            })
            .await
            .map_err(|e| e.to_string())
    }

    /// Events of this job a killed predecessor stored after the last acknowledged chunk: the
    /// first events of the chunk the agent sends next.
    async fn stored_unacked(&self, j: &JobRow) -> u64 {
        let mut n = 0;
        let mut cursor = j.acked_seq;
        loop {
            let Ok(page) = self.db.events(j.execution_id, cursor, 1000).await else {
                return n;
            };
            let len = page.len();
            for e in page {
                cursor = e.seq;
                if job_event(&e.body, &j.stage, &j.action) {
                    n += 1;
                }
            }
            if len < 1000 {
                return n;
            }
        }
    }

    fn to_build_result(&self, j: &JobRow) -> BuildResult {
        let Some(r) = j
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str::<JobResult>(r).ok())
        else {
            return BuildResult::ended(
                Status::Fault,
                Some("the agent's result is unreadable".into()),
            );
        };
        for a in &r.artifacts {
            if !self.blobs.contains(&a.digest) {
                return BuildResult::ended(
                    Status::Fault,
                    Some(format!(
                        "artifact {} ({}) was not uploaded",
                        a.name, a.digest
                    )),
                );
            }
        }
        BuildResult {
            status: r.status,
            reason: r.reason,
            exported: r.outputs,
            artifacts: r.artifacts,
            reports: r.reports,
            log: r.log.filter(|d| self.blobs.contains(d)),
            duration: Duration::from_millis(r.duration_ms),
        }
    }

    async fn wait(&self, b: RemoteBuild, events: &EventSink) -> Result<BuildResult, String> {
        let execution_id = self
            .execution_id(&b.job.ids.project, b.job.ids.build_number)
            .await?;
        let j = self.queue(&b, execution_id).await?;
        if j.state == JobState::Done {
            return Ok(self.to_build_result(&j));
        }
        let skip = if j.acked_seq > 0 || j.state == JobState::Leased {
            self.stored_unacked(&j).await
        } else {
            0
        };
        let live = Arc::new(LiveJob {
            execution_id,
            stage: j.stage.clone(),
            action: j.action.clone(),
            events: events.clone(),
            chunks: tokio::sync::Mutex::new(skip),
            cancel: watch::channel(j.cancel_requested).0,
            done: watch::channel(false).0,
        });
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(j.id, live.clone());
        self.queue.send_modify(|n| *n += 1);
        let out = self.follow(&b, j.id, &live).await;
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&j.id);
        out
    }

    /// Waits for the job to end, passing on a cancellation.
    async fn follow(
        &self,
        b: &RemoteBuild,
        id: i64,
        live: &LiveJob,
    ) -> Result<BuildResult, String> {
        let mut done = live.done.subscribe();
        let mut cancelled_at: Option<std::time::Instant> = None;
        loop {
            let j = self
                .db
                .job(id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the job vanished")?;
            if j.state == JobState::Done {
                return Ok(self.to_build_result(&j));
            }
            if let Some(t) = cancelled_at {
                // An agent that does not answer a cancel within its lease is not waited for.
                if t.elapsed() > self.lease_ttl * 2 + Duration::from_secs(5) {
                    let r = cancelled_result(&j, "cancelled (the agent did not confirm)");
                    self.db
                        .finish_job(id, None, &r, now_ms())
                        .await
                        .map_err(|e| e.to_string())?;
                    continue;
                }
            }
            tokio::select! {
                _ = done.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = b.job.cancel.cancelled(), if cancelled_at.is_none() => {
                    cancelled_at = Some(std::time::Instant::now());
                    if j.state == JobState::Queued {
                        let r = cancelled_result(&j, "cancelled while queued for an agent");
                        self.db.finish_job(id, None, &r, now_ms()).await.map_err(|e| e.to_string())?;
                    } else {
                        self.db.request_job_cancel(id).await.map_err(|e| e.to_string())?;
                        live.cancel.send_replace(true);
                    }
                }
            }
        }
    }

    /// Takes the oldest queued job this agent can run, if any.
    async fn try_lease(&self, agent: &AgentRow) -> Result<Option<Assignment>, ApiError> {
        for j in self.db.queued_jobs().await? {
            let fits = j.labels.iter().all(|l| agent.labels.contains(l))
                && agent.executors.contains(&j.executor);
            // A job whose execution no process waits on yet (a restart before recovery
            // re-attached) waits in the queue.
            let Some(live) = self.live(j.id) else {
                continue;
            };
            if !fits {
                continue;
            }
            let lease_id = random_token("")?;
            let now = now_ms();
            if !self
                .db
                .claim_job(j.id, agent.id, &lease_id, now + self.ttl_ms(), now)
                .await?
            {
                continue;
            }
            let spec: JobSpec = serde_json::from_str(&j.spec).map_err(ApiError::internal)?;
            tracing::info!(job = j.id, agent = %agent.name, stage = %j.stage, action = %j.action, "job leased");
            return Ok(Some(Assignment {
                job_id: j.id,
                lease_id,
                lease_ttl_ms: self.lease_ttl.as_millis() as u64,
                execution: live.events.execution().to_string(),
                spec,
            }));
        }
        Ok(None)
    }

    /// Stores one chunk of a job's events (or acknowledges it again) and says how far the
    /// job's chunks are stored.
    async fn store_chunk(&self, id: i64, c: EventChunk) -> Result<ChunkAck, ApiError> {
        let j = self.held(id, &c.lease_id).await?;
        let Some(live) = self.live(id) else {
            return Err(not_ready());
        };
        let mut skip = live.chunks.lock().await;
        // The row is the truth (another request may have stored this chunk meanwhile).
        let j = self.db.job(id).await?.unwrap_or(j);
        if c.chunk != j.acked_chunk + 1 {
            return Ok(ChunkAck {
                acked_through: j.acked_chunk,
            });
        }
        if let Some(bad) = c
            .events
            .iter()
            .find(|e| !job_event(e, &live.stage, &live.action))
        {
            return Err(ApiError::invalid(format!(
                "chunk {}: a job sends only its own phase and log events, not {}",
                c.chunk,
                serde_json::to_value(bad)
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(String::from))
                    .unwrap_or_default()
            )));
        }
        let mut stored_rx = self.stored.get().map(|s| s.subscribe());
        let mut last = j.acked_seq;
        for e in c.events.into_iter().skip(*skip as usize) {
            last = live.events.emit_seq(e).await;
        }
        *skip = 0;
        // Acknowledged only once stored: the scheduler persists events in batches.
        let deadline = tokio::time::Instant::now() + STORE_WAIT;
        loop {
            let stored = self
                .db
                .execution_by_id(live.execution_id)
                .await?
                .map(|r| r.last_seq)
                .unwrap_or(0);
            if stored >= last {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(not_ready());
            }
            let wake = async {
                match stored_rx.as_mut() {
                    Some(rx) => loop {
                        match rx.recv().await {
                            Ok(x) if x == live.execution_id => return,
                            Ok(_) => {}
                            Err(_) => return,
                        }
                    },
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            let _ = tokio::time::timeout(Duration::from_millis(200), wake).await;
        }
        self.db.ack_chunk(id, &c.lease_id, c.chunk, last).await?;
        Ok(ChunkAck {
            acked_through: c.chunk,
        })
    }

    /// The job, while `lease_id` holds it; `lease_lost` (409) otherwise.
    async fn held(&self, id: i64, lease_id: &str) -> Result<JobRow, ApiError> {
        let j = self
            .db
            .job(id)
            .await?
            .ok_or_else(|| lease_lost(id, "the job is gone"))?;
        if j.lease_id.as_deref() != Some(lease_id) {
            return Err(lease_lost(id, "the job is leased to someone else"));
        }
        if j.state != JobState::Leased {
            return Err(lease_lost(id, "the lease ended"));
        }
        Ok(j)
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        check_version(headers)?;
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("an agent token is required (Authorization: Bearer)"))?;
        let hash = token_hash(token.trim());
        let Some((agent, stored)) = self.db.agent_by_token(&hash).await? else {
            return Err(unauthorized("unknown agent token"));
        };
        if !constant_time_eq(stored.as_bytes(), hash.as_bytes()) {
            return Err(unauthorized("unknown agent token"));
        }
        let now = now_ms();
        if now - agent.last_contact_ms > 1000 {
            self.db.touch_agent(agent.id, now).await?;
        }
        Ok(Caller { agent })
    }
}

#[async_trait]
impl Dispatch for Agents {
    async fn run(&self, build: RemoteBuild, events: &EventSink) -> BuildResult {
        let started = std::time::Instant::now();
        match self.wait(build, events).await {
            Ok(r) => r,
            Err(e) => {
                let mut r = BuildResult::ended(Status::Fault, Some(format!("agent job: {e}")));
                r.duration = started.elapsed();
                r
            }
        }
    }
}

/// The events a job may send: its own phases and log lines (batch builds are `action/id`).
fn job_event(e: &EventBody, stage: &str, action: &str) -> bool {
    let mine = |s: &str, a: &str| {
        s == stage
            && (a == action
                || a.strip_prefix(action)
                    .is_some_and(|rest| rest.starts_with('/')))
    };
    match e {
        EventBody::PhaseStarted { stage, action, .. }
        | EventBody::PhaseFinished { stage, action, .. }
        | EventBody::Log { stage, action, .. } => mine(stage, action),
        _ => false,
    }
}

fn result_json(j: &JobRow, status: Status, reason: &str) -> String {
    serde_json::to_string(&JobResult {
        lease_id: j.lease_id.clone().unwrap_or_default(),
        chunks: j.acked_chunk,
        status,
        reason: Some(reason.to_string()),
        outputs: Default::default(),
        artifacts: Vec::new(),
        reports: Vec::new(),
        log: None,
        duration_ms: 0,
    })
    .unwrap_or_default()
}

fn fault_result(j: &JobRow, reason: &str) -> String {
    result_json(j, Status::Fault, reason)
}

fn cancelled_result(j: &JobRow, reason: &str) -> String {
    result_json(j, Status::Cancelled, reason)
}

fn unauthorized(m: &str) -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message: m.into(),
        details: Vec::new(),
    }
}

fn lease_lost(id: i64, why: &str) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        code: "lease_lost",
        message: format!("job {id}: {why}; stop it"),
        details: Vec::new(),
    }
}

fn not_ready() -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "not_ready",
        message: "the server is not ready for this job yet; send it again".into(),
        details: Vec::new(),
    }
}

fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    let v = headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    if v == Some(JOB_PROTOCOL_VERSION) {
        return Ok(());
    }
    Err(ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "protocol_version",
        message: format!(
            "this server speaks job protocol version {JOB_PROTOCOL_VERSION}; the agent sent {} (upgrade the agent or the server)",
            v.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
        ),
        details: Vec::new(),
    })
}

/// SHA-256 of a token, hex: all the server keeps of it.
pub fn token_hash(token: &str) -> String {
    slipway_model::Digest::of(token.as_bytes())
        .hex()
        .to_string()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes from the kernel, hex, after `prefix`.
fn random_token(prefix: &str) -> Result<String, ApiError> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(ApiError::internal)?;
    let mut s = String::with_capacity(prefix.len() + 64);
    s.push_str(prefix);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// `POST /api/v1/agents/tokens`: a registration token, shown once.
#[utoipa::path(post, path = "/api/v1/agents/tokens", responses((status = 201, body = RegistrationToken)))]
pub async fn create_token(
    State(s): State<AppState>,
) -> Result<(StatusCode, Json<RegistrationToken>), ApiError> {
    let token = random_token("slpr_")?;
    s.sched
        .db
        .create_registration_token(&token_hash(&token), now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(RegistrationToken { token })))
}

/// `GET /api/v1/agents`: registered agents, their labels, last contact and leased jobs.
#[utoipa::path(get, path = "/api/v1/agents", responses((status = 200, body = Page<AgentInfo>)))]
pub async fn list(State(s): State<AppState>) -> Result<Json<Page<AgentInfo>>, ApiError> {
    let leased = s.sched.db.leased_jobs().await?;
    let items = s
        .sched
        .db
        .agents()
        .await?
        .into_iter()
        .map(|a| AgentInfo {
            running: leased
                .iter()
                .filter(|j| j.agent_id == a.id)
                .map(|j| {
                    format!(
                        "{}#{} {}/{} ({})",
                        j.project, j.number, j.stage, j.action, j.attempt
                    )
                })
                .collect(),
            id: a.id,
            name: a.name,
            labels: a.labels,
            executors: a.executors,
            concurrency: a.concurrency,
            agent_version: a.agent_version,
            created_ms: a.created_ms,
            last_contact_ms: a.last_contact_ms,
        })
        .collect();
    Ok(Json(Page { items, next: None }))
}

/// `POST /api/v1/agent/register`.
#[utoipa::path(post, path = "/api/v1/agent/register", request_body = Object,
    responses((status = 201, body = Object), (status = 401, body = slipway_proto::api::ApiError)))]
pub async fn register(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(r): Json<Register>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    check_version(&headers)?;
    if r.version != JOB_PROTOCOL_VERSION {
        return Err(check_version(&HeaderMap::new()).unwrap_err());
    }
    let hash = token_hash(r.token.trim());
    match s.sched.db.registration_token(&hash).await? {
        Some(stored) if constant_time_eq(stored.as_bytes(), hash.as_bytes()) => {}
        _ => {
            return Err(unauthorized(
                "unknown registration token (`slipway agent token create` issues one)",
            ));
        }
    }
    if r.name.trim().is_empty() || r.name.len() > 100 {
        return Err(ApiError::invalid(
            "an agent needs a name of at most 100 characters",
        ));
    }
    if let Some(bad) = r.executors.iter().find(|e| *e != "local" && *e != "docker") {
        return Err(ApiError::invalid(format!(
            "unknown executor `{bad}` (local, docker)"
        )));
    }
    let token = random_token("slpa_")?;
    let agent = s
        .sched
        .db
        .register_agent(&NewAgent {
            name: r.name.trim().to_string(),
            labels: r.labels,
            executors: r.executors,
            concurrency: r.concurrency.max(1),
            agent_version: r.agent_version,
            token_hash: token_hash(&token),
            now_ms: now_ms(),
        })
        .await?;
    tracing::info!(agent = %agent.name, id = agent.id, labels = ?agent.labels, "agent registered");
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            agent_id: agent.id,
            agent_token: token,
            lease_ttl_ms: s.agents.lease_ttl.as_millis() as u64,
        }),
    ))
}

/// `POST /api/v1/agent/lease`: a job, or none after `wait_ms`.
#[utoipa::path(post, path = "/api/v1/agent/lease", request_body = Object, responses((status = 200, body = Object)))]
pub async fn lease(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(r): Json<LeaseRequest>,
) -> Result<Json<LeaseReply>, ApiError> {
    let caller = s.agents.authenticate(&headers).await?;
    let hub = &s.agents;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(r.wait_ms).min(MAX_WAIT);
    let mut changed = hub.queue.subscribe();
    loop {
        changed.borrow_and_update();
        if let Some(job) = hub.try_lease(&caller.agent).await? {
            return Ok(Json(LeaseReply { job: Some(job) }));
        }
        if tokio::time::timeout_at(deadline, changed.changed())
            .await
            .is_err()
        {
            return Ok(Json(LeaseReply { job: None }));
        }
    }
}

/// `POST /api/v1/agent/jobs/{id}/heartbeat`: renews the lease; held until cancelled or
/// `wait_ms` (at most a third of the lease).
#[utoipa::path(post, path = "/api/v1/agent/jobs/{id}/heartbeat", request_body = Object,
    responses((status = 200, body = Object), (status = 409, body = slipway_proto::api::ApiError)))]
pub async fn heartbeat(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<i64>,
    headers: HeaderMap,
    Json(h): Json<Heartbeat>,
) -> Result<Json<HeartbeatReply>, ApiError> {
    s.agents.authenticate(&headers).await?;
    let hub = &s.agents;
    let Some(cancel) = hub
        .db
        .renew_lease(id, &h.lease_id, now_ms() + hub.ttl_ms())
        .await?
    else {
        return Err(lease_lost(id, "the lease ended"));
    };
    if cancel {
        return Ok(Json(HeartbeatReply { cancel: true }));
    }
    let wait = Duration::from_millis(h.wait_ms).min(hub.lease_ttl / 3);
    match hub.live(id) {
        Some(live) => {
            let mut rx = live.cancel.subscribe();
            let mut done = live.done.subscribe();
            let cancelled = async {
                loop {
                    if *rx.borrow_and_update() {
                        return true;
                    }
                    tokio::select! {
                        r = rx.changed() => if r.is_err() { return false },
                        _ = done.changed() => return false,
                    }
                }
            };
            let cancel = tokio::time::timeout(wait, cancelled).await.unwrap_or(false);
            Ok(Json(HeartbeatReply { cancel }))
        }
        None => {
            tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
            Ok(Json(HeartbeatReply { cancel: false }))
        }
    }
}

/// `POST /api/v1/agent/jobs/{id}/events`.
#[utoipa::path(post, path = "/api/v1/agent/jobs/{id}/events", request_body = Object,
    responses((status = 200, body = Object), (status = 409, body = slipway_proto::api::ApiError)))]
pub async fn events(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<i64>,
    headers: HeaderMap,
    Json(c): Json<EventChunk>,
) -> Result<Json<ChunkAck>, ApiError> {
    s.agents.authenticate(&headers).await?;
    Ok(Json(s.agents.store_chunk(id, c).await?))
}

/// `POST /api/v1/agent/jobs/{id}/result`.
#[utoipa::path(post, path = "/api/v1/agent/jobs/{id}/result", request_body = Object,
    responses((status = 200), (status = 409, body = slipway_proto::api::ApiError)))]
pub async fn result(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<i64>,
    headers: HeaderMap,
    Json(r): Json<JobResult>,
) -> Result<StatusCode, ApiError> {
    s.agents.authenticate(&headers).await?;
    let hub = &s.agents;
    let j = match hub.held(id, &r.lease_id).await {
        Ok(j) => j,
        // Sent again after an answer that was lost: already recorded.
        Err(e) => {
            return match hub.db.job(id).await? {
                Some(j)
                    if j.state == JobState::Done
                        && j.lease_id.as_deref() == Some(r.lease_id.as_str()) =>
                {
                    Ok(StatusCode::OK)
                }
                _ => Err(e),
            };
        }
    };
    if r.chunks != j.acked_chunk {
        return Err(ApiError::conflict(format!(
            "job {id}: chunks up to {} are stored, the result names {}; send the rest first",
            j.acked_chunk, r.chunks
        )));
    }
    let text = serde_json::to_string(&r).map_err(ApiError::internal)?;
    if !hub
        .db
        .finish_job(id, Some(&r.lease_id), &text, now_ms())
        .await?
    {
        return Err(lease_lost(id, "the lease ended"));
    }
    tracing::info!(job = id, status = %r.status, "agent job finished");
    hub.job_ended(id);
    Ok(StatusCode::OK)
}

/// `PUT /api/v1/agent/blobs/{digest}`: a blob streamed in, published only if its content
/// hashes to the digest named.
#[utoipa::path(put, path = "/api/v1/agent/blobs/{digest}", request_body(content = String, content_type = "application/octet-stream"),
    responses((status = 201), (status = 400, body = slipway_proto::api::ApiError)))]
pub async fn put_blob(
    State(s): State<AppState>,
    UrlPath(digest): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    s.agents.authenticate(&headers).await?;
    let d = Digest::parse(&digest).map_err(|e| ApiError::invalid(format!("digest: {e}")))?;
    if s.blobs.contains(&d) {
        return Ok(StatusCode::OK);
    }
    let mut w = s.blobs.writer().await.map_err(ApiError::internal)?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("upload cut short: {e}")))?;
        w.write(&chunk).await.map_err(ApiError::internal)?;
    }
    match w.finish_expecting(&d).await {
        Ok(_) => Ok(StatusCode::CREATED),
        Err(slipway_store::StoreError::DigestMismatch { .. }) => Err(ApiError::invalid(format!(
            "the uploaded content does not hash to {d}"
        ))),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// `GET /api/v1/agent/blobs/{digest}`: a source tree or input artifact, streamed.
#[utoipa::path(get, path = "/api/v1/agent/blobs/{digest}",
    responses((status = 200, content_type = "application/octet-stream", body = String)))]
pub async fn get_blob(
    State(s): State<AppState>,
    UrlPath(digest): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    s.agents.authenticate(&headers).await?;
    let d = Digest::parse(&digest).map_err(|e| ApiError::invalid(format!("digest: {e}")))?;
    let f = s
        .blobs
        .open_blob(&d)
        .await
        .map_err(|_| ApiError::not_found(format!("no blob {d}")))?;
    let len = f.metadata().await.map(|m| m.len()).ok();
    let mut resp = Body::from_stream(tokio_util::io::ReaderStream::new(f)).into_response();
    if let Some(len) = len {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, len.into());
    }
    Ok(resp)
}
