//! Fuzz target: `yaml::parse` on arbitrary bytes must return a tree or one diagnostic, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(d) = slipway_spec::yaml::parse(&text) {
        let _ = d.render("file.yml");
    }
});
