//! The server's configuration: documented defaults, a TOML file over them, `SLIPWAY_*`
//! environment variables over the file, command-line flags over everything (docs/server.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything the server needs to start. Durations are written as in pipeline files (`30s`,
/// `7d`).
#[derive(Clone, Debug)]
pub struct Config {
    /// 127.0.0.1:8080: loopback only until authentication exists.
    pub listen: SocketAddr,
    pub data: PathBuf,
    /// `sqlite:<data>/slipway.db` unless given (`postgres://...` for PostgreSQL).
    pub database: Option<String>,
    pub runner: RunnerConfig,
    pub timeouts: Timeouts,
    pub retention: RetentionConfig,
    pub registry: RegistrySettings,
    pub sources: SourcesConfig,
    pub agents: AgentsConfig,
    pub notify: NotifyConfig,
}

/// Commit statuses and notification webhooks (docs/webhooks.md).
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    /// The pause before a failed request's first retry; it doubles for each further one (up
    /// to 5 min).
    pub retry_backoff: Duration,
    /// Attempts per request before it is given up (`failed`).
    pub max_attempts: u32,
    /// The server's URL as forges and people reach it, for links and webhook URLs (default:
    /// `http://<listen address>`).
    pub public_url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct AgentsConfig {
    /// How long an agent's lease on a job lives without a heartbeat: a lost agent's job
    /// ends (as a fault) within this.
    pub lease_ttl: Duration,
}

#[derive(Clone, Debug)]
pub struct SourcesConfig {
    /// How often a project's repository is polled unless the project sets its own interval
    /// (zero: polling off).
    pub poll_interval: Duration,
}

#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Build jobs the embedded runner runs at once.
    pub concurrency: usize,
    /// Executions whose stages run at once; the rest stay queued.
    pub max_executions: usize,
    /// Batch builds of one action at once.
    pub batch_concurrency: usize,
}

#[derive(Clone, Debug)]
pub struct Timeouts {
    /// How long an approval waits when the action names no timeout (CodePipeline: 7 days).
    pub approval: Duration,
    /// The pause before an action's first retry; it doubles for each further one (up to 5 min).
    pub retry_backoff: Duration,
    /// How long shutdown waits for executions to stop before leaving them to recovery.
    pub shutdown_grace: Duration,
}

#[derive(Clone, Debug)]
pub struct RetentionConfig {
    /// Finished executions older than this are pruned (`None`: kept by age).
    pub max_age: Option<Duration>,
    /// The newest N executions of each project are kept (`None`: kept by count).
    pub keep_per_project: Option<u32>,
    /// How often the background pruning runs.
    pub interval: Duration,
    /// Blobs newer than this are never swept, so a build writing one is not raced.
    pub blob_grace: Duration,
}

impl Config {
    /// The documented defaults over a data directory.
    pub fn defaults(data: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data,
            database: None,
            runner: RunnerConfig {
                concurrency: 4,
                max_executions: 64,
                batch_concurrency: 2,
            },
            timeouts: Timeouts {
                approval: Duration::from_secs(7 * 24 * 3600),
                retry_backoff: Duration::from_secs(2),
                shutdown_grace: Duration::from_secs(10),
            },
            registry: RegistrySettings::default(),
            retention: RetentionConfig {
                max_age: Some(Duration::from_secs(90 * 24 * 3600)),
                keep_per_project: Some(500),
                interval: Duration::from_secs(3600),
                blob_grace: Duration::from_secs(3600),
            },
            sources: SourcesConfig {
                poll_interval: Duration::from_secs(60),
            },
            agents: AgentsConfig {
                lease_ttl: Duration::from_secs(15),
            },
            notify: NotifyConfig {
                retry_backoff: Duration::from_secs(5),
                max_attempts: 5,
                public_url: None,
            },
        }
    }

    /// Defaults, then the TOML file (when given), then `SLIPWAY_*` variables from `env`.
    pub fn load(
        data: PathBuf,
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let mut c = Self::defaults(data);
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let f: FileConfig =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            c.apply(f).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let mut f = FileConfig::default();
        let var = |k: &str| env(k).filter(|v| !v.is_empty());
        f.listen = var("SLIPWAY_LISTEN");
        f.database = var("SLIPWAY_DATABASE");
        let mut r = RunnerSection::default();
        if let Some(v) = var("SLIPWAY_RUNNER_CONCURRENCY") {
            r.concurrency = Some(number("SLIPWAY_RUNNER_CONCURRENCY", &v)?);
        }
        if let Some(v) = var("SLIPWAY_MAX_EXECUTIONS") {
            r.max_executions = Some(number("SLIPWAY_MAX_EXECUTIONS", &v)?);
        }
        f.runner = Some(r);
        f.timeouts = Some(TimeoutsSection {
            approval: var("SLIPWAY_APPROVAL_TIMEOUT"),
            retry_backoff: var("SLIPWAY_RETRY_BACKOFF"),
            shutdown_grace: var("SLIPWAY_SHUTDOWN_GRACE"),
        });
        let keep = match var("SLIPWAY_RETENTION_KEEP") {
            Some(v) => Some(number("SLIPWAY_RETENTION_KEEP", &v)?),
            None => None,
        };
        f.retention = Some(RetentionSection {
            max_age: var("SLIPWAY_RETENTION_MAX_AGE"),
            keep_per_project: keep,
            interval: var("SLIPWAY_RETENTION_INTERVAL"),
            blob_grace: var("SLIPWAY_BLOB_GRACE"),
        });
        f.sources = Some(SourcesSection {
            poll_interval: var("SLIPWAY_POLL_INTERVAL"),
        });
        f.agents = Some(AgentsSection {
            lease_ttl: var("SLIPWAY_AGENT_LEASE_TTL"),
        });
        f.notify = Some(NotifySection {
            retry_backoff: var("SLIPWAY_NOTIFY_RETRY_BACKOFF"),
            max_attempts: match var("SLIPWAY_NOTIFY_MAX_ATTEMPTS") {
                Some(v) => Some(number("SLIPWAY_NOTIFY_MAX_ATTEMPTS", &v)?),
                None => None,
            },
            public_url: var("SLIPWAY_PUBLIC_URL"),
        });
        f.registry = Some(RegistrySection {
            username: var("SLIPWAY_REGISTRY_USERNAME"),
            password: var("SLIPWAY_REGISTRY_PASSWORD"),
            public_address: var("SLIPWAY_REGISTRY_PUBLIC_ADDRESS"),
            gc_grace: var("SLIPWAY_REGISTRY_GC_GRACE"),
            gc_interval: var("SLIPWAY_REGISTRY_GC_INTERVAL"),
            ..Default::default()
        });
        c.apply(f).map_err(|e| format!("environment: {e}"))?;
        Ok(c)
    }

    /// The state database's URL.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(u) => u.clone(),
            None => format!("sqlite:{}", self.data.join("slipway.db").display()),
        }
    }

    fn apply(&mut self, f: FileConfig) -> Result<(), String> {
        if let Some(l) = f.listen {
            self.listen = l
                .parse()
                .map_err(|_| format!("listen: `{l}` is not an address such as 127.0.0.1:8080"))?;
        }
        if let Some(d) = f.database {
            self.database = Some(d);
        }
        if let Some(r) = f.runner {
            if let Some(n) = r.concurrency {
                self.runner.concurrency = n.max(1);
            }
            if let Some(n) = r.max_executions {
                self.runner.max_executions = n.max(1);
            }
            if let Some(n) = r.batch_concurrency {
                self.runner.batch_concurrency = n.max(1);
            }
        }
        if let Some(t) = f.timeouts {
            set_duration(&mut self.timeouts.approval, "timeouts.approval", t.approval)?;
            set_duration(
                &mut self.timeouts.retry_backoff,
                "timeouts.retry_backoff",
                t.retry_backoff,
            )?;
            set_duration(
                &mut self.timeouts.shutdown_grace,
                "timeouts.shutdown_grace",
                t.shutdown_grace,
            )?;
        }
        if let Some(r) = f.retention {
            if let Some(v) = r.max_age {
                self.retention.max_age = match v.as_str() {
                    "never" | "off" => None,
                    v => Some(duration("retention.max_age", v)?),
                };
            }
            if let Some(n) = r.keep_per_project {
                self.retention.keep_per_project = (n > 0).then_some(n);
            }
            set_duration(
                &mut self.retention.interval,
                "retention.interval",
                r.interval,
            )?;
            set_duration(
                &mut self.retention.blob_grace,
                "retention.blob_grace",
                r.blob_grace,
            )?;
        }
        if let Some(v) = f.sources.and_then(|s| s.poll_interval) {
            self.sources.poll_interval =
                poll_interval(&v).map_err(|e| format!("sources.poll_interval: {e}"))?;
        }
        if let Some(r) = f.registry {
            self.registry.apply(r)?;
        }
        if let Some(a) = f.agents {
            set_duration(&mut self.agents.lease_ttl, "agents.lease_ttl", a.lease_ttl)?;
            if self.agents.lease_ttl < Duration::from_millis(300) {
                return Err("agents.lease_ttl: at least 300ms".into());
            }
        }
        if let Some(n) = f.notify {
            set_duration(
                &mut self.notify.retry_backoff,
                "notify.retry_backoff",
                n.retry_backoff,
            )?;
            if let Some(m) = n.max_attempts {
                self.notify.max_attempts = m.max(1);
            }
            if let Some(u) = n.public_url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(format!("notify.public_url: `{u}` is not an http(s) URL"));
                }
                self.notify.public_url = Some(u.trim_end_matches('/').to_string());
            }
        }
        Ok(())
    }
}

/// A polling interval as written: a duration (`30s`), or `0` / `off` for none.
pub fn poll_interval(v: &str) -> Result<Duration, String> {
    match v.trim() {
        "0" | "off" | "never" => Ok(Duration::ZERO),
        v => slipway_spec::pipeline::parse_duration(v),
    }
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{key}: `{v}` is not a whole number"))
}

fn duration(key: &str, v: &str) -> Result<Duration, String> {
    slipway_spec::pipeline::parse_duration(v).map_err(|e| format!("{key}: {e}"))
}

fn set_duration(slot: &mut Duration, key: &str, v: Option<String>) -> Result<(), String> {
    if let Some(v) = v {
        *slot = duration(key, &v)?;
    }
    Ok(())
}

/// The TOML file's shape; every key optional (docs/server.md lists them with defaults).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database: Option<String>,
    runner: Option<RunnerSection>,
    timeouts: Option<TimeoutsSection>,
    retention: Option<RetentionSection>,
    registry: Option<RegistrySection>,
    sources: Option<SourcesSection>,
    agents: Option<AgentsSection>,
    notify: Option<NotifySection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifySection {
    retry_backoff: Option<String>,
    max_attempts: Option<u32>,
    public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentsSection {
    lease_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourcesSection {
    poll_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunnerSection {
    concurrency: Option<usize>,
    max_executions: Option<usize>,
    batch_concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutsSection {
    approval: Option<String>,
    retry_backoff: Option<String>,
    shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionSection {
    max_age: Option<String>,
    keep_per_project: Option<u32>,
    interval: Option<String>,
    blob_grace: Option<String>,
}

/// The `[registry]` section (docs/registry.md): `None` keeps the registry's default.
#[derive(Clone, Debug, Default)]
pub struct RegistrySettings {
    /// The user `docker login` takes (default `slipway`).
    pub username: Option<String>,
    /// Its password; unset: one generated on first start into `<data>/registry-password`.
    pub password: Option<String>,
    /// `host:port` in image references (default: the address the server listens on).
    pub public_address: Option<String>,
    pub token_ttl: Option<Duration>,
    pub gc_grace: Option<Duration>,
    pub gc_interval: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrySection {
    username: Option<String>,
    password: Option<String>,
    public_address: Option<String>,
    token_ttl: Option<String>,
    gc_grace: Option<String>,
    gc_interval: Option<String>,
}

impl RegistrySettings {
    fn apply(&mut self, r: RegistrySection) -> Result<(), String> {
        self.username = r.username.or(self.username.take());
        self.password = r.password.or(self.password.take());
        self.public_address = r.public_address.or(self.public_address.take());
        for (slot, key, v) in [
            (&mut self.token_ttl, "registry.token_ttl", r.token_ttl),
            (&mut self.gc_grace, "registry.gc_grace", r.gc_grace),
            (&mut self.gc_interval, "registry.gc_interval", r.gc_interval),
        ] {
            if let Some(v) = v {
                *slot = Some(duration(key, &v)?);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: Option<&str>, env: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slipway.toml");
        if let Some(t) = toml {
            std::fs::write(&path, t).unwrap();
        }
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load("/data".into(), toml.map(|_| path.as_path()), move |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_bind_loopback_and_use_sqlite_in_the_data_directory() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url(), "sqlite:/data/slipway.db");
        assert_eq!(c.timeouts.approval, Duration::from_secs(7 * 24 * 3600));
    }

    #[test]
    fn environment_wins_over_the_file() {
        let c = load(
            Some("listen = \"127.0.0.1:9000\"\n[timeouts]\napproval = \"1h\"\n[runner]\nconcurrency = 2\n"),
            &[("SLIPWAY_LISTEN", "127.0.0.1:9001"), ("SLIPWAY_APPROVAL_TIMEOUT", "2s")],
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(c.timeouts.approval, Duration::from_secs(2));
        assert_eq!(c.runner.concurrency, 2);
    }

    #[test]
    fn poll_interval_defaults_to_a_minute_and_turns_off() {
        assert_eq!(
            load(None, &[]).unwrap().sources.poll_interval,
            Duration::from_secs(60)
        );
        let c = load(Some("[sources]\npoll_interval = \"30s\"\n"), &[]).unwrap();
        assert_eq!(c.sources.poll_interval, Duration::from_secs(30));
        let c = load(None, &[("SLIPWAY_POLL_INTERVAL", "off")]).unwrap();
        assert_eq!(c.sources.poll_interval, Duration::ZERO);
    }

    #[test]
    fn bad_values_name_the_key_and_the_file() {
        let e = load(Some("[timeouts]\napproval = \"soon\"\n"), &[]).unwrap_err();
        assert!(
            e.contains("slipway.toml") && e.contains("timeouts.approval"),
            "{e}"
        );
        let e = load(Some("[runer]\n"), &[]).unwrap_err();
        assert!(e.contains("unknown field `runer`"), "{e}");
        let e = load(Some("[sources]\npoll_interval = \"often\"\n"), &[]).unwrap_err();
        assert!(e.contains("sources.poll_interval"), "{e}");
        let e = load(None, &[("SLIPWAY_RUNNER_CONCURRENCY", "many")]).unwrap_err();
        assert!(e.contains("SLIPWAY_RUNNER_CONCURRENCY"), "{e}");
    }
}
