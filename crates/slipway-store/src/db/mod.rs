//! The state database: projects, executions, their events and the projections the API reads
//! (actions, approvals). One code path over sqlx's `Any` driver for SQLite (WAL, the default)
//! and PostgreSQL, with one migration folder per backend.
//!
//! Rules that keep the two backends one code path (see ../../../../ARCHITECTURE.md):
//! BIGINT ids and times (Unix ms), flags as SMALLINT 0/1, JSON and statuses as TEXT, `$1`
//! placeholders, no `query!` macros.

mod agents;
mod backup;
mod events;
mod hooks;
mod registry;
mod sources;
#[cfg(test)]
mod tests;

pub use hooks::{DeliveryRow, NewDelivery, NewNotification, NotificationRow, ProjectHooks};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

pub use sources::{RefUpdate, SourceSettings};

pub use agents::{AgentRow, JobRow, JobState, LeasedJob, NewAgent, NewJob};

pub use registry::{
    ImageRow, ManifestRow, NewManifest, PutManifestError, RefKind, RepoRow, RepoSummary,
};
use slipway_model::{ALL_STATUSES, Digest, Status};
use slipway_proto::Event;
use slipway_proto::api::{ActionState, Approval};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Connection, Executor, Row, Transaction};

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database URL `{0}`: expected sqlite:PATH or postgres://...")]
    BadUrl(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type DbResult<T> = Result<T, DbError>;

#[derive(Clone, Debug, PartialEq)]
pub struct ProjectRow {
    pub id: i64,
    pub name: String,
    pub git: String,
    pub created_ms: i64,
    pub last_number: u64,
}

/// What a new execution starts from; the number is allocated by `create_execution`.
#[derive(Clone, Debug, Default)]
pub struct NewExecution {
    pub project_id: i64,
    pub pipeline: String,
    pub revision: Option<String>,
    pub source_ref: Option<String>,
    pub trigger: String,
    /// Pipeline variables given at start, as a JSON object.
    pub variables: std::collections::BTreeMap<String, String>,
    pub rerun_of: Option<u64>,
    pub created_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionRow {
    pub id: i64,
    pub project_id: i64,
    pub project: String,
    pub number: u64,
    pub pipeline: String,
    pub revision: Option<String>,
    pub source_ref: Option<String>,
    pub trigger: String,
    pub variables: std::collections::BTreeMap<String, String>,
    pub status: Status,
    pub reason: Option<String>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub rerun_of: Option<u64>,
    /// The last event's sequence number (0 before any).
    pub last_seq: u64,
}

/// What the background pruning keeps.
#[derive(Clone, Debug, Default)]
pub struct Retention {
    /// Executions that finished longer ago than this are pruned.
    pub max_age_ms: Option<i64>,
    /// Only the newest N executions of each project are kept.
    pub keep_per_project: Option<u32>,
}

pub struct Db {
    kind: DbKind,
    pool: sqlx::AnyPool,
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a SQLite writer waits for another's write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite serializes writers anyway; a few connections let readers (WAL) run beside them.
const SQLITE_POOL_SIZE: u32 = 4;
const POSTGRES_POOL_SIZE: u32 = 10;

/// The columns `execution_row` reads, from `executions e JOIN projects p`.
const EXECUTION_COLUMNS: &str = "e.id, e.project_id, p.name AS project, e.number, e.pipeline, \
     e.revision, e.source_ref, e.\"trigger\", e.variables, e.status, e.reason, e.created_ms, \
     e.started_ms, e.finished_ms, e.rerun_of, e.last_seq";
const PROJECT_COLUMNS: &str = "id, name, git, created_ms, last_number";
const ACTION_COLUMNS: &str = "id, stage, action, kind, status, attempt, executor, started_ms, \
     finished_ms, reason, log_digest, outputs, artifacts, reports";
const APPROVAL_COLUMNS: &str =
    "stage, action, message, status, requested_ms, deadline_ms, decided_by, decided_ms, comment";

/// What a URL resolved to: the driver and the URL sqlx gets.
#[derive(Debug, PartialEq)]
enum Target {
    Sqlite { path: PathBuf, url: String },
    Postgres { url: String },
}

impl Db {
    /// Opens (creating a SQLite file and its directory if needed) and migrates.
    /// `url`: `sqlite:PATH` / `sqlite://PATH` or `postgres://...` / `postgresql://...`.
    pub async fn connect(url: &str) -> DbResult<Db> {
        install_drivers();

        let (kind, pool) = match parse_url(url)? {
            Target::Sqlite { path, url } => (DbKind::Sqlite, open_sqlite(&path, &url).await?),
            Target::Postgres { url } => {
                let options: AnyConnectOptions = url.parse()?;
                let pool = AnyPoolOptions::new()
                    .max_connections(POSTGRES_POOL_SIZE)
                    .connect_with(options)
                    .await?;
                (DbKind::Postgres, pool)
            }
        };
        let migrator = match kind {
            DbKind::Sqlite => &SQLITE_MIGRATIONS,
            DbKind::Postgres => &POSTGRES_MIGRATIONS,
        };
        if let Err(e) = migrator.run(&pool).await {
            pool.close().await;
            return Err(e.into());
        }
        tracing::debug!(kind = ?kind, "state database ready");
        Ok(Db { kind, pool })
    }

    pub fn kind(&self) -> DbKind {
        self.kind
    }

    pub async fn close(&self) {
        self.pool.close().await
    }

    /// A write transaction. SQLite's takes the write lock up front (`BEGIN IMMEDIATE`): a
    /// deferred transaction that reads first and then writes cannot wait for another writer
    /// (SQLite answers SQLITE_BUSY at once instead of deadlocking), while `BEGIN IMMEDIATE`
    /// waits up to the busy timeout.
    async fn begin_write(&self) -> DbResult<Transaction<'static, Any>> {
        Ok(match self.kind {
            DbKind::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            DbKind::Postgres => self.pool.begin().await?,
        })
    }

    /// A `Conflict` when the name is taken.
    pub async fn create_project(&self, name: &str, git: &str, now_ms: i64) -> DbResult<ProjectRow> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO projects (name, git, created_ms, last_number) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(git)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        match id {
            Some(id) => Ok(ProjectRow {
                id,
                name: name.to_string(),
                git: git.to_string(),
                created_ms: now_ms,
                last_number: 0,
            }),
            None => Err(DbError::Conflict(format!("project {name}"))),
        }
    }

    /// Points a project at another repository path or URL (a restore moving hosted repositories).
    pub async fn set_project_git(&self, id: i64, git: &str) -> DbResult<()> {
        sqlx::query("UPDATE projects SET git = $2 WHERE id = $1")
            .bind(id)
            .bind(git)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn project(&self, name: &str) -> DbResult<Option<ProjectRow>> {
        let q = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE name = $1");
        let row = sqlx::query(AssertSqlSafe(q))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(project_row).transpose()
    }

    /// By name.
    pub async fn projects(&self) -> DbResult<Vec<ProjectRow>> {
        let q = format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name");
        let rows = sqlx::query(AssertSqlSafe(q)).fetch_all(&self.pool).await?;
        rows.iter().map(project_row).collect()
    }

    /// Allocates the project's next number and inserts the execution as `queued`, atomically.
    pub async fn create_execution(&self, new: &NewExecution) -> DbResult<ExecutionRow> {
        let variables = to_json(&new.variables, "variables")?;
        let mut tx = self.begin_write().await?;
        // The row lock this UPDATE takes (PostgreSQL) or the write lock (SQLite) makes
        // concurrent creates take numbers one after another.
        let row = sqlx::query(
            "UPDATE projects SET last_number = last_number + 1 WHERE id = $1 \
             RETURNING last_number, name",
        )
        .bind(new.project_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
        let number: i64 = row.try_get(0)?;
        let project: String = row.try_get(1)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO executions (project_id, number, pipeline, revision, source_ref, \
             \"trigger\", variables, status, created_ms, rerun_of, last_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0) RETURNING id",
        )
        .bind(new.project_id)
        .bind(number)
        .bind(&new.pipeline)
        .bind(new.revision.as_deref())
        .bind(new.source_ref.as_deref())
        .bind(&new.trigger)
        .bind(variables)
        .bind(Status::Queued.as_str())
        .bind(new.created_ms)
        .bind(new.rerun_of.map(signed))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ExecutionRow {
            id,
            project_id: new.project_id,
            project,
            number: unsigned(number, "projects", new.project_id, "last_number")?,
            pipeline: new.pipeline.clone(),
            revision: new.revision.clone(),
            source_ref: new.source_ref.clone(),
            trigger: new.trigger.clone(),
            variables: new.variables.clone(),
            status: Status::Queued,
            reason: None,
            created_ms: new.created_ms,
            started_ms: None,
            finished_ms: None,
            rerun_of: new.rerun_of,
            last_seq: 0,
        })
    }

    pub async fn execution(&self, project_id: i64, number: u64) -> DbResult<Option<ExecutionRow>> {
        let q = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN projects p ON p.id = e.project_id \
             WHERE e.project_id = $1 AND e.number = $2"
        );
        let row = sqlx::query(AssertSqlSafe(q))
            .bind(project_id)
            .bind(signed(number))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(execution_row).transpose()
    }

    pub async fn execution_by_id(&self, id: i64) -> DbResult<Option<ExecutionRow>> {
        let q = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN projects p ON p.id = e.project_id \
             WHERE e.id = $1"
        );
        let row = sqlx::query(AssertSqlSafe(q))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(execution_row).transpose()
    }

    /// A project's executions, newest first, those numbered below `before` when given.
    pub async fn executions(
        &self,
        project_id: i64,
        before: Option<u64>,
        limit: u32,
    ) -> DbResult<Vec<ExecutionRow>> {
        let q = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN projects p ON p.id = e.project_id \
             WHERE e.project_id = $1 AND e.number < $2 ORDER BY e.number DESC LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(q))
            .bind(project_id)
            .bind(before.map_or(i64::MAX, signed))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(execution_row).collect()
    }

    /// Every execution in one of these statuses, oldest first (recovery, the dashboard).
    pub async fn executions_with_status(&self, statuses: &[Status]) -> DbResult<Vec<ExecutionRow>> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        let q = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN projects p ON p.id = e.project_id \
             WHERE e.status IN ({}) ORDER BY e.id",
            placeholders(1, statuses.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(q));
        for s in statuses {
            query = query.bind(s.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(execution_row).collect()
    }

    /// Sets the status; `started_ms` is set the first time it becomes running, `finished_ms`
    /// when it becomes terminal (and cleared when it runs again); `reason` replaces the old one.
    pub async fn set_execution_status(
        &self,
        id: i64,
        status: Status,
        reason: Option<&str>,
        now_ms: i64,
    ) -> DbResult<()> {
        let started = (status == Status::Running).then_some(now_ms);
        let finished = status.is_terminal().then_some(now_ms);
        sqlx::query(
            "UPDATE executions SET status = $2, reason = $3, \
             started_ms = COALESCE(started_ms, $4), finished_ms = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(reason)
        .bind(started)
        .bind(finished)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Appends events (in one transaction) and applies them to the projections: the
    /// execution's status and `last_seq`, and the actions' rows. Events whose seq is already
    /// stored are ignored (so a retried append is harmless).
    pub async fn append_events(&self, execution_id: i64, events: &[Event]) -> DbResult<()> {
        events::append(self, execution_id, events).await
    }

    /// Events with seq > `after`, in order, at most `limit`.
    pub async fn events(&self, execution_id: i64, after: u64, limit: u32) -> DbResult<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT seq, body FROM events WHERE execution_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(execution_id)
        .bind(signed(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(0)?;
                let body: String = row.try_get(1)?;
                serde_json::from_str(&body).map_err(|e| {
                    DbError::Corrupt(format!(
                        "events row (execution {execution_id}, seq {seq}): body: {e}"
                    ))
                })
            })
            .collect()
    }

    /// The actions as they stand (latest attempt), in the order they first started.
    pub async fn actions(&self, execution_id: i64) -> DbResult<Vec<ActionState>> {
        let q = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE execution_id = $1 ORDER BY id");
        let rows = sqlx::query(AssertSqlSafe(q))
            .bind(execution_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(action_row).collect()
    }

    /// Records (or re-records, keeping the first `requested_ms`) a waiting approval.
    ///
    /// Re-recording an approval that was already decided makes it wait again: the engine asks
    /// again only when the approval action runs again (a retried stage), and an old approval
    /// must not let a new attempt through.
    pub async fn request_approval(
        &self,
        execution_id: i64,
        stage: &str,
        action: &str,
        message: Option<&str>,
        requested_ms: i64,
        deadline_ms: i64,
    ) -> DbResult<Approval> {
        let q = format!(
            "INSERT INTO approvals (execution_id, stage, action, message, status, requested_ms, \
             deadline_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (execution_id, stage, action) DO UPDATE SET message = excluded.message, \
             status = excluded.status, deadline_ms = excluded.deadline_ms, decided_by = NULL, \
             decided_ms = NULL, comment = NULL \
             RETURNING {APPROVAL_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(q))
            .bind(execution_id)
            .bind(stage)
            .bind(action)
            .bind(message)
            .bind(Status::Waiting.as_str())
            .bind(requested_ms)
            .bind(deadline_ms)
            .fetch_one(&self.pool)
            .await?;
        approval_row(&row, execution_id)
    }

    /// Decides a waiting approval: true when it was waiting (and now is not), false when it
    /// was already decided or does not exist.
    #[allow(clippy::too_many_arguments)]
    pub async fn decide_approval(
        &self,
        execution_id: i64,
        stage: &str,
        action: &str,
        status: Status,
        by: &str,
        comment: Option<&str>,
        now_ms: i64,
    ) -> DbResult<bool> {
        // Compare-and-set: of two concurrent decisions exactly one finds it waiting.
        let done = sqlx::query(
            "UPDATE approvals SET status = $4, decided_by = $5, decided_ms = $6, comment = $7 \
             WHERE execution_id = $1 AND stage = $2 AND action = $3 AND status = $8",
        )
        .bind(execution_id)
        .bind(stage)
        .bind(action)
        .bind(status.as_str())
        .bind(by)
        .bind(now_ms)
        .bind(comment)
        .bind(Status::Waiting.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn approvals(&self, execution_id: i64) -> DbResult<Vec<Approval>> {
        let q = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE execution_id = $1 \
             ORDER BY requested_ms, stage, action"
        );
        let rows = sqlx::query(AssertSqlSafe(q))
            .bind(execution_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| approval_row(r, execution_id)).collect()
    }

    /// Executions to prune under `policy` at `now_ms`: finished ones only, never the newest
    /// succeeded execution of a project.
    ///
    /// With both limits set, an execution is pruned when either says so. Oldest first.
    pub async fn prune_candidates(
        &self,
        policy: &Retention,
        now_ms: i64,
    ) -> DbResult<Vec<ExecutionRow>> {
        if policy.max_age_ms.is_none() && policy.keep_per_project.is_none() {
            return Ok(Vec::new());
        }
        // An execution ranked beyond `keep` (1 = the project's newest) goes; i64::MAX keeps all.
        let keep = policy.keep_per_project.map_or(i64::MAX, i64::from);
        // Finished before `cutoff` goes; i64::MIN keeps all.
        let cutoff = policy
            .max_age_ms
            .map_or(i64::MIN, |age| now_ms.saturating_sub(age.max(0)));
        let terminal = ALL_STATUSES
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let q = format!(
            "SELECT {EXECUTION_COLUMNS} FROM \
               (SELECT x.*, ROW_NUMBER() OVER (PARTITION BY x.project_id ORDER BY x.number DESC) \
                AS newness FROM executions x) e \
             JOIN projects p ON p.id = e.project_id \
             WHERE e.status IN ({terminal}) \
               AND (e.newness > $1 OR (e.finished_ms IS NOT NULL AND e.finished_ms < $2)) \
               AND e.number <> COALESCE((SELECT MAX(s.number) FROM executions s \
                   WHERE s.project_id = e.project_id AND s.status = $3), 0) \
             ORDER BY e.id"
        );
        let rows = sqlx::query(AssertSqlSafe(q))
            .bind(keep)
            .bind(cutoff)
            .bind(Status::Succeeded.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(execution_row).collect()
    }

    /// Removes an execution with its events, actions and approvals.
    pub async fn delete_execution(&self, id: i64) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        for q in [
            "DELETE FROM events WHERE execution_id = $1",
            "DELETE FROM actions WHERE execution_id = $1",
            "DELETE FROM approvals WHERE execution_id = $1",
            "DELETE FROM blob_refs WHERE execution_id = $1",
            "DELETE FROM executions WHERE id = $1",
        ] {
            sqlx::query(q).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every blob the state still refers to: action logs and artifacts.
    ///
    /// Every attempt's, not only the latest's (`blob_refs` is filled from each
    /// `ActionFinished`), so an earlier attempt's log stays readable while its execution exists.
    pub async fn live_digests(&self) -> DbResult<BTreeSet<Digest>> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT DISTINCT digest FROM blob_refs")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|d| {
                Digest::parse(d).map_err(|e| DbError::Corrupt(format!("blob_refs row {d}: {e}")))
            })
            .collect()
    }

    /// Execution counts per status (metrics).
    pub async fn count_by_status(&self) -> DbResult<Vec<(Status, u64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM executions GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get(0)?;
                let n: i64 = row.try_get(1)?;
                let status = status.parse().map_err(|e: String| {
                    DbError::Corrupt(format!("executions: status `{status}`: {e}"))
                })?;
                Ok((status, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    /// Writes every table as `<dir>/<table>.jsonl` from one consistent snapshot (a read
    /// transaction), streaming rows. Used by `slipway backup` while the server runs.
    pub async fn export(&self, dir: &Path) -> DbResult<()> {
        backup::export(self, dir).await
    }

    /// Loads what `export` wrote into this (empty, migrated) database; works across backends.
    /// Ids are kept.
    pub async fn import(&self, dir: &Path) -> DbResult<()> {
        backup::import(self, dir).await
    }
}

/// Makes sqlx's `Any` driver know SQLite and PostgreSQL (once per process).
fn install_drivers() {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
}

/// Resolves a database URL into the driver and the URL handed to sqlx.
fn parse_url(url: &str) -> DbResult<Target> {
    let bad = || DbError::BadUrl(url.to_string());
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres {
            url: url.to_string(),
        });
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(bad());
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, params) = match rest.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (rest, None),
    };
    // An in-memory database would be a different one on each pooled connection.
    if path.is_empty() || path == ":memory:" {
        return Err(bad());
    }
    // sqlx reparses the URL as a URL: a relative `sqlite://data/x.db` would make `data` a
    // host name (and lowercase it). An absolute, percent-encoded path avoids all of that.
    let path = std::path::absolute(path).map_err(|_| bad())?;
    let encoded = percent_encode_path(path.to_str().ok_or_else(bad)?);
    let mut params: Vec<&str> = params
        .map(|p| p.split('&').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if !params.iter().any(|p| p.starts_with("mode=")) {
        params.push("mode=rwc");
    }
    Ok(Target::Sqlite {
        url: format!("sqlite://{encoded}?{}", params.join("&")),
        path,
    })
}

/// Encodes every byte of a path but the unreserved ones and `/`, so no character of a file
/// name can be read as URL syntax.
fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Opens a SQLite pool in WAL mode with per-connection settings.
async fn open_sqlite(path: &Path, url: &str) -> DbResult<AnyPool> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| DbError::Io {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let options: AnyConnectOptions = url.parse()?;
    // The journal mode is stored in the file. Switching it needs the database to itself, so it
    // happens here, on one connection, before the pool opens others.
    let mut conn = AnyConnection::connect_with(&options).await?;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::Sql(sqlx::Error::Configuration(
            format!(
                "{}: SQLite stays in journal mode `{mode}`, not WAL (a file system without \
                 shared memory?)",
                path.display()
            )
            .into(),
        )));
    }
    let busy_ms = SQLITE_BUSY_TIMEOUT.as_millis();
    let pool = AnyPoolOptions::new()
        .max_connections(SQLITE_POOL_SIZE)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                // Per connection, not stored in the file. NORMAL is durable in WAL mode except
                // for the last transactions before a power loss; it never corrupts the file.
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute(AssertSqlSafe(format!("PRAGMA busy_timeout = {busy_ms}")))
                    .await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// `$first, $first+1, ...` (`n` of them).
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A u64 (numbers, seqs) as the BIGINT it is stored as.
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored BIGINT that must not be negative.
fn unsigned(v: i64, table: &str, id: impl std::fmt::Display, column: &str) -> DbResult<u64> {
    u64::try_from(v)
        .map_err(|_| DbError::Corrupt(format!("{table} row {id}: {column} is negative ({v})")))
}

fn to_json<T: serde::Serialize>(value: &T, what: &str) -> DbResult<String> {
    serde_json::to_string(value).map_err(|e| DbError::Corrupt(format!("{what}: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    table: &str,
    id: impl std::fmt::Display,
    column: &str,
) -> DbResult<T> {
    serde_json::from_str(text)
        .map_err(|e| DbError::Corrupt(format!("{table} row {id}: {column}: {e}")))
}

fn parse_status(text: &str, table: &str, id: impl std::fmt::Display) -> DbResult<Status> {
    text.parse()
        .map_err(|e: String| DbError::Corrupt(format!("{table} row {id}: status: {e}")))
}

fn project_row(row: &AnyRow) -> DbResult<ProjectRow> {
    let id: i64 = row.try_get("id")?;
    Ok(ProjectRow {
        id,
        name: row.try_get("name")?,
        git: row.try_get("git")?,
        created_ms: row.try_get("created_ms")?,
        last_number: unsigned(row.try_get("last_number")?, "projects", id, "last_number")?,
    })
}

fn execution_row(row: &AnyRow) -> DbResult<ExecutionRow> {
    let id: i64 = row.try_get("id")?;
    let variables: String = row.try_get("variables")?;
    let status: String = row.try_get("status")?;
    Ok(ExecutionRow {
        id,
        project_id: row.try_get("project_id")?,
        project: row.try_get("project")?,
        number: unsigned(row.try_get("number")?, "executions", id, "number")?,
        pipeline: row.try_get("pipeline")?,
        revision: row.try_get("revision")?,
        source_ref: row.try_get("source_ref")?,
        trigger: row.try_get("trigger")?,
        variables: from_json::<BTreeMap<String, String>>(
            &variables,
            "executions",
            id,
            "variables",
        )?,
        status: parse_status(&status, "executions", id)?,
        reason: row.try_get("reason")?,
        created_ms: row.try_get("created_ms")?,
        started_ms: row.try_get("started_ms")?,
        finished_ms: row.try_get("finished_ms")?,
        rerun_of: row
            .try_get::<Option<i64>, _>("rerun_of")?
            .map(|n| unsigned(n, "executions", id, "rerun_of"))
            .transpose()?,
        last_seq: unsigned(row.try_get("last_seq")?, "executions", id, "last_seq")?,
    })
}

fn action_row(row: &AnyRow) -> DbResult<ActionState> {
    let id: i64 = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let attempt: i64 = row.try_get("attempt")?;
    let log: Option<String> = row.try_get("log_digest")?;
    let outputs: String = row.try_get("outputs")?;
    let artifacts: String = row.try_get("artifacts")?;
    let reports: String = row.try_get("reports")?;
    Ok(ActionState {
        stage: row.try_get("stage")?,
        action: row.try_get("action")?,
        kind: row.try_get("kind")?,
        status: parse_status(&status, "actions", id)?,
        attempt: u32::try_from(attempt).map_err(|_| {
            DbError::Corrupt(format!(
                "actions row {id}: attempt {attempt} is out of range"
            ))
        })?,
        executor: row.try_get("executor")?,
        started_ms: row.try_get("started_ms")?,
        finished_ms: row.try_get("finished_ms")?,
        reason: row.try_get("reason")?,
        log: log
            .map(|d| {
                Digest::parse(&d)
                    .map_err(|e| DbError::Corrupt(format!("actions row {id}: log_digest: {e}")))
            })
            .transpose()?,
        outputs: from_json(&outputs, "actions", id, "outputs")?,
        artifacts: from_json(&artifacts, "actions", id, "artifacts")?,
        reports: from_json(&reports, "actions", id, "reports")?,
    })
}

fn approval_row(row: &AnyRow, execution_id: i64) -> DbResult<Approval> {
    let stage: String = row.try_get("stage")?;
    let action: String = row.try_get("action")?;
    let status: String = row.try_get("status")?;
    let status = parse_status(
        &status,
        "approvals",
        format_args!("(execution {execution_id}, {stage}/{action})"),
    )?;
    Ok(Approval {
        message: row.try_get("message")?,
        status,
        requested_ms: row.try_get("requested_ms")?,
        deadline_ms: row.try_get("deadline_ms")?,
        decided_by: row.try_get("decided_by")?,
        decided_ms: row.try_get("decided_ms")?,
        comment: row.try_get("comment")?,
        stage,
        action,
    })
}
