//! slipway-server: the long-lived server. One port serves the REST API (`/api/v1`), `/metrics`
//! and `/healthz` (and, as they land, webhooks, git hosting, the registry and the UI). It owns
//! the state database and the blob store, runs executions through the engine with the
//! embedded runner, and recovers what a crash left.

pub mod agents;
pub mod api;
pub mod backup;
pub mod config;
pub mod error;
pub mod gc;
pub mod hooks;
pub mod hosting;
pub mod metrics;
pub mod modes;
pub mod notify;
pub mod poll;
pub mod schedule;
pub mod scheduler;
pub mod source;
pub mod triggers;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use slipway_engine::Engine;
use slipway_executor::Executor;
use slipway_store::{BlobStore, Db};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use scheduler::Scheduler;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub sched: Arc<Scheduler>,
    pub blobs: BlobStore,
    pub config: Arc<Config>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Held for writing by retention, for reading by backups.
    pub gc_lock: Arc<RwLock<()>>,
    pub docker: Option<Arc<dyn Executor>>,
    /// The OCI registry on `/v2/` (its REST endpoints are in `api::table()`).
    pub registry: Arc<slipway_registry::Registry>,
    /// Image builds on the Docker engine (retention prunes what they left).
    pub images: Option<Arc<dyn slipway_executor::ImageBuilder>>,
    /// Agents and the jobs queued for them (build actions with `runs-on`).
    pub agents: Arc<agents::Agents>,
}

/// A server that is listening; dropped or `stop`ped, it shuts down.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: CancellationToken,
    serving: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Opens the data directory and the database, recovers interrupted executions, and starts
    /// listening. `engine` brings the executors; its approver and job slots are replaced.
    pub async fn start(config: Config, mut engine: Engine) -> anyhow::Result<Server> {
        std::fs::create_dir_all(config.data.join("work"))
            .with_context(|| format!("creating {}", config.data.display()))?;
        let url = config.database_url();
        let db = Arc::new(
            Db::connect(&url)
                .await
                .with_context(|| format!("opening the database {url}"))?,
        );
        let blobs = engine.store.clone();
        engine.job_slots = Some(Arc::new(tokio::sync::Semaphore::new(
            config.runner.concurrency.max(1),
        )));
        engine.approval_timeout = config.timeouts.approval;
        engine.retry_backoff = config.timeouts.retry_backoff;
        engine.batch_concurrency = config.runner.batch_concurrency;
        let docker = engine.executors.docker.clone();
        let images = engine.executors.images.clone();
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let gc_lock: Arc<RwLock<()>> = Arc::default();
        let registry = slipway_registry::Registry::open(
            &config.data,
            registry_config(&config, addr),
            db.clone(),
            blobs.clone(),
            gc_lock.clone(),
        )
        .context("opening the registry")?;
        // Image actions push to this registry, signed in as its configured user.
        let password = match (&registry.config().password, registry.password_file()) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(f)) => std::fs::read_to_string(f)
                .ok()
                .map(|p| p.trim().to_string()),
            (None, None) => None,
        };
        engine.registry = Some(slipway_engine::image::RegistryTarget {
            address: registry.config().public_address.clone(),
            auth: password.map(|password| slipway_executor::RegistryAuth {
                username: registry.config().username.clone(),
                password,
            }),
        });
        let agents = agents::Agents::new(db.clone(), blobs.clone(), config.agents.lease_ttl);
        engine.dispatch = Some(agents.clone());
        let sched = Scheduler::new(
            db,
            config.data.clone(),
            engine,
            config.runner.max_executions,
        );
        let state = AppState {
            sched: sched.clone(),
            blobs,
            config: Arc::new(config),
            metrics: metrics::handle(),
            gc_lock,
            registry,
            docker,
            images,
            agents: agents.clone(),
        };
        agents.attach(sched.updates.clone());
        agents
            .after_restart()
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        sched.set_agents(agents.clone());
        let recovered = sched
            .recover()
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        if recovered > 0 {
            tracing::info!(recovered, "continued executions interrupted by a restart");
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(agents.clone().run_sweeper(shutdown.clone()));
        tokio::spawn(gc::run_periodically(state.clone(), shutdown.clone()));
        tokio::spawn(state.registry.clone().run_periodically(shutdown.clone()));
        tokio::spawn(poll::run_periodically(state.clone(), shutdown.clone()));
        tokio::spawn(schedule::run_periodically(sched.clone(), shutdown.clone()));
        let public_url =
            (state.config.notify.public_url.clone()).unwrap_or_else(|| format!("http://{addr}"));
        tokio::spawn(notify::run(state.clone(), public_url, shutdown.clone()));
        let app = api::routes(state.clone())
            .merge(slipway_registry::router(state.registry.clone()))
            .layer(tower_http::catch_panic::CatchPanicLayer::new())
            .layer(tower_http::trace::TraceLayer::new_for_http());
        let stop = shutdown.clone();
        let serving = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            // No Nagle: a small response written in pieces (git's smart HTTP answers, SSE)
            // would otherwise wait for the client's delayed ACK, 40 ms a request.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "the HTTP server stopped");
            }
        });
        Ok(Server {
            addr,
            state,
            shutdown,
            serving,
        })
    }

    /// Stops accepting requests, cancels running executions (their containers are removed)
    /// and waits for them, up to the configured grace.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let grace = self.state.config.timeouts.shutdown_grace;
        self.state.sched.shutdown(grace).await;
        let _ = tokio::time::timeout(grace, self.serving).await;
        self.state.sched.db.close().await;
    }
}

impl axum::extract::FromRef<AppState> for Arc<slipway_registry::Registry> {
    fn from_ref(s: &AppState) -> Self {
        s.registry.clone()
    }
}

/// The registry's settings: the `[registry]` section over its defaults; image references
/// name the address the server listens on unless `registry.public_address` says otherwise.
fn registry_config(c: &Config, addr: SocketAddr) -> slipway_registry::RegistryConfig {
    let r = &c.registry;
    let mut rc = slipway_registry::RegistryConfig::new(
        r.public_address.clone().unwrap_or_else(|| addr.to_string()),
    );
    if let Some(u) = &r.username {
        rc.username = u.clone();
    }
    rc.password = r.password.clone();
    if let Some(d) = r.token_ttl {
        rc.token_ttl = d;
    }
    if let Some(d) = r.gc_grace {
        rc.gc_grace = d;
    }
    if let Some(d) = r.gc_interval {
        rc.gc_interval = d;
    }
    rc
}
