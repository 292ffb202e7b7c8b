-- Forge webhooks, commit statuses and outgoing notifications, SQLite flavour.
-- migrations/postgres/0003_hooks.sql is the same schema in PostgreSQL's words; change both
-- together (the tests run every query against both).
--
-- project_hooks           one row per project: the secret forges sign webhooks with, where to
--                         report commit statuses (forge kind, API base URL, repository, token)
--                         and the URLs to notify (a JSON list of strings). The token is stored
--                         as given until secrets are encrypted at rest (the security issue).
-- deliveries              every inbound webhook request: which forge, its delivery id (NULL when
--                         refused or when processing failed, so a redelivery is taken up again),
--                         the event, the HTTP status answered, what it did (outcome) and the
--                         executions it started (JSON list of `project#N`). UNIQUE makes a
--                         replayed delivery id collide.
-- notification_deliveries every outgoing request: a commit status (kind `status`) or a
--                         notification webhook (kind `webhook`), for one execution and one
--                         execution status (event); state pending / delivered / failed /
--                         superseded, with its attempts and the last answer or error. body is
--                         the JSON sent.

CREATE TABLE project_hooks (
    project_id     BIGINT NOT NULL PRIMARY KEY REFERENCES projects (id),
    webhook_secret TEXT   NOT NULL,
    forge          TEXT,
    forge_api      TEXT,
    forge_repo     TEXT,
    forge_token    TEXT,
    notify_urls    TEXT   NOT NULL DEFAULT '[]'
);

CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  BIGINT NOT NULL REFERENCES projects (id),
    source      TEXT   NOT NULL,
    delivery_id TEXT,
    event       TEXT,
    received_ms BIGINT NOT NULL,
    status      BIGINT NOT NULL,
    outcome     TEXT   NOT NULL,
    started     TEXT   NOT NULL DEFAULT '[]',
    UNIQUE (project_id, source, delivery_id)
);

CREATE INDEX deliveries_project ON deliveries (project_id, id);

CREATE TABLE notification_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id   BIGINT NOT NULL REFERENCES projects (id),
    execution_id BIGINT NOT NULL,
    execution    TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    target       TEXT   NOT NULL,
    event        TEXT   NOT NULL,
    body         TEXT   NOT NULL,
    state        TEXT   NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_status  BIGINT,
    last_error   TEXT,
    created_ms   BIGINT NOT NULL,
    done_ms      BIGINT
);

CREATE INDEX notification_deliveries_project ON notification_deliveries (project_id, id);
CREATE INDEX notification_deliveries_execution ON notification_deliveries (execution_id, kind);
