//! The way out: when an execution's status changes, its commit status on the forge (for
//! executions a forge's push or pull request started) and the project's notification webhooks
//! (a JSON body Slack-compatible receivers accept) are sent, retried with back-off, and every
//! request is logged in `notification_deliveries` (docs/webhooks.md).
//!
//! The notifier follows the scheduler's `updates` broadcast (an execution id after each stored
//! batch of its events) and compares the execution's status with the last one it reported.
//! For one execution and one target, requests go one at a time and in order; a commit status
//! still being retried when a newer one is due is given up (`superseded`), since the forge
//! only shows the newest.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use slipway_engine::events::now_ms;
use slipway_model::Status;
use slipway_store::ExecutionRow;
use slipway_store::db::{NewNotification, NotificationRow, ProjectHooks};
use tokio::sync::Mutex;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::hooks::{Forge, gitea, github, gitlab};

/// What a commit status says, for one forge's request builder.
#[derive(Clone, Debug)]
pub struct StatusReport<'a> {
    /// The forge's API base URL.
    pub api: &'a str,
    /// `owner/name`, or GitLab's project id or path.
    pub repo: &'a str,
    pub sha: &'a str,
    pub status: Status,
    pub target_url: &'a str,
    pub description: &'a str,
    /// `slipway/<pipeline>`.
    pub context: &'a str,
}

/// A request to make: where, and the JSON body (headers are added when it is sent).
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub url: String,
    pub body: Value,
}

/// `status` (a commit status) or `webhook` (a notification URL).
const STATUS: &str = "status";
/// (execution id, target URL): the unit requests are ordered and superseded in.
type Key = (i64, String);
const WEBHOOK: &str = "webhook";

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub struct Notifier {
    state: AppState,
    http: reqwest::Client,
    /// The server's URL as people reach it, for links (no trailing `/`).
    base_url: String,
    shutdown: CancellationToken,
    /// One request at a time per (execution, target).
    locks: std::sync::Mutex<HashMap<Key, Arc<Mutex<()>>>>,
    /// The newest commit-status row per (execution, target): older ones still retrying stop.
    newest: std::sync::Mutex<HashMap<Key, i64>>,
}

/// Runs the notifier until shutdown: first resumes what a stopped server left pending, then
/// follows execution updates.
pub async fn run(state: AppState, base_url: String, shutdown: CancellationToken) {
    let mut updates = state.sched.updates.subscribe();
    let http = match reqwest::Client::builder()
        .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
        .timeout(REQUEST_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client: no commit statuses or notifications");
            return;
        }
    };
    let me = Arc::new(Notifier {
        state,
        http,
        base_url: base_url.trim_end_matches('/').to_string(),
        shutdown: shutdown.clone(),
        locks: Default::default(),
        newest: Default::default(),
    });
    me.resume().await;
    // The status each execution had when last looked at.
    let mut seen: HashMap<i64, Status> = HashMap::new();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = updates.recv() => r,
        };
        let mut ids = HashSet::new();
        match first {
            Ok(id) => {
                ids.insert(id);
            }
            Err(RecvError::Lagged(n)) => {
                // Some ids were missed: look again at every execution not known to be done.
                tracing::warn!(
                    missed = n,
                    "the notifier fell behind; re-checking executions"
                );
                ids.extend(seen.keys().copied());
                if let Ok(rows) = me
                    .state
                    .sched
                    .db
                    .executions_with_status(&[Status::Queued, Status::Running, Status::Waiting])
                    .await
                {
                    ids.extend(rows.iter().map(|r| r.id));
                }
            }
            Err(RecvError::Closed) => return,
        }
        // Log-heavy executions announce many batches: take what else came in a moment at once.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Ok(id) = updates.try_recv() {
            ids.insert(id);
        }
        for id in ids {
            me.check(id, &mut seen).await;
        }
    }
}

impl Notifier {
    /// Reports an execution's status if it changed since last reported.
    async fn check(self: &Arc<Self>, id: i64, seen: &mut HashMap<i64, Status>) {
        let db = &self.state.sched.db;
        let row = match db.execution_by_id(id).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                seen.remove(&id);
                return;
            }
            Err(e) => {
                tracing::warn!(execution = id, error = %e, "notifier: reading the execution");
                return;
            }
        };
        let before = match seen.get(&id) {
            Some(s) => Some(*s),
            // Not seen in this process: what an earlier one reported, if anything.
            None => {
                let mut last = None;
                for kind in [STATUS, WEBHOOK] {
                    if let Ok(Some(e)) = db.last_notified(id, kind).await {
                        last = e.parse::<Status>().ok();
                        break;
                    }
                }
                last
            }
        };
        if row.status.is_terminal() {
            seen.remove(&id);
        } else {
            seen.insert(id, row.status);
        }
        if before == Some(row.status) {
            return;
        }
        let hooks = match db.project_hooks(row.project_id).await {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(execution = id, error = %e, "notifier: reading the settings");
                return;
            }
        };
        self.report_status(&row, &hooks).await;
        if row.status != Status::Queued {
            for url in &hooks.notify_urls {
                self.notify(&row, url).await;
            }
        }
    }

    fn execution_url(&self, row: &ExecutionRow) -> String {
        format!(
            "{}/api/v1/projects/{}/executions/{}",
            self.base_url, row.project, row.number
        )
    }

    /// The commit status, when a forge's event started the execution and the project says
    /// where statuses go.
    async fn report_status(self: &Arc<Self>, row: &ExecutionRow, hooks: &ProjectHooks) {
        let Some(forge) = Forge::parse(&row.trigger) else {
            return;
        };
        let (Some(kind), Some(api), Some(repo), Some(token), Some(sha)) = (
            hooks.forge.as_deref().and_then(Forge::parse),
            hooks.forge_api.as_deref(),
            hooks.forge_repo.as_deref(),
            hooks.forge_token.as_deref(),
            row.revision.as_deref(),
        ) else {
            return;
        };
        if kind != forge {
            return;
        }
        let target_url = self.execution_url(row);
        let description = describe(row);
        let context = format!("slipway/{}", row.pipeline);
        let report = StatusReport {
            api,
            repo,
            sha,
            status: row.status,
            target_url: &target_url,
            description: &description,
            context: &context,
        };
        let out = status_request(forge, &report);
        let headers = status_headers(forge, token);
        self.send(row, STATUS, out, headers).await;
    }

    async fn notify(self: &Arc<Self>, row: &ExecutionRow, url: &str) {
        let out = Outgoing {
            url: url.to_string(),
            body: notification_body(row, &self.execution_url(row)),
        };
        self.send(row, WEBHOOK, out, Vec::new()).await;
    }

    /// Records the request and sends it in the background.
    async fn send(
        self: &Arc<Self>,
        row: &ExecutionRow,
        kind: &'static str,
        out: Outgoing,
        headers: Vec<(&'static str, String)>,
    ) {
        let body = out.body.to_string();
        let name = format!("{}#{}", row.project, row.number);
        let id = match self
            .state
            .sched
            .db
            .create_notification(&NewNotification {
                project_id: row.project_id,
                execution_id: row.id,
                execution: &name,
                kind,
                target: &out.url,
                event: row.status.as_str(),
                body: &body,
                created_ms: now_ms(),
            })
            .await
        {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(execution = %name, error = %e, "recording a notification");
                return;
            }
        };
        let key = (row.id, out.url.clone());
        if kind == STATUS {
            self.newest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), id);
        }
        let me = self.clone();
        tokio::spawn(async move {
            me.deliver(id, kind, key, body, headers, 0).await;
        });
    }

    /// Sends what a stopped server left pending, from its next attempt on.
    async fn resume(self: &Arc<Self>) {
        let db = &self.state.sched.db;
        let rows: Vec<NotificationRow> = match db.pending_notifications().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading pending notifications");
                return;
            }
        };
        // Only the newest commit status per (execution, target) is worth sending.
        let mut newest: HashMap<(i64, String), i64> = HashMap::new();
        for r in rows.iter().filter(|r| r.kind == STATUS) {
            newest.insert((r.execution_id, r.target.clone()), r.id);
        }
        self.newest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(newest);
        for r in rows {
            let headers = if r.kind == STATUS {
                match db.project_hooks(r.project_id).await {
                    Ok(Some(h)) => match (
                        h.forge.as_deref().and_then(Forge::parse),
                        h.forge_token.as_deref(),
                    ) {
                        (Some(f), Some(t)) => status_headers(f, t),
                        _ => Vec::new(),
                    },
                    _ => Vec::new(),
                }
            } else {
                Vec::new()
            };
            let kind = if r.kind == STATUS { STATUS } else { WEBHOOK };
            let me = self.clone();
            tokio::spawn(async move {
                let key = (r.execution_id, r.target.clone());
                me.deliver(r.id, kind, key, r.body, headers, r.attempts)
                    .await;
            });
        }
    }

    fn superseded(&self, id: i64, key: &(i64, String)) -> bool {
        self.newest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .is_some_and(|newest| *newest != id)
    }

    /// Attempts a request until it is answered 2xx or `max_attempts` are spent, pausing
    /// `retry_backoff`, then twice as long each time (at most 5 min). Each attempt is recorded.
    async fn deliver(
        self: Arc<Self>,
        id: i64,
        kind: &'static str,
        key: (i64, String),
        body: String,
        headers: Vec<(&'static str, String)>,
        done_attempts: u32,
    ) {
        let db = self.state.sched.db.clone();
        let cfg = &self.state.config.notify;
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        // Notifications keep their order across retries; commit statuses only per attempt
        // (a newer one replaces an older one that is still failing).
        let held = if kind == WEBHOOK {
            Some(lock.clone().lock_owned().await)
        } else {
            None
        };
        let mut attempt = done_attempts;
        let mut pause = cfg.retry_backoff;
        for _ in 0..done_attempts.min(16) {
            pause = (pause * 2).min(MAX_BACKOFF);
        }
        loop {
            let guard = if held.is_none() {
                Some(lock.clone().lock_owned().await)
            } else {
                None
            };
            if kind == STATUS && self.superseded(id, &key) {
                let _ = db
                    .record_notification_attempt(id, "superseded", attempt, None, None, now_ms())
                    .await;
                break;
            }
            attempt += 1;
            let mut req = self
                .http
                .post(&key.1)
                .header("content-type", "application/json")
                .body(body.clone());
            for (k, v) in &headers {
                req = req.header(*k, v);
            }
            let (status, error) = match req.send().await {
                Ok(resp) if resp.status().is_success() => (Some(resp.status().as_u16()), None),
                Ok(resp) => {
                    let code = resp.status();
                    let text: String = resp
                        .text()
                        .await
                        .unwrap_or_default()
                        .chars()
                        .take(300)
                        .collect();
                    (
                        Some(code.as_u16()),
                        Some(format!("HTTP {code}: {}", text.trim())),
                    )
                }
                Err(e) => (None, Some(root_cause(&e))),
            };
            let last = attempt >= cfg.max_attempts.max(1);
            let state = match (&error, last) {
                (None, _) => "delivered",
                (Some(_), true) => "failed",
                (Some(_), false) => "pending",
            };
            if let Err(e) = db
                .record_notification_attempt(id, state, attempt, status, error.as_deref(), now_ms())
                .await
            {
                tracing::warn!(notification = id, error = %e, "recording an attempt");
            }
            drop(guard);
            if state != "pending" {
                if state == "failed" {
                    tracing::warn!(notification = id, target = %key.1, attempts = attempt,
                        error = ?error, "gave up on a notification");
                }
                break;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    // Left pending: the next start resumes it.
                    return;
                }
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_BACKOFF);
        }
        drop(held);
        if kind == STATUS {
            let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
            if newest.get(&key) == Some(&id) {
                newest.remove(&key);
            }
        }
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        // Ours and the map's: nobody else waits for it.
        if Arc::strong_count(&lock) <= 2 {
            locks.remove(&key);
        }
    }
}

fn status_request(forge: Forge, r: &StatusReport<'_>) -> Outgoing {
    match forge {
        Forge::GitHub => github::status_request(r),
        Forge::GitLab => gitlab::status_request(r),
        Forge::Gitea => gitea::status_request(r),
    }
}

fn status_headers(forge: Forge, token: &str) -> Vec<(&'static str, String)> {
    match forge {
        Forge::GitHub => github::status_headers(token),
        Forge::GitLab => gitlab::status_headers(token),
        Forge::Gitea => gitea::status_headers(token),
    }
}

/// The innermost cause ("Connection refused"), which says what happened.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(s) = cause.source() {
        cause = s;
    }
    cause.to_string()
}

/// What happened, in words: `succeeded`, `failed`, `is running`, ...
fn verb(s: Status) -> &'static str {
    match s {
        Status::Queued => "is queued",
        Status::Running => "is running",
        Status::Waiting => "is waiting for an approval",
        Status::Succeeded => "succeeded",
        Status::Failed => "failed",
        Status::TimedOut => "timed out",
        Status::Cancelled => "was cancelled",
        Status::Skipped => "was skipped",
        Status::Fault => "failed (infrastructure fault)",
        Status::Superseded => "was superseded by a newer execution",
    }
}

/// A commit status's description: at most 140 characters (GitHub's limit).
fn describe(row: &ExecutionRow) -> String {
    let mut d = format!("{}#{} {}", row.project, row.number, verb(row.status));
    if let Some(r) = &row.reason
        && row.status.is_terminal()
        && !row.status.is_success()
    {
        d.push_str(": ");
        d.push_str(r);
    }
    if d.chars().count() > 140 {
        d = d.chars().take(139).collect::<String>() + "…";
    }
    d
}

/// A notification: `text` for Slack-compatible receivers, and the same facts as fields.
pub fn notification_body(row: &ExecutionRow, url: &str) -> Value {
    let name = format!("{}#{}", row.project, row.number);
    let commit = row
        .revision
        .as_deref()
        .map(|r| format!(", commit {}", &r[..r.len().min(10)]))
        .unwrap_or_default();
    let mut text = format!(
        "{name} {} (pipeline {}{commit})",
        verb(row.status),
        row.pipeline
    );
    if let Some(r) = &row.reason
        && row.status.is_terminal()
        && !row.status.is_success()
    {
        text.push_str(&format!(": {r}"));
    }
    text.push_str(&format!(" <{url}>"));
    json!({
        "text": text,
        "event": "execution",
        "project": row.project,
        "execution": name,
        "number": row.number,
        "pipeline": row.pipeline,
        "status": row.status.as_str(),
        "revision": row.revision,
        "source_ref": row.source_ref,
        "trigger": row.trigger,
        "reason": row.reason,
        "url": url,
    })
}
