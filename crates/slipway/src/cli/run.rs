//! `slipway run [DIR]`: the repository's pipeline, run here with no server.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use slipway_engine::{ApprovalRequest, Approver, Decision, ExecutionRequest, run_execution};
use slipway_model::Status;
use slipway_spec::pipeline::{self, ExecutorChoice, Pipeline};
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;

use super::build::project_name;
use super::setup::{self, ExecArgs, ExecutorArg};
use super::{UsageError, files, render};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository (default: the current directory).
    dir: Option<PathBuf>,
    /// Run the pipeline at this git revision (branch, tag or commit) instead of the working tree.
    #[arg(long, value_name = "REV")]
    revision: Option<String>,
    /// Answer approval actions: `all`, an action name, or `stage/action` (repeatable).
    #[arg(long, value_name = "all|NAME")]
    approve: Vec<String>,
    /// Which pipeline, when the repository has several.
    #[arg(long, value_name = "NAME")]
    pipeline: Option<String>,
    /// A pipeline variable's value (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = setup::parse_kv)]
    variables: Vec<(String, String)>,
    #[command(flatten)]
    exec: ExecArgs,
}

pub async fn run(args: Args, data: &Path) -> anyhow::Result<ExitCode> {
    let dir = files::directory(args.dir.as_deref())?;

    // A revision is exported to a directory of its own; its pipeline file is the one that runs.
    let mut _export = None;
    let (source, revision) = match &args.revision {
        Some(rev) => {
            let (tmp, sha) = export_revision(&dir, rev, data)?;
            let p = tmp.path().to_path_buf();
            _export = Some(tmp);
            (p, Some(sha))
        }
        None => (dir.clone(), head_of(&dir)),
    };

    let candidates = files::pipeline_files(&source);
    let mut pipelines: Vec<Pipeline> = Vec::new();
    let mut bad = false;
    for f in &candidates {
        match files::load_pipeline(f)? {
            Some(p) => pipelines.push(p),
            None => bad = true,
        }
    }
    if bad {
        return Err(UsageError(String::new()).into());
    }
    let name = project_name(&dir);
    let chosen = if pipelines.is_empty() {
        if source.join("buildspec.yml").is_file() {
            pipeline::implicit(&name, "buildspec.yml")
        } else {
            return Err(UsageError(format!(
                "{}: no .slipway/pipeline.yml, .slipway/pipelines/*.yml or buildspec.yml",
                files::shown(&dir)
            ))
            .into());
        }
    } else {
        match &args.pipeline {
            Some(n) => match pipelines.iter().position(|p| &p.name == n) {
                Some(i) => pipelines.swap_remove(i),
                None => {
                    let names: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
                    return Err(UsageError(format!(
                        "no pipeline `{n}`; this repository has: {}",
                        names.join(", ")
                    ))
                    .into());
                }
            },
            None if pipelines.len() == 1 => pipelines.remove(0),
            None => {
                let names: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
                return Err(UsageError(format!(
                    "several pipelines ({}); pick one with --pipeline",
                    names.join(", ")
                ))
                .into());
            }
        }
    };
    if !files::check_buildspecs(&source, &chosen)? {
        return Err(UsageError(String::new()).into());
    }
    let prompts = Arc::new(Semaphore::new(0));
    let approver = Arc::new(CliApprover {
        approve: args.approve.clone(),
        ask: std::io::stdin().is_terminal(),
        prompts: prompts.clone(),
        asking: Mutex::new(()),
    });
    execute(
        data,
        &args.exec,
        chosen,
        source,
        revision,
        args.variables.clone(),
        approver,
        prompts,
        &name,
    )
    .await
}

/// Runs an execution with the terminal renderer; shared by `build` and `run`.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    data: &Path,
    exec: &ExecArgs,
    pipeline: Pipeline,
    source: PathBuf,
    revision: Option<String>,
    variables: Vec<(String, String)>,
    approver: Arc<dyn Approver>,
    prompts: Arc<Semaphore>,
    project: &str,
) -> anyhow::Result<ExitCode> {
    let engine = setup::engine(data, exec, approver).await?;
    let number = next_number(data, project);
    let execution = format!("{project}#{number}");
    let (events, rx) = slipway_engine::EventSink::channel(execution.clone(), 1024);
    let printer = tokio::spawn(render::consume(rx, exec.json, prompts));
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ninterrupted: stopping builds and removing their containers (Ctrl-C again to quit at once)"
            );
            c2.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let mut p = pipeline;
    if let Some(t) = exec.timeout {
        for s in &mut p.stages {
            for a in &mut s.actions {
                if a.timeout.is_none() {
                    a.timeout = Some(t);
                }
            }
        }
    }
    let req = ExecutionRequest {
        pipeline: p,
        source,
        source_version: revision.clone(),
        revision,
        variables,
        overrides: exec.env.clone(),
        default_image: exec.image.clone(),
        default_executor: exec.executor.map(|e| match e {
            ExecutorArg::Local => ExecutorChoice::Local,
            ExecutorArg::Docker => ExecutorChoice::Docker,
        }),
        privileged: exec.privileged,
        trigger: "cli".into(),
        project: project.to_string(),
        number,
        resume: None,
        gate: None,
    };
    let result = run_execution(&engine, req, events, cancel).await;
    drop(engine);
    let _ = printer.await;
    if !exec.json {
        render::summary(&mut std::io::stdout(), &execution, &result);
    }
    Ok(match result.status {
        Status::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// The next execution number of a project on this machine (`hello#7`).
fn next_number(data: &Path, project: &str) -> u64 {
    let dir = data.join("counters");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(slipway_engine::build::sanitize(project));
    let n = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    let _ = std::fs::write(&path, n.to_string());
    n
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("running git (is it installed?)")
}

/// The commit checked out, when DIR is a git work tree.
fn head_of(dir: &Path) -> Option<String> {
    let out = git(dir, &["rev-parse", "--verify", "-q", "HEAD"]).ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `git archive` of a revision, unpacked into a temporary directory under the data directory.
fn export_revision(
    dir: &Path,
    rev: &str,
    data: &Path,
) -> anyhow::Result<(tempfile::TempDir, String)> {
    let out = git(
        dir,
        &["rev-parse", "--verify", "-q", &format!("{rev}^{{commit}}")],
    )?;
    if !out.status.success() {
        return Err(UsageError(format!(
            "revision `{rev}` not found in {}",
            files::shown(dir)
        ))
        .into());
    }
    let sha = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::fs::create_dir_all(data.join("work"))?;
    let tmp = tempfile::Builder::new()
        .prefix("rev-")
        .tempdir_in(data.join("work"))?;
    let mut child = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["archive", "--format=tar", &sha])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running git archive")?;
    let stdout = child.stdout.take().context("git archive's output")?;
    tar::Archive::new(stdout)
        .unpack(tmp.path())
        .context("unpacking git archive")?;
    let st = child.wait()?;
    anyhow::ensure!(st.success(), "git archive {sha} failed");
    Ok((tmp, sha))
}

/// Approvals for `slipway build`, which has no approval actions.
pub struct NoApprover;

#[async_trait]
impl Approver for NoApprover {
    async fn decide(&self, _: &ApprovalRequest) -> Decision {
        Decision {
            approved: false,
            timed_out: false,
            by: "slipway".into(),
            comment: Some("no approver".into()),
        }
    }
}

/// `--approve` answers first; then a question at the terminal; else a rejection that says why.
struct CliApprover {
    approve: Vec<String>,
    ask: bool,
    /// A permit per approval the renderer has shown (with its spinner taken down).
    prompts: Arc<Semaphore>,
    /// One question at a time, when approvals in parallel actions wait together.
    asking: Mutex<()>,
}

#[async_trait]
impl Approver for CliApprover {
    async fn decide(&self, request: &ApprovalRequest) -> Decision {
        let (stage, action, message) = (
            request.stage.as_str(),
            request.action.as_str(),
            request.message.as_deref(),
        );
        let full = format!("{stage}/{action}");
        if self
            .approve
            .iter()
            .any(|a| a == "all" || a == action || *a == full)
        {
            return Decision {
                approved: true,
                timed_out: false,
                by: "--approve".into(),
                comment: None,
            };
        }
        if !self.ask {
            return Decision {
                approved: false,
                timed_out: false,
                by: "slipway run".into(),
                comment: Some(format!(
                    "no terminal to ask; pass --approve {action} or --approve all"
                )),
            };
        }
        let _one_at_a_time = self.asking.lock().await;
        if let Ok(shown) = self.prompts.acquire().await {
            shown.forget();
        }
        let prompt = format!(
            "Approve {full}{}? [y/N] ",
            message.map(|m| format!(" ({m})")).unwrap_or_default()
        );
        let answer = tokio::task::spawn_blocking(move || {
            let mut err = std::io::stderr();
            let _ = write!(err, "{prompt}");
            let _ = err.flush();
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            line
        })
        .await
        .unwrap_or_default();
        let yes = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
        let user = std::env::var("USER").unwrap_or_else(|_| "terminal".into());
        Decision {
            approved: yes,
            timed_out: false,
            by: user,
            comment: None,
        }
    }
}
