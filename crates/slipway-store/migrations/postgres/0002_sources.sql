-- Sources and triggers (docs/sources.md), PostgreSQL flavour. migrations/sqlite/0002_sources.sql
-- is the same schema in SQLite's words; change both together.
--
-- project_sources  one row per project that has settings or was polled: poll_interval_ms
--                  (NULL: the server's `sources.poll_interval`; 0: polling off) and
--                  refs_seen_ms, when the refs in source_refs were last recorded (NULL: never,
--                  so the first poll records refs without starting anything).
-- source_refs      the last seen commit (or tag object) of each branch and tag, by full ref
--                  name; moved refs are what a poll or a push hands to the triggers.
-- schedule_state   per pipeline and cron line, the scheduled minute (Unix ms) that fired last,
--                  so a restarted server does not fire it twice.

CREATE TABLE project_sources (
    project_id       BIGINT NOT NULL PRIMARY KEY REFERENCES projects (id),
    poll_interval_ms BIGINT,
    refs_seen_ms     BIGINT
);

CREATE TABLE source_refs (
    project_id BIGINT NOT NULL REFERENCES projects (id),
    ref        TEXT   NOT NULL,
    sha        TEXT   NOT NULL,
    PRIMARY KEY (project_id, ref)
);

CREATE TABLE schedule_state (
    project_id    BIGINT NOT NULL REFERENCES projects (id),
    pipeline      TEXT   NOT NULL,
    cron          TEXT   NOT NULL,
    last_fired_ms BIGINT NOT NULL,
    PRIMARY KEY (project_id, pipeline, cron)
);
