//! Cron schedules: every minute, the pipelines of each project's default branch (read once per
//! commit) are checked for `schedule` triggers due in that minute, which fire
//! [`Change::Schedule`] through [`crate::triggers::on_change`].
//!
//! Each fired minute is claimed in the store first (`schedule_state`), so a restart, or a
//! second tick in the same minute, never fires it twice. A schedule fires only for minutes
//! after the server first saw it. After a pause (a restart, a stopped server) it fires once,
//! for its latest scheduled minute within [`CATCH_UP`], and never for older missed minutes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use slipway_engine::events::now_ms;
use slipway_spec::pipeline::{Cron, Trigger};
use slipway_store::ProjectRow;
use tokio_util::sync::CancellationToken;

use crate::scheduler::Scheduler;
use crate::source;
use crate::triggers::{self, Change, Origin, Outcome};

/// How far back a missed scheduled minute still fires (once, the latest one).
pub const CATCH_UP: Duration = Duration::from_secs(3600);

const MINUTE_MS: i64 = 60_000;

/// One schedule of one pipeline, as read from the default branch.
#[derive(Clone, Debug)]
struct Entry {
    pipeline: String,
    /// As written in the file (normalized): the key its state is stored under.
    cron_text: String,
    cron: Cron,
    /// `None`: UTC.
    timezone: Option<jiff::tz::TimeZone>,
}

/// What a tick fired.
#[derive(Debug)]
pub struct Fired {
    pub project: String,
    pub pipeline: String,
    /// The scheduled minute (Unix ms).
    pub minute_ms: i64,
    pub outcome: Result<Outcome, String>,
}

/// The schedules of every project, cached by the default branch's commit.
#[derive(Default)]
pub struct Schedules {
    cache: HashMap<i64, (String, Vec<Entry>)>,
}

impl Schedules {
    /// Fires every schedule due at `now_ms` (normally the current time; tests pass others).
    pub async fn tick(&mut self, sched: &Arc<Scheduler>, now_ms: i64) -> Vec<Fired> {
        let mut fired = Vec::new();
        let projects = match sched.db.projects().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "schedules: reading projects");
                return fired;
            }
        };
        for p in projects {
            let Some(entries) = self.entries(sched, &p).await else {
                continue;
            };
            for e in entries {
                if let Some(f) = fire_if_due(sched, &p, &e, now_ms).await {
                    fired.push(f);
                }
            }
        }
        fired
    }

    /// The project's schedules at its default branch's head (re-read when the head moved).
    async fn entries(&mut self, sched: &Arc<Scheduler>, p: &ProjectRow) -> Option<Vec<Entry>> {
        let dir = source::repo_dir(&sched.data, &p.name, &p.git);
        if !dir.exists() {
            // A remote repository not mirrored yet (no poll or start so far).
            if let Err(e) = source::refresh(&sched.data, &p.name, &p.git).await {
                tracing::debug!(project = %p.name, error = %e, "schedules: cannot read the repository");
                return None;
            }
        }
        // An empty repository (a new hosted one) has no HEAD: nothing is scheduled.
        let head = source::resolve(&dir, None).await.ok()?;
        if let Some((sha, entries)) = self.cache.get(&p.id)
            && *sha == head
        {
            return Some(entries.clone());
        }
        let entries = read_entries(&dir, &head, p).await;
        self.cache.insert(p.id, (head, entries.clone()));
        Some(entries)
    }
}

async fn read_entries(dir: &Path, head: &str, p: &ProjectRow) -> Vec<Entry> {
    let pipelines = match source::pipelines_at(dir, head, &p.name).await {
        Ok(Ok(p)) => p,
        Ok(Err(_)) | Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    for pl in pipelines {
        for t in &pl.triggers {
            let Trigger::Schedule(s) = t else { continue };
            let Ok(cron) = s.parsed() else { continue };
            let timezone = match s.timezone.as_deref() {
                None => None,
                Some(name) => match jiff::tz::TimeZone::get(name) {
                    Ok(tz) => Some(tz),
                    Err(e) => {
                        tracing::warn!(project = %p.name, pipeline = %pl.name, timezone = name,
                            error = %e, "schedule skipped: unknown time zone");
                        continue;
                    }
                },
            };
            out.push(Entry {
                pipeline: pl.name.clone(),
                cron_text: s.cron.clone(),
                cron,
                timezone,
            });
        }
    }
    out
}

async fn fire_if_due(
    sched: &Arc<Scheduler>,
    p: &ProjectRow,
    e: &Entry,
    now_ms: i64,
) -> Option<Fired> {
    let db = &sched.db;
    let this_minute = now_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
    let last = match db.schedule_fired(p.id, &e.pipeline, &e.cron_text).await {
        Ok(Some(last)) => last,
        Ok(None) => {
            // First seen now: only minutes from this one on fire.
            let seen = this_minute - MINUTE_MS;
            db.claim_schedule(p.id, &e.pipeline, &e.cron_text, seen)
                .await
                .ok()?;
            seen
        }
        Err(err) => {
            tracing::warn!(error = %err, "schedules: reading their state");
            return None;
        }
    };
    let minute = latest_due(&e.cron, e.timezone.as_ref(), last, now_ms)?;
    match db
        .claim_schedule(p.id, &e.pipeline, &e.cron_text, minute)
        .await
    {
        Ok(true) => {}
        Ok(false) => return None,
        Err(err) => {
            tracing::warn!(error = %err, "schedules: claiming a minute");
            return None;
        }
    }
    let change = Change::Schedule {
        pipeline: e.pipeline.clone(),
        cron: e.cron_text.clone(),
    };
    let origin = Origin {
        source: "schedule".into(),
        delivery: None,
    };
    let outcome = triggers::on_change(sched, p, change, origin)
        .await
        .map_err(|e| e.message);
    if let Err(err) = &outcome {
        tracing::warn!(project = %p.name, pipeline = %e.pipeline, error = %err, "a schedule fired and could not start");
    }
    Some(Fired {
        project: p.name.clone(),
        pipeline: e.pipeline.clone(),
        minute_ms: minute,
        outcome,
    })
}

/// The latest minute at or before `now_ms`, after `after_ms` and within [`CATCH_UP`], at which
/// the cron expression matches (on the time zone's wall clock; UTC when none).
pub fn latest_due(
    cron: &Cron,
    timezone: Option<&jiff::tz::TimeZone>,
    after_ms: i64,
    now_ms: i64,
) -> Option<i64> {
    let this_minute = now_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
    let floor = after_ms.max(now_ms - CATCH_UP.as_millis() as i64);
    let utc = jiff::tz::TimeZone::UTC;
    let tz = timezone.unwrap_or(&utc);
    let mut m = this_minute;
    while m > floor {
        let t = jiff::Timestamp::from_millisecond(m)
            .ok()?
            .to_zoned(tz.clone());
        let weekday = t.weekday().to_sunday_zero_offset() as u32;
        if cron.matches(
            t.minute() as u32,
            t.hour() as u32,
            t.day() as u32,
            t.month() as u32,
            weekday,
        ) {
            return Some(m);
        }
        m -= MINUTE_MS;
    }
    None
}

/// Ticks at the start of every minute until shutdown (and once at start, to catch up).
pub async fn run_periodically(sched: Arc<Scheduler>, shutdown: CancellationToken) {
    let mut schedules = Schedules::default();
    loop {
        schedules.tick(&sched, now_ms()).await;
        let now = now_ms();
        let next = (now.div_euclid(MINUTE_MS) + 1) * MINUTE_MS + 200;
        let wait = Duration::from_millis((next - now).max(0) as u64);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
