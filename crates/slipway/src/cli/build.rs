//! `slipway build [DIR]`: one buildspec, run with CodeBuild's semantics (and its batch, if any).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use slipway_spec::pipeline;

use super::UsageError;
use super::files;
use super::run::{NoApprover, execute};
use super::setup::ExecArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The source directory (default: the current directory).
    dir: Option<PathBuf>,
    /// The buildspec, relative to DIR (default: buildspec.yml).
    #[arg(long, value_name = "FILE")]
    buildspec: Option<PathBuf>,
    #[command(flatten)]
    exec: ExecArgs,
}

pub async fn run(args: Args, data: &Path) -> anyhow::Result<ExitCode> {
    let dir = files::directory(args.dir.as_deref())?;
    let rel = args
        .buildspec
        .clone()
        .unwrap_or_else(|| PathBuf::from("buildspec.yml"));
    let path = if rel.is_absolute() {
        rel.clone()
    } else {
        dir.join(&rel)
    };
    if !path.is_file() {
        return Err(UsageError(format!(
            "{}: no buildspec here (give one with --buildspec)",
            files::shown(&path)
        ))
        .into());
    }
    let Some(_) = files::load_buildspec(&path)? else {
        return Err(UsageError(String::new()).into());
    };
    let name = project_name(&dir);
    let shown_rel = path
        .strip_prefix(&dir)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.display().to_string());
    let mut p = pipeline::implicit(&name, &shown_rel);
    // A buildspec outside DIR is read from where it is.
    if !path.starts_with(&dir) {
        for s in &mut p.stages {
            for a in &mut s.actions {
                if let pipeline::ActionKind::Build(b) = &mut a.kind {
                    b.buildspec = path.display().to_string();
                }
            }
        }
    }
    execute(
        data,
        &args.exec,
        p,
        dir,
        None,
        Vec::new(),
        std::sync::Arc::new(NoApprover),
        std::sync::Arc::new(tokio::sync::Semaphore::new(0)),
        &name,
    )
    .await
}

/// A project's name from its directory.
pub fn project_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "project".into())
}
