//! Online garbage collection of the registry's blobs, while pushes go on.
//!
//! 1. Under the GC lock (written): forget blob links that no manifest refers to and that no
//!    push used within the grace period.
//! 2. Unlocked: list the blob store and note blobs older than the grace that nothing needs
//!    (neither the registry nor any execution).
//! 3. Under the GC lock (written): compute what is needed again and delete the noted blobs
//!    that still are not.
//!
//! A push holds the lock for reading from the moment it checks the blobs it refers to until
//! its links or manifest are recorded, so step 3 sees it either finished (and keeps its
//! blobs) or not yet started (and then the push finds a blob missing and the client uploads
//! it again). Uploads in flight live outside the store until complete; a finished upload
//! renews an existing blob's modification time, so it is young. Nothing waits for a whole
//! pass: the lock is held only for the database statements and the deletions.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use slipway_model::Digest;

use crate::Registry;
use crate::error::RegistryError;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct GcReport {
    pub dry_run: bool,
    /// Blob links forgotten (blobs pushed to a repository that no manifest used).
    pub unlinked: u64,
    pub blobs: u64,
    pub bytes: u64,
    /// Abandoned upload sessions removed.
    pub uploads: u64,
}

/// Everything that must stay: the registry's and the executions'.
async fn live(reg: &Registry) -> Result<BTreeSet<Digest>, RegistryError> {
    let mut live = reg.db.registry_live_digests().await?;
    live.extend(reg.db.live_digests().await?);
    Ok(live)
}

pub async fn collect(reg: &Registry, dry_run: bool) -> Result<GcReport, RegistryError> {
    let grace = reg.config.gc_grace;
    let started = SystemTime::now();
    let cutoff_ms = crate::now_ms() - grace.as_millis() as i64;
    let mut report = GcReport {
        dry_run,
        ..Default::default()
    };
    {
        let _w = reg.gc_lock.write().await;
        report.unlinked = reg.db.registry_unlink_stale(cutoff_ms, dry_run).await?;
    }
    let live_now = live(reg).await?;
    let blobs = reg.blobs.clone();
    let candidates = tokio::task::spawn_blocking(move || {
        let mut dead = Vec::new();
        blobs.for_each_blob(|d, size, mtime| {
            let age = started.duration_since(mtime).unwrap_or(Duration::ZERO);
            if age >= grace && mtime < started && !live_now.contains(&d) {
                dead.push((d, size));
            }
        })?;
        Ok::<_, slipway_store::StoreError>(dead)
    })
    .await
    .map_err(|e| RegistryError::Other(e.to_string()))??;
    if !candidates.is_empty() {
        let _w = reg.gc_lock.write().await;
        let live_again = live(reg).await?;
        for (d, size) in candidates {
            if live_again.contains(&d) {
                continue;
            }
            // Renewed since the listing (a finished upload of the same bytes): keep it.
            let renewed = std::fs::metadata(reg.blobs.path(&d))
                .and_then(|m| m.modified())
                .is_ok_and(|m| m >= started);
            if renewed {
                continue;
            }
            if dry_run || reg.blobs.remove(&d).is_ok() {
                report.blobs += 1;
                report.bytes += size;
            }
        }
    }
    if !dry_run {
        report.uploads = reg.uploads.sweep(Duration::from_secs(24 * 3600).max(grace));
    }
    tracing::info!(
        dry_run,
        unlinked = report.unlinked,
        blobs = report.blobs,
        bytes = report.bytes,
        "registry garbage collection"
    );
    Ok(report)
}
