//! Wire types shared by the engine, the server, the CLI and agents. Versioned: see docs/events.md.

pub mod api;
pub mod event;

pub use event::{ArtifactRef, EVENT_SCHEMA_VERSION, Event, EventBody, ReportSummary, TestFailure};
pub mod job;
