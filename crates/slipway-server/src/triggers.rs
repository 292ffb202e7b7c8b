//! What starts a pipeline: a change to a project's repository (a push to a hosted repository,
//! a ref that moved since the last poll, a forge's push or pull request webhook) or a
//! schedule, filtered by each pipeline's triggers as CodePipeline V2 filters them.
//!
//! Every source funnels into [`on_change`], so filters, changed-file computation and
//! the record of what started (or why not) are one code path.

use std::path::Path;
use std::sync::Arc;

use slipway_proto::api::StartExecution;
use slipway_spec::pipeline::{Patterns, Pipeline, PullRequestEvent, PushFilter, Trigger};
use slipway_store::ProjectRow;

use crate::error::ApiError;
use crate::scheduler::Scheduler;
use crate::source;

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
///
/// The pipelines are read at the new commit (a pull request's head; for a schedule, the
/// default branch's head). Changed files: between `before` and `after`; for a new branch,
/// since it left the default branch (every file of the commit when they share no history);
/// for a pull request, between the merge base of base and head, and head.
pub async fn on_change(
    sched: &Arc<Scheduler>,
    project: &ProjectRow,
    change: Change,
    origin: Origin,
) -> Result<Outcome, ApiError> {
    let plan = match change {
        Change::Push {
            git_ref,
            before,
            after,
            ..
        } => push_plan(sched, project, git_ref, before, after).await?,
        Change::PullRequest {
            action,
            base_ref,
            base_sha,
            head_ref,
            head_sha,
            ..
        } => {
            let event = match action {
                PullRequestAction::Opened => PullRequestEvent::Opened,
                PullRequestAction::Updated => PullRequestEvent::Updated,
                PullRequestAction::Closed => PullRequestEvent::Closed,
            };
            pull_request_plan(
                sched, project, event, base_ref, base_sha, head_ref, head_sha,
            )
            .await?
        }
        Change::Schedule { pipeline, cron } => {
            schedule_plan(sched, project, &pipeline, &cron).await?
        }
    };
    let mut outcome = Outcome {
        started: Vec::new(),
        skipped: plan.skipped,
    };
    for name in plan.start {
        let req = StartExecution {
            pipeline: Some(name.clone()),
            revision: Some(plan.sha.clone()),
            variables: Default::default(),
            trigger: Some(origin.source.clone()),
            source_ref: plan.source_ref.clone(),
        };
        match sched.start(&project.name, req, None).await {
            Ok(row) => outcome
                .started
                .push(format!("{}#{}", row.project, row.number)),
            Err(e) => outcome
                .skipped
                .push(format!("pipeline {name}: could not start: {}", e.message)),
        }
    }
    tracing::info!(
        project = %project.name,
        source = %origin.source,
        started = ?outcome.started,
        skipped = ?outcome.skipped,
        "change evaluated"
    );
    Ok(outcome)
}

/// What to start: these pipelines at `sha`, recorded with `source_ref`; and why the others not.
#[derive(Debug, Default)]
struct Plan {
    sha: String,
    source_ref: Option<String>,
    start: Vec<String>,
    skipped: Vec<String>,
}

/// The commit `rev` names, fetched first for a mirrored project.
async fn commit(
    sched: &Arc<Scheduler>,
    project: &ProjectRow,
    rev: &str,
) -> Result<(std::path::PathBuf, String), ApiError> {
    sched.resolve(project, Some(rev)).await
}

/// The pipelines at `sha`, or a plan that starts nothing and says why.
async fn read_pipelines(
    dir: &Path,
    sha: &str,
    project: &ProjectRow,
) -> Result<Result<Vec<Pipeline>, Plan>, ApiError> {
    let read = source::pipelines_at(dir, sha, &project.name)
        .await
        .map_err(|e| ApiError::invalid(format!("project `{}`: {e}", project.name)))?;
    Ok(read.map_err(|problems| Plan {
        skipped: vec![format!(
            "the pipeline files at {} have errors: {}",
            short(sha),
            problems.join("; ")
        )],
        ..Plan::default()
    }))
}

async fn push_plan(
    sched: &Arc<Scheduler>,
    project: &ProjectRow,
    git_ref: String,
    before: Option<String>,
    after: String,
) -> Result<Plan, ApiError> {
    if after == ZERO_SHA {
        let what = if git_ref.starts_with("refs/tags/") {
            "tag"
        } else {
            "branch"
        };
        return Ok(Plan {
            skipped: vec![format!("{what} deleted ({git_ref}): nothing starts")],
            ..Plan::default()
        });
    }
    let is_tag = git_ref.starts_with("refs/tags/");
    if !is_tag && !git_ref.starts_with("refs/heads/") {
        return Ok(Plan {
            skipped: vec![format!(
                "{git_ref} is neither a branch nor a tag: nothing starts"
            )],
            ..Plan::default()
        });
    }
    let (dir, sha) = commit(sched, project, &after).await?;
    let pipelines = match read_pipelines(&dir, &sha, project).await? {
        Ok(p) => p,
        Err(plan) => return Ok(plan),
    };
    let default = source::default_branch(&dir).await;
    let wants_paths = !is_tag
        && pipelines.iter().any(|p| {
            p.triggers
                .iter()
                .any(|t| matches!(t, Trigger::Push(f) if f.file_paths.is_some()))
        });
    let changed = if wants_paths {
        let before = before.filter(|b| b != ZERO_SHA);
        push_changes(&dir, &git_ref, before.as_deref(), &sha, &default).await?
    } else {
        Vec::new()
    };
    let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
    let mut plan = Plan {
        sha,
        source_ref: Some(git_ref.clone()),
        ..Plan::default()
    };
    for p in &pipelines {
        match check_push(p, &git_ref, &changed, &default).and_then(|()| startable(p)) {
            Ok(()) => plan.start.push(p.name.clone()),
            Err(why) => plan.skipped.push(format!("pipeline {}: {why}", p.name)),
        }
    }
    Ok(plan)
}

/// The files a push of `git_ref` to `after` changed: since `before` when the repository has it,
/// else (a new branch, or history rewritten past what is here) since the branch left the
/// default branch, else every file of `after`.
async fn push_changes(
    dir: &Path,
    git_ref: &str,
    before: Option<&str>,
    after: &str,
    default: &str,
) -> Result<Vec<String>, ApiError> {
    let read = |e: source::SourceError| ApiError::internal(e);
    if let Some(b) = before
        && source::has_commit(dir, b).await
    {
        return source::changed_files(dir, Some(b), after)
            .await
            .map_err(read);
    }
    let default_ref = format!("refs/heads/{default}");
    if git_ref != default_ref
        && let Some(base) = source::merge_base(dir, &default_ref, after).await
    {
        return source::changed_files(dir, Some(&base), after)
            .await
            .map_err(read);
    }
    source::changed_files(dir, None, after).await.map_err(read)
}

/// Whether a push starts the pipeline, or why not.
fn check_push(
    p: &Pipeline,
    git_ref: &str,
    changed: &[&str],
    default_branch: &str,
) -> Result<(), String> {
    if p.starts_on_push(git_ref, changed, default_branch) {
        return Ok(());
    }
    if p.triggers.is_empty() {
        return Err(format!(
            "it has no triggers, so only pushes to the default branch ({default_branch}) start it"
        ));
    }
    let reasons: Vec<String> = p
        .triggers
        .iter()
        .filter_map(|t| match t {
            Trigger::Push(f) => Some(why_not_push(f, git_ref, changed)),
            _ => None,
        })
        .collect();
    if reasons.is_empty() {
        return Err("it has no push trigger".into());
    }
    Err(reasons.join("; "))
}

fn why_not_push(f: &PushFilter, git_ref: &str, changed: &[&str]) -> String {
    if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
        return match &f.tags {
            None => "tag pushes start it only with a `tags` filter".into(),
            Some(t) => format!("tag {tag} does not match tags {}", show(t)),
        };
    }
    let branch = git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref);
    match (&f.branches, &f.tags) {
        (Some(b), _) if !b.matches(branch) => {
            return format!("branch {branch} does not match branches {}", show(b));
        }
        (None, Some(_)) => return "its push filter is for tags only".into(),
        _ => {}
    }
    match &f.file_paths {
        Some(fp) if changed.is_empty() => {
            format!("no file changed, and file-paths {} needs one", show(fp))
        }
        Some(fp) => format!(
            "none of the {} changed file(s) matches file-paths {}",
            changed.len(),
            show(fp)
        ),
        None => "its push filter does not match".into(),
    }
}

fn show(p: &Patterns) -> String {
    let mut s = format!("[{}]", p.includes.join(", "));
    if p.includes.is_empty() {
        s = "[everything]".into();
    }
    if !p.excludes.is_empty() {
        s.push_str(&format!(" excluding [{}]", p.excludes.join(", ")));
    }
    s
}

/// A pipeline with a variable that has no default can only be started by hand.
fn startable(p: &Pipeline) -> Result<(), String> {
    match p.variables.iter().find(|v| v.default.is_none()) {
        Some(v) => Err(format!(
            "variable {} has no default, so only a start by hand can give it",
            v.name
        )),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn pull_request_plan(
    sched: &Arc<Scheduler>,
    project: &ProjectRow,
    event: PullRequestEvent,
    base_ref: String,
    base_sha: String,
    head_ref: String,
    head_sha: String,
) -> Result<Plan, ApiError> {
    let (dir, sha) = commit(sched, project, &head_sha).await?;
    let pipelines = match read_pipelines(&dir, &sha, project).await? {
        Ok(p) => p,
        Err(plan) => return Ok(plan),
    };
    let wants_paths = pipelines.iter().any(|p| {
        p.triggers
            .iter()
            .any(|t| matches!(t, Trigger::PullRequest(f) if f.file_paths.is_some()))
    });
    let changed = if wants_paths {
        let base = if source::has_commit(&dir, &base_sha).await {
            Some(base_sha.clone())
        } else {
            source::resolve(&dir, Some(&base_ref)).await.ok()
        };
        let from = match base {
            Some(b) => source::merge_base(&dir, &b, &sha).await,
            None => None,
        };
        source::changed_files(&dir, from.as_deref(), &sha)
            .await
            .map_err(ApiError::internal)?
    } else {
        Vec::new()
    };
    let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
    let mut plan = Plan {
        sha,
        source_ref: Some(head_ref),
        ..Plan::default()
    };
    for p in &pipelines {
        let filters: Vec<_> = p
            .triggers
            .iter()
            .filter_map(|t| match t {
                Trigger::PullRequest(f) => Some(f),
                _ => None,
            })
            .collect();
        let verdict = if filters.is_empty() {
            Err("it has no pull-request trigger".to_string())
        } else if filters
            .iter()
            .any(|f| f.matches(event, &base_ref, &changed))
        {
            startable(p)
        } else {
            let base = base_ref.strip_prefix("refs/heads/").unwrap_or(&base_ref);
            Err(filters
                .iter()
                .map(|f| {
                    if !f.events.is_empty() && !f.events.contains(&event) {
                        format!(
                            "event {} is not one of [{}]",
                            event.as_str(),
                            f.events
                                .iter()
                                .map(|e| e.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    } else if let Some(b) = f.branches.as_ref().filter(|b| !b.matches(base)) {
                        format!("target branch {base} does not match branches {}", show(b))
                    } else if let Some(fp) = &f.file_paths {
                        format!(
                            "none of the {} changed file(s) matches file-paths {}",
                            changed.len(),
                            show(fp)
                        )
                    } else {
                        "its pull-request filter does not match".into()
                    }
                })
                .collect::<Vec<_>>()
                .join("; "))
        };
        match verdict {
            Ok(()) => plan.start.push(p.name.clone()),
            Err(why) => plan.skipped.push(format!("pipeline {}: {why}", p.name)),
        }
    }
    Ok(plan)
}

/// A schedule starts its pipeline at the head of the schedule's branch (default: the default
/// branch), as long as the default branch's pipeline still has that cron line.
async fn schedule_plan(
    sched: &Arc<Scheduler>,
    project: &ProjectRow,
    pipeline: &str,
    cron: &str,
) -> Result<Plan, ApiError> {
    let (dir, head) = commit(sched, project, "HEAD").await?;
    let pipelines = match read_pipelines(&dir, &head, project).await? {
        Ok(p) => p,
        Err(plan) => return Ok(plan),
    };
    let skip = |why: String| Plan {
        skipped: vec![format!("pipeline {pipeline}: {why}")],
        ..Plan::default()
    };
    let Some(p) = pipelines.iter().find(|p| p.name == pipeline) else {
        return Ok(skip(
            "not in the default branch's pipeline files any more".into(),
        ));
    };
    let Some(schedule) = p.triggers.iter().find_map(|t| match t {
        Trigger::Schedule(s) if s.cron == cron => Some(s),
        _ => None,
    }) else {
        return Ok(skip(format!("has no schedule `{cron}` any more")));
    };
    if let Err(why) = startable(p) {
        return Ok(skip(why));
    }
    let (sha, source_ref) = match &schedule.branch {
        None => {
            let branch = source::default_branch(&dir).await;
            (head, format!("refs/heads/{branch}"))
        }
        Some(b) => {
            let r = format!("refs/heads/{b}");
            match source::resolve(&dir, Some(&r)).await {
                Ok(sha) => (sha, r),
                Err(_) => return Ok(skip(format!("its schedule's branch {b} does not exist"))),
            }
        }
    };
    Ok(Plan {
        sha,
        source_ref: Some(source_ref),
        start: vec![pipeline.to_string()],
        skipped: Vec::new(),
    })
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
#[path = "triggers_tests.rs"]
pub(crate) mod tests;
