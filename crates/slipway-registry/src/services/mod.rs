//! What the registry does, below HTTP: upload sessions, manifest parsing, credentials and
//! tokens, lifecycle policies and garbage collection.

pub mod auth;
pub mod gc;
pub mod lifecycle;
pub mod manifests;
pub mod uploads;
