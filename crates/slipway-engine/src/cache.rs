//! Build caches kept between builds: restored before install, saved after a good build.
//!
//! Layout: `<cache_root>/<project>/<key>/` with one tar per cache path root and a `paths`
//! file. A keyed entry is immutable once saved (as AWS's keyed caches are); the entry of a
//! cache without a key is replaced by every good build. `fallback-keys` match by prefix, the
//! newest entry winning.

use std::path::PathBuf;

use slipway_executor::Job;
use slipway_spec::buildspec::{Cache, CacheAction};
use tokio_util::sync::CancellationToken;

use crate::build::{BuildRunner, BuildShells, sanitize};

const DEFAULT_KEY: &str = "_default";

/// The literal directory a cache path pattern lives in: `.cache/**/*` -> `.cache`.
fn pattern_root(p: &str) -> Option<String> {
    let cut = p.find(['*', '?', '[', '{']).unwrap_or(p.len());
    let lit = &p[..cut];
    let root = if cut == p.len() {
        lit.trim_end_matches('/')
    } else {
        lit.rsplit_once('/').map(|(a, _)| a).unwrap_or("")
    };
    let root = root.trim_end_matches('/');
    if root.is_empty() || root == "." {
        None
    } else {
        Some(root.to_string())
    }
}

fn parent_dir(root: &str) -> String {
    match root.rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((a, _)) => a.to_string(),
        None => ".".into(),
    }
}

fn project_dir(r: &BuildRunner<'_>, project: &str) -> PathBuf {
    r.environment()
        .cache_root
        .join(sanitize(if project.is_empty() {
            "default"
        } else {
            project
        }))
}

/// The project's cache directory and the entry's key (`key` evaluated in the build's shell).
async fn project_dir_and_key(
    r: &mut BuildRunner<'_>,
    handle: &mut dyn Job,
    shells: &mut BuildShells,
    c: &Cache,
    cancel: &CancellationToken,
) -> Result<(PathBuf, String), String> {
    let project = r.project();
    let dir = project_dir(r, &project);
    let key = match &c.key {
        Some(k) => r.shell_eval(handle, shells, k, cancel).await?,
        None => DEFAULT_KEY.to_string(),
    };
    Ok((dir, key))
}

pub(crate) async fn restore(
    r: &mut BuildRunner<'_>,
    handle: &mut dyn Job,
    shells: &mut BuildShells,
    c: &Cache,
    cancel: &CancellationToken,
) -> Result<(), String> {
    if c.action == CacheAction::Save {
        return Ok(());
    }
    let (dir, key) = project_dir_and_key(r, handle, shells, c, cancel).await?;
    let mut entry = dir.join(sanitize(&key));
    if !entry.join("paths").exists() {
        let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
        for fb in &c.fallback_keys {
            let fb = sanitize(&r.shell_eval(handle, shells, fb, cancel).await?);
            let Ok(mut rd) = tokio::fs::read_dir(&dir).await else {
                break;
            };
            while let Ok(Some(e)) = rd.next_entry().await {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&fb) && e.path().join("paths").exists() {
                    let t = e
                        .metadata()
                        .await
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::UNIX_EPOCH);
                    if best.as_ref().is_none_or(|(bt, _)| t > *bt) {
                        best = Some((t, e.path()));
                    }
                }
            }
            if best.is_some() {
                break;
            }
        }
        match best {
            Some((_, p)) => entry = p,
            None => {
                r.log()
                    .note(&format!("cache: no entry for key `{key}`"))
                    .await;
                return Ok(());
            }
        }
    }
    let paths = tokio::fs::read_to_string(entry.join("paths"))
        .await
        .map_err(|e| e.to_string())?;
    for (i, root) in paths.lines().enumerate() {
        let tar = entry.join(format!("{i}.tar"));
        if tar.exists() {
            handle
                .archive_in(&tar, &parent_dir(root))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let used = entry
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    r.log().note(&format!("cache: restored `{used}`")).await;
    Ok(())
}

pub(crate) async fn save(
    r: &mut BuildRunner<'_>,
    handle: &mut dyn Job,
    shells: &mut BuildShells,
    c: &Cache,
    cancel: &CancellationToken,
) -> Result<(), String> {
    if c.action == CacheAction::Restore {
        return Ok(());
    }
    let (dir, key) = project_dir_and_key(r, handle, shells, c, cancel).await?;
    let entry = dir.join(sanitize(&key));
    if c.key.is_some() && entry.join("paths").exists() {
        r.log()
            .note(&format!(
                "cache: `{key}` exists and keyed caches are not updated"
            ))
            .await;
        return Ok(());
    }
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::now_v7().simple()));
    tokio::fs::create_dir_all(&tmp)
        .await
        .map_err(|e| e.to_string())?;
    let mut roots = Vec::new();
    for p in &c.paths {
        if let Some(root) = pattern_root(p)
            && !roots.contains(&root)
        {
            roots.push(root);
        }
    }
    let mut kept = Vec::new();
    for root in &roots {
        let tar = tmp.join(format!("{}.tar", kept.len()));
        match handle.archive_out(root, &tar).await {
            Ok(true) => kept.push(root.clone()),
            Ok(false) => {}
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&tmp).await;
                return Err(e.to_string());
            }
        }
    }
    tokio::fs::write(tmp.join("paths"), kept.join("\n"))
        .await
        .map_err(|e| e.to_string())?;
    let _ = tokio::fs::remove_dir_all(&entry).await;
    tokio::fs::rename(&tmp, &entry)
        .await
        .map_err(|e| e.to_string())?;
    r.log()
        .note(&format!("cache: saved `{key}` ({} paths)", kept.len()))
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_of_patterns() {
        assert_eq!(pattern_root(".cache/**/*").as_deref(), Some(".cache"));
        assert_eq!(pattern_root("/root/.m2/**/*").as_deref(), Some("/root/.m2"));
        assert_eq!(
            pattern_root("node_modules").as_deref(),
            Some("node_modules")
        );
        assert_eq!(pattern_root("a/b/*.jar").as_deref(), Some("a/b"));
        assert_eq!(pattern_root("**/*"), None);
        assert_eq!(parent_dir("/root/.m2"), "/root");
        assert_eq!(parent_dir(".cache"), ".");
        assert_eq!(parent_dir("/x"), "/");
    }
}
