//! `slipway validate`: good files pass, bad ones get every problem with file:line:column, exit 2.

use super::support::*;

#[test]
fn examples_are_valid() {
    let s = Scratch::new();
    let r = s.slipway(&[
        "validate",
        example("hello-shell").to_str().unwrap(),
        example("web").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.explain());
    assert!(r.stdout.contains("valid"), "{}", r.explain());
}

#[test]
fn every_problem_is_reported_at_once_with_positions_and_hints() {
    let s = Scratch::new();
    let f = s.write(
        "repo/buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    comands:\n      - echo hi\n  prebuild:\n    commands: [true]\nversion: 0.1\n",
    );
    let r = s.slipway(&["validate", f.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.explain());
    assert!(r.stderr.contains("buildspec.yml:4:5"), "{}", r.explain());
    assert!(
        r.stderr.contains("did you mean `commands`?"),
        "{}",
        r.explain()
    );
    assert!(r.stderr.contains("buildspec.yml:6:3"), "{}", r.explain());
    assert!(
        r.stderr.contains("did you mean `pre_build`?"),
        "{}",
        r.explain()
    );
}

#[test]
fn a_pipeline_naming_a_missing_buildspec_is_invalid() {
    let s = Scratch::new();
    s.write(
        "repo/.slipway/pipeline.yml",
        "name: p\nstages:\n  - name: build\n    actions:\n      - name: t\n        type: build\n        buildspec: nope.yml\n",
    );
    let r = s.slipway(&["validate", s.path().join("repo").to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.explain());
    assert!(r.stderr.contains("nope.yml"), "{}", r.explain());
}

#[test]
fn binary_garbage_is_an_error_not_a_panic() {
    let s = Scratch::new();
    let p = s.path().join("buildspec.yml");
    std::fs::write(&p, [0xff, 0xfe, b'\n', b':', b'[', 0, 1, 2]).unwrap();
    let r = s.slipway(&["validate", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.explain());
    assert!(!r.stderr.contains("panicked"), "{}", r.explain());
}

#[test]
fn bad_usage_exits_2() {
    let s = Scratch::new();
    let r = s.slipway(&["build", "--executor", "nonsense"]);
    assert_eq!(r.code, 2, "{}", r.explain());
    let r = s.slipway(&["validate", "/does/not/exist"]);
    assert_eq!(r.code, 2, "{}", r.explain());
}
