//! The one integration-test binary: drives the built `slipway` with real git and a real
//! Docker engine, as a user would.

mod agents;
mod architecture;
mod build;
mod crash;
mod git_hosting;
mod image;
mod registry;
mod run;
mod server;
mod server_support;
mod support;
mod up;
mod validate;
mod webhooks;
