//! `GET /api/v1/backup`: a consistent copy of the state and the blobs as one tar stream,
//! taken while the server runs. The database is exported from one snapshot; blobs are
//! immutable and the GC lock (held for reading) keeps every referenced one in place.
//!
//! Layout: `manifest.json`, `db/<table>.jsonl`, `blobs/sha256/<2 hex>/<64 hex>`,
//! `git/<NAME>.git/...` (hosted repositories), and last
//! `end.json` (`{"blobs": N}`): a copy without it was cut short.
//! `slipway restore` reads it back (docs/server.md).

use std::io::Write as _;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use slipway_engine::events::now_ms;

use crate::AppState;
use crate::error::ApiError;

pub const FORMAT: &str = "slipway-backup";
pub const VERSION: u32 = 1;

/// A consistent backup of the state and blobs as a tar stream (`slipway backup FILE`).
#[utoipa::path(get, path = "/api/v1/backup", responses((status = 200, content_type = "application/x-tar", body = Vec<u8>)))]
pub async fn handle(State(s): State<AppState>) -> Result<Response, ApiError> {
    let guard = s.gc_lock.clone().read_owned().await;
    let tmp = tempfile::Builder::new()
        .prefix("backup-")
        .tempdir_in(s.config.data.join("work"))
        .map_err(ApiError::internal)?;
    let dbdir = tmp.path().join("db");
    std::fs::create_dir_all(&dbdir).map_err(ApiError::internal)?;
    s.sched.db.export(&dbdir).await?;
    let blobs_dir = s.blobs.blobs_dir().to_path_buf();
    let data_dir = s.config.data.clone();
    let git_dir = s.config.data.join("git");
    let (reader, writer) = tokio::io::duplex(256 * 1024);
    tokio::task::spawn_blocking(move || {
        let _hold = guard;
        let sink = tokio_util::io::SyncIoBridge::new(writer);
        let mut tar = tar::Builder::new(sink);
        let result = (|| -> std::io::Result<()> {
            let manifest = serde_json::json!({
                "format": FORMAT,
                "version": VERSION,
                "created_ms": now_ms(),
                "slipway": env!("CARGO_PKG_VERSION"),
                // Hosted repositories' paths are recorded under it; restore moves them.
                "data": data_dir.display().to_string(),
            });
            let bytes = serde_json::to_vec_pretty(&manifest)?;
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_mtime((now_ms() / 1000) as u64);
            h.set_cksum();
            tar.append_data(&mut h, "manifest.json", bytes.as_slice())?;
            let mut tables: Vec<_> = std::fs::read_dir(&dbdir)?.flatten().collect();
            tables.sort_by_key(|e| e.file_name());
            for t in tables {
                tar.append_path_with_name(
                    t.path(),
                    format!("db/{}", t.file_name().to_string_lossy()),
                )?;
            }
            let mut blob_count = 0u64;
            let mut shards: Vec<_> = std::fs::read_dir(&blobs_dir)?.flatten().collect();
            shards.sort_by_key(|e| e.file_name());
            for shard in shards {
                let Ok(files) = std::fs::read_dir(shard.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let name = format!(
                        "blobs/sha256/{}/{}",
                        shard.file_name().to_string_lossy(),
                        f.file_name().to_string_lossy()
                    );
                    tar.append_path_with_name(f.path(), name)?;
                    blob_count += 1;
                }
            }
            // Hosted repositories (`<data>/git/NAME.git`), file by file. Git writes objects
            // before the refs that name them, so a push racing the copy leaves a repository
            // that is consistent, at worst without that push's refs.
            if git_dir.is_dir() {
                append_tree(&mut tar, &git_dir, "git")?;
            }
            // Last, so that a stream cut short is recognisably incomplete.
            let end = serde_json::to_vec(&serde_json::json!({ "blobs": blob_count }))?;
            let mut h = tar::Header::new_gnu();
            h.set_size(end.len() as u64);
            h.set_mode(0o644);
            h.set_mtime((now_ms() / 1000) as u64);
            h.set_cksum();
            tar.append_data(&mut h, "end.json", end.as_slice())?;
            tar.into_inner()?.flush()
        })();
        if let Err(e) = result {
            tracing::error!(error = %e, "writing a backup");
        }
        drop(tmp);
    });
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"slipway-backup.tar\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// Appends every regular file under `root` as `<prefix>/<relative path>` (sorted, so the refs
/// a repository's objects need come after nothing in particular: objects are immutable).
fn append_tree<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    root: &std::path::Path,
    prefix: &str,
) -> std::io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                let rel = e.path();
                let rel = rel.strip_prefix(root).unwrap_or(&rel);
                // A file removed under us (a lock released, a pack replaced) is skipped.
                match tar.append_path_with_name(e.path(), format!("{prefix}/{}", rel.display())) {
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    r => r?,
                }
            }
        }
    }
    Ok(())
}
