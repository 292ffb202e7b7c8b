//! The shell-session protocol shared by every executor: one long-lived shell, commands
//! framed by nonce markers so each one's exit status is known while output streams live.
//!
//! Wire format (stdin of the shell):
//! ```text
//! exec 2>&1
//! eval '<command, each ' as '\''>' </dev/null; printf '\n\036SLIPWAY-%s-%d\036\n' <nonce> "$?"
//! ```
//! The reader looks for `\n\x1eSLIPWAY-<nonce>-<status>\x1e\n` in stdout. Everything before
//! it is the command's output (minus the `\n` the marker added); anything after it belongs
//! to the next command (e.g. a background job that kept writing).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use memchr::memmem;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::{CommandStatus, ExecutorError, LogSink};

/// Reads from the shell are this big: large enough that a 1 GiB stream costs ~16k sink calls.
const READ_SIZE: usize = 64 * 1024;
/// How long `close` waits for the shell to leave on its own before killing it.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What an executor provides under a session: how to kill its process tree and how the
/// shell ended. Reading and writing go through the plain byte streams.
#[async_trait]
pub(crate) trait SessionBackend: Send {
    /// Kills the shell and every process it started. Called on cancel and on close timeout.
    async fn kill(&mut self) -> Result<(), ExecutorError>;
    /// The shell's exit code, called once its stdout reached end of file.
    /// `None` when it died from a signal or the code is unknown.
    async fn exit_code(&mut self) -> Result<Option<i32>, ExecutorError>;
}

/// The live/dead flag a job keeps for each of its sessions, so `cleanup` can kill
/// sessions the caller still holds without killing a recycled process id.
#[derive(Debug, Default)]
pub(crate) struct SessionFlag(AtomicBool);

impl SessionFlag {
    pub(crate) fn new_alive() -> Arc<Self> {
        Arc::new(SessionFlag(AtomicBool::new(true)))
    }
    pub(crate) fn is_alive(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub(crate) fn set_dead(&self) {
        self.0.store(false, Ordering::SeqCst)
    }
}

pub(crate) type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
pub(crate) type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// One shell process that runs commands one after another, keeping `cd`, variables and
/// `export`s between them. Made by [`crate::Job::open_shell`].
pub struct ShellSession {
    reader: BoxRead,
    writer: Option<BoxWrite>,
    backend: Box<dyn SessionBackend>,
    scanner: Scanner,
    flag: Arc<SessionFlag>,
    dead: bool,
}

impl std::fmt::Debug for ShellSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellSession")
            .field("dead", &self.dead)
            .finish_non_exhaustive()
    }
}

/// Output and status of a command run for the executor's own purposes.
pub(crate) struct Captured {
    pub(crate) status: CommandStatus,
    pub(crate) output: Vec<u8>,
}

impl ShellSession {
    /// Wraps a freshly spawned shell and sends the preamble (stderr into stdout).
    pub(crate) async fn start(
        reader: BoxRead,
        writer: BoxWrite,
        backend: Box<dyn SessionBackend>,
        flag: Arc<SessionFlag>,
    ) -> Result<Self, ExecutorError> {
        let mut session = ShellSession {
            reader,
            writer: Some(writer),
            backend,
            scanner: Scanner::new(new_nonce()),
            flag,
            dead: false,
        };
        // One stream carries everything, so output order is exactly what the shell wrote.
        if let Some(w) = session.writer.as_mut() {
            w.write_all(b"exec 2>&1\n")
                .await
                .map_err(|e| ExecutorError::io("sending the session preamble", e))?;
        }
        // A command that proves the shell is alive and reading, so a broken image or
        // user fails here (at open) rather than at the first build command.
        let probe = session.run_captured("true").await?;
        match probe.status {
            CommandStatus::Exited(0) => Ok(session),
            other => Err(ExecutorError::Protocol {
                detail: format!(
                    "the shell did not start properly ({other:?}): {}",
                    String::from_utf8_lossy(&probe.output).trim()
                ),
            }),
        }
    }

    /// Runs one command in the session, streaming its output (stdout and stderr merged,
    /// in order) to `sink`. A non-zero exit is `Ok(Exited(n))`; the shell itself exiting
    /// is `Ok(SessionEnded(code))`; `cancel` kills the session's processes and gives
    /// `Ok(Cancelled)`. After either of the last two, further calls return
    /// `Err(ExecutorError::SessionEnded)`.
    ///
    /// Output reaches `sink` as soon as it is read, except that a trailing `\n` (which
    /// could begin the end-of-command marker) is held until the next bytes arrive; it is
    /// never lost. Memory use is one 64 KiB buffer per session, whatever the output size.
    pub async fn run(
        &mut self,
        command: &str,
        sink: &mut dyn LogSink,
        cancel: &CancellationToken,
    ) -> Result<CommandStatus, ExecutorError> {
        if self.dead {
            return Err(ExecutorError::SessionEnded);
        }
        let line = self.scanner.command_line(command);
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            r = exchange(&mut self.reader, &mut self.writer, &mut self.scanner, &line, sink) => Some(r),
        };
        match result {
            None => {
                tracing::debug!("command cancelled; killing the session");
                // A held-back `\n` that could have begun a marker was output after all.
                self.scanner.flush_all(sink).await;
                self.mark_dead();
                self.backend.kill().await?;
                Ok(CommandStatus::Cancelled)
            }
            Some(Ok(Some(code))) => Ok(CommandStatus::Exited(code)),
            Some(Ok(None)) => {
                self.mark_dead();
                let code = self.backend.exit_code().await?;
                tracing::debug!(?code, "shell exited during a command");
                Ok(CommandStatus::SessionEnded(code))
            }
            Some(Err(e)) => {
                // The pipe broke under us: the session is unusable, make sure nothing lingers.
                self.mark_dead();
                let _ = self.backend.kill().await;
                Err(e)
            }
        }
    }

    /// Runs a command and keeps its output in memory; only for short internal commands.
    pub(crate) async fn run_captured(&mut self, command: &str) -> Result<Captured, ExecutorError> {
        let mut output = Vec::new();
        let status = self
            .run(command, &mut output, &CancellationToken::new())
            .await?;
        Ok(Captured { status, output })
    }

    /// Ends the session: asks the shell to exit, and kills it if it does not within a few
    /// seconds (a background job may hold it). Safe on a session that already ended.
    pub async fn close(mut self) -> Result<(), ExecutorError> {
        if self.dead {
            return Ok(());
        }
        self.mark_dead();
        if let Some(mut w) = self.writer.take() {
            // Errors here mean the shell is already gone, which is what we want.
            let _ = w.write_all(b"exit 0\n").await;
            let _ = w.shutdown().await;
        }
        let mut sink = tokio::io::sink();
        let drained = tokio::time::timeout(CLOSE_GRACE, async {
            let mut buf = vec![0u8; 8192];
            loop {
                match self.reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = sink.write_all(&buf[..n]).await;
                    }
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shell did not exit within {CLOSE_GRACE:?}; killing it");
            self.backend.kill().await?;
        } else {
            let _ = self.backend.exit_code().await;
        }
        Ok(())
    }

    fn mark_dead(&mut self) {
        self.dead = true;
        self.flag.set_dead();
    }
}

/// Writes the command line while reading output (so a chatty background job filling the
/// pipe cannot deadlock us against the shell) until the marker or end of file.
/// `Ok(Some(status))` on a marker, `Ok(None)` when the shell's stdout closed.
async fn exchange(
    reader: &mut BoxRead,
    writer: &mut Option<BoxWrite>,
    scanner: &mut Scanner,
    line: &[u8],
    sink: &mut dyn LogSink,
) -> Result<Option<i32>, ExecutorError> {
    let mut written = 0usize;
    let mut flushed = false;
    loop {
        // Output left over from before this command (a background job) goes out first.
        if let Some(status) = scanner.drain(sink).await {
            return Ok(Some(status));
        }
        let want_write = !flushed && writer.is_some();
        tokio::select! {
            r = write_some(writer, &line[written..]), if want_write => {
                match r {
                    Ok(0) => flushed = true,
                    Ok(n) => written += n,
                    // The shell is gone; its stdout will tell us how it ended.
                    Err(e) => {
                        tracing::debug!(error = %e, "writing to the shell failed");
                        *writer = None;
                    }
                }
            }
            r = scanner.fill(reader) => {
                match r {
                    Ok(0) => {
                        scanner.flush_all(sink).await;
                        return Ok(None);
                    }
                    Ok(_) => {}
                    Err(e) => return Err(ExecutorError::io("reading the shell's output", e)),
                }
            }
        }
    }
}

/// Writes part of `data`; returns 0 once everything was written and flushed.
async fn write_some(writer: &mut Option<BoxWrite>, data: &[u8]) -> std::io::Result<usize> {
    let Some(w) = writer.as_mut() else {
        return Ok(0);
    };
    if data.is_empty() {
        w.flush().await?;
        return Ok(0);
    }
    w.write(data).await
}

/// 128 random bits, hex: unguessable by commands, so user output cannot forge a marker.
fn new_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The shell line that runs `command` and prints the marker with its status.
pub(crate) fn frame_command(command: &str, nonce: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(command.len() + 96);
    line.extend_from_slice(b"eval '");
    for (i, part) in command.split('\'').enumerate() {
        if i > 0 {
            line.extend_from_slice(b"'\\''");
        }
        line.extend_from_slice(part.as_bytes());
    }
    line.extend_from_slice(b"' </dev/null; printf '\\n\\036SLIPWAY-%s-%d\\036\\n' ");
    line.extend_from_slice(nonce.as_bytes());
    line.extend_from_slice(b" \"$?\"\n");
    line
}

/// Finds markers in the shell's output. Holds one fixed buffer: bytes are read into it,
/// output is handed out as slices of it, and only a possible marker prefix (< 64 bytes)
/// is ever moved, so memory stays bounded and nothing is allocated per read or line.
struct Scanner {
    nonce: String,
    prefix: Vec<u8>,
    finder: memmem::Finder<'static>,
    buf: Box<[u8]>,
    /// `buf[start..filled]` is read but not yet handed out.
    start: usize,
    filled: usize,
}

/// The longest status we accept after the prefix; `$?` is at most 3 digits.
const MAX_STATUS_DIGITS: usize = 10;

impl Scanner {
    fn new(nonce: String) -> Self {
        let prefix = format!("\n\x1eSLIPWAY-{nonce}-").into_bytes();
        let finder = memmem::Finder::new(&prefix).into_owned();
        Scanner {
            nonce,
            prefix,
            finder,
            buf: vec![0u8; READ_SIZE + 128].into_boxed_slice(),
            start: 0,
            filled: 0,
        }
    }

    fn command_line(&self, command: &str) -> Vec<u8> {
        frame_command(command, &self.nonce)
    }

    /// Reads more output into the buffer; 0 means end of file.
    async fn fill(&mut self, reader: &mut BoxRead) -> std::io::Result<usize> {
        if self.start > 0 {
            // Only a short possible-marker tail remains: move it to the front.
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        let n = reader.read(&mut self.buf[self.filled..]).await?;
        self.filled += n;
        Ok(n)
    }

    /// Hands out all output that cannot be part of a marker; returns the status if a
    /// complete marker was found (and consumes it).
    async fn drain(&mut self, sink: &mut dyn LogSink) -> Option<i32> {
        loop {
            let window = &self.buf[self.start..self.filled];
            if window.is_empty() {
                return None;
            }
            match self.finder.find(window) {
                Some(at) => {
                    let after = at + self.prefix.len();
                    match parse_status(&window[after..]) {
                        Parsed::Complete { status, len } => {
                            if at > 0 {
                                sink.write(&window[..at]).await;
                            }
                            self.start += after + len;
                            return Some(status);
                        }
                        Parsed::Incomplete => {
                            if at > 0 {
                                sink.write(&window[..at]).await;
                            }
                            self.start += at;
                            return None;
                        }
                        Parsed::Invalid => {
                            // Our prefix, but not followed by a status: plain output.
                            sink.write(&window[..at + 1]).await;
                            self.start += at + 1;
                        }
                    }
                }
                None => {
                    let keep = self.possible_prefix_len(window);
                    let emit = window.len() - keep;
                    if emit > 0 {
                        sink.write(&window[..emit]).await;
                    }
                    self.start += emit;
                    return None;
                }
            }
        }
    }

    /// At end of file whatever is held back was output after all.
    async fn flush_all(&mut self, sink: &mut dyn LogSink) {
        let _ = self.drain(sink).await;
        if self.start < self.filled {
            sink.write(&self.buf[self.start..self.filled]).await;
        }
        self.start = 0;
        self.filled = 0;
    }

    /// Length of the longest tail of `window` that could begin a marker (a prefix of
    /// `prefix`, or all of it followed by an incomplete status).
    fn possible_prefix_len(&self, window: &[u8]) -> usize {
        let from = window.len().saturating_sub(self.prefix.len() - 1);
        for i in memchr::memchr_iter(b'\n', &window[from..]) {
            let tail = &window[from + i..];
            if self.prefix.starts_with(tail) {
                return tail.len();
            }
        }
        0
    }
}

enum Parsed {
    Complete { status: i32, len: usize },
    Incomplete,
    Invalid,
}

/// Parses `<digits>\x1e\n` at the start of `rest`.
fn parse_status(rest: &[u8]) -> Parsed {
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > MAX_STATUS_DIGITS {
        return Parsed::Invalid;
    }
    let tail = &rest[digits..];
    match tail {
        [] => Parsed::Incomplete,
        [0x1e] if digits > 0 => Parsed::Incomplete,
        [0x1e, b'\n', ..] if digits > 0 => {
            // At most 10 ASCII digits: valid UTF-8, and `$?` never exceeds 255.
            let text = std::str::from_utf8(&rest[..digits]).unwrap_or("");
            match text.parse::<i64>() {
                Ok(v) => Parsed::Complete {
                    status: i32::try_from(v).unwrap_or(i32::MAX),
                    len: digits + 2,
                },
                Err(_) => Parsed::Invalid,
            }
        }
        _ => Parsed::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` as separate reads and returns (outputs per command, statuses).
    async fn scan(nonce: &str, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<i32>) {
        let mut s = Scanner::new(nonce.to_string());
        let mut outs = vec![Vec::new()];
        let mut statuses = Vec::new();
        for c in chunks {
            let c: BoxRead = Box::pin(std::io::Cursor::new(c.to_vec()));
            let mut c = c;
            s.fill(&mut c).await.unwrap();
            while let Some(st) = s.drain(outs.last_mut().unwrap()).await {
                statuses.push(st);
                outs.push(Vec::new());
            }
        }
        s.flush_all(outs.last_mut().unwrap()).await;
        (outs, statuses)
    }

    #[tokio::test]
    async fn marker_split_at_every_byte() {
        let nonce = "ab12";
        let stream = b"hello\nworld\n\x1eSLIPWAY-ab12-42\x1e\nnext".to_vec();
        for cut in 0..stream.len() {
            let (outs, st) = scan(nonce, &[&stream[..cut], &stream[cut..]]).await;
            assert_eq!(st, vec![42], "cut at {cut}");
            assert_eq!(outs[0], b"hello\nworld", "cut at {cut}");
            assert_eq!(outs[1], b"next", "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn wrong_nonce_and_garbage_are_output() {
        let stream = b"a\n\x1eSLIPWAY-ffff-1\x1e\nb\n\x1eSLIPWAY-ab12-x\n\x1eSLIPWAY-ab12-0\x1e\n";
        let (outs, st) = scan("ab12", &[stream]).await;
        assert_eq!(st, vec![0]);
        assert_eq!(outs[0], b"a\n\x1eSLIPWAY-ffff-1\x1e\nb\n\x1eSLIPWAY-ab12-x");
    }

    #[test]
    fn quoting_survives_single_quotes() {
        let line = frame_command("echo 'a'", "n");
        assert!(line.starts_with(b"eval 'echo '\\''a'\\'''"));
    }
}
