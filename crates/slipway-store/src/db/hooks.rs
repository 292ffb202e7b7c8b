//! What forges and notification receivers need from the state database: each project's
//! webhook secret and forge settings (`project_hooks`), the log of inbound webhook deliveries
//! (`deliveries`, whose unique delivery id makes a replay collide) and the log of outgoing
//! requests, commit statuses and notification webhooks (`notification_deliveries`).
//!
//! Tokens are stored as given until secrets are encrypted at rest (the security issue).

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Db, DbResult, from_json, to_json};

/// A project's webhook and forge settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProjectHooks {
    pub project_id: i64,
    /// The key forges sign webhooks with (GitLab sends it as a token).
    pub webhook_secret: String,
    /// `github`, `gitlab` or `gitea` (Forgejo too): where commit statuses go.
    pub forge: Option<String>,
    /// The forge's API base URL: `https://api.github.com`, `https://gitlab.example/api/v4`,
    /// `https://gitea.example/api/v1`.
    pub forge_api: Option<String>,
    /// `owner/name` (GitHub, Gitea) or the project id or path (GitLab).
    pub forge_repo: Option<String>,
    pub forge_token: Option<String>,
    /// Where execution notifications are POSTed.
    pub notify_urls: Vec<String>,
}

/// One inbound webhook request as the log shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryRow {
    pub id: i64,
    pub project_id: i64,
    /// `github`, `gitlab` or `gitea`.
    pub source: String,
    /// The forge's delivery id; `None` when the request was refused or processing failed.
    pub delivery_id: Option<String>,
    pub event: Option<String>,
    pub received_ms: i64,
    /// The HTTP status answered.
    pub status: u16,
    /// What it did, or why it did nothing.
    pub outcome: String,
    /// Executions started (`hello#3`).
    pub started: Vec<String>,
}

/// A delivery to record. With a `delivery_id`, recording claims it: a second claim of the
/// same id (project, source) is refused as a duplicate.
#[derive(Clone, Debug)]
pub struct NewDelivery<'a> {
    pub project_id: i64,
    pub source: &'a str,
    pub delivery_id: Option<&'a str>,
    pub event: Option<&'a str>,
    pub received_ms: i64,
    pub status: u16,
    pub outcome: &'a str,
}

/// One outgoing request (a commit status or a notification webhook) and how it went.
#[derive(Clone, Debug, PartialEq)]
pub struct NotificationRow {
    pub id: i64,
    pub project_id: i64,
    pub execution_id: i64,
    /// `hello#3`.
    pub execution: String,
    /// `status` (a commit status on the forge) or `webhook` (a notification URL).
    pub kind: String,
    /// The URL POSTed to.
    pub target: String,
    /// The execution's status being reported (`running`, `succeeded`, ...).
    pub event: String,
    /// The JSON body sent.
    pub body: String,
    /// `pending`, `delivered`, `failed` or `superseded` (a newer status replaced it).
    pub state: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub done_ms: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct NewNotification<'a> {
    pub project_id: i64,
    pub execution_id: i64,
    pub execution: &'a str,
    pub kind: &'a str,
    pub target: &'a str,
    pub event: &'a str,
    pub body: &'a str,
    pub created_ms: i64,
}

const HOOKS_COLUMNS: &str =
    "project_id, webhook_secret, forge, forge_api, forge_repo, forge_token, notify_urls";
const DELIVERY_COLUMNS: &str =
    "id, project_id, source, delivery_id, event, received_ms, status, outcome, started";
const NOTIFICATION_COLUMNS: &str = "id, project_id, execution_id, execution, kind, target, \
     event, body, state, attempts, last_status, last_error, created_ms, done_ms";

impl Db {
    /// The project's settings, if any were made.
    pub async fn project_hooks(&self, project_id: i64) -> DbResult<Option<ProjectHooks>> {
        let q = format!("SELECT {HOOKS_COLUMNS} FROM project_hooks WHERE project_id = $1");
        let row = sqlx::query(AssertSqlSafe(q))
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(hooks_row).transpose()
    }

    /// The project's settings, made with `secret` as the webhook secret when there were none
    /// (a project created before webhooks existed). Of two concurrent calls, both see the
    /// same secret.
    pub async fn ensure_project_hooks(
        &self,
        project_id: i64,
        secret: &str,
    ) -> DbResult<ProjectHooks> {
        sqlx::query(
            "INSERT INTO project_hooks (project_id, webhook_secret, notify_urls) \
             VALUES ($1, $2, '[]') ON CONFLICT (project_id) DO NOTHING",
        )
        .bind(project_id)
        .bind(secret)
        .execute(&self.pool)
        .await?;
        self.project_hooks(project_id)
            .await?
            .ok_or_else(|| sqlx::Error::RowNotFound.into())
    }

    /// Replaces the project's settings.
    pub async fn set_project_hooks(&self, hooks: &ProjectHooks) -> DbResult<()> {
        let urls = to_json(&hooks.notify_urls, "notify_urls")?;
        sqlx::query(
            "INSERT INTO project_hooks (project_id, webhook_secret, forge, forge_api, \
             forge_repo, forge_token, notify_urls) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (project_id) DO UPDATE SET webhook_secret = $2, forge = $3, \
             forge_api = $4, forge_repo = $5, forge_token = $6, notify_urls = $7",
        )
        .bind(hooks.project_id)
        .bind(&hooks.webhook_secret)
        .bind(hooks.forge.as_deref())
        .bind(hooks.forge_api.as_deref())
        .bind(hooks.forge_repo.as_deref())
        .bind(hooks.forge_token.as_deref())
        .bind(urls)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a delivery. `Ok(None)` when its delivery id was already recorded for this
    /// project and source: a replay.
    pub async fn record_delivery(&self, d: &NewDelivery<'_>) -> DbResult<Option<i64>> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO deliveries (project_id, source, delivery_id, event, received_ms, \
             status, outcome, started) VALUES ($1, $2, $3, $4, $5, $6, $7, '[]') \
             ON CONFLICT (project_id, source, delivery_id) DO NOTHING RETURNING id",
        )
        .bind(d.project_id)
        .bind(d.source)
        .bind(d.delivery_id)
        .bind(d.event)
        .bind(d.received_ms)
        .bind(i64::from(d.status))
        .bind(d.outcome)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id)
    }

    /// Records how a claimed delivery ended. `release` gives its delivery id up (processing
    /// failed), so the forge's redelivery is taken up rather than ignored as a replay.
    pub async fn finish_delivery(
        &self,
        id: i64,
        status: u16,
        outcome: &str,
        started: &[String],
        release: bool,
    ) -> DbResult<()> {
        let started = to_json(&started, "started")?;
        let q = if release {
            "UPDATE deliveries SET status = $2, outcome = $3, started = $4, delivery_id = NULL \
             WHERE id = $1"
        } else {
            "UPDATE deliveries SET status = $2, outcome = $3, started = $4 WHERE id = $1"
        };
        sqlx::query(q)
            .bind(id)
            .bind(i64::from(status))
            .bind(outcome)
            .bind(started)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A project's deliveries, newest first, those with an id below `before` when given.
    pub async fn deliveries(
        &self,
        project_id: i64,
        before: Option<i64>,
        limit: u32,
    ) -> DbResult<Vec<DeliveryRow>> {
        let q = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE project_id = $1 AND id < $2 \
             ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(q))
            .bind(project_id)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery_row).collect()
    }

    /// Records an outgoing request about to be made (`pending`, no attempt yet).
    pub async fn create_notification(&self, n: &NewNotification<'_>) -> DbResult<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO notification_deliveries (project_id, execution_id, execution, kind, \
             target, event, body, state, attempts, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8) RETURNING id",
        )
        .bind(n.project_id)
        .bind(n.execution_id)
        .bind(n.execution)
        .bind(n.kind)
        .bind(n.target)
        .bind(n.event)
        .bind(n.body)
        .bind(n.created_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Records an attempt: its number, the answer's status or the error, and the state it
    /// left (`done_ms` is set unless the state is `pending`).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_notification_attempt(
        &self,
        id: i64,
        state: &str,
        attempts: u32,
        last_status: Option<u16>,
        last_error: Option<&str>,
        now_ms: i64,
    ) -> DbResult<()> {
        let done = (state != "pending").then_some(now_ms);
        sqlx::query(
            "UPDATE notification_deliveries SET state = $2, attempts = $3, last_status = $4, \
             last_error = $5, done_ms = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .bind(i64::from(attempts))
        .bind(last_status.map(i64::from))
        .bind(last_error)
        .bind(done)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A project's outgoing requests, newest first, those with an id below `before` when
    /// given.
    pub async fn notifications(
        &self,
        project_id: i64,
        before: Option<i64>,
        limit: u32,
    ) -> DbResult<Vec<NotificationRow>> {
        let q = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notification_deliveries \
             WHERE project_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(q))
            .bind(project_id)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(notification_row).collect()
    }

    /// The execution status last reported for an execution by `kind` (after a restart, what
    /// the notifier already sent).
    pub async fn last_notified(&self, execution_id: i64, kind: &str) -> DbResult<Option<String>> {
        let event: Option<String> = sqlx::query_scalar(
            "SELECT event FROM notification_deliveries WHERE execution_id = $1 AND kind = $2 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(execution_id)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?;
        Ok(event)
    }

    /// Removes delivery and notification records older than `before_ms` (retention), except
    /// notifications still pending; returns how many rows went.
    pub async fn prune_delivery_logs(&self, before_ms: i64) -> DbResult<u64> {
        let a = sqlx::query("DELETE FROM deliveries WHERE received_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let b = sqlx::query(
            "DELETE FROM notification_deliveries WHERE created_ms < $1 AND state <> 'pending'",
        )
        .bind(before_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(a + b)
    }

    /// Requests still `pending`, oldest first: those a stopped server left to finish.
    pub async fn pending_notifications(&self) -> DbResult<Vec<NotificationRow>> {
        let q = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notification_deliveries \
             WHERE state = 'pending' ORDER BY id"
        );
        let rows = sqlx::query(AssertSqlSafe(q)).fetch_all(&self.pool).await?;
        rows.iter().map(notification_row).collect()
    }
}

fn hooks_row(row: &AnyRow) -> DbResult<ProjectHooks> {
    let project_id: i64 = row.try_get("project_id")?;
    let urls: String = row.try_get("notify_urls")?;
    Ok(ProjectHooks {
        project_id,
        webhook_secret: row.try_get("webhook_secret")?,
        forge: row.try_get("forge")?,
        forge_api: row.try_get("forge_api")?,
        forge_repo: row.try_get("forge_repo")?,
        forge_token: row.try_get("forge_token")?,
        notify_urls: from_json(&urls, "project_hooks", project_id, "notify_urls")?,
    })
}

fn delivery_row(row: &AnyRow) -> DbResult<DeliveryRow> {
    let id: i64 = row.try_get("id")?;
    let status: i64 = row.try_get("status")?;
    let started: String = row.try_get("started")?;
    Ok(DeliveryRow {
        id,
        project_id: row.try_get("project_id")?,
        source: row.try_get("source")?,
        delivery_id: row.try_get("delivery_id")?,
        event: row.try_get("event")?,
        received_ms: row.try_get("received_ms")?,
        status: u16::try_from(status).unwrap_or(0),
        outcome: row.try_get("outcome")?,
        started: from_json(&started, "deliveries", id, "started")?,
    })
}

fn notification_row(row: &AnyRow) -> DbResult<NotificationRow> {
    let attempts: i64 = row.try_get("attempts")?;
    let last_status: Option<i64> = row.try_get("last_status")?;
    Ok(NotificationRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        execution_id: row.try_get("execution_id")?,
        execution: row.try_get("execution")?,
        kind: row.try_get("kind")?,
        target: row.try_get("target")?,
        event: row.try_get("event")?,
        body: row.try_get("body")?,
        state: row.try_get("state")?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        last_status: last_status.and_then(|s| u16::try_from(s).ok()),
        last_error: row.try_get("last_error")?,
        created_ms: row.try_get("created_ms")?,
        done_ms: row.try_get("done_ms")?,
    })
}

#[cfg(test)]
mod tests {
    //! Run against SQLite and against PostgreSQL (`SLIPWAY_TEST_POSTGRES_URL`, as in
    //! db/tests.rs, whose harness is private to it).

    use sqlx::{AnyConnection, Connection, Executor};

    use super::*;
    use crate::db::{DbKind, install_drivers};

    async fn with_db<F, Fut>(kind: DbKind, test: F)
    where
        F: FnOnce(Db) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = match kind {
            DbKind::Sqlite => (
                format!("sqlite:{}", dir.path().join("s.db").display()),
                None,
            ),
            DbKind::Postgres => {
                let Ok(admin) = std::env::var("SLIPWAY_TEST_POSTGRES_URL") else {
                    if std::env::var("SLIPWAY_SKIP_POSTGRES_TESTS").as_deref() == Ok("1") {
                        eprintln!("\n!!!!!!!! SKIPPED: PostgreSQL hooks tests !!!!!!!!\n");
                        return;
                    }
                    panic!(
                        "SLIPWAY_TEST_POSTGRES_URL is not set (scripts/provision.sh), or set \
                         SLIPWAY_SKIP_POSTGRES_TESTS=1"
                    );
                };
                install_drivers();
                let name = format!("t_{}", uuid::Uuid::now_v7().simple());
                let mut c = AnyConnection::connect(&admin).await.unwrap();
                c.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .unwrap();
                c.close().await.unwrap();
                let root = admin.rsplit_once('/').map_or(admin.as_str(), |(r, _)| r);
                (format!("{root}/{name}"), Some((admin.clone(), name)))
            }
        };
        let db = Db::connect(&url).await.unwrap();
        let outcome = tokio::spawn(test(db)).await;
        if let Some((admin, name)) = pg {
            let mut c = AnyConnection::connect(&admin).await.unwrap();
            c.execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
            .unwrap();
            c.close().await.unwrap();
        }
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    macro_rules! both {
        ($($name:ident),*) => {
            mod sqlite { $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::with_db(super::DbKind::Sqlite, super::$name).await }
            )* }
            mod postgres { $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::with_db(super::DbKind::Postgres, super::$name).await }
            )* }
        };
    }

    both!(
        settings_are_made_once_and_replaced,
        a_replayed_delivery_id_collides,
        notifications_record_attempts,
        old_delivery_logs_are_pruned
    );

    async fn old_delivery_logs_are_pruned(db: Db) {
        let p = db.create_project("hello", "/r", 1).await.unwrap();
        for (id, at) in [("old", 10), ("new", 1_000)] {
            db.record_delivery(&NewDelivery {
                project_id: p.id,
                source: "github",
                delivery_id: Some(id),
                event: Some("push"),
                received_ms: at,
                status: 202,
                outcome: "x",
            })
            .await
            .unwrap();
        }
        assert_eq!(db.prune_delivery_logs(500).await.unwrap(), 1);
        let left = db.deliveries(p.id, None, 10).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].delivery_id.as_deref(), Some("new"));
    }

    async fn settings_are_made_once_and_replaced(db: Db) {
        let p = db.create_project("hello", "/r", 1).await.unwrap();
        assert_eq!(db.project_hooks(p.id).await.unwrap(), None);
        let h = db.ensure_project_hooks(p.id, "s1").await.unwrap();
        assert_eq!(h.webhook_secret, "s1");
        let again = db.ensure_project_hooks(p.id, "s2").await.unwrap();
        assert_eq!(again.webhook_secret, "s1", "the first secret stays");
        let mut h = again;
        h.forge = Some("github".into());
        h.forge_token = Some("t0k".into());
        h.notify_urls = vec!["http://a/1".into(), "http://b/2".into()];
        db.set_project_hooks(&h).await.unwrap();
        assert_eq!(db.project_hooks(p.id).await.unwrap(), Some(h));
    }

    async fn a_replayed_delivery_id_collides(db: Db) {
        let p = db.create_project("hello", "/r", 1).await.unwrap();
        let d = |id: Option<&'static str>, source: &'static str| NewDelivery {
            project_id: p.id,
            source,
            delivery_id: id,
            event: Some("push"),
            received_ms: 5,
            status: 202,
            outcome: "processing",
        };
        let first = db.record_delivery(&d(Some("abc"), "github")).await.unwrap();
        assert!(first.is_some());
        assert_eq!(
            db.record_delivery(&d(Some("abc"), "github")).await.unwrap(),
            None
        );
        // Another forge's id space; refused ones without an id never collide.
        assert!(
            db.record_delivery(&d(Some("abc"), "gitea"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            db.record_delivery(&d(None, "github"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            db.record_delivery(&d(None, "github"))
                .await
                .unwrap()
                .is_some()
        );
        let started = vec!["hello#1".to_string()];
        db.finish_delivery(first.unwrap(), 202, "started hello#1", &started, false)
            .await
            .unwrap();
        let log = db.deliveries(p.id, None, 10).await.unwrap();
        assert_eq!(log.len(), 4);
        let oldest = log.last().unwrap();
        assert_eq!(oldest.started, started);
        assert_eq!(oldest.delivery_id.as_deref(), Some("abc"));
        assert_eq!(
            db.deliveries(p.id, Some(oldest.id + 1), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        // A failed one gives its id up: the forge's redelivery is taken up.
        let failed = db.record_delivery(&d(Some("xyz"), "github")).await.unwrap();
        db.finish_delivery(failed.unwrap(), 500, "boom", &[], true)
            .await
            .unwrap();
        assert!(
            db.record_delivery(&d(Some("xyz"), "github"))
                .await
                .unwrap()
                .is_some()
        );
    }

    async fn notifications_record_attempts(db: Db) {
        let p = db.create_project("hello", "/r", 1).await.unwrap();
        let n = |event: &'static str| NewNotification {
            project_id: p.id,
            execution_id: 7,
            execution: "hello#1",
            kind: "status",
            target: "http://forge/statuses/abc",
            event,
            body: "{}",
            created_ms: 10,
        };
        assert_eq!(db.last_notified(7, "status").await.unwrap(), None);
        let a = db.create_notification(&n("running")).await.unwrap();
        db.record_notification_attempt(a, "pending", 1, Some(500), Some("HTTP 500"), 11)
            .await
            .unwrap();
        let b = db.create_notification(&n("succeeded")).await.unwrap();
        db.record_notification_attempt(b, "delivered", 1, Some(201), None, 12)
            .await
            .unwrap();
        assert_eq!(
            db.last_notified(7, "status").await.unwrap().as_deref(),
            Some("succeeded")
        );
        assert_eq!(db.last_notified(7, "webhook").await.unwrap(), None);
        let pending = db.pending_notifications().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].id, a);
        assert_eq!(pending[0].last_status, Some(500));
        assert_eq!(pending[0].done_ms, None);
        let log = db.notifications(p.id, None, 10).await.unwrap();
        assert_eq!(log.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b, a]);
        assert_eq!(log[0].state, "delivered");
        assert_eq!(log[0].done_ms, Some(12));
        assert_eq!(log[0].attempts, 1);
    }
}
