//! User files -> validated values + diagnostics: `buildspec.yml` (AWS CodeBuild 0.1/0.2) and
//! `.slipway/pipeline.yml`. Pure: no I/O, no async; callers hand in text and a file name.

pub mod buildspec;
pub mod diag;
pub mod pipeline;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Pos, Severity};
pub use yaml::Located;
