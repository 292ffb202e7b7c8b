//! `slipway server`: the long-lived server in the foreground (Ctrl-C or SIGTERM stops it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use slipway_server::{Config, Server};

use super::{UsageError, run::NoApprover, setup};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// A TOML configuration file (docs/server.md lists every key and its default).
    #[arg(long, value_name = "FILE", env = "SLIPWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The state database [default: sqlite:<data>/slipway.db]; postgres://... for PostgreSQL.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Build jobs the embedded runner runs at once [default: 4].
    #[arg(long, value_name = "N")]
    pub runner_concurrency: Option<usize>,
}

/// The configuration: defaults, the file, `SLIPWAY_*` variables, then these flags.
pub fn config(args: &Args, data: &Path) -> anyhow::Result<Config> {
    let mut c = Config::load(data.to_path_buf(), args.config.as_deref(), |k| {
        std::env::var(k).ok()
    })
    .map_err(UsageError)?;
    if let Some(l) = &args.listen {
        c.listen = l.parse().map_err(|_| {
            UsageError(format!(
                "--listen: `{l}` is not an address such as 127.0.0.1:8080"
            ))
        })?;
    }
    if let Some(d) = &args.database {
        c.database = Some(d.clone());
    }
    if let Some(n) = args.runner_concurrency {
        c.runner.concurrency = n.max(1);
    }
    Ok(c)
}

/// Starts the server with the embedded runner: local processes always, Docker when an engine
/// answers.
pub async fn start(c: Config) -> anyhow::Result<Server> {
    let engine = setup::server_engine(&c.data, Arc::new(NoApprover)).await?;
    let listen = c.listen;
    match Server::start(c, engine).await {
        Ok(s) => Ok(s),
        Err(e) if format!("{e:#}").contains("Address already in use") => Err(UsageError(format!(
            "{listen} is in use: is a Slipway server already running there? (pick another with --listen)"
        ))
        .into()),
        Err(e) => Err(e),
    }
}

pub async fn run(args: Args, data: &Path) -> anyhow::Result<ExitCode> {
    let c = config(&args, data)?;
    let db = c.database_url();
    let server = start(c).await?;
    eprintln!("listening on http://{}", server.addr);
    eprintln!("data: {}  database: {}", data.display(), redact(&db));
    if let Some(p) = server.state.registry.password_file() {
        eprintln!(
            "registry: docker login {} -u {} (password in {})",
            server.state.registry.config().public_address,
            server.state.registry.config().username,
            p.display()
        );
    }
    stopped().await;
    eprintln!("stopping: cancelling running executions");
    server.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// A database URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
