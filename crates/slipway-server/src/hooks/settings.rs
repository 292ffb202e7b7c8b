//! A project's webhook and forge settings through the API: what `PATCH .../projects/{p}`
//! changes, what `Project` shows of them, and the two delivery logs
//! (`GET .../deliveries`, `GET .../notifications`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use slipway_proto::api::{Delivery, NotificationDelivery, Page, ProjectSettings};
use slipway_store::ProjectRow;
use slipway_store::db::ProjectHooks;

use super::{Forge, new_secret};
use crate::AppState;
use crate::error::ApiError;

/// What `Project` shows of the settings.
pub struct View {
    pub webhook_urls: BTreeMap<String, String>,
    pub webhook_secret: Option<String>,
    pub forge: Option<String>,
    pub forge_api: Option<String>,
    pub forge_repo: Option<String>,
    pub forge_token_set: bool,
    pub notify_urls: Vec<String>,
}

/// The server's URL as the client reached it (`notify.public_url` when set).
pub fn base_url(s: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &s.config.notify.public_url {
        return u.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| s.config.listen.to_string());
    format!("http://{host}")
}

/// The project's settings, a webhook secret made first if it has none yet.
pub async fn ensure(s: &AppState, p: &ProjectRow) -> Result<ProjectHooks, ApiError> {
    Ok(s.sched.db.ensure_project_hooks(p.id, &new_secret()).await?)
}

pub async fn view(s: &AppState, p: &ProjectRow, headers: &HeaderMap) -> Result<View, ApiError> {
    let h = ensure(s, p).await?;
    let base = base_url(s, headers);
    Ok(View {
        webhook_urls: Forge::ALL
            .iter()
            .map(|f| {
                (
                    f.as_str().to_string(),
                    format!("{base}/hooks/{}/{}", f.as_str(), p.name),
                )
            })
            .collect(),
        webhook_secret: Some(h.webhook_secret),
        forge: h.forge,
        forge_api: h.forge_api,
        forge_repo: h.forge_repo,
        forge_token_set: h.forge_token.is_some(),
        notify_urls: h.notify_urls,
    })
}

/// `Some(value)` or, for an empty string, `None` (cleared).
fn set(slot: &mut Option<String>, v: &Option<String>) {
    if let Some(v) = v {
        let v = v.trim();
        *slot = (!v.is_empty()).then(|| v.to_string());
    }
}

fn http_url(what: &str, u: &str) -> Result<(), ApiError> {
    if u.starts_with("http://") || u.starts_with("https://") {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{what}: `{u}` is not an http(s) URL"
        )))
    }
}

/// Applies the webhook, forge and notification fields of a `PATCH`; the rest is not ours.
pub async fn apply(s: &AppState, p: &ProjectRow, req: &ProjectSettings) -> Result<(), ApiError> {
    let touches = req.webhook_secret.is_some()
        || req.forge.is_some()
        || req.forge_api.is_some()
        || req.forge_repo.is_some()
        || req.forge_token.is_some()
        || req.notify_urls.is_some();
    if !touches {
        return Ok(());
    }
    let mut h = ensure(s, p).await?;
    if let Some(secret) = &req.webhook_secret {
        let secret = secret.trim();
        if secret.len() < 16 {
            return Err(ApiError::invalid(
                "webhook_secret: use at least 16 characters (the generated one has 64)",
            ));
        }
        h.webhook_secret = secret.to_string();
    }
    if let Some(f) = &req.forge
        && !f.trim().is_empty()
        && Forge::parse(f.trim()).is_none()
    {
        return Err(ApiError::invalid(format!(
            "forge: `{f}` is not one of github, gitlab, gitea"
        )));
    }
    set(
        &mut h.forge,
        &req.forge
            .as_ref()
            .map(|f| Forge::parse(f.trim()).map_or(String::new(), |f| f.as_str().to_string())),
    );
    set(&mut h.forge_api, &req.forge_api);
    if let Some(api) = &h.forge_api {
        http_url("forge_api", api)?;
        h.forge_api = Some(api.trim_end_matches('/').to_string());
    }
    set(&mut h.forge_repo, &req.forge_repo);
    set(&mut h.forge_token, &req.forge_token);
    if let Some(urls) = &req.notify_urls {
        let urls: Vec<String> = urls
            .iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        for u in &urls {
            http_url("notify_urls", u)?;
        }
        h.notify_urls = urls;
    }
    s.sched.db.set_project_hooks(&h).await?;
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LogQuery {
    /// At most this many (default 50, at most 500).
    limit: Option<u32>,
    /// Only entries with an id below this (the previous page's `next`).
    before: Option<i64>,
}

fn next<T>(items: &[T], limit: u32, id: impl Fn(&T) -> i64) -> Option<String> {
    (items.len() as u32 == limit)
        .then(|| items.last().map(|r| id(r).to_string()))
        .flatten()
}

/// The project's inbound webhook requests, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{project}/deliveries", params(LogQuery),
    responses((status = 200, body = Page<Delivery>)))]
pub async fn deliveries(
    State(s): State<AppState>,
    Path(project): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Page<Delivery>>, ApiError> {
    let p = s.sched.project(&project).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let rows = s.sched.db.deliveries(p.id, q.before, limit).await?;
    let items: Vec<Delivery> = rows
        .into_iter()
        .map(|r| Delivery {
            id: r.id,
            source: r.source,
            delivery_id: r.delivery_id,
            event: r.event,
            received_ms: r.received_ms,
            status: r.status,
            outcome: r.outcome,
            started: r.started,
        })
        .collect();
    let next = next(&items, limit, |d| d.id);
    Ok(Json(Page { items, next }))
}

/// The project's outgoing requests (commit statuses and notifications), newest first.
#[utoipa::path(get, path = "/api/v1/projects/{project}/notifications", params(LogQuery),
    responses((status = 200, body = Page<NotificationDelivery>)))]
pub async fn notifications(
    State(s): State<AppState>,
    Path(project): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Page<NotificationDelivery>>, ApiError> {
    let p = s.sched.project(&project).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let rows = s.sched.db.notifications(p.id, q.before, limit).await?;
    let items: Vec<NotificationDelivery> = rows
        .into_iter()
        .map(|r| NotificationDelivery {
            id: r.id,
            execution: r.execution,
            kind: r.kind,
            target: r.target,
            event: r.event,
            state: r.state,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: r.last_error,
            created_ms: r.created_ms,
            done_ms: r.done_ms,
        })
        .collect();
    let next = next(&items, limit, |d| d.id);
    Ok(Json(Page { items, next }))
}
