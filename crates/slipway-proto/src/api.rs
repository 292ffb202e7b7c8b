//! The REST API's bodies under `/api/v1`: what the server sends and the CLI reads. Additions
//! only; a field that changes meaning gets a new name. Times are Unix milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use slipway_model::Status;
use utoipa::ToSchema;

use crate::{ArtifactRef, ReportSummary};

/// A project: a repository and the pipelines read from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub name: String,
    /// Where the repository is: a local path or a git URL.
    pub git: String,
    pub created_ms: i64,
    /// The number the last execution got (`hello#N`); 0 before the first.
    pub last_number: u64,
    /// A repository Slipway hosts: the URL to clone and push (`http://HOST/git/NAME.git`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_url: Option<String>,
    /// How often the repository is polled (`60s`, or `off`); absent for a hosted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<String>,
    /// Where each forge sends webhooks: `github`, `gitlab`, `gitea` -> URL (`project show`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub webhook_urls: BTreeMap<String, String>,
    /// The secret forges sign webhooks with (shown so it can be pasted into the forge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Where commit statuses go: `github`, `gitlab` or `gitea`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge_api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge_repo: Option<String>,
    /// Whether a forge token is set (the token itself is never sent back).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forge_token_set: bool,
    /// Where execution notifications are POSTed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify_urls: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateProject {
    pub name: String,
    /// A git URL or a local path to watch; empty or absent: Slipway hosts the repository.
    #[serde(default)]
    pub git: String,
}

/// `PATCH /api/v1/projects/{project}`: changes a project's settings; absent fields stay as
/// they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ProjectSettings {
    /// How often to poll the repository: a duration (`30s`, `5m`), `off` (or `0`), or
    /// `default` (the server's `sources.poll_interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<String>,
    /// A new webhook secret (at least 16 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// `github`, `gitlab` or `gitea` (Forgejo too); empty clears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<String>,
    /// The forge's API base URL (`https://api.github.com`, `https://gitlab.example/api/v4`,
    /// `https://gitea.example/api/v1`); empty clears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge_api: Option<String>,
    /// `owner/name`, or GitLab's project id or path; empty clears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge_repo: Option<String>,
    /// The token commit statuses are sent with; empty clears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge_token: Option<String>,
    /// Replaces the notification URLs (an empty list: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_urls: Option<Vec<String>>,
}

/// One inbound webhook request (`GET .../deliveries`): what came and what it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    /// `github`, `gitlab` or `gitea`.
    pub source: String,
    /// The forge's delivery id (absent when refused, replayed, or when processing failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub received_ms: i64,
    /// The HTTP status answered.
    pub status: u16,
    /// What it did, or why it did nothing.
    pub outcome: String,
    /// Executions started (`hello#3`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub started: Vec<String>,
}

/// One outgoing request (`GET .../notifications`): a commit status or a notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NotificationDelivery {
    pub id: i64,
    /// `hello#3`.
    pub execution: String,
    /// `status` (a commit status on the forge) or `webhook` (a notification URL).
    pub kind: String,
    /// The URL POSTed to.
    pub target: String,
    /// The execution status reported.
    pub event: String,
    /// `pending`, `delivered`, `failed` or `superseded`.
    pub state: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_ms: Option<i64>,
}

/// One execution, without its actions (lists).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Execution {
    pub project: String,
    pub number: u64,
    /// `project#number`, the name the CLI and URLs use.
    pub name: String,
    pub pipeline: String,
    /// The commit the execution runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// What was asked for (a branch, tag or commit), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<String>,
    /// `api`, `cli`, `up`, `rerun`, later `push`, `webhook`, `schedule`.
    pub trigger: String,
    #[schema(value_type = String)]
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
    /// The execution this one re-runs, when started by `rerun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<u64>,
}

/// One action of an execution as it stands now (the latest attempt).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActionState {
    pub stage: String,
    pub action: String,
    /// `build`, `image`, `deploy` or `approval`.
    pub kind: String,
    #[schema(value_type = String)]
    pub status: Status,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The stored log's digest once the attempt finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub log: Option<slipway_model::Digest>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub artifacts: Vec<ArtifactRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub reports: Vec<ReportSummary>,
}

/// An approval action's request and, once given, its decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    pub stage: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `waiting`, `succeeded` (approved), `failed` (rejected), `timed_out`, `cancelled`.
    #[schema(value_type = String)]
    pub status: Status,
    pub requested_ms: i64,
    /// When it times out if nobody decides.
    pub deadline_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An execution with its actions and approvals (`execution show`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExecutionDetail {
    #[serde(flatten)]
    pub execution: Execution,
    /// In pipeline order.
    pub actions: Vec<ActionState>,
    pub approvals: Vec<Approval>,
    /// The last event's sequence number: where a live stream picks up.
    pub last_seq: u64,
}

/// `POST /api/v1/projects/{project}/executions`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct StartExecution {
    /// Which pipeline, when the repository has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// A branch, tag or commit (default: the repository's HEAD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Recorded as the trigger (default `api`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The ref that moved (`refs/heads/main`), recorded beside the commit `revision` names
    /// (default: `revision` as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<String>,
}

/// `POST .../executions/{number}/approvals`: approve or reject a waiting approval action.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Decide {
    /// The approval action (`stage/action` or `action`); may be left out when only one waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub approved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Who decides (until users exist, what the client says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A page of a list, newest first; `next` is the cursor for the following page.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Every API error: a stable machine code and a sentence for people.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// Stable: `not_found`, `conflict`, `invalid`, `invalid_pipeline`, `internal`, ...
    pub code: String,
    pub message: String,
    /// For `invalid_pipeline`: every problem as `file:line:column: message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// What `slipway gc` removed, or would remove with `dry_run`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct GcReport {
    pub dry_run: bool,
    /// `project#number` of each execution pruned.
    pub executions: Vec<String>,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub cache_entries: u64,
    pub cache_bytes: u64,
    pub docker_containers: u64,
    pub docker_images: u64,
}
