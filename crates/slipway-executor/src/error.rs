//! The one error type of the crate: infrastructure failures only (a non-zero exit is not an error).

use std::path::PathBuf;

/// Why an executor could not do what was asked. A command that fails is never an
/// `ExecutorError`: it is `Ok(CommandStatus::Exited(n))`.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("the shell session has ended; open a new one")]
    SessionEnded,
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown user `{user}`: {detail}")]
    UnknownUser { user: String, detail: String },
    #[error(
        "cannot run commands as user `{user}`: the runner is not root (it runs as `{current}`)"
    )]
    UserSwitchNotPermitted { user: String, current: String },
    #[error("docker: {context}: {source}")]
    Docker {
        context: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("docker engine is not reachable: {source}")]
    EngineUnreachable {
        #[source]
        source: bollard::errors::Error,
    },
    #[error("image `{image}` is not present locally and could not be pulled: {detail}")]
    ImageUnavailable { image: String, detail: String },
    #[error("job `{job_id}` needs an image to run on the docker executor")]
    ImageRequired { job_id: String },
    #[error("workspace {path} is unusable: {detail}")]
    Workspace { path: PathBuf, detail: String },
    #[error("unsafe archive entry `{entry}`: {reason}")]
    UnsafeArchive { entry: String, reason: String },
    #[error("invalid path `{path}`: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("shell protocol violated: {detail}")]
    Protocol { detail: String },
    #[error("background task failed: {detail}")]
    Task { detail: String },
}

impl ExecutorError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ExecutorError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn docker(context: impl Into<String>, source: bollard::errors::Error) -> Self {
        ExecutorError::Docker {
            context: context.into(),
            source,
        }
    }
}
