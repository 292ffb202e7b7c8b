//! Shared set-up for commands that run builds: the data directory, executors, the engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use slipway_engine::secrets::{FileAndEnvSecrets, SecretSource};
use slipway_engine::{Approver, Engine, Executors};
use slipway_executor::{
    DockerConfig, DockerExecutor, Executor as _, ExecutorConfig, LocalConfig, RunnerId,
};

/// `$SLIPWAY_DATA`, else `$XDG_DATA_HOME/slipway`, else `~/.local/share/slipway`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("slipway");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/slipway"),
        None => PathBuf::from(".slipway-data"),
    }
}

/// Options shared by `build` and `run` for where and how builds execute.
#[derive(clap::Args, Debug, Clone)]
pub struct ExecArgs {
    /// Executor: local processes or Docker containers (default: docker when an engine answers
    /// and an image is given, else local).
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorArg>,
    /// Image for build actions that name none (docker executor).
    #[arg(long)]
    pub image: Option<String>,
    /// Environment variable for every build, over the buildspec and project (repeatable).
    #[arg(long = "env", short = 'e', value_name = "K=V", value_parser = parse_kv)]
    pub env: Vec<(String, String)>,
    /// Values for parameter-store / secrets-manager names: NAME=VALUE lines or a JSON object.
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,
    /// Mount the Docker engine's socket into build containers (for `docker build` in a buildspec).
    #[arg(long)]
    pub privileged: bool,
    /// Also copy artifacts to DIR/<artifact name>/.
    #[arg(long, value_name = "DIR")]
    pub artifacts_dir: Option<PathBuf>,
    /// Print events as JSON lines (the versioned schema in docs/events.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Stop a build action after this long (e.g. 30m); actions' own timeouts win.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Batch builds running at once.
    #[arg(long, default_value_t = 2)]
    pub batch_concurrency: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorArg {
    Local,
    Docker,
}

pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected K=V, got `{s}`")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    slipway_spec::pipeline::parse_duration(s)
}

/// This runner instance's name in container labels: one per user and host.
fn runner_id() -> RunnerId {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    RunnerId(format!("cli-{host}-{uid}"))
}

/// Connects the executors: local always; Docker when an engine answers (required when asked for).
pub async fn executors(args: &ExecArgs) -> anyhow::Result<Executors> {
    let runner = runner_id();
    let local = ExecutorConfig::Local(LocalConfig {
        clear_env: false,
        ..Default::default()
    })
    .build(runner.clone())
    .await?;
    let want_docker = args.executor == Some(ExecutorArg::Docker);
    let maybe_docker = want_docker || (args.executor.is_none());
    let mut docker = None;
    if maybe_docker {
        let attempt = tokio::time::timeout(Duration::from_secs(5), async {
            let d = Arc::new(
                DockerExecutor::connect(DockerConfig { host: None }, runner.clone()).await?,
            );
            d.health().await?;
            Ok::<_, slipway_executor::ExecutorError>(d)
        })
        .await;
        match attempt {
            Ok(Ok(d)) => {
                // Containers a killed earlier run of this runner left behind: only ours, and only
                // those whose process is gone, so the sweep runs beside the build, not before it.
                let sweeper = d.clone();
                tokio::spawn(async move {
                    match sweeper.remove_orphans().await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(removed = n, "removed orphaned containers and networks")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not look for orphaned containers")
                        }
                    }
                });
                docker = Some(d);
            }
            Ok(Err(e)) if want_docker => {
                anyhow::bail!("the docker executor needs a Docker engine: {e}")
            }
            Err(_) if want_docker => {
                anyhow::bail!("the docker executor needs a Docker engine: no answer within 5 s")
            }
            _ => {}
        }
    }
    let images = docker
        .clone()
        .map(|d| d as Arc<dyn slipway_executor::ImageBuilder>);
    Ok(Executors {
        local,
        docker: docker.map(|d| d as Arc<dyn slipway_executor::Executor>),
        images,
    })
}

pub fn secrets(args: &ExecArgs) -> anyhow::Result<Arc<dyn SecretSource>> {
    Ok(match &args.secrets_file {
        Some(p) => {
            Arc::new(FileAndEnvSecrets::load(p).map_err(|e| super::UsageError(e.to_string()))?)
        }
        None => Arc::new(FileAndEnvSecrets::env_only()),
    })
}

/// The embedded runner's engine for the server: local always, Docker when an engine answers,
/// under a runner id tied to the data directory so that a restarted server removes the
/// containers a killed one left.
pub async fn server_engine(data: &Path, approver: Arc<dyn Approver>) -> anyhow::Result<Engine> {
    let store = slipway_store::BlobStore::open(data.join("store"))
        .with_context(|| format!("opening the data directory {}", data.display()))?;
    let work_root = data.join("work");
    std::fs::create_dir_all(&work_root)
        .with_context(|| format!("creating {}", work_root.display()))?;
    let mut h = slipway_model::Hasher::new();
    h.update(data.to_string_lossy().as_bytes());
    let digest = h.finish();
    let runner = RunnerId(format!("server-{}", &digest.hex()[..12]));
    let local = ExecutorConfig::Local(LocalConfig {
        clear_env: false,
        state_dir: Some(data.join("run").join("local-sessions")),
    })
    .build(runner.clone())
    .await?;
    match local.remove_orphans().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(killed = n, "killed local sessions a stopped server left"),
        Err(e) => tracing::warn!(error = %e, "could not look for leftover local sessions"),
    }
    let docker = match tokio::time::timeout(Duration::from_secs(5), async {
        let d =
            Arc::new(DockerExecutor::connect(DockerConfig { host: None }, runner.clone()).await?);
        d.health().await?;
        Ok::<_, slipway_executor::ExecutorError>(d)
    })
    .await
    {
        Ok(Ok(d)) => {
            match d.remove_orphans().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed containers a stopped server left"),
                Err(e) => tracing::warn!(error = %e, "could not look for leftover containers"),
            }
            Some(d)
        }
        _ => {
            tracing::info!("no Docker engine answers: builds run as local processes only");
            None
        }
    };
    Ok(Engine {
        executors: Executors {
            local,
            images: docker
                .clone()
                .map(|d| d as Arc<dyn slipway_executor::ImageBuilder>),
            docker: docker.map(|d| d as Arc<dyn slipway_executor::Executor>),
        },
        store,
        work_root,
        cache_root: data.join("cache"),
        artifacts_dir: None,
        secrets: Arc::new(FileAndEnvSecrets::env_only()),
        approver,
        batch_concurrency: 2,
        approval_timeout: Duration::from_secs(7 * 24 * 3600),
        registry: None,
        retry_backoff: Duration::ZERO,
        job_slots: None,
        dispatch: None,
    })
}

/// The engine over the data directory: blobs, caches and workspaces below `data`.
pub async fn engine(
    data: &Path,
    args: &ExecArgs,
    approver: Arc<dyn Approver>,
) -> anyhow::Result<Engine> {
    let store = slipway_store::BlobStore::open(data.join("store"))
        .with_context(|| format!("opening the data directory {}", data.display()))?;
    let work_root = data.join("work");
    std::fs::create_dir_all(&work_root)
        .with_context(|| format!("creating {}", work_root.display()))?;
    Ok(Engine {
        executors: executors(args).await?,
        store,
        work_root,
        cache_root: data.join("cache"),
        artifacts_dir: args.artifacts_dir.clone(),
        secrets: secrets(args)?,
        approver,
        batch_concurrency: args.batch_concurrency,
        approval_timeout: Duration::from_secs(7 * 24 * 3600),
        registry: None,
        retry_backoff: Duration::ZERO,
        job_slots: None,
        dispatch: None,
    })
}
