-- The state database, SQLite flavour. migrations/postgres/0001_state.sql is the same schema in
-- PostgreSQL's words; change both together (the tests run every query against both).
--
-- Rules that keep one code path over sqlx's Any driver: ids and times are BIGINT (times in
-- Unix milliseconds), statuses, digests and JSON are TEXT, there are no BOOLEAN columns.
-- Ids are AUTOINCREMENT here (never reused after a delete, like PostgreSQL's identity
-- columns), so an id a client saw never names a different execution later.
--
-- projects    one per repository; last_number is the number its newest execution got.
-- executions  one run of a pipeline, `project#number`; variables is a JSON object of strings;
--             last_seq is the highest event seq stored for it (0 before any).
-- events      the execution's event stream; body is the whole Event as JSON, type its `type`.
-- actions     projection of the events: each action's latest attempt. id orders the rows by
--             when the action first started. outputs is a JSON object, artifacts a JSON list
--             of ArtifactRef, reports a JSON list of ReportSummary.
-- approvals   approval requests and their decisions (request_approval / decide_approval).
-- blob_refs   every blob digest an execution's events refer to (every attempt's log and
--             artifacts), so garbage collection keeps them while the execution exists.
--
-- Children are deleted explicitly by Db::delete_execution, before the execution.

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    git         TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL,
    last_number BIGINT  NOT NULL DEFAULT 0
);

CREATE TABLE executions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  BIGINT  NOT NULL REFERENCES projects (id),
    number      BIGINT  NOT NULL,
    pipeline    TEXT    NOT NULL,
    revision    TEXT,
    source_ref  TEXT,
    "trigger"   TEXT    NOT NULL,
    variables   TEXT    NOT NULL DEFAULT '{}',
    status      TEXT    NOT NULL,
    reason      TEXT,
    created_ms  BIGINT  NOT NULL,
    started_ms  BIGINT,
    finished_ms BIGINT,
    rerun_of    BIGINT,
    last_seq    BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (project_id, number)
);

CREATE INDEX executions_status ON executions (status);

CREATE TABLE events (
    execution_id BIGINT NOT NULL REFERENCES executions (id),
    seq          BIGINT NOT NULL,
    time_ms      BIGINT NOT NULL,
    type         TEXT   NOT NULL,
    body         TEXT   NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE TABLE actions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id BIGINT NOT NULL REFERENCES executions (id),
    stage        TEXT   NOT NULL,
    action       TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    status       TEXT   NOT NULL,
    attempt      BIGINT NOT NULL,
    executor     TEXT,
    started_ms   BIGINT,
    finished_ms  BIGINT,
    reason       TEXT,
    log_digest   TEXT,
    outputs      TEXT   NOT NULL DEFAULT '{}',
    artifacts    TEXT   NOT NULL DEFAULT '[]',
    reports      TEXT   NOT NULL DEFAULT '[]',
    UNIQUE (execution_id, stage, action)
);

CREATE TABLE approvals (
    execution_id BIGINT NOT NULL REFERENCES executions (id),
    stage        TEXT   NOT NULL,
    action       TEXT   NOT NULL,
    message      TEXT,
    status       TEXT   NOT NULL,
    requested_ms BIGINT NOT NULL,
    deadline_ms  BIGINT NOT NULL,
    decided_by   TEXT,
    decided_ms   BIGINT,
    comment      TEXT,
    PRIMARY KEY (execution_id, stage, action)
);

CREATE TABLE blob_refs (
    execution_id BIGINT NOT NULL REFERENCES executions (id),
    digest       TEXT   NOT NULL,
    PRIMARY KEY (execution_id, digest)
);
