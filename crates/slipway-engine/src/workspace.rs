//! A build's fresh workspace: a copy of the source plus the input artifacts unpacked over it.

use std::io;
use std::path::{Path, PathBuf};

/// What `prepare` copied, for the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub files: u64,
    pub bytes: u64,
}

/// Copies `source` into `ws` (which must not exist) and unpacks each input tar over it.
/// Symlinks are copied as links; file modes are kept.
pub async fn prepare(source: &Path, ws: &Path, inputs: &[(String, PathBuf)]) -> io::Result<Copied> {
    let source = source.to_path_buf();
    let ws = ws.to_path_buf();
    let inputs = inputs.to_vec();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&ws)?;
        let copied = copy_tree(&source, &ws)?;
        for (name, tar_path) in &inputs {
            let f = std::fs::File::open(tar_path)
                .map_err(|e| io::Error::new(e.kind(), format!("input artifact {name}: {e}")))?;
            let mut a = tar::Archive::new(io::BufReader::new(f));
            a.set_preserve_permissions(true);
            // tar's unpack refuses entries escaping the destination (`..`, absolute paths).
            a.unpack(&ws)
                .map_err(|e| io::Error::new(e.kind(), format!("input artifact {name}: {e}")))?;
        }
        Ok(copied)
    })
    .await
    .map_err(io::Error::other)?
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<Copied> {
    let mut copied = Copied::default();
    for entry in walkdir::WalkDir::new(from).min_depth(1).follow_links(false) {
        let entry = entry.map_err(io::Error::other)?;
        let rel = entry.path().strip_prefix(from).map_err(io::Error::other)?;
        let dest = to.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&dest)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            std::os::unix::fs::symlink(target, &dest)?;
        } else if ft.is_file() {
            copied.bytes += std::fs::copy(entry.path(), &dest)?;
            copied.files += 1;
        }
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn copies_tree_with_links_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("a/b")).unwrap();
        std::fs::write(src.path().join("a/b/run.sh"), "echo hi").unwrap();
        std::fs::set_permissions(
            src.path().join("a/b/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("a/b/run.sh", src.path().join("link")).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let ws = dst.path().join("ws");
        let copied = prepare(src.path(), &ws, &[]).await.unwrap();
        assert_eq!(copied, Copied { files: 1, bytes: 7 });
        let m = std::fs::metadata(ws.join("a/b/run.sh")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o755);
        assert_eq!(
            std::fs::read_link(ws.join("link")).unwrap(),
            PathBuf::from("a/b/run.sh")
        );
    }
}
