//! `slipway validate [PATH]...`: checks files (or whole repositories) and reports every problem.

use std::path::PathBuf;
use std::process::ExitCode;

use super::UsageError;
use super::files::{self, FileKind};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files, or repository directories (default: the current directory).
    paths: Vec<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
    };
    let mut checked = 0;
    let mut bad = 0;
    for path in paths {
        if path.is_dir() {
            let pipelines = files::pipeline_files(&path);
            let mut buildspecs: Vec<PathBuf> = Vec::new();
            for p in &pipelines {
                checked += 1;
                match files::load_pipeline(p)? {
                    Some(pl) => {
                        for rel in files::buildspecs_of(&pl) {
                            let bp = path.join(&rel);
                            if !bp.is_file() {
                                eprintln!(
                                    "{}: error: buildspec `{rel}` named by pipeline `{}` does not exist",
                                    files::shown(&bp),
                                    pl.name
                                );
                                bad += 1;
                            } else if !buildspecs.contains(&bp) {
                                buildspecs.push(bp);
                            }
                        }
                    }
                    None => bad += 1,
                }
            }
            let root_bs = path.join("buildspec.yml");
            if root_bs.is_file() && !buildspecs.contains(&root_bs) {
                buildspecs.push(root_bs);
            }
            if pipelines.is_empty() && buildspecs.is_empty() {
                eprintln!(
                    "{}: error: no .slipway/pipeline.yml, .slipway/pipelines/*.yml or buildspec.yml here",
                    files::shown(&path)
                );
                bad += 1;
            }
            for b in buildspecs {
                checked += 1;
                if files::load_buildspec(&b)?.is_none() {
                    bad += 1;
                }
            }
        } else if path.is_file() {
            checked += 1;
            let text = files::read(&path)?;
            let ok = match files::kind_of(&path, &text) {
                FileKind::Pipeline => files::load_pipeline(&path)?.is_some(),
                FileKind::Buildspec => files::load_buildspec(&path)?.is_some(),
            };
            if !ok {
                bad += 1;
            }
        } else {
            return Err(
                UsageError(format!("{}: no such file or directory", path.display())).into(),
            );
        }
    }
    if bad > 0 {
        eprintln!("{bad} of {checked} file(s) invalid");
        Ok(ExitCode::from(2))
    } else {
        println!("ok: {checked} file(s) valid");
        Ok(ExitCode::SUCCESS)
    }
}
