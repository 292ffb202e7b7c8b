//! `slipway agent run|ls|token create`: run jobs for a server on this machine, list the
//! server's agents, issue registration tokens (docs/agents.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use slipway_executor::{
    DockerConfig, DockerExecutor, Executor as _, ExecutorConfig, LocalConfig, RunnerId,
};
use slipway_proto::api::Page;
use slipway_proto::job::{AgentInfo, JOB_PROTOCOL_VERSION, Register, RegistrationToken};
use tokio_util::sync::CancellationToken;

use super::UsageError;
use super::client::{self, Client, ServerArgs};
use super::setup::ExecutorArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Run jobs for a server: register, then take jobs whose `runs-on` labels this agent has.
    Run(RunArgs),
    /// The server's agents: labels, last contact, the jobs they run.
    Ls(ServerArgs),
    /// Registration tokens for new agents.
    Token(TokenArgs),
}

#[derive(clap::Args, Debug)]
struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TokenCommand {
    /// Issue a registration token (shown once; any number of agents may register with it).
    Create(ServerArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The Slipway server's URL.
    #[arg(long, env = "SLIPWAY_SERVER", value_name = "URL", default_value = client::DEFAULT_SERVER)]
    server: String,
    /// A registration token from `slipway agent token create` (needed the first time; the
    /// agent keeps its own token in its work directory).
    #[arg(long, env = "SLIPWAY_AGENT_TOKEN")]
    token: Option<String>,
    /// Only this executor (default: local, and docker when an engine answers).
    #[arg(long, value_enum)]
    executor: Option<ExecutorArg>,
    /// Labels jobs may ask for with `runs-on` (comma-separated).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Jobs at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Workspaces, caches and the agent's identity (default: <data>/agent).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// The agent's name in `agent ls` (default: the host name).
    #[arg(long)]
    name: Option<String>,
}

pub async fn run(args: Args, data: &Path) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Run(a) => run_agent(a, data).await,
        Command::Ls(s) => ls(s).await,
        Command::Token(TokenArgs {
            command: TokenCommand::Create(s),
        }) => token_create(s).await,
    }
}

async fn token_create(s: ServerArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(&s)?;
    let r = c
        .post::<RegistrationToken, ()>(c.url(&["agents", "tokens"]), None)
        .await?;
    if c.json {
        client::print_json(&r.json);
    } else {
        println!("{}", r.value.token);
        eprintln!(
            "start an agent with: slipway agent run --server {} --token {}",
            c.server(),
            r.value.token
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn ls(s: ServerArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(&s)?;
    let r = c.get::<Page<AgentInfo>>(c.url(&["agents"])).await?;
    if c.json {
        client::print_json(&r.json);
        return Ok(ExitCode::SUCCESS);
    }
    let now = client::now_ms();
    let rows: Vec<Vec<String>> = r
        .value
        .items
        .iter()
        .map(|a| {
            vec![
                a.id.to_string(),
                a.name.clone(),
                a.labels.join(","),
                a.executors.join(","),
                client::when(a.last_contact_ms, now),
                if a.running.is_empty() {
                    "-".into()
                } else {
                    a.running.join("; ")
                },
            ]
        })
        .collect();
    client::table(
        &mut std::io::stdout(),
        &[
            "ID",
            "NAME",
            "LABELS",
            "EXECUTORS",
            "LAST CONTACT",
            "RUNNING",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// What the agent keeps in its work directory between restarts.
#[derive(Serialize, Deserialize)]
struct Identity {
    server: String,
    agent_id: i64,
    agent_token: String,
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "agent".into())
}

/// Refuses a work directory another live agent uses; records this one's pid.
fn claim_work_dir(dir: &Path) -> anyhow::Result<()> {
    let pidfile = dir.join("agent.pid");
    if let Ok(text) = std::fs::read_to_string(&pidfile)
        && let Ok(pid) = text.trim().parse::<i32>()
        && pid != std::process::id() as i32
        // SAFETY: kill(pid, 0) only checks that the process exists.
        && unsafe { libc::kill(pid, 0) } == 0
        && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.contains("agent"))
    {
        return Err(UsageError(format!(
            "another agent (pid {pid}) runs in {}; give this one its own --work-dir",
            dir.display()
        ))
        .into());
    }
    std::fs::write(&pidfile, std::process::id().to_string())
        .with_context(|| format!("writing {}", pidfile.display()))?;
    Ok(())
}

async fn run_agent(a: RunArgs, data: &Path) -> anyhow::Result<ExitCode> {
    let given = if a.server.contains("://") {
        a.server.clone()
    } else {
        format!("http://{}", a.server)
    };
    let server = Url::parse(&given)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| UsageError(format!("--server `{}`: expected a URL", a.server)))?;
    let work_dir = a.work_dir.clone().unwrap_or_else(|| data.join("agent"));
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let work_dir = work_dir.canonicalize()?;
    claim_work_dir(&work_dir)?;
    let name = a.name.clone().unwrap_or_else(host_name);

    // Executors first: registration says which this agent has.
    let want_local = a.executor != Some(ExecutorArg::Docker);
    let want_docker = a.executor != Some(ExecutorArg::Local);
    let ident_path = work_dir.join("agent.json");
    let saved: Option<Identity> = std::fs::read(&ident_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|i: &Identity| i.server == server.as_str());
    let docker_ok = if want_docker {
        tokio::time::timeout(Duration::from_secs(5), async {
            let d = DockerExecutor::connect(DockerConfig { host: None }, RunnerId("probe".into()))
                .await?;
            d.health().await
        })
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false)
    } else {
        false
    };
    if a.executor == Some(ExecutorArg::Docker) && !docker_ok {
        anyhow::bail!("--executor docker: no Docker engine answers");
    }
    let mut executors = Vec::new();
    if want_local {
        executors.push("local".to_string());
    }
    if docker_ok {
        executors.push("docker".to_string());
    }
    let identity = match saved {
        Some(i) => i,
        None => {
            let Some(token) = a.token.clone() else {
                return Err(UsageError(
                    "--token: a registration token is needed the first time (`slipway agent token create`)"
                        .into(),
                )
                .into());
            };
            let reg = slipway_agent::http::register(
                &server,
                &Register {
                    version: JOB_PROTOCOL_VERSION,
                    token,
                    name: name.clone(),
                    labels: a.labels.clone(),
                    executors: executors.clone(),
                    concurrency: a.concurrency as u32,
                    agent_version: env!("CARGO_PKG_VERSION").into(),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("registering with {server}: {e}"))?;
            let i = Identity {
                server: server.as_str().to_string(),
                agent_id: reg.agent_id,
                agent_token: reg.agent_token,
            };
            let text = serde_json::to_vec(&i)?;
            std::fs::write(&ident_path, text)
                .with_context(|| format!("writing {}", ident_path.display()))?;
            // The token is a credential: readable by this user only.
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&ident_path, std::fs::Permissions::from_mode(0o600));
            i
        }
    };
    let runner = RunnerId(format!("agent-{}", identity.agent_id));
    let local = if want_local {
        Some(
            ExecutorConfig::Local(LocalConfig {
                clear_env: false,
                state_dir: Some(work_dir.join("run").join("local-sessions")),
            })
            .build(runner.clone())
            .await?,
        )
    } else {
        None
    };
    let docker: Option<Arc<dyn slipway_executor::Executor>> = if docker_ok {
        Some(Arc::new(
            DockerExecutor::connect(DockerConfig { host: None }, runner.clone()).await?,
        ))
    } else {
        None
    };
    let config = slipway_agent::AgentConfig {
        work_dir: work_dir.clone(),
        concurrency: a.concurrency.max(1),
        local,
        docker,
    };
    let removed = slipway_agent::remove_leftovers(&config).await;
    if !removed.is_empty() {
        eprintln!("removed what an earlier run of this agent left: {removed}");
    }
    let source = Arc::new(slipway_agent::http::HttpSource::new(
        server.clone(),
        identity.agent_token.clone(),
    ));
    eprintln!(
        "agent {name} (#{}) runs jobs for {} with labels [{}] and executors [{}]; waiting for jobs",
        identity.agent_id,
        server.as_str().trim_end_matches('/'),
        a.labels.join(","),
        executors.join(",")
    );
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        eprintln!("stopping: running jobs are stopped and reported");
        stop.cancel();
    });
    slipway_agent::run(source, config, shutdown.clone()).await?;
    let _ = std::fs::remove_file(work_dir.join("agent.pid"));
    Ok(ExitCode::SUCCESS)
}
