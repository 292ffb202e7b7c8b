//! Table-driven tests for the buildspec parser: diagnostics and parsed values as inline snapshots.
//!
//! `check!(input, @"...")` renders what `parse` returns: every diagnostic as a user sees it,
//! then either a compact dump of the buildspec or `=> rejected`. Update with `cargo insta test
//! -p slipway-spec --accept` and review the diff.

use std::fmt::Write as _;

use super::*;

/// The inputs the fuzz seeds are made of (see `fuzz/seeds/buildspec`).
pub(crate) const AWS_REFERENCE_SAMPLE: &str = r#"version: 0.2

env:
  variables:
    JAVA_HOME: "/usr/lib/jvm/java-8-openjdk-amd64"
  parameter-store:
    LOGIN_PASSWORD: /CodeBuild/dockerLoginPassword

phases:
  install:
    commands:
      - echo Entered the install phase...
      - apt-get update -y
      - apt-get install -y maven
    finally:
      - echo This always runs even if the update or install command fails
  pre_build:
    commands:
      - echo Entered the pre_build phase...
      - docker login -u User -p $LOGIN_PASSWORD
    finally:
      - echo This always runs even if the login command fails
  build:
    commands:
      - echo Entered the build phase...
      - echo Build started on `date`
      - mvn install
    finally:
      - echo This always runs even if the install command fails
  post_build:
    commands:
      - echo Entered the post_build phase...
      - echo Build completed on `date`

reports:
  arn:aws:codebuild:your-region:your-aws-account-id:report-group/report-group-name-1:
    files:
      - "**/*"
    base-directory: 'target/tests/reports'
    discard-paths: no
  reportGroupCucumberJson:
    files:
      - 'cucumber/target/cucumber-tests.xml'
    discard-paths: yes
    file-format: CUCUMBERJSON # default is JUNITXML
artifacts:
  files:
    - target/messageUtil-1.0.jar
  discard-paths: yes
  secondary-artifacts:
    artifact1:
      files:
        - target/artifact-1.0.jar
      discard-paths: yes
    artifact2:
      files:
        - target/artifact-2.0.jar
      discard-paths: yes
cache:
  paths:
    - '/root/.m2/**/*'
"#;

pub(crate) const EVERY_KEY: &str = r#"version: 0.2
run-as: builder
env:
  shell: bash
  variables:
    PATH: "$PATH:/opt/bin"
    RATIO: 1.10
  parameter-store:
    DB_PASSWORD: /prod/db/password
  secrets-manager:
    TOKEN: "prod/api:token"
    CROSS: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf:password::v-42"
  exported-variables:
    - IMAGE_TAG
  git-credential-helper: yes
proxy:
  upload-artifacts: no
  logs: yes
phases:
  install:
    run-as: root
    on-failure: CONTINUE
    runtime-versions:
      python: 3.12
      nodejs: 20.x
    commands:
      - pip install -r requirements.txt
  pre_build:
    on-failure: RETRY-2-connection timed out
    commands:
      - ./lint.sh
  build:
    run-as: tester
    on-failure: ABORT
    commands:
      - make test
    finally:
      - make clean
  post_build:
    on-failure: RETRY
    commands:
      - echo done
reports:
  unit:
    files: ['**/*.xml']
    base-directory: build/test-results
    file-format: junitxml
  coverage:
    files: coverage.xml
    file-format: CoberturaXml
artifacts:
  files:
    - '**/*'
  name: app-$(date +%Y-%m-%d)
  discard-paths: no
  base-directory: 'dist*'
  exclude-paths:
    - '**/.*'
  enable-symlinks: yes
  s3-prefix: releases
  secondary-artifacts:
    docs:
      files: [site/**/*]
      name: docs
cache:
  key: npm-$(codebuild-hash-files package-lock.json)
  fallback-keys:
    - npm-
  action: restore
  paths:
    - node_modules/**/*
"#;

pub(crate) const ECR_DOCKER_SAMPLE: &str = r#"version: 0.2

phases:
  pre_build:
    commands:
      - echo Logging in to Amazon ECR...
      - aws ecr get-login-password --region $AWS_DEFAULT_REGION | docker login --username AWS --password-stdin $AWS_ACCOUNT_ID.dkr.ecr.$AWS_DEFAULT_REGION.amazonaws.com
  build:
    commands:
      - echo Build started on `date`
      - echo Building the Docker image...
      - docker build -t $IMAGE_REPO_NAME:$IMAGE_TAG .
      - docker tag $IMAGE_REPO_NAME:$IMAGE_TAG $AWS_ACCOUNT_ID.dkr.ecr.$AWS_DEFAULT_REGION.amazonaws.com/$IMAGE_REPO_NAME:$IMAGE_TAG
  post_build:
    commands:
      - echo Build completed on `date`
      - echo Pushing the Docker image...
      - docker push $AWS_ACCOUNT_ID.dkr.ecr.$AWS_DEFAULT_REGION.amazonaws.com/$IMAGE_REPO_NAME:$IMAGE_TAG
"#;

pub(crate) const BATCH_GRAPH_SAMPLE: &str = r#"version: 0.2
batch:
  fast-fail: false
  build-graph:
    - identifier: build1
      env:
        variables:
          BUILD_ID: build1
      ignore-failure: false
    - identifier: build2
      buildspec: build2.yml
      env:
        variables:
          BUILD_ID: build2
      depend-on:
        - build1
    - identifier: build3
      env:
        variables:
          BUILD_ID: build3
      depend-on:
        - build2
phases:
  build:
    commands:
      - echo $BUILD_ID
"#;

fn render(input: &str) -> String {
    let (spec, diags) = parse(input);
    let mut out: Vec<String> = diags.iter().map(|d| d.render("buildspec.yml")).collect();
    match spec {
        Some(s) => out.push(dump(&s)),
        None => out.push("=> rejected".to_string()),
    }
    out.join("\n")
}

/// A compact, stable view of a parsed buildspec (commands with their line:column).
fn dump(s: &Buildspec) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "version {:?}, run-as {:?}", s.version, s.run_as);
    let e = &s.env;
    if e != &Env::default() {
        let _ = writeln!(
            o,
            "env shell={:?} variables={:?} parameter-store={:?} exported={:?} git-credential-helper={}",
            e.shell, e.variables, e.parameter_store, e.exported_variables, e.git_credential_helper
        );
        for (k, r) in &e.secrets_manager {
            let _ = writeln!(
                o,
                "secret {k}: id={:?} json-key={:?} stage={:?} version={:?}",
                r.secret_id, r.json_key, r.version_stage, r.version_id
            );
        }
    }
    if s.proxy != Proxy::default() {
        let _ = writeln!(o, "{:?}", s.proxy);
    }
    for (name, p) in s.phases.iter() {
        let _ = writeln!(
            o,
            "phase {} ({}) run-as={:?} on-failure={:?} runtimes={:?}",
            name.as_str(),
            name.codebuild_name(),
            p.run_as,
            p.on_failure,
            p.runtime_versions
        );
        for c in &p.commands {
            let _ = writeln!(o, "  {}:{} $ {:?}", c.pos.line, c.pos.column, c.value);
        }
        for c in &p.finally {
            let _ = writeln!(
                o,
                "  {}:{} finally $ {:?}",
                c.pos.line, c.pos.column, c.value
            );
        }
    }
    for r in &s.reports {
        let _ = writeln!(o, "{r:?}");
    }
    if let Some(a) = &s.artifacts {
        let _ = writeln!(o, "artifact {:?}", a.primary);
        for x in &a.secondary {
            let _ = writeln!(o, "artifact {x:?}");
        }
    }
    if let Some(c) = &s.cache {
        let _ = writeln!(o, "{c:?}");
    }
    if let Some(b) = &s.batch {
        let _ = writeln!(o, "batch fast-fail={}", b.fast_fail);
        match &b.kind {
            BatchKind::List(builds) | BatchKind::Graph(builds) => {
                for x in builds {
                    let _ = writeln!(o, "  {x:?}");
                }
            }
            BatchKind::Matrix(m) => {
                let _ = writeln!(o, "  {m:?}");
                for x in m.expand() {
                    let _ = writeln!(
                        o,
                        "  -> {} buildspec={:?} image={:?} vars={:?}",
                        x.identifier, x.buildspec, x.env.image, x.env.variables
                    );
                }
            }
            k @ BatchKind::Fanout { .. } => {
                let _ = writeln!(o, "  {k:?}");
            }
        }
    }
    o.trim_end().to_string()
}

macro_rules! check {
    ($input:expr, @$expect:literal) => {
        insta::assert_snapshot!(render($input), @$expect)
    };
}

#[test]
fn aws_samples() {
    check!(AWS_REFERENCE_SAMPLE, @r#"
    version V0_2, run-as None
    env shell=None variables=[("JAVA_HOME", "/usr/lib/jvm/java-8-openjdk-amd64")] parameter-store=[("LOGIN_PASSWORD", "/CodeBuild/dockerLoginPassword")] exported=[] git-credential-helper=false
    phase install (INSTALL) run-as=None on-failure=None runtimes=[]
      12:9 $ "echo Entered the install phase..."
      13:9 $ "apt-get update -y"
      14:9 $ "apt-get install -y maven"
      16:9 finally $ "echo This always runs even if the update or install command fails"
    phase pre_build (PRE_BUILD) run-as=None on-failure=None runtimes=[]
      19:9 $ "echo Entered the pre_build phase..."
      20:9 $ "docker login -u User -p $LOGIN_PASSWORD"
      22:9 finally $ "echo This always runs even if the login command fails"
    phase build (BUILD) run-as=None on-failure=None runtimes=[]
      25:9 $ "echo Entered the build phase..."
      26:9 $ "echo Build started on `date`"
      27:9 $ "mvn install"
      29:9 finally $ "echo This always runs even if the install command fails"
    phase post_build (POST_BUILD) run-as=None on-failure=None runtimes=[]
      32:9 $ "echo Entered the post_build phase..."
      33:9 $ "echo Build completed on `date`"
    Report { name: "arn:aws:codebuild:your-region:your-aws-account-id:report-group/report-group-name-1", files: ["**/*"], base_directory: Some("target/tests/reports"), discard_paths: false, file_format: JunitXml }
    Report { name: "reportGroupCucumberJson", files: ["cucumber/target/cucumber-tests.xml"], base_directory: None, discard_paths: true, file_format: CucumberJson }
    artifact ArtifactSet { identifier: None, files: ["target/messageUtil-1.0.jar"], name: None, discard_paths: true, base_directory: None, exclude_paths: [], enable_symlinks: false, s3_prefix: None }
    artifact ArtifactSet { identifier: Some("artifact1"), files: ["target/artifact-1.0.jar"], name: None, discard_paths: true, base_directory: None, exclude_paths: [], enable_symlinks: false, s3_prefix: None }
    artifact ArtifactSet { identifier: Some("artifact2"), files: ["target/artifact-2.0.jar"], name: None, discard_paths: true, base_directory: None, exclude_paths: [], enable_symlinks: false, s3_prefix: None }
    Cache { paths: ["/root/.m2/**/*"], key: None, fallback_keys: [], action: RestoreAndSave }
    "#);
    check!(ECR_DOCKER_SAMPLE, @r#"
    version V0_2, run-as None
    phase pre_build (PRE_BUILD) run-as=None on-failure=None runtimes=[]
      6:9 $ "echo Logging in to Amazon ECR..."
      7:9 $ "aws ecr get-login-password --region $AWS_DEFAULT_REGION | docker login --username AWS --password-stdin $AWS_ACCOUNT_ID.dkr.ecr.$AWS_DEFAULT_REGION.amazonaws.com"
    phase build (BUILD) run-as=None on-failure=None runtimes=[]
      10:9 $ "echo Build started on `date`"
      11:9 $ "echo Building the Docker image..."
      12:9 $ "docker build -t $IMAGE_REPO_NAME:$IMAGE_TAG ."
      13:9 $ "docker tag $IMAGE_REPO_NAME:$IMAGE_TAG $AWS_ACCOUNT_ID.dkr.ecr.$AWS_DEFAULT_REGION.amazonaws.com/$IMAGE_REPO_NAME:$IMAGE_TAG"
    phase post_build (POST_BUILD) run-as=None on-failure=None runtimes=[]
      16:9 $ "echo Build completed on `date`"
      17:9 $ "echo Pushing the Docker image..."
      18:9 $ "docker push $AWS_ACCOUNT_ID.dkr.ecr.$AWS_DEFAULT_REGION.amazonaws.com/$IMAGE_REPO_NAME:$IMAGE_TAG"
    "#);
    check!(EVERY_KEY, @r#"
    buildspec.yml:15:3: warning: `git-credential-helper` is accepted but ignored by Slipway: CodeBuild's git credential helper is AWS-only (at `env.git-credential-helper`)
    buildspec.yml:17:3: warning: `upload-artifacts` is accepted but ignored by Slipway: explicit proxy server mode is AWS-only (at `proxy.upload-artifacts`)
    buildspec.yml:18:3: warning: `logs` is accepted but ignored by Slipway: explicit proxy server mode is AWS-only (at `proxy.logs`)
    buildspec.yml:23:5: warning: `runtime-versions` is accepted but ignored by Slipway: Slipway runs the build image as it is; pick an image with these runtimes or install them in `commands` (at `phases.install.runtime-versions`)
    buildspec.yml:59:3: warning: `enable-symlinks` is accepted but ignored by Slipway: Slipway packages artifacts its own way (at `artifacts.enable-symlinks`)
    buildspec.yml:60:3: warning: `s3-prefix` is accepted but ignored by Slipway: artifacts go to Slipway's store, not to an S3 bucket path (at `artifacts.s3-prefix`)
    version V0_2, run-as Some("builder")
    env shell=Some("bash") variables=[("PATH", "$PATH:/opt/bin"), ("RATIO", "1.10")] parameter-store=[("DB_PASSWORD", "/prod/db/password")] exported=["IMAGE_TAG"] git-credential-helper=true
    secret TOKEN: id="prod/api" json-key=Some("token") stage=None version=None
    secret CROSS: id="arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf" json-key=Some("password") stage=None version=Some("v-42")
    Proxy { upload_artifacts: false, logs: true }
    phase install (INSTALL) run-as=Some("root") on-failure=Some(Continue) runtimes=[("python", "3.12"), ("nodejs", "20.x")]
      27:9 $ "pip install -r requirements.txt"
    phase pre_build (PRE_BUILD) run-as=None on-failure=Some(Retry { count: 2, pattern: Some("connection timed out") }) runtimes=[]
      31:9 $ "./lint.sh"
    phase build (BUILD) run-as=Some("tester") on-failure=Some(Abort) runtimes=[]
      36:9 $ "make test"
      38:9 finally $ "make clean"
    phase post_build (POST_BUILD) run-as=None on-failure=Some(Retry { count: 3, pattern: None }) runtimes=[]
      42:9 $ "echo done"
    Report { name: "unit", files: ["**/*.xml"], base_directory: Some("build/test-results"), discard_paths: false, file_format: JunitXml }
    Report { name: "coverage", files: ["coverage.xml"], base_directory: None, discard_paths: false, file_format: CoberturaXml }
    artifact ArtifactSet { identifier: None, files: ["**/*"], name: Some("app-$(date +%Y-%m-%d)"), discard_paths: false, base_directory: Some("dist*"), exclude_paths: ["**/.*"], enable_symlinks: true, s3_prefix: Some("releases") }
    artifact ArtifactSet { identifier: Some("docs"), files: ["site/**/*"], name: Some("docs"), discard_paths: false, base_directory: None, exclude_paths: [], enable_symlinks: false, s3_prefix: None }
    Cache { paths: ["node_modules/**/*"], key: Some("npm-$(codebuild-hash-files package-lock.json)"), fallback_keys: ["npm-"], action: Restore }
    "#);
}

#[test]
fn batch_samples() {
    check!(BATCH_GRAPH_SAMPLE, @r#"
    version V0_2, run-as None
    phase build (BUILD) run-as=None on-failure=None runtimes=[]
      26:9 $ "echo $BUILD_ID"
    batch fast-fail=false
      BatchBuild { identifier: "build1", buildspec: None, env: BatchEnv { image: None, compute_type: None, privileged_mode: None, env_type: None, variables: [("BUILD_ID", "build1")] }, ignore_failure: false, depend_on: [], debug_session: false }
      BatchBuild { identifier: "build2", buildspec: Some("build2.yml"), env: BatchEnv { image: None, compute_type: None, privileged_mode: None, env_type: None, variables: [("BUILD_ID", "build2")] }, ignore_failure: false, depend_on: ["build1"], debug_session: false }
      BatchBuild { identifier: "build3", buildspec: None, env: BatchEnv { image: None, compute_type: None, privileged_mode: None, env_type: None, variables: [("BUILD_ID", "build3")] }, ignore_failure: false, depend_on: ["build2"], debug_session: false }
    "#);
    check!(r#"version: 0.2
batch:
  fast-fail: true
  build-list:
    - identifier: build1
      env:
        variables:
          BUILD_ID: build1
      ignore-failure: false
    - identifier: build2
      buildspec: build2.yml
      env:
        image: aws/codebuild/standard:7.0
        privileged-mode: true
        variables:
          BUILD_ID: build2
      ignore-failure: true
      debug-session: true
    - identifier: build3
      env:
        compute-type: BUILD_GENERAL1_LARGE
        type: LINUX_CONTAINER
phases:
  build:
    commands: [make]
"#, @r#"
    buildspec.yml:18:7: warning: `debug-session` is accepted but ignored by Slipway: Session Manager debugging is AWS-only (at `batch.build-list[1].debug-session`)
    buildspec.yml:21:9: warning: `compute-type` is accepted but ignored by Slipway: AWS compute types do not apply to Slipway agents (at `batch.build-list[2].env.compute-type`)
    buildspec.yml:22:9: warning: `type` is accepted but ignored by Slipway: the environment type follows from the image (at `batch.build-list[2].env.type`)
    version V0_2, run-as None
    phase build (BUILD) run-as=None on-failure=None runtimes=[]
      25:16 $ "make"
    batch fast-fail=true
      BatchBuild { identifier: "build1", buildspec: None, env: BatchEnv { image: None, compute_type: None, privileged_mode: None, env_type: None, variables: [("BUILD_ID", "build1")] }, ignore_failure: false, depend_on: [], debug_session: false }
      BatchBuild { identifier: "build2", buildspec: Some("build2.yml"), env: BatchEnv { image: Some("aws/codebuild/standard:7.0"), compute_type: None, privileged_mode: Some(true), env_type: None, variables: [("BUILD_ID", "build2")] }, ignore_failure: true, depend_on: [], debug_session: true }
      BatchBuild { identifier: "build3", buildspec: None, env: BatchEnv { image: None, compute_type: Some("BUILD_GENERAL1_LARGE"), privileged_mode: None, env_type: Some("LINUX_CONTAINER"), variables: [] }, ignore_failure: false, depend_on: [], debug_session: false }
    "#);
    check!(r#"version: 0.2
batch:
  build-matrix:
    static:
      ignore-failure: false
      env:
        privileged-mode: true
        variables:
          MY_VAR: static
          OTHER: kept
    dynamic:
      buildspec:
        - matrix1.yml
        - matrix2.yml
      env:
        variables:
          MY_VAR:
            - VALUE1
            - VALUE2
            - VALUE3
phases:
  build:
    commands: [make]
"#, @r#"
    version V0_2, run-as None
    phase build (BUILD) run-as=None on-failure=None runtimes=[]
      23:16 $ "make"
    batch fast-fail=false
      BuildMatrix { static_ignore_failure: false, static_env: BatchEnv { image: None, compute_type: None, privileged_mode: Some(true), env_type: None, variables: [("MY_VAR", "static"), ("OTHER", "kept")] }, buildspecs: ["matrix1.yml", "matrix2.yml"], images: [], compute_types: [], variables: [("MY_VAR", ["VALUE1", "VALUE2", "VALUE3"])] }
      -> build1 buildspec=Some("matrix1.yml") image=None vars=[("MY_VAR", "VALUE1"), ("OTHER", "kept")]
      -> build2 buildspec=Some("matrix1.yml") image=None vars=[("MY_VAR", "VALUE2"), ("OTHER", "kept")]
      -> build3 buildspec=Some("matrix1.yml") image=None vars=[("MY_VAR", "VALUE3"), ("OTHER", "kept")]
      -> build4 buildspec=Some("matrix2.yml") image=None vars=[("MY_VAR", "VALUE1"), ("OTHER", "kept")]
      -> build5 buildspec=Some("matrix2.yml") image=None vars=[("MY_VAR", "VALUE2"), ("OTHER", "kept")]
      -> build6 buildspec=Some("matrix2.yml") image=None vars=[("MY_VAR", "VALUE3"), ("OTHER", "kept")]
    "#);
    check!(r#"version: 0.2
batch:
  fast-fail: false
  build-fanout:
    parallelism: 5
    ignore-failure: false
phases:
  install:
    commands:
      - npm install
  build:
    commands:
      - mkdir -p test-results
      - |
        codebuild-tests-run \
         --test-command 'npx jest --runInBand --coverage' \
         --files-search "codebuild-glob-search '**/test/**/*.test.js'" \
         --sharding-strategy 'equal-distribution'
"#, @r#"
    buildspec.yml:4:3: warning: test sharding (`codebuild-tests-run`) is accepted but ignored by Slipway: each of the 5 builds runs the whole buildspec (at `batch.build-fanout`)
    version V0_2, run-as None
    phase install (INSTALL) run-as=None on-failure=None runtimes=[]
      10:9 $ "npm install"
    phase build (BUILD) run-as=None on-failure=None runtimes=[]
      13:9 $ "mkdir -p test-results"
      15:9 $ "codebuild-tests-run \\\n --test-command 'npx jest --runInBand --coverage' \\\n --files-search \"codebuild-glob-search '**/test/**/*.test.js'\" \\\n --sharding-strategy 'equal-distribution'\n"
    batch fast-fail=false
      Fanout { parallelism: 5, ignore_failure: false }
    "#);
}

#[test]
fn scalars_as_written() {
    // YAML 1.1 booleans, numbers kept as written, multiline commands, version as a string.
    check!(r#"version: "0.2"
env:
  variables:
    VERSION: 1.10
    HEX: 0x1F
    FLAG: yes
phases:
  build:
    commands:
      - 42
      - |
        if [ -n "$X" ]; then
          echo "x: $X"
        fi
      - >
        docker build
        -t app .
      - "echo \"quoted: fine\""
artifacts:
  files: out.txt
  discard-paths: yes
"#, @r#"
    version V0_2, run-as None
    env shell=None variables=[("VERSION", "1.10"), ("HEX", "0x1F"), ("FLAG", "yes")] parameter-store=[] exported=[] git-credential-helper=false
    phase build (BUILD) run-as=None on-failure=None runtimes=[]
      10:9 $ "42"
      12:9 $ "if [ -n \"$X\" ]; then\n  echo \"x: $X\"\nfi\n"
      16:9 $ "docker build -t app .\n"
      18:9 $ "echo \"quoted: fine\""
    artifact ArtifactSet { identifier: None, files: ["out.txt"], name: None, discard_paths: true, base_directory: None, exclude_paths: [], enable_symlinks: false, s3_prefix: None }
    "#);
    check!(r#"version: 0.1
environment_variables:
  plaintext:
    JAVA_HOME: /usr/lib/jvm
phases:
  build:
    commands:
      - mvn package
"#, @r#"
    version V0_1, run-as None
    env shell=None variables=[("JAVA_HOME", "/usr/lib/jvm")] parameter-store=[] exported=[] git-credential-helper=false
    phase build (BUILD) run-as=None on-failure=None runtimes=[]
      8:9 $ "mvn package"
    "#);
    // install may hold only runtime-versions.
    check!("version: 0.2\nphases:\n  install:\n    runtime-versions:\n      java: corretto17\n", @r#"
    buildspec.yml:4:5: warning: `runtime-versions` is accepted but ignored by Slipway: Slipway runs the build image as it is; pick an image with these runtimes or install them in `commands` (at `phases.install.runtime-versions`)
    version V0_2, run-as None
    phase install (INSTALL) run-as=None on-failure=None runtimes=[("java", "corretto17")]
    "#);
}

#[test]
fn document_errors() {
    check!("", @"
    buildspec.yml:1:1: error: empty buildspec
      hint: start with `version: 0.2` and a `phases` mapping
    => rejected
    ");
    check!("   \n# only a comment\n", @"
    buildspec.yml:1:1: error: empty buildspec
      hint: start with `version: 0.2` and a `phases` mapping
    => rejected
    ");
    check!("- version: 0.2\n", @"
    buildspec.yml:1:1: error: a buildspec must be a mapping of keys such as `version` and `phases`, found a list
      hint: start with `version: 0.2` and a `phases` mapping
    => rejected
    ");
    check!("version: 0.2\nphases: [\n", @"
    buildspec.yml:2:9: error: invalid YAML: unclosed bracket '['
    => rejected
    ");
    check!("phases:\n  build:\n    commands: [make]\n", @"
    buildspec.yml:1:1: error: missing required key `version` (at `version`)
      hint: add `version: 0.2` at the top of the file
    => rejected
    ");
    check!("version: 0.3\nphases:\n  build:\n    commands: [make]\n", @"
    buildspec.yml:1:10: error: unsupported buildspec version `0.3` (at `version`)
      hint: use `version: 0.2` (0.1 is also accepted)
    => rejected
    ");
    check!("version: [0.2]\nphases:\n  build:\n    commands: [make]\n", @"
    buildspec.yml:1:10: error: `version` must be 0.2 or 0.1, found a list (at `version`)
      hint: use `version: 0.2` (0.1 is also accepted)
    => rejected
    ");
    check!("version: 0.2\n", @"
    buildspec.yml:1:1: error: missing required key `phases` (at `phases`)
      hint: add `phases:` with at least `build:` and its `commands:`
    => rejected
    ");
    check!("version: 0.2\nphases:\n", @"
    buildspec.yml:2:7: error: `phases` has no phase (at `phases`)
      hint: add `build:` with its `commands:`
    => rejected
    ");
    check!("version: 0.2\nphase:\n  build:\n    commands: [make]\nartifact:\n  files: [a]\n", @"
    buildspec.yml:1:1: error: missing required key `phases` (at `phases`)
      hint: add `phases:` with at least `build:` and its `commands:`
    buildspec.yml:2:1: error: unknown key `phase` in the top level (at `phase`)
      hint: did you mean `phases`?
    buildspec.yml:5:1: error: unknown key `artifact` in the top level (at `artifact`)
      hint: did you mean `artifacts`?
    => rejected
    ");
    check!("version: 0.2\nenvironment_variables:\n  plaintext:\n    A: b\nphases:\n  build:\n    commands: [make]\n", @"
    buildspec.yml:2:1: error: `environment_variables` is the buildspec 0.1 name (at `environment_variables`)
      hint: in version 0.2 write `env:` with `variables:` instead of `plaintext:`
    => rejected
    ");
}

#[test]
fn phase_errors() {
    check!(r#"version: 0.2
phases:
  prebuild:
    commands:
      - make deps
  build:
    comands:
      - make
  post_build:
    finally:
      - echo bye
  install:
    on-failure: RETRY-101
  pre_build:
    commands: []
"#, @"
    buildspec.yml:3:3: error: unknown key `prebuild` in `phases` (at `phases.prebuild`)
      hint: did you mean `pre_build`?
    buildspec.yml:6:3: error: phase `build` has no `commands` (at `phases.build.commands`)
      hint: AWS requires `commands` in a phase that is present; add them or remove the phase
    buildspec.yml:7:5: error: unknown key `comands` in `phases.build` (at `phases.build.comands`)
      hint: did you mean `commands`?
    buildspec.yml:9:3: error: phase `post_build` has no `commands` (at `phases.post_build.commands`)
      hint: AWS requires `commands` in a phase that is present; add them or remove the phase
    buildspec.yml:13:17: error: retry count `101` is out of range 0..=100 (at `phases.install.on-failure`)
      hint: valid forms: ABORT, CONTINUE, RETRY, RETRY-<count>, RETRY-<regex> or RETRY-<count>-<regex> (count 0..=100)
    buildspec.yml:15:5: error: phase `pre_build` has an empty `commands` list (at `phases.pre_build.commands`)
      hint: add at least one command or remove the phase
    => rejected
    ");
    check!(r#"version: 0.2
phases:
  build:
    runtime-versions:
      java: 17
    commands:
      - echo Build: done
      -
      - [a, b]
      - echo `date`: start
      - make
    finally: make clean
"#, @r#"
    buildspec.yml:4:5: error: `runtime-versions` is only allowed in `install`, not in `build` (at `phases.build.runtime-versions`)
      hint: move it to `phases.install`
    buildspec.yml:7:9: error: a command must be a string, but YAML read this one as a mapping (at `phases.build.commands[0]`)
      hint: quote the command: it contains `: ` (write `- "echo Build: done"`)
    buildspec.yml:8:8: error: empty command (at `phases.build.commands[1]`)
      hint: remove the empty `- ` line
    buildspec.yml:9:9: error: a command must be a string, found a list (at `phases.build.commands[2]`)
      hint: write one command per `- ` line; quote commands that start with `[`
    buildspec.yml:10:9: error: a command must be a string, but YAML read this one as a mapping (at `phases.build.commands[3]`)
      hint: quote the command: it contains `: ` (write `- "echo `date`: start"`)
    buildspec.yml:12:14: error: expected a list of commands, found a string (at `phases.build.finally`)
      hint: write each command on its own line starting with `- `
    => rejected
    "#);
    check!(r#"version: 0.2
phases:
  build:
    commands: make
  post_build:
    on-failure: RETRY-
    commands: [a]
  install:
    on-failure: SOMETIMES
    runtime-versions:
"#, @"
    buildspec.yml:4:15: error: expected a list of commands, found a string (at `phases.build.commands`)
      hint: write each command on its own line starting with `- `
    buildspec.yml:6:17: error: `RETRY-` names neither a retry count nor a pattern (at `phases.post_build.on-failure`)
      hint: valid forms: ABORT, CONTINUE, RETRY, RETRY-<count>, RETRY-<regex> or RETRY-<count>-<regex> (count 0..=100)
    buildspec.yml:9:17: error: unknown `on-failure` value `SOMETIMES` (at `phases.install.on-failure`)
      hint: valid forms: ABORT, CONTINUE, RETRY, RETRY-<count>, RETRY-<regex> or RETRY-<count>-<regex> (count 0..=100)
    buildspec.yml:10:5: warning: `runtime-versions` is accepted but ignored by Slipway: Slipway runs the build image as it is; pick an image with these runtimes or install them in `commands` (at `phases.install.runtime-versions`)
    buildspec.yml:10:21: error: `runtime-versions` lists no runtime (at `phases.install.runtime-versions`)
      hint: list at least one, e.g. `python: 3.12`, or remove the key
    => rejected
    ");
}

#[test]
fn env_errors() {
    check!(r#"version: 0.2
env:
  shell: bsh
  variables:
    CODEBUILD_BUILD_ID: mine
    EMPTY:
    LIST: [a, b]
  parameter-store:
    CODEBUILD_X: /x
  secrets-manager:
    BOTH: "db:password:AWSCURRENT:v-1"
    MANY: "db:password:AWSCURRENT::extra"
    SHORT_ARN: "arn:aws:secretsmanager:eu-west-1:123456789012:secret"
    NO_ID: ":password"
  exported-variables:
    - AWS_REGION
    - OK_VAR
  git-credential-helper: maybe
  varibles:
    A: b
phases:
  build:
    commands: [make]
"#, @r#"
    buildspec.yml:3:10: error: unsupported shell `bsh` (at `env.shell`)
      hint: did you mean `bash`?
    buildspec.yml:5:5: error: `CODEBUILD_BUILD_ID`: names starting with `CODEBUILD_` are reserved (at `env.variables.CODEBUILD_BUILD_ID`)
      hint: choose another name; CODEBUILD_* variables are set by the build itself
    buildspec.yml:6:10: error: `EMPTY` has no value (at `env.variables.EMPTY`)
      hint: write `EMPTY: ""` for an empty value
    buildspec.yml:7:11: error: expected a string, found a list (at `env.variables.LIST`)
    buildspec.yml:9:5: error: `CODEBUILD_X`: names starting with `CODEBUILD_` are reserved (at `env.parameter-store.CODEBUILD_X`)
      hint: choose another name; CODEBUILD_* variables are set by the build itself
    buildspec.yml:11:11: error: secret reference `db:password:AWSCURRENT:v-1` gives both a version stage and a version id (at `env.secrets-manager.BOTH`)
      hint: give one of them: `id:key:AWSCURRENT` or `id:key::<version-id>`
    buildspec.yml:12:11: error: secret reference `db:password:AWSCURRENT::extra` has too many `:`-separated fields (at `env.secrets-manager.MANY`)
      hint: write `secret-id[:json-key[:version-stage[:version-id]]]`, e.g. `prod/db:password` or `arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf:password`
    buildspec.yml:13:16: error: secret ARN `arn:aws:secretsmanager:eu-west-1:123456789012:secret` is incomplete: an ARN has 7 `:`-separated fields (at `env.secrets-manager.SHORT_ARN`)
      hint: write `secret-id[:json-key[:version-stage[:version-id]]]`, e.g. `prod/db:password` or `arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf:password`
    buildspec.yml:14:12: error: secret reference `:password` has no secret id (at `env.secrets-manager.NO_ID`)
      hint: write `secret-id[:json-key[:version-stage[:version-id]]]`, e.g. `prod/db:password` or `arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf:password`
    buildspec.yml:16:7: error: `AWS_REGION` cannot be exported: names starting with `AWS_` are not exported (at `env.exported-variables[0]`)
      hint: copy the value into a variable with another name and export that
    buildspec.yml:18:26: error: expected yes/no or true/false, found a string (at `env.git-credential-helper`)
      hint: write `yes` or `no`
    buildspec.yml:19:3: error: unknown key `varibles` in `env` (at `env.varibles`)
      hint: did you mean `variables`?
    => rejected
    "#);
}

#[test]
fn artifact_report_cache_errors() {
    check!(r#"version: 0.2
phases:
  build:
    commands: [make]
artifacts:
  discard-paths: sure
  secondary-artifacts:
    good_one:
      files: [a]
    bad-id:
      name: x
    other:
      files: [b]
      s3-prefix: nope
reports:
  g1:
    files: [a]
    file-format: JUNIT
  g2:
    base-directory: x
  g3: {files: [c]}
  g4: {files: [d]}
  g5: {files: [e]}
  g6: {files: [f], file-format: whatever}
cache:
  fallback-keys: [a, b, c, d, e, f]
  action: both
"#, @"
    buildspec.yml:6:3: error: missing required key `files` in `artifacts` (at `artifacts.files`)
      hint: AWS requires `artifacts.files` even when only secondary artifacts are used, e.g. `files: ['**/*']`
    buildspec.yml:6:18: error: expected yes/no or true/false, found a string (at `artifacts.discard-paths`)
      hint: write `yes` or `no`
    buildspec.yml:10:5: error: invalid artifact identifier `bad-id` (at `artifacts.secondary-artifacts.bad-id`)
      hint: use only letters, digits and `_`, fewer than 128 characters (AWS's rule for identifiers)
    buildspec.yml:11:7: error: missing required key `files` in `artifacts.secondary-artifacts.bad-id` (at `artifacts.secondary-artifacts.bad-id.files`)
      hint: list the files of this artifact, e.g. `files: ['dist/**/*']`
    buildspec.yml:14:7: warning: `s3-prefix` is accepted but ignored by Slipway: artifacts go to Slipway's store, not to an S3 bucket path (at `artifacts.secondary-artifacts.other.s3-prefix`)
    buildspec.yml:18:18: error: unknown report format `JUNIT` (at `reports.g1.file-format`)
      hint: did you mean `JUNITXML`?
    buildspec.yml:20:5: error: missing required key `files` in `reports.g2` (at `reports.g2.files`)
      hint: list the report files, e.g. `files: ['**/*.xml']`
    buildspec.yml:24:3: warning: more than 5 report groups (at `reports.g6`)
      hint: AWS allows at most 5 report groups per project; Slipway reads them all
    buildspec.yml:24:33: error: unknown report format `whatever` (at `reports.g6.file-format`)
      hint: expected one of: JUNITXML, CUCUMBERJSON, NUNITXML, NUNIT3XML, TESTNGXML, VISUALSTUDIOTRX, CLOVERXML, COBERTURAXML, JACOCOXML, SIMPLECOV
    buildspec.yml:26:3: warning: the cache has no `paths`: nothing is cached (at `cache.paths`)
      hint: list what to keep between builds, e.g. `paths: ['/root/.m2/**/*']`
    buildspec.yml:26:3: warning: `fallback-keys` is ignored without `key` (at `cache.fallback-keys`)
      hint: add `key:`; fallback keys are only tried when it misses
    buildspec.yml:26:34: error: at most 5 fallback keys are allowed, found 6 (at `cache.fallback-keys[5]`)
      hint: keep the five most useful prefixes
    buildspec.yml:27:11: error: unknown cache action `both` (at `cache.action`)
      hint: use `restore` or `save`, or leave `action` out to do both
    => rejected
    ");
}

#[test]
fn batch_errors() {
    check!(r#"version: 0.2
batch:
  fast-fail: sometimes
  build-list:
    - identifier: build-1
      depend-on: [x]
    - identifier: b
    - identifier: b
    - buildspec: x.yml
  build-fanout:
    parallelism: 0
phases:
  build:
    commands: [make]
"#, @"
    buildspec.yml:3:14: error: expected yes/no or true/false, found a string (at `batch.fast-fail`)
      hint: write `yes` or `no`
    buildspec.yml:5:19: error: invalid build identifier `build-1` (at `batch.build-list[0].identifier`)
      hint: use only letters, digits and `_`, fewer than 128 characters (AWS's rule for identifiers)
    buildspec.yml:6:7: error: `depend-on` is only allowed in `build-graph` (at `batch.build-list[0].depend-on`)
      hint: use `build-graph` to order builds; `build-list` runs them all in parallel
    buildspec.yml:8:19: error: duplicate build identifier `b` (at `batch.build-list[2].identifier`)
      hint: it is already used at line 7; identifiers must be unique in a batch
    buildspec.yml:9:7: error: build has no `identifier` (at `batch.build-list[3].identifier`)
      hint: add `identifier: build1` (letters, digits and `_`)
    buildspec.yml:10:3: error: `batch` has both `build-list` and `build-fanout` (at `batch.build-fanout`)
      hint: a batch uses exactly one of build-list, build-graph, build-matrix, build-fanout
    buildspec.yml:11:18: error: `parallelism` 0 is out of range 1..=100 (at `batch.build-fanout.parallelism`)
      hint: choose the number of builds to run in parallel
    => rejected
    ");
    check!(r#"version: 0.2
batch:
  build-graph:
    - identifier: a
      depend-on: [c]
    - identifier: b
      depend-on: [a, bb]
    - identifier: c
      depend-on: [b]
    - identifier: d
      depend-on: [d]
      env:
        compute-type: BUILD_GENERAL1_SMALL
        fleet: my_fleet
phases:
  build:
    commands: [make]
"#, @"
    buildspec.yml:4:19: error: dependency cycle: a -> c -> b -> a (at `batch.build-graph[0].depend-on`)
      hint: remove one of these `depend-on` entries
    buildspec.yml:7:22: error: `bb` is not the identifier of a build in this graph (at `batch.build-graph[1].depend-on[1]`)
      hint: did you mean `b`?
    buildspec.yml:10:19: error: dependency cycle: d -> d (at `batch.build-graph[3].depend-on`)
      hint: remove one of these `depend-on` entries
    buildspec.yml:13:9: warning: `compute-type` is accepted but ignored by Slipway: AWS compute types do not apply to Slipway agents (at `batch.build-graph[3].env.compute-type`)
    buildspec.yml:14:9: error: `compute-type` and `fleet` cannot both be given (at `batch.build-graph[3].env.fleet`)
      hint: keep one of them
    buildspec.yml:14:9: warning: `fleet` is accepted but ignored by Slipway: reserved capacity fleets are AWS-only (at `batch.build-graph[3].env.fleet`)
    => rejected
    ");
    check!(r#"version: 0.2
batch:
  fast-fail: true
phases:
  build:
    commands: [make]
"#, @"
    buildspec.yml:3:3: error: `batch` names no kind of batch (at `batch`)
      hint: a batch uses exactly one of build-list, build-graph, build-matrix, build-fanout
    => rejected
    ");
    check!(r#"version: 0.2
batch:
  build-matrix:
    dynamic:
      image: [i1, i2, i3, i4, i5]
      env:
        image: [i1, i2, i3, i4, i5]
        variables:
          A: [1, 2, 3, 4, 5]
          B: [1, 2, 3, 4, 5]
          C: [1, 2, 3, 4, 5]
          CODEBUILD_X: [1]
          EMPTY: []
phases:
  build:
    commands: [make]
"#, @"
    buildspec.yml:4:5: error: the matrix expands to 625 builds; Slipway allows at most 100 in one batch (at `batch.build-matrix.dynamic`)
      hint: remove values, or split the matrix over several projects
    buildspec.yml:5:7: error: unknown key `image` in `batch.build-matrix.dynamic` (at `batch.build-matrix.dynamic.image`)
      hint: expected one of: buildspec, env
    buildspec.yml:12:11: error: `CODEBUILD_X`: names starting with `CODEBUILD_` are reserved (at `batch.build-matrix.dynamic.env.variables.CODEBUILD_X`)
      hint: choose another name; CODEBUILD_* variables are set by the build itself
    buildspec.yml:13:18: error: `EMPTY` lists no values (at `batch.build-matrix.dynamic.env.variables.EMPTY`)
      hint: write `EMPTY: [value1, value2]`
    => rejected
    ");
    check!(r#"version: 0.2
batch:
  build-fanout:
    ignore-failure: true
phases:
  build:
    commands: [make]
"#, @"
    buildspec.yml:3:3: error: build fanout has no `parallelism` (at `batch.build-fanout.parallelism`)
      hint: add `parallelism: 2` (the number of builds)
    => rejected
    ");
}

#[test]
fn several_errors_at_once_in_position_order() {
    check!(r#"version: 0.2
env:
  variables:
    CODEBUILD_X: 1
phases:
  biuld:
    commands: [make]
  build:
    commands:
      - echo a: b
artifacts:
  name: x
cache:
  action: nope
"#, @r#"
    buildspec.yml:4:5: error: `CODEBUILD_X`: names starting with `CODEBUILD_` are reserved (at `env.variables.CODEBUILD_X`)
      hint: choose another name; CODEBUILD_* variables are set by the build itself
    buildspec.yml:6:3: error: unknown key `biuld` in `phases` (at `phases.biuld`)
      hint: did you mean `build`?
    buildspec.yml:10:9: error: a command must be a string, but YAML read this one as a mapping (at `phases.build.commands[0]`)
      hint: quote the command: it contains `: ` (write `- "echo a: b"`)
    buildspec.yml:12:3: error: missing required key `files` in `artifacts` (at `artifacts.files`)
      hint: AWS requires `artifacts.files` even when only secondary artifacts are used, e.g. `files: ['**/*']`
    buildspec.yml:14:3: warning: the cache has no `paths`: nothing is cached (at `cache.paths`)
      hint: list what to keep between builds, e.g. `paths: ['/root/.m2/**/*']`
    buildspec.yml:14:11: error: unknown cache action `nope` (at `cache.action`)
      hint: use `restore` or `save`, or leave `action` out to do both
    => rejected
    "#);
}

#[test]
fn secret_refs() {
    let ok = |raw: &str| {
        let r = parse_secret_ref(raw).expect(raw);
        format!(
            "{} | {:?} | {:?} | {:?}",
            r.secret_id, r.json_key, r.version_stage, r.version_id
        )
    };
    assert_eq!(ok("TestSecret"), "TestSecret | None | None | None");
    assert_eq!(
        ok("TestSecret:MY_SECRET_VAR"),
        "TestSecret | Some(\"MY_SECRET_VAR\") | None | None"
    );
    assert_eq!(
        ok("db:pw:AWSPREVIOUS"),
        "db | Some(\"pw\") | Some(\"AWSPREVIOUS\") | None"
    );
    assert_eq!(ok("db:::v1"), "db | None | None | Some(\"v1\")");
    assert_eq!(
        ok("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC"),
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC | None | None | None"
    );
    assert_eq!(
        ok("arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x-1:user:AWSCURRENT"),
        "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x-1 | Some(\"user\") | Some(\"AWSCURRENT\") | None"
    );
    for bad in [
        "",
        ":key",
        "a:b:c:d:e",
        "db:k:stage:id",
        "arn:aws:secretsmanager:us-east-1",
        "arn:aws:secretsmanager::123:secret:x",
    ] {
        assert!(parse_secret_ref(bad).is_err(), "{bad}");
    }
}

#[test]
fn on_failure_forms() {
    let retry = |count, pattern: Option<&str>| OnFailure::Retry {
        count,
        pattern: pattern.map(str::to_string),
    };
    let cases = [
        ("ABORT", Ok(OnFailure::Abort)),
        ("continue", Ok(OnFailure::Continue)),
        ("RETRY", Ok(retry(3, None))),
        ("RETRY-0", Ok(retry(0, None))),
        ("RETRY-100", Ok(retry(100, None))),
        ("RETRY-4", Ok(retry(4, None))),
        ("RETRY-invalid+", Ok(retry(3, Some("invalid+")))),
        (
            "Retry-.*Error: Unable to connect.*",
            Ok(retry(3, Some(".*Error: Unable to connect.*"))),
        ),
        ("RETRY-8-invalid+", Ok(retry(8, Some("invalid+")))),
        (
            "Retry-3-.*connection-timed out.*",
            Ok(retry(3, Some(".*connection-timed out.*"))),
        ),
        ("RETRY-101", Err(())),
        ("RETRY-99999999999999999999", Err(())),
        ("RETRY-5-", Err(())),
        ("RETRY-", Err(())),
        ("RETRY5", Err(())),
        ("RETRY-unclosed(", Err(())),
        ("RETRY-2-[a-", Err(())),
        ("ABORTT", Err(())),
        ("", Err(())),
        ("é", Err(())),
    ];
    for (input, want) in cases {
        assert_eq!(parse_on_failure(input).map_err(|_| ()), want, "{input}");
    }
}

#[test]
fn matrix_expansion_order_and_identifiers() {
    let m = BuildMatrix {
        static_ignore_failure: true,
        static_env: BatchEnv {
            variables: vec![("A".into(), "static".into()), ("K".into(), "k".into())],
            ..BatchEnv::default()
        },
        buildspecs: vec!["x.yml".into(), "y.yml".into()],
        images: vec![],
        compute_types: vec![],
        variables: vec![("A".into(), vec!["1".into(), "2".into()])],
    };
    let got: Vec<String> = m
        .expand()
        .iter()
        .map(|b| {
            format!(
                "{} {:?} {:?} {}",
                b.identifier, b.buildspec, b.env.variables, b.ignore_failure
            )
        })
        .collect();
    insta::assert_snapshot!(got.join("\n"), @r#"
    build1 Some("x.yml") [("A", "1"), ("K", "k")] true
    build2 Some("x.yml") [("A", "2"), ("K", "k")] true
    build3 Some("y.yml") [("A", "1"), ("K", "k")] true
    build4 Some("y.yml") [("A", "2"), ("K", "k")] true
    "#);
    assert_eq!(m.build_count(), 4);
    assert_eq!(BuildMatrix::default().expand().len(), 1);
    assert!(
        m.expand()
            .iter()
            .all(|b| batch::valid_identifier(&b.identifier))
    );
}

#[test]
fn phases_iterate_in_run_order() {
    let (spec, _) = parse(
        "version: 0.2\nphases:\n  post_build:\n    commands: [c]\n  build:\n    commands: [b]\n  install:\n    commands: [a]\n",
    );
    let names: Vec<&str> = spec
        .expect("valid")
        .phases
        .iter()
        .map(|(n, _)| n.codebuild_name())
        .collect();
    assert_eq!(names, ["INSTALL", "BUILD", "POST_BUILD"]);
}

#[test]
fn long_dependency_chain_does_not_overflow() {
    // Regression guard for the cycle check: it is iterative, so 5,000 builds in a chain are fine.
    let mut s = String::from(
        "version: 0.2\nphases:\n  build:\n    commands: [x]\nbatch:\n  build-graph:\n",
    );
    for i in 0..5000 {
        let _ = writeln!(s, "    - identifier: b{i}");
        if i > 0 {
            let _ = writeln!(s, "      depend-on: [b{}]", i - 1);
        }
    }
    let (spec, diags) = parse(&s);
    assert!(spec.is_some(), "{diags:?}");
}

#[test]
fn variable_names_must_be_shell_identifiers() {
    check!("version: 0.2\nenv:\n  variables:\n    \"A B\": x\n    OK_1: y\n  exported-variables: [\"X}\", GOOD]\n  parameter-store:\n    1BAD: /p\nphases:\n  build:\n    on-failure: RETRY-(oops\n    commands: [true]\n", @r"
    buildspec.yml:4:5: error: `A B` is not a valid variable name (at `env.variables.A B`)
      hint: start with a letter or `_`, then letters, digits or `_`
    buildspec.yml:6:24: error: `X}` is not a valid variable name (at `env.exported-variables[0]`)
      hint: start with a letter or `_`, then letters, digits or `_`
    buildspec.yml:8:5: error: `1BAD` is not a valid variable name (at `env.parameter-store.1BAD`)
      hint: start with a letter or `_`, then letters, digits or `_`
    buildspec.yml:11:17: error: retry pattern `(oops` is not a valid regular expression: unclosed group (at `phases.build.on-failure`)
      hint: valid forms: ABORT, CONTINUE, RETRY, RETRY-<count>, RETRY-<regex> or RETRY-<count>-<regex> (count 0..=100)
    => rejected
    ");
}
