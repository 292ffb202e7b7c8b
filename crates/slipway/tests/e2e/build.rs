//! `slipway build`: CodeBuild's semantics on both executors, end to end.

use super::support::*;

/// A buildspec exercising shell state across phases, failure transitions and outputs.
const STATEFUL: &str = r#"version: 0.2
env:
  variables:
    FROM_SPEC: spec
    OVERRIDDEN: spec
  exported-variables: [EXPORTED]
phases:
  install:
    commands:
      - mkdir -p out && cd out
      - MY_VAR=carried; export EXPORTED_EARLY=yes
  pre_build:
    commands:
      - echo "pwd=$(basename $(pwd)) var=$MY_VAR early=$EXPORTED_EARLY spec=$FROM_SPEC over=$OVERRIDDEN"
      - |
        for i in 1 2 3; do
          echo "line $i"
        done
  build:
    commands:
      - echo built > result.txt
      - EXPORTED=value-from-build
      - echo "succeeding=$CODEBUILD_BUILD_SUCCEEDING src=${CODEBUILD_SRC_DIR:+set}"
artifacts:
  files: ['out/**/*']
  name: bin-$EXPORTED
"#;

fn check_stateful(executor: &str) {
    let s = Scratch::new();
    s.write("repo/buildspec.yml", STATEFUL);
    let arts = s.path().join("arts");
    let r = s.build_json(
        executor,
        &[
            "-e",
            "OVERRIDDEN=cli",
            "--artifacts-dir",
            arts.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.explain());
    let log = r.log("build");
    assert!(
        log.contains("pwd=out var=carried early=yes spec=spec over=cli"),
        "{log}"
    );
    assert!(
        log.contains("line 1\n") && log.contains("line 3\n"),
        "{log}"
    );
    assert!(log.contains("succeeding=1 src=set"), "{log}");
    let fin = r.of_type("action_finished");
    assert_eq!(fin[0]["status"], "succeeded");
    assert_eq!(fin[0]["outputs"]["EXPORTED"], "value-from-build");
    assert_eq!(fin[0]["artifacts"][0]["files"], 1);
    let copied = std::fs::read_to_string(arts.join("bin-value-from-build/out/result.txt")).unwrap();
    assert_eq!(copied, "built\n");
    let phases: Vec<String> = r
        .of_type("phase_finished")
        .iter()
        .map(|e| e["phase"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        phases,
        [
            "DOWNLOAD_SOURCE",
            "INSTALL",
            "PRE_BUILD",
            "BUILD",
            "UPLOAD_ARTIFACTS"
        ]
    );
}

#[test]
fn local_shell_state_carries_across_commands_and_phases() {
    check_stateful("local");
}

#[test]
fn docker_shell_state_carries_across_commands_and_phases() {
    if docker() {
        check_stateful("docker");
    }
}

const FAILING_BUILD: &str = r#"version: 0.2
phases:
  pre_build:
    commands:
      - echo pre
  build:
    commands:
      - echo before
      - false
      - echo never-printed
    finally:
      - echo finally-ran
  post_build:
    commands:
      - echo "post succeeding=$CODEBUILD_BUILD_SUCCEEDING"
      - echo art > a.txt
artifacts:
  files: [a.txt]
"#;

#[test]
fn a_failed_build_phase_still_runs_finally_post_build_and_artifacts() {
    let s = Scratch::new();
    s.write("repo/buildspec.yml", FAILING_BUILD);
    let r = s.build_json("local", &[]);
    assert_eq!(r.code, 1, "{}", r.explain());
    let log = r.log("build");
    assert!(
        log.contains("before") && !log.contains("never-printed"),
        "{log}"
    );
    assert!(log.contains("finally-ran"), "{log}");
    assert!(log.contains("post succeeding=0"), "{log}");
    let fin = &r.of_type("action_finished")[0];
    assert_eq!(fin["status"], "failed");
    assert_eq!(fin["artifacts"][0]["files"], 1, "{fin}");
    let build_phase = r
        .of_type("phase_finished")
        .into_iter()
        .find(|e| e["phase"] == "BUILD")
        .unwrap();
    assert_eq!(build_phase["exit_code"], 1);
}

#[test]
fn an_install_failure_ends_the_build_without_artifacts() {
    let s = Scratch::new();
    s.write(
        "repo/buildspec.yml",
        "version: 0.2\nphases:\n  install:\n    commands: [exit 3]\n  build:\n    commands: [echo no]\nartifacts:\n  files: ['**/*']\n",
    );
    let r = s.build_json("local", &[]);
    assert_eq!(r.code, 1, "{}", r.explain());
    let phases: Vec<String> = r
        .of_type("phase_started")
        .iter()
        .map(|e| e["phase"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(phases, ["DOWNLOAD_SOURCE", "INSTALL"], "{}", r.explain());
    assert!(r.of_type("action_finished")[0].get("artifacts").is_none());
}

#[test]
fn on_failure_continue_and_retry() {
    let s = Scratch::new();
    s.write(
        "repo/buildspec.yml",
        r#"version: 0.2
phases:
  install:
    on-failure: CONTINUE
    commands: ["false"]
  pre_build:
    on-failure: RETRY-2
    commands:
      - n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo "try $n"; test $n -ge 3
  build:
    commands: [echo "build ran after $(cat count) tries"]
"#,
    );
    let r = s.build_json("local", &[]);
    // install failed with CONTINUE: later phases run, the build still fails.
    assert_eq!(r.code, 1, "{}", r.explain());
    assert!(
        r.log("build").contains("build ran after 3 tries"),
        "{}",
        r.explain()
    );
}

#[test]
fn secrets_resolve_from_a_file_and_a_missing_one_is_named() {
    let s = Scratch::new();
    s.write(
        "repo/buildspec.yml",
        "version: 0.2\nenv:\n  parameter-store:\n    P: /app/param\n  secrets-manager:\n    S: prod/db:password\nphases:\n  build:\n    commands: ['test \"$P-$S\" = \"pv-hunter2\"']\n",
    );
    let secrets = s.write(
        "secrets.json",
        r#"{"/app/param": "pv", "prod/db": "{\"password\": \"hunter2\"}"}"#,
    );
    let repo = s.path().join("repo");
    let r = s.slipway(&[
        "build",
        repo.to_str().unwrap(),
        "--executor",
        "local",
        "--secrets-file",
        secrets.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let r = s.slipway(&["build", repo.to_str().unwrap(), "--executor", "local"]);
    assert_eq!(r.code, 1, "{}", r.explain());
    assert!(r.stdout.contains("/app/param"), "{}", r.explain());
}

#[test]
fn hello_shell_example_reports_tests_and_caches_between_builds() {
    let s = Scratch::new();
    let dir = example("hello-shell");
    let r = s.slipway(&[
        "build",
        dir.to_str().unwrap(),
        "--json",
        "--executor",
        "local",
    ]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let fin = &r.of_type("action_finished")[0];
    let report = &fin["reports"][0];
    assert!(report["passed"].as_u64().unwrap() >= 2, "{fin}");
    assert_eq!(report["failed"], 0, "{fin}");
    assert!(
        fin["outputs"]["GREETING_VERSION"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{fin}"
    );
    let again = s.slipway(&[
        "build",
        dir.to_str().unwrap(),
        "--json",
        "--executor",
        "local",
    ]);
    assert_eq!(again.code, 0, "{}", again.explain());
    assert!(
        again.log("build").contains("cache: restored"),
        "{}",
        again.explain()
    );
}

#[test]
fn hello_shell_failing_test_fails_the_build_with_the_test_named() {
    let s = Scratch::new();
    let r = s.slipway(&[
        "build",
        example("hello-shell").to_str().unwrap(),
        "--json",
        "--executor",
        "local",
        "-e",
        "HELLO_SHELL_FAIL=1",
    ]);
    assert_eq!(r.code, 1, "{}", r.explain());
    let fin = &r.of_type("action_finished")[0];
    assert!(fin["reports"][0]["failed"].as_u64().unwrap() >= 1, "{fin}");
    assert!(
        !fin["reports"][0]["failures"][0]["name"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{fin}"
    );
}

#[test]
fn docker_build_is_cleaned_up_after_ctrl_c() {
    if !docker() {
        return;
    }
    let s = Scratch::new();
    s.write(
        "repo/buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands: [echo started, sleep 300]\n",
    );
    let mut child = std::process::Command::new(bin())
        .args([
            "build",
            s.repo().as_str(),
            "--executor",
            "docker",
            "--image",
            IMAGE,
        ])
        .env("SLIPWAY_DATA", s.data())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let labelled = || {
        let o = std::process::Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=io.slipway.pid={pid}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    while labelled() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the build container never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(1));
    assert_eq!(labelled(), 0, "containers left behind after Ctrl-C");
}

#[test]
fn a_timeout_kills_the_command_and_reports_timed_out() {
    let s = Scratch::new();
    s.write(
        "repo/buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands: [sleep 60]\n",
    );
    let t = std::time::Instant::now();
    let r = s.build_json("local", &["--timeout", "1s"]);
    assert_eq!(r.code, 1, "{}", r.explain());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(
        r.of_type("action_finished")[0]["status"],
        "timed_out",
        "{}",
        r.explain()
    );
}

#[test]
fn docker_run_as_applies_to_the_build_and_to_a_phase_with_exports_carried() {
    if !docker() {
        return;
    }
    let s = Scratch::new();
    s.write(
        "repo/buildspec.yml",
        r#"version: 0.2
phases:
  install:
    commands: [export CARRIED=over, echo "install as $(id -un)"]
  build:
    run-as: builder
    commands: [echo "build as $(id -un) carried=$CARRIED", exit 4]
    finally: [echo "finally as $(id -un)"]
  post_build:
    run-as: builder
    commands: [echo "post as $(id -un) succeeding=$CODEBUILD_BUILD_SUCCEEDING"]
"#,
    );
    let r = s.build_json("docker", &[]);
    assert_eq!(r.code, 1, "{}", r.explain());
    let log = r.log("build");
    assert!(log.contains("install as root"), "{log}");
    assert!(log.contains("build as builder carried=over"), "{log}");
    // The phase's shell exited; `finally` gets a new session of the same user.
    assert!(log.contains("finally as builder"), "{log}");
    assert!(log.contains("post as builder succeeding=0"), "{log}");
}

#[test]
fn batch_graph_respects_depend_on_and_fast_fail_stops_the_rest() {
    let s = Scratch::new();
    s.write(
        "repo/buildspec.yml",
        r#"version: 0.2
batch:
  build-graph:
    - identifier: first
      env:
        variables: { WHO: first }
    - identifier: second
      depend-on: [first]
      env:
        variables: { WHO: second }
phases:
  build:
    commands: ['echo "batch $CODEBUILD_BATCH_BUILD_IDENTIFIER who=$WHO"']
"#,
    );
    let r = s.build_json("local", &[]);
    assert_eq!(r.code, 0, "{}", r.explain());
    assert!(
        r.log("build/first").contains("batch first who=first"),
        "{}",
        r.explain()
    );
    assert!(
        r.log("build/second").contains("batch second who=second"),
        "{}",
        r.explain()
    );
    let first_done = r.events().iter().position(|e| {
        e["type"] == "phase_finished"
            && e["action"] == "build/first"
            && e["phase"] == "UPLOAD_ARTIFACTS"
    });
    let second_start = r
        .events()
        .iter()
        .position(|e| e["type"] == "phase_started" && e["action"] == "build/second");
    assert!(
        first_done < second_start,
        "second started before first finished"
    );

    s.write(
        "repo/buildspec.yml",
        "version: 0.2\nbatch:\n  fast-fail: true\n  build-list:\n    - identifier: bad\n      env:\n        variables: { FAIL: 1 }\n    - identifier: slow\nphases:\n  build:\n    commands: ['if [ -n \"$FAIL\" ]; then exit 1; fi; sleep 30']\n",
    );
    let t = std::time::Instant::now();
    let r = s.build_json("local", &[]);
    assert_eq!(r.code, 1, "{}", r.explain());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "fast-fail did not stop the slow build: {:?}",
        t.elapsed()
    );
}
