//! What the sources remember between polls, pushes and restarts: each project's polling
//! settings, the refs last seen in its repository, and which scheduled minute of each
//! pipeline's cron lines fired last (so a restart never fires one twice).

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::{Db, DbResult};

/// A project's source settings; the default when none were stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceSettings {
    /// `None`: the server's default; `Some(0)`: polling off.
    pub poll_interval_ms: Option<i64>,
    /// When the refs in `source_refs` were last recorded; `None`: never (the first poll only
    /// records them).
    pub refs_seen_ms: Option<i64>,
}

/// A ref as it is now: `sha` is `None` when it was deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefUpdate {
    pub git_ref: String,
    pub sha: Option<String>,
}

fn settings_row(row: &sqlx::any::AnyRow) -> DbResult<SourceSettings> {
    Ok(SourceSettings {
        poll_interval_ms: row.try_get("poll_interval_ms")?,
        refs_seen_ms: row.try_get("refs_seen_ms")?,
    })
}

impl Db {
    pub async fn source_settings(&self, project_id: i64) -> DbResult<SourceSettings> {
        let row = sqlx::query(
            "SELECT poll_interval_ms, refs_seen_ms FROM project_sources WHERE project_id = $1",
        )
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => settings_row(&r)?,
            None => SourceSettings::default(),
        })
    }

    /// Every stored project's settings, by project id (projects without a row are absent).
    pub async fn all_source_settings(&self) -> DbResult<HashMap<i64, SourceSettings>> {
        let rows =
            sqlx::query("SELECT project_id, poll_interval_ms, refs_seen_ms FROM project_sources")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>("project_id")?, settings_row(r)?)))
            .collect()
    }

    /// `None` goes back to the server's default; `Some(0)` turns polling off.
    pub async fn set_poll_interval(&self, project_id: i64, ms: Option<i64>) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO project_sources (project_id, poll_interval_ms) VALUES ($1, $2) \
             ON CONFLICT (project_id) DO UPDATE SET poll_interval_ms = excluded.poll_interval_ms",
        )
        .bind(project_id)
        .bind(ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The refs last recorded, full name -> object id.
    pub async fn source_refs(&self, project_id: i64) -> DbResult<BTreeMap<String, String>> {
        let rows = sqlx::query("SELECT ref, sha FROM source_refs WHERE project_id = $1")
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Records moved, new and deleted refs and when they were seen, in one transaction.
    pub async fn record_source_refs(
        &self,
        project_id: i64,
        updates: &[RefUpdate],
        seen_ms: i64,
    ) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        for u in updates {
            match &u.sha {
                Some(sha) => {
                    sqlx::query(
                        "INSERT INTO source_refs (project_id, ref, sha) VALUES ($1, $2, $3) \
                         ON CONFLICT (project_id, ref) DO UPDATE SET sha = excluded.sha",
                    )
                    .bind(project_id)
                    .bind(&u.git_ref)
                    .bind(sha)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM source_refs WHERE project_id = $1 AND ref = $2")
                        .bind(project_id)
                        .bind(&u.git_ref)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        sqlx::query(
            "INSERT INTO project_sources (project_id, refs_seen_ms) VALUES ($1, $2) \
             ON CONFLICT (project_id) DO UPDATE SET refs_seen_ms = excluded.refs_seen_ms",
        )
        .bind(project_id)
        .bind(seen_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The scheduled minute (Unix ms) that fired last for this pipeline's cron line.
    pub async fn schedule_fired(
        &self,
        project_id: i64,
        pipeline: &str,
        cron: &str,
    ) -> DbResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT last_fired_ms FROM schedule_state \
             WHERE project_id = $1 AND pipeline = $2 AND cron = $3",
        )
        .bind(project_id)
        .bind(pipeline)
        .bind(cron)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Claims the scheduled minute `minute_ms`: true only for the first claim of a minute later
    /// than the last one fired, so two loops (or a restart) never fire the same minute twice.
    pub async fn claim_schedule(
        &self,
        project_id: i64,
        pipeline: &str,
        cron: &str,
        minute_ms: i64,
    ) -> DbResult<bool> {
        let done = sqlx::query(
            "INSERT INTO schedule_state (project_id, pipeline, cron, last_fired_ms) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (project_id, pipeline, cron) DO UPDATE \
             SET last_fired_ms = excluded.last_fired_ms \
             WHERE schedule_state.last_fired_ms < excluded.last_fired_ms",
        )
        .bind(project_id)
        .bind(pipeline)
        .bind(cron)
        .bind(minute_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
#[path = "sources_tests.rs"]
mod tests;
