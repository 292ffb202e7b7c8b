//! Tests of the sources' tables, against SQLite and PostgreSQL (see `db/tests.rs`).

use super::super::tests::{Case, run};
use super::*;

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(crate::db::DbKind::Sqlite, super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(crate::db::DbKind::Postgres, super::$name).await
                }
            )*
        }
    };
}

both_backends!(
    poll_interval_defaults_then_set_then_reset,
    refs_are_recorded_moved_and_deleted,
    a_scheduled_minute_is_claimed_once,
);

fn update(git_ref: &str, sha: Option<&str>) -> RefUpdate {
    RefUpdate {
        git_ref: git_ref.into(),
        sha: sha.map(String::from),
    }
}

async fn poll_interval_defaults_then_set_then_reset(c: Case) {
    let p = c.db.create_project("hello", "/repo", 1).await.unwrap();
    assert_eq!(
        c.db.source_settings(p.id).await.unwrap(),
        SourceSettings::default()
    );
    c.db.set_poll_interval(p.id, Some(30_000)).await.unwrap();
    c.db.record_source_refs(p.id, &[], 5).await.unwrap();
    let s = c.db.source_settings(p.id).await.unwrap();
    assert_eq!(s.poll_interval_ms, Some(30_000));
    assert_eq!(s.refs_seen_ms, Some(5));
    c.db.set_poll_interval(p.id, Some(0)).await.unwrap();
    assert_eq!(
        c.db.all_source_settings().await.unwrap()[&p.id].poll_interval_ms,
        Some(0)
    );
    c.db.set_poll_interval(p.id, None).await.unwrap();
    let s = c.db.source_settings(p.id).await.unwrap();
    assert_eq!((s.poll_interval_ms, s.refs_seen_ms), (None, Some(5)));
}

async fn refs_are_recorded_moved_and_deleted(c: Case) {
    let p = c.db.create_project("hello", "/repo", 1).await.unwrap();
    let other = c.db.create_project("other", "/repo", 1).await.unwrap();
    c.db.record_source_refs(
        p.id,
        &[
            update("refs/heads/main", Some("aaa")),
            update("refs/tags/v1", Some("bbb")),
        ],
        10,
    )
    .await
    .unwrap();
    c.db.record_source_refs(other.id, &[update("refs/heads/main", Some("zzz"))], 10)
        .await
        .unwrap();
    c.db.record_source_refs(
        p.id,
        &[
            update("refs/heads/main", Some("ccc")),
            update("refs/tags/v1", None),
            update("refs/heads/gone", None),
        ],
        20,
    )
    .await
    .unwrap();
    let refs = c.db.source_refs(p.id).await.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs["refs/heads/main"], "ccc");
    assert_eq!(
        c.db.source_refs(other.id).await.unwrap()["refs/heads/main"],
        "zzz"
    );
    assert_eq!(
        c.db.source_settings(p.id).await.unwrap().refs_seen_ms,
        Some(20)
    );
}

async fn a_scheduled_minute_is_claimed_once(c: Case) {
    let p = c.db.create_project("hello", "/repo", 1).await.unwrap();
    let cron = "*/5 * * * *";
    assert_eq!(
        c.db.schedule_fired(p.id, "nightly", cron).await.unwrap(),
        None
    );
    assert!(
        c.db.claim_schedule(p.id, "nightly", cron, 60_000)
            .await
            .unwrap()
    );
    assert!(
        !c.db
            .claim_schedule(p.id, "nightly", cron, 60_000)
            .await
            .unwrap()
    );
    // An earlier minute never fires after a later one did.
    assert!(!c.db.claim_schedule(p.id, "nightly", cron, 0).await.unwrap());
    // Another cron line of the same pipeline is its own.
    assert!(
        c.db.claim_schedule(p.id, "nightly", "0 3 * * *", 60_000)
            .await
            .unwrap()
    );
    assert!(
        c.db.claim_schedule(p.id, "nightly", cron, 120_000)
            .await
            .unwrap()
    );
    assert_eq!(
        c.db.schedule_fired(p.id, "nightly", cron).await.unwrap(),
        Some(120_000)
    );
}
