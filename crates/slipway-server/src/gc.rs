//! Retention: executions beyond the configured age or count are pruned with their events, then
//! blobs nothing refers to any more, stale build caches and the Docker engine's leftovers.
//! Runs in the background every `retention.interval`; `slipway gc [--dry-run]` runs it now.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use slipway_engine::events::now_ms;
use slipway_proto::api::GcReport;
use slipway_store::Retention;

use crate::AppState;
use crate::error::ApiError;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct GcQuery {
    /// Report what would go without removing anything.
    #[serde(default)]
    dry_run: bool,
}

/// Runs retention now (`slipway gc`); with `dry_run`, only reports what would go.
#[utoipa::path(post, path = "/api/v1/gc", params(GcQuery), responses((status = 200, body = GcReport)))]
pub async fn handle(
    State(s): State<AppState>,
    Query(q): Query<GcQuery>,
) -> Result<Json<GcReport>, ApiError> {
    Ok(Json(collect(&s, q.dry_run).await?))
}

/// One pass of retention. Holds the GC lock for writing, so a backup never sees a blob vanish.
pub async fn collect(s: &AppState, dry_run: bool) -> Result<GcReport, ApiError> {
    let _exclusive = s.gc_lock.write().await;
    let r = &s.config.retention;
    let policy = Retention {
        max_age_ms: r.max_age.map(|d| d.as_millis() as i64),
        keep_per_project: r.keep_per_project,
    };
    let mut report = GcReport {
        dry_run,
        ..Default::default()
    };
    let candidates = s.sched.db.prune_candidates(&policy, now_ms()).await?;
    for row in &candidates {
        report
            .executions
            .push(format!("{}#{}", row.project, row.number));
        if !dry_run {
            s.sched.db.delete_execution(row.id).await?;
        }
    }
    if !dry_run && let Some(age) = r.max_age {
        // The webhook and notification logs age out with the executions they explain.
        s.sched
            .db
            .prune_delivery_logs(now_ms() - age.as_millis() as i64)
            .await?;
    }
    let mut live = s.sched.db.live_digests().await?;
    // The registry's blobs and manifests are live too (its own GC collects them).
    live.extend(s.sched.db.registry_live_digests().await?);
    let blobs = s.blobs.clone();
    let grace = r.blob_grace;
    let (n, bytes) = tokio::task::spawn_blocking(move || {
        let now = SystemTime::now();
        let mut dead = Vec::new();
        blobs.for_each_blob(|d, size, mtime| {
            let young = now.duration_since(mtime).unwrap_or_default() < grace;
            if !young && !live.contains(&d) {
                dead.push((d, size));
            }
        })?;
        let mut count = 0;
        let mut bytes = 0;
        for (d, size) in dead {
            if dry_run || blobs.remove(&d).is_ok() {
                count += 1;
                bytes += size;
            }
        }
        if !dry_run {
            let _ = blobs.sweep_tmp(Duration::from_secs(24 * 3600));
        }
        Ok::<_, slipway_store::StoreError>((count, bytes))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    report.blobs = n;
    report.blob_bytes = bytes;
    if let Some(age) = r.max_age {
        let (n, bytes) = prune_caches(&s.config.data.join("cache"), age, dry_run).await;
        report.cache_entries = n;
        report.cache_bytes = bytes;
    }
    if !dry_run && let Some(d) = &s.docker {
        match d.remove_orphans().await {
            Ok(n) => report.docker_containers = n as u64,
            Err(e) => tracing::warn!(error = %e, "removing leftover containers"),
        }
    }
    if !dry_run && let (Some(images), Some(age)) = (&s.images, r.max_age) {
        match images.prune(age).await {
            Ok((n, _)) => report.docker_images = n,
            Err(e) => tracing::warn!(error = %e, "pruning old images"),
        }
    }
    tracing::info!(
        dry_run,
        executions = report.executions.len(),
        blobs = report.blobs,
        "retention pass"
    );
    Ok(report)
}

/// Cache entries (`<cache>/<project>/<key>/`) not written for longer than `age`.
async fn prune_caches(root: &std::path::Path, age: Duration, dry_run: bool) -> (u64, u64) {
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let now = SystemTime::now();
        let (mut n, mut bytes) = (0, 0);
        let Ok(projects) = std::fs::read_dir(&root) else {
            return (0, 0);
        };
        for p in projects.flatten() {
            let Ok(keys) = std::fs::read_dir(p.path()) else {
                continue;
            };
            for k in keys.flatten() {
                let old = k
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_some_and(|a| a > age);
                if !old {
                    continue;
                }
                let size: u64 = walkdir_size(&k.path());
                if dry_run || std::fs::remove_dir_all(k.path()).is_ok() {
                    n += 1;
                    bytes += size;
                }
            }
        }
        (n, bytes)
    })
    .await
    .unwrap_or((0, 0))
}

fn walkdir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    total
}

/// The background loop: a pass every `interval` until shutdown.
pub async fn run_periodically(s: AppState, shutdown: tokio_util::sync::CancellationToken) {
    let every = s.config.retention.interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = collect(&s, false).await {
            tracing::warn!(error = %e.message, "retention pass failed");
        }
    }
}
