//! Upload sessions. A session's bytes so far live in `<data>/registry/uploads/<id>` (its
//! repository in `<id>.repo`); the running SHA-256 state is kept in memory while the server
//! runs, so each byte is hashed once, as it streams in. After a restart the partial file is
//! hashed again once, on the session's next request. A request that breaks off keeps every byte
//! that arrived (the client asks where to resume with GET). Finishing checks the digest and
//! renames the file into the blob store: a blob is visible only complete and verified. Nothing
//! is held in memory beyond two 1 MiB buffers per writing request.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use slipway_model::Digest;
use slipway_store::BlobStore;

use crate::error::{RegistryError, io};

/// Bytes handed to the blocking pool at a time: large enough that per-job overhead vanishes,
/// small enough to be irrelevant per concurrent upload.
const CHUNK: usize = 1024 * 1024;

/// A session, locked by whichever request writes to it.
pub type Shared = Arc<tokio::sync::Mutex<Session>>;

/// Every session's directory and the sessions alive in this process.
pub struct Uploads {
    dir: PathBuf,
    /// id -> (repository, session).
    live: Mutex<HashMap<String, (String, Shared)>>,
}

/// One upload. `state` is `None` until the first request after a restart re-reads the file.
pub struct Session {
    pub id: String,
    pub repo: String,
    path: PathBuf,
    state: Option<Box<State>>,
}

struct State {
    file: std::fs::File,
    hasher: Sha256,
    size: u64,
}

/// Why appending stopped.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The client's body broke off; what arrived before is kept.
    #[error("the request body broke off after {kept} bytes of the upload: {cause}")]
    Body { kept: u64, cause: String },
    #[error(transparent)]
    Internal(#[from] RegistryError),
}

/// How finishing went.
pub enum Finished {
    Stored { digest: Digest, size: u64 },
    Mismatch { expected: Digest, actual: Digest },
}

impl Uploads {
    pub fn open(dir: &Path) -> Result<Uploads, RegistryError> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        Ok(Uploads {
            dir: dir.to_path_buf(),
            live: Mutex::default(),
        })
    }

    /// A new, empty session for `repo`.
    pub fn start(&self, repo: &str) -> Result<Shared, RegistryError> {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let path = self.dir.join(&id);
        let file = std::fs::File::create(&path).map_err(io("create", &path))?;
        let meta = self.dir.join(format!("{id}.repo"));
        std::fs::write(&meta, repo).map_err(io("write", &meta))?;
        let s = Arc::new(tokio::sync::Mutex::new(Session {
            id: id.clone(),
            repo: repo.to_string(),
            path,
            state: Some(Box::new(State {
                file,
                hasher: Sha256::new(),
                size: 0,
            })),
        }));
        self.live
            .lock()
            .unwrap()
            .insert(id, (repo.to_string(), s.clone()));
        Ok(s)
    }

    /// The session `id` of `repo`: alive here, or left by a previous run of the server.
    pub fn get(&self, repo: &str, id: &str) -> Option<Shared> {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut live = self.live.lock().unwrap();
        if let Some((owner, s)) = live.get(id) {
            return (owner == repo).then(|| s.clone());
        }
        let owner = std::fs::read_to_string(self.dir.join(format!("{id}.repo"))).ok()?;
        if owner != repo || !self.dir.join(id).is_file() {
            return None;
        }
        let s = Arc::new(tokio::sync::Mutex::new(Session {
            id: id.to_string(),
            repo: repo.to_string(),
            path: self.dir.join(id),
            state: None,
        }));
        live.insert(id.to_string(), (repo.to_string(), s.clone()));
        Some(s)
    }

    /// Forgets a session and removes its files.
    pub fn remove(&self, s: &mut Session) {
        self.live.lock().unwrap().remove(&s.id);
        s.state = None;
        let _ = std::fs::remove_file(&s.path);
        let _ = std::fs::remove_file(self.dir.join(format!("{}.repo", s.id)));
    }

    /// Removes sessions nobody wrote to for longer than `older_than` (abandoned pushes).
    pub fn sweep(&self, older_than: Duration) -> u64 {
        let now = SystemTime::now();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut n = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".repo") {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|a| a > older_than);
            let busy = self
                .live
                .lock()
                .unwrap()
                .get(&name)
                .is_some_and(|(_, s)| s.try_lock().is_err());
            if old && !busy {
                self.live.lock().unwrap().remove(&name);
                let _ = std::fs::remove_file(e.path());
                let _ = std::fs::remove_file(self.dir.join(format!("{name}.repo")));
                n += 1;
            }
        }
        n
    }
}

impl Session {
    /// Bytes received so far (re-reading the file once after a restart).
    pub async fn size(&mut self) -> Result<u64, RegistryError> {
        Ok(self.state().await?.size)
    }

    async fn state(&mut self) -> Result<&mut State, RegistryError> {
        if self.state.is_none() {
            let path = self.path.clone();
            let st = tokio::task::spawn_blocking(move || rehash(&path))
                .await
                .map_err(|e| RegistryError::Other(e.to_string()))??;
            self.state = Some(Box::new(st));
        }
        Ok(self.state.as_mut().expect("just set"))
    }

    /// Appends a request body, hashing and writing it on the blocking pool while the next
    /// megabyte arrives. On a broken body, what arrived is written and kept.
    pub async fn append(&mut self, body: Body) -> Result<u64, AppendError> {
        self.state().await?;
        let st = self.state.take().expect("loaded above");
        let (st, result) = pump(st, body).await;
        match st {
            Some(st) => {
                let size = st.size;
                self.state = Some(st);
                result.map(|()| size)
            }
            // A blocking job died: the file may hold more than the hash covers; re-read it.
            None => result.and(Err(AppendError::Internal(RegistryError::Other(
                "writing the upload failed".into(),
            )))),
        }
    }

    /// Checks the content against `expected` and, when it matches, moves it into the blob
    /// store (or drops it when the store has it already). The session's file is gone after.
    pub async fn finish(
        &mut self,
        blobs: &BlobStore,
        expected: &Digest,
    ) -> Result<Finished, RegistryError> {
        let st = self.state().await?;
        let size = st.size;
        let actual = Digest::parse(&format!(
            "sha256:{}",
            hex::encode(st.hasher.clone().finalize())
        ))
        .map_err(|e| RegistryError::Other(e.to_string()))?;
        if actual != *expected {
            return Ok(Finished::Mismatch {
                expected: expected.clone(),
                actual,
            });
        }
        self.state = None;
        let from = self.path.clone();
        let store = blobs.clone();
        let d = actual.clone();
        tokio::task::spawn_blocking(move || publish(&store, &from, &d))
            .await
            .map_err(|e| RegistryError::Other(e.to_string()))??;
        Ok(Finished::Stored {
            digest: actual,
            size,
        })
    }
}

/// Moves a verified file into the store under its digest. When the store has the blob
/// already, its modification time is renewed instead, so a garbage collection that started
/// before this push sees it as young.
fn publish(store: &BlobStore, from: &Path, d: &Digest) -> Result<(), RegistryError> {
    let target = store.path(d);
    if target.is_file() {
        let _ = std::fs::remove_file(from);
        touch(&target);
        return Ok(());
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    match std::fs::rename(from, &target) {
        Ok(()) => Ok(()),
        // Another file system: copy through the store (a second read, only in that layout).
        Err(e) if e.raw_os_error() == Some(libc_exdev()) => {
            let mut w = store.sync_writer()?;
            let mut f = std::fs::File::open(from).map_err(io("open", from))?;
            std::io::copy(&mut f, &mut w).map_err(io("copy", from))?;
            let (got, _) = w.finish()?;
            let _ = std::fs::remove_file(from);
            if got != *d {
                return Err(RegistryError::Other(format!(
                    "{} changed while it was copied into the store",
                    from.display()
                )));
            }
            Ok(())
        }
        Err(e) => Err(io("rename into", &target)(e)),
    }
}

const fn libc_exdev() -> i32 {
    18
}

/// Renews a blob's modification time (best effort).
pub fn touch(path: &Path) {
    if let Ok(f) = std::fs::OpenOptions::new().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn rehash(path: &Path) -> Result<State, RegistryError> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
        .map_err(io("open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(State {
        file: f,
        hasher,
        size,
    })
}

type Job = tokio::task::JoinHandle<(Box<State>, Vec<u8>, std::io::Result<()>)>;

/// Streams `body` into the state: the async side fills one buffer while a blocking job hashes
/// and writes the previous one. Returns the state (None if a job panicked) and the outcome.
async fn pump(st: Box<State>, body: Body) -> (Option<Box<State>>, Result<(), AppendError>) {
    let mut idle: Option<Box<State>> = Some(st);
    let mut job: Option<Job> = None;
    let mut spare: Option<Vec<u8>> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut stream = body.into_data_stream();
    let mut broken: Option<String> = None;

    // Waits for the job in flight, getting the state (and its buffer) back.
    async fn settle(
        job: &mut Option<Job>,
        idle: &mut Option<Box<State>>,
        spare: &mut Option<Vec<u8>>,
    ) -> Result<(), AppendError> {
        if let Some(j) = job.take() {
            match j.await {
                Ok((st, mut used, r)) => {
                    used.clear();
                    *spare = Some(used);
                    *idle = Some(st);
                    r.map_err(|e| {
                        AppendError::Internal(RegistryError::Other(format!(
                            "writing the upload: {e}"
                        )))
                    })?;
                }
                Err(e) => {
                    return Err(AppendError::Internal(RegistryError::Other(e.to_string())));
                }
            }
        }
        Ok(())
    }

    fn launch(st: Box<State>, data: Vec<u8>) -> Job {
        tokio::task::spawn_blocking(move || {
            let mut st = st;
            let r = st.file.write_all(&data);
            if r.is_ok() {
                st.hasher.update(&data);
                st.size += data.len() as u64;
            }
            (st, data, r)
        })
    }

    loop {
        match stream.next().await {
            Some(Ok(bytes)) => {
                let mut data: &[u8] = &bytes;
                while !data.is_empty() {
                    let room = CHUNK - buf.len();
                    let n = room.min(data.len());
                    buf.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if buf.len() == CHUNK {
                        if let Err(e) = settle(&mut job, &mut idle, &mut spare).await {
                            return (idle, Err(e));
                        }
                        let next = spare.take().unwrap_or_else(|| Vec::with_capacity(CHUNK));
                        let full = std::mem::replace(&mut buf, next);
                        let st = idle.take().expect("settled");
                        job = Some(launch(st, full));
                    }
                }
            }
            Some(Err(e)) => {
                broken = Some(e.to_string());
                break;
            }
            None => break,
        }
    }
    if let Err(e) = settle(&mut job, &mut idle, &mut spare).await {
        return (idle, Err(e));
    }
    if !buf.is_empty() {
        let st = idle.take().expect("settled");
        job = Some(launch(st, buf));
        if let Err(e) = settle(&mut job, &mut idle, &mut spare).await {
            return (idle, Err(e));
        }
    }
    match broken {
        Some(cause) => {
            let kept = idle.as_ref().map(|s| s.size).unwrap_or(0);
            (idle, Err(AppendError::Body { kept, cause }))
        }
        None => (idle, Ok(())),
    }
}
