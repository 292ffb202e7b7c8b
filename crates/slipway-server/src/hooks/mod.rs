//! Inbound forge webhooks: `/hooks/github/{project}`, `/hooks/gitlab/{project}` and
//! `/hooks/gitea/{project}` (Forgejo too). Each request's signature (or GitLab's token) is
//! checked over the raw body, in constant time, before anything in it is read; its delivery
//! id makes a replay start nothing; its event becomes a [`triggers::Change`] evaluated by
//! [`triggers::on_change`]. Every request, refused or not, goes into the project's delivery
//! log (docs/webhooks.md).
//!
//! The forge modules also know the way back: how each forge's commit-status API is called
//! (`status_request`), used by [`crate::notify`].

pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod settings;

#[cfg(test)]
mod tests;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use hmac::{KeyInit, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};
use slipway_engine::events::now_ms;
use slipway_store::db::NewDelivery;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::triggers::{self, Change, Origin, ZERO_SHA};

/// The largest body accepted; GitHub caps its payloads at 25 MB.
pub const MAX_BODY: usize = 25 << 20;

/// Which forge's format a request is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    GitLab,
    /// Gitea and Forgejo (which sends the same payloads under `X-Forgejo-*` headers too).
    Gitea,
}

impl Forge {
    /// The name in URLs, settings, the delivery log and executions' trigger.
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }

    pub fn parse(s: &str) -> Option<Forge> {
        match s {
            "github" => Some(Forge::GitHub),
            "gitlab" => Some(Forge::GitLab),
            "gitea" | "forgejo" => Some(Forge::Gitea),
            _ => None,
        }
    }

    pub const ALL: [Forge; 3] = [Forge::GitHub, Forge::GitLab, Forge::Gitea];
}

/// What a verified delivery asks for.
#[derive(Clone, Debug)]
pub enum Parsed {
    Change(Change),
    /// A hook was set up (GitHub's `ping`).
    Ping,
    /// Nothing to start, and why.
    Ignore(String),
}

/// The route for one forge, with the body limit raised to [`MAX_BODY`].
pub fn route(forge: Forge) -> MethodRouter<AppState> {
    let handler = move |state: State<AppState>, project: Path<String>, headers, body| {
        receive(state, project, headers, body, forge)
    };
    post(handler).layer(DefaultBodyLimit::max(MAX_BODY))
}

/// A header's value as text, if present and printable.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Whether `tag_hex` is the HMAC-SHA256 of `body` under `secret`, compared in constant time.
pub(crate) fn hmac_matches(secret: &str, body: &[u8], tag_hex: &str) -> bool {
    let Ok(tag) = hex::decode(tag_hex) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// The hex HMAC-SHA256 of `body` under `secret`: what GitHub and Gitea send (tests, docs).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether two tokens are equal, in time that depends on neither (both are hashed first, so
/// not even their lengths are compared early).
pub(crate) fn token_matches(given: &str, secret: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(secret.as_bytes());
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// A new webhook secret: 32 random bytes, hex.
pub fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// `refs/heads/<branch>` unless already a full ref.
pub(crate) fn branch_ref(name: &str) -> String {
    if name.starts_with("refs/") {
        name.to_string()
    } else {
        format!("refs/heads/{name}")
    }
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    answer(status, json!({"code": code, "message": message}))
}

struct Request<'a> {
    forge: Forge,
    project_id: i64,
    event: Option<&'a str>,
    received_ms: i64,
}

impl AppState {
    /// Records a delivery that claims nothing (refused, replayed, or without an id).
    async fn log_delivery(&self, r: &Request<'_>, status: StatusCode, outcome: &str) {
        let d = NewDelivery {
            project_id: r.project_id,
            source: r.forge.as_str(),
            delivery_id: None,
            event: r.event,
            received_ms: r.received_ms,
            status: status.as_u16(),
            outcome,
        };
        if let Err(e) = self.sched.db.record_delivery(&d).await {
            tracing::error!(error = %e, "recording a webhook delivery");
        }
    }
}

async fn receive(
    State(s): State<AppState>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
    forge: Forge,
) -> Response {
    let received_ms = now_ms();
    let p = match s.sched.db.project(&project).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no project `{project}`"),
            );
        }
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let (delivery, event) = match forge {
        Forge::GitHub => (github::delivery(&headers), github::event(&headers)),
        Forge::GitLab => (gitlab::delivery(&headers), gitlab::event(&headers)),
        Forge::Gitea => (gitea::delivery(&headers), gitea::event(&headers)),
    };
    let req = Request {
        forge,
        project_id: p.id,
        event,
        received_ms,
    };
    let hooks = match s.sched.db.project_hooks(p.id).await {
        Ok(h) => h,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let verified = match &hooks {
        None => Err("the project has no webhook secret yet (`slipway project show` makes one)"),
        Some(h) => match forge {
            Forge::GitHub => github::verify(&h.webhook_secret, &headers, &body),
            Forge::GitLab => gitlab::verify(&h.webhook_secret, &headers),
            Forge::Gitea => gitea::verify(&h.webhook_secret, &headers, &body),
        },
    };
    if let Err(why) = verified {
        let claimed = delivery
            .map(|d| format!(" (delivery {d})"))
            .unwrap_or_default();
        s.log_delivery(
            &req,
            StatusCode::UNAUTHORIZED,
            &format!("refused: {why}{claimed}"),
        )
        .await;
        tracing::warn!(project = %p.name, forge = forge.as_str(), reason = why, "webhook refused");
        return error(StatusCode::UNAUTHORIZED, "unauthorized", why);
    }
    let Some(event_name) = event else {
        let why = "no event header: not a webhook delivery";
        s.log_delivery(&req, StatusCode::BAD_REQUEST, why).await;
        return error(StatusCode::BAD_REQUEST, "invalid", why);
    };
    let parsed = match forge {
        Forge::GitHub => github::parse(event_name, &body),
        Forge::GitLab => gitlab::parse(event_name, &body),
        Forge::Gitea => gitea::parse(event_name, &body),
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(why) => {
            let why = format!("unreadable {event_name} payload: {why}");
            s.log_delivery(&req, StatusCode::BAD_REQUEST, &why).await;
            return error(StatusCode::BAD_REQUEST, "invalid", &why);
        }
    };
    // Claim the delivery id: of a delivery and its replay, exactly one gets here.
    let claim = NewDelivery {
        project_id: p.id,
        source: forge.as_str(),
        delivery_id: delivery,
        event,
        received_ms,
        status: StatusCode::ACCEPTED.as_u16(),
        outcome: "processing",
    };
    let row = match s.sched.db.record_delivery(&claim).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            let d = delivery.unwrap_or_default();
            let why = format!("duplicate delivery {d}, ignored");
            s.log_delivery(&req, StatusCode::OK, &why).await;
            return answer(
                StatusCode::OK,
                json!({"message": "duplicate delivery, ignored", "started": [], "skipped": []}),
            );
        }
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let finish = |status: StatusCode, outcome: String, started: Vec<String>, release: bool| {
        let db = s.sched.db.clone();
        async move {
            if let Err(e) = db
                .finish_delivery(row, status.as_u16(), &outcome, &started, release)
                .await
            {
                tracing::error!(error = %e, "recording a webhook delivery's outcome");
            }
        }
    };
    let change = match parsed {
        Parsed::Ping => {
            finish(StatusCode::OK, "pong".into(), Vec::new(), false).await;
            return answer(StatusCode::OK, json!({"message": "pong"}));
        }
        Parsed::Ignore(why) => {
            finish(StatusCode::OK, why.clone(), Vec::new(), false).await;
            return answer(
                StatusCode::OK,
                json!({"message": why, "started": [], "skipped": [why]}),
            );
        }
        Parsed::Change(Change::Push { git_ref, after, .. }) if after == ZERO_SHA => {
            let what = if git_ref.starts_with("refs/tags/") {
                "tag"
            } else {
                "branch"
            };
            let why = format!("{what} deleted ({git_ref}): nothing starts");
            finish(StatusCode::OK, why.clone(), Vec::new(), false).await;
            return answer(
                StatusCode::OK,
                json!({"message": why, "started": [], "skipped": [why]}),
            );
        }
        Parsed::Change(c) => c,
    };
    let origin = Origin {
        source: forge.as_str().to_string(),
        delivery: delivery.map(str::to_string),
    };
    match triggers::on_change(&s.sched, &p, change, origin).await {
        Ok(outcome) => {
            let status = if outcome.started.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            let text = if outcome.started.is_empty() {
                format!("nothing started: {}", outcome.skipped.join("; "))
            } else {
                let mut t = format!("started {}", outcome.started.join(", "));
                if !outcome.skipped.is_empty() {
                    t.push_str(&format!("; skipped: {}", outcome.skipped.join("; ")));
                }
                t
            };
            finish(status, text, outcome.started.clone(), false).await;
            answer(
                status,
                json!({"started": outcome.started, "skipped": outcome.skipped}),
            )
        }
        Err(e) => {
            // The id is given up, so the forge's redelivery is taken up, not ignored.
            let text = format!("failed: {}", e.message);
            finish(e.status, text, Vec::new(), true).await;
            e.into_response()
        }
    }
}
