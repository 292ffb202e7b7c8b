//! Gitea and Forgejo: `X-Gitea-Signature` / `X-Forgejo-Signature` (the hex HMAC-SHA256 of the
//! body, no prefix), `X-Gitea-Event` / `X-Forgejo-Event`, `X-Gitea-Delivery` /
//! `X-Forgejo-Delivery`; `push`, `pull_request` and `pull_request_sync` events (Gitea has no
//! ping); commit statuses through `POST {api}/repos/{owner}/{repo}/statuses/{sha}`.

use axum::http::HeaderMap;
use serde::Deserialize;

use super::{Parsed, branch_ref, header, hmac_matches};
use crate::triggers::{Change, PullRequestAction};

/// Forgejo's header when present, else Gitea's (Forgejo sends both).
fn either<'a>(h: &'a HeaderMap, forgejo: &str, gitea: &str) -> Option<&'a str> {
    header(h, forgejo).or_else(|| header(h, gitea))
}

pub fn delivery(h: &HeaderMap) -> Option<&str> {
    either(h, "x-forgejo-delivery", "x-gitea-delivery")
}

pub fn event(h: &HeaderMap) -> Option<&str> {
    either(h, "x-forgejo-event", "x-gitea-event")
}

pub fn verify(secret: &str, h: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let Some(sig) = either(h, "x-forgejo-signature", "x-gitea-signature") else {
        return Err(
            "no X-Gitea-Signature (or X-Forgejo-Signature) header (set the project's secret on \
             the webhook)",
        );
    };
    if hmac_matches(secret, body, sig) {
        Ok(())
    } else {
        Err("X-Gitea-Signature does not match the body and the project's secret")
    }
}

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    before: Option<String>,
    after: String,
    pusher: Option<User>,
}

#[derive(Deserialize)]
struct User {
    login: Option<String>,
    username: Option<String>,
}

impl User {
    fn name(self) -> Option<String> {
        self.login.or(self.username)
    }
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
struct Branch {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
}

pub fn parse(event: &str, body: &[u8]) -> Result<Parsed, String> {
    match event {
        "push" => {
            let p: Push = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            Ok(Parsed::Change(Change::Push {
                git_ref: p.git_ref,
                before: p.before,
                after: p.after,
                pusher: p.pusher.and_then(User::name),
            }))
        }
        // New commits on a pull request come as `pull_request_sync` (action `synchronized`).
        "pull_request" | "pull_request_sync" => {
            let e: PullRequestEvent = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            let action = match e.action.as_str() {
                "opened" | "reopened" => PullRequestAction::Opened,
                "synchronized" => PullRequestAction::Updated,
                "closed" => PullRequestAction::Closed,
                other => {
                    return Ok(Parsed::Ignore(format!(
                        "pull_request action `{other}` starts nothing (opened, synchronized, \
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
                author: pr.user.and_then(User::name),
                url: pr.html_url,
            }))
        }
        "create" => Ok(Parsed::Ignore(
            "a created ref starts nothing by itself: its push event does".into(),
        )),
        "delete" => Ok(Parsed::Ignore("ref deleted: nothing starts".into())),
        other => Ok(Parsed::Ignore(format!(
            "event `{other}` starts nothing (push and pull_request are handled)"
        ))),
    }
}

/// Gitea's statuses API has GitHub's path, body and states (pending, success, failure,
/// error; Gitea's extra `warning` is never sent); only the authorization header differs.
pub use super::github::{state, status_request};

pub fn status_headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("token {token}")),
        ("accept", "application/json".into()),
    ]
}
