//! The executor conformance suite: written once, run against every executor by
//! `conformance_tests!`, plus tests only one executor can have (services, labels, users).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::*;

/// Base image for docker tests; scripts/provision.sh makes it from busybox-static.
const TEST_IMAGE: &str = "slipway-busybox:latest";

pub(crate) struct Harness {
    pub executor: Arc<dyn Executor>,
    pub runner: RunnerId,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", hex::encode(rand::random::<[u8; 6]>()))
}

pub(crate) async fn make_local_executor() -> Option<Harness> {
    let runner = RunnerId(unique("test-local"));
    let executor = ExecutorConfig::Local(LocalConfig::default())
        .build(runner.clone())
        .await
        .expect("local executor builds");
    Some(Harness { executor, runner })
}

/// Docker tests fail when no engine answers, unless SLIPWAY_SKIP_DOCKER_TESTS=1.
pub(crate) async fn make_docker_executor() -> Option<Harness> {
    let runner = RunnerId(unique("test-docker"));
    match ExecutorConfig::Docker(DockerConfig::default())
        .build(runner.clone())
        .await
    {
        Ok(executor) => Some(Harness { executor, runner }),
        Err(e) if std::env::var("SLIPWAY_SKIP_DOCKER_TESTS").as_deref() == Ok("1") => {
            eprintln!(
                "\n!!!!!!!! SKIPPED a docker executor test: no engine ({e}); \
                 SLIPWAY_SKIP_DOCKER_TESTS=1 is set !!!!!!!!\n"
            );
            None
        }
        Err(e) => panic!(
            "docker engine not reachable ({e}); start dockerd or set SLIPWAY_SKIP_DOCKER_TESTS=1"
        ),
    }
}

pub(crate) fn spec(job_id: &str, workspace: &Path) -> JobSpec {
    JobSpec {
        job_id: job_id.to_string(),
        workspace: workspace.to_path_buf(),
        image: Some(TEST_IMAGE.to_string()),
        env: vec![("JOB_VAR".into(), "from-job".into())],
        privileged: false,
        services: Vec::new(),
    }
}

/// A started job in a fresh workspace, removed again on drop of the test.
pub(crate) struct TestJob {
    pub job: Box<dyn Job>,
    pub workspace: tempfile::TempDir,
}

pub(crate) async fn start_job(h: &Harness) -> TestJob {
    let workspace = tempfile::tempdir().expect("tempdir");
    let job = h
        .executor
        .start(&spec(&unique("job"), workspace.path()))
        .await
        .expect("job starts");
    TestJob { job, workspace }
}

pub(crate) async fn run(s: &mut ShellSession, cmd: &str) -> (CommandStatus, String) {
    let mut out = Vec::new();
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        s.run(cmd, &mut out, &CancellationToken::new()),
    )
    .await
    .unwrap_or_else(|_| panic!("command `{cmd}` timed out"))
    .unwrap_or_else(|e| panic!("command `{cmd}` failed: {e}"));
    (status, String::from_utf8_lossy(&out).into_owned())
}

/// Counts bytes without keeping them, like a log sink that streams to storage.
struct Counter(u64);

#[async_trait::async_trait]
impl LogSink for Counter {
    async fn write(&mut self, data: &[u8]) {
        self.0 += data.len() as u64;
    }
}

/// Every test body in the suite; `$make` gives a harness or None (loudly skipped).
macro_rules! conformance_tests {
    ($name:ident, $make:path) => {
        mod $name {
            use super::*;

            async fn setup() -> Option<(Harness, TestJob, ShellSession)> {
                let h = $make().await?;
                let mut tj = start_job(&h).await;
                let s = tj
                    .job
                    .open_shell(ShellOptions::default())
                    .await
                    .expect("shell opens");
                Some((h, tj, s))
            }

            #[tokio::test]
            async fn state_carries_across_commands() {
                let Some((_h, mut tj, mut s)) = setup().await else { return };
                assert_eq!(run(&mut s, "mkdir -p sub && cd sub").await.0, CommandStatus::Exited(0));
                run(&mut s, "X=shellvar").await;
                run(&mut s, "export Y=exported").await;
                let (st, out) = run(&mut s, "basename \"$(pwd)\"; echo $X; sh -c 'echo $Y'").await;
                assert_eq!(st, CommandStatus::Exited(0));
                assert_eq!(out, "sub\nshellvar\nexported\n");
                s.close().await.unwrap();
                tj.job.cleanup().await.unwrap();
            }

            #[tokio::test]
            async fn exit_codes_are_statuses() {
                let Some((_h, mut tj, mut s)) = setup().await else { return };
                assert_eq!(run(&mut s, "true").await.0, CommandStatus::Exited(0));
                assert_eq!(run(&mut s, "false").await.0, CommandStatus::Exited(1));
                assert_eq!(run(&mut s, "(exit 7)").await.0, CommandStatus::Exited(7));
                let (st, out) = run(&mut s, "ls /definitely-not-here").await;
                assert_ne!(st, CommandStatus::Exited(0));
                assert!(out.contains("definitely-not-here"), "stderr is merged: {out:?}");
                tj.job.cleanup().await.unwrap();
            }

            #[tokio::test]
            async fn multi_line_command_and_quotes() {
                let Some((_h, mut tj, mut s)) = setup().await else { return };
                let cmd = "echo 'a b'\necho \"it's\"\nif true; then\n  echo c\nfi\n";
                let (st, out) = run(&mut s, cmd).await;
                assert_eq!(st, CommandStatus::Exited(0));
                assert_eq!(out, "a b\nit's\nc\n");
                tj.job.cleanup().await.unwrap();
            }

            #[tokio::test]
            async fn command_reading_stdin_does_not_hang() {
                let Some((_h, mut tj, mut s)) = setup().await else { return };
                let (st, out) = run(&mut s, "cat; read x; echo done").await;
                assert_eq!((st, out.as_str()), (CommandStatus::Exited(0), "done\n"));
                // And the command stream was not eaten: the session still works.
                assert_eq!(run(&mut s, "echo still").await.1, "still\n");
                tj.job.cleanup().await.unwrap();
            }

            #[tokio::test]
            async fn output_without_trailing_newline() {
                let Some((_h, mut tj, mut s)) = setup().await else { return };
                assert_eq!(run(&mut s, "printf abc").await.1, "abc");
                assert_eq!(run(&mut s, "printf ''").await.1, "");
                assert_eq!(run(&mut s, "echo x").await.1, "x\n");
                assert_eq!(run(&mut s, "printf '\\n\\n'").await.1, "\n\n");
                tj.job.cleanup().await.unwrap();
            }

            #[tokio::test]
            async fn marker_with_wrong_nonce_is_plain_output() {
                let Some((_h, mut tj, mut s)) = setup().await else { return };
                let fake = "\n\x1eSLIPWAY-0123456789abcdef0123456789abcdef-0\x1e\nafter\n";
                let (st, out) = run(
                    &mut s,
                    "printf '\\n\\036SLIPWAY-0123456789abcdef0123456789abcdef-0\\036\\nafter\\n'",
                )
                .await;
                assert_eq!(st, CommandStatus::Exited(0));
                assert_eq!(out, fake);
                tj.job.cleanup().await.unwrap();
            }

            #[tokio::test]
            async fn exit_ends_the_session() {
                let Some((_h, mut tj, mut s)) = setup().await else { return };
                run(&mut s, "echo before").await;
                let (st, out) = run(&mut s, "echo bye; exit 3").await;
                assert_eq!(st, CommandStatus::SessionEnded(Some(3)));
                assert_eq!(out, "bye\n");
                let again = s.run("true", &mut Vec::new(), &CancellationToken::new()).await;
                assert!(matches!(again, Err(ExecutorError::SessionEnded)), "{again:?}");
                // set -e ends the session too, with the failing status.
                let mut s2 = tj.job.open_shell(ShellOptions::default()).await.unwrap();
                run(&mut s2, "set -e").await;
                assert_eq!(run(&mut s2, "false").await.0, CommandStatus::SessionEnded(Some(1)));
                tj.job.cleanup().await.unwrap();
            }

            #[tokio::test]
            async fn cancel_kills_the_command_and_its_children() {
                let Some((_h, mut tj, mut s)) = setup().await else { return };
                let cancel = CancellationToken::new();
                let c2 = cancel.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    c2.cancel();
                });
                let mut out = Vec::new();
                let t0 = Instant::now();
                let st = tokio::time::timeout(
                    Duration::from_secs(10),
                    s.run("(sleep 2; touch late) & echo started; sleep 100", &mut out, &cancel),
                )
                .await
                .expect("cancel returns")
                .expect("cancel is not an error");
                let took = t0.elapsed();
                assert_eq!(st, CommandStatus::Cancelled);
                assert!(took < Duration::from_millis(1500), "cancel took {took:?}");
                assert_eq!(String::from_utf8_lossy(&out), "started\n");
                let again = s.run("true", &mut Vec::new(), &CancellationToken::new()).await;
                assert!(matches!(again, Err(ExecutorError::SessionEnded)));
                // The background child would have created `late` after 2s.
                tokio::time::sleep(Duration::from_millis(2500)).await;
                assert!(!tj.workspace.path().join("late").exists(), "a child survived cancel");
                tj.job.cleanup().await.unwrap();
            }

            #[tokio::test]
            async fn env_from_job_and_session() {
                let Some(h) = $make().await else { return };
                let mut tj = start_job(&h).await;
                let mut s = tj
                    .job
                    .open_shell(ShellOptions {
                        env: vec![("SESSION_VAR".into(), "from session".into())],
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                let (_, out) = run(&mut s, "echo \"$JOB_VAR|$SESSION_VAR\"").await;
                assert_eq!(out, "from-job|from session\n");
                tj.job.cleanup().await.unwrap();
            }

            #[tokio::test]
            async fn archive_round_trip() {
                let Some((_h, mut tj, mut s)) = setup().await else { return };
                let (st, out) = run(
                    &mut s,
                    "mkdir -p out/d && echo hello > out/d/f && ln -s d/f out/link && echo solo > one.txt",
                )
                .await;
                assert_eq!(st, CommandStatus::Exited(0), "{out}");
                let tmp = tempfile::tempdir().unwrap();
                let tar = tmp.path().join("out.tar");
                assert!(tj.job.archive_out("out", &tar).await.unwrap());
                let missing = tmp.path().join("missing.tar");
                assert!(!tj.job.archive_out("no/such/thing", &missing).await.unwrap());
                tj.job.archive_in(&tar, "restored/here").await.unwrap();
                let (_, out) = run(&mut s, "cat restored/here/out/d/f; readlink restored/here/out/link").await;
                assert_eq!(out, "hello\nd/f\n");
                // A single file, addressed by absolute path, unpacked to an absolute dir.
                let one = tmp.path().join("one.tar");
                let abs = format!("{}/one.txt", tj.job.workdir());
                assert!(tj.job.archive_out(&abs, &one).await.unwrap());
                let dest = format!("{}/single", tj.job.workdir());
                tj.job.archive_in(&one, &dest).await.unwrap();
                assert_eq!(run(&mut s, "cat single/one.txt").await.1, "solo\n");
                tj.job.cleanup().await.unwrap();
            }

            #[tokio::test]
            async fn unknown_user_is_named_in_the_error() {
                let Some((_h, mut tj, _s)) = setup().await else { return };
                let err = tj
                    .job
                    .open_shell(ShellOptions {
                        user: Some("no-such-user-slipway".into()),
                        ..Default::default()
                    })
                    .await
                    .unwrap_err();
                assert!(err.to_string().contains("no-such-user-slipway"), "{err}");
                tj.job.cleanup().await.unwrap();
            }

            #[tokio::test]
            async fn cleanup_twice_is_fine() {
                let Some((_h, mut tj, mut s)) = setup().await else { return };
                run(&mut s, "sleep 100 &").await;
                tj.job.cleanup().await.unwrap();
                tj.job.cleanup().await.unwrap();
                // A session of a cleaned-up job ends instead of hanging or erroring.
                let r = tokio::time::timeout(
                    Duration::from_secs(10),
                    s.run("true", &mut Vec::new(), &CancellationToken::new()),
                )
                .await
                .expect("no hang after cleanup");
                assert!(
                    matches!(r, Ok(CommandStatus::SessionEnded(_)) | Err(_)),
                    "{r:?}"
                );
            }

            #[tokio::test]
            async fn many_commands_and_big_output_stream() {
                let Some((_h, mut tj, mut s)) = setup().await else { return };
                for i in 0..50 {
                    assert_eq!(run(&mut s, &format!("echo {i}")).await.1, format!("{i}\n"));
                }
                let mut counter = Counter(0);
                let st = s
                    .run(
                        "head -c 33554432 /dev/zero; printf tail",
                        &mut counter,
                        &CancellationToken::new(),
                    )
                    .await
                    .unwrap();
                assert_eq!(st, CommandStatus::Exited(0));
                assert_eq!(counter.0, 32 * 1024 * 1024 + 4);
                tj.job.cleanup().await.unwrap();
            }
        }
    };
}

conformance_tests!(local, make_local_executor);
conformance_tests!(docker, make_docker_executor);

mod local_only {
    use super::*;

    #[tokio::test]
    async fn workdir_is_the_host_workspace_and_sessions_start_there() {
        let h = make_local_executor().await.unwrap();
        let mut tj = start_job(&h).await;
        assert_eq!(Path::new(tj.job.workdir()), tj.workspace.path());
        let mut s = tj.job.open_shell(ShellOptions::default()).await.unwrap();
        let (_, out) = run(&mut s, "pwd").await;
        assert_eq!(out.trim_end(), tj.job.workdir());
    }

    #[tokio::test]
    async fn run_as_user() {
        let h = make_local_executor().await.unwrap();
        let mut tj = start_job(&h).await;
        let opts = ShellOptions {
            user: Some("nobody".into()),
            ..Default::default()
        };
        // SAFETY: plain syscall.
        let root = unsafe { libc::geteuid() } == 0;
        match tj.job.open_shell(opts).await {
            Ok(mut s) => {
                assert!(root, "only root may switch users");
                let (_, out) = run(&mut s, "id -un").await;
                assert_eq!(out, "nobody\n");
            }
            Err(e) => {
                assert!(!root, "root should switch to nobody: {e}");
                assert!(e.to_string().contains("nobody"), "{e}");
            }
        }
    }

    #[tokio::test]
    async fn bash_session() {
        let h = make_local_executor().await.unwrap();
        let mut tj = start_job(&h).await;
        let mut s = tj
            .job
            .open_shell(ShellOptions {
                shell: ShellKind::Bash,
                ..Default::default()
            })
            .await
            .unwrap();
        let (_, out) = run(
            &mut s,
            "arr=(x y); echo ${arr[1]}; [ -n \"$BASH_VERSION\" ] && echo bash",
        )
        .await;
        assert_eq!(out, "y\nbash\n");
    }
}

mod docker_only {
    use std::collections::HashMap;

    use bollard::query_parameters::{
        CreateContainerOptionsBuilder, InspectContainerOptions, RemoveContainerOptionsBuilder,
    };

    use super::*;

    async fn client(h: &Harness) -> bollard::Docker {
        let _ = h;
        bollard::Docker::connect_with_local_defaults()
            .unwrap()
            .negotiate_version()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn service_reachable_by_name() {
        let Some(h) = make_docker_executor().await else {
            return;
        };
        let workspace = tempfile::tempdir().unwrap();
        let mut spec = spec(&unique("svc"), workspace.path());
        spec.services.push(ServiceContainer {
            name: "web".into(),
            image: TEST_IMAGE.into(),
            env: vec![("GREETING".into(), "hello-from-svc".into())],
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "mkdir -p /www && echo $GREETING > /www/index.html && exec httpd -f -p 8080 -h /www"
                    .into(),
            ]),
        });
        let mut job = h.executor.start(&spec).await.unwrap();
        let mut s = job.open_shell(ShellOptions::default()).await.unwrap();
        let (st, out) = run(
            &mut s,
            "for i in $(seq 1 40); do wget -qO- http://web:8080/ && break; sleep 0.25; done",
        )
        .await;
        assert_eq!(st, CommandStatus::Exited(0), "{out}");
        assert!(out.contains("hello-from-svc"), "{out}");
        job.cleanup().await.unwrap();
        job.cleanup().await.unwrap();
    }

    #[tokio::test]
    async fn labels_on_containers_and_workdir() {
        let Some(h) = make_docker_executor().await else {
            return;
        };
        let workspace = tempfile::tempdir().unwrap();
        let job_id = unique("labels");
        // With a service, so the job gets a network of its own (jobs without services don't).
        let mut sp = spec(&job_id, workspace.path());
        sp.services.push(ServiceContainer {
            name: "svc".into(),
            image: TEST_IMAGE.into(),
            env: Vec::new(),
            command: Some(vec!["sleep".into(), "300".into()]),
        });
        let mut job = h.executor.start(&sp).await.unwrap();
        assert_eq!(job.workdir(), "/workspace/src");
        let docker = client(&h).await;
        let info = docker
            .inspect_container(
                &format!("slipway-{job_id}-build"),
                None::<InspectContainerOptions>,
            )
            .await
            .unwrap();
        let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
        assert_eq!(labels.get(LABEL_RUNNER), Some(&h.runner.0));
        assert_eq!(labels.get(LABEL_JOB), Some(&job_id));
        assert_eq!(labels.get(LABEL_PID), Some(&std::process::id().to_string()));
        assert!(labels.contains_key(LABEL_HOST));
        let net = docker
            .inspect_network(&format!("slipway-job-{job_id}"), None)
            .await
            .unwrap();
        assert_eq!(
            net.labels.unwrap_or_default().get(LABEL_RUNNER),
            Some(&h.runner.0)
        );
        // The workspace is the bind-mounted host directory.
        std::fs::write(workspace.path().join("from-host"), "hi").unwrap();
        let mut s = job.open_shell(ShellOptions::default()).await.unwrap();
        assert_eq!(
            run(&mut s, "pwd; cat from-host").await.1,
            "/workspace/src\nhi"
        );
        job.cleanup().await.unwrap();
    }

    #[tokio::test]
    async fn run_as_numeric_user() {
        let Some(h) = make_docker_executor().await else {
            return;
        };
        let mut tj = start_job(&h).await;
        let mut s = tj
            .job
            .open_shell(ShellOptions {
                user: Some("65534".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(run(&mut s, "id -u").await.1, "65534\n");
        tj.job.cleanup().await.unwrap();
    }

    #[tokio::test]
    async fn privileged_mounts_the_docker_socket() {
        let Some(h) = make_docker_executor().await else {
            return;
        };
        let workspace = tempfile::tempdir().unwrap();
        let mut spec = spec(&unique("priv"), workspace.path());
        spec.privileged = true;
        let mut job = h.executor.start(&spec).await.unwrap();
        let mut s = job.open_shell(ShellOptions::default()).await.unwrap();
        let (st, _) = run(&mut s, "[ -S /var/run/docker.sock ]").await;
        assert_eq!(st, CommandStatus::Exited(0));
        job.cleanup().await.unwrap();
    }

    #[tokio::test]
    async fn missing_image_is_a_clear_error() {
        let Some(h) = make_docker_executor().await else {
            return;
        };
        let workspace = tempfile::tempdir().unwrap();
        let mut spec = spec(&unique("noimg"), workspace.path());
        spec.image = Some("127.0.0.1:1/slipway-no-such-image:latest".into());
        let err = h.executor.start(&spec).await.err().expect("start fails");
        assert!(
            matches!(err, ExecutorError::ImageUnavailable { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("slipway-no-such-image"), "{err}");
    }

    async fn make_labelled(
        docker: &bollard::Docker,
        name: &str,
        runner: &str,
        pid: i32,
        host: &str,
    ) {
        let labels = HashMap::from([
            (LABEL_RUNNER.to_string(), runner.to_string()),
            (LABEL_JOB.to_string(), "orphan-test".to_string()),
            (LABEL_PID.to_string(), pid.to_string()),
            (LABEL_HOST.to_string(), host.to_string()),
        ]);
        docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(name).build()),
                bollard::models::ContainerCreateBody {
                    image: Some(TEST_IMAGE.into()),
                    cmd: Some(vec!["true".into()]),
                    labels: Some(labels),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    async fn exists(docker: &bollard::Docker, name: &str) -> bool {
        docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn remove_orphans_only_removes_dead_owners_of_this_runner() {
        let Some(h) = make_docker_executor().await else {
            return;
        };
        let docker = client(&h).await;
        let dead_pid = {
            let mut c = std::process::Command::new("true").spawn().unwrap();
            let pid = c.id() as i32;
            c.wait().unwrap();
            pid
        };
        let host = crate::docker::hostname();
        let live = std::process::id() as i32;
        let tag = unique("orph");
        let dead_ours = format!("{tag}-dead-ours");
        let live_ours = format!("{tag}-live-ours");
        let dead_other = format!("{tag}-dead-other");
        let unlabelled = format!("{tag}-unlabelled");
        make_labelled(&docker, &dead_ours, &h.runner.0, dead_pid, &host).await;
        make_labelled(&docker, &live_ours, &h.runner.0, live, &host).await;
        make_labelled(&docker, &dead_other, "some-other-runner", dead_pid, &host).await;
        docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::new()
                        .name(&unlabelled)
                        .build(),
                ),
                bollard::models::ContainerCreateBody {
                    image: Some(TEST_IMAGE.into()),
                    cmd: Some(vec!["true".into()]),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let removed = h.executor.remove_orphans().await.unwrap();
        assert_eq!(removed, 1);
        assert!(!exists(&docker, &dead_ours).await);
        assert!(exists(&docker, &live_ours).await);
        assert!(exists(&docker, &dead_other).await);
        assert!(exists(&docker, &unlabelled).await);
        for n in [&live_ours, &dead_other, &unlabelled] {
            let _ = docker
                .remove_container(
                    n,
                    Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                )
                .await;
        }
    }
}
