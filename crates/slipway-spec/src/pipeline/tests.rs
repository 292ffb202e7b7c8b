//! Table-driven tests of `pipeline::parse`: diagnostics as rendered, good files as a compact dump.

use super::*;
use insta::assert_snapshot;

const FILE: &str = ".slipway/pipeline.yml";

/// A good file as a compact dump (plus any warnings); a bad one as its rendered diagnostics.
fn check(input: &str) -> String {
    let (pipeline, diags) = parse(input);
    let rendered: Vec<String> = diags.iter().map(|d| d.render(FILE)).collect();
    match pipeline {
        Some(p) => {
            assert!(diags.iter().all(|d| !d.is_error()));
            let mut out = dump(&p);
            for r in rendered {
                out.push('\n');
                out.push_str(&r);
            }
            out
        }
        None => {
            assert!(
                diags.iter().any(Diagnostic::is_error),
                "None without an error"
            );
            rendered.join("\n")
        }
    }
}

fn pats(p: &Patterns) -> String {
    let mut s = format!("[{}]", p.includes.join(" "));
    if !p.excludes.is_empty() {
        s.push_str(&format!("-[{}]", p.excludes.join(" ")));
    }
    s
}

fn kv(v: &[(String, String)]) -> String {
    v.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn dump(p: &Pipeline) -> String {
    let mut out = vec![format!("pipeline {} {:?}", p.name, p.execution_mode)];
    for v in &p.variables {
        out.push(format!("  var {} = {:?}", v.name, v.default));
    }
    for t in &p.triggers {
        out.push(match t {
            Trigger::Push(f) => format!(
                "  on push branches={} tags={} paths={}",
                f.branches.as_ref().map_or("-".into(), pats),
                f.tags.as_ref().map_or("-".into(), pats),
                f.file_paths.as_ref().map_or("-".into(), pats)
            ),
            Trigger::PullRequest(f) => format!(
                "  on pull-request {:?} branches={} paths={}",
                f.events,
                f.branches.as_ref().map_or("-".into(), pats),
                f.file_paths.as_ref().map_or("-".into(), pats)
            ),
            Trigger::Schedule(s) => format!("  on schedule `{}` branch={:?}", s.cron, s.branch),
        });
    }
    for s in &p.stages {
        out.push(format!("  stage {} on-failure={:?}", s.name, s.on_failure));
        for a in &s.actions {
            let mut line = format!("    [{}] {} {}", a.run_order, a.name, a.kind.type_name());
            match &a.kind {
                ActionKind::Build(b) => {
                    line += &format!(" buildspec={}", b.buildspec);
                    if let Some(i) = &b.image {
                        line += &format!(" image={i}");
                    }
                    if let Some(e) = b.executor {
                        line += &format!(" executor={e:?}");
                    }
                    if !b.env.is_empty() {
                        line += &format!(" env={}", kv(&b.env));
                    }
                    if b.privileged {
                        line += " privileged";
                    }
                    for svc in &b.services {
                        line += &format!(
                            " service={}:{}({}){:?}",
                            svc.name,
                            svc.image,
                            kv(&svc.env),
                            svc.command
                        );
                    }
                }
                ActionKind::Image(i) => {
                    line += &format!(
                        " {}:{} dockerfile={} context={}",
                        i.repository,
                        i.tags.join(","),
                        i.dockerfile,
                        i.context
                    );
                    if !i.build_args.is_empty() {
                        line += &format!(" args={}", kv(&i.build_args));
                    }
                }
                ActionKind::Deploy(d) => {
                    line += &format!(" env={} services={:?}", d.environment, d.services)
                }
                ActionKind::Approval(a) => line += &format!(" message={:?}", a.message),
            }
            if !a.inputs.is_empty() {
                line += &format!(" in={:?}", a.inputs);
            }
            if !a.outputs.is_empty() {
                line += &format!(" out={:?}", a.outputs);
            }
            if let Some(ns) = &a.namespace {
                line += &format!(" ns={ns}");
            }
            if let Some(t) = a.timeout {
                line += &format!(" timeout={}", format_duration(t));
            }
            if a.retry != RetryPolicy::default() {
                line += &format!(" retry={}x{:?}", a.retry.attempts, a.retry.on);
            }
            line += &format!(" @{}:{}", a.pos.line, a.pos.column);
            out.push(line);
        }
    }
    out.join("\n")
}

const SMALLEST: &str = "
name: hello
stages:
  - name: build
    actions:
      - name: test
        type: build          # buildspec defaults to buildspec.yml
";

const FULL: &str = r##"
name: web
execution-mode: queued
variables:
  - { name: REGION, default: local }
  - { name: TOKEN, description: given at start }
triggers:
  - push:
      branches: { includes: [main, "release/**"], excludes: ["release/old*"] }
      tags: { includes: ["v*"] }
      file-paths: { includes: ["src/**"], excludes: ["docs/**"] }
  - pull-request: { events: [opened, updated, closed], branches: { includes: [main] } }
  - schedule: { cron: "0 3 * * *", branch: main }
  - push
stages:
  - name: build
    actions:
      - name: unit
        type: build
        buildspec: buildspec.yml
        image: slipway-busybox:latest
        executor: docker
        env: { FOO: bar, REGION: "#{variables.REGION}", N: 1.10, on: off }
        privileged: false
        services: [ { name: db, image: postgres:15, env: { POSTGRES_PASSWORD: x }, command: [postgres, -c, fsync=off] } ]
        outputs: [build_output]
        namespace: unit
        timeout: 30m
        retry: { attempts: 3, on: [infrastructure, timeout] }
        run-order: 1
      - name: lint
        type: build
        buildspec: lint.buildspec.yml
        run-order: 1
  - name: image
    actions:
      - name: web-image
        type: image
        dockerfile: Dockerfile
        context: .
        repository: web
        tags: ["#{unit.VERSION}", latest]
        build-args: { REV: "#{slipway.SourceRevision}" }
        inputs: [build_output]
  - name: staging
    actions:
      - { name: deploy, type: deploy, environment: staging, retry: 2 }
    on-failure: rollback
  - name: approve
    actions:
      - { name: ok, type: approval, message: "Ship #{unit.VERSION} to #{variables.REGION}?", timeout: 2d }
  - name: production
    actions:
      - { name: deploy, type: deploy, environment: production, services: [web] }
    on-failure: { retry: 2 }
"##;

#[test]
fn smallest() {
    assert_snapshot!(check(SMALLEST), @"
    pipeline hello Superseded
      stage build on-failure=Fail
        [1] test build buildspec=buildspec.yml @6:9
    ");
}

#[test]
fn full() {
    assert_snapshot!(check(FULL), @r#"
    pipeline web Queued
      var REGION = Some("local")
      var TOKEN = None
      on push branches=[main release/**]-[release/old*] tags=[v*] paths=[src/**]-[docs/**]
      on pull-request [Opened, Updated, Closed] branches=[main] paths=-
      on schedule `0 3 * * *` branch=Some("main")
      on push branches=- tags=- paths=-
      stage build on-failure=Fail
        [1] unit build buildspec=buildspec.yml image=slipway-busybox:latest executor=Docker env=FOO=bar,REGION=#{variables.REGION},N=1.10,on=off service=db:postgres:15(POSTGRES_PASSWORD=x)Some(["postgres", "-c", "fsync=off"]) out=["build_output"] ns=unit timeout=30m retry=3x[Infrastructure, Timeout] @18:9
        [1] lint build buildspec=lint.buildspec.yml @31:9
      stage image on-failure=Fail
        [1] web-image image web:#{unit.VERSION},latest dockerfile=Dockerfile context=. args=REV=#{slipway.SourceRevision} in=["build_output"] @37:9
      stage staging on-failure=Rollback
        [1] deploy deploy env=staging services=[] retry=2x[Any] @47:9
      stage approve on-failure=Fail
        [1] ok approval message=Some("Ship #{unit.VERSION} to #{variables.REGION}?") timeout=2d @51:9
      stage production on-failure=Retry(2)
        [1] deploy deploy env=production services=["web"] @54:9
    "#);
}

#[test]
fn defaults_and_short_forms() {
    assert_snapshot!(check("
name: Short
execution-mode: PARALLEL
variables: { REGION: local, TOKEN: ~ }
triggers:
  - push: { branches: main, file-paths: ['src/**'] }
  - pull-request
  - schedule: '@daily'
  - schedule: { cron: '*/15   9-17 * * MON-FRI' }
stages:
  - name: s
    actions:
      - { name: img, type: image }
      - { name: ask, type: approval }
      - { name: b, type: build, retry: { attempts: 1 }, run-order: 2 }
      - { name: c, type: build, retry: { attempts: 2 } }
    on-failure: retry 3
"), @r#"
    pipeline Short Parallel
      var REGION = Some("local")
      var TOKEN = None
      on push branches=[main] tags=- paths=[src/**]
      on pull-request [Opened, Updated, Closed] branches=- paths=-
      on schedule `0 0 * * *` branch=None
      on schedule `*/15 9-17 * * MON-FRI` branch=None
      stage s on-failure=Retry(3)
        [1] img image short:#{slipway.SourceRevision} dockerfile=Dockerfile context=. @13:9
        [1] ask approval message=None timeout=7d @14:9
        [2] b build buildspec=buildspec.yml @15:9
        [1] c build buildspec=buildspec.yml retry=2x[Any] @16:9
    "#);
}

#[test]
fn not_a_mapping() {
    assert_snapshot!(check(""), @"
    .slipway/pipeline.yml:1:1: error: the file is empty
      hint: a pipeline needs at least `name` and `stages`; see docs/pipeline.md
    ");
    assert_snapshot!(check("- name: a\n"), @"
    .slipway/pipeline.yml:1:1: error: expected a mapping with `name` and `stages`, found a list
      hint: start the file with `name: <pipeline>` then `stages:`
    ");
    assert_snapshot!(check("just text\n"), @"
    .slipway/pipeline.yml:1:1: error: expected a mapping with `name` and `stages`, found a string
      hint: start the file with `name: <pipeline>` then `stages:`
    ");
    assert_snapshot!(check("name: [unclosed\n"), @".slipway/pipeline.yml:1:7: error: invalid YAML: unclosed bracket '['");
}

#[test]
fn unknown_and_missing_keys() {
    assert_snapshot!(check("
nmae: x
stagse: []
"), @"
    .slipway/pipeline.yml:2:1: error: missing required key `name` (at `name`)
    .slipway/pipeline.yml:2:1: error: missing required key `stages` (at `stages`)
      hint: a pipeline has at least one stage with one action
    .slipway/pipeline.yml:2:1: error: unknown key `nmae` in the top level (at `nmae`)
      hint: did you mean `name`?
    .slipway/pipeline.yml:3:1: error: unknown key `stagse` in the top level (at `stagse`)
      hint: did you mean `stages`?
    ");
    assert_snapshot!(check("
name: x
stages:
  - name: s
    actoins: []
  - name: t
    actions:
      - name: a
        type: build
        scirpt: make
        run_order: 2
        buildpsec: b.yml
      - type: buld
      - name: c
"), @"
    .slipway/pipeline.yml:4:5: error: missing required key `actions` (at `stages[0].actions`)
      hint: a stage has at least one action
    .slipway/pipeline.yml:5:5: error: unknown key `actoins` in `stages[0]` (at `stages[0].actoins`)
      hint: did you mean `actions`?
    .slipway/pipeline.yml:10:9: error: unknown key `scirpt` in `stages[1].actions[0]` (at `stages[1].actions[0].scirpt`)
      hint: expected one of: name, type, run-order, namespace, timeout, inputs, outputs, retry, buildspec, image, executor, env, privileged, runs-on, services
    .slipway/pipeline.yml:11:9: error: unknown key `run_order` in `stages[1].actions[0]` (at `stages[1].actions[0].run_order`)
      hint: did you mean `run-order`?
    .slipway/pipeline.yml:12:9: error: unknown key `buildpsec` in `stages[1].actions[0]` (at `stages[1].actions[0].buildpsec`)
      hint: did you mean `buildspec`?
    .slipway/pipeline.yml:13:9: error: missing required key `name` (at `stages[1].actions[1].name`)
    .slipway/pipeline.yml:13:15: error: unknown value `buld` (at `stages[1].actions[1].type`)
      hint: did you mean `build`?
    .slipway/pipeline.yml:14:9: error: missing required key `type` (at `stages[1].actions[2].type`)
      hint: one of: build, image, deploy, approval
    ");
}

#[test]
fn empty_stages_and_actions() {
    assert_snapshot!(check("name: x\nstages: []\n"), @"
    .slipway/pipeline.yml:2:9: error: a pipeline needs at least one stage (at `stages`)
      hint: e.g. `stages: [ { name: build, actions: [ { name: build, type: build } ] } ]`
    ");
    assert_snapshot!(check("name: x\nstages:\n  - name: s\n    actions: []\n"), @"
    .slipway/pipeline.yml:4:14: error: a stage needs at least one action (at `stages[0].actions`)
      hint: e.g. `- { name: test, type: build }`
    ");
    assert_snapshot!(check("name: x\nstages: build\n"), @".slipway/pipeline.yml:2:9: error: expected a list of stages, found a string (at `stages`)");
}

#[test]
fn names_and_duplicates() {
    assert_snapshot!(check("
name: my pipeline
stages:
  - name: build
    actions:
      - { name: a, type: build }
      - { name: a, type: build }
      - { name: b/c, type: build, namespace: x.y }
  - name: build
    actions:
      - { name: a, type: build }
"), @"
    .slipway/pipeline.yml:2:7: error: `my pipeline` is not a valid pipeline name (at `name`)
      hint: use letters, digits, `_`, `-` and `.`, at most 100 characters
    .slipway/pipeline.yml:7:17: error: action `a` is defined twice in stage `build` (at `stages[0].actions[1].name`)
      hint: action names are unique within a stage; the first is at line 6
    .slipway/pipeline.yml:8:17: error: `b/c` is not a valid action name (at `stages[0].actions[2].name`)
      hint: use letters, digits, `_`, `-` and `.`, at most 100 characters
    .slipway/pipeline.yml:8:46: error: `x.y` is not a valid namespace name (at `stages[0].actions[2].namespace`)
      hint: use letters, digits, `_` and `-`, at most 100 characters (a `.` would end the namespace in `#{namespace.name}`)
    .slipway/pipeline.yml:9:11: error: stage `build` is defined twice (at `stages[1].name`)
      hint: stage names are unique; the first is at line 4
    ");
}

#[test]
fn type_specific_keys() {
    assert_snapshot!(check("
name: x
stages:
  - name: s
    actions:
      - { name: ok, type: approval, buildspec: b.yml, inputs: [source], retry: 2 }
      - { name: d, type: deploy, environment: prod, outputs: [o], dockerfile: D }
      - { name: i, type: image, repository: Web:1, tags: [-bad, ok] }
      - { name: b, type: build, executor: local, image: alpine, privileged: yes, env: { 1X: a, V: ~ } }
      - { name: e, type: deploy }
"), @r#"
    .slipway/pipeline.yml:6:37: error: `buildspec` does not apply to approval actions (at `stages[0].actions[0].buildspec`)
      hint: `buildspec` is a key of build actions
    .slipway/pipeline.yml:6:55: error: `inputs` does not apply to approval actions (at `stages[0].actions[0].inputs`)
      hint: `inputs` is a key of build, image and deploy actions
    .slipway/pipeline.yml:6:73: error: `retry` does not apply to approval actions (at `stages[0].actions[0].retry`)
      hint: `retry` is a key of build, image and deploy actions
    .slipway/pipeline.yml:7:53: error: `outputs` does not apply to deploy actions (at `stages[0].actions[1].outputs`)
      hint: `outputs` is a key of build actions
    .slipway/pipeline.yml:7:67: error: `dockerfile` does not apply to deploy actions (at `stages[0].actions[1].dockerfile`)
      hint: `dockerfile` is a key of image actions
    .slipway/pipeline.yml:8:45: error: `Web:1` is not a valid repository name (at `stages[0].actions[2].repository`)
      hint: a repository in Slipway's registry: lowercase letters, digits, `.`, `_`, `-`, parts split by `/`, no host and no tag
    .slipway/pipeline.yml:8:59: error: `-bad` is not a valid image tag (at `stages[0].actions[2].tags[0]`)
      hint: letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, at most 128
    .slipway/pipeline.yml:9:43: error: `image` needs the docker executor, not `local` (at `stages[0].actions[3].executor`)
      hint: use `executor: docker`, or remove `image`
    .slipway/pipeline.yml:9:43: error: `privileged` needs the docker executor, not `local` (at `stages[0].actions[3].executor`)
      hint: use `executor: docker`, or remove `privileged`
    .slipway/pipeline.yml:9:89: error: `1X` is not a valid variable name (at `stages[0].actions[3].env.1X`)
      hint: start with a letter or `_`, then letters, digits or `_`
    .slipway/pipeline.yml:9:99: error: expected a string, found null (at `stages[0].actions[3].env.V`)
      hint: write `""` for an empty value
    .slipway/pipeline.yml:10:9: error: missing required key `environment` (at `stages[0].actions[4].environment`)
      hint: the environment of `.slipway/services.yml` to deploy to, e.g. `staging`
    "#);
}

#[test]
fn artifacts_flow_forward_only() {
    assert_snapshot!(check("
name: x
stages:
  - name: one
    actions:
      - { name: a, type: build, outputs: [out_a], inputs: [out_b] }
      - { name: b, type: build, outputs: [out_b, source], inputs: [out_a] }
      - { name: c, type: build, outputs: [out_a], run-order: 2, inputs: [out_b, nope, source] }
  - name: two
    actions:
      - { name: d, type: build, inputs: [out_a, out_b, out_c] }
      - { name: e, type: build, outputs: [out_c], run-order: 2 }
"), @"
    .slipway/pipeline.yml:6:60: error: input `out_b` is an output of `one.b`, which does not finish before this action starts (at `stages[0].actions[0].inputs[0]`)
      hint: artifacts available here: source
    .slipway/pipeline.yml:7:50: error: `source` is the name of the revision's checkout and cannot be an output (at `stages[0].actions[1].outputs[1]`)
      hint: choose another name, e.g. `build_output`
    .slipway/pipeline.yml:7:68: error: input `out_a` is an output of `one.a`, which does not finish before this action starts (at `stages[0].actions[1].inputs[0]`)
      hint: artifacts available here: source
    .slipway/pipeline.yml:8:43: error: artifact `out_a` is already an output of `one.a` (at `stages[0].actions[2].outputs[0]`)
      hint: output artifact names are unique in a pipeline
    .slipway/pipeline.yml:8:81: error: no action outputs an artifact named `nope` (at `stages[0].actions[2].inputs[1]`)
      hint: artifacts available here: source, out_a, out_b
    .slipway/pipeline.yml:11:56: error: input `out_c` is an output of `two.e`, which does not finish before this action starts (at `stages[1].actions[0].inputs[2]`)
      hint: artifacts available here: source, out_a, out_b
    ");
}

#[test]
fn namespaces() {
    assert_snapshot!(check("
name: x
stages:
  - name: one
    actions:
      - { name: a, type: build, namespace: slipway }
      - { name: b, type: build, namespace: ns, outputs: [art] }
      - { name: c, type: build, namespace: ns }
      - { name: d, type: build, namespace: art }
"), @"
    .slipway/pipeline.yml:6:44: error: namespace `slipway` is reserved (at `stages[0].actions[0].namespace`)
      hint: reserved namespaces: variables, slipway, codepipeline
    .slipway/pipeline.yml:8:44: error: namespace `ns` is already used by `one.b` (at `stages[0].actions[2].namespace`)
      hint: namespaces are unique in a pipeline
    .slipway/pipeline.yml:9:44: error: namespace `art` is also an artifact name (at `stages[0].actions[3].namespace`)
      hint: as in CodePipeline, namespaces and artifact names must differ
    ");
}

#[test]
fn references() {
    assert_snapshot!(check(r##"
name: x
variables: [ { name: REGION, default: eu } ]
stages:
  - name: one
    actions:
      - name: a
        type: build
        namespace: early
        env:
          A: "#{variables.REGON}"
          B: "#{slipway.Commit} #{codepipeline.PipelineExecutionId}"
          C: "#{late.X} #{erly.X} #{same.X}"
          D: "#{early.X}"
          E: "#{oops} #{variables.REGION}"
      - { name: s, type: build, namespace: same }
  - name: two
    actions:
      - { name: l, type: approval, namespace: late, message: "#{early.X} #{same.Y}" }
"##), @"
    .slipway/pipeline.yml:11:14: error: `#{variables.REGON}`: no pipeline variable `REGON` in `variables` (at `stages[0].actions[0].env.A`)
      hint: did you mean `#{variables.REGION}`?
    .slipway/pipeline.yml:12:14: error: `#{slipway.Commit}`: no variable `Commit` in `slipway` (at `stages[0].actions[0].env.B`)
      hint: `slipway` has: ExecutionId, PipelineName, SourceRevision
    .slipway/pipeline.yml:13:14: error: `#{late.X}`: namespace `late` belongs to `two.l`, which does not finish before this action starts (at `stages[0].actions[0].env.C`)
      hint: namespaces available here: variables, slipway, codepipeline
    .slipway/pipeline.yml:13:14: error: `#{erly.X}`: unknown namespace `erly` (at `stages[0].actions[0].env.C`)
      hint: namespaces available here: variables, slipway, codepipeline
    .slipway/pipeline.yml:13:14: error: `#{same.X}`: namespace `same` belongs to `one.s`, which does not finish before this action starts (at `stages[0].actions[0].env.C`)
      hint: namespaces available here: variables, slipway, codepipeline
    .slipway/pipeline.yml:14:14: error: `#{early.X}`: namespace `early` belongs to `one.a`, which does not finish before this action starts (at `stages[0].actions[0].env.D`)
      hint: namespaces available here: variables, slipway, codepipeline
    .slipway/pipeline.yml:15:14: warning: `#{oops}` is not a variable reference and is kept as written (at `stages[0].actions[0].env.E`)
      hint: a reference is `#{namespace.name}`, e.g. `#{variables.REGION}` or `#{slipway.ExecutionId}`
    ");
}

#[test]
fn timeouts_and_retries() {
    assert_snapshot!(check("
name: x
stages:
  - name: s
    actions:
      - { name: a, type: build, timeout: 30 }
      - { name: b, type: build, timeout: 1.5h }
      - { name: c, type: build, timeout: 0s }
      - { name: d, type: build, retry: 0 }
      - { name: e, type: build, retry: { attempts: 11, on: [timeuot] } }
      - { name: f, type: build, retry: { on: any } }
      - { name: g, type: build, run-order: 0 }
"), @"
    .slipway/pipeline.yml:6:42: error: `30` is not a duration (a unit is missing); expected a number with a unit (ms, s, m, h, d), such as 500ms, 90s, 30m, 1h30m or 7d (at `stages[0].actions[0].timeout`)
      hint: add a unit: `30m` or `30s`
    .slipway/pipeline.yml:7:42: error: `1.5h` is not a duration (unexpected `.`); expected a number with a unit (ms, s, m, h, d), such as 500ms, 90s, 30m, 1h30m or 7d (at `stages[0].actions[1].timeout`)
      hint: write a number with a unit (ms, s, m, h, d), such as 500ms, 90s, 30m, 1h30m or 7d
    .slipway/pipeline.yml:8:42: error: a timeout must be longer than zero (at `stages[0].actions[2].timeout`)
    .slipway/pipeline.yml:9:40: error: retry attempts (total tries, the first included) must be between 1 and 10, found 0 (at `stages[0].actions[3].retry`)
    .slipway/pipeline.yml:10:52: error: retry attempts (total tries, the first included) must be between 1 and 10, found 11 (at `stages[0].actions[4].retry.attempts`)
    .slipway/pipeline.yml:10:61: error: unknown value `timeuot` (at `stages[0].actions[4].retry.on[0]`)
      hint: did you mean `timeout`?
    .slipway/pipeline.yml:11:40: error: missing required key `attempts` (at `stages[0].actions[5].retry.attempts`)
      hint: the number of tries, 1 to 10, e.g. `retry: { attempts: 3 }`
    .slipway/pipeline.yml:12:44: error: run-order must be between 1 and 999, found 0 (at `stages[0].actions[6].run-order`)
    ");
}

#[test]
fn triggers_errors() {
    assert_snapshot!(check(r#"
name: x
triggers:
  - pull_request: {}
  - push: { branches: { includes: ["[main"], exclude: [x] }, tags: ["v*"] }
  - push: { tags: ["v*"], file-paths: [src] }
  - schedule: { cron: "0 24 * * *" }
  - schedule: "0 3 * *"
  - schedule: { branch: "refs/heads/main" }
  - pull-request: { events: [opened, merged] }
  - pull-request: { events: [] }
  - { push: {}, schedule: "@daily" }
stages:
  - { name: s, actions: [ { name: a, type: build } ] }
"#), @"
    .slipway/pipeline.yml:4:5: error: unknown trigger `pull_request` (at `triggers[0].pull_request`)
      hint: did you mean `pull-request`?
    .slipway/pipeline.yml:5:36: error: invalid glob `[main`: unclosed character class; missing ']' (at `triggers[1].push.branches.includes[0]`)
      hint: `*` matches within one path segment, `**` across `/`, `?` one character, `[ab]` a set
    .slipway/pipeline.yml:5:46: error: unknown key `exclude` in `triggers[1].push.branches` (at `triggers[1].push.branches.exclude`)
      hint: did you mean `excludes`?
    .slipway/pipeline.yml:6:27: warning: `file-paths` has no effect on tag pushes (at `triggers[2].push.file-paths`)
      hint: add `branches` for branch pushes, or remove `file-paths`
    .slipway/pipeline.yml:7:23: error: invalid cron expression `0 24 * * *`: hour field: 24 is out of range 0-23 (at `triggers[3].schedule.cron`)
      hint: five fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or JAN-DEC) day-of-week (0-7 or SUN-SAT, 0 and 7 are Sunday); each `*`, `*/n`, `a`, `a-b`, `a-b/n` or a comma list; e.g. `0 3 * * *` is 03:00 UTC every day
    .slipway/pipeline.yml:8:15: error: invalid cron expression `0 3 * *`: expected 5 fields (minute hour day-of-month month day-of-week), found 4 (at `triggers[4].schedule`)
      hint: five fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or JAN-DEC) day-of-week (0-7 or SUN-SAT, 0 and 7 are Sunday); each `*`, `*/n`, `a`, `a-b`, `a-b/n` or a comma list; e.g. `0 3 * * *` is 03:00 UTC every day
    .slipway/pipeline.yml:9:15: error: missing required key `cron` (at `triggers[5].schedule.cron`)
      hint: five fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or JAN-DEC) day-of-week (0-7 or SUN-SAT, 0 and 7 are Sunday); each `*`, `*/n`, `a`, `a-b`, `a-b/n` or a comma list; e.g. `0 3 * * *` is 03:00 UTC every day
    .slipway/pipeline.yml:9:25: error: `refs/heads/main` is not a branch name (at `triggers[5].schedule.branch`)
      hint: write the branch's short name, e.g. `main`
    .slipway/pipeline.yml:10:38: error: unknown value `merged` (at `triggers[6].pull-request.events[1]`)
      hint: expected one of: opened, updated, closed
    .slipway/pipeline.yml:11:29: error: no events listed (at `triggers[7].pull-request.events`)
      hint: list some of opened, updated, closed, or remove `events` for all three
    .slipway/pipeline.yml:12:5: error: expected one of `push`, `pull-request` or `schedule` with its filter, found a mapping (at `triggers[8]`)
      hint: one trigger per list item, e.g. `- push: { branches: [main] }`
    ");
    assert_snapshot!(check("name: x\ntriggers: push\nstages: [ { name: s, actions: [ { name: a, type: build } ] } ]\n"), @"
    .slipway/pipeline.yml:2:11: error: expected a list, found a string (at `triggers`)
      hint: write `triggers:` then items such as `- push: { branches: [main] }`
    ");
}

#[test]
fn stage_failure() {
    assert_snapshot!(check("
name: x
execution-mode: parallel
stages:
  - { name: a, on-failure: rollback, actions: [ { name: a, type: build } ] }
  - { name: b, on-failure: retry 11, actions: [ { name: a, type: build } ] }
  - { name: c, on-failure: { retyr: 1 }, actions: [ { name: a, type: build } ] }
  - { name: d, on-failure: rolback, actions: [ { name: a, type: build } ] }
"), @"
    .slipway/pipeline.yml:5:28: error: `on-failure: rollback` is not allowed with `execution-mode: parallel` (at `stages[0].on-failure`)
      hint: parallel executions have no single last good revision to roll back to (as in CodePipeline); use `queued` or `superseded`, or `fail`
    .slipway/pipeline.yml:6:28: error: the number of stage retries must be between 1 and 10, found `11` (at `stages[1].on-failure`)
    .slipway/pipeline.yml:7:28: error: missing required key `retry` (at `stages[2].on-failure.retry`)
      hint: write `fail`, `rollback`, `retry`, `retry 2` or `{ retry: 2 }`
    .slipway/pipeline.yml:7:30: error: unknown key `retyr` in `stages[2].on-failure` (at `stages[2].on-failure.retyr`)
      hint: did you mean `retry`?
    .slipway/pipeline.yml:8:28: error: unknown stage failure action `rolback` (at `stages[3].on-failure`)
      hint: write `fail`, `rollback`, `retry`, `retry 2` or `{ retry: 2 }`
    ");
    assert_snapshot!(check("
name: x
execution-mode: sequential
stages:
  - { name: a, on-failure: rollback, actions: [ { name: a, type: build } ] }
"), @"
    .slipway/pipeline.yml:3:17: error: unknown value `sequential` (at `execution-mode`)
      hint: expected one of: queued, superseded, parallel
    ");
}

#[test]
fn implicit_pipeline_is_one_build() {
    let p = implicit("hello", "buildspec.yml");
    assert_snapshot!(dump(&p), @"
    pipeline hello Superseded
      stage build on-failure=Fail
        [1] build build buildspec=buildspec.yml @1:1
    ");
    assert!(p.starts_on_push("refs/heads/main", &[], "main"));
    assert!(!p.starts_on_push("refs/heads/dev", &[], "main"));
    assert!(!p.starts_on_push("refs/tags/main", &[], "main"));
}

#[test]
fn starts_on_push_uses_triggers() {
    let (p, _) = parse(FULL);
    let p = p.unwrap();
    // The bare `- push` trigger fires on every branch; tags only through the first trigger.
    assert!(p.starts_on_push("refs/heads/feature", &[], "main"));
    assert!(p.starts_on_push("refs/tags/v1", &[], "main"));
    assert!(!p.starts_on_push("refs/tags/x1", &[], "main"));
}

#[test]
fn stage_groups_by_run_order() {
    let (p, d) = parse(
        "
name: x
stages:
  - name: s
    actions:
      - { name: c, type: build, run-order: 3 }
      - { name: a1, type: build }
      - { name: b, type: build, run-order: 2 }
      - { name: a2, type: build, run-order: 1 }
",
    );
    let p = p.unwrap_or_else(|| panic!("{d:?}"));
    let groups: Vec<Vec<&str>> = Pipeline::stage_groups(&p.stages[0])
        .iter()
        .map(|g| g.iter().map(|a| a.name.as_str()).collect())
        .collect();
    assert_eq!(groups, vec![vec!["a1", "a2"], vec!["b"], vec!["c"]]);
    assert_eq!(p.stages[0].groups().len(), 3);
}

#[test]
fn effective_timeouts() {
    let (p, _) = parse(FULL);
    let p = p.unwrap();
    let t = |stage: &str| {
        p.stage(stage).unwrap().actions[0]
            .effective_timeout()
            .as_secs()
    };
    assert_eq!(t("build"), 1800);
    assert_eq!(t("image"), 8 * 3600);
    assert_eq!(t("staging"), 3600);
    assert_eq!(t("approve"), 2 * 86_400);
    assert_eq!(
        implicit("x", "b.yml").stages[0].actions[0]
            .effective_timeout()
            .as_secs(),
        8 * 3600
    );
}

#[test]
fn hostile_input_does_not_panic() {
    for text in [
        "name: x\nstages: [ { name: s, actions: [ { name: a, type: build, env: [1, 2] } ] } ]",
        "name: x\nstages: [ { name: s, actions: [ { name: a, type: [build] } ] } ]",
        "name: x\nstages: [ [ ] ]",
        "name: x\nstages: [ { name: s, actions: [ 1, ~, [] ] } ]",
        "name: x\ntriggers: [ 1, ~, [], { push: 1 }, { schedule: [] } ]\nstages: []",
        "name: x\nvariables: 3\nstages: []",
        "name: x\nvariables: [ 1, { default: x } ]\nstages: []",
        "{ ? [a] : b, name: x, stages: [] }",
        "name: x\nstages: [ { name: s, actions: [ { name: a, type: build, timeout: 99999999999999999999d, services: {} } ] } ]",
        "name: x\nstages: [ { name: s, actions: [ { name: a, type: build, env: { A: \"#{\" } } ] } ]",
    ] {
        let (p, d) = parse(text);
        assert!(p.is_none() || d.iter().all(|d| !d.is_error()), "{text}");
        assert!(!d.is_empty(), "{text}");
    }
}

/// docs/pipeline.md must stay true: every complete example in it parses without errors.
#[test]
fn documented_examples_parse() {
    let doc = include_str!("../../../../docs/pipeline.md");
    let mut blocks = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let yaml = block.split("```").next().unwrap_or_default();
        if !yaml.starts_with("name:") {
            continue;
        }
        blocks += 1;
        let (p, d) = parse(yaml);
        assert!(p.is_some() && d.is_empty(), "{yaml}\n{d:#?}");
    }
    assert_eq!(blocks, 2);
    // The triggers snippet, inside a minimal pipeline.
    let snippet = doc
        .split("```yaml\ntriggers:")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_default();
    let text = format!(
        "name: x\ntriggers:{snippet}stages: [ {{ name: s, actions: [ {{ name: a, type: build }} ] }} ]\n"
    );
    let (p, d) = parse(&text);
    assert!(p.is_some() && d.is_empty(), "{text}\n{d:#?}");
}

#[test]
fn a_schedule_can_name_its_time_zone() {
    let text = |tz: &str| {
        format!(
            "name: x\ntriggers:\n  - schedule: {{ cron: \"0 3 * * *\", timezone: {tz} }}\nstages: [ {{ name: s, actions: [ {{ name: a, type: build }} ] }} ]\n"
        )
    };
    let (p, d) = parse(&text("Europe/Paris"));
    assert!(d.is_empty(), "{d:#?}");
    match &p.unwrap().triggers[0] {
        Trigger::Schedule(s) => assert_eq!(s.timezone.as_deref(), Some("Europe/Paris")),
        t => panic!("{t:?}"),
    }
    assert_snapshot!(check(&text("\"../etc/passwd\"")), @r"
    .slipway/pipeline.yml:3:46: error: `../etc/passwd` is not a time zone name (at `triggers[0].schedule.timezone`)
      hint: an IANA name such as `UTC`, `Europe/Paris` or `America/New_York`
    ");
}

#[test]
fn runs_on_names_agent_labels() {
    let ok = "name: p\nstages:\n  - name: s\n    actions:\n      - name: a\n        type: build\n        runs-on: [linux, gpu]\n      - name: b\n        type: build\n        runs-on: arm64\n";
    let (p, diags) = parse(ok);
    let p = p.unwrap_or_else(|| panic!("{diags:?}"));
    let labels: Vec<Vec<String>> = p.stages[0]
        .actions
        .iter()
        .map(|a| match &a.kind {
            ActionKind::Build(b) => b.runs_on.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        labels,
        vec![
            vec!["linux".to_string(), "gpu".into()],
            vec!["arm64".into()]
        ]
    );
    let bad = check(
        "name: p\nstages:\n  - name: s\n    actions:\n      - name: a\n        type: build\n        runs-on: [\"has space\"]\n      - name: b\n        type: approval\n        runs-on: [x]\n",
    );
    assert!(
        bad.contains("agent label `has space` is not valid"),
        "{bad}"
    );
    assert!(bad.contains("runs-on"), "{bad}");
    let empty = check(
        "name: p\nstages:\n  - name: s\n    actions:\n      - name: a\n        type: build\n        runs-on: []\n",
    );
    assert!(empty.contains("names no label"), "{empty}");
}
