//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, `X-GitHub-Event`,
//! `X-GitHub-Delivery` (a GUID, the same when a delivery is redelivered); `push`,
//! `pull_request` and `ping` events; commit statuses through
//! `POST {api}/repos/{owner}/{repo}/statuses/{sha}`.

use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use slipway_model::Status;

use super::{Parsed, branch_ref, header, hmac_matches};
use crate::notify::{Outgoing, StatusReport};
use crate::triggers::{Change, PullRequestAction};

pub fn delivery(h: &HeaderMap) -> Option<&str> {
    header(h, "x-github-delivery")
}

pub fn event(h: &HeaderMap) -> Option<&str> {
    header(h, "x-github-event")
}

/// Checks `X-Hub-Signature-256` over the raw body. The SHA-1 `X-Hub-Signature` alone is
/// refused: GitHub sends both, and SHA-1 is not enough.
pub fn verify(secret: &str, h: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let Some(sig) = header(h, "x-hub-signature-256") else {
        return Err(if header(h, "x-hub-signature").is_some() {
            "only X-Hub-Signature-256 is accepted (set a secret on the GitHub webhook)"
        } else {
            "no X-Hub-Signature-256 header (set the project's secret on the GitHub webhook)"
        });
    };
    let Some(hex) = sig.strip_prefix("sha256=") else {
        return Err("X-Hub-Signature-256 is not `sha256=<hex>`");
    };
    if hmac_matches(secret, body, hex) {
        Ok(())
    } else {
        Err("X-Hub-Signature-256 does not match the body and the project's secret")
    }
}

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    before: Option<String>,
    after: String,
    pusher: Option<Named>,
}

#[derive(Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Deserialize)]
struct PullRequestEvent {
    action: String,
    number: u64,
    pull_request: PullRequest,
}

#[derive(Deserialize)]
struct PullRequest {
    title: Option<String>,
    html_url: Option<String>,
    user: Option<User>,
    head: Branch,
    base: Branch,
}

#[derive(Deserialize)]
struct User {
    login: Option<String>,
}

#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
}

/// A verified delivery's meaning.
pub fn parse(event: &str, body: &[u8]) -> Result<Parsed, String> {
    match event {
        "ping" => Ok(Parsed::Ping),
        "push" => {
            let p: Push = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            Ok(Parsed::Change(Change::Push {
                git_ref: p.git_ref,
                before: p.before,
                after: p.after,
                pusher: p.pusher.and_then(|n| n.name),
            }))
        }
        "pull_request" => {
            let e: PullRequestEvent = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            let action = match e.action.as_str() {
                "opened" | "reopened" => PullRequestAction::Opened,
                "synchronize" => PullRequestAction::Updated,
                "closed" => PullRequestAction::Closed,
                other => {
                    return Ok(Parsed::Ignore(format!(
                        "pull_request action `{other}` starts nothing (opened, synchronize, \
                         reopened and closed do)"
                    )));
                }
            };
            let pr = e.pull_request;
            Ok(Parsed::Change(Change::PullRequest {
                action,
                number: e.number,
                base_ref: branch_ref(&pr.base.git_ref),
                base_sha: pr.base.sha,
                head_ref: branch_ref(&pr.head.git_ref),
                head_sha: pr.head.sha,
                title: pr.title,
                author: pr.user.and_then(|u| u.login),
                url: pr.html_url,
            }))
        }
        other => Ok(Parsed::Ignore(format!(
            "event `{other}` starts nothing (push, pull_request and ping are handled)"
        ))),
    }
}

/// GitHub's commit-status states: pending, success, failure, error.
pub fn state(s: Status) -> &'static str {
    match s {
        Status::Queued | Status::Running | Status::Waiting => "pending",
        Status::Succeeded => "success",
        Status::Failed | Status::TimedOut => "failure",
        _ => "error",
    }
}

/// `POST {api}/repos/{owner}/{repo}/statuses/{sha}` with a bearer token.
pub fn status_request(r: &StatusReport<'_>) -> Outgoing {
    Outgoing {
        url: format!(
            "{}/repos/{}/statuses/{}",
            r.api.trim_end_matches('/'),
            r.repo.trim_matches('/'),
            r.sha
        ),
        body: json!({
            "state": state(r.status),
            "target_url": r.target_url,
            "description": r.description,
            "context": r.context,
        }),
    }
}

/// The headers GitHub's REST API wants (the token is added when sent, never stored).
pub fn status_headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {token}")),
        ("accept", "application/vnd.github+json".into()),
        ("x-github-api-version", "2022-11-28".into()),
    ]
}
