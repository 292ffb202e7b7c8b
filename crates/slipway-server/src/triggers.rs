//! What starts a pipeline: a change to a project's repository (a push to a hosted repository,
//! a ref that moved since the last poll, a forge's push or pull request webhook) or a
//! schedule, filtered by each pipeline's triggers as CodePipeline V2 filters them.
//!
//! Every source funnels into [`on_change`], so filters, changed-file computation and
//! the record of what started (or why not) are one code path.

use std::sync::Arc;

use slipway_store::ProjectRow;

use crate::error::ApiError;
use crate::scheduler::Scheduler;

/// The all-zero object id git uses for "no commit" (a created or deleted ref).
pub const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// What changed.
#[derive(Clone, Debug)]
pub enum Change {
    /// A ref moved: `git_ref` is full (`refs/heads/main`, `refs/tags/v1`); `before` is
    /// [`ZERO_SHA`] or `None` for a new ref, `after` is [`ZERO_SHA`] for a deleted one.
    Push {
        git_ref: String,
        before: Option<String>,
        after: String,
        /// Who pushed, when the source says.
        pusher: Option<String>,
    },
    /// A pull (merge) request was opened, updated (new commits) or closed.
    PullRequest {
        action: PullRequestAction,
        number: u64,
        /// Full refs: `refs/heads/main` (base), `refs/heads/feature` (head).
        base_ref: String,
        base_sha: String,
        head_ref: String,
        head_sha: String,
        title: Option<String>,
        author: Option<String>,
        /// The forge's web page of the pull request.
        url: Option<String>,
    },
    /// A pipeline's cron schedule fired.
    Schedule { pipeline: String, cron: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullRequestAction {
    Opened,
    Updated,
    Closed,
}

/// Where the change came from: `push` (hosted repository), `poll`, `github`, `gitlab`,
/// `gitea`, `schedule`. Recorded as the execution's trigger.
#[derive(Clone, Debug)]
pub struct Origin {
    pub source: String,
    /// The forge's delivery id, for the delivery log.
    pub delivery: Option<String>,
}

/// What a change did: executions started (`hello#3`) and, per pipeline that did not start,
/// why (`pipeline deploy: branch refs/heads/docs does not match [main]`).
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub started: Vec<String>,
    pub skipped: Vec<String>,
}

/// Evaluates a change against every pipeline of the project at the new commit and starts
/// those whose triggers match. Never fails because of a filter: a change that starts
/// nothing is `Ok` with reasons. `Err` only when the repository cannot be read.
pub async fn on_change(
    sched: &Arc<Scheduler>,
    project: &ProjectRow,
    change: Change,
    origin: Origin,
) -> Result<Outcome, ApiError> {
    let _ = (sched, project, change, origin);
    Err(ApiError::internal("triggers are not implemented yet"))
}
