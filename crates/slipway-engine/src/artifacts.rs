//! Artifacts: choosing files by the buildspec's globs and packing them into the blob store.
//!
//! The selection rules follow CodeBuild's `artifacts` section:
//! - `files` are globs relative to `base-directory` (or the workspace root). `*` stays within
//!   one directory, `**` crosses directories, so `**/*` is everything below the base.
//! - A pattern without glob characters that names a directory selects everything under it
//!   (`dist` acts as `dist/**/*`). CodeBuild wants the explicit `dist/**/*`; taking the plain
//!   directory too is a deliberate leniency, and a buildspec written for AWS means the same here.
//! - `base-directory` is relative to the workspace and may itself be a glob over directories
//!   (`my-build*`): every matching directory contributes, each file's path taken relative to
//!   the directory it was found in.
//! - `exclude-paths` are globs relative to the base directory and win over `files`; an excluded
//!   directory excludes everything under it.
//! - `discard-paths` keeps only file names. When two files then share a name, the one later in
//!   path order wins (CodeBuild overwrites too), so the result is still deterministic.
//! - Nothing outside the workspace is ever read: patterns with `..` or a leading `/` are
//!   rejected; a symlink is packed as its target's content only when that target is a file
//!   inside the workspace, and skipped with a warning otherwise.
//! - Matching nothing is an error, as CodeBuild fails with "no matching artifact paths found".

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use slipway_model::Digest;
use slipway_store::{BlobStore, StoreError, SyncBlobWriter};
use tar::{Header, HeaderMode};
use walkdir::WalkDir;

/// What to take from a workspace: the buildspec's `artifacts` (or a `reports` group) fields.
#[derive(Clone, Copy, Debug, Default)]
pub struct Selection<'a> {
    pub files: &'a [String],
    pub base_directory: Option<&'a str>,
    pub discard_paths: bool,
    pub exclude_paths: &'a [String],
}

/// One selected file: where it is on the host and where it goes in the artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactFile {
    /// Absolute host path, inside the workspace (a symlink's resolved target).
    pub source: PathBuf,
    /// Relative path inside the artifact, `/`-separated, without `.` or `..`.
    pub dest: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact path `{pattern}`: {reason}")]
    BadPattern {
        pattern: String,
        reason: &'static str,
    },
    #[error("artifact path `{pattern}` is not a valid glob: {source}")]
    Glob {
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("no matching base directory path found for `{0}`")]
    NoBaseDirectory(String),
    #[error("no matching artifact paths found for {}{}", quoted(.files), base_note(.base_directory))]
    NoMatch {
        files: Vec<String>,
        base_directory: Option<String>,
    },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("storing the artifact: {0}")]
    Store(#[from] StoreError),
    #[error("the artifact packing task failed: {0}")]
    Task(String),
}

fn quoted(patterns: &[String]) -> String {
    if patterns.is_empty() {
        return "(no files listed)".to_string();
    }
    let q: Vec<String> = patterns.iter().map(|p| format!("`{p}`")).collect();
    q.join(", ")
}

fn base_note(base: &Option<String>) -> String {
    base.as_ref()
        .map(|b| format!(" in base directory `{b}`"))
        .unwrap_or_default()
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ArtifactError + 'a {
    move |source| ArtifactError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Chooses the files a [`Selection`] names in `workspace`, sorted by `dest`.
pub fn select(workspace: &Path, sel: &Selection) -> Result<Vec<ArtifactFile>, ArtifactError> {
    let no_match = || ArtifactError::NoMatch {
        files: sel.files.to_vec(),
        base_directory: sel.base_directory.map(str::to_string),
    };
    let files = Patterns::new(sel.files, Expand::LiteralDirectories)?;
    let excludes = Patterns::new(sel.exclude_paths, Expand::All)?;
    if sel.files.is_empty() {
        return Err(no_match());
    }
    let workspace = workspace
        .canonicalize()
        .map_err(io_err("open workspace", workspace))?;
    let bases = base_directories(&workspace, sel.base_directory)?;

    // Keyed by dest so that a later file with the same dest replaces an earlier one.
    let mut chosen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for base in &bases {
        walk_base(&workspace, base, &files, &excludes, |rel, source| {
            let dest = if sel.discard_paths {
                rel.rsplit('/').next().unwrap_or(rel).to_string()
            } else {
                rel.to_string()
            };
            chosen.insert(dest, source);
        })?;
    }
    if chosen.is_empty() {
        return Err(no_match());
    }
    Ok(chosen
        .into_iter()
        .map(|(dest, source)| ArtifactFile { source, dest })
        .collect())
}

/// Whether a pattern naming a directory also takes everything under it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expand {
    /// Only patterns without glob characters (so `*` keeps meaning "top-level files").
    LiteralDirectories,
    /// Every pattern: an excluded directory excludes its contents.
    All,
}

/// A compiled list of user patterns, plus the literal directory each one starts with, which
/// lets the walk skip subtrees no pattern can reach (`target/**/*` never enters node_modules).
struct Patterns {
    set: GlobSet,
    prefixes: Vec<String>,
}

impl Patterns {
    fn new(patterns: &[String], expand: Expand) -> Result<Self, ArtifactError> {
        let mut builder = GlobSetBuilder::new();
        let mut prefixes = Vec::new();
        for raw in patterns {
            let clean = clean_relative(raw)?;
            let clean = if clean.is_empty() {
                "**".to_string()
            } else {
                clean
            };
            let literal = !has_glob_meta(&clean);
            builder.add(glob(raw, &clean)?);
            if expand == Expand::All || literal {
                builder.add(glob(raw, &format!("{clean}/**"))?);
            }
            let prefix: Vec<&str> = clean.split('/').take_while(|c| !has_glob_meta(c)).collect();
            prefixes.push(prefix.join("/"));
        }
        let set = builder.build().map_err(|source| ArtifactError::Glob {
            pattern: patterns.join(", "),
            source,
        })?;
        Ok(Self { set, prefixes })
    }

    fn is_match(&self, rel: &str) -> bool {
        self.set.is_match(rel)
    }

    /// Whether anything under directory `rel` could match.
    fn may_enter(&self, rel: &str) -> bool {
        self.prefixes.iter().any(|p| {
            p.is_empty()
                || p == rel
                || p.strip_prefix(rel).is_some_and(|r| r.starts_with('/'))
                || rel
                    .strip_prefix(p.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
    }
}

fn glob(raw: &str, pattern: &str) -> Result<Glob, ArtifactError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|source| ArtifactError::Glob {
            pattern: raw.to_string(),
            source,
        })
}

fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Normalises a user path or glob to `a/b/c` form (no `.`, no empty components), refusing
/// anything that could point outside its base.
fn clean_relative(raw: &str) -> Result<String, ArtifactError> {
    let bad = |reason| ArtifactError::BadPattern {
        pattern: raw.to_string(),
        reason,
    };
    if raw.trim().is_empty() {
        return Err(bad("is empty"));
    }
    if raw.starts_with('/') || raw.starts_with('\\') || Path::new(raw).is_absolute() {
        return Err(bad(
            "is absolute; artifact paths are relative to the workspace",
        ));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("goes outside its base with `..`")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The directories named by `base-directory`, sorted, each canonical and inside the workspace.
fn base_directories(workspace: &Path, base: Option<&str>) -> Result<Vec<PathBuf>, ArtifactError> {
    let Some(raw) = base else {
        return Ok(vec![workspace.to_path_buf()]);
    };
    let clean = clean_relative(raw)?;
    if clean.is_empty() {
        return Ok(vec![workspace.to_path_buf()]);
    }
    let missing = || ArtifactError::NoBaseDirectory(raw.to_string());
    if !has_glob_meta(&clean) {
        let dir = workspace.join(&clean);
        return match inside(workspace, &dir) {
            Some(dir) if dir.is_dir() => Ok(vec![dir]),
            _ => Err(missing()),
        };
    }
    let matcher = glob(raw, &clean)?.compile_matcher();
    let depth = clean.split('/').count();
    let mut dirs = Vec::new();
    for entry in WalkDir::new(workspace)
        .min_depth(1)
        .max_depth(depth)
        .sort_by_file_name()
    {
        let entry = entry.map_err(walk_err(workspace))?;
        let Some(rel) = rel_str(workspace, entry.path()) else {
            continue;
        };
        if !matcher.is_match(&rel) {
            continue;
        }
        // A symlinked base directory counts only when it stays inside the workspace.
        if let Some(dir) = inside(workspace, entry.path())
            && dir.is_dir()
        {
            dirs.push(dir);
        }
    }
    if dirs.is_empty() {
        return Err(missing());
    }
    Ok(dirs)
}

/// `path` resolved, if it exists and resolves inside `workspace` (already canonical).
fn inside(workspace: &Path, path: &Path) -> Option<PathBuf> {
    let real = path.canonicalize().ok()?;
    real.starts_with(workspace).then_some(real)
}

fn walk_err(root: &Path) -> impl FnOnce(walkdir::Error) -> ArtifactError + '_ {
    move |e| {
        let path = e.path().unwrap_or(root).to_path_buf();
        let source = e
            .into_io_error()
            .unwrap_or_else(|| io::Error::other("filesystem loop"));
        ArtifactError::Io {
            op: "list",
            path,
            source,
        }
    }
}

/// `path` relative to `base` as a `/`-separated string; None for names that are not UTF-8,
/// which globs cannot name reliably.
fn rel_str(base: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(base).ok()?;
    let mut out = String::new();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return None;
        };
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(name.to_str()?);
    }
    Some(out)
}

fn walk_base(
    workspace: &Path,
    base: &Path,
    files: &Patterns,
    excludes: &Patterns,
    mut take: impl FnMut(&str, PathBuf),
) -> Result<(), ArtifactError> {
    let walker = WalkDir::new(base)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            if !e.file_type().is_dir() {
                return true;
            }
            match rel_str(base, e.path()) {
                Some(rel) => files.may_enter(&rel) && !excludes.is_match(&rel),
                None => false,
            }
        });
    for entry in walker {
        let entry = entry.map_err(walk_err(base))?;
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        let Some(rel) = rel_str(base, entry.path()) else {
            tracing::warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        if !files.is_match(&rel) || excludes.is_match(&rel) {
            continue;
        }
        if ft.is_file() {
            take(&rel, entry.path().to_path_buf());
        } else if ft.is_symlink() {
            match inside(workspace, entry.path()) {
                Some(target) if target.is_file() => take(&rel, target),
                // Debug, not warn: pnpm-style trees hold thousands of these.
                Some(_) => tracing::debug!(
                    path = %entry.path().display(),
                    "skipping a symlink to a directory; list the directory's own path instead"
                ),
                None => tracing::warn!(
                    path = %entry.path().display(),
                    "skipping a symlink that is broken or points outside the workspace"
                ),
            }
        }
        // Sockets, fifos and devices are not artifacts.
    }
    Ok(())
}

/// Packs `files` into one tar blob in the store: entries in `dest` order, with fixed mtimes,
/// owners and modes (0644, or 0755 when executable), so the same files give the same digest.
/// Returns the tar's digest and size.
pub async fn pack(
    store: &BlobStore,
    files: &[ArtifactFile],
) -> Result<(Digest, u64), ArtifactError> {
    let writer = store.sync_writer()?;
    let mut files = files.to_vec();
    // Stable sort keeps input order among equal dests; the last of them wins, as in `select`.
    files.sort_by(|a, b| a.dest.cmp(&b.dest));
    files.reverse();
    files.dedup_by(|later, earlier| later.dest == earlier.dest);
    files.reverse();
    tokio::task::spawn_blocking(move || pack_blocking(writer, &files))
        .await
        .map_err(|e| ArtifactError::Task(e.to_string()))?
}

fn pack_blocking(
    writer: SyncBlobWriter,
    files: &[ArtifactFile],
) -> Result<(Digest, u64), ArtifactError> {
    let mut tar = tar::Builder::new(writer);
    tar.mode(HeaderMode::Deterministic);
    for f in files {
        check_dest(&f.dest)?;
        let file = File::open(&f.source).map_err(io_err("open", &f.source))?;
        let meta = file.metadata().map_err(io_err("stat", &f.source))?;
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(&meta, HeaderMode::Deterministic);
        header.set_size(meta.len());
        let body = Exact {
            inner: file,
            left: meta.len(),
        };
        tar.append_data(&mut header, &f.dest, body)
            .map_err(io_err("pack", &f.source))?;
    }
    let writer = tar.into_inner().map_err(|source| ArtifactError::Io {
        op: "finish the tar of",
        path: PathBuf::from("artifact"),
        source,
    })?;
    Ok(writer.finish()?)
}

/// Reads exactly `left` bytes: a file that shrinks while packed would otherwise leave a tar
/// whose header promises more data than follows.
struct Exact {
    inner: File,
    left: u64,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being packed",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// `ArtifactFile` has public fields, so a dest may not have come from `select`.
fn check_dest(dest: &str) -> Result<(), ArtifactError> {
    let clean = clean_relative(dest)?;
    if clean.is_empty() {
        return Err(ArtifactError::BadPattern {
            pattern: dest.to_string(),
            reason: "names no file",
        });
    }
    Ok(())
}

/// Copies `files` into `dir` at their dests (for `slipway run` on a laptop, where an artifact
/// is a directory). Returns how many files were copied.
pub fn copy_to_dir(files: &[ArtifactFile], dir: &Path) -> Result<u64, ArtifactError> {
    let mut copied = 0;
    for f in files {
        check_dest(&f.dest)?;
        let target = dir.join(&f.dest);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
        }
        std::fs::copy(&f.source, &target).map_err(io_err("copy", &f.source))?;
        copied += 1;
    }
    Ok(copied)
}

#[cfg(test)]
pub(crate) mod test_dir {
    //! A self-removing temporary directory (the engine has no tempfile dev-dependency).

    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    pub struct TestDir(PathBuf);

    impl TestDir {
        pub fn new() -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "slipway-engine-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }

        /// Writes `content` to `rel`, creating parent directories.
        pub fn file(&self, rel: &str, content: &str) -> PathBuf {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
            p
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_dir::TestDir;
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// A small build output tree used by most cases.
    fn tree() -> TestDir {
        let t = TestDir::new();
        for f in [
            "README.txt",
            "notes.txt",
            "src/main.rs",
            "src/lib/util.rs",
            "src/lib/notes.txt",
            "target/app.jar",
            "target/classes/A.class",
            "target/classes/B.class",
            "target/tmp/scratch.log",
            "my-build-1/out/x.bin",
            "my-build-2/out/y.bin",
            "my-build-2/readme.md",
            "other/z.bin",
        ] {
            t.file(f, f);
        }
        t
    }

    /// Selects with the given fields and returns the dests.
    fn check(
        t: &TestDir,
        files: &[&str],
        base: Option<&str>,
        discard: bool,
        exclude: &[&str],
    ) -> Vec<String> {
        let (files, exclude) = (s(files), s(exclude));
        let sel = Selection {
            files: &files,
            base_directory: base,
            discard_paths: discard,
            exclude_paths: &exclude,
        };
        select(t.path(), &sel)
            .unwrap()
            .into_iter()
            .map(|f| f.dest)
            .collect()
    }

    fn check_err(
        t: &TestDir,
        files: &[&str],
        base: Option<&str>,
        exclude: &[&str],
    ) -> ArtifactError {
        let (files, exclude) = (s(files), s(exclude));
        let sel = Selection {
            files: &files,
            base_directory: base,
            discard_paths: false,
            exclude_paths: &exclude,
        };
        select(t.path(), &sel).unwrap_err()
    }

    #[test]
    fn double_star_takes_everything_sorted() {
        let t = tree();
        let all = check(&t, &["**/*"], None, false, &[]);
        assert_eq!(all.len(), 13);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert!(all.contains(&"src/lib/util.rs".to_string()));
        assert!(all.contains(&"README.txt".to_string()));
    }

    #[test]
    fn single_star_stays_in_one_directory() {
        let t = tree();
        assert_eq!(
            check(&t, &["*.txt"], None, false, &[]),
            ["README.txt", "notes.txt"]
        );
        assert_eq!(
            check(&t, &["src/*"], None, false, &[]),
            ["src/main.rs"],
            "`*` matches files, and does not descend into src/lib"
        );
        assert_eq!(
            check(&t, &["**/*.txt"], None, false, &[]),
            ["README.txt", "notes.txt", "src/lib/notes.txt"]
        );
    }

    #[test]
    fn plain_paths_name_files_and_directories() {
        let t = tree();
        assert_eq!(
            check(&t, &["target/app.jar"], None, false, &[]),
            ["target/app.jar"]
        );
        assert_eq!(
            check(&t, &["./target/app.jar"], None, false, &[]),
            ["target/app.jar"]
        );
        assert_eq!(
            check(&t, &["target/classes"], None, false, &[]),
            ["target/classes/A.class", "target/classes/B.class"]
        );
        assert_eq!(
            check(&t, &["target/classes/"], None, false, &[]),
            ["target/classes/A.class", "target/classes/B.class"]
        );
    }

    #[test]
    fn base_directory_makes_dests_relative() {
        let t = tree();
        assert_eq!(
            check(&t, &["**/*"], Some("target"), false, &[]),
            [
                "app.jar",
                "classes/A.class",
                "classes/B.class",
                "tmp/scratch.log"
            ]
        );
        assert_eq!(
            check(&t, &["*.jar"], Some("./target/"), false, &[]),
            ["app.jar"]
        );
    }

    #[test]
    fn base_directory_glob_takes_every_matching_directory() {
        let t = tree();
        assert_eq!(
            check(&t, &["**/*"], Some("my-build*"), false, &[]),
            ["out/x.bin", "out/y.bin", "readme.md"]
        );
        assert_eq!(
            check(&t, &["out/*"], Some("my-build-[2]"), false, &[]),
            ["out/y.bin"]
        );
    }

    #[test]
    fn missing_base_directory_is_an_error() {
        let t = tree();
        let e = check_err(&t, &["**/*"], Some("nope"), &[]);
        assert!(matches!(e, ArtifactError::NoBaseDirectory(_)), "{e}");
        let e = check_err(&t, &["**/*"], Some("zz-*"), &[]);
        assert_eq!(
            e.to_string(),
            "no matching base directory path found for `zz-*`"
        );
        let e = check_err(&t, &["**/*"], Some("README.txt"), &[]);
        assert!(
            matches!(e, ArtifactError::NoBaseDirectory(_)),
            "a file is not a base directory"
        );
    }

    #[test]
    fn discard_paths_keeps_names_and_the_later_file_wins() {
        let t = tree();
        assert_eq!(
            check(&t, &["target/classes/*"], None, true, &[]),
            ["A.class", "B.class"]
        );
        let picked = select(
            t.path(),
            &Selection {
                files: &s(&["**/notes.txt"]),
                discard_paths: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].dest, "notes.txt");
        assert!(
            picked[0].source.ends_with("src/lib/notes.txt"),
            "src/lib/notes.txt sorts after notes.txt and overwrites it: {:?}",
            picked[0].source
        );
    }

    #[test]
    fn exclude_paths_win_over_files() {
        let t = tree();
        assert_eq!(
            check(&t, &["**/*"], Some("target"), false, &["tmp/**/*", "*.jar"]),
            ["classes/A.class", "classes/B.class"]
        );
        assert_eq!(
            check(&t, &["target/**/*"], None, false, &["target/classes"]),
            ["target/app.jar", "target/tmp/scratch.log"],
            "an excluded directory excludes its contents"
        );
        let e = check_err(&t, &["*.txt"], None, &["*"]);
        assert!(matches!(e, ArtifactError::NoMatch { .. }), "{e}");
    }

    #[test]
    fn paths_leaving_the_workspace_are_rejected() {
        let t = tree();
        for (files, base, exclude) in [
            (&["../etc/passwd"][..], None, &[][..]),
            (&["src/../../x"], None, &[]),
            (&["/etc/passwd"], None, &[]),
            (&["**/*"], Some("../"), &[]),
            (&["**/*"], Some("/tmp"), &[]),
            (&["**/*"], None, &["../x"]),
        ] {
            let e = check_err(&t, files, base, exclude);
            assert!(
                matches!(e, ArtifactError::BadPattern { .. }),
                "{files:?} {base:?}: {e}"
            );
        }
        let e = check_err(&t, &["../etc/passwd"], None, &[]);
        assert_eq!(
            e.to_string(),
            "artifact path `../etc/passwd`: goes outside its base with `..`"
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_only_inside_the_workspace() {
        let t = tree();
        let outside = TestDir::new();
        let secret = outside.file("secret.txt", "secret");
        std::os::unix::fs::symlink(&secret, t.path().join("target/escape.txt")).unwrap();
        std::os::unix::fs::symlink("app.jar", t.path().join("target/alias.jar")).unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("target/outdir")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", t.path().join("target/broken")).unwrap();
        let picked = select(
            t.path(),
            &Selection {
                files: &s(&["target/**/*"]),
                ..Default::default()
            },
        )
        .unwrap();
        let dests: Vec<&str> = picked.iter().map(|f| f.dest.as_str()).collect();
        assert!(!dests.contains(&"target/escape.txt"), "{dests:?}");
        assert!(
            !dests.iter().any(|d| d.starts_with("target/outdir")),
            "{dests:?}"
        );
        assert!(!dests.contains(&"target/broken"), "{dests:?}");
        let alias = picked
            .iter()
            .find(|f| f.dest == "target/alias.jar")
            .unwrap();
        assert!(alias.source.ends_with("target/app.jar"));

        // A symlinked base directory that leaves the workspace is not a base directory.
        std::os::unix::fs::symlink(outside.path(), t.path().join("out-link")).unwrap();
        let e = check_err(&t, &["**/*"], Some("out-link"), &[]);
        assert!(matches!(e, ArtifactError::NoBaseDirectory(_)), "{e}");
    }

    #[test]
    fn matching_nothing_is_an_error_naming_the_patterns() {
        let t = tree();
        let e = check_err(&t, &["*.war", "dist/**/*"], Some("target"), &[]);
        assert_eq!(
            e.to_string(),
            "no matching artifact paths found for `*.war`, `dist/**/*` in base directory `target`"
        );
        let e = check_err(&t, &[], None, &[]);
        assert!(matches!(e, ArtifactError::NoMatch { .. }));
    }

    #[test]
    fn invalid_glob_is_an_error() {
        let t = tree();
        let e = check_err(&t, &["src/[a"], None, &[]);
        assert!(matches!(e, ArtifactError::Glob { .. }), "{e}");
    }

    fn tar_listing(path: &Path) -> Vec<(String, String, u32)> {
        let mut archive = tar::Archive::new(File::open(path).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mode = e.header().mode().unwrap();
                let mut body = String::new();
                e.read_to_string(&mut body).unwrap();
                (name, body, mode)
            })
            .collect()
    }

    #[tokio::test]
    async fn pack_writes_a_deterministic_tar_of_the_dests() {
        let t = tree();
        let store_dir = TestDir::new();
        let store = BlobStore::open(store_dir.path()).unwrap();
        let files = select(
            t.path(),
            &Selection {
                files: &s(&["**/*"]),
                base_directory: Some("target"),
                ..Default::default()
            },
        )
        .unwrap();
        let (d, n) = pack(&store, &files).await.unwrap();
        assert_eq!(store.size(&d).await.unwrap(), n);
        let listing = tar_listing(&store.path(&d));
        let names: Vec<&str> = listing.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "app.jar",
                "classes/A.class",
                "classes/B.class",
                "tmp/scratch.log"
            ]
        );
        assert_eq!(listing[0].1, "target/app.jar", "content is the file's");
        assert_eq!(listing[0].2, 0o644);

        // Same files, new mtimes, shuffled input: same digest.
        std::fs::write(t.path().join("target/app.jar"), "target/app.jar").unwrap();
        let mut shuffled = files.clone();
        shuffled.reverse();
        let (d2, _) = pack(&store, &shuffled).await.unwrap();
        assert_eq!(d, d2);
    }

    #[tokio::test]
    async fn pack_keeps_long_names() {
        let t = TestDir::new();
        let long = format!("{}/{}.txt", "d".repeat(120), "f".repeat(120));
        t.file(&long, "x");
        let store_dir = TestDir::new();
        let store = BlobStore::open(store_dir.path()).unwrap();
        let files = select(
            t.path(),
            &Selection {
                files: &s(&["**/*"]),
                ..Default::default()
            },
        )
        .unwrap();
        let (d, _) = pack(&store, &files).await.unwrap();
        assert_eq!(tar_listing(&store.path(&d))[0].0, long);
    }

    #[tokio::test]
    async fn pack_refuses_an_escaping_dest() {
        let t = tree();
        let store_dir = TestDir::new();
        let store = BlobStore::open(store_dir.path()).unwrap();
        let files = [ArtifactFile {
            source: t.path().join("README.txt"),
            dest: "../evil".into(),
        }];
        let e = pack(&store, &files).await.unwrap_err();
        assert!(matches!(e, ArtifactError::BadPattern { .. }), "{e}");
    }

    #[test]
    fn copy_to_dir_recreates_the_dests() {
        let t = tree();
        let out = TestDir::new();
        let files = select(
            t.path(),
            &Selection {
                files: &s(&["target/classes/*", "*.txt"]),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(copy_to_dir(&files, out.path()).unwrap(), 4);
        assert_eq!(
            std::fs::read_to_string(out.path().join("target/classes/B.class")).unwrap(),
            "target/classes/B.class"
        );
        assert!(out.path().join("notes.txt").is_file());
    }
}
