//! `slipway run`: pipelines end to end: stages, parallel actions, variables, artifacts, approvals.

use super::support::*;

const PIPELINE: &str = r##"name: flow
stages:
  - name: build
    actions:
      - name: compile
        type: build
        buildspec: compile.yml
        namespace: compile
        outputs: [bin]
      - name: lint
        type: build
        buildspec: lint.yml
  - name: gate
    actions:
      - name: ok
        type: approval
        message: "Ship #{compile.VERSION}?"
  - name: package
    actions:
      - name: pack
        type: build
        buildspec: pack.yml
        inputs: [source, bin]
        env:
          VERSION: "#{compile.VERSION}"
"##;

fn flow_repo(s: &Scratch) -> std::path::PathBuf {
    s.write("repo/.slipway/pipeline.yml", PIPELINE);
    s.write(
        "repo/compile.yml",
        "version: 0.2\nenv:\n  exported-variables: [VERSION]\nphases:\n  build:\n    commands:\n      - VERSION=1.2.3\n      - mkdir -p dist && echo binary > dist/app\nartifacts:\n  files: ['dist/**/*']\n",
    );
    s.write(
        "repo/lint.yml",
        "version: 0.2\nphases:\n  build:\n    commands: [echo linted]\n",
    );
    s.write(
        "repo/pack.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - test \"$(cat dist/app)\" = binary\n      - echo \"packing $VERSION\"\n",
    );
    s.path().join("repo")
}

#[test]
fn variables_and_artifacts_flow_between_stages_with_approval() {
    let s = Scratch::new();
    let repo = flow_repo(&s);
    let r = s.slipway(&[
        "run",
        repo.to_str().unwrap(),
        "--json",
        "--approve",
        "all",
        "--executor",
        "local",
    ]);
    assert_eq!(r.code, 0, "{}", r.explain());
    assert!(r.log("pack").contains("packing 1.2.3"), "{}", r.explain());
    let waiting = &r.of_type("approval_waiting")[0];
    assert_eq!(waiting["message"], "Ship 1.2.3?");
    // compile and lint share run order 1: both start before either finishes.
    let order: Vec<String> = r
        .events()
        .iter()
        .filter(|e| e["type"] == "action_started" || e["type"] == "action_finished")
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["action"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        &order[..2]
            .iter()
            .filter(|x| x.starts_with("action_started"))
            .count(),
        &2,
        "{order:?}"
    );
    let last = r.events().pop().unwrap();
    assert_eq!(last["type"], "execution_finished");
    assert_eq!(last["status"], "succeeded");
}

#[test]
fn without_an_answer_the_approval_is_rejected_and_later_stages_skip() {
    let s = Scratch::new();
    let repo = flow_repo(&s);
    let r = s.slipway(&["run", repo.to_str().unwrap(), "--executor", "local"]);
    assert_eq!(r.code, 1, "{}", r.explain());
    assert!(r.stdout.contains("--approve"), "{}", r.explain());
    assert!(r.stdout.contains("skipped"), "{}", r.explain());
}

#[test]
fn a_revision_runs_what_was_committed_not_the_working_tree() {
    let s = Scratch::new();
    s.write(
        "repo/buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands: [cat msg.txt]\n",
    );
    s.write("repo/msg.txt", "committed\n");
    let repo = s.path().join("repo");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    s.write("repo/msg.txt", "dirty\n");
    let r = s.slipway(&[
        "run",
        repo.to_str().unwrap(),
        "--json",
        "--revision",
        "main",
        "--executor",
        "local",
    ]);
    assert_eq!(r.code, 0, "{}", r.explain());
    assert!(r.log("build").contains("committed"), "{}", r.explain());
    let started = &r.of_type("execution_started")[0];
    assert_eq!(started["revision"].as_str().unwrap().len(), 40);
    let r = s.slipway(&[
        "run",
        repo.to_str().unwrap(),
        "--json",
        "--executor",
        "local",
    ]);
    assert!(r.log("build").contains("dirty"), "{}", r.explain());
}

#[test]
fn deploy_actions_are_skipped_without_a_server_and_an_image_without_dockerfile_fails_clearly() {
    let s = Scratch::new();
    s.write(
        "repo/.slipway/pipeline.yml",
        "name: d\nstages:\n  - name: staging\n    actions:\n      - { name: deploy, type: deploy, environment: staging }\n  - name: image\n    actions:\n      - { name: img, type: image, repository: web }\n",
    );
    let r = s.slipway(&["run", s.path().join("repo").to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 1, "{}", r.explain());
    let fin = r.of_type("action_finished");
    assert_eq!(fin[0]["status"], "skipped", "{}", r.explain());
    // With an engine the build says what is missing; without one, that an engine is needed.
    let reason = fin[1]["reason"].as_str().unwrap();
    assert!(
        reason.contains("no Dockerfile at") || reason.contains("need a Docker engine"),
        "{}",
        r.explain()
    );
}

#[test]
fn hello_shell_pipeline_runs_in_docker() {
    if !docker() {
        return;
    }
    let s = Scratch::new();
    let r = s.slipway(&[
        "run",
        example("hello-shell").to_str().unwrap(),
        "--json",
        "--image",
        IMAGE,
    ]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let started = &r.of_type("action_started")[0];
    assert_eq!(started["executor"], "docker");
}
