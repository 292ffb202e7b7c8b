//! Resolving a buildspec's `parameter-store` and `secrets-manager` names to values.
//!
//! Without a server the values come from a secrets file (`--secrets-file`) or the
//! environment; the server will resolve them from its secret store through the same trait.

use std::collections::BTreeMap;
use std::path::Path;

use slipway_spec::buildspec::SecretRef;

/// Looks up secret values by name. Called once per name per build, before any phase runs.
pub trait SecretSource: Send + Sync {
    fn get(&self, name: &str) -> Option<String>;
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read secrets file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: expected NAME=VALUE")]
    Syntax { path: String, line: usize },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: a JSON secrets file must be an object of name -> string value")]
    JsonShape { path: String },
}

/// Secrets from a file (`NAME=VALUE` lines, or a JSON object), then from the environment.
#[derive(Default, Clone)]
pub struct FileAndEnvSecrets {
    values: BTreeMap<String, String>,
    use_env: bool,
}

impl FileAndEnvSecrets {
    pub fn env_only() -> Self {
        Self {
            values: BTreeMap::new(),
            use_env: true,
        }
    }

    pub fn load(path: &Path) -> Result<Self, SecretsError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SecretsError::Read {
            path: p.clone(),
            source,
        })?;
        let mut values = BTreeMap::new();
        if text.trim_start().starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|source| SecretsError::Json {
                    path: p.clone(),
                    source,
                })?;
            let obj = v
                .as_object()
                .ok_or_else(|| SecretsError::JsonShape { path: p.clone() })?;
            for (k, v) in obj {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                values.insert(k.clone(), s);
            }
        } else {
            for (i, line) in text.lines().enumerate() {
                let t = line.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                let (k, v) = t.split_once('=').ok_or(SecretsError::Syntax {
                    path: p.clone(),
                    line: i + 1,
                })?;
                values.insert(k.trim().to_string(), v.to_string());
            }
        }
        Ok(Self {
            values,
            use_env: true,
        })
    }
}

impl SecretSource for FileAndEnvSecrets {
    fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned().or_else(|| {
            if self.use_env {
                std::env::var(name).ok()
            } else {
                None
            }
        })
    }
}

/// A secret that could not be resolved, named for the user.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "env.parameter-store.{var}: parameter `{name}` not found (give it in --secrets-file or the environment)"
    )]
    Parameter { var: String, name: String },
    #[error(
        "env.secrets-manager.{var}: secret `{name}` not found (give it in --secrets-file or the environment)"
    )]
    Secret { var: String, name: String },
    #[error("env.secrets-manager.{var}: secret `{name}` is not a JSON object with key `{key}`")]
    JsonKey {
        var: String,
        name: String,
        key: String,
    },
}

/// Resolves every parameter-store and secrets-manager variable; all failures are returned.
pub fn resolve(
    source: &dyn SecretSource,
    parameter_store: &[(String, String)],
    secrets_manager: &[(String, SecretRef)],
) -> Result<Vec<(String, String)>, Vec<ResolveError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (var, name) in parameter_store {
        match source.get(name).or_else(|| source.get(var)) {
            Some(v) => out.push((var.clone(), v)),
            None => errors.push(ResolveError::Parameter {
                var: var.clone(),
                name: name.clone(),
            }),
        }
    }
    for (var, r) in secrets_manager {
        let Some(secret) = source
            .get(&r.secret_id)
            .or_else(|| source.get(&r.raw))
            .or_else(|| source.get(var))
        else {
            errors.push(ResolveError::Secret {
                var: var.clone(),
                name: r.secret_id.clone(),
            });
            continue;
        };
        match &r.json_key {
            None => out.push((var.clone(), secret)),
            Some(key) => {
                let value = serde_json::from_str::<serde_json::Value>(&secret)
                    .ok()
                    .and_then(|v| {
                        v.get(key).map(|x| match x {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                    });
                match value {
                    Some(v) => out.push((var.clone(), v)),
                    None => errors.push(ResolveError::JsonKey {
                        var: var.clone(),
                        name: r.secret_id.clone(),
                        key: key.clone(),
                    }),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
