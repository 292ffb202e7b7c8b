//! Executions as state machines: runs buildspecs on executors and pipelines of actions.

pub mod artifacts;
pub mod reports;
