-- The OCI registry's metadata, SQLite flavour. migrations/postgres/0004_registry.sql is the
-- same schema in PostgreSQL's words; change both together (the tests run every query on both).
-- Bytes (layers, configs, manifests) live in the blob store, content-addressed; these tables
-- say which repository holds what.
--
-- registry_repos      one per repository `PROJECT/NAME...`; immutable_tags and anonymous_pull
--                     are 0/1 flags; lifecycle is the ECR lifecycle policy as JSON text.
-- registry_blobs      blobs a repository holds (uploaded or mounted into it). used_ms is
--                     the last time a push or mount touched the link: garbage collection
--                     keeps links used after its start.
-- registry_manifests  manifests a repository holds; subject and artifact_type feed the
--                     referrers API; annotations is a JSON object or NULL.
-- registry_refs       what a manifest refers to (kind `blob`: config and layers; `manifest`:
--                     an index's children), so GC and deletes know what is still needed.
-- registry_tags       tag -> manifest digest.

CREATE TABLE registry_repos (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id     BIGINT   NOT NULL REFERENCES projects (id),
    name           TEXT     NOT NULL UNIQUE,
    immutable_tags SMALLINT NOT NULL DEFAULT 0,
    anonymous_pull SMALLINT NOT NULL DEFAULT 0,
    lifecycle      TEXT,
    created_ms     BIGINT   NOT NULL
);

CREATE TABLE registry_blobs (
    repo_id    BIGINT NOT NULL REFERENCES registry_repos (id),
    digest     TEXT   NOT NULL,
    size       BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    used_ms    BIGINT NOT NULL,
    PRIMARY KEY (repo_id, digest)
);

CREATE INDEX registry_blobs_digest ON registry_blobs (digest);

CREATE TABLE registry_manifests (
    repo_id       BIGINT NOT NULL REFERENCES registry_repos (id),
    digest        TEXT   NOT NULL,
    media_type    TEXT   NOT NULL,
    size          BIGINT NOT NULL,
    artifact_type TEXT,
    subject       TEXT,
    annotations   TEXT,
    pushed_ms     BIGINT NOT NULL,
    PRIMARY KEY (repo_id, digest)
);

CREATE INDEX registry_manifests_subject ON registry_manifests (repo_id, subject);

CREATE TABLE registry_refs (
    repo_id  BIGINT NOT NULL REFERENCES registry_repos (id),
    manifest TEXT   NOT NULL,
    child    TEXT   NOT NULL,
    kind     TEXT   NOT NULL,
    PRIMARY KEY (repo_id, manifest, child)
);

CREATE INDEX registry_refs_child ON registry_refs (repo_id, child);

CREATE TABLE registry_tags (
    repo_id    BIGINT NOT NULL REFERENCES registry_repos (id),
    tag        TEXT   NOT NULL,
    digest     TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (repo_id, tag)
);

CREATE INDEX registry_tags_digest ON registry_tags (repo_id, digest);
