//! Fuzz target: `buildspec::parse` on arbitrary bytes must return diagnostics, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (spec, diags) = slipway_spec::buildspec::parse(&text);
    // The contract: a value exactly when no diagnostic is an error.
    assert_eq!(spec.is_some(), !diags.iter().any(|d| d.is_error()));
    if let Some(spec) = spec {
        if let Some(slipway_spec::buildspec::Batch {
            kind: slipway_spec::buildspec::BatchKind::Matrix(m),
            ..
        }) = &spec.batch
        {
            // The parser bounds matrices, so expanding one is always cheap.
            assert!(m.expand().len() <= 100);
        }
    }
    for d in &diags {
        let _ = d.render("buildspec.yml");
    }
});
