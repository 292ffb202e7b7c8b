//! The Executor trait and its implementations (local process, Docker): where build
//! commands actually run, one shell session per phase group, output streamed live.
//!
//! Architecture invariant: a failed command is not an `Err`. `Err(ExecutorError)` means
//! the infrastructure failed (engine unreachable, shell could not start, disk error).

mod archive;
mod docker;
mod error;
mod image;
mod local;
mod session;

#[cfg(test)]
mod conformance;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

pub use docker::{DockerConfig, DockerExecutor, LABEL_HOST, LABEL_JOB, LABEL_PID, LABEL_RUNNER};
pub use error::ExecutorError;
pub use image::{
    ImageBuildRequest, ImageBuilder, ImageBuilt, ImagePushed, RegistryAuth, split_tag,
};
pub use local::{LocalConfig, LocalExecutor};
pub use session::ShellSession;
pub use tokio_util::sync::CancellationToken;

/// Names this runner instance; written into the labels of everything the Docker
/// executor creates so `remove_orphans` touches only its own leftovers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunnerId(pub String);

/// Which executor implementation runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutorKind {
    Local,
    Docker,
}

/// Which shell program a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ShellKind {
    #[default]
    Sh,
    Bash,
}

impl ShellKind {
    pub(crate) fn program(self) -> &'static str {
        match self {
            ShellKind::Sh => "sh",
            ShellKind::Bash => "bash",
        }
    }
}

/// A sidecar container (database, cache) started before the build container on the
/// job's own network, reachable from the build by `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceContainer {
    pub name: String,
    pub image: String,
    pub env: Vec<(String, String)>,
    pub command: Option<Vec<String>>,
}

/// Everything an executor needs to set a job up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// Unique; appears in labels and container names.
    pub job_id: String,
    /// Host directory with the source, made by the engine.
    pub workspace: PathBuf,
    /// Docker: required.
    pub image: Option<String>,
    /// Environment every session starts with.
    pub env: Vec<(String, String)>,
    /// Docker: mount /var/run/docker.sock into the build container.
    pub privileged: bool,
    /// Docker: started first on the job's own network, reachable by name.
    pub services: Vec<ServiceContainer>,
}

impl JobSpec {
    /// The workspace as an absolute, UTF-8 path to an existing directory: what both executors
    /// hand to commands (directly, or as a bind mount).
    pub fn workspace_dir(&self) -> Result<String, ExecutorError> {
        let bad = |detail: String| ExecutorError::Workspace {
            path: self.workspace.clone(),
            detail,
        };
        let dir = std::fs::canonicalize(&self.workspace).map_err(|e| bad(e.to_string()))?;
        if !dir.is_dir() {
            return Err(bad("not a directory".into()));
        }
        dir.to_str()
            .map(str::to_string)
            .ok_or_else(|| bad("path is not valid UTF-8".into()))
    }
}

/// How to open a shell session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShellOptions {
    pub shell: ShellKind,
    /// Run as this user (name or numeric id); `None` keeps the job's default user.
    pub user: Option<String>,
    /// Added on top of `JobSpec.env` (later entries win).
    pub env: Vec<(String, String)>,
}

/// How one command ended. Failure of the command is data, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    /// The command finished with this status; the session lives on.
    Exited(i32),
    /// The shell itself exited while running the command (`exit 3`, `set -e`); the
    /// code is `None` when it was killed by a signal. The session is dead.
    SessionEnded(Option<i32>),
    /// The cancellation token fired; the session's processes were killed.
    Cancelled,
}

/// Receives a command's output as it arrives, in chunks of any size (not lines).
#[async_trait]
pub trait LogSink: Send {
    async fn write(&mut self, data: &[u8]);
}

#[async_trait]
impl LogSink for Vec<u8> {
    async fn write(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }
}

#[async_trait]
impl LogSink for tokio::io::Sink {
    async fn write(&mut self, _data: &[u8]) {}
}

/// Something that can run build jobs. One instance serves many jobs.
#[async_trait]
pub trait Executor: Send + Sync {
    fn kind(&self) -> ExecutorKind;

    /// Checks that the executor can run jobs now (Docker: the engine answers). Called at
    /// startup and by health endpoints; may be called concurrently with anything.
    async fn health(&self) -> Result<(), ExecutorError>;

    /// Sets up a job's environment (Docker: network, services, build container). Called
    /// once per job; may be called concurrently for different jobs. On `Err`, whatever
    /// was created is removed again where possible; `cleanup` on the returned job (and
    /// `remove_orphans`) are the backstops.
    async fn start(&self, job: &JobSpec) -> Result<Box<dyn Job>, ExecutorError>;

    /// Removes what earlier processes of this runner left behind (they crashed before
    /// `cleanup`): only objects carrying this runner's id whose owning process is no
    /// longer alive on this host. Returns how many objects were removed. Called at
    /// runner startup; safe concurrently with running jobs (their owner is alive).
    async fn remove_orphans(&self) -> Result<usize, ExecutorError>;
}

/// A started job. Methods take `&mut self`: one caller drives a job, one step at a time.
#[async_trait]
pub trait Job: Send {
    /// The workspace path as commands see it (local: the host path; Docker:
    /// `/workspace/src`). Sessions start in it.
    fn workdir(&self) -> &str;

    /// Starts a shell session (a fresh shell: state carries across its commands, not
    /// across sessions). Called per phase group or per user switch. Several sessions of
    /// a job may be open at once.
    async fn open_shell(&mut self, opts: ShellOptions) -> Result<ShellSession, ExecutorError>;

    /// Writes a tar of the file or directory `path` (absolute, or relative to
    /// `workdir()`) to the host file `dest`; the archive's entries are named from the
    /// path's last component. `Ok(false)` if `path` does not exist. Called after commands
    /// finished (artifacts, cache).
    async fn archive_out(
        &mut self,
        path: &str,
        dest: &std::path::Path,
    ) -> Result<bool, ExecutorError>;

    /// Unpacks the host tar `src` into `dir` (absolute, or relative to `workdir()`;
    /// created if absent). Entries that would escape `dir` are refused.
    async fn archive_in(&mut self, src: &std::path::Path, dir: &str) -> Result<(), ExecutorError>;

    /// Kills every session and removes containers and network. Idempotent: safe to call
    /// twice, and safe after a failed start or a cancelled command.
    async fn cleanup(&mut self) -> Result<(), ExecutorError>;
}

/// Executor configuration as data; `build` turns it into behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorConfig {
    Local(LocalConfig),
    Docker(DockerConfig),
}

impl ExecutorConfig {
    /// Builds the executor (Docker: connects and negotiates the API version once).
    pub async fn build(self, runner: RunnerId) -> Result<Arc<dyn Executor>, ExecutorError> {
        match self {
            ExecutorConfig::Local(cfg) => Ok(Arc::new(LocalExecutor::new(cfg, runner))),
            ExecutorConfig::Docker(cfg) => {
                Ok(Arc::new(DockerExecutor::connect(cfg, runner).await?))
            }
        }
    }
}

/// Merges environment lists where later entries override earlier ones with the same name.
pub(crate) fn merged_env<'a>(
    lists: impl IntoIterator<Item = &'a [(String, String)]>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for list in lists {
        for (k, v) in list {
            if let Some(slot) = out.iter_mut().find(|(ok, _)| ok == k) {
                slot.1 = v.clone();
            } else {
                out.push((k.clone(), v.clone()));
            }
        }
    }
    out
}

/// Resolves `path` (absolute, or relative to `workdir`) without touching the disk.
pub(crate) fn resolve_in(workdir: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else if path.is_empty() || path == "." {
        workdir.to_string()
    } else {
        format!("{}/{}", workdir.trim_end_matches('/'), path)
    }
}
