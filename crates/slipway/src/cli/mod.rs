//! The command line: one module per subcommand; glue only. Exit codes: 0 success, 1 the
//! pipeline or build failed, 2 bad usage or invalid files.

mod agent;
mod approve;
mod backup;
mod build;
mod client;
mod execution;
mod files;
mod gc;
mod logs;
mod pipeline;
mod project;
mod registry;
mod render;
mod run;
mod server;
mod setup;
mod up;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Slipway: from `git push` to production, in one binary.
#[derive(Parser, Debug)]
#[command(name = "slipway", version, about, propagate_version = true)]
pub struct Cli {
    /// Data directory for logs, artifacts and caches.
    #[arg(long, global = true, env = "SLIPWAY_DATA")]
    data: Option<PathBuf>,
    /// More logging from Slipway itself (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a server with a demo project and its pipeline running: the quick start.
    Up(server::Args),
    /// Run the Slipway server in the foreground.
    Server(server::Args),
    /// Check pipeline and buildspec files; every problem with file:line:column.
    Validate(validate::Args),
    /// Run one buildspec with CodeBuild's semantics.
    Build(build::Args),
    /// Run the repository's pipeline here, with no server.
    Run(run::Args),
    /// A Slipway server's projects.
    Project(project::Args),
    /// Start a project's pipeline on a Slipway server.
    Pipeline(pipeline::Args),
    /// A project's executions on a Slipway server: list, show, cancel, retry, rerun.
    Execution(execution::Args),
    /// An execution's logs from a Slipway server (`-f` follows it live).
    Logs(logs::Args),
    /// Approve an approval action that waits.
    Approve(approve::Args),
    /// Reject an approval action that waits.
    Reject(approve::Args),
    /// The server's image registry: repositories, tags, settings, lifecycle policies, GC.
    Registry(registry::Args),
    /// Run the server's retention now (old executions, unreferenced blobs, stale caches).
    Gc(gc::Args),
    /// Save a running server's state and blobs to a tar file.
    Backup(backup::BackupArgs),
    /// Restore a backup into the data directory (the server stopped).
    Restore(backup::RestoreArgs),
    /// Agents: run jobs for a server on this machine (`agent run`), list them, issue tokens.
    Agent(agent::Args),
}

/// Failures that map to exit code 2: bad usage or invalid files (already printed).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info,slipway=debug",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let data = cli.data.clone().unwrap_or_else(setup::default_data_dir);
    let result = rt.block_on(async move {
        match cli.command {
            Command::Up(a) => up::run(a, &data).await,
            Command::Server(a) => server::run(a, &data).await,
            Command::Validate(a) => validate::run(a).await,
            Command::Build(a) => build::run(a, &data).await,
            Command::Run(a) => run::run(a, &data).await,
            Command::Project(a) => project::run(a).await,
            Command::Pipeline(a) => pipeline::run(a).await,
            Command::Execution(a) => execution::run(a).await,
            Command::Logs(a) => logs::run(a).await,
            Command::Approve(a) => approve::run(a, true).await,
            Command::Reject(a) => approve::run(a, false).await,
            Command::Gc(a) => gc::run(a).await,
            Command::Registry(a) => registry::run(a).await,
            Command::Backup(a) => backup::backup(a).await,
            Command::Restore(a) => backup::restore(a, &data).await,
            Command::Agent(a) => agent::run(a, &data).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            if !e.to_string().is_empty() {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
