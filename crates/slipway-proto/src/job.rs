//! The job protocol between the server and `slipway agent` (docs/agents.md): registration,
//! a long-polled lease, heartbeats that carry cancellation, numbered and acknowledged event
//! chunks, blobs streamed both ways, and the result. Versioned by [`JOB_PROTOCOL_VERSION`];
//! an agent that speaks another version is refused at registration and at every lease.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use slipway_model::{Digest, Status};

use crate::{ArtifactRef, EventBody, ReportSummary};

/// Bumped only on a breaking change; new optional fields keep the version.
pub const JOB_PROTOCOL_VERSION: u32 = 1;

/// The header every agent request carries its protocol version in.
pub const VERSION_HEADER: &str = "x-slipway-job-protocol";

/// `POST /api/v1/agent/register`: a registration token exchanged for the agent's own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Register {
    pub version: u32,
    /// A registration token from `slipway agent token create`.
    pub token: String,
    pub name: String,
    /// What jobs it takes: a job runs on an agent that has every label its `runs-on` names.
    pub labels: Vec<String>,
    /// `local`, `docker`: the executors this agent can run jobs with.
    pub executors: Vec<String>,
    /// Jobs it runs at once.
    pub concurrency: u32,
    /// The agent's program version (`slipway --version`), for `agent ls`.
    pub agent_version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    pub agent_id: i64,
    /// Sent as `Authorization: Bearer <token>` on every later request; shown nowhere else.
    pub agent_token: String,
    /// How long a lease lives without a heartbeat.
    pub lease_ttl_ms: u64,
}

/// `POST /api/v1/agent/lease`: waits up to `wait_ms` (at most 30 s) for a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub version: u32,
    pub wait_ms: u64,
}

/// The answer to a lease request: a job, or none when the wait ended without one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Assignment>,
}

/// A leased job: run it, heartbeat its lease, send its events, report its result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub job_id: i64,
    /// Names this lease; every later request about the job carries it. A job retried after a
    /// lost lease gets a new job id and lease.
    pub lease_id: String,
    pub lease_ttl_ms: u64,
    /// The execution (`project#N`) the job belongs to.
    pub execution: String,
    pub spec: JobSpec,
}

/// What to run: one build action's build (or batch of builds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub project: String,
    pub number: u64,
    pub stage: String,
    pub action: String,
    pub attempt: u32,
    /// The buildspec's path in the source tree.
    pub buildspec: String,
    /// `local` or `docker`.
    pub executor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// Project-level variables (over the buildspec's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    /// Variables over everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<(String, String)>,
    /// A tar of the source tree, in the server's blob store.
    pub source: Digest,
    /// Input artifacts (name, tar digest), unpacked over the workspace in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<(String, Digest)>,
    pub primary_artifact: String,
    pub ids: BuildIds,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// A service container beside the build (docker executor).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

/// The CODEBUILD_* identity of the build.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildIds {
    pub build_id: String,
    pub build_number: u64,
    pub initiator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_source_version: Option<String>,
}

/// `POST /api/v1/agent/jobs/{id}/heartbeat`: renews the lease. The server holds the request
/// up to `wait_ms` (a third of the lease at most) and answers at once when the job is
/// cancelled, so cancellation reaches the agent within a round trip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub lease_id: String,
    pub wait_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Stop the job: it was cancelled (its result is still reported).
    pub cancel: bool,
}

/// `POST /api/v1/agent/jobs/{id}/events`: one chunk of the job's events, numbered from 1 in
/// the order they happened. Chunks are sent in order; a chunk at or below the acknowledged
/// number is acknowledged again and not stored twice; a chunk beyond the next is refused
/// with the acknowledged number, so the agent resends from there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventChunk {
    pub lease_id: String,
    pub chunk: u64,
    pub events: Vec<EventBody>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkAck {
    /// Every chunk up to this one is stored.
    pub acked_through: u64,
}

/// `POST /api/v1/agent/jobs/{id}/result`: how the job ended. Sent after every chunk was
/// acknowledged (`chunks` is the last chunk's number) and every blob it names was uploaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub lease_id: String,
    pub chunks: u64,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<ReportSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<Digest>,
    pub duration_ms: u64,
}

/// `GET /api/v1/agents`: an agent as `slipway agent ls` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentInfo {
    pub id: i64,
    pub name: String,
    pub labels: Vec<String>,
    pub executors: Vec<String>,
    pub concurrency: u32,
    pub agent_version: String,
    pub created_ms: i64,
    pub last_contact_ms: i64,
    /// Jobs it holds a lease on: `project#N stage/action (attempt)`.
    pub running: Vec<String>,
}

/// `POST /api/v1/agents/tokens`: a new registration token, shown once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegistrationToken {
    pub token: String,
}
