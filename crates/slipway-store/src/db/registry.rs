//! The OCI registry's metadata: repositories, the blobs and manifests each holds, tags,
//! referrers (a manifest's `subject`) and what each manifest refers to (for garbage collection).
//! The bytes themselves live in the blob store; the tables are in migrations/*/0004_registry.sql.

use std::collections::BTreeSet;

use slipway_model::Digest;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, DbResult};

/// One repository (`PROJECT/NAME`).
#[derive(Clone, Debug, PartialEq)]
pub struct RepoRow {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub immutable_tags: bool,
    pub anonymous_pull: bool,
    /// The ECR lifecycle policy, as JSON text.
    pub lifecycle: Option<String>,
    pub created_ms: i64,
}

/// A repository with counts, for listings.
#[derive(Clone, Debug, PartialEq)]
pub struct RepoSummary {
    pub repo: RepoRow,
    pub manifests: u64,
    pub tags: u64,
    /// The newest manifest's push time.
    pub pushed_ms: Option<i64>,
}

/// A stored manifest's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestRow {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    /// A JSON object, as pushed.
    pub annotations: Option<String>,
    pub pushed_ms: i64,
}

/// What a manifest refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    /// A config or a layer.
    Blob,
    /// An index's child manifest.
    Manifest,
}

impl RefKind {
    fn as_str(self) -> &'static str {
        match self {
            RefKind::Blob => "blob",
            RefKind::Manifest => "manifest",
        }
    }
}

/// A manifest to store, with what it refers to and the tag it is pushed under.
#[derive(Clone, Debug)]
pub struct NewManifest {
    pub row: ManifestRow,
    pub refs: Vec<(Digest, RefKind)>,
    pub tag: Option<String>,
}

/// Why a manifest could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum PutManifestError {
    #[error("tag `{tag}` already names {existing} and the repository's tags are immutable")]
    TagImmutable { tag: String, existing: Digest },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for PutManifestError {
    fn from(e: sqlx::Error) -> Self {
        PutManifestError::Db(e.into())
    }
}

/// An image for lifecycle policies: a top-level manifest (not an index's child, not a
/// referrer) with its tags.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRow {
    pub digest: Digest,
    pub pushed_ms: i64,
    pub tags: Vec<String>,
}

const REPO_COLUMNS: &str =
    "id, project_id, name, immutable_tags, anonymous_pull, lifecycle, created_ms";
const MANIFEST_COLUMNS: &str =
    "digest, media_type, size, artifact_type, subject, annotations, pushed_ms";

fn flag(row: &AnyRow, col: &str) -> DbResult<bool> {
    // SMALLINT decodes as i16 on PostgreSQL, as i64 on SQLite.
    if let Ok(v) = row.try_get::<i64, _>(col) {
        return Ok(v != 0);
    }
    if let Ok(v) = row.try_get::<i32, _>(col) {
        return Ok(v != 0);
    }
    Ok(row.try_get::<i16, _>(col)? != 0)
}

fn digest(text: &str, table: &str) -> DbResult<Digest> {
    Digest::parse(text).map_err(|e| DbError::Corrupt(format!("{table}: {e}")))
}

fn repo_row(row: &AnyRow) -> DbResult<RepoRow> {
    Ok(RepoRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        immutable_tags: flag(row, "immutable_tags")?,
        anonymous_pull: flag(row, "anonymous_pull")?,
        lifecycle: row.try_get("lifecycle")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn manifest_row(row: &AnyRow) -> DbResult<ManifestRow> {
    let d: String = row.try_get("digest")?;
    let subject: Option<String> = row.try_get("subject")?;
    let size: i64 = row.try_get("size")?;
    Ok(ManifestRow {
        digest: digest(&d, "registry_manifests")?,
        media_type: row.try_get("media_type")?,
        size: u64::try_from(size).unwrap_or(0),
        artifact_type: row.try_get("artifact_type")?,
        subject: subject
            .map(|s| digest(&s, "registry_manifests"))
            .transpose()?,
        annotations: row.try_get("annotations")?,
        pushed_ms: row.try_get("pushed_ms")?,
    })
}

impl Db {
    pub async fn registry_repo(&self, name: &str) -> DbResult<Option<RepoRow>> {
        let q = format!("SELECT {REPO_COLUMNS} FROM registry_repos WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(repo_row).transpose()
    }

    /// The repository, created (with default settings) if it is new.
    pub async fn registry_ensure_repo(
        &self,
        project_id: i64,
        name: &str,
        now_ms: i64,
    ) -> DbResult<RepoRow> {
        if let Some(r) = self.registry_repo(name).await? {
            return Ok(r);
        }
        sqlx::query(
            "INSERT INTO registry_repos (project_id, name, immutable_tags, anonymous_pull, \
             created_ms) VALUES ($1, $2, 0, 0, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(project_id)
        .bind(name)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        self.registry_repo(name)
            .await?
            .ok_or_else(|| DbError::Corrupt(format!("registry_repos: `{name}` vanished")))
    }

    /// Every repository (of one project, when given), by name, with counts.
    pub async fn registry_repos(&self, project_id: Option<i64>) -> DbResult<Vec<RepoSummary>> {
        let q = format!(
            "SELECT {REPO_COLUMNS}, \
             (SELECT COUNT(*) FROM registry_manifests m WHERE m.repo_id = r.id) AS n_manifests, \
             (SELECT COUNT(*) FROM registry_tags t WHERE t.repo_id = r.id) AS n_tags, \
             (SELECT MAX(pushed_ms) FROM registry_manifests m WHERE m.repo_id = r.id) AS pushed \
             FROM registry_repos r WHERE ($1 < 0 OR project_id = $1) ORDER BY name"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(project_id.unwrap_or(-1))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let m: i64 = row.try_get("n_manifests")?;
                let t: i64 = row.try_get("n_tags")?;
                Ok(RepoSummary {
                    repo: repo_row(row)?,
                    manifests: u64::try_from(m).unwrap_or(0),
                    tags: u64::try_from(t).unwrap_or(0),
                    pushed_ms: row.try_get("pushed")?,
                })
            })
            .collect()
    }

    /// Changes a repository's settings (`None` leaves one as it is).
    pub async fn registry_set_repo(
        &self,
        repo_id: i64,
        immutable_tags: Option<bool>,
        anonymous_pull: Option<bool>,
    ) -> DbResult<()> {
        if let Some(v) = immutable_tags {
            sqlx::query("UPDATE registry_repos SET immutable_tags = $1 WHERE id = $2")
                .bind(i64::from(v))
                .bind(repo_id)
                .execute(&self.pool)
                .await?;
        }
        if let Some(v) = anonymous_pull {
            sqlx::query("UPDATE registry_repos SET anonymous_pull = $1 WHERE id = $2")
                .bind(i64::from(v))
                .bind(repo_id)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Sets (or, with `None`, removes) a repository's lifecycle policy.
    pub async fn registry_set_lifecycle(&self, repo_id: i64, policy: Option<&str>) -> DbResult<()> {
        sqlx::query("UPDATE registry_repos SET lifecycle = $1 WHERE id = $2")
            .bind(policy)
            .bind(repo_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that the repository holds a blob (after an upload or a mount), or that a push
    /// used it again.
    pub async fn registry_link_blob(
        &self,
        repo_id: i64,
        d: &Digest,
        size: u64,
        now_ms: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO registry_blobs (repo_id, digest, size, created_ms, used_ms) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (repo_id, digest) DO UPDATE SET used_ms = $4",
        )
        .bind(repo_id)
        .bind(d.as_str())
        .bind(super::signed(size))
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The size of a blob the repository holds.
    pub async fn registry_blob(&self, repo_id: i64, d: &Digest) -> DbResult<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT size FROM registry_blobs WHERE repo_id = $1 AND digest = $2",
        )
        .bind(repo_id)
        .bind(d.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(size.map(|s| u64::try_from(s).unwrap_or(0)))
    }

    /// Marks the given blobs of a repository as used now; returns the ones it does not hold.
    pub async fn registry_touch_blobs(
        &self,
        repo_id: i64,
        digests: &[Digest],
        now_ms: i64,
    ) -> DbResult<Vec<Digest>> {
        let mut missing = Vec::new();
        for d in digests {
            let n = sqlx::query(
                "UPDATE registry_blobs SET used_ms = $1 WHERE repo_id = $2 AND digest = $3",
            )
            .bind(now_ms)
            .bind(repo_id)
            .bind(d.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected();
            if n == 0 {
                missing.push(d.clone());
            }
        }
        Ok(missing)
    }

    /// Forgets a blob in one repository; false when it held none.
    pub async fn registry_unlink_blob(&self, repo_id: i64, d: &Digest) -> DbResult<bool> {
        let n = sqlx::query("DELETE FROM registry_blobs WHERE repo_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(d.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Stores a manifest, what it refers to and its tag in one transaction. With
    /// `immutable_tags`, a tag that already names another manifest is refused.
    pub async fn registry_put_manifest(
        &self,
        repo_id: i64,
        m: &NewManifest,
        immutable_tags: bool,
        now_ms: i64,
    ) -> Result<(), PutManifestError> {
        let mut tx = self.begin_write().await?;
        if let Some(tag) = &m.tag {
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT digest FROM registry_tags WHERE repo_id = $1 AND tag = $2",
            )
            .bind(repo_id)
            .bind(tag)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(e) = existing
                && immutable_tags
                && e != m.row.digest.as_str()
            {
                return Err(PutManifestError::TagImmutable {
                    tag: tag.clone(),
                    existing: digest(&e, "registry_tags")?,
                });
            }
        }
        let r = &m.row;
        sqlx::query(
            "INSERT INTO registry_manifests (repo_id, digest, media_type, size, artifact_type, \
             subject, annotations, pushed_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (repo_id, digest) DO UPDATE SET pushed_ms = $8",
        )
        .bind(repo_id)
        .bind(r.digest.as_str())
        .bind(r.media_type.as_str())
        .bind(super::signed(r.size))
        .bind(r.artifact_type.as_deref())
        .bind(r.subject.as_ref().map(|d| d.as_str()))
        .bind(r.annotations.as_deref())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        for (child, kind) in &m.refs {
            sqlx::query(
                "INSERT INTO registry_refs (repo_id, manifest, child, kind) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repo_id, manifest, child) DO NOTHING",
            )
            .bind(repo_id)
            .bind(r.digest.as_str())
            .bind(child.as_str())
            .bind(kind.as_str())
            .execute(&mut *tx)
            .await?;
        }
        if let Some(tag) = &m.tag {
            sqlx::query(
                "INSERT INTO registry_tags (repo_id, tag, digest, updated_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repo_id, tag) DO UPDATE SET digest = $3, updated_ms = $4",
            )
            .bind(repo_id)
            .bind(tag)
            .bind(r.digest.as_str())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }

    pub async fn registry_manifest(
        &self,
        repo_id: i64,
        d: &Digest,
    ) -> DbResult<Option<ManifestRow>> {
        let q = format!(
            "SELECT {MANIFEST_COLUMNS} FROM registry_manifests WHERE repo_id = $1 AND digest = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(repo_id)
            .bind(d.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(manifest_row).transpose()
    }

    /// Which of `digests` the repository holds no manifest for.
    pub async fn registry_missing_manifests(
        &self,
        repo_id: i64,
        digests: &[Digest],
    ) -> DbResult<Vec<Digest>> {
        let mut missing = Vec::new();
        for d in digests {
            if self.registry_manifest(repo_id, d).await?.is_none() {
                missing.push(d.clone());
            }
        }
        Ok(missing)
    }

    pub async fn registry_tag(&self, repo_id: i64, tag: &str) -> DbResult<Option<Digest>> {
        let d: Option<String> =
            sqlx::query_scalar("SELECT digest FROM registry_tags WHERE repo_id = $1 AND tag = $2")
                .bind(repo_id)
                .bind(tag)
                .fetch_optional(&self.pool)
                .await?;
        d.map(|d| digest(&d, "registry_tags")).transpose()
    }

    /// Tags in lexical order after `last`, at most `limit`.
    pub async fn registry_tags(
        &self,
        repo_id: i64,
        last: Option<&str>,
        limit: u32,
    ) -> DbResult<Vec<String>> {
        let tags: Vec<String> = sqlx::query_scalar(
            "SELECT tag FROM registry_tags WHERE repo_id = $1 AND tag > $2 ORDER BY tag LIMIT $3",
        )
        .bind(repo_id)
        .bind(last.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(tags)
    }

    /// Every tag with the manifest it names, by tag.
    pub async fn registry_tagged(&self, repo_id: i64) -> DbResult<Vec<(String, Digest, i64)>> {
        let rows = sqlx::query(
            "SELECT tag, digest, updated_ms FROM registry_tags WHERE repo_id = $1 ORDER BY tag",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let d: String = r.try_get("digest")?;
                Ok((
                    r.try_get("tag")?,
                    digest(&d, "registry_tags")?,
                    r.try_get("updated_ms")?,
                ))
            })
            .collect()
    }

    /// Removes a tag; false when there was none.
    pub async fn registry_delete_tag(&self, repo_id: i64, tag: &str) -> DbResult<bool> {
        let n = sqlx::query("DELETE FROM registry_tags WHERE repo_id = $1 AND tag = $2")
            .bind(repo_id)
            .bind(tag)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Removes a manifest with its tags and references; false when there was none.
    pub async fn registry_delete_manifest(&self, repo_id: i64, d: &Digest) -> DbResult<bool> {
        let mut tx = self.begin_write().await?;
        for q in [
            "DELETE FROM registry_tags WHERE repo_id = $1 AND digest = $2",
            "DELETE FROM registry_refs WHERE repo_id = $1 AND manifest = $2",
        ] {
            sqlx::query(q)
                .bind(repo_id)
                .bind(d.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let n = sqlx::query("DELETE FROM registry_manifests WHERE repo_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(d.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Manifests whose `subject` is `d`, oldest first.
    pub async fn registry_referrers(&self, repo_id: i64, d: &Digest) -> DbResult<Vec<ManifestRow>> {
        let q = format!(
            "SELECT {MANIFEST_COLUMNS} FROM registry_manifests WHERE repo_id = $1 AND subject = $2 \
             ORDER BY pushed_ms, digest"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(repo_id)
            .bind(d.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(manifest_row).collect()
    }

    /// The repository's images for lifecycle policies, newest push first: manifests that no
    /// index includes and that are not referrers, with their tags.
    pub async fn registry_images(&self, repo_id: i64) -> DbResult<Vec<ImageRow>> {
        let rows = sqlx::query(
            "SELECT m.digest, m.pushed_ms FROM registry_manifests m WHERE m.repo_id = $1 \
             AND m.subject IS NULL AND NOT EXISTS (SELECT 1 FROM registry_refs r \
             WHERE r.repo_id = m.repo_id AND r.child = m.digest AND r.kind = 'manifest') \
             ORDER BY m.pushed_ms DESC, m.digest",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?;
        let tagged = self.registry_tagged(repo_id).await?;
        rows.iter()
            .map(|r| {
                let d: String = r.try_get("digest")?;
                let d = digest(&d, "registry_manifests")?;
                let tags = tagged
                    .iter()
                    .filter(|(_, td, _)| *td == d)
                    .map(|(t, _, _)| t.clone())
                    .collect();
                Ok(ImageRow {
                    digest: d,
                    pushed_ms: r.try_get("pushed_ms")?,
                    tags,
                })
            })
            .collect()
    }

    /// Manifests of the repository that `d` includes (an index's children).
    pub async fn registry_children(&self, repo_id: i64, d: &Digest) -> DbResult<Vec<Digest>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT child FROM registry_refs WHERE repo_id = $1 AND manifest = $2 AND kind = 'manifest'",
        )
        .bind(repo_id)
        .bind(d.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|d| digest(d, "registry_refs")).collect()
    }

    /// Every digest the registry needs kept: the blobs repositories hold, their manifests,
    /// and what those refer to.
    pub async fn registry_live_digests(&self) -> DbResult<BTreeSet<Digest>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT digest FROM registry_blobs UNION SELECT digest FROM registry_manifests \
             UNION SELECT child FROM registry_refs",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|d| digest(d, "registry")).collect()
    }

    /// Forgets blob links that no manifest of their repository refers to and that no push
    /// used since `cutoff_ms`; returns how many went.
    pub async fn registry_unlink_stale(&self, cutoff_ms: i64, dry_run: bool) -> DbResult<u64> {
        let cond = "used_ms < $1 AND NOT EXISTS (SELECT 1 FROM registry_refs r \
                    WHERE r.repo_id = registry_blobs.repo_id AND r.child = registry_blobs.digest)";
        if dry_run {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM registry_blobs WHERE {cond}"
            )))
            .bind(cutoff_ms)
            .fetch_one(&self.pool)
            .await?;
            return Ok(u64::try_from(n).unwrap_or(0));
        }
        let n = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM registry_blobs WHERE {cond}"
        )))
        .bind(cutoff_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    //! Runs against SQLite and, like ../tests.rs, against PostgreSQL when
    //! SLIPWAY_TEST_POSTGRES_URL names a cluster.
    use super::*;
    use sqlx::{AnyConnection, Connection as _, Executor as _};

    async fn with_db<F, Fut>(test: F)
    where
        F: Fn(Db) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite:{}", dir.path().join("s.db").display()))
            .await
            .unwrap();
        test(db).await;
        let Ok(admin) = std::env::var("SLIPWAY_TEST_POSTGRES_URL") else {
            assert_eq!(
                std::env::var("SLIPWAY_SKIP_POSTGRES_TESTS").as_deref(),
                Ok("1"),
                "SLIPWAY_TEST_POSTGRES_URL is not set (scripts/provision.sh writes it to \
                 /tmp/slipway-ci/pg.url), or set SLIPWAY_SKIP_POSTGRES_TESTS=1"
            );
            eprintln!("!!! SKIPPED: the PostgreSQL half of a registry store test !!!");
            return;
        };
        super::super::install_drivers();
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        let mut c = AnyConnection::connect(&admin).await.unwrap();
        c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let url = match admin.rsplit_once('/') {
            Some((root, _)) => format!("{root}/{name}"),
            None => panic!("{admin}: no database in the URL"),
        };
        let db = Db::connect(&url).await.unwrap();
        test(db).await;
        c.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
    }

    fn d(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn manifest(n: u8, refs: &[u8], tag: Option<&str>, subject: Option<u8>) -> NewManifest {
        NewManifest {
            row: ManifestRow {
                digest: d(n),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 100,
                artifact_type: subject.map(|_| "application/x-sig".into()),
                subject: subject.map(d),
                annotations: None,
                pushed_ms: 0,
            },
            refs: refs.iter().map(|r| (d(*r), RefKind::Blob)).collect(),
            tag: tag.map(String::from),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repositories_manifests_tags_and_referrers_on_both_backends() {
        with_db(|db| async move {
            let p = db.create_project("proj", "/x", 1).await.unwrap();
            let r = db.registry_ensure_repo(p.id, "proj/app", 1).await.unwrap();
            assert_eq!(
                db.registry_ensure_repo(p.id, "proj/app", 2).await.unwrap(),
                r
            );
            assert!(!r.immutable_tags && !r.anonymous_pull);
            db.registry_set_repo(r.id, Some(true), Some(true))
                .await
                .unwrap();
            let r = db.registry_repo("proj/app").await.unwrap().unwrap();
            assert!(r.immutable_tags && r.anonymous_pull);

            db.registry_link_blob(r.id, &d(1), 10, 5).await.unwrap();
            assert_eq!(db.registry_blob(r.id, &d(1)).await.unwrap(), Some(10));
            assert_eq!(
                db.registry_touch_blobs(r.id, &[d(1), d(2)], 6)
                    .await
                    .unwrap(),
                vec![d(2)]
            );
            db.registry_put_manifest(r.id, &manifest(10, &[1], Some("v1"), None), true, 7)
                .await
                .unwrap();
            // The same digest again under the same tag is fine; another is refused.
            db.registry_put_manifest(r.id, &manifest(10, &[1], Some("v1"), None), true, 8)
                .await
                .unwrap();
            let e = db
                .registry_put_manifest(r.id, &manifest(11, &[1], Some("v1"), None), true, 9)
                .await
                .unwrap_err();
            assert!(matches!(e, PutManifestError::TagImmutable { .. }), "{e}");
            db.registry_put_manifest(r.id, &manifest(11, &[1], Some("v2"), None), true, 9)
                .await
                .unwrap();
            db.registry_put_manifest(r.id, &manifest(12, &[], None, Some(10)), true, 10)
                .await
                .unwrap();
            assert_eq!(db.registry_tag(r.id, "v1").await.unwrap(), Some(d(10)));
            assert_eq!(
                db.registry_tags(r.id, None, 10).await.unwrap(),
                vec!["v1", "v2"]
            );
            assert_eq!(
                db.registry_tags(r.id, Some("v1"), 10).await.unwrap(),
                vec!["v2"]
            );
            let refs = db.registry_referrers(r.id, &d(10)).await.unwrap();
            assert_eq!(refs.len(), 1);
            assert_eq!(refs[0].digest, d(12));
            let images = db.registry_images(r.id).await.unwrap();
            assert_eq!(
                images.iter().map(|i| i.digest.clone()).collect::<Vec<_>>(),
                vec![d(11), d(10)]
            );
            assert_eq!(images[1].tags, vec!["v1"]);
            let live = db.registry_live_digests().await.unwrap();
            assert!(live.contains(&d(1)) && live.contains(&d(12)));

            let summary = db.registry_repos(Some(p.id)).await.unwrap();
            assert_eq!(summary.len(), 1);
            assert_eq!((summary[0].manifests, summary[0].tags), (3, 2));

            // A referenced link stays; an unreferenced old one goes.
            db.registry_link_blob(r.id, &d(3), 1, 1).await.unwrap();
            assert_eq!(db.registry_unlink_stale(100, true).await.unwrap(), 1);
            assert_eq!(db.registry_unlink_stale(100, false).await.unwrap(), 1);
            assert_eq!(db.registry_blob(r.id, &d(3)).await.unwrap(), None);
            assert_eq!(db.registry_blob(r.id, &d(1)).await.unwrap(), Some(10));

            assert!(db.registry_delete_manifest(r.id, &d(10)).await.unwrap());
            assert_eq!(db.registry_tag(r.id, "v1").await.unwrap(), None);
            assert!(!db.registry_delete_manifest(r.id, &d(10)).await.unwrap());
            assert!(db.registry_delete_tag(r.id, "v2").await.unwrap());
            db.registry_set_lifecycle(r.id, Some("{}")).await.unwrap();
            assert_eq!(
                db.registry_repo("proj/app")
                    .await
                    .unwrap()
                    .unwrap()
                    .lifecycle,
                Some("{}".into())
            );
            db.close().await;
        })
        .await;
    }
}
