//! Agents, their registration tokens and the jobs queued for them (docs/agents.md). Tokens
//! are stored only as SHA-256 hashes; a job's lease is claimed and renewed by
//! compare-and-set, so two agents never hold one job and a lost lease stays lost.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbResult};

/// A registered agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRow {
    pub id: i64,
    pub name: String,
    pub labels: Vec<String>,
    pub executors: Vec<String>,
    pub concurrency: u32,
    pub agent_version: String,
    pub created_ms: i64,
    pub last_contact_ms: i64,
}

/// What an agent registers with.
#[derive(Clone, Debug, Default)]
pub struct NewAgent {
    pub name: String,
    pub labels: Vec<String>,
    pub executors: Vec<String>,
    pub concurrency: u32,
    pub agent_version: String,
    pub token_hash: String,
    pub now_ms: i64,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Leased,
    Done,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Leased => "leased",
            JobState::Done => "done",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobState::Queued,
            "leased" => JobState::Leased,
            "done" => JobState::Done,
            _ => return None,
        })
    }
}

/// One attempt of a build action queued for agents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    pub id: i64,
    pub execution_id: i64,
    pub stage: String,
    pub action: String,
    pub attempt: u32,
    pub labels: Vec<String>,
    pub executor: String,
    /// The job protocol's JobSpec, as JSON.
    pub spec: String,
    pub state: JobState,
    pub agent_id: Option<i64>,
    pub lease_id: Option<String>,
    pub lease_expires_ms: Option<i64>,
    pub cancel_requested: bool,
    pub acked_chunk: u64,
    pub acked_seq: u64,
    /// The job protocol's JobResult, as JSON, once done.
    pub result: Option<String>,
    pub created_ms: i64,
}

/// A job to queue.
#[derive(Clone, Debug, Default)]
pub struct NewJob {
    pub execution_id: i64,
    pub stage: String,
    pub action: String,
    pub attempt: u32,
    pub labels: Vec<String>,
    pub executor: String,
    pub spec: String,
    pub now_ms: i64,
}

/// A leased job, for `agent ls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeasedJob {
    pub agent_id: i64,
    pub project: String,
    pub number: u64,
    pub stage: String,
    pub action: String,
    pub attempt: u32,
}

const AGENT_COLUMNS: &str = "id, name, labels, executors, concurrency, agent_version, created_ms, \
     last_contact_ms";
const JOB_COLUMNS: &str = "id, execution_id, stage, action, attempt, labels, executor, spec, \
     state, agent_id, lease_id, lease_expires_ms, cancel_requested, acked_chunk, acked_seq, \
     result, created_ms";

fn list(row: &AnyRow, col: &str) -> DbResult<Vec<String>> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text)
        .map_err(|e| super::DbError::Corrupt(format!("{col} is not a JSON list: {e}")))
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn agent_row(row: &AnyRow) -> DbResult<AgentRow> {
    Ok(AgentRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        labels: list(row, "labels")?,
        executors: list(row, "executors")?,
        concurrency: row.try_get::<i64, _>("concurrency")?.max(0) as u32,
        agent_version: row.try_get("agent_version")?,
        created_ms: row.try_get("created_ms")?,
        last_contact_ms: row.try_get("last_contact_ms")?,
    })
}

fn job_row(row: &AnyRow) -> DbResult<JobRow> {
    let state: String = row.try_get("state")?;
    Ok(JobRow {
        id: row.try_get("id")?,
        execution_id: row.try_get("execution_id")?,
        stage: row.try_get("stage")?,
        action: row.try_get("action")?,
        attempt: row.try_get::<i64, _>("attempt")?.max(0) as u32,
        labels: list(row, "labels")?,
        executor: row.try_get("executor")?,
        spec: row.try_get("spec")?,
        state: JobState::parse(&state)
            .ok_or_else(|| super::DbError::Corrupt(format!("job state `{state}`")))?,
        agent_id: row.try_get("agent_id")?,
        lease_id: row.try_get("lease_id")?,
        lease_expires_ms: row.try_get("lease_expires_ms")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        acked_chunk: row.try_get::<i64, _>("acked_chunk")?.max(0) as u64,
        acked_seq: row.try_get::<i64, _>("acked_seq")?.max(0) as u64,
        result: row.try_get("result")?,
        created_ms: row.try_get("created_ms")?,
    })
}

impl Db {
    pub async fn create_registration_token(&self, token_hash: &str, now_ms: i64) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO agent_registration_tokens (token_hash, created_ms) VALUES ($1, $2)",
        )
        .bind(token_hash)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The stored hash equal to `token_hash`, if any (the caller compares in constant time).
    pub async fn registration_token(&self, token_hash: &str) -> DbResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT token_hash FROM agent_registration_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn register_agent(&self, a: &NewAgent) -> DbResult<AgentRow> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO agents (name, labels, executors, concurrency, agent_version, token_hash, \
             created_ms, last_contact_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(&a.name)
        .bind(json_list(&a.labels))
        .bind(json_list(&a.executors))
        .bind(a.concurrency as i64)
        .bind(&a.agent_version)
        .bind(&a.token_hash)
        .bind(a.now_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(AgentRow {
            id,
            name: a.name.clone(),
            labels: a.labels.clone(),
            executors: a.executors.clone(),
            concurrency: a.concurrency,
            agent_version: a.agent_version.clone(),
            created_ms: a.now_ms,
            last_contact_ms: a.now_ms,
        })
    }

    /// The agent whose token hashes to `token_hash`, with that stored hash.
    pub async fn agent_by_token(&self, token_hash: &str) -> DbResult<Option<(AgentRow, String)>> {
        let q = format!("SELECT {AGENT_COLUMNS}, token_hash FROM agents WHERE token_hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Some((agent_row(&r)?, r.try_get("token_hash")?))),
            None => Ok(None),
        }
    }

    pub async fn touch_agent(&self, id: i64, now_ms: i64) -> DbResult<()> {
        sqlx::query("UPDATE agents SET last_contact_ms = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn agents(&self) -> DbResult<Vec<AgentRow>> {
        let q = format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(agent_row).collect()
    }

    /// Every job some agent holds a lease on.
    pub async fn leased_jobs(&self) -> DbResult<Vec<LeasedJob>> {
        let rows = sqlx::query(
            "SELECT j.agent_id, p.name, e.number, j.stage, j.action, j.attempt \
             FROM agent_jobs j JOIN executions e ON e.id = j.execution_id \
             JOIN projects p ON p.id = e.project_id WHERE j.state = 'leased' ORDER BY j.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LeasedJob {
                    agent_id: r.try_get::<Option<i64>, _>(0)?.unwrap_or(0),
                    project: r.try_get(1)?,
                    number: r.try_get::<i64, _>(2)?.max(0) as u64,
                    stage: r.try_get(3)?,
                    action: r.try_get(4)?,
                    attempt: r.try_get::<i64, _>(5)?.max(0) as u32,
                })
            })
            .collect()
    }

    /// Queues a job; when one for this attempt exists already (a server that restarted
    /// re-attaches to it), that one is returned.
    pub async fn queue_job(&self, j: &NewJob) -> DbResult<JobRow> {
        sqlx::query(
            "INSERT INTO agent_jobs (execution_id, stage, action, attempt, labels, executor, \
             spec, state, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8) \
             ON CONFLICT (execution_id, stage, action, attempt) DO NOTHING",
        )
        .bind(j.execution_id)
        .bind(&j.stage)
        .bind(&j.action)
        .bind(j.attempt as i64)
        .bind(json_list(&j.labels))
        .bind(&j.executor)
        .bind(&j.spec)
        .bind(j.now_ms)
        .execute(&self.pool)
        .await?;
        self.job_for(j.execution_id, &j.stage, &j.action, j.attempt)
            .await?
            .ok_or_else(|| super::DbError::Corrupt("a queued job vanished".into()))
    }

    pub async fn job_for(
        &self,
        execution_id: i64,
        stage: &str,
        action: &str,
        attempt: u32,
    ) -> DbResult<Option<JobRow>> {
        let q = format!(
            "SELECT {JOB_COLUMNS} FROM agent_jobs WHERE execution_id = $1 AND stage = $2 \
             AND action = $3 AND attempt = $4"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(execution_id)
            .bind(stage)
            .bind(action)
            .bind(attempt as i64)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_row).transpose()
    }

    pub async fn job(&self, id: i64) -> DbResult<Option<JobRow>> {
        let q = format!("SELECT {JOB_COLUMNS} FROM agent_jobs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_row).transpose()
    }

    /// Queued jobs, oldest first.
    pub async fn queued_jobs(&self) -> DbResult<Vec<JobRow>> {
        let q = format!("SELECT {JOB_COLUMNS} FROM agent_jobs WHERE state = 'queued' ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_row).collect()
    }

    /// Jobs not done (queued or leased) of an execution's action: recovery re-attaches to
    /// them instead of failing the action.
    pub async fn open_jobs(&self, execution_id: i64) -> DbResult<Vec<JobRow>> {
        let q = format!(
            "SELECT {JOB_COLUMNS} FROM agent_jobs WHERE execution_id = $1 AND state <> 'done' \
             ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(execution_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_row).collect()
    }

    /// Leases a queued job to an agent; `false` when another agent was first.
    pub async fn claim_job(
        &self,
        id: i64,
        agent_id: i64,
        lease_id: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE agent_jobs SET state = 'leased', agent_id = $2, lease_id = $3, \
             lease_expires_ms = $4, leased_ms = $5 WHERE id = $1 AND state = 'queued'",
        )
        .bind(id)
        .bind(agent_id)
        .bind(lease_id)
        .bind(expires_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Renews a lease that is still held; `None` when it is not (expired, done, another's).
    /// `Some(cancel_requested)` otherwise.
    pub async fn renew_lease(
        &self,
        id: i64,
        lease_id: &str,
        expires_ms: i64,
    ) -> DbResult<Option<bool>> {
        let done = sqlx::query(
            "UPDATE agent_jobs SET lease_expires_ms = $3 \
             WHERE id = $1 AND lease_id = $2 AND state = 'leased'",
        )
        .bind(id)
        .bind(lease_id)
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        Ok(self.job(id).await?.map(|j| j.cancel_requested))
    }

    /// Gives every held lease until `expires_ms` (at server start: agents get a full lease to
    /// report in before they count as lost).
    pub async fn extend_leases(&self, expires_ms: i64) -> DbResult<u64> {
        let done = sqlx::query(
            "UPDATE agent_jobs SET lease_expires_ms = $1 \
             WHERE state = 'leased' AND lease_expires_ms < $1",
        )
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn request_job_cancel(&self, id: i64) -> DbResult<()> {
        sqlx::query("UPDATE agent_jobs SET cancel_requested = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that event chunks up to `chunk` are stored, the last event as `seq`; only
    /// while `lease_id` holds the job and only forward.
    pub async fn ack_chunk(&self, id: i64, lease_id: &str, chunk: u64, seq: u64) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE agent_jobs SET acked_chunk = $3, acked_seq = $4 \
             WHERE id = $1 AND lease_id = $2 AND state = 'leased' AND acked_chunk < $3",
        )
        .bind(id)
        .bind(lease_id)
        .bind(chunk as i64)
        .bind(seq as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a job with its result (JSON). With `lease_id`, only while that lease holds it;
    /// without, whatever holds it (a lost lease, a cancel while queued). `false`: it had
    /// ended already, or the lease was not the job's.
    pub async fn finish_job(
        &self,
        id: i64,
        lease_id: Option<&str>,
        result: &str,
        now_ms: i64,
    ) -> DbResult<bool> {
        let done = match lease_id {
            Some(l) => {
                sqlx::query(
                    "UPDATE agent_jobs SET state = 'done', result = $3, finished_ms = $4 \
                     WHERE id = $1 AND lease_id = $2 AND state = 'leased'",
                )
                .bind(id)
                .bind(l)
                .bind(result)
                .bind(now_ms)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE agent_jobs SET state = 'done', result = $2, finished_ms = $3 \
                     WHERE id = $1 AND state <> 'done'",
                )
                .bind(id)
                .bind(result)
                .bind(now_ms)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    /// Leased jobs whose lease ran out before `now_ms`.
    pub async fn expired_leases(&self, now_ms: i64) -> DbResult<Vec<JobRow>> {
        let q = format!(
            "SELECT {JOB_COLUMNS} FROM agent_jobs WHERE state = 'leased' AND lease_expires_ms < $1"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_row).collect()
    }

    /// Ends a lease that ran out (compare-and-set on the expiry, so a heartbeat that just
    /// renewed it wins).
    pub async fn expire_lease(&self, id: i64, now_ms: i64, result: &str) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE agent_jobs SET state = 'done', result = $3, finished_ms = $2 \
             WHERE id = $1 AND state = 'leased' AND lease_expires_ms < $2",
        )
        .bind(id)
        .bind(now_ms)
        .bind(result)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes jobs that ended before `before_ms`.
    pub async fn prune_jobs(&self, before_ms: i64) -> DbResult<u64> {
        let done = sqlx::query("DELETE FROM agent_jobs WHERE state = 'done' AND finished_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
#[path = "agents_tests.rs"]
mod tests;
