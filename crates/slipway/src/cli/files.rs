//! Finding and reading a repository's pipeline and buildspec files, with diagnostics printed
//! the same way for `validate`, `build` and `run`.

use std::path::{Path, PathBuf};

use slipway_spec::{Diagnostic, buildspec, pipeline};

/// What kind of file a path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Pipeline,
    Buildspec,
}

/// Guesses a file's kind from its path, then from its top-level keys.
pub fn kind_of(path: &Path, text: &str) -> FileKind {
    let p = path.to_string_lossy();
    if p.contains(".slipway/") || p.contains("pipeline") {
        return FileKind::Pipeline;
    }
    if p.contains("buildspec") {
        return FileKind::Buildspec;
    }
    if text.lines().any(|l| l.starts_with("stages:")) {
        FileKind::Pipeline
    } else {
        FileKind::Buildspec
    }
}

/// Prints diagnostics to stderr; returns whether there was an error among them.
pub fn report(shown: &str, diags: &[Diagnostic]) -> bool {
    for d in diags {
        eprintln!("{}", d.render(shown));
    }
    diags.iter().any(Diagnostic::is_error)
}

/// A path as the user should see it: relative to the current directory when below it.
pub fn shown(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The directory a command works on (default: the current one), made absolute; a missing one
/// is a usage error naming it.
pub fn directory(arg: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = arg.unwrap_or(Path::new("."));
    std::fs::canonicalize(dir)
        .map_err(|e| anyhow::Error::new(super::UsageError(format!("{}: {e}", dir.display()))))
}

pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::Error::new(super::UsageError(format!("{}: {e}", shown(path)))))
}

/// The pipeline files of a repository: `.slipway/pipeline.yml` and `.slipway/pipelines/*.yml`.
pub fn pipeline_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for name in ["pipeline.yml", "pipeline.yaml"] {
        let p = repo.join(".slipway").join(name);
        if p.is_file() {
            out.push(p);
        }
    }
    if let Ok(rd) = std::fs::read_dir(repo.join(".slipway/pipelines")) {
        let mut more: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
            .collect();
        more.sort();
        out.extend(more);
    }
    out
}

/// Parses a pipeline file, printing its diagnostics; `None` when it has errors.
pub fn load_pipeline(path: &Path) -> anyhow::Result<Option<pipeline::Pipeline>> {
    let text = read(path)?;
    let (p, diags) = pipeline::parse(&text);
    let bad = report(&shown(path), &diags);
    Ok(if bad { None } else { p })
}

/// Parses a buildspec file, printing its diagnostics; `None` when it has errors.
pub fn load_buildspec(path: &Path) -> anyhow::Result<Option<buildspec::Buildspec>> {
    let text = read(path)?;
    let (b, diags) = buildspec::parse(&text);
    let bad = report(&shown(path), &diags);
    Ok(if bad { None } else { b })
}

/// The buildspec files a pipeline's build actions name (relative to the repository).
pub fn buildspecs_of(p: &pipeline::Pipeline) -> Vec<String> {
    let mut v = Vec::new();
    for s in &p.stages {
        for a in &s.actions {
            if let pipeline::ActionKind::Build(b) = &a.kind
                && !v.contains(&b.buildspec)
            {
                v.push(b.buildspec.clone());
            }
        }
    }
    v
}

/// Validates every buildspec a pipeline names, including batch entries' own buildspecs.
/// Returns false when any has an error or is missing.
pub fn check_buildspecs(repo: &Path, p: &pipeline::Pipeline) -> anyhow::Result<bool> {
    let mut ok = true;
    for rel in buildspecs_of(p) {
        let path = repo.join(&rel);
        if !path.is_file() {
            eprintln!(
                "{}: error: buildspec `{rel}` named by pipeline `{}` does not exist",
                shown(&path),
                p.name
            );
            ok = false;
            continue;
        }
        match load_buildspec(&path)? {
            None => ok = false,
            Some(bs) => {
                if let Some(batch) = &bs.batch {
                    use slipway_spec::buildspec::BatchKind;
                    if let BatchKind::List(l) | BatchKind::Graph(l) = &batch.kind {
                        for b in l {
                            if let Some(other) = &b.buildspec {
                                let op = repo.join(other);
                                if !op.is_file() {
                                    eprintln!(
                                        "{}: error: buildspec of batch build `{}` does not exist",
                                        shown(&op),
                                        b.identifier
                                    );
                                    ok = false;
                                } else if load_buildspec(&op)?.is_none() {
                                    ok = false;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(ok)
}
