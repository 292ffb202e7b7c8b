//! Manifest endpoints (PUT/GET/HEAD/DELETE by tag or digest), tag listing with `n`/`last`
//! pagination and a Link header, and the referrers API with its `artifactType` filter.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use slipway_model::Digest;
use slipway_store::db::{ManifestRow, NewManifest, PutManifestError, RepoRow};

use super::{Ctx, empty, finish, query_param};
use crate::error::OciError;
use crate::name::{Reference, parse_digest};
use crate::services::manifests::{self, MAX_MANIFEST, OCI_INDEX};

type R = Result<Response, OciError>;

async fn resolve(ctx: &Ctx, repo: &RepoRow, r: &Reference) -> Result<ManifestRow, OciError> {
    let d = match r {
        Reference::Digest(d) => d.clone(),
        Reference::Tag(t) => ctx
            .reg
            .db
            .registry_tag(repo.id, t)
            .await?
            .ok_or_else(|| OciError::manifest_unknown(format!("{}:{t}", ctx.name)))?,
    };
    ctx.reg
        .db
        .registry_manifest(repo.id, &d)
        .await?
        .ok_or_else(|| OciError::manifest_unknown(format!("{}@{d}", ctx.name)))
}

pub(super) async fn get(ctx: &Ctx, r: &str, head: bool) -> R {
    let r = Reference::parse(r)?;
    let repo = ctx.pull_repo().await?;
    let m = resolve(ctx, &repo, &r).await?;
    let b = empty(StatusCode::OK)
        .header(header::CONTENT_TYPE, m.media_type.as_str())
        .header(header::CONTENT_LENGTH, m.size)
        .header(header::ETAG, format!("\"{}\"", m.digest))
        .header("docker-content-digest", m.digest.as_str());
    if head {
        return Ok(finish(b, Body::empty()));
    }
    let f = ctx.reg.blobs.open_blob(&m.digest).await?;
    Ok(finish(
        b,
        Body::from_stream(tokio_util::io::ReaderStream::new(f)),
    ))
}

pub(super) async fn put(ctx: &Ctx, r: &str, body: Body) -> R {
    let r = Reference::parse(r)?;
    let repo = ctx.push_repo().await?;
    let bytes = axum::body::to_bytes(body, MAX_MANIFEST)
        .await
        .map_err(|_| {
            OciError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "SIZE_INVALID",
                format!("a manifest may have at most {MAX_MANIFEST} bytes"),
            )
        })?;
    let digest = Digest::of(&bytes);
    if let Reference::Digest(d) = &r
        && *d != digest
    {
        return Err(OciError::digest_invalid(format!(
            "the manifest hashes to {digest}, not {d}"
        )));
    }
    let ct = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let parsed = manifests::parse(&bytes, ct)?;
    let now = crate::now_ms();
    // From the check of what it refers to until it is recorded, a collection waits.
    let _pushing = ctx.reg.gc_lock.read().await;
    let mut missing = ctx
        .reg
        .db
        .registry_touch_blobs(repo.id, &parsed.blobs(), now)
        .await?;
    let absent: Vec<Digest> = parsed
        .blobs()
        .into_iter()
        .filter(|d| !missing.contains(d) && !ctx.reg.blobs.contains(d))
        .collect();
    missing.extend(absent);
    missing.extend(
        ctx.reg
            .db
            .registry_missing_manifests(repo.id, &parsed.manifests())
            .await?,
    );
    if let Some(first) = missing.first() {
        return Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            format!(
                "the manifest refers to {first}{}, which {} not in {}: push {} first",
                if missing.len() > 1 {
                    format!(" (and {} more)", missing.len() - 1)
                } else {
                    String::new()
                },
                if missing.len() > 1 { "are" } else { "is" },
                ctx.name,
                if missing.len() > 1 { "them" } else { "it" },
            ),
        )
        .with_detail(serde_json::json!({ "missing": missing })));
    }
    let (stored, _) = ctx.reg.blobs.put_reader(&bytes[..]).await?;
    debug_assert_eq!(stored, digest);
    let new = NewManifest {
        row: ManifestRow {
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            size: bytes.len() as u64,
            artifact_type: parsed.artifact_type.clone(),
            subject: parsed.subject.clone(),
            annotations: parsed.annotations.clone(),
            pushed_ms: now,
        },
        refs: parsed.refs.clone(),
        tag: match &r {
            Reference::Tag(t) => Some(t.clone()),
            Reference::Digest(_) => None,
        },
    };
    match ctx
        .reg
        .db
        .registry_put_manifest(repo.id, &new, repo.immutable_tags, now)
        .await
    {
        Ok(()) => {}
        Err(PutManifestError::TagImmutable { tag, existing }) => {
            return Err(OciError::tag_invalid(format!(
                "tag `{tag}` of {} already names {existing} and the repository's tags are \
                 immutable: push under a new tag (or `slipway registry set {} --immutable-tags false`)",
                ctx.name, ctx.name
            )));
        }
        Err(PutManifestError::Db(e)) => return Err(e.into()),
    }
    let mut b = empty(StatusCode::CREATED)
        .header(
            header::LOCATION,
            ctx.location(&format!("manifests/{digest}")),
        )
        .header("docker-content-digest", digest.as_str())
        .header(header::CONTENT_LENGTH, 0);
    if let Some(s) = &parsed.subject {
        b = b.header("oci-subject", s.as_str());
    }
    Ok(finish(b, Body::empty()))
}

pub(super) async fn delete(ctx: &Ctx, r: &str) -> R {
    let r = Reference::parse(r)?;
    let repo = ctx.push_repo().await?;
    let gone = match &r {
        Reference::Tag(t) => ctx.reg.db.registry_delete_tag(repo.id, t).await?,
        Reference::Digest(d) => ctx.reg.db.registry_delete_manifest(repo.id, d).await?,
    };
    if gone {
        Ok(finish(empty(StatusCode::ACCEPTED), Body::empty()))
    } else {
        Err(OciError::manifest_unknown(&r))
    }
}

pub(super) async fn tags(ctx: &Ctx, query: &str) -> R {
    let repo = ctx.pull_repo().await?;
    let n = match query_param(query, "n") {
        Some(n) => Some(n.parse::<u32>().map_err(|_| {
            OciError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("n=`{n}` is not a whole number"),
            )
        })?),
        None => None,
    };
    let last = query_param(query, "last");
    let limit = n.unwrap_or(10_000).min(10_000);
    let mut tags = if limit == 0 {
        Vec::new()
    } else {
        ctx.reg
            .db
            .registry_tags(repo.id, last.as_deref(), limit + 1)
            .await?
    };
    let more = tags.len() > limit as usize;
    tags.truncate(limit as usize);
    let body = serde_json::json!({ "name": ctx.name, "tags": tags });
    let mut b = empty(StatusCode::OK).header(header::CONTENT_TYPE, "application/json");
    if more && let Some(l) = tags.last() {
        b = b.header(
            header::LINK,
            format!(
                "</v2/{}/tags/list?n={limit}&last={l}>; rel=\"next\"",
                ctx.name
            ),
        );
    }
    Ok(finish(b, Body::from(body.to_string())))
}

pub(super) async fn referrers(ctx: &Ctx, d: &str, query: &str) -> R {
    let d = parse_digest(d)?;
    let repo = ctx.pull_repo().await?;
    let filter = query_param(query, "artifactType");
    let rows = ctx.reg.db.registry_referrers(repo.id, &d).await?;
    let manifests: Vec<serde_json::Value> = rows
        .into_iter()
        .filter(|m| filter.is_none() || m.artifact_type == filter)
        .map(|m| {
            let mut v = serde_json::json!({
                "mediaType": m.media_type,
                "digest": m.digest,
                "size": m.size,
            });
            if let Some(a) = m.artifact_type {
                v["artifactType"] = a.into();
            }
            if let Some(a) = m
                .annotations
                .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
            {
                v["annotations"] = a;
            }
            v
        })
        .collect();
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let mut b = empty(StatusCode::OK).header(header::CONTENT_TYPE, OCI_INDEX);
    if filter.is_some() {
        b = b.header("oci-filters-applied", "artifactType");
    }
    Ok(finish(b, Body::from(body.to_string())))
}
