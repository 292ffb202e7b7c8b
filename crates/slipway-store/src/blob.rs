//! The content-addressed blob store on disk: streamed writes, atomic publication, dedupe.

use std::future::Future as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use slipway_model::{Digest, Hasher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// Big enough that a 1 GiB log costs ~4k blocking-pool round trips, small enough to be
/// irrelevant per concurrent writer.
const WRITE_BUFFER: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blob {0} is not in the store")]
    BlobUnknown(Digest),
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the content to store: {0}")]
    Source(#[source] io::Error),
    #[error("content hashes to {actual}, expected {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug)]
struct Inner {
    blobs: PathBuf,
    tmp: PathBuf,
}

/// Handle to a blob store directory. Cheap to clone; clones share the same directory.
#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

impl BlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        let blobs = root.join("blobs").join("sha256");
        let tmp = root.join("tmp");
        for dir in [&blobs, &tmp] {
            std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        }
        Ok(Self {
            inner: Arc::new(Inner { blobs, tmp }),
        })
    }

    /// Where the blob with digest `d` lives (or would live).
    pub fn path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.inner.blobs.join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Opens a stored blob for reading.
    pub async fn open_blob(&self, d: &Digest) -> Result<tokio::fs::File, StoreError> {
        let path = self.path(d);
        tokio::fs::File::open(&path).await.map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::BlobUnknown(d.clone())
            } else {
                io_err("open blob", &path)(e)
            }
        })
    }

    /// The size in bytes of a stored blob.
    pub async fn size(&self, d: &Digest) -> Result<u64, StoreError> {
        let path = self.path(d);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobUnknown(d.clone()))
            }
            Err(e) => Err(io_err("stat blob", &path)(e)),
        }
    }

    /// Starts a new blob. Nothing becomes visible until [`BlobWriter::finish`].
    pub async fn writer(&self) -> Result<BlobWriter, StoreError> {
        let temp = TempGuard::new(&self.inner.tmp);
        let file = tokio::fs::File::create(&temp.path)
            .await
            .map_err(io_err("create temporary blob", &temp.path))?
            .into_std()
            .await;
        Ok(BlobWriter::new(file, temp, self.clone()))
    }

    /// Starts a new blob written from synchronous code (inside `spawn_blocking`, e.g. a tar
    /// builder). Nothing becomes visible until [`SyncBlobWriter::finish`].
    pub fn sync_writer(&self) -> Result<SyncBlobWriter, StoreError> {
        let temp = TempGuard::new(&self.inner.tmp);
        let file = std::fs::File::create(&temp.path)
            .map_err(io_err("create temporary blob", &temp.path))?;
        Ok(SyncBlobWriter {
            file: io::BufWriter::with_capacity(WRITE_BUFFER, file),
            hasher: Hasher::new(),
            written: 0,
            temp,
            store: self.clone(),
        })
    }

    /// Stores the content of a file, streamed.
    pub async fn put_file(&self, path: &Path) -> Result<(Digest, u64), StoreError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(io_err("open", path))?;
        self.put_reader(file).await.map_err(|e| match e {
            StoreError::Source(source) => StoreError::Io {
                op: "read",
                path: path.to_path_buf(),
                source,
            },
            e => e,
        })
    }

    /// Stores everything `r` yields, streamed.
    pub async fn put_reader<R: AsyncRead + Unpin>(
        &self,
        mut r: R,
    ) -> Result<(Digest, u64), StoreError> {
        let mut w = self.writer().await?;
        // One buffer per put, reused for every read.
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf).await.map_err(StoreError::Source)?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n]).await?;
        }
        w.finish().await
    }

    /// The directory holding the blobs (`<root>/blobs/sha256`), for backups.
    pub fn blobs_dir(&self) -> &Path {
        &self.inner.blobs
    }

    /// Calls `f` with every stored blob's digest, size and modification time, without
    /// collecting them. Files that are not blobs (wrong names) are skipped.
    pub fn for_each_blob(
        &self,
        mut f: impl FnMut(Digest, u64, SystemTime),
    ) -> Result<(), StoreError> {
        let root = &self.inner.blobs;
        for shard in std::fs::read_dir(root).map_err(io_err("list", root))? {
            let Ok(shard) = shard else { continue };
            let Ok(files) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                let Ok(d) = Digest::parse(&format!("sha256:{}", name.to_string_lossy())) else {
                    continue;
                };
                if let Ok(m) = file.metadata() {
                    f(d, m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH));
                }
            }
        }
        Ok(())
    }

    /// Removes a blob; removing one that is not there is not an error.
    pub fn remove(&self, d: &Digest) -> Result<(), StoreError> {
        let p = self.path(d);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", &p)(e)),
            _ => Ok(()),
        }
    }

    /// Removes temporary files older than `older_than`: leftovers of a process that died
    /// mid-write. Writers in flight are younger than any sensible `older_than`.
    pub fn sweep_tmp(&self, older_than: Duration) -> Result<u64, StoreError> {
        let tmp = &self.inner.tmp;
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in std::fs::read_dir(tmp).map_err(io_err("list", tmp))? {
            let entry = entry.map_err(io_err("list", tmp))?;
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= older_than);
            if old && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Moves a complete temporary file into place under its digest.
    fn commit_sync(&self, mut temp: TempGuard, digest: &Digest) -> Result<(), StoreError> {
        let target = self.path(digest);
        if target.is_file() {
            // Same content already stored: the guard drops the temporary copy.
            return Ok(());
        }
        let parent = target.parent().unwrap_or(&self.inner.blobs);
        std::fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
        // A concurrent writer of the same content may rename first; rename replaces its
        // identical file atomically, so readers see one complete blob either way.
        std::fs::rename(&temp.path, &target).map_err(io_err("rename into", &target))?;
        temp.disarm();
        Ok(())
    }
}

/// A temporary file that is removed when dropped, unless it was published.
#[derive(Debug)]
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl TempGuard {
    fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(uuid::Uuid::now_v7().simple().to_string()),
            armed: true,
        }
    }
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a leftover is only wasted space, swept by `sweep_tmp`.
            if let Err(e) = std::fs::remove_file(&self.path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove temporary blob");
            }
        }
    }
}

/// Streams one blob into the store from async code. Dropping it unfinished discards the data.
///
/// Writes are copied into a buffer; each full buffer is hashed and written to disk on the
/// blocking pool while the caller fills the next one. A write is therefore a memcpy, and
/// hashing overlaps with whatever produces the data (two buffers per writer, no other
/// allocation on the hot path).
pub struct BlobWriter {
    buf: Vec<u8>,
    /// The buffer the last finished job handed back, ready for reuse.
    spare: Option<Vec<u8>>,
    sink: Sink,
    written: u64,
    temp: TempGuard,
    store: BlobStore,
}

/// The file and hasher live with whoever writes next: here when idle, inside the blocking
/// job while a buffer is being written.
enum Sink {
    Idle(Box<Worker>),
    Busy(tokio::task::JoinHandle<(Box<Worker>, Vec<u8>, io::Result<()>)>),
    /// A job failed or panicked; the blob can no longer be completed.
    Broken,
}

struct Worker {
    file: std::fs::File,
    hasher: Hasher,
}

impl BlobWriter {
    fn new(file: std::fs::File, temp: TempGuard, store: BlobStore) -> Self {
        Self {
            buf: Vec::with_capacity(WRITE_BUFFER),
            spare: None,
            sink: Sink::Idle(Box::new(Worker {
                file,
                hasher: Hasher::new(),
            })),
            written: 0,
            temp,
            store,
        }
    }

    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        while !data.is_empty() {
            let room = WRITE_BUFFER - self.buf.len();
            if room == 0 {
                self.submit().await?;
                continue;
            }
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            self.written += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Publishes the blob under its digest and returns the digest and size.
    pub async fn finish(self) -> Result<(Digest, u64), StoreError> {
        self.finish_inner(None).await
    }

    /// Like [`finish`](Self::finish), but publishes nothing unless the content hashes to
    /// `expected` (e.g. a registry upload that names its digest).
    pub async fn finish_expecting(self, expected: &Digest) -> Result<u64, StoreError> {
        self.finish_inner(Some(expected)).await.map(|(_, n)| n)
    }

    async fn finish_inner(
        mut self,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        if !self.buf.is_empty() {
            self.submit().await?;
        }
        std::future::poll_fn(|cx| self.poll_idle(cx))
            .await
            .map_err(io_err("write", &self.temp.path))?;
        let Self {
            sink,
            written,
            temp,
            store,
            ..
        } = self;
        let Sink::Idle(worker) = sink else {
            unreachable!("poll_idle returned Ok, so the sink is idle");
        };
        let Worker { file, hasher } = *worker;
        drop(file);
        let digest = hasher.finish();
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        let d = digest.clone();
        tokio::task::spawn_blocking(move || store.commit_sync(temp, &d))
            .await
            .map_err(|e| StoreError::Source(io::Error::other(e)))??;
        Ok((digest, written))
    }

    /// Waits for the previous buffer, then hands the current one to the blocking pool.
    async fn submit(&mut self) -> Result<(), StoreError> {
        std::future::poll_fn(|cx| self.poll_idle(cx))
            .await
            .map_err(io_err("write", &self.temp.path))?;
        self.start_job();
        Ok(())
    }

    /// Ready once no job is in flight; recovers the file, hasher and spare buffer from it.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.sink {
            Sink::Idle(_) => Poll::Ready(Ok(())),
            Sink::Broken => Poll::Ready(Err(io::Error::other(
                "an earlier write to this blob failed",
            ))),
            Sink::Busy(job) => {
                let joined = std::task::ready!(Pin::new(job).poll(cx));
                match joined {
                    Ok((worker, mut used, result)) => {
                        used.clear();
                        self.spare = Some(used);
                        if result.is_ok() {
                            self.sink = Sink::Idle(worker);
                        } else {
                            self.sink = Sink::Broken;
                        }
                        Poll::Ready(result)
                    }
                    Err(e) => {
                        self.sink = Sink::Broken;
                        Poll::Ready(Err(io::Error::other(e)))
                    }
                }
            }
        }
    }

    /// Must be called only when idle.
    fn start_job(&mut self) {
        let Sink::Idle(mut worker) = std::mem::replace(&mut self.sink, Sink::Broken) else {
            return;
        };
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(WRITE_BUFFER));
        let full = std::mem::replace(&mut self.buf, next);
        self.sink = Sink::Busy(tokio::task::spawn_blocking(move || {
            worker.hasher.update(&full);
            let result = worker.file.write_all(&full);
            (worker, full, result)
        }));
    }
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("temp", &self.temp.path)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SyncBlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncBlobWriter")
            .field("temp", &self.temp.path)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl AsyncWrite for BlobWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.buf.len() == WRITE_BUFFER {
            std::task::ready!(this.poll_idle(cx))?;
            this.start_job();
        }
        let n = (WRITE_BUFFER - this.buf.len()).min(data.len());
        this.buf.extend_from_slice(&data[..n]);
        this.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_idle(cx))?;
        if !this.buf.is_empty() {
            this.start_job();
            std::task::ready!(this.poll_idle(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Flushes only: the blob is published by [`BlobWriter::finish`], never by a shutdown.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// Streams one blob into the store from blocking code. Dropping it unfinished discards the data.
pub struct SyncBlobWriter {
    file: io::BufWriter<std::fs::File>,
    hasher: Hasher,
    written: u64,
    temp: TempGuard,
    store: BlobStore,
}

impl SyncBlobWriter {
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Publishes the blob under its digest and returns the digest and size.
    pub fn finish(self) -> Result<(Digest, u64), StoreError> {
        let Self {
            file,
            hasher,
            written,
            temp,
            store,
        } = self;
        let file = file
            .into_inner()
            .map_err(|e| io_err("write", &temp.path)(e.into_error()))?;
        drop(file);
        let digest = hasher.finish();
        store.commit_sync(temp, &digest)?;
        Ok((digest, written))
    }
}

impl io::Write for SyncBlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)?;
        self.hasher.update(buf);
        self.written += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests;
