-- Agents and their jobs (docs/agents.md), SQLite flavour. migrations/postgres/0005_agents.sql
-- is the same schema in the other's words; change both together.
--
-- agents                     registered agents: labels and executors are JSON lists of
--                            strings; token_hash is the SHA-256 (hex) of the agent's token,
--                            which is shown to the agent once and stored nowhere else.
-- agent_registration_tokens  SHA-256 (hex) of each registration token `agent token create`
--                            issued; any number of agents may register with one.
-- agent_jobs                 build actions queued for agents, one row per attempt: spec is the
--                            job protocol's JobSpec as JSON, labels the required labels (JSON);
--                            state queued -> leased -> done. A lease is lease_id (random, new
--                            per lease) until lease_expires_ms, renewed by heartbeats.
--                            acked_chunk is the last event chunk stored and acked_seq the
--                            execution seq its last event got; result is the JobResult (JSON)
--                            once done. cancel_requested is 0/1. No foreign key to executions:
--                            rows are transient and pruned once done.

CREATE TABLE agents (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT   NOT NULL,
    labels          TEXT   NOT NULL,
    executors       TEXT   NOT NULL,
    concurrency     BIGINT NOT NULL,
    agent_version   TEXT   NOT NULL,
    token_hash      TEXT   NOT NULL UNIQUE,
    created_ms      BIGINT NOT NULL,
    last_contact_ms BIGINT NOT NULL
);

CREATE TABLE agent_registration_tokens (
    token_hash TEXT   NOT NULL PRIMARY KEY,
    created_ms BIGINT NOT NULL
);

CREATE TABLE agent_jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id     BIGINT NOT NULL,
    stage            TEXT   NOT NULL,
    action           TEXT   NOT NULL,
    attempt          BIGINT NOT NULL,
    labels           TEXT   NOT NULL,
    executor         TEXT   NOT NULL,
    spec             TEXT   NOT NULL,
    state            TEXT   NOT NULL,
    agent_id         BIGINT,
    lease_id         TEXT,
    lease_expires_ms BIGINT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    acked_chunk      BIGINT NOT NULL DEFAULT 0,
    acked_seq        BIGINT NOT NULL DEFAULT 0,
    result           TEXT,
    created_ms       BIGINT NOT NULL,
    leased_ms        BIGINT,
    finished_ms      BIGINT,
    UNIQUE (execution_id, stage, action, attempt)
);

CREATE INDEX agent_jobs_state ON agent_jobs (state);
