//! `slipway backup FILE` (a tar streamed from a running server) and `slipway restore FILE`
//! (offline, into an empty database and the data directory's blob store).
//!
//! The archive: `manifest.json` first (`{"format":"slipway-backup","version":1,...}`), then
//! `db/<table>.jsonl` (`Db::export`), then `blobs/sha256/<2 hex>/<64 hex>`, and last
//! `end.json` (`{"blobs":N}`): an archive without it was cut short.

use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use futures::StreamExt;
use reqwest::Method;
use slipway_model::{Digest, Hasher};
use slipway_store::{BlobStore, Db};
use tokio::io::AsyncWriteExt;

use super::UsageError;
use super::client::{self, Client, ServerArgs};

const FORMAT: &str = "slipway-backup";
const VERSION: u64 = 1;

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Where to write the archive (a tar; written to FILE.partial, renamed when complete).
    file: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// An archive `slipway backup` wrote.
    file: PathBuf,
    /// The database to restore into; it must hold no projects (default
    /// `sqlite:<data>/slipway.db`, the server's). Stop the server first.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
}

/// What an archive holds.
#[derive(Debug, Default)]
struct Contents {
    tables: Vec<String>,
    blobs: u64,
    blob_bytes: u64,
    /// Files of hosted repositories.
    git_files: u64,
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(&args.server)?;
    let file = args.file;
    let mut partial = file.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let resp = c.send(c.request(Method::GET, c.url(&["backup"]))).await?;
    let guard = RemoveOnDrop(Some(partial.clone()));
    let mut out = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut body = resp.bytes_stream();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|e| c.unreachable(&e))
            .context("the backup stopped before it was complete")?;
        size += chunk.len() as u64;
        out.write_all(&chunk)
            .await
            .with_context(|| format!("writing {}", partial.display()))?;
    }
    out.sync_all()
        .await
        .with_context(|| format!("writing {}", partial.display()))?;
    drop(out);
    let p = partial.clone();
    let contents = tokio::task::spawn_blocking(move || list(&p))
        .await?
        .with_context(|| format!("{}: not a complete Slipway backup", partial.display()))?;
    tokio::fs::rename(&partial, &file)
        .await
        .with_context(|| format!("renaming {} to {}", partial.display(), file.display()))?;
    guard.keep();
    if c.json {
        client::print_json(&serde_json::json!({
            "file": file.display().to_string(),
            "bytes": size,
            "tables": contents.tables,
            "blobs": contents.blobs,
            "blob_bytes": contents.blob_bytes,
        }));
    } else {
        println!(
            "wrote {}: {}, {} tables, {} blobs ({})",
            file.display(),
            bytes(size),
            contents.tables.len(),
            contents.blobs,
            bytes(contents.blob_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks the manifest and counts the tables and blobs, seeking past the data.
fn list(path: &Path) -> anyhow::Result<Contents> {
    let f = std::fs::File::open(path)?;
    let mut ar = tar::Archive::new(f);
    let mut contents = Contents::default();
    let mut manifest = false;
    let mut end = None;
    for entry in ar.entries_with_seek()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        match Layout::of(&path)? {
            Layout::Manifest => {
                check_manifest(&mut entry)?;
                manifest = true;
            }
            Layout::Table(t) => contents.tables.push(t),
            Layout::Blob(_) => {
                contents.blobs += 1;
                contents.blob_bytes += entry.size();
            }
            Layout::End => end = Some(read_end(&mut entry)?),
            Layout::Git(_) => contents.git_files += 1,
            Layout::Dir | Layout::Other => {}
        }
    }
    anyhow::ensure!(manifest, "no manifest.json");
    check_end(end, contents.blobs)?;
    Ok(contents)
}

pub async fn restore(args: RestoreArgs, data: &Path) -> anyhow::Result<ExitCode> {
    let file = args.file;
    if !file.is_file() {
        return Err(UsageError(format!("{}: no such file", file.display())).into());
    }
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let url = args
        .database
        .unwrap_or_else(|| format!("sqlite:{}", data.join("slipway.db").display()));
    let db = match Db::connect(&url).await {
        Ok(db) => db,
        Err(e @ slipway_store::DbError::BadUrl(_)) => return Err(UsageError(e.to_string()).into()),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("opening the database {url}"))),
    };
    let projects = db.projects().await?;
    if !projects.is_empty() {
        let names: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
        db.close().await;
        return Err(UsageError(format!(
            "the database {url} already has projects ({}): restore needs an empty one (a fresh --data directory or --database)",
            names.join(", ")
        ))
        .into());
    }
    let store_root = data.join("store");
    let store = BlobStore::open(&store_root)
        .with_context(|| format!("opening the blob store {}", store_root.display()))?;
    let staging = tempfile::Builder::new()
        .prefix("restore-")
        .tempdir_in(data)
        .with_context(|| format!("creating a directory in {}", data.display()))?;
    let (f, s, root) = (
        file.clone(),
        staging.path().to_path_buf(),
        store_root.clone(),
    );
    let unpacked = tokio::task::spawn_blocking(move || unpack(&f, &s, &store, &root))
        .await?
        .with_context(|| format!("restoring {}", file.display()))?;
    if unpacked.contents.tables.is_empty() {
        db.close().await;
        anyhow::bail!("{}: the archive holds no db/*.jsonl", file.display());
    }
    db.import(&staging.path().join("db"))
        .await
        .with_context(|| format!("importing the database tables into {url}"))?;
    // Hosted repositories now live under this data directory.
    if let Some(old) = &unpacked.old_data {
        let old_git = format!("{}/git/", old.trim_end_matches('/'));
        let new_git = format!("{}/git/", data.display());
        for p in db.projects().await? {
            if let Some(rest) = p.git.strip_prefix(&old_git) {
                db.set_project_git(p.id, &format!("{new_git}{rest}"))
                    .await?;
            }
        }
    }
    let projects = db.projects().await?.len();
    let executions: u64 = db.count_by_status().await?.iter().map(|(_, n)| n).sum();
    db.close().await;
    drop(staging);
    let c = &unpacked.contents;
    println!(
        "restored {} into {}: {projects} projects, {executions} executions, {} blobs ({}){}",
        file.display(),
        data.display(),
        c.blobs,
        bytes(c.blob_bytes),
        if unpacked.existing > 0 {
            format!(", {} already present", unpacked.existing)
        } else {
            String::new()
        }
    );
    if unpacked.mismatches.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for m in &unpacked.mismatches {
        eprintln!("error: {m}");
    }
    eprintln!(
        "error: {} blobs did not match their names and were not restored",
        unpacked.mismatches.len()
    );
    Ok(ExitCode::from(1))
}

#[derive(Debug, Default)]
struct Unpacked {
    contents: Contents,
    /// Blobs the store already had.
    existing: u64,
    /// Blobs whose content does not hash to their name: not restored.
    mismatches: Vec<String>,
    /// The data directory the backup was made from (hosted repositories' paths start there).
    old_data: Option<String>,
}

/// Streams the archive: the manifest is checked first, tables go to `staging/db/`, blobs
/// into the store (each hashed while written and renamed into place only if it matches).
fn unpack(file: &Path, staging: &Path, store: &BlobStore, root: &Path) -> anyhow::Result<Unpacked> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut ar = tar::Archive::new(BufReader::with_capacity(256 * 1024, f));
    let tables = staging.join("db");
    std::fs::create_dir_all(&tables)?;
    let tmp = root.join("tmp");
    let mut out = Unpacked::default();
    let mut manifest = false;
    let mut end = None;
    for entry in ar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let shown = path.display().to_string();
        let layout = Layout::of(&path)?;
        if !manifest && !matches!(layout, Layout::Manifest | Layout::Dir) {
            anyhow::bail!("not a Slipway backup: {shown} comes before manifest.json");
        }
        if !matches!(layout, Layout::Dir) && !entry.header().entry_type().is_file() {
            anyhow::bail!("{shown}: only regular files belong in a backup");
        }
        match layout {
            Layout::Dir => {}
            Layout::Manifest => {
                out.old_data = check_manifest(&mut entry)?;
                manifest = true;
            }
            Layout::Git(rel) => {
                let dest = root.parent().unwrap_or(root).join("git").join(&rel);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                let mut w = std::fs::File::create(&dest)
                    .with_context(|| format!("creating {}", dest.display()))?;
                std::io::copy(&mut entry, &mut w).with_context(|| format!("unpacking {shown}"))?;
                out.contents.git_files += 1;
            }
            Layout::Table(t) => {
                let dest = tables.join(format!("{t}.jsonl"));
                let mut w = std::fs::File::create(&dest)
                    .with_context(|| format!("creating {}", dest.display()))?;
                std::io::copy(&mut entry, &mut w).with_context(|| format!("unpacking {shown}"))?;
                out.contents.tables.push(t);
            }
            Layout::Blob(d) => {
                let dest = store.path(&d);
                if dest.is_file() {
                    out.existing += 1;
                    out.contents.blob_bytes += entry.size();
                    continue;
                }
                let mut w = tempfile::NamedTempFile::new_in(&tmp)
                    .with_context(|| format!("creating a file in {}", tmp.display()))?;
                let mut h = Hasher::new();
                let mut buf = vec![0u8; 64 * 1024];
                let mut n = 0u64;
                loop {
                    let k = entry
                        .read(&mut buf)
                        .with_context(|| format!("unpacking {shown}"))?;
                    if k == 0 {
                        break;
                    }
                    h.update(&buf[..k]);
                    w.write_all(&buf[..k])
                        .with_context(|| format!("writing {}", w.path().display()))?;
                    n += k as u64;
                }
                let actual = h.finish();
                if actual != d {
                    out.mismatches
                        .push(format!("{shown}: its content hashes to {actual}"));
                    continue;
                }
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                w.persist(&dest)
                    .with_context(|| format!("storing {}", dest.display()))?;
                out.contents.blobs += 1;
                out.contents.blob_bytes += n;
            }
            Layout::End => end = Some(read_end(&mut entry)?),
            Layout::Other => eprintln!("warning: {shown}: not part of a Slipway backup; skipped"),
        }
    }
    anyhow::ensure!(manifest, "not a Slipway backup: no manifest.json");
    check_end(
        end,
        out.contents.blobs + out.existing + out.mismatches.len() as u64,
    )?;
    Ok(out)
}

/// Where an archive member belongs.
enum Layout {
    Manifest,
    Table(String),
    Blob(Digest),
    /// A hosted repository's file, relative to `<data>/git`.
    Git(PathBuf),
    End,
    Dir,
    Other,
}

impl Layout {
    /// Absolute paths and `..` are refused outright: nothing may land outside its place.
    fn of(path: &Path) -> anyhow::Result<Layout> {
        let mut parts: Vec<&str> = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(s) => parts.push(
                    s.to_str()
                        .with_context(|| format!("{}: not UTF-8", path.display()))?,
                ),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    anyhow::bail!(
                        "{}: absolute paths and `..` are refused in a backup",
                        path.display()
                    )
                }
            }
        }
        Ok(match parts.as_slice() {
            [] | ["db"] | ["git"] | ["blobs"] | ["blobs", "sha256"] | ["blobs", "sha256", _] => {
                Layout::Dir
            }
            ["git", repo, rest @ ..] if repo.ends_with(".git") && !rest.is_empty() => {
                Layout::Git(parts[1..].iter().collect())
            }
            ["manifest.json"] => Layout::Manifest,
            ["end.json"] => Layout::End,
            ["db", name] => match name.strip_suffix(".jsonl") {
                Some(t)
                    if !t.is_empty()
                        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    Layout::Table(t.to_string())
                }
                _ => Layout::Other,
            },
            ["blobs", "sha256", pre, hex] => match Digest::parse(&format!("sha256:{hex}")) {
                Ok(d) if hex.starts_with(pre) && pre.len() == 2 => Layout::Blob(d),
                _ => Layout::Other,
            },
            _ => Layout::Other,
        })
    }
}

/// Checks the manifest; returns the data directory the backup was made from, if it says.
fn check_manifest(r: &mut dyn Read) -> anyhow::Result<Option<String>> {
    let mut text = String::new();
    r.take(1024 * 1024)
        .read_to_string(&mut text)
        .context("reading manifest.json")?;
    let m: serde_json::Value = serde_json::from_str(&text).context("manifest.json")?;
    anyhow::ensure!(
        m["format"] == FORMAT,
        "not a Slipway backup: manifest.json's format is {}",
        m["format"]
    );
    let v = m["version"].as_u64().unwrap_or(0);
    anyhow::ensure!(
        v == VERSION,
        "backup format version {v}: this Slipway reads version {VERSION}{}",
        if v > VERSION {
            " (the backup was made by a newer Slipway)"
        } else {
            ""
        }
    );
    Ok(m["data"].as_str().map(String::from))
}

/// `end.json`'s blob count.
fn read_end(r: &mut dyn Read) -> anyhow::Result<u64> {
    let mut text = String::new();
    r.take(64 * 1024)
        .read_to_string(&mut text)
        .context("reading end.json")?;
    let v: serde_json::Value = serde_json::from_str(&text).context("end.json")?;
    v["blobs"].as_u64().context("end.json has no blob count")
}

/// The archive is whole: it ends with `end.json`, whose count matches the blobs seen.
fn check_end(end: Option<u64>, blobs: u64) -> anyhow::Result<()> {
    match end {
        None => anyhow::bail!("the archive was cut short (no end.json)"),
        Some(n) if n != blobs => {
            anyhow::bail!("the archive holds {blobs} blobs, but end.json says {n}")
        }
        Some(_) => Ok(()),
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Removes a half-written file unless told to keep it.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(p: &str) -> String {
        match Layout::of(Path::new(p)) {
            Ok(Layout::Manifest) => "manifest".into(),
            Ok(Layout::Table(t)) => format!("table {t}"),
            Ok(Layout::Blob(d)) => format!("blob {}", &d.hex()[..4]),
            Ok(Layout::End) => "end".into(),
            Ok(Layout::Git(p)) => format!("git {}", p.display()),
            Ok(Layout::Dir) => "dir".into(),
            Ok(Layout::Other) => "other".into(),
            Err(_) => "refused".into(),
        }
    }

    #[test]
    fn archive_paths() {
        let hex = "ab".repeat(32);
        assert_eq!(layout("manifest.json"), "manifest");
        assert_eq!(layout("end.json"), "end");
        assert_eq!(layout("./manifest.json"), "manifest");
        assert_eq!(layout("db/projects.jsonl"), "table projects");
        assert_eq!(layout("db/../x.jsonl"), "refused");
        assert_eq!(layout("/etc/passwd"), "refused");
        assert_eq!(layout("../x"), "refused");
        assert_eq!(layout(&format!("blobs/sha256/ab/{hex}")), "blob abab");
        assert_eq!(layout(&format!("blobs/sha256/cd/{hex}")), "other");
        assert_eq!(layout("blobs/sha256/ab/"), "dir");
        assert_eq!(layout("db/x.txt"), "other");
        assert_eq!(layout("git/hello.git/HEAD"), "git hello.git/HEAD");
        assert_eq!(layout("git/hello.git/../../x"), "refused");
        assert_eq!(layout("git/notarepo/HEAD"), "other");
        assert_eq!(layout("git"), "dir");
    }
}
