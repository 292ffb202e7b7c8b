//! One build: a buildspec run on an executor with CodeBuild's semantics.
//!
//! Phases run in order in one shell session, so `cd`, variables and exports carry over.
//! A failing command skips the rest of its phase's commands; `finally` still runs. A failure
//! in install or pre_build ends the build (no later phase, no artifacts); a failure in build
//! still runs post_build with CODEBUILD_BUILD_SUCCEEDING=0, and artifacts are still
//! collected. `on-failure` ABORT / CONTINUE / RETRY* change that per phase. See
//! docs/buildspec.md for the rules where AWS's docs leave a choice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_executor::{
    CommandStatus, Executor, Job, JobSpec, ServiceContainer, ShellKind, ShellOptions, ShellSession,
};
use slipway_model::Status;
use slipway_proto::{ArtifactRef, EventBody, ReportSummary};
use slipway_spec::buildspec::{ArtifactSet, Buildspec, OnFailure, Phase, PhaseName, Version};
use slipway_store::BlobStore;
use tokio_util::sync::CancellationToken;

use crate::events::{ActionLog, EventSink, now_ms};
use crate::secrets::{self, SecretSource};
use crate::{artifacts, cache, workspace};

/// What one build needs that is shared by every build of an execution.
#[derive(Clone)]
pub struct BuildEnvironment {
    pub executor: Arc<dyn Executor>,
    pub store: BlobStore,
    /// Workspaces are made below this directory and removed afterwards.
    pub work_root: PathBuf,
    /// Caches kept between builds.
    pub cache_root: PathBuf,
    /// When set, artifacts are also copied to `<dir>/<artifact name>/`.
    pub artifacts_dir: Option<PathBuf>,
    pub secrets: Arc<dyn SecretSource>,
    pub events: EventSink,
}

/// Identity of a build, as CODEBUILD_* variables show it.
#[derive(Clone, Debug, Default)]
pub struct BuildIds {
    /// `project:uuid`, as CodeBuild's CODEBUILD_BUILD_ID.
    pub build_id: String,
    pub build_number: u64,
    pub initiator: String,
    /// Branch, tag or commit asked for (CODEBUILD_SOURCE_VERSION).
    pub source_version: Option<String>,
    /// The commit built (CODEBUILD_RESOLVED_SOURCE_VERSION).
    pub resolved_source_version: Option<String>,
    pub batch_identifier: Option<String>,
    pub project: String,
}

/// One build to run.
#[derive(Clone)]
pub struct BuildJob {
    pub stage: String,
    pub action: String,
    pub attempt: u32,
    /// A directory copied into a fresh workspace.
    pub source: PathBuf,
    pub buildspec: Buildspec,
    pub image: Option<String>,
    pub privileged: bool,
    pub services: Vec<ServiceContainer>,
    /// Project-level variables: over the buildspec's, under `overrides`.
    pub project_env: Vec<(String, String)>,
    /// Command-line variables: the highest precedence.
    pub overrides: Vec<(String, String)>,
    /// Input artifacts (name, tar blob path) unpacked over the workspace before install.
    pub inputs: Vec<(String, PathBuf)>,
    /// The name the primary artifact is stored under (a pipeline output artifact name).
    pub primary_artifact: String,
    pub ids: BuildIds,
    pub timeout: Option<Duration>,
    pub cancel: CancellationToken,
}

/// How a build ended. Not an error: a failed build is `Ok` with `status: Failed`.
#[derive(Clone, Debug)]
pub struct BuildResult {
    pub status: Status,
    pub reason: Option<String>,
    pub exported: BTreeMap<String, String>,
    pub artifacts: Vec<ArtifactRef>,
    pub reports: Vec<ReportSummary>,
    pub log: Option<slipway_model::Digest>,
    pub duration: Duration,
}

impl BuildResult {
    /// A result with no outputs: an action that ended before or without running a build.
    pub fn ended(status: Status, reason: Option<String>) -> Self {
        Self {
            status,
            reason,
            exported: BTreeMap::new(),
            artifacts: Vec::new(),
            reports: Vec::new(),
            log: None,
            duration: Duration::ZERO,
        }
    }
}

/// The infrastructure failed: the executor could not start, the disk is full.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("executor: {0}")]
    Executor(#[from] slipway_executor::ExecutorError),
    #[error("workspace {path}: {source}")]
    Workspace {
        path: String,
        source: std::io::Error,
    },
}

/// Runs one build and emits its events (ActionStarted/Finished are the caller's).
pub async fn run_build(env: &BuildEnvironment, job: BuildJob) -> BuildResult {
    let started = Instant::now();
    let mut log = ActionLog::new(env.events.clone(), &env.store, &job.stage, &job.action).await;
    let mut runner = Runner {
        env,
        job: &job,
        log: &mut log,
    };
    let (status, reason, exported, artifacts, reports) = match runner.run().await {
        Ok(done) => done,
        Err(e) => {
            runner.log.note(&format!("error: {e}")).await;
            (
                Status::Fault,
                Some(e.to_string()),
                BTreeMap::new(),
                Vec::new(),
                Vec::new(),
            )
        }
    };
    let log_digest = log.finish().await;
    BuildResult {
        status,
        reason,
        exported,
        artifacts,
        reports,
        log: log_digest,
        duration: started.elapsed(),
    }
}

type Done = (
    Status,
    Option<String>,
    BTreeMap<String, String>,
    Vec<ArtifactRef>,
    Vec<ReportSummary>,
);

pub(crate) struct Runner<'a> {
    env: &'a BuildEnvironment,
    job: &'a BuildJob,
    log: &'a mut ActionLog,
}

/// What happened to one phase.
struct PhaseOutcome {
    status: Status,
    exit_code: Option<i32>,
    reason: Option<String>,
}

impl PhaseOutcome {
    fn ok() -> Self {
        Self {
            status: Status::Succeeded,
            exit_code: None,
            reason: None,
        }
    }
}

/// The shell sessions of a build: the main one, and the environment to start new ones with.
pub(crate) struct Shells {
    main: Option<ShellSession>,
    shell: ShellKind,
    user: Option<String>,
    env: Vec<(String, String)>,
}

impl Runner<'_> {
    async fn phase_event_start(&self, phase: &str) {
        self.env
            .events
            .emit(EventBody::PhaseStarted {
                stage: self.job.stage.clone(),
                action: self.job.action.clone(),
                phase: phase.into(),
            })
            .await;
    }

    async fn phase_event_end(&self, phase: &str, o: &PhaseOutcome, started: Instant) {
        self.env
            .events
            .emit(EventBody::PhaseFinished {
                stage: self.job.stage.clone(),
                action: self.job.action.clone(),
                phase: phase.into(),
                status: o.status,
                duration_ms: started.elapsed().as_millis() as u64,
                exit_code: o.exit_code,
                reason: o.reason.clone(),
            })
            .await;
    }

    async fn run(&mut self) -> Result<Done, BuildError> {
        let job = self.job;
        let bs = &job.buildspec;

        // DOWNLOAD_SOURCE: a fresh workspace holding the source and the input artifacts.
        let t = Instant::now();
        self.phase_event_start("DOWNLOAD_SOURCE").await;
        let job_id = format!("{}", uuid::Uuid::now_v7().simple());
        let ws_root = self.env.work_root.join(&job_id);
        let ws = ws_root.join("src");
        let prepared = workspace::prepare(&job.source, &ws, &job.inputs).await;
        if let Ok(c) = &prepared {
            self.log
                .note(&format!(
                    "source: {} files, {:.1} MB copied in {:.1}s",
                    c.files,
                    c.bytes as f64 / 1e6,
                    t.elapsed().as_secs_f64()
                ))
                .await;
        }
        if let Err(e) = prepared {
            let o = PhaseOutcome {
                status: Status::Fault,
                exit_code: None,
                reason: Some(e.to_string()),
            };
            self.phase_event_end("DOWNLOAD_SOURCE", &o, t).await;
            let _ = tokio::fs::remove_dir_all(&ws_root).await;
            return Err(BuildError::Workspace {
                path: ws.display().to_string(),
                source: e,
            });
        }

        // Secrets are resolved before anything runs: an unresolved one fails the build here.
        let secret_env = match secrets::resolve(
            &*self.env.secrets,
            &bs.env.parameter_store,
            &bs.env.secrets_manager,
        ) {
            Ok(v) => v,
            Err(errors) => {
                let msg = errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                self.log.note(&msg).await;
                let o = PhaseOutcome {
                    status: Status::Failed,
                    exit_code: None,
                    reason: Some(msg.clone()),
                };
                self.phase_event_end("DOWNLOAD_SOURCE", &o, t).await;
                let _ = tokio::fs::remove_dir_all(&ws_root).await;
                return Ok((
                    Status::Failed,
                    Some(msg),
                    BTreeMap::new(),
                    Vec::new(),
                    Vec::new(),
                ));
            }
        };

        let spec = JobSpec {
            job_id: job_id.clone(),
            workspace: ws.clone(),
            image: job.image.clone(),
            env: Vec::new(),
            privileged: job.privileged,
            services: job.services.clone(),
        };
        let mut handle = match self.env.executor.start(&spec).await {
            Ok(h) => h,
            Err(e) => {
                let o = PhaseOutcome {
                    status: Status::Fault,
                    exit_code: None,
                    reason: Some(e.to_string()),
                };
                self.phase_event_end("DOWNLOAD_SOURCE", &o, t).await;
                let _ = tokio::fs::remove_dir_all(&ws_root).await;
                return Err(e.into());
            }
        };
        self.phase_event_end("DOWNLOAD_SOURCE", &PhaseOutcome::ok(), t)
            .await;

        let result = self.run_in_job(&mut *handle, &ws, secret_env).await;
        if let Err(e) = handle.cleanup().await {
            tracing::warn!(error = %e, job = %job_id, "cleanup failed");
        }
        let _ = tokio::fs::remove_dir_all(&ws_root).await;
        result
    }

    fn base_env(&self, workdir: &str, secret_env: Vec<(String, String)>) -> Vec<(String, String)> {
        let job = self.job;
        let ids = &job.ids;
        let mut env: Vec<(String, String)> = vec![
            ("CODEBUILD_BUILD_ID".into(), ids.build_id.clone()),
            (
                "CODEBUILD_BUILD_NUMBER".into(),
                ids.build_number.to_string(),
            ),
            (
                "CODEBUILD_BUILD_ARN".into(),
                format!("arn:slipway:codebuild:local:build/{}", ids.build_id),
            ),
            (
                "CODEBUILD_BUILD_IMAGE".into(),
                job.image.clone().unwrap_or_else(|| "local".into()),
            ),
            ("CODEBUILD_BUILD_SUCCEEDING".into(), "1".into()),
            ("CODEBUILD_INITIATOR".into(), ids.initiator.clone()),
            ("CODEBUILD_SRC_DIR".into(), workdir.into()),
            ("CODEBUILD_START_TIME".into(), now_ms().to_string()),
            ("SLIPWAY".into(), "true".into()),
            ("SLIPWAY_PROJECT".into(), ids.project.clone()),
            (
                "SLIPWAY_EXECUTION".into(),
                self.env.events.execution().to_string(),
            ),
            ("SLIPWAY_STAGE".into(), job.stage.clone()),
            ("SLIPWAY_ACTION".into(), job.action.clone()),
        ];
        if let Some(v) = &ids.source_version {
            env.push(("CODEBUILD_SOURCE_VERSION".into(), v.clone()));
        }
        if let Some(v) = &ids.resolved_source_version {
            env.push(("CODEBUILD_RESOLVED_SOURCE_VERSION".into(), v.clone()));
            env.push(("SLIPWAY_REVISION".into(), v.clone()));
        }
        if let Some(v) = &ids.batch_identifier {
            env.push(("CODEBUILD_BATCH_BUILD_IDENTIFIER".into(), v.clone()));
        }
        for (name, _) in &job.inputs {
            env.push((format!("CODEBUILD_SRC_DIR_{name}"), workdir.into()));
        }
        // Precedence, lowest first: buildspec, then its secrets, then project, then command line.
        let layers = [
            &job.buildspec.env.variables,
            &secret_env,
            &job.project_env,
            &job.overrides,
        ];
        for layer in layers {
            for (k, v) in layer.iter() {
                set(&mut env, k, v);
            }
        }
        // A PATH-less environment would leave `sh` unable to find anything (local executor).
        if !env.iter().any(|(k, _)| k == "PATH")
            && let Ok(p) = std::env::var("PATH")
            && self.env.executor.kind() == slipway_executor::ExecutorKind::Local
        {
            env.push(("PATH".into(), p));
        }
        env
    }

    async fn run_in_job(
        &mut self,
        handle: &mut dyn Job,
        ws: &Path,
        secret_env: Vec<(String, String)>,
    ) -> Result<Done, BuildError> {
        let job = self.job;
        let bs = &job.buildspec;
        let workdir = handle.workdir().to_string();
        let env = self.base_env(&workdir, secret_env);

        // The whole build's deadline: cancel the commands, then report TIMED_OUT.
        let cancel = job.cancel.child_token();
        let timer = job.timeout.map(|t| {
            let c = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(t).await;
                c.cancel();
            })
        });

        let shell = match bs.env.shell.as_deref() {
            Some(s) if s.contains("bash") => ShellKind::Bash,
            _ => ShellKind::Sh,
        };
        let mut shells = Shells {
            main: None,
            shell,
            user: bs.run_as.clone(),
            env,
        };

        // Cache restore happens before install.
        if let Some(c) = &bs.cache
            && let Err(e) = cache::restore(self, handle, &mut shells, c, &cancel).await
        {
            self.log.note(&format!("cache restore skipped: {e}")).await;
        }

        // The first failure decides the build's status; later phases run only as CodeBuild
        // runs them: post_build after a build failure, everything after a CONTINUE.
        let mut failed: Option<(Status, Option<String>)> = None;
        let mut continued = false;
        let mut stop = false;
        let mut no_artifacts = false;
        for (name, phase) in bs.phases.iter() {
            if stop {
                break;
            }
            if failed.is_some() && !continued && name != PhaseName::PostBuild {
                continue;
            }
            let t = Instant::now();
            self.phase_event_start(name.codebuild_name()).await;
            let succeeding = if failed.is_some() { "0" } else { "1" };
            let mut outcome = self
                .run_phase(handle, &mut shells, name, phase, succeeding, &cancel)
                .await?;
            if cancel.is_cancelled() {
                outcome.status = if job.cancel.is_cancelled() {
                    Status::Cancelled
                } else {
                    Status::TimedOut
                };
                if outcome.status == Status::TimedOut {
                    outcome.reason = Some(format!(
                        "the build timed out after {:?}",
                        job.timeout.unwrap_or_default()
                    ));
                }
            }
            self.phase_event_end(name.codebuild_name(), &outcome, t)
                .await;
            if outcome.status == Status::Succeeded {
                continue;
            }
            let reason = outcome.reason.clone();
            if failed.is_none() {
                failed = Some((outcome.status, reason));
            }
            if cancel.is_cancelled() {
                stop = true;
                no_artifacts = true;
                continue;
            }
            match (&phase.on_failure, name) {
                (Some(OnFailure::Continue), _) => continued = true,
                (Some(OnFailure::Abort), _) => {
                    stop = true;
                    no_artifacts = true;
                }
                (_, PhaseName::Install | PhaseName::PreBuild) => {
                    stop = true;
                    no_artifacts = true;
                }
                _ => {}
            }
        }
        if let Some(t) = timer {
            t.abort();
        }

        // exported-variables are read from the main session as post_build left them.
        let exported = self.read_exported(&mut shells).await;

        // Artifacts and reports: not after an install/pre_build failure, nor when cancelled.
        let mut artifacts_out = Vec::new();
        let mut reports_out = Vec::new();
        if !no_artifacts {
            let t = Instant::now();
            self.phase_event_start("UPLOAD_ARTIFACTS").await;
            let mut o = PhaseOutcome::ok();
            reports_out = self.collect_reports(ws).await;
            if let Some(a) = &bs.artifacts {
                match self
                    .collect_artifacts(handle, &mut shells, &cancel, ws, a)
                    .await
                {
                    Ok(v) => artifacts_out = v,
                    Err(msg) => {
                        self.log.note(&msg).await;
                        o = PhaseOutcome {
                            status: Status::Failed,
                            exit_code: None,
                            reason: Some(msg.clone()),
                        };
                        if failed.is_none() {
                            failed = Some((Status::Failed, Some(msg)));
                        }
                    }
                }
            }
            self.phase_event_end("UPLOAD_ARTIFACTS", &o, t).await;
            if let Some(c) = &bs.cache
                && failed.is_none()
                && let Err(e) = cache::save(self, handle, &mut shells, c, &cancel).await
            {
                self.log.note(&format!("cache not saved: {e}")).await;
            }
        }
        if let Some(s) = shells.main.take() {
            let _ = s.close().await;
        }
        let (status, reason) = match failed {
            None => (Status::Succeeded, None),
            Some((s, r)) => (s, r),
        };
        Ok((status, reason, exported, artifacts_out, reports_out))
    }

    pub(crate) async fn session<'s>(
        &mut self,
        handle: &mut dyn Job,
        shells: &'s mut Shells,
    ) -> Result<&'s mut ShellSession, BuildError> {
        if shells.main.is_none() {
            let s = handle
                .open_shell(ShellOptions {
                    shell: shells.shell,
                    user: shells.user.clone(),
                    env: shells.env.clone(),
                })
                .await?;
            shells.main = Some(s);
        }
        Ok(shells.main.as_mut().expect("just opened"))
    }

    /// Runs a command whose output is for Slipway, not the log; returns (status, stdout).
    pub(crate) async fn capture(
        &mut self,
        handle: &mut dyn Job,
        shells: &mut Shells,
        command: &str,
        cancel: &CancellationToken,
    ) -> Result<(CommandStatus, String), BuildError> {
        let mut out: Vec<u8> = Vec::new();
        let s = self.session(handle, shells).await?;
        let st = s.run(command, &mut out, cancel).await?;
        if matches!(st, CommandStatus::SessionEnded(_)) {
            shells.main = None;
        }
        Ok((st, String::from_utf8_lossy(&out).into_owned()))
    }

    async fn run_phase(
        &mut self,
        handle: &mut dyn Job,
        shells: &mut Shells,
        name: PhaseName,
        phase: &Phase,
        succeeding: &str,
        cancel: &CancellationToken,
    ) -> Result<PhaseOutcome, BuildError> {
        for (k, v) in &phase.runtime_versions {
            self.log.note(&format!("runtime-versions {k}: {v} is not installed by Slipway; the image provides runtimes")).await;
        }
        let (retries, pattern) = match &phase.on_failure {
            Some(OnFailure::Retry { count, pattern }) => (
                *count,
                // The parser has checked that the pattern compiles.
                pattern.as_deref().and_then(|p| regex::Regex::new(p).ok()),
            ),
            _ => (0, None),
        };
        let mut attempt = 0;
        loop {
            let o = self
                .run_phase_once(handle, shells, name, phase, succeeding, cancel)
                .await?;
            if o.status == Status::Succeeded || attempt >= retries || cancel.is_cancelled() {
                return Ok(o);
            }
            if let Some(re) = &pattern {
                let tail = String::from_utf8_lossy(self.log.tail()).into_owned();
                if !re.is_match(&tail) {
                    return Ok(o);
                }
            }
            attempt += 1;
            self.log
                .note(&format!(
                    "{} failed; retry {attempt} of {retries}",
                    name.codebuild_name()
                ))
                .await;
        }
    }

    async fn run_phase_once(
        &mut self,
        handle: &mut dyn Job,
        shells: &mut Shells,
        name: PhaseName,
        phase: &Phase,
        succeeding: &str,
        cancel: &CancellationToken,
    ) -> Result<PhaseOutcome, BuildError> {
        let v01 = self.job.buildspec.version == Version::V0_1;
        // A phase with a run-as of its own runs in a session of that user (see `phase_session`).
        let own_user = phase
            .run_as
            .clone()
            .filter(|u| Some(u) != shells.user.as_ref());
        let mut own: Option<ShellSession> = None;
        // Whether the phase's session has this phase's CODEBUILD_BUILD_SUCCEEDING yet.
        let mut primed = false;
        let set_succeeding = format!("export CODEBUILD_BUILD_SUCCEEDING={succeeding}");
        let mut outcome = PhaseOutcome::ok();
        for (list_i, list) in [&phase.commands, &phase.finally].into_iter().enumerate() {
            let is_finally = list_i == 1;
            if is_finally && !list.is_empty() {
                self.log.note("finally").await;
            }
            for cmd in list.iter() {
                if cancel.is_cancelled() {
                    outcome = PhaseOutcome {
                        status: Status::Cancelled,
                        exit_code: None,
                        reason: None,
                    };
                    break;
                }
                self.log.reset_tail();
                self.log
                    .note(&format!("Running command {}", first_line(&cmd.value)))
                    .await;
                let status = if v01 {
                    // 0.1: every command in a shell of its own.
                    let mut s = handle
                        .open_shell(ShellOptions {
                            shell: shells.shell,
                            user: own_user.clone().or(shells.user.clone()),
                            env: shells.env.clone(),
                        })
                        .await?;
                    let mut sink: Vec<u8> = Vec::new();
                    s.run(&set_succeeding, &mut sink, cancel).await?;
                    let st = s.run(&cmd.value, &mut *self.log, cancel).await?;
                    let _ = s.close().await;
                    st
                } else {
                    let session = self
                        .phase_session(handle, shells, &mut own, own_user.as_deref(), cancel)
                        .await?;
                    if !primed {
                        session
                            .run(&set_succeeding, &mut Vec::new(), cancel)
                            .await?;
                        primed = true;
                    }
                    let st = session.run(&cmd.value, &mut *self.log, cancel).await?;
                    if matches!(st, CommandStatus::SessionEnded(_)) {
                        // The shell itself exited (`exit 3`, `set -e`): later commands get a new
                        // one, of the same user.
                        if own_user.is_some() {
                            own = None;
                        } else {
                            shells.main = None;
                        }
                        primed = false;
                        self.log.note("the shell session ended; later commands start a new session (shell state is lost)").await;
                    }
                    st
                };
                let code = match status {
                    CommandStatus::Exited(0) | CommandStatus::SessionEnded(Some(0)) => None,
                    CommandStatus::Exited(c) | CommandStatus::SessionEnded(Some(c)) => Some(c),
                    CommandStatus::SessionEnded(None) => Some(-1),
                    CommandStatus::Cancelled => {
                        outcome = PhaseOutcome {
                            status: Status::Cancelled,
                            exit_code: None,
                            reason: None,
                        };
                        break;
                    }
                };
                if let Some(c) = code {
                    self.log
                        .note(&format!(
                            "Command did not exit successfully {} exit status {c}",
                            first_line(&cmd.value)
                        ))
                        .await;
                    if outcome.status == Status::Succeeded {
                        outcome = PhaseOutcome {
                            status: Status::Failed,
                            exit_code: Some(c),
                            reason: Some(format!(
                                "{} failed: `{}` exited with {c}",
                                name.codebuild_name(),
                                first_line(&cmd.value)
                            )),
                        };
                    }
                    // The rest of this list is skipped; `finally` still runs.
                    break;
                }
            }
            if outcome.status == Status::Cancelled {
                break;
            }
        }
        if let Some(s) = own {
            let _ = s.close().await;
        }
        Ok(outcome)
    }

    /// The session a phase's commands run in: the main one, or, for a phase whose `run-as` names
    /// another user, a session of that user started with the main session's exports (opened
    /// again, with the exports of that moment, if a command ended it).
    async fn phase_session<'s>(
        &mut self,
        handle: &mut dyn Job,
        shells: &'s mut Shells,
        own: &'s mut Option<ShellSession>,
        own_user: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<&'s mut ShellSession, BuildError> {
        let Some(user) = own_user else {
            return self.session(handle, shells).await;
        };
        if own.is_none() {
            let exports = self.capture(handle, shells, "export -p", cancel).await?.1;
            let mut s = handle
                .open_shell(ShellOptions {
                    shell: shells.shell,
                    user: Some(user.to_string()),
                    env: shells.env.clone(),
                })
                .await?;
            s.run(&exports, &mut Vec::new(), cancel).await?;
            *own = Some(s);
        }
        Ok(own.as_mut().expect("opened above"))
    }

    async fn read_exported(&mut self, shells: &mut Shells) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let names = &self.job.buildspec.env.exported_variables;
        let Some(s) = shells.main.as_mut() else {
            return out;
        };
        let never = CancellationToken::new();
        for name in names {
            let mut buf: Vec<u8> = Vec::new();
            let cmd = format!("printf '%s' \"${{{name}-}}\"");
            if let Ok(CommandStatus::Exited(0)) = s.run(&cmd, &mut buf, &never).await {
                out.insert(name.clone(), String::from_utf8_lossy(&buf).into_owned());
            }
        }
        out
    }

    async fn collect_reports(&mut self, ws: &Path) -> Vec<ReportSummary> {
        let mut out = Vec::new();
        for r in &self.job.buildspec.reports {
            let ws = ws.to_path_buf();
            let r2 = r.clone();
            let format = format!("{:?}", r.file_format).to_uppercase();
            let joined = tokio::task::spawn_blocking(move || {
                crate::reports::summarize(
                    &ws,
                    &r2.name,
                    &r2.files,
                    r2.base_directory.as_deref(),
                    &format,
                )
            })
            .await;
            match joined {
                Ok((summary, warnings)) => {
                    for w in warnings {
                        self.log.note(&format!("report {}: {w}", r.name)).await;
                    }
                    self.log
                        .note(&format!(
                            "report {}: {} tests, {} passed, {} failed, {} skipped",
                            r.name, summary.total, summary.passed, summary.failed, summary.skipped
                        ))
                        .await;
                    out.push(summary);
                }
                Err(e) => self.log.note(&format!("report {}: {e}", r.name)).await,
            }
        }
        out
    }

    /// Evaluates `text` as the build's shell does inside double quotes (`$VAR`, `$(cmd)`), as
    /// CodeBuild evaluates artifact names and cache keys; text without `$` comes back as is.
    pub(crate) async fn shell_eval(
        &mut self,
        handle: &mut dyn Job,
        shells: &mut Shells,
        text: &str,
        cancel: &CancellationToken,
    ) -> Result<String, String> {
        if !text.contains('$') {
            return Ok(text.to_string());
        }
        let quoted = text.replace('\\', "\\\\").replace('"', "\\\"");
        match self
            .capture(handle, shells, &format!("printf '%s' \"{quoted}\""), cancel)
            .await
        {
            Ok((CommandStatus::Exited(0), out)) => Ok(out),
            Ok((st, _)) => Err(format!("`{text}` could not be evaluated ({st:?})")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// An artifact's name: the buildspec's, shell-evaluated (`myname-$(date +%Y-%m-%d)`), or
    /// `default`; a name that evaluates to nothing keeps its text.
    async fn artifact_name(
        &mut self,
        handle: &mut dyn Job,
        shells: &mut Shells,
        set: &ArtifactSet,
        default: &str,
        cancel: &CancellationToken,
    ) -> String {
        let Some(name) = &set.name else {
            return default.to_string();
        };
        match self.shell_eval(handle, shells, name, cancel).await {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => name.clone(),
        }
    }

    async fn collect_artifacts(
        &mut self,
        handle: &mut dyn Job,
        shells: &mut Shells,
        cancel: &CancellationToken,
        ws: &Path,
        a: &slipway_spec::buildspec::Artifacts,
    ) -> Result<Vec<ArtifactRef>, String> {
        let mut out = Vec::new();
        let primary_default = self.job.primary_artifact.clone();
        let mut sets: Vec<(String, &ArtifactSet)> = Vec::new();
        let primary_name = self
            .artifact_name(handle, shells, &a.primary, &primary_default, cancel)
            .await;
        sets.push((primary_name, &a.primary));
        for s in &a.secondary {
            let id = s.identifier.clone().unwrap_or_else(|| "secondary".into());
            let name = self.artifact_name(handle, shells, s, &id, cancel).await;
            sets.push((name, s));
        }
        for (name, set) in sets {
            let sel = artifacts::Selection {
                files: &set.files,
                base_directory: set.base_directory.as_deref(),
                discard_paths: set.discard_paths,
                exclude_paths: &set.exclude_paths,
            };
            let files = artifacts::select(ws, &sel).map_err(|e| format!("artifact {name}: {e}"))?;
            let (digest, size) = artifacts::pack(&self.env.store, &files)
                .await
                .map_err(|e| format!("artifact {name}: {e}"))?;
            if let Some(dir) = &self.env.artifacts_dir {
                let dest = dir.join(sanitize(&name));
                let files2 = files.clone();
                tokio::task::spawn_blocking(move || artifacts::copy_to_dir(&files2, &dest))
                    .await
                    .map_err(|e| format!("artifact {name}: {e}"))?
                    .map_err(|e| format!("artifact {name}: {e}"))?;
            }
            self.log
                .note(&format!(
                    "artifact {name}: {} files, {size} bytes, {digest}",
                    files.len()
                ))
                .await;
            out.push(ArtifactRef {
                name,
                digest,
                size,
                files: files.len() as u64,
            });
        }
        Ok(out)
    }
}

impl<'a> Runner<'a> {
    pub(crate) fn log(&mut self) -> &mut ActionLog {
        self.log
    }
    pub(crate) fn environment(&self) -> &BuildEnvironment {
        self.env
    }
    pub(crate) fn project(&self) -> String {
        self.job.ids.project.clone()
    }
}

fn set(env: &mut Vec<(String, String)>, k: &str, v: &str) {
    match env.iter_mut().find(|(ek, _)| ek == k) {
        Some(e) => e.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// A name safe as one path component.
pub fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        "_".into()
    } else {
        s
    }
}

pub(crate) use Runner as BuildRunner;
pub(crate) use Shells as BuildShells;
