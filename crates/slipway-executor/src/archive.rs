//! Tar packing and careful unpacking on the host (blocking; call from `spawn_blocking`).
//!
//! Unpacking refuses, rather than skips, any entry that could write outside the target:
//! absolute paths, `..`, and links whose target leaves the root. Archives come from
//! build containers, which run user code, so they are untrusted.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Component, Path, PathBuf};

use crate::ExecutorError;

/// Packs `src` (file or directory) into a tar at `dest`, entries named from `src`'s last
/// component (as `docker cp` does). Symlinks are stored as links, never followed.
/// Returns false if `src` does not exist.
pub(crate) fn pack(src: &Path, dest: &Path) -> Result<bool, ExecutorError> {
    let meta = match std::fs::symlink_metadata(src) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(ExecutorError::io(format!("reading {}", src.display()), e)),
    };
    let name: PathBuf = match src.file_name() {
        Some(n) => PathBuf::from(n),
        // `/` or a path ending in `..`: name the root entry `.` like docker does.
        None => PathBuf::from("."),
    };
    let out = File::create(dest)
        .map_err(|e| ExecutorError::io(format!("creating {}", dest.display()), e))?;
    let mut builder = tar::Builder::new(BufWriter::with_capacity(256 * 1024, out));
    builder.follow_symlinks(false);
    let ctx = || format!("archiving {} into {}", src.display(), dest.display());
    if meta.is_dir() {
        builder
            .append_dir_all(&name, src)
            .map_err(|e| ExecutorError::io(ctx(), e))?;
    } else {
        builder
            .append_path_with_name(src, &name)
            .map_err(|e| ExecutorError::io(ctx(), e))?;
    }
    let mut w = builder
        .into_inner()
        .map_err(|e| ExecutorError::io(ctx(), e))?;
    w.flush().map_err(|e| ExecutorError::io(ctx(), e))?;
    Ok(true)
}

/// Unpacks the tar at `src` into `dir` (created if absent).
pub(crate) fn unpack(src: &Path, dir: &Path) -> Result<(), ExecutorError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ExecutorError::io(format!("creating {}", dir.display()), e))?;
    let file =
        File::open(src).map_err(|e| ExecutorError::io(format!("opening {}", src.display()), e))?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(256 * 1024, file));
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    let ctx = || format!("unpacking {} into {}", src.display(), dir.display());
    let entries = archive.entries().map_err(|e| ExecutorError::io(ctx(), e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ExecutorError::io(ctx(), e))?;
        let path = entry
            .path()
            .map_err(|e| ExecutorError::io(ctx(), e))?
            .into_owned();
        let shown = path.display().to_string();
        let Some(rel) = safe_relative(&path) else {
            return Err(ExecutorError::UnsafeArchive {
                entry: shown,
                reason: "absolute path or `..` component".into(),
            });
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| ExecutorError::io(ctx(), e))?
                .map(|t| t.into_owned())
                .unwrap_or_default();
            // Symlink targets resolve from the link's directory; hard link targets
            // name another entry, i.e. from the root.
            let base = if kind.is_symlink() {
                rel.parent().map(Path::to_path_buf).unwrap_or_default()
            } else {
                PathBuf::new()
            };
            if !stays_inside(&base, &target) {
                return Err(ExecutorError::UnsafeArchive {
                    entry: shown,
                    reason: format!("link target `{}` leaves the target", target.display()),
                });
            }
        }
        // `unpack_in` also refuses to write through symlinked parent directories.
        let done = entry
            .unpack_in(dir)
            .map_err(|e| ExecutorError::io(format!("{}: entry `{shown}`", ctx()), e))?;
        if !done {
            return Err(ExecutorError::UnsafeArchive {
                entry: shown,
                reason: "would be written outside the target".into(),
            });
        }
    }
    Ok(())
}

/// The path with `.` removed, if it is relative and has no `..`.
fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether `target`, resolved lexically from `base` (relative to the root), stays in it.
fn stays_inside(base: &Path, target: &Path) -> bool {
    let mut depth: Vec<&std::ffi::OsStr> = Vec::new();
    for c in base.components() {
        if let Component::Normal(p) = c {
            depth.push(p);
        }
    }
    for c in target.components() {
        match c {
            Component::Normal(p) => depth.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> tempfile::NamedTempFile {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let data = b.into_inner().unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        f
    }

    fn symlink_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    }

    #[test]
    fn refuses_symlink_escaping_root() {
        let f = tar_with(|b| symlink_entry(b, "a/evil", "../../etc"));
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(f.path(), dir.path()).unwrap_err();
        assert!(matches!(err, ExecutorError::UnsafeArchive { .. }), "{err}");
    }

    #[test]
    fn refuses_absolute_symlink() {
        let f = tar_with(|b| symlink_entry(b, "evil", "/etc/passwd"));
        let dir = tempfile::tempdir().unwrap();
        assert!(unpack(f.path(), dir.path()).is_err());
    }

    #[test]
    fn accepts_symlink_inside_root() {
        let f = tar_with(|b| symlink_entry(b, "a/ok", "../b"));
        let dir = tempfile::tempdir().unwrap();
        unpack(f.path(), dir.path()).unwrap();
        assert!(std::fs::symlink_metadata(dir.path().join("a/ok")).is_ok());
    }

    #[test]
    fn refuses_dotdot_path() {
        // The tar crate's builder refuses `..`, so write the raw header ourselves.
        let f = tar_with(|b| {
            let mut h = tar::Header::new_gnu();
            h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
            h.set_size(1);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(f.path(), dir.path()).unwrap_err();
        assert!(matches!(err, ExecutorError::UnsafeArchive { .. }), "{err}");
    }
}
