//! Refs that moved: after a push to a hosted repository, and by polling every other project's
//! repository at its interval (`git ls-remote`, or `for-each-ref` for a local path). Either way
//! the refs are compared with the ones last recorded in the store, and each one that moved
//! goes to [`crate::triggers::on_change`]. The first poll of a project only records its refs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use slipway_engine::events::now_ms;
use slipway_store::ProjectRow;
use slipway_store::db::RefUpdate;
use tokio_util::sync::CancellationToken;

use crate::triggers::{self, Change, Origin, Outcome, ZERO_SHA};
use crate::{AppState, hosting, source};

/// One ref comparison at a time per repository, so each move is handed on exactly once.
static LOCKS: LazyLock<std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

fn lock_for(dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
    LOCKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(dir.to_path_buf())
        .or_default()
        .clone()
}

/// After a push to a hosted repository was answered: its moved refs go to the triggers with
/// source `push`.
pub async fn after_push(state: &AppState, project: &ProjectRow) {
    let dir = PathBuf::from(&project.git);
    let r = sync(state, project, &dir, "push", false, || {
        source::local_refs(&dir)
    })
    .await;
    if let Err(e) = r {
        tracing::warn!(project = %project.name, error = %e, "reading the refs after a push");
    }
}

/// Polls one project now: reads its refs and hands on what moved (only records them the first
/// time).
pub async fn poll_project(state: &AppState, project: &ProjectRow) -> Result<Vec<Outcome>, String> {
    let settings = state
        .sched
        .db
        .source_settings(project.id)
        .await
        .map_err(|e| e.to_string())?;
    let dir = source::repo_dir(&state.config.data, &project.name, &project.git);
    let local = dir == Path::new(&project.git);
    let data = state.config.data.clone();
    let url = project.git.clone();
    let first = settings.refs_seen_ms.is_none();
    sync(state, project, &dir, "poll", first, || async {
        if local {
            source::local_refs(&dir).await
        } else {
            source::remote_refs(&data, &url).await
        }
    })
    .await
}

/// Reads the refs (under the repository's lock), records what changed and hands each move to
/// the triggers, in ref order. Recorded before the triggers run: a crash in between loses that
/// evaluation rather than starting an execution twice.
async fn sync<F, Fut>(
    state: &AppState,
    project: &ProjectRow,
    dir: &Path,
    source_name: &str,
    record_only: bool,
    read: F,
) -> Result<Vec<Outcome>, String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<BTreeMap<String, String>, source::SourceError>>,
{
    let lock = lock_for(dir);
    let _one_at_a_time = lock.lock().await;
    let db = &state.sched.db;
    let stored = db
        .source_refs(project.id)
        .await
        .map_err(|e| e.to_string())?;
    let current = read().await.map_err(|e| e.to_string())?;
    let moved = moved_refs(&stored, &current);
    if moved.is_empty() && !record_only {
        return Ok(Vec::new());
    }
    db.record_source_refs(project.id, &moved, now_ms())
        .await
        .map_err(|e| e.to_string())?;
    if record_only {
        tracing::info!(project = %project.name, refs = current.len(), "first poll: refs recorded");
        return Ok(Vec::new());
    }
    let mut outcomes = Vec::new();
    for u in moved {
        let change = Change::Push {
            before: stored.get(&u.git_ref).cloned(),
            after: u.sha.clone().unwrap_or_else(|| ZERO_SHA.to_string()),
            git_ref: u.git_ref.clone(),
            pusher: None,
        };
        let origin = Origin {
            source: source_name.to_string(),
            delivery: None,
        };
        match triggers::on_change(&state.sched, project, change, origin).await {
            Ok(o) => outcomes.push(o),
            Err(e) => tracing::warn!(
                project = %project.name,
                git_ref = %u.git_ref,
                error = %e.message,
                "evaluating a moved ref"
            ),
        }
    }
    Ok(outcomes)
}

/// What differs between the recorded refs and the current ones: new and moved refs with their
/// object, deleted ones with none.
pub fn moved_refs(
    stored: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> Vec<RefUpdate> {
    let mut out: Vec<RefUpdate> = current
        .iter()
        .filter(|(r, sha)| stored.get(*r) != Some(sha))
        .map(|(r, sha)| RefUpdate {
            git_ref: r.clone(),
            sha: Some(sha.clone()),
        })
        .collect();
    out.extend(
        stored
            .keys()
            .filter(|r| !current.contains_key(*r))
            .map(|r| RefUpdate {
                git_ref: r.clone(),
                sha: None,
            }),
    );
    out.sort_by(|a, b| a.git_ref.cmp(&b.git_ref));
    out
}

/// Polls every project that is due, until shutdown. Hosted repositories are not polled
/// (their pushes arrive through the server).
pub async fn run_periodically(state: AppState, shutdown: CancellationToken) {
    let mut last: HashMap<i64, Instant> = HashMap::new();
    let busy: Arc<std::sync::Mutex<std::collections::HashSet<i64>>> = Arc::default();
    let mut failing: HashMap<i64, String> = HashMap::new();
    let (err_tx, mut err_rx) =
        tokio::sync::mpsc::unbounded_channel::<(i64, String, Option<String>)>();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        while let Ok((id, name, err)) = err_rx.try_recv() {
            match err {
                Some(e) if failing.get(&id) != Some(&e) => {
                    tracing::warn!(project = %name, error = %e, "polling the repository");
                    failing.insert(id, e);
                }
                Some(_) => {}
                None => {
                    failing.remove(&id);
                }
            }
        }
        let (projects, settings) = match (
            state.sched.db.projects().await,
            state.sched.db.all_source_settings().await,
        ) {
            (Ok(p), Ok(s)) => (p, s),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "polling: reading projects");
                continue;
            }
        };
        for p in projects {
            if hosting::is_hosted(&state.config.data, &p) {
                continue;
            }
            let interval = match settings.get(&p.id).and_then(|s| s.poll_interval_ms) {
                Some(ms) => Duration::from_millis(ms.max(0) as u64),
                None => state.config.sources.poll_interval,
            };
            if interval.is_zero() {
                continue;
            }
            if last.get(&p.id).is_some_and(|t| t.elapsed() < interval) {
                continue;
            }
            if !busy.lock().unwrap_or_else(|e| e.into_inner()).insert(p.id) {
                continue;
            }
            last.insert(p.id, Instant::now());
            let (state, busy, err_tx) = (state.clone(), busy.clone(), err_tx.clone());
            tokio::spawn(async move {
                let r = poll_project(&state, &p).await;
                busy.lock().unwrap_or_else(|e| e.into_inner()).remove(&p.id);
                let _ = err_tx.send((p.id, p.name.clone(), r.err()));
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(r, s)| (r.to_string(), s.to_string()))
            .collect()
    }

    #[test]
    fn moved_refs_are_new_moved_and_deleted_in_ref_order() {
        let stored = refs(&[
            ("refs/heads/main", "a"),
            ("refs/tags/v1", "t"),
            ("refs/heads/old", "o"),
        ]);
        let current = refs(&[
            ("refs/heads/main", "b"),
            ("refs/tags/v1", "t"),
            ("refs/heads/new", "n"),
        ]);
        let got: Vec<(String, Option<String>)> = moved_refs(&stored, &current)
            .into_iter()
            .map(|u| (u.git_ref, u.sha))
            .collect();
        assert_eq!(
            got,
            vec![
                ("refs/heads/main".into(), Some("b".into())),
                ("refs/heads/new".into(), Some("n".into())),
                ("refs/heads/old".into(), None),
            ]
        );
        assert!(moved_refs(&current, &current).is_empty());
    }
}
