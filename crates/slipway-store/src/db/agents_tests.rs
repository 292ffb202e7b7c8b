//! Tests of the agents' tables, against SQLite and PostgreSQL (see `db/tests.rs`).

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
    agents_register_with_a_stored_token_hash,
    a_job_is_leased_once_renewed_acked_and_finished,
    a_lapsed_lease_is_lost_and_stays_lost,
);

fn job(execution_id: i64, attempt: u32) -> NewJob {
    NewJob {
        execution_id,
        stage: "build".into(),
        action: "compile".into(),
        attempt,
        labels: vec!["linux".into()],
        executor: "local".into(),
        spec: "{}".into(),
        now_ms: 1,
    }
}

async fn agents_register_with_a_stored_token_hash(c: Case) {
    c.db.create_registration_token("r1", 1).await.unwrap();
    assert_eq!(
        c.db.registration_token("r1").await.unwrap().as_deref(),
        Some("r1")
    );
    assert_eq!(c.db.registration_token("nope").await.unwrap(), None);
    let a =
        c.db.register_agent(&NewAgent {
            name: "box".into(),
            labels: vec!["linux".into(), "x86".into()],
            executors: vec!["local".into()],
            concurrency: 2,
            agent_version: "0.1.0".into(),
            token_hash: "h1".into(),
            now_ms: 5,
        })
        .await
        .unwrap();
    let (found, hash) = c.db.agent_by_token("h1").await.unwrap().unwrap();
    assert_eq!((found.clone(), hash.as_str()), (a.clone(), "h1"));
    c.db.touch_agent(a.id, 9).await.unwrap();
    let all = c.db.agents().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].last_contact_ms, 9);
    assert_eq!(all[0].labels, vec!["linux", "x86"]);
}

async fn a_job_is_leased_once_renewed_acked_and_finished(c: Case) {
    let p = c.db.create_project("hello", "/repo", 1).await.unwrap();
    let e =
        c.db.create_execution(&crate::db::NewExecution {
            project_id: p.id,
            pipeline: "p".into(),
            trigger: "api".into(),
            created_ms: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let j = c.db.queue_job(&job(e.id, 1)).await.unwrap();
    assert_eq!(j.state, JobState::Queued);
    // Queuing the same attempt again (a restarted server) finds the same job.
    assert_eq!(c.db.queue_job(&job(e.id, 1)).await.unwrap().id, j.id);
    assert_eq!(c.db.queued_jobs().await.unwrap().len(), 1);
    assert!(c.db.claim_job(j.id, 7, "L1", 100, 10).await.unwrap());
    assert!(
        !c.db.claim_job(j.id, 8, "L2", 100, 10).await.unwrap(),
        "leased twice"
    );
    assert_eq!(
        c.db.renew_lease(j.id, "L1", 200).await.unwrap(),
        Some(false)
    );
    assert_eq!(c.db.renew_lease(j.id, "L2", 200).await.unwrap(), None);
    let leased = c.db.leased_jobs().await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(
        (
            leased[0].project.as_str(),
            leased[0].number,
            leased[0].agent_id
        ),
        ("hello", e.number, 7)
    );
    assert!(c.db.ack_chunk(j.id, "L1", 1, 40).await.unwrap());
    assert!(
        !c.db.ack_chunk(j.id, "L1", 1, 40).await.unwrap(),
        "only forward"
    );
    c.db.request_job_cancel(j.id).await.unwrap();
    assert_eq!(c.db.renew_lease(j.id, "L1", 300).await.unwrap(), Some(true));
    assert_eq!(c.db.open_jobs(e.id).await.unwrap().len(), 1);
    assert!(!c.db.finish_job(j.id, Some("L2"), "{}", 20).await.unwrap());
    assert!(
        c.db.finish_job(j.id, Some("L1"), "{\"status\":\"succeeded\"}", 20)
            .await
            .unwrap()
    );
    assert!(
        !c.db.finish_job(j.id, Some("L1"), "{}", 21).await.unwrap(),
        "finished twice"
    );
    let done = c.db.job(j.id).await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.acked_chunk, done.acked_seq),
        (JobState::Done, 1, 40)
    );
    assert_eq!(done.result.as_deref(), Some("{\"status\":\"succeeded\"}"));
    assert!(c.db.open_jobs(e.id).await.unwrap().is_empty());
    assert_eq!(c.db.prune_jobs(21).await.unwrap(), 1);
    assert!(c.db.job(j.id).await.unwrap().is_none());
}

async fn a_lapsed_lease_is_lost_and_stays_lost(c: Case) {
    let j = c.db.queue_job(&job(1, 1)).await.unwrap();
    assert!(c.db.claim_job(j.id, 7, "L1", 100, 10).await.unwrap());
    assert!(c.db.expired_leases(100).await.unwrap().is_empty());
    // A server that restarts gives held leases a fresh term first.
    assert_eq!(c.db.extend_leases(150).await.unwrap(), 1);
    let lapsed = c.db.expired_leases(151).await.unwrap();
    assert_eq!(lapsed.len(), 1);
    // A heartbeat that renewed it in between wins over the expiry.
    assert_eq!(
        c.db.renew_lease(j.id, "L1", 400).await.unwrap(),
        Some(false)
    );
    assert!(!c.db.expire_lease(j.id, 151, "{}").await.unwrap());
    assert!(
        c.db.expire_lease(j.id, 401, "{\"status\":\"fault\"}")
            .await
            .unwrap()
    );
    // The late agent finds its lease gone.
    assert_eq!(c.db.renew_lease(j.id, "L1", 900).await.unwrap(), None);
    assert!(!c.db.ack_chunk(j.id, "L1", 1, 1).await.unwrap());
    assert!(!c.db.finish_job(j.id, Some("L1"), "{}", 500).await.unwrap());
}
