//! Appending an execution's events and applying them to the projections (the execution's
//! status and `last_seq`, the actions' rows, the blobs they refer to).

use std::borrow::Cow;
use std::collections::HashSet;

use slipway_model::Status;
use slipway_proto::{Event, EventBody};
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{Db, DbError, DbResult, signed, to_json};

/// Events per INSERT statement: one statement per hundred rows instead of one per row
/// (4 parameters a row stays far below both backends' limits).
const EVENTS_PER_INSERT: usize = 100;

/// An event as it is stored.
struct Encoded {
    seq: i64,
    time_ms: i64,
    ty: String,
    body: String,
}

fn encode(event: &Event) -> DbResult<Encoded> {
    #[derive(serde::Deserialize)]
    struct Tag<'a> {
        #[serde(rename = "type", borrow)]
        ty: Cow<'a, str>,
    }
    let body = to_json(event, "event")?;
    // The tag as serde wrote it, so an event type this code does not name is stored right too.
    let tag: Tag = serde_json::from_str(&body)
        .map_err(|e| DbError::Corrupt(format!("event {}: no type tag: {e}", event.seq)))?;
    Ok(Encoded {
        seq: signed(event.seq),
        time_ms: event.time_ms,
        ty: tag.ty.into_owned(),
        body,
    })
}

fn insert_sql(rows: usize) -> String {
    let mut q = String::from("INSERT INTO events (execution_id, seq, time_ms, type, body) VALUES ");
    for i in 0..rows {
        let p = 2 + i * 4;
        if i > 0 {
            q.push_str(", ");
        }
        q.push_str(&format!("($1, ${}, ${}, ${}, ${})", p, p + 1, p + 2, p + 3));
    }
    q.push_str(" ON CONFLICT (execution_id, seq) DO NOTHING RETURNING seq");
    q
}

/// [`Db::append_events`].
pub(super) async fn append(db: &Db, execution_id: i64, events: &[Event]) -> DbResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    // Serialized before the transaction, which holds SQLite's write lock.
    let encoded = events.iter().map(encode).collect::<DbResult<Vec<_>>>()?;
    let mut tx = db.begin_write().await?;
    // The seqs this call stored; only their events change the projections, so a retried
    // batch cannot move an action back to an older state.
    let mut fresh: HashSet<i64> = HashSet::new();
    for chunk in encoded.chunks(EVENTS_PER_INSERT) {
        let mut q = sqlx::query(AssertSqlSafe(insert_sql(chunk.len()))).bind(execution_id);
        for e in chunk {
            q = q
                .bind(e.seq)
                .bind(e.time_ms)
                .bind(e.ty.as_str())
                .bind(e.body.as_str());
        }
        for row in q.fetch_all(&mut *tx).await? {
            fresh.insert(row.try_get::<i64, _>(0)?);
        }
    }
    for (event, e) in events.iter().zip(&encoded) {
        // `remove`: of two events with one seq in the batch, only the first was stored.
        if fresh.remove(&e.seq) {
            project(&mut tx, execution_id, event).await?;
        }
    }
    let max_seq = encoded.iter().map(|e| e.seq).max().unwrap_or(0);
    sqlx::query(
        "UPDATE executions SET last_seq = CASE WHEN last_seq < $2 THEN $2 ELSE last_seq END \
         WHERE id = $1",
    )
    .bind(execution_id)
    .bind(max_seq)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Applies one newly stored event to the projections.
async fn project(conn: &mut AnyConnection, execution_id: i64, event: &Event) -> DbResult<()> {
    let time = event.time_ms;
    match &event.body {
        EventBody::ExecutionStarted { .. } => {
            sqlx::query(
                "UPDATE executions SET status = $2, started_ms = COALESCE(started_ms, $3) \
                 WHERE id = $1",
            )
            .bind(execution_id)
            .bind(Status::Running.as_str())
            .bind(time)
            .execute(&mut *conn)
            .await?;
        }
        EventBody::ExecutionFinished { status, .. } => {
            sqlx::query("UPDATE executions SET status = $2, finished_ms = $3 WHERE id = $1")
                .bind(execution_id)
                .bind(status.as_str())
                .bind(time)
                .execute(&mut *conn)
                .await?;
        }
        EventBody::ActionStarted {
            stage,
            action,
            attempt,
            kind,
            executor,
        } => {
            // A new attempt replaces the last one's results; `id` (the first start's) keeps
            // the action's place in the list.
            sqlx::query(
                "INSERT INTO actions (execution_id, stage, action, kind, status, attempt, \
                 executor, started_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (execution_id, stage, action) DO UPDATE SET kind = excluded.kind, \
                 status = excluded.status, attempt = excluded.attempt, \
                 executor = excluded.executor, started_ms = excluded.started_ms, \
                 finished_ms = NULL, reason = NULL, log_digest = NULL, outputs = '{}', \
                 artifacts = '[]', reports = '[]'",
            )
            .bind(execution_id)
            .bind(stage)
            .bind(action)
            .bind(kind)
            .bind(Status::Running.as_str())
            .bind(i64::from(*attempt))
            .bind(executor.as_deref())
            .bind(time)
            .execute(&mut *conn)
            .await?;
        }
        EventBody::ApprovalWaiting { stage, action, .. } => {
            set_action_status(conn, execution_id, stage, action, Status::Waiting).await?;
            waiting_or_running(conn, execution_id).await?;
        }
        EventBody::ApprovalDecided { stage, action, .. } => {
            // The decision itself is recorded by decide_approval; the action runs on.
            set_action_status(conn, execution_id, stage, action, Status::Running).await?;
            waiting_or_running(conn, execution_id).await?;
        }
        EventBody::ActionFinished {
            stage,
            action,
            attempt,
            status,
            reason,
            outputs,
            artifacts,
            reports,
            log,
            ..
        } => {
            // An upsert, so a finish whose start was never stored still shows (kind unknown).
            sqlx::query(
                "INSERT INTO actions (execution_id, stage, action, kind, status, attempt, \
                 finished_ms, reason, log_digest, outputs, artifacts, reports) \
                 VALUES ($1, $2, $3, '', $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (execution_id, stage, action) DO UPDATE SET \
                 status = excluded.status, attempt = excluded.attempt, \
                 finished_ms = excluded.finished_ms, reason = excluded.reason, \
                 log_digest = excluded.log_digest, outputs = excluded.outputs, \
                 artifacts = excluded.artifacts, reports = excluded.reports",
            )
            .bind(execution_id)
            .bind(stage)
            .bind(action)
            .bind(status.as_str())
            .bind(i64::from(*attempt))
            .bind(time)
            .bind(reason.as_deref())
            .bind(log.as_ref().map(|d| d.as_str()))
            .bind(to_json(outputs, "outputs")?)
            .bind(to_json(artifacts, "artifacts")?)
            .bind(to_json(reports, "reports")?)
            .execute(&mut *conn)
            .await?;
            let digests = log.iter().chain(artifacts.iter().map(|a| &a.digest));
            for digest in digests {
                sqlx::query(
                    "INSERT INTO blob_refs (execution_id, digest) VALUES ($1, $2) \
                     ON CONFLICT (execution_id, digest) DO NOTHING",
                )
                .bind(execution_id)
                .bind(digest.as_str())
                .execute(&mut *conn)
                .await?;
            }
            // An approval that timed out or was cancelled no longer waits.
            waiting_or_running(conn, execution_id).await?;
        }
        EventBody::ExecutionResumed { .. } => {
            // Running again: the old finish and its reason no longer apply.
            sqlx::query(
                "UPDATE executions SET status = $2, finished_ms = NULL, reason = NULL \
                 WHERE id = $1",
            )
            .bind(execution_id)
            .bind(Status::Running.as_str())
            .execute(&mut *conn)
            .await?;
        }
        // Stage, phase and log events (and types added later) are stored only.
        _ => {}
    }
    Ok(())
}

/// An unfinished execution is `waiting` while one of its actions waits for a person, else
/// `running`.
async fn waiting_or_running(conn: &mut AnyConnection, execution_id: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE executions SET status = CASE WHEN EXISTS (SELECT 1 FROM actions \
         WHERE execution_id = $1 AND status = 'waiting') THEN 'waiting' ELSE 'running' END \
         WHERE id = $1 AND status IN ('running', 'waiting')",
    )
    .bind(execution_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn set_action_status(
    conn: &mut AnyConnection,
    execution_id: i64,
    stage: &str,
    action: &str,
    status: Status,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE actions SET status = $4 WHERE execution_id = $1 AND stage = $2 AND action = $3",
    )
    .bind(execution_id)
    .bind(stage)
    .bind(action)
    .bind(status.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
