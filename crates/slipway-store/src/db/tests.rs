//! Tests of the state database. Every test in `backend_tests!` runs twice, against SQLite (in a
//! temporary directory) and against PostgreSQL (a fresh database per test in the cluster that
//! `SLIPWAY_TEST_POSTGRES_URL` names; scripts/provision.sh makes one).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use slipway_proto::{ArtifactRef, EVENT_SCHEMA_VERSION, EventBody, ReportSummary};
use sqlx::Connection as _;

use super::*;

const POSTGRES_URL_VAR: &str = "SLIPWAY_TEST_POSTGRES_URL";
const SKIP_POSTGRES_VAR: &str = "SLIPWAY_SKIP_POSTGRES_TESTS";

/// A fresh database that `cleanup` removes: a temporary directory or a PostgreSQL database.
struct Scratch {
    url: String,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the admin URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
}

impl Scratch {
    /// None when PostgreSQL tests are skipped (loudly) by SLIPWAY_SKIP_POSTGRES_TESTS=1.
    async fn new(kind: DbKind) -> Option<Scratch> {
        match kind {
            DbKind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                Some(Scratch {
                    url: format!("sqlite:{}", dir.path().join("state/slipway.db").display()),
                    _dir: Some(dir),
                    postgres: None,
                })
            }
            DbKind::Postgres => {
                let Ok(admin) = std::env::var(POSTGRES_URL_VAR) else {
                    if std::env::var(SKIP_POSTGRES_VAR).as_deref() == Ok("1") {
                        eprintln!(
                            "\n!!!!!!!! SKIPPED: PostgreSQL tests: {POSTGRES_URL_VAR} is not set \
                             and {SKIP_POSTGRES_VAR}=1 !!!!!!!!\n"
                        );
                        return None;
                    }
                    panic!(
                        "{POSTGRES_URL_VAR} is not set: the PostgreSQL tests need a server \
                         (scripts/provision.sh starts one and writes its URL to \
                         /tmp/slipway-ci/pg.url; scripts/test.sh sets the variable), or set \
                         {SKIP_POSTGRES_VAR}=1 to skip them"
                    );
                };
                let name = format!("t_{}", uuid::Uuid::now_v7().simple());
                install_drivers();
                let mut conn = AnyConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR}={admin}: {e}"));
                conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                Some(Scratch {
                    url: with_database(&admin, &name),
                    _dir: None,
                    postgres: Some((admin, name)),
                })
            }
        }
    }

    async fn cleanup(self) {
        if let Some((admin, name)) = &self.postgres {
            let mut conn = AnyConnection::connect(admin).await.unwrap();
            conn.execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
            .unwrap();
            conn.close().await.unwrap();
        }
    }
}

/// `url` with its database (path) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// A test's database, connected and migrated, with the URL it came from.
pub(super) struct Case {
    pub(super) db: Db,
    url: String,
}

/// Runs `test` on a fresh database of `kind`, then removes the database, even when the test
/// panics (the panic is passed on).
pub(super) async fn run<F, Fut>(kind: DbKind, test: F)
where
    F: FnOnce(Case) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(scratch) = Scratch::new(kind).await else {
        return;
    };
    let db = Db::connect(&scratch.url).await.unwrap();
    assert_eq!(db.kind(), kind);
    let outcome = tokio::spawn(test(Case {
        db,
        url: scratch.url.clone(),
    }))
    .await;
    scratch.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Generates `sqlite::NAME` and `postgres::NAME` for each `async fn NAME(Case)`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(super::DbKind::Sqlite, super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(super::DbKind::Postgres, super::$name).await
                }
            )*
        }
    };
}

backend_tests!(
    connect_twice_migrates_once,
    project_names_are_unique,
    concurrent_creates_get_distinct_numbers,
    concurrent_writers_do_not_lock_each_other_out,
    executions_list_newest_first_and_by_status,
    execution_status_sets_start_once_and_finish_when_terminal,
    events_project_onto_execution_and_actions,
    execution_resumed_runs_again,
    a_retried_append_changes_nothing,
    events_page_in_order,
    approvals_are_decided_once,
    prune_keeps_the_newest_and_the_newest_succeeded,
    prune_by_age_spares_unfinished,
    deleting_an_execution_removes_its_rows_and_blob_references,
    export_then_import_into_both_backends,
    export_is_one_snapshot_while_events_are_appended,
    import_refuses_a_database_with_data,
    unparsable_rows_are_corrupt_not_panics,
    appending_10k_log_events_is_fast,
);

// ---------------------------------------------------------------- helpers

fn event(seq: u64, body: EventBody) -> Event {
    Event {
        v: EVENT_SCHEMA_VERSION,
        seq,
        time_ms: 1_000 + seq as i64,
        execution: "hello#1".into(),
        body,
    }
}

fn log(seq: u64, text: &str) -> Event {
    event(
        seq,
        EventBody::Log {
            stage: "build".into(),
            action: "test".into(),
            text: format!("{text}\n"),
        },
    )
}

fn action_started(seq: u64, action: &str, attempt: u32, kind: &str) -> Event {
    event(
        seq,
        EventBody::ActionStarted {
            stage: "build".into(),
            action: action.into(),
            attempt,
            kind: kind.into(),
            executor: (kind == "build").then(|| "local".into()),
        },
    )
}

fn action_finished(
    seq: u64,
    action: &str,
    attempt: u32,
    status: Status,
    log: Option<Digest>,
) -> Event {
    event(
        seq,
        EventBody::ActionFinished {
            stage: "build".into(),
            action: action.into(),
            attempt,
            status,
            duration_ms: 5,
            reason: (!status.is_success()).then(|| format!("attempt {attempt} {status}")),
            outputs: BTreeMap::new(),
            artifacts: Vec::new(),
            reports: Vec::new(),
            log,
        },
    )
}

async fn project(db: &Db, name: &str) -> ProjectRow {
    db.create_project(name, &format!("/src/{name}"), 100)
        .await
        .unwrap()
}

async fn execution(db: &Db, project_id: i64) -> ExecutionRow {
    db.create_execution(&NewExecution {
        project_id,
        pipeline: "pipeline".into(),
        trigger: "api".into(),
        created_ms: 200,
        ..NewExecution::default()
    })
    .await
    .unwrap()
}

/// An execution that ended with `status` at `finished_ms`.
async fn finished(db: &Db, project_id: i64, status: Status, finished_ms: i64) -> ExecutionRow {
    let e = execution(db, project_id).await;
    db.set_execution_status(e.id, status, None, finished_ms)
        .await
        .unwrap();
    db.execution_by_id(e.id).await.unwrap().unwrap()
}

fn numbers(rows: &[ExecutionRow]) -> Vec<u64> {
    rows.iter().map(|e| e.number).collect()
}

// ---------------------------------------------------------------- connecting

#[test]
fn database_urls_resolve_to_a_driver_or_are_refused() {
    let cwd = std::env::current_dir().unwrap();
    let sqlite = |path: &Path, url: &str| Target::Sqlite {
        path: path.to_path_buf(),
        url: url.to_string(),
    };
    let abs = |p: &str| sqlite(Path::new(p), &format!("sqlite://{p}?mode=rwc"));
    assert_eq!(
        parse_url("sqlite:/data/state.db").unwrap(),
        abs("/data/state.db")
    );
    assert_eq!(
        parse_url("sqlite:///data/state.db").unwrap(),
        abs("/data/state.db")
    );
    // Relative paths are made absolute (else `sqlite://Data/x` would read `Data` as a host).
    let rel = cwd.join("Data/x.db");
    assert_eq!(
        parse_url("sqlite://Data/x.db").unwrap(),
        sqlite(&rel, &format!("sqlite://{}?mode=rwc", rel.display()))
    );
    assert_eq!(
        parse_url("sqlite:Data/x.db").unwrap(),
        parse_url("sqlite://Data/x.db").unwrap()
    );
    // Characters that mean something in a URL are encoded; given parameters are kept.
    assert_eq!(
        parse_url("sqlite:/my data/a#b%c.db?mode=ro").unwrap(),
        sqlite(
            Path::new("/my data/a#b%c.db"),
            "sqlite:///my%20data/a%23b%25c.db?mode=ro"
        )
    );
    assert_eq!(
        parse_url("postgres://u@h:5/db").unwrap(),
        Target::Postgres {
            url: "postgres://u@h:5/db".into()
        }
    );
    assert!(matches!(
        parse_url("postgresql://h/db").unwrap(),
        Target::Postgres { .. }
    ));
    for bad in [
        "mysql://h/db",
        "state.db",
        "sqlite:",
        "sqlite://",
        "sqlite::memory:",
        "",
    ] {
        assert!(
            matches!(parse_url(bad), Err(DbError::BadUrl(u)) if u == bad),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_bad_url_is_refused_before_connecting() {
    let e = Db::connect("mysql://localhost/slipway")
        .await
        .err()
        .unwrap();
    assert!(matches!(e, DbError::BadUrl(_)), "{e}");
    assert_eq!(
        e.to_string(),
        "database URL `mysql://localhost/slipway`: expected sqlite:PATH or postgres://..."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_runs_in_wal_mode_with_its_settings_on_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    // A file name that needs encoding, in a directory that does not exist yet.
    let path = dir.path().join("new dir/state #1.db");
    let db = Db::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(path.exists());
    // Several connections at once, so the pool opens more than one.
    let mut conns = Vec::new();
    for _ in 0..SQLITE_POOL_SIZE {
        conns.push(db.pool.acquire().await.unwrap());
    }
    for conn in &mut conns {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(sync, 1, "synchronous = NORMAL");
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(busy, 5000);
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(fk, 1);
    }
    drop(conns);
    db.close().await;
}

async fn connect_twice_migrates_once(c: Case) {
    let p = project(&c.db, "hello").await;
    let again = Db::connect(&c.url).await.unwrap();
    assert_eq!(again.project("hello").await.unwrap(), Some(p));
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&again.pool)
        .await
        .unwrap();
    let known = match again.kind() {
        DbKind::Sqlite => SQLITE_MIGRATIONS.iter().count(),
        DbKind::Postgres => POSTGRES_MIGRATIONS.iter().count(),
    };
    assert_eq!(migrations as usize, known);
    again.close().await;
    // The other spelling of each scheme names the same database.
    let other = match c.url.split_once(':') {
        Some(("postgres", rest)) => format!("postgresql:{rest}"),
        Some(("sqlite", rest)) => format!("sqlite://{rest}"),
        _ => unreachable!("{}", c.url),
    };
    let again = Db::connect(&other).await.unwrap();
    assert_eq!(again.projects().await.unwrap().len(), 1, "{other}");
    again.close().await;
}

// ---------------------------------------------------------------- projects and executions

async fn project_names_are_unique(c: Case) {
    let db = &c.db;
    let b = db.create_project("beta", "/src/beta", 10).await.unwrap();
    let a = db
        .create_project("alpha", "https://example.com/a.git", 20)
        .await
        .unwrap();
    assert_eq!(
        a,
        ProjectRow {
            id: a.id,
            name: "alpha".into(),
            git: "https://example.com/a.git".into(),
            created_ms: 20,
            last_number: 0
        }
    );
    let e = db
        .create_project("alpha", "/elsewhere", 30)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, DbError::Conflict(what) if what == "project alpha"),
        "{e}"
    );
    assert_eq!(e.to_string(), "project alpha already exists");
    assert_eq!(db.projects().await.unwrap(), vec![a.clone(), b]);
    assert_eq!(db.project("alpha").await.unwrap(), Some(a));
    assert_eq!(db.project("gamma").await.unwrap(), None);
}

async fn concurrent_creates_get_distinct_numbers(c: Case) {
    let db = Arc::new(c.db);
    let p = project(&db, "hello").await;
    let other = project(&db, "other").await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let db = db.clone();
            let project_id = if i % 4 == 0 { other.id } else { p.id };
            tokio::spawn(async move { execution(&db, project_id).await })
        })
        .collect();
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    for t in tasks {
        let e = t.await.unwrap();
        assert_eq!(e.status, Status::Queued);
        if e.project_id == p.id {
            assert_eq!(e.project, "hello");
            mine.push(e.number);
        } else {
            theirs.push(e.number);
        }
    }
    mine.sort();
    theirs.sort();
    assert_eq!(mine, (1..=15).collect::<Vec<_>>());
    assert_eq!(theirs, (1..=5).collect::<Vec<_>>());
    assert_eq!(db.project("hello").await.unwrap().unwrap().last_number, 15);
    // A project that does not exist gets no execution.
    let missing = db
        .create_execution(&NewExecution {
            project_id: 9999,
            ..NewExecution::default()
        })
        .await;
    assert!(matches!(
        missing,
        Err(DbError::Sql(sqlx::Error::RowNotFound))
    ));
}

async fn concurrent_writers_do_not_lock_each_other_out(c: Case) {
    let db = Arc::new(c.db);
    let p = project(&db, "hello").await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let e = execution(&db, p.id).await;
                for batch in 0..10u64 {
                    let events: Vec<Event> =
                        (1..=50).map(|i| log(batch * 50 + i, "line")).collect();
                    db.append_events(e.id, &events).await.unwrap();
                    // Reads and other writes in between.
                    execution(&db, p.id).await;
                    db.events(e.id, 0, 10).await.unwrap();
                }
                e.id
            })
        })
        .collect();
    for t in tasks {
        let id = t.await.unwrap();
        assert_eq!(db.execution_by_id(id).await.unwrap().unwrap().last_seq, 500);
    }
    assert_eq!(db.project("hello").await.unwrap().unwrap().last_number, 88);
}

async fn executions_list_newest_first_and_by_status(c: Case) {
    let db = &c.db;
    let p = project(db, "hello").await;
    let other = project(db, "other").await;
    let mut vars = BTreeMap::new();
    vars.insert("ENV".to_string(), "prod".to_string());
    let first = db
        .create_execution(&NewExecution {
            project_id: p.id,
            pipeline: "deploy".into(),
            revision: Some("abc123".into()),
            source_ref: Some("main".into()),
            trigger: "rerun".into(),
            variables: vars.clone(),
            rerun_of: Some(7),
            created_ms: 1234,
        })
        .await
        .unwrap();
    assert_eq!(
        first,
        ExecutionRow {
            id: first.id,
            project_id: p.id,
            project: "hello".into(),
            number: 1,
            pipeline: "deploy".into(),
            revision: Some("abc123".into()),
            source_ref: Some("main".into()),
            trigger: "rerun".into(),
            variables: vars,
            status: Status::Queued,
            reason: None,
            created_ms: 1234,
            started_ms: None,
            finished_ms: None,
            rerun_of: Some(7),
            last_seq: 0,
        }
    );
    assert_eq!(db.execution(p.id, 1).await.unwrap(), Some(first.clone()));
    assert_eq!(
        db.execution_by_id(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(db.execution(p.id, 2).await.unwrap(), None);
    assert_eq!(db.execution(other.id, 1).await.unwrap(), None);

    for _ in 2..=5 {
        execution(db, p.id).await;
    }
    let o = execution(db, other.id).await;
    assert_eq!(
        numbers(&db.executions(p.id, None, 10).await.unwrap()),
        [5, 4, 3, 2, 1]
    );
    assert_eq!(
        numbers(&db.executions(p.id, None, 2).await.unwrap()),
        [5, 4]
    );
    assert_eq!(
        numbers(&db.executions(p.id, Some(4), 2).await.unwrap()),
        [3, 2]
    );
    assert_eq!(
        numbers(&db.executions(p.id, Some(1), 2).await.unwrap()),
        [] as [u64; 0]
    );

    let three = db.execution(p.id, 3).await.unwrap().unwrap();
    db.set_execution_status(three.id, Status::Running, None, 10)
        .await
        .unwrap();
    db.set_execution_status(o.id, Status::Waiting, None, 10)
        .await
        .unwrap();
    db.set_execution_status(first.id, Status::Failed, Some("boom"), 10)
        .await
        .unwrap();
    let live = db
        .executions_with_status(&[Status::Running, Status::Waiting])
        .await
        .unwrap();
    assert_eq!(
        live.iter().map(|e| e.id).collect::<Vec<_>>(),
        [three.id, o.id]
    );
    assert_eq!(db.executions_with_status(&[]).await.unwrap(), []);
    assert_eq!(
        db.count_by_status().await.unwrap(),
        [
            (Status::Failed, 1),
            (Status::Queued, 3),
            (Status::Running, 1),
            (Status::Waiting, 1)
        ]
    );
}

async fn execution_status_sets_start_once_and_finish_when_terminal(c: Case) {
    let db = &c.db;
    let p = project(db, "hello").await;
    let e = execution(db, p.id).await;
    let get = || async { db.execution_by_id(e.id).await.unwrap().unwrap() };
    db.set_execution_status(e.id, Status::Running, None, 10)
        .await
        .unwrap();
    let r = get().await;
    assert_eq!(
        (r.status, r.started_ms, r.finished_ms),
        (Status::Running, Some(10), None)
    );
    db.set_execution_status(e.id, Status::Failed, Some("exit 1"), 20)
        .await
        .unwrap();
    let r = get().await;
    assert_eq!(
        (r.status, r.started_ms, r.finished_ms, r.reason.as_deref()),
        (Status::Failed, Some(10), Some(20), Some("exit 1"))
    );
    // Running again (a resumed execution): the first start stays, the finish goes.
    db.set_execution_status(e.id, Status::Running, None, 30)
        .await
        .unwrap();
    let r = get().await;
    assert_eq!(
        (r.status, r.started_ms, r.finished_ms, r.reason),
        (Status::Running, Some(10), None, None)
    );
    db.set_execution_status(e.id, Status::Superseded, Some("newer push"), 40)
        .await
        .unwrap();
    let r = get().await;
    assert_eq!((r.status, r.finished_ms), (Status::Superseded, Some(40)));
}

// ---------------------------------------------------------------- events and projections

async fn events_project_onto_execution_and_actions(c: Case) {
    let db = &c.db;
    let p = project(db, "hello").await;
    let e = execution(db, p.id).await;
    let log1 = Digest::of(b"attempt 1 log");
    let log2 = Digest::of(b"attempt 2 log");
    let tarball = Digest::of(b"artifact");
    let mut outputs = BTreeMap::new();
    outputs.insert("VERSION".to_string(), "1.2.3".to_string());
    let artifacts = vec![ArtifactRef {
        name: "dist".into(),
        digest: tarball.clone(),
        size: 8,
        files: 1,
    }];
    let reports = vec![ReportSummary {
        name: "unit".into(),
        format: "JUNITXML".into(),
        total: 3,
        passed: 3,
        ..ReportSummary::default()
    }];

    let first = vec![
        event(
            1,
            EventBody::ExecutionStarted {
                pipeline: "pipeline".into(),
                revision: Some("abc".into()),
                trigger: "api".into(),
            },
        ),
        event(
            2,
            EventBody::StageStarted {
                stage: "build".into(),
            },
        ),
        action_started(3, "test", 1, "build"),
        event(
            4,
            EventBody::PhaseStarted {
                stage: "build".into(),
                action: "test".into(),
                phase: "BUILD".into(),
            },
        ),
        log(5, "running tests"),
        action_finished(6, "test", 1, Status::Failed, Some(log1.clone())),
    ];
    db.append_events(e.id, &first).await.unwrap();
    let r = db.execution_by_id(e.id).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.started_ms, r.last_seq),
        (Status::Running, Some(1_001), 6)
    );
    let [a] = &db.actions(e.id).await.unwrap()[..] else {
        panic!("one action")
    };
    assert_eq!(
        a,
        &ActionState {
            stage: "build".into(),
            action: "test".into(),
            kind: "build".into(),
            status: Status::Failed,
            attempt: 1,
            executor: Some("local".into()),
            started_ms: Some(1_003),
            finished_ms: Some(1_006),
            reason: Some("attempt 1 failed".into()),
            log: Some(log1.clone()),
            outputs: BTreeMap::new(),
            artifacts: vec![],
            reports: vec![],
        }
    );

    // The retry replaces the first attempt's results as soon as it starts.
    db.append_events(e.id, &[action_started(7, "test", 2, "build")])
        .await
        .unwrap();
    let [a] = &db.actions(e.id).await.unwrap()[..] else {
        panic!("one action")
    };
    assert_eq!(
        (
            a.status,
            a.attempt,
            a.started_ms,
            a.finished_ms,
            &a.reason,
            &a.log
        ),
        (Status::Running, 2, Some(1_007), None, &None, &None)
    );

    let mut second_finish = action_finished(8, "test", 2, Status::Succeeded, Some(log2.clone()));
    if let EventBody::ActionFinished {
        outputs: o,
        artifacts: a,
        reports: r,
        ..
    } = &mut second_finish.body
    {
        *o = outputs.clone();
        *a = artifacts.clone();
        *r = reports.clone();
    }
    let rest = vec![
        second_finish,
        action_started(9, "approve", 1, "approval"),
        event(
            10,
            EventBody::ApprovalWaiting {
                stage: "build".into(),
                action: "approve".into(),
                message: Some("ship it?".into()),
            },
        ),
    ];
    db.append_events(e.id, &rest).await.unwrap();
    let actions = db.actions(e.id).await.unwrap();
    assert_eq!(
        actions
            .iter()
            .map(|a| (a.action.as_str(), a.status))
            .collect::<Vec<_>>(),
        [("test", Status::Succeeded), ("approve", Status::Waiting)]
    );
    assert_eq!(
        actions[0],
        ActionState {
            stage: "build".into(),
            action: "test".into(),
            kind: "build".into(),
            status: Status::Succeeded,
            attempt: 2,
            executor: Some("local".into()),
            started_ms: Some(1_007),
            finished_ms: Some(1_008),
            reason: None,
            log: Some(log2.clone()),
            outputs,
            artifacts,
            reports,
        }
    );
    assert_eq!(actions[1].executor, None);
    assert_eq!(actions[1].kind, "approval");

    db.append_events(
        e.id,
        &[
            event(
                11,
                EventBody::ApprovalDecided {
                    stage: "build".into(),
                    action: "approve".into(),
                    approved: true,
                    by: "ann".into(),
                    comment: None,
                },
            ),
            action_finished(12, "approve", 1, Status::Succeeded, None),
            event(
                13,
                EventBody::StageFinished {
                    stage: "build".into(),
                    status: Status::Succeeded,
                    duration_ms: 12,
                },
            ),
            event(
                14,
                EventBody::ExecutionFinished {
                    status: Status::Succeeded,
                    duration_ms: 13,
                },
            ),
        ],
    )
    .await
    .unwrap();
    let actions = db.actions(e.id).await.unwrap();
    assert_eq!(actions[1].status, Status::Succeeded);
    let r = db.execution_by_id(e.id).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.started_ms, r.finished_ms, r.last_seq),
        (Status::Succeeded, Some(1_001), Some(1_014), 14)
    );
    // Every attempt's log stays referenced, with the artifact.
    assert_eq!(
        db.live_digests().await.unwrap(),
        BTreeSet::from([log1, log2, tarball])
    );
    assert_eq!(db.events(e.id, 0, 100).await.unwrap().len(), 14);
}

async fn execution_resumed_runs_again(c: Case) {
    let db = &c.db;
    let p = project(db, "hello").await;
    let e = execution(db, p.id).await;
    let resumed = event(
        3,
        EventBody::ExecutionResumed {
            reason: "server restarted".into(),
        },
    );
    db.append_events(
        e.id,
        &[
            event(
                1,
                EventBody::ExecutionStarted {
                    pipeline: "pipeline".into(),
                    revision: None,
                    trigger: "api".into(),
                },
            ),
            event(
                2,
                EventBody::ExecutionFinished {
                    status: Status::Fault,
                    duration_ms: 1,
                },
            ),
        ],
    )
    .await
    .unwrap();
    db.set_execution_status(e.id, Status::Fault, Some("agent lost"), 1_002)
        .await
        .unwrap();
    let r = db.execution_by_id(e.id).await.unwrap().unwrap();
    assert_eq!((r.status, r.finished_ms), (Status::Fault, Some(1_002)));
    db.append_events(e.id, std::slice::from_ref(&resumed))
        .await
        .unwrap();
    let r = db.execution_by_id(e.id).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.started_ms, r.finished_ms, r.reason, r.last_seq),
        (Status::Running, Some(1_001), None, None, 3)
    );
    let ty: String = sqlx::query_scalar("SELECT type FROM events WHERE seq = 3")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(ty, "execution_resumed");
    assert_eq!(db.events(e.id, 2, 10).await.unwrap(), [resumed]);
}

async fn a_retried_append_changes_nothing(c: Case) {
    let db = &c.db;
    let p = project(db, "hello").await;
    let e = execution(db, p.id).await;
    let batch = vec![
        action_started(1, "test", 1, "build"),
        log(2, "one"),
        action_finished(3, "test", 1, Status::Succeeded, None),
    ];
    db.append_events(e.id, &batch).await.unwrap();
    let before = db.actions(e.id).await.unwrap();
    // The same batch again, overlapping a newer one; a duplicate seq inside one batch too.
    let mut again = batch.clone();
    again.push(log(4, "four"));
    again.push(action_started(4, "test", 9, "build"));
    again.push(log(5, "five"));
    db.append_events(e.id, &again).await.unwrap();
    assert_eq!(db.actions(e.id).await.unwrap(), before);
    let stored = db.events(e.id, 0, 100).await.unwrap();
    assert_eq!(stored.len(), 5);
    assert_eq!(stored[..3], batch[..]);
    assert_eq!(stored[3], log(4, "four"));
    assert_eq!(db.execution_by_id(e.id).await.unwrap().unwrap().last_seq, 5);
    // An older batch arriving late does not move last_seq back.
    db.append_events(e.id, &[log(2, "late")]).await.unwrap();
    assert_eq!(db.execution_by_id(e.id).await.unwrap().unwrap().last_seq, 5);
    db.append_events(e.id, &[]).await.unwrap();
    // Events for an execution that does not exist are refused.
    assert!(db.append_events(e.id + 1000, &[log(1, "x")]).await.is_err());
}

async fn events_page_in_order(c: Case) {
    let db = &c.db;
    let p = project(db, "hello").await;
    let e = execution(db, p.id).await;
    let other = execution(db, p.id).await;
    let all: Vec<Event> = (1..=250).map(|i| log(i, &format!("line {i}"))).collect();
    db.append_events(e.id, &all).await.unwrap();
    db.append_events(other.id, &all[..10]).await.unwrap();
    let mut seen = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = db.events(e.id, after, 100).await.unwrap();
        if page.is_empty() {
            break;
        }
        pages += 1;
        after = page.last().unwrap().seq;
        seen.extend(page);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all);
    assert_eq!(db.events(e.id, 248, 100).await.unwrap(), all[248..]);
    assert_eq!(db.events(e.id, 0, 0).await.unwrap(), []);
    assert_eq!(db.events(other.id, 0, 100).await.unwrap().len(), 10);
}

// ---------------------------------------------------------------- approvals

async fn approvals_are_decided_once(c: Case) {
    let db = Arc::new(c.db);
    let p = project(&db, "hello").await;
    let e = execution(&db, p.id).await;
    let waiting = db
        .request_approval(e.id, "deploy", "approve", Some("ship?"), 100, 1_000)
        .await
        .unwrap();
    assert_eq!(
        waiting,
        Approval {
            stage: "deploy".into(),
            action: "approve".into(),
            message: Some("ship?".into()),
            status: Status::Waiting,
            requested_ms: 100,
            deadline_ms: 1_000,
            decided_by: None,
            decided_ms: None,
            comment: None,
        }
    );
    // Asked again (a restart): the first request time stays.
    let again = db
        .request_approval(e.id, "deploy", "approve", Some("ship now?"), 500, 2_000)
        .await
        .unwrap();
    assert_eq!(
        (
            again.requested_ms,
            again.deadline_ms,
            again.message.as_deref()
        ),
        (100, 2_000, Some("ship now?"))
    );
    db.request_approval(e.id, "build", "gate", None, 50, 60)
        .await
        .unwrap();

    // Of many concurrent decisions exactly one wins.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let db = db.clone();
            let e = e.id;
            tokio::spawn(async move {
                let status = if i % 2 == 0 {
                    Status::Succeeded
                } else {
                    Status::Failed
                };
                db.decide_approval(
                    e,
                    "deploy",
                    "approve",
                    status,
                    &format!("user{i}"),
                    Some("ok"),
                    700,
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert!(
        !db.decide_approval(e.id, "deploy", "nope", Status::Succeeded, "ann", None, 800)
            .await
            .unwrap()
    );
    let list = db.approvals(e.id).await.unwrap();
    assert_eq!(
        list.iter()
            .map(|a| (a.action.as_str(), a.status))
            .collect::<Vec<_>>()[0],
        ("gate", Status::Waiting)
    );
    let decided = &list[1];
    assert!(matches!(decided.status, Status::Succeeded | Status::Failed));
    assert_eq!(
        (decided.decided_ms, decided.comment.as_deref()),
        (Some(700), Some("ok"))
    );
    assert!(decided.decided_by.as_deref().unwrap().starts_with("user"));

    // A retried stage asks again: the approval waits again, the old decision is gone.
    let rerequested = db
        .request_approval(e.id, "deploy", "approve", None, 900, 3_000)
        .await
        .unwrap();
    assert_eq!(
        (
            rerequested.status,
            rerequested.decided_by,
            rerequested.requested_ms
        ),
        (Status::Waiting, None, 100)
    );
    assert!(
        db.decide_approval(
            e.id,
            "deploy",
            "approve",
            Status::TimedOut,
            "slipway",
            None,
            3_000
        )
        .await
        .unwrap()
    );
}

// ---------------------------------------------------------------- pruning

async fn prune_keeps_the_newest_and_the_newest_succeeded(c: Case) {
    let db = &c.db;
    let p = project(db, "hello").await;
    let other = project(db, "other").await;
    let now = 1_000_000;
    // hello: #1 succeeded, #2 failed, #3 succeeded, #4 cancelled, #5 failed, #6 running,
    // #7 queued, #8 failed.
    finished(db, p.id, Status::Succeeded, 10).await;
    finished(db, p.id, Status::Failed, 20).await;
    finished(db, p.id, Status::Succeeded, 30).await;
    finished(db, p.id, Status::Cancelled, 40).await;
    finished(db, p.id, Status::Failed, 50).await;
    finished(db, p.id, Status::Running, 60).await;
    execution(db, p.id).await;
    finished(db, p.id, Status::Failed, 80).await;
    // other: #1 waiting, #2 fault; nothing ever succeeded.
    finished(db, other.id, Status::Waiting, 10).await;
    finished(db, other.id, Status::Fault, 20).await;

    let prune = |keep: Option<u32>, age: Option<i64>| async move {
        let policy = Retention {
            max_age_ms: age,
            keep_per_project: keep,
        };
        db.prune_candidates(&policy, now)
            .await
            .unwrap()
            .iter()
            .map(|e| format!("{}#{}", e.project, e.number))
            .collect::<Vec<_>>()
    };
    assert_eq!(prune(None, None).await, [] as [&str; 0]);
    // Newest 3 of hello are #8, #7, #6; #3 is the newest succeeded.
    assert_eq!(
        prune(Some(3), None).await,
        ["hello#1", "hello#2", "hello#4", "hello#5"]
    );
    assert_eq!(
        prune(Some(0), None).await,
        [
            "hello#1", "hello#2", "hello#4", "hello#5", "hello#8", "other#2"
        ]
    );
    assert_eq!(prune(Some(100), None).await, [] as [&str; 0]);
    // Either rule prunes: keep 6 spares #3..#8, finished before 45 catches #1, #2, #4.
    assert_eq!(
        prune(Some(6), Some(now - 45)).await,
        ["hello#1", "hello#2", "hello#4", "other#2"]
    );
    // Once #8 succeeds it is the one kept, and #3 may go.
    let eight = db.execution(p.id, 8).await.unwrap().unwrap();
    db.set_execution_status(eight.id, Status::Succeeded, None, 90)
        .await
        .unwrap();
    assert_eq!(
        prune(Some(0), None).await,
        [
            "hello#1", "hello#2", "hello#3", "hello#4", "hello#5", "other#2"
        ]
    );
}

async fn prune_by_age_spares_unfinished(c: Case) {
    let db = &c.db;
    let p = project(db, "hello").await;
    let now = 10_000;
    let old_failed = finished(db, p.id, Status::Failed, 100).await;
    finished(db, p.id, Status::Succeeded, 200).await;
    finished(db, p.id, Status::Succeeded, 300).await;
    // Old but never finished: queued, running, waiting.
    execution(db, p.id).await;
    finished(db, p.id, Status::Running, 100).await;
    finished(db, p.id, Status::Waiting, 100).await;
    let recent = finished(db, p.id, Status::TimedOut, 9_500).await;
    let policy = Retention {
        max_age_ms: Some(1_000),
        keep_per_project: None,
    };
    let pruned = db.prune_candidates(&policy, now).await.unwrap();
    assert_eq!(numbers(&pruned), [1, 2]);
    assert_eq!(pruned[0], old_failed);
    assert!(!numbers(&pruned).contains(&recent.number));
}

async fn deleting_an_execution_removes_its_rows_and_blob_references(c: Case) {
    let db = &c.db;
    let p = project(db, "hello").await;
    let keep = execution(db, p.id).await;
    let gone = execution(db, p.id).await;
    let shared = Digest::of(b"same log in both");
    let only_gone = Digest::of(b"only in the deleted one");
    for (e, digests) in [
        (&keep, vec![shared.clone()]),
        (&gone, vec![shared.clone(), only_gone.clone()]),
    ] {
        let mut events = vec![action_started(1, "test", 1, "build")];
        let mut finish = action_finished(2, "test", 1, Status::Succeeded, Some(digests[0].clone()));
        if let (EventBody::ActionFinished { artifacts, .. }, Some(d)) =
            (&mut finish.body, digests.get(1))
        {
            artifacts.push(ArtifactRef {
                name: "out".into(),
                digest: d.clone(),
                size: 1,
                files: 1,
            });
        }
        events.push(finish);
        db.append_events(e.id, &events).await.unwrap();
        db.request_approval(e.id, "s", "a", None, 1, 2)
            .await
            .unwrap();
    }
    assert_eq!(
        db.live_digests().await.unwrap(),
        BTreeSet::from([shared.clone(), only_gone])
    );
    db.delete_execution(gone.id).await.unwrap();
    assert_eq!(db.execution_by_id(gone.id).await.unwrap(), None);
    assert_eq!(db.events(gone.id, 0, 10).await.unwrap(), []);
    assert_eq!(db.actions(gone.id).await.unwrap(), []);
    assert_eq!(db.approvals(gone.id).await.unwrap(), []);
    assert_eq!(db.live_digests().await.unwrap(), BTreeSet::from([shared]));
    // The other execution is untouched; deleting twice is harmless.
    assert_eq!(db.events(keep.id, 0, 10).await.unwrap().len(), 2);
    db.delete_execution(gone.id).await.unwrap();
    // Numbers are never reused, nor ids.
    let next = execution(db, p.id).await;
    assert_eq!(next.number, 3);
    assert!(next.id > gone.id);
}

// ---------------------------------------------------------------- backup

/// Everything the API reads, for comparing two databases.
#[derive(Debug, PartialEq)]
struct Contents {
    projects: Vec<ProjectRow>,
    executions: Vec<ExecutionRow>,
    events: Vec<Vec<Event>>,
    actions: Vec<Vec<ActionState>>,
    approvals: Vec<Vec<Approval>>,
    digests: BTreeSet<Digest>,
    counts: Vec<(Status, u64)>,
}

async fn contents(db: &Db) -> Contents {
    let projects = db.projects().await.unwrap();
    let mut executions = Vec::new();
    for p in &projects {
        executions.extend(db.executions(p.id, None, 1_000).await.unwrap());
    }
    let (mut events, mut actions, mut approvals) = (Vec::new(), Vec::new(), Vec::new());
    for e in &executions {
        events.push(db.events(e.id, 0, 100_000).await.unwrap());
        actions.push(db.actions(e.id).await.unwrap());
        approvals.push(db.approvals(e.id).await.unwrap());
    }
    Contents {
        projects,
        executions,
        events,
        actions,
        approvals,
        digests: db.live_digests().await.unwrap(),
        counts: db.count_by_status().await.unwrap(),
    }
}

/// Fills a database with a bit of everything, including awkward text.
async fn fill(db: &Db) {
    let p = project(db, "hello").await;
    let q = project(db, "zeta").await;
    for (project_id, n) in [(p.id, 3), (q.id, 2)] {
        for i in 0..n {
            let mut vars = BTreeMap::new();
            vars.insert("K".to_string(), format!("v{i} \"quoted\" \u{e9}"));
            let e = db
                .create_execution(&NewExecution {
                    project_id,
                    pipeline: "pipeline".into(),
                    revision: (i % 2 == 0).then(|| format!("rev{i}")),
                    source_ref: None,
                    trigger: "api".into(),
                    variables: vars,
                    rerun_of: (i > 0).then_some(i),
                    created_ms: 10 * i as i64,
                })
                .await
                .unwrap();
            let mut events = vec![action_started(1, "test", 1, "build")];
            events.extend(
                (2..40).map(|s| log(s, &format!("line {s}\twith \\ and \0 and \u{1F600}"))),
            );
            events.push(action_finished(
                40,
                "test",
                1,
                Status::Succeeded,
                Some(Digest::of(&[i as u8])),
            ));
            db.append_events(e.id, &events).await.unwrap();
            db.request_approval(e.id, "deploy", "ok", Some("line1\nline2"), 5, 6)
                .await
                .unwrap();
            if i == 0 {
                db.decide_approval(e.id, "deploy", "ok", Status::Failed, "bob", Some("no"), 7)
                    .await
                    .unwrap();
                db.set_execution_status(e.id, Status::Failed, Some("rejected"), 8)
                    .await
                    .unwrap();
            }
        }
    }
    // A gap in the ids (a deleted execution) must survive too.
    let gap = execution(db, p.id).await;
    db.delete_execution(gap.id).await.unwrap();
    execution(db, p.id).await;
}

async fn export_then_import_into_both_backends(c: Case) {
    let db = &c.db;
    fill(db).await;
    let want = contents(db).await;
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    db.export(&backup).await.unwrap();
    for table in [
        "projects",
        "executions",
        "events",
        "actions",
        "approvals",
        "blob_refs",
    ] {
        assert!(backup.join(format!("{table}.jsonl")).is_file(), "{table}");
    }
    let events = std::fs::read_to_string(backup.join("events.jsonl")).unwrap();
    assert_eq!(events.lines().count(), 5 * 40);
    let first: serde_json::Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 1);
    assert_eq!(first["type"], "action_started");

    for kind in [DbKind::Sqlite, DbKind::Postgres] {
        let Some(scratch) = Scratch::new(kind).await else {
            continue;
        };
        let target = Db::connect(&scratch.url).await.unwrap();
        target.import(&backup).await.unwrap();
        assert_eq!(contents(&target).await, want, "{:?} -> {kind:?}", db.kind());
        // New rows get ids after the imported ones, and numbers go on.
        let hello = target.project("hello").await.unwrap().unwrap();
        let next = execution(&target, hello.id).await;
        assert_eq!(next.number, hello.last_number + 1);
        assert!(next.id > want.executions.iter().map(|e| e.id).max().unwrap());
        let p = project(&target, "new").await;
        assert!(p.id > want.projects.iter().map(|p| p.id).max().unwrap());
        target
            .append_events(next.id, &[action_started(1, "a", 1, "build")])
            .await
            .unwrap();
        target.close().await;
        scratch.cleanup().await;
    }
}

async fn export_is_one_snapshot_while_events_are_appended(c: Case) {
    let db = Arc::new(c.db);
    let p = project(&db, "hello").await;
    let e = execution(&db, p.id).await;
    db.append_events(e.id, &(1..=100).map(|i| log(i, "x")).collect::<Vec<_>>())
        .await
        .unwrap();
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            for batch in 1..=100u64 {
                let events: Vec<Event> = (1..=20).map(|i| log(100 * batch + i, "y")).collect();
                db.append_events(e.id, &events).await.unwrap();
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let out = dir.path().join(format!("round{round}"));
        db.export(&out).await.unwrap();
        let executions = std::fs::read_to_string(out.join("executions.jsonl")).unwrap();
        let row: serde_json::Value =
            serde_json::from_str(executions.lines().next().unwrap()).unwrap();
        let last_seq = row["last_seq"].as_u64().unwrap();
        let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
        let max_seq = events
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .max()
            .unwrap();
        assert_eq!(
            last_seq, max_seq,
            "round {round}: executions and events from one snapshot"
        );
    }
    writer.await.unwrap();
}

async fn import_refuses_a_database_with_data(c: Case) {
    let db = &c.db;
    fill(db).await;
    let dir = tempfile::tempdir().unwrap();
    db.export(dir.path()).await.unwrap();
    let before = contents(db).await;
    let e = db.import(dir.path()).await.unwrap_err();
    assert!(matches!(e, DbError::Conflict(_)), "{e}");
    assert_eq!(contents(db).await, before);
    let e = db.import(&dir.path().join("missing")).await.unwrap_err();
    assert!(matches!(e, DbError::Io { .. }), "{e}");

    // A broken line is reported with its file and line, and nothing is half-imported.
    let Some(scratch) = Scratch::new(db.kind()).await else {
        return;
    };
    let target = Db::connect(&scratch.url).await.unwrap();
    let actions = dir.path().join("actions.jsonl");
    let mut text = std::fs::read_to_string(&actions).unwrap();
    text.push_str("{not json\n");
    std::fs::write(&actions, text).unwrap();
    let e = target.import(dir.path()).await.unwrap_err();
    assert!(
        matches!(&e, DbError::Corrupt(m) if m.contains("actions.jsonl: line 6")),
        "{e}"
    );
    assert_eq!(target.projects().await.unwrap(), []);
    target.close().await;
    scratch.cleanup().await;
}

// ---------------------------------------------------------------- bad data

async fn unparsable_rows_are_corrupt_not_panics(c: Case) {
    let db = &c.db;
    let p = project(db, "hello").await;
    let e = execution(db, p.id).await;
    db.append_events(e.id, &[action_started(1, "test", 1, "build"), log(2, "ok")])
        .await
        .unwrap();
    let id = e.id;
    let exec = |q: &'static str| async move {
        sqlx::query(q).bind(id).execute(&db.pool).await.unwrap();
    };
    exec("UPDATE events SET body = '{\"v\":1' WHERE execution_id = $1 AND seq = 2").await;
    let err = db.events(e.id, 0, 10).await.unwrap_err();
    let row = format!("events row (execution {}, seq 2)", e.id);
    assert!(
        matches!(&err, DbError::Corrupt(m) if m.starts_with(&row)),
        "{err}"
    );
    exec("UPDATE actions SET outputs = '[' WHERE execution_id = $1").await;
    let err = db.actions(e.id).await.unwrap_err();
    assert!(
        matches!(&err, DbError::Corrupt(m) if m.contains("actions row") && m.contains("outputs")),
        "{err}"
    );
    exec("UPDATE actions SET outputs = '{}', status = 'exploded' WHERE execution_id = $1").await;
    let err = db.actions(e.id).await.unwrap_err();
    assert!(
        matches!(&err, DbError::Corrupt(m) if m.contains("status")),
        "{err}"
    );
    exec("UPDATE executions SET variables = 'nope' WHERE id = $1").await;
    let err = db.execution_by_id(e.id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "executions row {}: variables: expected ident at line 1 column 2",
            e.id
        )
    );
    exec("INSERT INTO blob_refs (execution_id, digest) VALUES ($1, 'md5:0')").await;
    assert!(matches!(db.live_digests().await, Err(DbError::Corrupt(_))));
}

// ---------------------------------------------------------------- speed

async fn appending_10k_log_events_is_fast(c: Case) {
    let db = &c.db;
    let p = project(db, "hello").await;
    let line = "x".repeat(80);
    // As the server appends: batches of a few hundred.
    let e = execution(db, p.id).await;
    let events: Vec<Event> = (1..=10_000).map(|i| log(i, &line)).collect();
    let t = Instant::now();
    for batch in events.chunks(250) {
        db.append_events(e.id, batch).await.unwrap();
    }
    let batched = t.elapsed();
    // And all at once.
    let e2 = execution(db, p.id).await;
    let t = Instant::now();
    db.append_events(e2.id, &events).await.unwrap();
    let whole = t.elapsed();
    let t = Instant::now();
    let mut after = 0;
    loop {
        let page = db.events(e.id, after, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
    }
    let read = t.elapsed();
    eprintln!(
        "{:?}: 10k log events appended in batches of 250 in {batched:.2?}, in one batch in \
         {whole:.2?}; read back in pages of 1000 in {read:.2?}",
        db.kind()
    );
    assert_eq!(after, 10_000);
    // Generous (a debug build on a busy 2-core machine); typical numbers are far lower.
    assert!(
        batched.as_secs() < 10 && whole.as_secs() < 10,
        "{batched:?} {whole:?}"
    );
}
