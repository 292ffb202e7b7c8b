//! Executions as state machines: runs buildspecs on executors and pipelines of actions.
//! Talks to executors and storage only through their traits and types.

pub mod artifacts;
pub mod build;
mod cache;
pub mod dispatch;
pub mod events;
pub mod execution;
pub mod image;
pub mod reports;
pub mod secrets;
pub mod workspace;

pub use build::{BuildEnvironment, BuildIds, BuildJob, BuildResult, run_build};
pub use dispatch::{Dispatch, RemoteBuild};
pub use events::{ActionLog, EventSink};
pub use execution::{
    ActionSummary, ApprovalRequest, Approver, Decision, Engine, ExecutionRequest, ExecutionResult,
    Executors, PriorAction, Resume, StageGate, run_execution,
};
