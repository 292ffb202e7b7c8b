//! Backup and restore across backends: every table as `<table>.jsonl`, one JSON object per
//! row keyed by column name, written from one snapshot and read back line by line.

use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};

use super::{Db, DbError, DbKind, DbResult};

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
}

struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// The export's row order (the primary key).
    order: &'static str,
    /// Has an `id` identity column whose sequence an import must move on (PostgreSQL).
    identity: bool,
}

use Kind::{Int, Text};

/// Every table, parents before children (the order an import must follow).
const TABLES: &[Table] = &[
    Table {
        name: "projects",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("git", Text),
            ("created_ms", Int),
            ("last_number", Int),
        ],
        order: "id",
        identity: true,
    },
    Table {
        name: "executions",
        columns: &[
            ("id", Int),
            ("project_id", Int),
            ("number", Int),
            ("pipeline", Text),
            ("revision", Text),
            ("source_ref", Text),
            ("trigger", Text),
            ("variables", Text),
            ("status", Text),
            ("reason", Text),
            ("created_ms", Int),
            ("started_ms", Int),
            ("finished_ms", Int),
            ("rerun_of", Int),
            ("last_seq", Int),
        ],
        order: "id",
        identity: true,
    },
    Table {
        name: "events",
        columns: &[
            ("execution_id", Int),
            ("seq", Int),
            ("time_ms", Int),
            ("type", Text),
            ("body", Text),
        ],
        order: "execution_id, seq",
        identity: false,
    },
    Table {
        name: "actions",
        columns: &[
            ("id", Int),
            ("execution_id", Int),
            ("stage", Text),
            ("action", Text),
            ("kind", Text),
            ("status", Text),
            ("attempt", Int),
            ("executor", Text),
            ("started_ms", Int),
            ("finished_ms", Int),
            ("reason", Text),
            ("log_digest", Text),
            ("outputs", Text),
            ("artifacts", Text),
            ("reports", Text),
        ],
        order: "id",
        identity: true,
    },
    Table {
        name: "approvals",
        columns: &[
            ("execution_id", Int),
            ("stage", Text),
            ("action", Text),
            ("message", Text),
            ("status", Text),
            ("requested_ms", Int),
            ("deadline_ms", Int),
            ("decided_by", Text),
            ("decided_ms", Int),
            ("comment", Text),
        ],
        order: "execution_id, stage, action",
        identity: false,
    },
    Table {
        name: "blob_refs",
        columns: &[("execution_id", Int), ("digest", Text)],
        order: "execution_id, digest",
        identity: false,
    },
    Table {
        name: "project_sources",
        columns: &[
            ("project_id", Int),
            ("poll_interval_ms", Int),
            ("refs_seen_ms", Int),
        ],
        order: "project_id",
        identity: false,
    },
    Table {
        name: "source_refs",
        columns: &[("project_id", Int), ("ref", Text), ("sha", Text)],
        order: "project_id, ref",
        identity: false,
    },
    Table {
        name: "schedule_state",
        columns: &[
            ("project_id", Int),
            ("pipeline", Text),
            ("cron", Text),
            ("last_fired_ms", Int),
        ],
        order: "project_id, pipeline, cron",
        identity: false,
    },
    Table {
        name: "project_hooks",
        columns: &[
            ("project_id", Int),
            ("webhook_secret", Text),
            ("forge", Text),
            ("forge_api", Text),
            ("forge_repo", Text),
            ("forge_token", Text),
            ("notify_urls", Text),
        ],
        order: "project_id",
        identity: false,
    },
    Table {
        name: "deliveries",
        columns: &[
            ("id", Int),
            ("project_id", Int),
            ("source", Text),
            ("delivery_id", Text),
            ("event", Text),
            ("received_ms", Int),
            ("status", Int),
            ("outcome", Text),
            ("started", Text),
        ],
        order: "id",
        identity: true,
    },
    Table {
        name: "notification_deliveries",
        columns: &[
            ("id", Int),
            ("project_id", Int),
            ("execution_id", Int),
            ("execution", Text),
            ("kind", Text),
            ("target", Text),
            ("event", Text),
            ("body", Text),
            ("state", Text),
            ("attempts", Int),
            ("last_status", Int),
            ("last_error", Text),
            ("created_ms", Int),
            ("done_ms", Int),
        ],
        order: "id",
        identity: true,
    },
    Table {
        name: "registry_repos",
        columns: &[
            ("id", Int),
            ("project_id", Int),
            ("name", Text),
            ("immutable_tags", Int),
            ("anonymous_pull", Int),
            ("lifecycle", Text),
            ("created_ms", Int),
        ],
        order: "id",
        identity: true,
    },
    Table {
        name: "registry_blobs",
        columns: &[
            ("repo_id", Int),
            ("digest", Text),
            ("size", Int),
            ("created_ms", Int),
            ("used_ms", Int),
        ],
        order: "repo_id, digest",
        identity: false,
    },
    Table {
        name: "registry_manifests",
        columns: &[
            ("repo_id", Int),
            ("digest", Text),
            ("media_type", Text),
            ("size", Int),
            ("artifact_type", Text),
            ("subject", Text),
            ("annotations", Text),
            ("pushed_ms", Int),
        ],
        order: "repo_id, digest",
        identity: false,
    },
    Table {
        name: "registry_refs",
        columns: &[
            ("repo_id", Int),
            ("manifest", Text),
            ("child", Text),
            ("kind", Text),
        ],
        order: "repo_id, manifest, child",
        identity: false,
    },
    Table {
        name: "registry_tags",
        columns: &[
            ("repo_id", Int),
            ("tag", Text),
            ("digest", Text),
            ("updated_ms", Int),
        ],
        order: "repo_id, tag",
        identity: false,
    },
    Table {
        name: "agents",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("labels", Text),
            ("executors", Text),
            ("concurrency", Int),
            ("agent_version", Text),
            ("token_hash", Text),
            ("created_ms", Int),
            ("last_contact_ms", Int),
        ],
        order: "id",
        identity: true,
    },
    Table {
        name: "agent_registration_tokens",
        columns: &[("token_hash", Text), ("created_ms", Int)],
        order: "token_hash",
        identity: false,
    },
    Table {
        name: "agent_jobs",
        columns: &[
            ("id", Int),
            ("execution_id", Int),
            ("stage", Text),
            ("action", Text),
            ("attempt", Int),
            ("labels", Text),
            ("executor", Text),
            ("spec", Text),
            ("state", Text),
            ("agent_id", Int),
            ("lease_id", Text),
            ("lease_expires_ms", Int),
            ("cancel_requested", Int),
            ("acked_chunk", Int),
            ("acked_seq", Int),
            ("result", Text),
            ("created_ms", Int),
            ("leased_ms", Int),
            ("finished_ms", Int),
        ],
        order: "id",
        identity: true,
    },
];

/// Bind parameters per INSERT during an import (well below SQLite's and PostgreSQL's limits).
const PARAMETERS_PER_INSERT: usize = 900;

impl Table {
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(c, _)| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.jsonl", self.name))
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DbError + '_ {
    move |source| DbError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// [`Db::export`]. Each file is written as `<table>.jsonl.partial` and renamed when complete.
pub(super) async fn export(db: &Db, dir: &Path) -> DbResult<()> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(io_error(dir))?;
    // One snapshot for every table: SQLite's read transaction (WAL) starts at the first
    // SELECT and sees no later commit; PostgreSQL needs REPEATABLE READ for the same.
    let mut tx = match db.kind {
        DbKind::Sqlite => db.pool.begin().await?,
        DbKind::Postgres => {
            db.pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?
        }
    };
    for table in TABLES {
        let path = table.file(dir);
        let partial = path.with_extension("jsonl.partial");
        let file = tokio::fs::File::create(&partial)
            .await
            .map_err(io_error(&partial))?;
        let mut out = BufWriter::new(file);
        let q = format!(
            "SELECT {} FROM {} ORDER BY {}",
            table.column_list(),
            table.name,
            table.order
        );
        let mut rows = sqlx::query(AssertSqlSafe(q)).fetch(&mut *tx);
        let mut line = Vec::new();
        while let Some(row) = rows.try_next().await? {
            let mut object = Map::new();
            for (i, (column, kind)) in table.columns.iter().enumerate() {
                let value = match kind {
                    Int => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
                    Text => row.try_get::<Option<String>, _>(i)?.map(Value::from),
                };
                object.insert((*column).to_string(), value.unwrap_or(Value::Null));
            }
            line.clear();
            serde_json::to_writer(&mut line, &object)
                .map_err(|e| DbError::Corrupt(format!("{}: {e}", table.name)))?;
            line.push(b'\n');
            out.write_all(&line).await.map_err(io_error(&partial))?;
        }
        drop(rows);
        out.flush().await.map_err(io_error(&partial))?;
        out.into_inner()
            .sync_all()
            .await
            .map_err(io_error(&partial))?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(io_error(&path))?;
    }
    tx.rollback().await?;
    Ok(())
}

/// [`Db::import`]. One transaction: on any error nothing is loaded. A table whose file is
/// missing (a backup from before the table existed) stays empty; `projects.jsonl` must exist,
/// so a wrong directory is an error rather than an empty import.
pub(super) async fn import(db: &Db, dir: &Path) -> DbResult<()> {
    let projects = TABLES[0].file(dir);
    tokio::fs::metadata(&projects)
        .await
        .map_err(io_error(&projects))?;
    let mut tx = db.begin_write().await?;
    for table in TABLES {
        let q = format!("SELECT 1 FROM {} LIMIT 1", table.name);
        if sqlx::query(AssertSqlSafe(q))
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        {
            return Err(DbError::Conflict(format!(
                "data in table {} of the database to import into",
                table.name
            )));
        }
    }
    for table in TABLES {
        let path = table.file(dir);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    table = table.name,
                    path = %path.display(),
                    "no file to import; table left empty"
                );
                continue;
            }
            Err(e) => return Err(io_error(&path)(e)),
        };
        let per_insert = (PARAMETERS_PER_INSERT / table.columns.len()).max(1);
        let mut lines = BufReader::new(file).lines();
        let mut batch: Vec<Map<String, Value>> = Vec::with_capacity(per_insert);
        let mut line_no = 0usize;
        while let Some(line) = lines.next_line().await.map_err(io_error(&path))? {
            line_no += 1;
            if line.trim().is_empty() {
                continue;
            }
            let object: Map<String, Value> = serde_json::from_str(&line).map_err(|e| {
                DbError::Corrupt(format!("{}: line {line_no}: {e}", path.display()))
            })?;
            batch.push(object);
            if batch.len() == per_insert {
                insert(&mut tx, table, &batch, &path, line_no).await?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            insert(&mut tx, table, &batch, &path, line_no).await?;
        }
    }
    if db.kind == DbKind::Postgres {
        for table in TABLES.iter().filter(|t| t.identity) {
            // The next id generated must come after the imported ones.
            let q = format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), COALESCE(MAX(id), 1), \
                 MAX(id) IS NOT NULL) FROM {0}",
                table.name
            );
            sqlx::query(AssertSqlSafe(q)).execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Inserts one batch of exported rows; `last_line` names the batch's last line in errors.
async fn insert(
    conn: &mut sqlx::AnyConnection,
    table: &Table,
    rows: &[Map<String, Value>],
    path: &Path,
    last_line: usize,
) -> DbResult<()> {
    let width = table.columns.len();
    let values = (0..rows.len())
        .map(|r| format!("({})", super::placeholders(1 + r * width, width)))
        .collect::<Vec<_>>()
        .join(", ");
    let q = format!(
        "INSERT INTO {} ({}) VALUES {values}",
        table.name,
        table.column_list()
    );
    let mut query: Query<'_, Any, AnyArguments> = sqlx::query(AssertSqlSafe(q));
    for row in rows {
        for (column, kind) in table.columns {
            let bad = |what: &str| {
                DbError::Corrupt(format!(
                    "{}: near line {last_line}: column {column}: {what}",
                    path.display()
                ))
            };
            query = match (kind, row.get(*column).unwrap_or(&Value::Null)) {
                (Int, Value::Null) => query.bind(None::<i64>),
                (Int, Value::Number(n)) => {
                    query.bind(n.as_i64().ok_or_else(|| bad("not a 64-bit integer"))?)
                }
                (Text, Value::Null) => query.bind(None::<String>),
                (Text, Value::String(s)) => query.bind(s.as_str()),
                (Int, _) => return Err(bad("expected an integer")),
                (Text, _) => return Err(bad("expected a string")),
            };
        }
    }
    query.execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TABLES;
    use crate::Db;

    /// A table added by a migration but not listed here would silently be left out of every
    /// backup: this compares the list with the migrated schema.
    #[tokio::test]
    async fn every_table_of_the_schema_is_backed_up() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("t.db").display());
        let db = Db::connect(&url).await.unwrap();
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%' ORDER BY name",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        let mut schema: Vec<String> = rows.into_iter().map(|(n,)| n).collect();
        schema.sort();
        let mut listed: Vec<String> = TABLES.iter().map(|t| t.name.to_string()).collect();
        listed.sort();
        assert_eq!(listed, schema, "db/backup.rs TABLES must list every table");
        for t in TABLES {
            let cols: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{}') ORDER BY cid",
                t.name
            )))
            .fetch_all(&db.pool)
            .await
            .unwrap();
            let mut have: Vec<String> = cols.into_iter().map(|(c,)| c).collect();
            have.sort();
            let mut want: Vec<String> = t.columns.iter().map(|(c, _)| c.to_string()).collect();
            want.sort();
            assert_eq!(want, have, "columns of {}", t.name);
        }
    }
}
