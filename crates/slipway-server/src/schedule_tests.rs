//! Schedules over a real repository and store, with time passed in: due minutes, one firing
//! per minute across ticks and restarts, catch-up limited to the latest missed minute.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use slipway_store::Db;

use super::*;

/// 2026-01-01T00:00:00Z, a Thursday.
const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;

fn cron(text: &str) -> Cron {
    Cron::parse(text).unwrap()
}

#[test]
fn latest_due_minute() {
    let every5 = cron("*/5 * * * *");
    // (cron, after, now, due)
    let cases: &[(&Cron, i64, i64, Option<i64>)] = &[
        (&every5, T0 - MIN, T0 + 30_000, Some(T0)),
        (&every5, T0, T0 + 30_000, None),
        (&every5, T0, T0 + 4 * MIN, None),
        // Missed 00:05, 00:10, 00:15: only the latest fires.
        (&every5, T0, T0 + 17 * MIN, Some(T0 + 15 * MIN)),
        // Older than an hour: skipped.
        (&cron("0 0 * * *"), T0 - MIN, T0 + 61 * MIN, None),
        (&cron("0 0 * * *"), T0 - MIN, T0 + 59 * MIN, Some(T0)),
    ];
    for (i, (c, after, now, want)) in cases.iter().enumerate() {
        assert_eq!(latest_due(c, None, *after, *now), *want, "case {i}");
    }
    // 09:00 in Paris is 08:00 UTC in January.
    let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let nine = cron("0 9 * * *");
    assert_eq!(
        latest_due(&nine, Some(&paris), T0, T0 + 8 * 60 * MIN),
        Some(T0 + 8 * 60 * MIN)
    );
    assert_eq!(latest_due(&nine, None, T0, T0 + 8 * 60 * MIN), None);
    // Thursday is day 4.
    assert_eq!(latest_due(&cron("0 0 * * 4"), None, T0 - MIN, T0), Some(T0));
    assert_eq!(latest_due(&cron("0 0 * * 5"), None, T0 - MIN, T0), None);
}

fn git(dir: &Path, args: &[&str]) {
    crate::triggers::tests::git(dir, args);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_per_minute_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".slipway")).unwrap();
    std::fs::write(
        repo.join(".slipway/pipeline.yml"),
        "name: nightly\ntriggers:\n  - schedule: \"*/5 * * * *\"\nstages:\n  - name: build\n    actions:\n      - name: step\n        type: build\n        executor: local\n        buildspec: step.yml\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("step.yml"),
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo tick\n",
    )
    .unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("work")).unwrap();
    let url = format!("sqlite:{}", data.join("slipway.db").display());
    let db = Db::connect(&url).await.unwrap();
    let engine = crate::tests::engine(&data).await;
    let sched = Scheduler::new(Arc::new(db), data.clone(), engine, 4);
    let p = sched
        .db
        .create_project("hello", repo.to_str().unwrap(), 1)
        .await
        .unwrap();

    let fired = |f: Vec<Fired>| -> Vec<i64> {
        f.into_iter()
            .map(|f| {
                let o = f.outcome.unwrap();
                assert_eq!(o.started.len(), 1, "{o:?}");
                f.minute_ms
            })
            .collect()
    };
    let mut s = Schedules::default();
    // First seen at 00:04:30: 00:04 does not match, and nothing before counts.
    assert_eq!(
        fired(s.tick(&sched, T0 + 4 * MIN + 30_000).await),
        Vec::<i64>::new()
    );
    assert_eq!(
        fired(s.tick(&sched, T0 + 5 * MIN + 1_000).await),
        vec![T0 + 5 * MIN]
    );
    assert_eq!(
        fired(s.tick(&sched, T0 + 5 * MIN + 50_000).await),
        Vec::<i64>::new()
    );
    // A restart: a new loop over the same store does not fire 00:05 again...
    let mut s = Schedules::default();
    assert_eq!(
        fired(s.tick(&sched, T0 + 5 * MIN + 55_000).await),
        Vec::<i64>::new()
    );
    // ...and after a pause fires once, for the latest missed minute.
    assert_eq!(
        fired(s.tick(&sched, T0 + 21 * MIN).await),
        vec![T0 + 20 * MIN]
    );
    let rows = sched.db.executions(p.id, None, 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.trigger == "schedule"
        && r.pipeline == "nightly"
        && r.source_ref.as_deref() == Some("refs/heads/main")));
    // The schedule removed from the default branch: nothing more fires.
    std::fs::write(
        repo.join(".slipway/pipeline.yml"),
        "name: nightly\nstages:\n  - name: build\n    actions:\n      - name: step\n        type: build\n        executor: local\n        buildspec: step.yml\n",
    )
    .unwrap();
    git(&repo, &["commit", "-q", "-am", "no schedule"]);
    assert_eq!(
        fired(s.tick(&sched, T0 + 25 * MIN).await),
        Vec::<i64>::new()
    );
    sched.shutdown(Duration::from_secs(10)).await;
}
