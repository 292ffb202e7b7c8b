//! slipway-registry: Slipway's own OCI registry (the distribution specification 1.1 on `/v2/`),
//! layered as Trow is: `routes/` (HTTP: paths, headers, status codes, the spec's JSON errors)
//! over `services/` (uploads, manifests, auth, lifecycle policies, garbage collection) over
//! storage (slipway-store: the content-addressed `BlobStore` for bytes, the state `Db` for
//! metadata). Blobs are shared with artifacts and caches, so identical bytes are stored once.

pub mod error;
pub mod name;
pub mod routes;
pub mod services;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use slipway_store::{BlobStore, Db};
use tokio::sync::RwLock;

pub use error::{OciError, RegistryError};
pub use routes::admin;
pub use routes::router;
pub use services::lifecycle::{LifecyclePolicy, PolicyError};

/// What the registry is configured with (the server's `[registry]` section).
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// The user `docker login` takes (until Slipway has users of its own).
    pub username: String,
    /// Its password; `None`: the one in `<data>/registry-password`, generated on first start.
    pub password: Option<String>,
    /// `host:port` image references name (`HOST/PROJECT/NAME:TAG`).
    pub public_address: String,
    /// How long a token from `/v2/token` is good for.
    pub token_ttl: Duration,
    /// Blobs and blob links younger than this are never collected.
    pub gc_grace: Duration,
    /// How often lifecycle policies and garbage collection run in the background.
    pub gc_interval: Duration,
}

impl RegistryConfig {
    pub fn new(public_address: impl Into<String>) -> Self {
        Self {
            username: "slipway".into(),
            password: None,
            public_address: public_address.into(),
            token_ttl: Duration::from_secs(3600),
            gc_grace: Duration::from_secs(3600),
            gc_interval: Duration::from_secs(3600),
        }
    }
}

/// The registry's shared state: storage, live upload sessions, the token key.
pub struct Registry {
    pub(crate) db: Arc<Db>,
    pub(crate) blobs: BlobStore,
    pub(crate) config: RegistryConfig,
    pub(crate) password: String,
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) uploads: services::uploads::Uploads,
    pub(crate) auth: services::auth::TokenKey,
    /// Pushes hold it for reading while they check and record what they refer to; garbage
    /// collection holds it for writing only while it deletes. Shared with the server's
    /// retention (which holds it for writing for a whole pass) and backups.
    pub(crate) gc_lock: Arc<RwLock<()>>,
}

impl Registry {
    /// Opens the registry over a data directory: `<data>/registry/uploads` (partial uploads),
    /// `<data>/registry/token.key` (the token signing key), `<data>/registry-password` (the
    /// generated password, when none is configured).
    pub fn open(
        data: &Path,
        config: RegistryConfig,
        db: Arc<Db>,
        blobs: BlobStore,
        gc_lock: Arc<RwLock<()>>,
    ) -> Result<Arc<Registry>, RegistryError> {
        let dir = data.join("registry");
        let uploads = services::uploads::Uploads::open(&dir.join("uploads"))?;
        let auth = services::auth::TokenKey::load_or_create(&dir.join("token.key"))?;
        let (password, password_file) = match &config.password {
            Some(p) => (p.clone(), None),
            None => {
                let f = data.join("registry-password");
                (services::auth::load_or_generate_password(&f)?, Some(f))
            }
        };
        Ok(Arc::new(Registry {
            db,
            blobs,
            config,
            password,
            password_file,
            uploads,
            auth,
            gc_lock,
        }))
    }

    /// The file the generated password is in (`None` when one was configured).
    pub fn password_file(&self) -> Option<&Path> {
        self.password_file.as_deref()
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Every digest the registry needs kept (the server's retention adds these to its own).
    pub async fn live_digests(
        &self,
    ) -> Result<std::collections::BTreeSet<slipway_model::Digest>, RegistryError> {
        Ok(self.db.registry_live_digests().await?)
    }

    /// The background pass: lifecycle policies, then garbage collection, every
    /// `gc_interval`, until `shutdown`.
    pub async fn run_periodically(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.gc_interval) => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(e) = services::lifecycle::apply_all(&self).await {
                tracing::warn!(error = %e, "registry lifecycle pass failed");
            }
            if let Err(e) = services::gc::collect(&self, false).await {
                tracing::warn!(error = %e, "registry garbage collection failed");
            }
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
