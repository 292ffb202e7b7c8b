//! GitLab: `X-Gitlab-Token` (the secret itself, compared in constant time), `X-Gitlab-Event`
//! (`Push Hook`, `Tag Push Hook`, `Merge Request Hook`; test deliveries from GitLab's settings
//! page are ordinary events), `Idempotency-Key` (the same on a retry) or else
//! `X-Gitlab-Event-UUID` as the delivery id; commit statuses through
//! `POST {api}/projects/{id}/statuses/{sha}`.

use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use slipway_model::Status;

use super::{Parsed, branch_ref, header, token_matches};
use crate::notify::{Outgoing, StatusReport};
use crate::triggers::{Change, PullRequestAction};

pub fn delivery(h: &HeaderMap) -> Option<&str> {
    header(h, "idempotency-key").or_else(|| header(h, "x-gitlab-event-uuid"))
}

pub fn event(h: &HeaderMap) -> Option<&str> {
    header(h, "x-gitlab-event")
}

pub fn verify(secret: &str, h: &HeaderMap) -> Result<(), &'static str> {
    let Some(token) = header(h, "x-gitlab-token") else {
        return Err("no X-Gitlab-Token header (set the project's secret as the webhook's token)");
    };
    if token_matches(token, secret) {
        Ok(())
    } else {
        Err("X-Gitlab-Token is not the project's secret")
    }
}

#[derive(Deserialize)]
struct Kind {
    object_kind: Option<String>,
}

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    before: Option<String>,
    after: String,
    user_username: Option<String>,
}

#[derive(Deserialize)]
struct MergeRequestEvent {
    user: Option<User>,
    object_attributes: MergeRequest,
}

#[derive(Deserialize)]
struct User {
    username: Option<String>,
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: u64,
    action: Option<String>,
    title: Option<String>,
    url: Option<String>,
    source_branch: String,
    target_branch: String,
    /// Present on an `update` that brought new commits (the head before them).
    oldrev: Option<String>,
    last_commit: Option<Commit>,
}

#[derive(Deserialize)]
struct Commit {
    id: String,
}

pub fn parse(event: &str, body: &[u8]) -> Result<Parsed, String> {
    let kind: Kind = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let kind = kind.object_kind.unwrap_or_default();
    match (event, kind.as_str()) {
        ("Push Hook" | "Tag Push Hook", "push" | "tag_push") => {
            let p: Push = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            Ok(Parsed::Change(Change::Push {
                git_ref: p.git_ref,
                before: p.before,
                after: p.after,
                pusher: p.user_username,
            }))
        }
        ("Merge Request Hook", "merge_request") => {
            let e: MergeRequestEvent = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            let mr = e.object_attributes;
            let action = match mr.action.as_deref().unwrap_or("") {
                "open" | "reopen" => PullRequestAction::Opened,
                "update" if mr.oldrev.is_some() => PullRequestAction::Updated,
                "update" => {
                    return Ok(Parsed::Ignore(
                        "merge request updated without new commits: nothing starts".into(),
                    ));
                }
                "close" | "merge" => PullRequestAction::Closed,
                other => {
                    return Ok(Parsed::Ignore(format!(
                        "merge request action `{other}` starts nothing (open, update with new \
                         commits, reopen, close and merge do)"
                    )));
                }
            };
            let Some(head) = mr.last_commit else {
                return Err("object_attributes.last_commit is missing".into());
            };
            Ok(Parsed::Change(Change::PullRequest {
                action,
                number: mr.iid,
                base_ref: branch_ref(&mr.target_branch),
                // GitLab does not send the target's commit; the triggers resolve base_ref.
                base_sha: String::new(),
                head_ref: branch_ref(&mr.source_branch),
                head_sha: head.id,
                title: mr.title,
                author: e.user.and_then(|u| u.username),
                url: mr.url,
            }))
        }
        (event, kind) => Ok(Parsed::Ignore(format!(
            "event `{event}` ({kind}) starts nothing (Push Hook, Tag Push Hook and Merge \
             Request Hook are handled)"
        ))),
    }
}

/// GitLab's commit-status states: pending, running, success, failed, canceled.
pub fn state(s: Status) -> &'static str {
    match s {
        Status::Queued | Status::Waiting => "pending",
        Status::Running => "running",
        Status::Succeeded => "success",
        Status::Cancelled | Status::Superseded => "canceled",
        _ => "failed",
    }
}

/// `POST {api}/projects/{id}/statuses/{sha}`; a `group/name` path is percent-encoded into
/// one segment, as GitLab's API wants.
pub fn status_request(r: &StatusReport<'_>) -> Outgoing {
    let id = r.repo.trim_matches('/').replace('/', "%2F");
    Outgoing {
        url: format!(
            "{}/projects/{id}/statuses/{}",
            r.api.trim_end_matches('/'),
            r.sha
        ),
        body: json!({
            "state": state(r.status),
            "name": r.context,
            "target_url": r.target_url,
            "description": r.description,
        }),
    }
}

pub fn status_headers(token: &str) -> Vec<(&'static str, String)> {
    vec![("private-token", token.to_string())]
}
