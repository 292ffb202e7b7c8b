//! A project's repository: resolving a revision to a commit, exporting that commit's files for
//! an execution, and reading its pipelines. The git CLI does the work (see ARCHITECTURE.md).
//!
//! A local path is read in place; any other URL is mirrored into `<data>/repos/<project>.git`
//! and fetched before each resolve.

use std::collections::BTreeMap;
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
    let texts = files
        .iter()
        .map(|f| {
            let shown = f.strip_prefix(tree).unwrap_or(f).display().to_string();
            let text = std::fs::read_to_string(f).map_err(|e| e.to_string());
            (shown, text)
        })
        .collect();
    parse_pipelines(texts, tree.join("buildspec.yml").is_file(), project)
}

/// Whether a path (relative to the repository's root) is a pipeline file: the files
/// [`pipelines`] reads.
fn is_pipeline_file(path: &str) -> bool {
    if matches!(path, ".slipway/pipeline.yml" | ".slipway/pipeline.yaml") {
        return true;
    }
    path.strip_prefix(".slipway/pipelines/")
        .is_some_and(|name| {
            !name.contains('/') && (name.ends_with(".yml") || name.ends_with(".yaml"))
        })
}

/// The pipelines of a commit, read from the repository without exporting it (two git
/// processes): what [`pipelines`] would give for the exported tree. The inner `Err` lists the
/// files' problems; the outer one means git could not read the commit.
pub async fn pipelines_at(
    dir: &Path,
    sha: &str,
    project: &str,
) -> Result<Result<Vec<Pipeline>, Vec<String>>, SourceError> {
    let listing = git(
        dir,
        &[
            "ls-tree",
            "-r",
            "--name-only",
            "-z",
            sha,
            "--",
            ".slipway",
            "buildspec.yml",
        ],
    )
    .await?;
    let mut names: Vec<&str> = listing
        .split('\0')
        .filter(|p| is_pipeline_file(p))
        .collect();
    // The order `pipelines` reads them in: the two fixed names first, then the directory's.
    names.sort_by_key(|p| (p.starts_with(".slipway/pipelines/"), *p));
    let has_buildspec = listing.split('\0').any(|p| p == "buildspec.yml");
    let mut texts = Vec::new();
    if !names.is_empty() {
        let input: String = names.iter().map(|n| format!("{sha}:{n}\n")).collect();
        let out = git_with_input(dir, &["cat-file", "--batch"], input.into_bytes()).await?;
        let mut rest = out.as_slice();
        for name in &names {
            let nl = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let header = String::from_utf8_lossy(&rest[..nl]).to_string();
            rest = rest.get(nl + 1..).unwrap_or_default();
            let size = header
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|_| !header.ends_with(" missing"));
            let text = match size {
                Some(n) if n <= rest.len() => {
                    let t = String::from_utf8(rest[..n].to_vec())
                        .map_err(|_| "not UTF-8 text".to_string());
                    rest = rest.get(n + 1..).unwrap_or_default();
                    t
                }
                _ => Err(format!("cannot read it from the commit ({header})")),
            };
            texts.push((name.to_string(), text));
        }
    }
    Ok(parse_pipelines(texts, has_buildspec, project))
}

/// Parses pipeline files given as (shown name, text or read error).
fn parse_pipelines(
    files: Vec<(String, Result<String, String>)>,
    has_buildspec: bool,
    project: &str,
) -> Result<Vec<Pipeline>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (shown, text) in files {
        let text = match text {
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
        if has_buildspec {
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

/// The branch HEAD names (`main`), the project's default branch; `main` when HEAD is detached.
pub async fn default_branch(dir: &Path) -> String {
    // Read straight from the HEAD file when it is one (a bare repository or a working tree's
    // `.git`): this runs for every push, and a git process costs more than the read.
    for head in [dir.join("HEAD"), dir.join(".git/HEAD")] {
        if let Ok(text) = tokio::fs::read_to_string(&head).await
            && let Some(b) = text.trim().strip_prefix("ref: refs/heads/")
        {
            return b.to_string();
        }
    }
    match git(dir, &["symbolic-ref", "--short", "-q", "HEAD"]).await {
        Ok(b) if !b.is_empty() => b,
        _ => "main".into(),
    }
}

/// Whether the repository has this commit.
pub async fn has_commit(dir: &Path, sha: &str) -> bool {
    git(dir, &["cat-file", "-e", &format!("{sha}^{{commit}}")])
        .await
        .is_ok()
}

/// The best common ancestor of two commits, if they have one.
pub async fn merge_base(dir: &Path, a: &str, b: &str) -> Option<String> {
    git(dir, &["merge-base", a, b])
        .await
        .ok()
        .filter(|s| !s.is_empty())
}

/// The files that differ between two commits (a rename counts as both paths); with no `from`,
/// every file of `to`.
pub async fn changed_files(
    dir: &Path,
    from: Option<&str>,
    to: &str,
) -> Result<Vec<String>, SourceError> {
    let out = match from {
        Some(from) => {
            git(
                dir,
                &["diff", "--name-only", "--no-renames", "-z", from, to, "--"],
            )
            .await?
        }
        None => git(dir, &["ls-tree", "-r", "--name-only", "-z", to]).await?,
    };
    Ok(out
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect())
}

/// The branches and tags of a repository on disk: full ref name -> object id.
pub async fn local_refs(dir: &Path) -> Result<BTreeMap<String, String>, SourceError> {
    let out = git(
        dir,
        &[
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/heads",
            "refs/tags",
        ],
    )
    .await?;
    Ok(parse_ref_lines(&out, ' '))
}

/// The branches and tags of any repository git can reach (`git ls-remote`), run from `cwd`.
pub async fn remote_refs(cwd: &Path, url: &str) -> Result<BTreeMap<String, String>, SourceError> {
    let out = git(cwd, &["ls-remote", "--heads", "--tags", "--", url]).await?;
    Ok(parse_ref_lines(&out, '\t'))
}

fn parse_ref_lines(out: &str, sep: char) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(sep))
        .filter(|(_, r)| !r.ends_with("^{}"))
        .map(|(sha, r)| (r.trim().to_string(), sha.trim().to_string()))
        .collect()
}

async fn git_with_input(dir: &Path, args: &[&str], input: Vec<u8>) -> Result<Vec<u8>, SourceError> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("GIT_TERMINAL_PROMPT", "0")
        .spawn()
        .map_err(SourceError::Spawn)?;
    let mut stdin = child.stdin.take();
    let feed = async move {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&input).await;
        }
        drop(stdin);
    };
    let (_, out) = tokio::join!(feed, child.wait_with_output());
    let out = out.map_err(SourceError::Spawn)?;
    if !out.status.success() {
        return Err(SourceError::Git {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
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
