//! A project's repository: resolving a revision to a commit, exporting that commit's files for
//! an execution, and reading its pipelines. The git CLI does the work (see ARCHITECTURE.md).
//!
//! A local path is read in place; any other URL is mirrored into `<data>/repos/<project>.git`
//! and fetched before each resolve.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use slipway_spec::pipeline::{self, Pipeline};
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("git {args}: {message}")]
    Git { args: String, message: String },
    #[error("revision `{0}` not found in the repository")]
    NoRevision(String),
    #[error("running git: {0} (is git installed?)")]
    Spawn(std::io::Error),
    #[error("exporting {sha}: {message}")]
    Export { sha: String, message: String },
}

/// Where git commands for a project run: the path itself, or its mirror.
pub fn repo_dir(data: &Path, project: &str, git: &str) -> PathBuf {
    let p = Path::new(git);
    if p.is_absolute() && p.exists() {
        p.to_path_buf()
    } else {
        data.join("repos").join(format!("{project}.git"))
    }
}

async fn git(dir: &Path, args: &[&str]) -> Result<String, SourceError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(SourceError::Spawn)?;
    if !out.status.success() {
        return Err(SourceError::Git {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Brings the mirror of a remote repository up to date (made on first use). A no-op for a
/// local path.
pub async fn refresh(data: &Path, project: &str, git_url: &str) -> Result<PathBuf, SourceError> {
    let dir = repo_dir(data, project, git_url);
    if dir == Path::new(git_url) {
        return Ok(dir);
    }
    if dir.join("HEAD").is_file() {
        git(&dir, &["fetch", "--prune", "--force", "--quiet", "origin"]).await?;
    } else {
        let parent = dir.parent().unwrap_or(data);
        let _ = tokio::fs::create_dir_all(parent).await;
        let d = dir.to_string_lossy().to_string();
        git(parent, &["clone", "--mirror", "--quiet", git_url, &d]).await?;
    }
    Ok(dir)
}

/// The commit a branch, tag or commit id names (`HEAD` when none is given).
pub async fn resolve(dir: &Path, rev: Option<&str>) -> Result<String, SourceError> {
    let rev = rev.unwrap_or("HEAD");
    git(
        dir,
        &["rev-parse", "--verify", "-q", &format!("{rev}^{{commit}}")],
    )
    .await
    .map_err(|_| SourceError::NoRevision(rev.to_string()))
}

/// Writes a commit's files into `into` (`git archive`, streamed through tar).
pub async fn export(dir: &Path, sha: &str, into: &Path) -> Result<(), SourceError> {
    let dir = dir.to_path_buf();
    let sha = sha.to_string();
    let into = into.to_path_buf();
    let s2 = sha.clone();
    tokio::task::spawn_blocking(move || {
        let fail = |message: String| SourceError::Export {
            sha: s2.clone(),
            message,
        };
        std::fs::create_dir_all(&into).map_err(|e| fail(e.to_string()))?;
        let mut child = std::process::Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["archive", "--format=tar", &s2])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(SourceError::Spawn)?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("no output".into()))?;
        let mut archive = tar::Archive::new(stdout);
        archive.set_preserve_permissions(true);
        let unpacked = archive.unpack(&into);
        let out = child.wait_with_output().map_err(SourceError::Spawn)?;
        if !out.status.success() {
            return Err(fail(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        unpacked.map_err(|e| fail(e.to_string()))
    })
    .await
    .map_err(|e| SourceError::Export {
        sha,
        message: e.to_string(),
    })?
}

/// The pipelines of an exported tree, or every problem as `file:line:column: message`.
/// A repository with only a `buildspec.yml` gets the implicit one-action pipeline.
pub fn pipelines(tree: &Path, project: &str) -> Result<Vec<Pipeline>, Vec<String>> {
    let mut files = Vec::new();
    for name in ["pipeline.yml", "pipeline.yaml"] {
        let p = tree.join(".slipway").join(name);
        if p.is_file() {
            files.push(p);
        }
    }
    if let Ok(rd) = std::fs::read_dir(tree.join(".slipway/pipelines")) {
        let mut more: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
            .collect();
        more.sort();
        files.extend(more);
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for f in &files {
        let shown = f.strip_prefix(tree).unwrap_or(f).display().to_string();
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{shown}: {e}"));
                continue;
            }
        };
        let (p, diags) = pipeline::parse(&text);
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.render(&shown))
            .collect();
        match p {
            Some(p) if errors.is_empty() => out.push(p),
            _ => problems.extend(errors),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if out.is_empty() {
        if tree.join("buildspec.yml").is_file() {
            out.push(pipeline::implicit(project, "buildspec.yml"));
        } else {
            return Err(vec![
                "no .slipway/pipeline.yml, .slipway/pipelines/*.yml or buildspec.yml at this revision"
                    .into(),
            ]);
        }
    }
    Ok(out)
}

/// Picks the pipeline asked for, or the only one.
pub fn choose(mut all: Vec<Pipeline>, name: Option<&str>) -> Result<Pipeline, String> {
    let names = || {
        all.iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => match all.iter().position(|p| p.name == n) {
            Some(i) => Ok(all.swap_remove(i)),
            None => Err(format!(
                "no pipeline `{n}`; the repository has: {}",
                names()
            )),
        },
        None if all.len() == 1 => Ok(all.remove(0)),
        None => Err(format!(
            "several pipelines ({}); pick one with `pipeline`",
            names()
        )),
    }
}
