//! Where build actions leave the engine for agents: a build action that names `runs-on` is
//! handed to the engine's [`Dispatch`] (the server queues it for an agent with those labels);
//! with none (`slipway run`), it runs here like any other.

use async_trait::async_trait;
use slipway_spec::pipeline::ExecutorChoice;

use crate::build::{BuildJob, BuildResult};
use crate::events::EventSink;

/// One attempt of a build action to run elsewhere.
#[derive(Clone)]
pub struct RemoteBuild {
    /// The build as it would run here: `source` is the execution's tree, `inputs` are tar
    /// blobs in the engine's store, `cancel` fires when the execution is cancelled.
    pub job: BuildJob,
    /// The buildspec's path in the source tree (the agent reads it from its copy).
    pub buildspec_path: String,
    /// Labels the agent must have.
    pub runs_on: Vec<String>,
    pub executor: ExecutorChoice,
}

/// Runs builds on agents.
#[async_trait]
pub trait Dispatch: Send + Sync {
    /// Called once per attempt of a build action with `runs-on`, concurrently for different
    /// actions. Emits the build's own events (phases, log lines) into `events`; the action's
    /// start and end stay the engine's. Returns when the build ended: a lost agent or a job
    /// that could not be queued is `Status::Fault`, a cancelled one `Status::Cancelled`.
    async fn run(&self, build: RemoteBuild, events: &EventSink) -> BuildResult;
}

/// The executor a build action runs with when it runs elsewhere: the one it names, else
/// the execution's default, else docker when it names an image or services.
pub fn remote_executor(
    b: &slipway_spec::pipeline::BuildAction,
    default: Option<ExecutorChoice>,
    default_image: Option<&String>,
) -> ExecutorChoice {
    match b.executor.or(default) {
        Some(c) => c,
        None if b.image.is_some() || default_image.is_some() || !b.services.is_empty() => {
            ExecutorChoice::Docker
        }
        None => ExecutorChoice::Local,
    }
}
