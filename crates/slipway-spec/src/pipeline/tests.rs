//! Table-driven tests of `pipeline::parse`: diagnostics as rendered, good files as a compact dump.

use super::*;

#[test]
fn placeholder() {
    let (p, d) = parse(
        "name: hello\nstages:\n  - name: build\n    actions:\n      - name: test\n        type: build\n",
    );
    assert!(d.is_empty(), "{d:?}");
    assert!(p.is_some());
}
