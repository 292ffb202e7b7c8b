//! Fuzz target: `pipeline::parse` on arbitrary bytes must return diagnostics, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pipeline, diags) = slipway_spec::pipeline::parse(&text);
    assert_eq!(pipeline.is_some(), !diags.iter().any(|d| d.is_error()));
    for d in &diags {
        let _ = d.render(".slipway/pipeline.yml");
    }
});
