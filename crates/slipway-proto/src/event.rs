//! The event stream of an execution: the one schema read by `--json`, the server's event
//! stream, outgoing webhooks and the UI. Version 1; additions only, see docs/events.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use slipway_model::{Digest, Status};

/// Bumped only on a breaking change; new event types and new optional fields keep the version.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// One thing that happened in an execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version, [`EVENT_SCHEMA_VERSION`].
    pub v: u32,
    /// Position in this execution's stream, from 1 with no gaps.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// The execution's id.
    pub execution: String,
    #[serde(flatten)]
    pub body: EventBody,
}

/// What happened. Serialized with a `type` tag (`"type": "action_finished"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    ExecutionStarted {
        pipeline: String,
        /// A commit id, or absent for a working tree.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<String>,
        /// What started it: `cli`, `push`, `webhook`, `schedule`, `api`.
        trigger: String,
    },
    /// The execution runs again after it stopped: a retry of failed actions, or recovery after
    /// the server restarted. Stages and actions that already succeeded are not run again.
    ExecutionResumed {
        reason: String,
    },
    StageStarted {
        stage: String,
    },
    ActionStarted {
        stage: String,
        action: String,
        /// 1 for the first try; retries count up.
        attempt: u32,
        /// `build`, `image`, `deploy` or `approval`.
        kind: String,
        /// `local` or `docker` for build actions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        executor: Option<String>,
    },
    PhaseStarted {
        stage: String,
        action: String,
        /// CodeBuild's phase names: `DOWNLOAD_SOURCE`, `INSTALL`, `PRE_BUILD`, `BUILD`,
        /// `POST_BUILD`, `UPLOAD_ARTIFACTS`.
        phase: String,
    },
    /// Output of an action: whole lines, newline-terminated, lossily UTF-8.
    Log {
        stage: String,
        action: String,
        text: String,
    },
    PhaseFinished {
        stage: String,
        action: String,
        phase: String,
        status: Status,
        duration_ms: u64,
        /// The failing command's exit code, when a command failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    ApprovalWaiting {
        stage: String,
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    ApprovalDecided {
        stage: String,
        action: String,
        approved: bool,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    ActionFinished {
        stage: String,
        action: String,
        attempt: u32,
        status: Status,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Output variables (a buildspec's exported-variables).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        outputs: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        artifacts: Vec<ArtifactRef>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reports: Vec<ReportSummary>,
        /// Where the action's full log is stored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log: Option<Digest>,
    },
    StageFinished {
        stage: String,
        status: Status,
        duration_ms: u64,
    },
    ExecutionFinished {
        status: Status,
        duration_ms: u64,
    },
}

/// An artifact an action produced: a tar archive in the blob store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// The artifact's name: the pipeline's output artifact name, or the buildspec's identifier.
    pub name: String,
    pub digest: Digest,
    pub size: u64,
    pub files: u64,
}

/// Counts from one test report group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSummary {
    pub name: String,
    pub format: String,
    pub total: u64,
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<TestFailure>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestFailure {
    pub suite: String,
    pub name: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_a_type_tag_and_round_trip() {
        let e = Event {
            v: EVENT_SCHEMA_VERSION,
            seq: 3,
            time_ms: 1_700_000_000_000,
            execution: "hello#1".into(),
            body: EventBody::PhaseFinished {
                stage: "build".into(),
                action: "test".into(),
                phase: "BUILD".into(),
                status: Status::Failed,
                duration_ms: 12,
                exit_code: Some(2),
                reason: None,
            },
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"seq":3,"time_ms":1700000000000,"execution":"hello#1","type":"phase_finished","stage":"build","action":"test","phase":"BUILD","status":"failed","duration_ms":12,"exit_code":2}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }
}
