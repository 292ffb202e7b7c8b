//! The event sink an execution writes to, and the log sink that turns command output into
//! stored logs plus `Log` events.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use slipway_executor::LogSink;
use slipway_model::Digest;
use slipway_proto::{EVENT_SCHEMA_VERSION, Event, EventBody};
use slipway_store::{BlobStore, BlobWriter};
use tokio::sync::mpsc;

/// Numbers and timestamps events and hands them to one consumer (the CLI's printer, the
/// server's store). Bounded: a slow consumer slows the build instead of filling memory.
#[derive(Clone)]
pub struct EventSink {
    inner: Arc<Inner>,
}

struct Inner {
    execution: String,
    seq: AtomicU64,
    tx: mpsc::Sender<Event>,
}

impl EventSink {
    /// A sink and the receiving end; `capacity` events may wait before `emit` waits.
    pub fn channel(execution: impl Into<String>, capacity: usize) -> (Self, mpsc::Receiver<Event>) {
        Self::channel_after(execution, capacity, 0)
    }

    /// A sink whose first event gets `last_seq + 1`: an execution's stream continued after a
    /// retry or a restart.
    pub fn channel_after(
        execution: impl Into<String>,
        capacity: usize,
        last_seq: u64,
    ) -> (Self, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Self {
                inner: Arc::new(Inner {
                    execution: execution.into(),
                    seq: AtomicU64::new(last_seq),
                    tx,
                }),
            },
            rx,
        )
    }

    pub fn execution(&self) -> &str {
        &self.inner.execution
    }

    pub async fn emit(&self, body: EventBody) {
        self.emit_seq(body).await;
    }

    /// Emits and returns the event's sequence number (the server waits for it to be stored
    /// before it acknowledges an agent's events).
    pub async fn emit_seq(&self, body: EventBody) -> u64 {
        let event = Event {
            v: EVENT_SCHEMA_VERSION,
            seq: self.inner.seq.fetch_add(1, Ordering::SeqCst) + 1,
            time_ms: now_ms(),
            execution: self.inner.execution.clone(),
            body,
        };
        let seq = event.seq;
        // A consumer that went away (the CLI exiting) must not fail the build.
        let _ = self.inner.tx.send(event).await;
        seq
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Longest partial line held back before it is sent anyway (bounds memory on output with no newlines).
const MAX_PARTIAL_LINE: usize = 64 * 1024;

/// Where an action's output goes: the full bytes into one blob, whole lines as `Log` events.
pub struct ActionLog {
    events: EventSink,
    stage: String,
    action: String,
    blob: Option<BlobWriter>,
    partial: Vec<u8>,
    /// The last bytes of output, for `RETRY-<regex>` matching and failure summaries.
    tail: Vec<u8>,
}

const TAIL: usize = 16 * 1024;

impl ActionLog {
    pub async fn new(events: EventSink, store: &BlobStore, stage: &str, action: &str) -> Self {
        let blob = match store.writer().await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "log storage unavailable; the log is only streamed");
                None
            }
        };
        Self {
            events,
            stage: stage.into(),
            action: action.into(),
            blob,
            partial: Vec::new(),
            tail: Vec::new(),
        }
    }

    /// Writes a line of Slipway's own (phase notes, warnings) into the log and the stream.
    pub async fn note(&mut self, text: &str) {
        let line = format!("[slipway] {text}\n");
        self.write(line.as_bytes()).await;
    }

    /// Clears the remembered tail (called when a command starts).
    pub fn reset_tail(&mut self) {
        self.tail.clear();
    }

    pub fn tail(&self) -> &[u8] {
        &self.tail
    }

    async fn emit_text(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes).into_owned();
        self.events
            .emit(EventBody::Log {
                stage: self.stage.clone(),
                action: self.action.clone(),
                text,
            })
            .await;
    }

    /// Sends any unterminated last line and stores the log; returns its digest.
    pub async fn finish(mut self) -> Option<Digest> {
        if !self.partial.is_empty() {
            let mut p = std::mem::take(&mut self.partial);
            p.push(b'\n');
            self.emit_text(&p).await;
        }
        match self.blob.take() {
            Some(w) => match w.finish().await {
                Ok((d, _)) => Some(d),
                Err(e) => {
                    tracing::warn!(error = %e, "could not store the log");
                    None
                }
            },
            None => None,
        }
    }
}

#[async_trait]
impl LogSink for ActionLog {
    async fn write(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Some(w) = self.blob.as_mut()
            && let Err(e) = w.write(data).await
        {
            tracing::warn!(error = %e, "log storage failed; the log is only streamed from here");
            self.blob = None;
        }
        if data.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - TAIL..]);
        } else {
            let excess = (self.tail.len() + data.len()).saturating_sub(TAIL);
            self.tail.drain(..excess);
            self.tail.extend_from_slice(data);
        }
        match memchr::memrchr(b'\n', data) {
            Some(last) => {
                if self.partial.is_empty() {
                    self.emit_text(&data[..=last]).await;
                } else {
                    let mut buf = std::mem::take(&mut self.partial);
                    buf.extend_from_slice(&data[..=last]);
                    self.emit_text(&buf).await;
                }
                self.partial.extend_from_slice(&data[last + 1..]);
            }
            None => {
                self.partial.extend_from_slice(data);
                if self.partial.len() >= MAX_PARTIAL_LINE {
                    let p = std::mem::take(&mut self.partial);
                    self.emit_text(&p).await;
                }
            }
        }
    }
}
