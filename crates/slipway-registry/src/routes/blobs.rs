//! Blob endpoints: HEAD/GET (with a byte range), DELETE, and uploads: POST (a session, a
//! monolithic `?digest=` upload, or a `?mount=&from=` cross-repository mount), PATCH (a chunk,
//! `Content-Range` checked against what arrived), GET (how far it got), PUT (`?digest=`
//! checked against the streamed hash), DELETE (cancel).

use std::io::SeekFrom;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use slipway_model::Digest;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use super::{Ctx, empty, finish, query_param};
use crate::error::OciError;
use crate::name::parse_digest;
use crate::services::auth::Caller;
use crate::services::uploads::{AppendError, Finished, Session};

type R = Result<Response, OciError>;

const DIGEST_HEADER: &str = "docker-content-digest";

pub(super) async fn get(ctx: &Ctx, d: &str, head: bool) -> R {
    let d = parse_digest(d)?;
    let repo = ctx.pull_repo().await?;
    let known = ctx.reg.db.registry_blob(repo.id, &d).await?.is_some()
        || ctx.reg.db.registry_manifest(repo.id, &d).await?.is_some();
    if !known {
        return Err(OciError::blob_unknown(&d));
    }
    let size = ctx.reg.blobs.size(&d).await?;
    let range = ctx
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, size))
        .transpose()?;
    let (start, len, status) = match range {
        Some((s, e)) => (s, e - s + 1, StatusCode::PARTIAL_CONTENT),
        None => (0, size, StatusCode::OK),
    };
    let mut b = empty(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{d}\""))
        .header(DIGEST_HEADER, d.as_str());
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    if head {
        return Ok(finish(b, Body::empty()));
    }
    let mut f = ctx.reg.blobs.open_blob(&d).await?;
    if start > 0 {
        f.seek(SeekFrom::Start(start))
            .await
            .map_err(OciError::internal)?;
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), 1024 * 1024);
    Ok(finish(b, Body::from_stream(stream)))
}

/// `bytes=START-END` or `bytes=START-` or `bytes=-SUFFIX`, as an inclusive range.
fn parse_range(v: &str, size: u64) -> Result<(u64, u64), OciError> {
    let bad = || {
        OciError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UNKNOWN",
            format!("range `{v}` is not within the blob's {size} bytes"),
        )
        .with_header(header::CONTENT_RANGE, format!("bytes */{size}"))
    };
    let spec = v.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (a, "") => (a.parse().map_err(|_| bad())?, size.saturating_sub(1)),
        (a, b) => (
            a.parse().map_err(|_| bad())?,
            b.parse::<u64>()
                .map_err(|_| bad())?
                .min(size.saturating_sub(1)),
        ),
    };
    if size == 0 || start > end || start >= size {
        return Err(bad());
    }
    Ok((start, end))
}

pub(super) async fn delete(ctx: &Ctx, d: &str) -> R {
    let d = parse_digest(d)?;
    let repo = ctx.push_repo().await?;
    if ctx.reg.db.registry_unlink_blob(repo.id, &d).await? {
        Ok(finish(empty(StatusCode::ACCEPTED), Body::empty()))
    } else {
        Err(OciError::blob_unknown(&d))
    }
}

fn upload_headers(ctx: &Ctx, s: &Session, size: u64, status: StatusCode) -> Response {
    let b = empty(status)
        .header(
            header::LOCATION,
            ctx.location(&format!("blobs/uploads/{}", s.id)),
        )
        .header(header::RANGE, format!("0-{}", size.max(1) - 1))
        .header("docker-upload-uuid", s.id.as_str())
        .header(header::CONTENT_LENGTH, 0);
    finish(b, Body::empty())
}

fn created(ctx: &Ctx, d: &Digest) -> Response {
    let b = empty(StatusCode::CREATED)
        .header(header::LOCATION, ctx.location(&format!("blobs/{d}")))
        .header(DIGEST_HEADER, d.as_str())
        .header(header::CONTENT_LENGTH, 0);
    finish(b, Body::empty())
}

pub(super) async fn start(ctx: &Ctx, query: &str, body: Body) -> R {
    let repo = ctx.push_repo().await?;
    if let Some(m) = query_param(query, "mount") {
        let d = parse_digest(&m)?;
        if let Some(from) = query_param(query, "from")
            && let Some(src) = ctx.reg.db.registry_repo(&from).await?
            && let Some(size) = ctx.reg.db.registry_blob(src.id, &d).await?
            && matches!(ctx.caller, Caller::User(_))
        {
            let _pushing = ctx.reg.gc_lock.read().await;
            if ctx.reg.blobs.contains(&d) {
                ctx.reg
                    .db
                    .registry_link_blob(repo.id, &d, size, crate::now_ms())
                    .await?;
                return Ok(created(ctx, &d));
            }
        }
        // Not mountable: an ordinary upload session, as the spec says.
    }
    let session = ctx.reg.uploads.start(&ctx.name)?;
    let mut s = session.lock().await;
    match query_param(query, "digest") {
        Some(d) => {
            let d = parse_digest(&d)?;
            append(ctx, &mut s, body).await?;
            complete(ctx, &mut s, repo.id, &d).await
        }
        None => Ok(upload_headers(ctx, &s, 0, StatusCode::ACCEPTED)),
    }
}

async fn session(
    ctx: &Ctx,
    id: &str,
) -> Result<std::sync::Arc<tokio::sync::Mutex<Session>>, OciError> {
    ctx.reg
        .uploads
        .get(&ctx.name, id)
        .ok_or_else(OciError::upload_unknown)
}

async fn append(ctx: &Ctx, s: &mut Session, body: Body) -> Result<u64, OciError> {
    match s.append(body).await {
        Ok(n) => Ok(n),
        Err(AppendError::Body { kept, cause }) => {
            tracing::info!(upload = %s.id, repository = %ctx.name, kept, %cause, "an upload request broke off; what arrived is kept");
            Err(OciError::upload_invalid(format!(
                "the request body broke off; {kept} bytes are kept, resume from there"
            )))
        }
        Err(AppendError::Internal(e)) => Err(e.into()),
    }
}

pub(super) async fn patch(ctx: &Ctx, id: &str, body: Body) -> R {
    ctx.push_repo().await?;
    let session = session(ctx, id).await?;
    let Ok(mut s) = session.try_lock() else {
        return Err(OciError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            "another request is writing to this upload",
        ));
    };
    let size = s.size().await?;
    if let Some(cr) = ctx
        .headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        let spec = cr
            .trim()
            .trim_start_matches("bytes")
            .trim_start_matches(' ');
        let start = spec
            .split(['-', '/'])
            .next()
            .and_then(|a| a.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                OciError::upload_invalid(format!("Content-Range `{cr}` is not START-END"))
            })?;
        if start != size {
            let mut e = OciError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                format!(
                    "the chunk starts at {start}, but the upload has {size} bytes: resume at {size}"
                ),
            )
            .with_header(
                header::LOCATION,
                ctx.location(&format!("blobs/uploads/{}", s.id)),
            );
            if size > 0 {
                e = e.with_header(header::RANGE, format!("0-{}", size - 1));
            }
            return Err(e);
        }
    }
    let size = append(ctx, &mut s, body).await?;
    Ok(upload_headers(ctx, &s, size, StatusCode::ACCEPTED))
}

pub(super) async fn status(ctx: &Ctx, id: &str) -> R {
    ctx.push_repo().await?;
    let session = session(ctx, id).await?;
    let mut s = session.lock().await;
    let size = s.size().await?;
    Ok(upload_headers(ctx, &s, size, StatusCode::NO_CONTENT))
}

pub(super) async fn cancel(ctx: &Ctx, id: &str) -> R {
    ctx.push_repo().await?;
    let session = session(ctx, id).await?;
    let mut s = session.lock().await;
    ctx.reg.uploads.remove(&mut s);
    Ok(finish(empty(StatusCode::NO_CONTENT), Body::empty()))
}

pub(super) async fn put(ctx: &Ctx, id: &str, query: &str, body: Body) -> R {
    let repo = ctx.push_repo().await?;
    let session = session(ctx, id).await?;
    let mut s = session.lock().await;
    let Some(d) = query_param(query, "digest") else {
        return Err(OciError::digest_invalid(
            "finishing an upload needs ?digest=sha256:... (the content's digest)",
        ));
    };
    let d = parse_digest(&d)?;
    append(ctx, &mut s, body).await?;
    complete(ctx, &mut s, repo.id, &d).await
}

/// Verifies and publishes the session's content, and links it into the repository, holding
/// the GC lock for reading so a collection cannot remove the blob in between.
async fn complete(ctx: &Ctx, s: &mut Session, repo_id: i64, d: &Digest) -> R {
    let _pushing = ctx.reg.gc_lock.read().await;
    match s.finish(&ctx.reg.blobs, d).await? {
        Finished::Stored { digest, size } => {
            ctx.reg
                .db
                .registry_link_blob(repo_id, &digest, size, crate::now_ms())
                .await?;
            ctx.reg.uploads.remove(s);
            Ok(created(ctx, &digest))
        }
        Finished::Mismatch { expected, actual } => {
            ctx.reg.uploads.remove(s);
            Err(OciError::digest_invalid(format!(
                "the uploaded content hashes to {actual}, not {expected}; nothing was stored"
            ))
            .with_detail(serde_json::json!({"expected": expected, "actual": actual})))
        }
    }
}
