//! A job's events on their way to the server: gathered into numbered chunks (sealed every
//! 100 ms, or at 500 events or 256 KiB), sent one at a time in order, and kept until the
//! server acknowledges them. While the server is away they pile up here (the build keeps
//! running) and go out, in order and exactly once, when it answers again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_proto::job::EventChunk;
use slipway_proto::{Event, EventBody};
use tokio::sync::{Notify, mpsc};

use crate::{JobSource, SourceError};

const SEAL_EVERY: Duration = Duration::from_millis(100);
const CHUNK_EVENTS: usize = 500;
const CHUNK_BYTES: usize = 256 * 1024;
/// Beyond this many unacknowledged bytes the collector stops reading: the build slows down
/// (its event channel is bounded) instead of the agent's memory growing without end.
const MAX_BUFFERED: usize = 256 * 1024 * 1024;

#[derive(Default)]
struct Queue {
    chunks: VecDeque<(u64, Vec<EventBody>, usize)>,
    bytes: usize,
    /// The events ended: what is queued is all there is.
    closed: bool,
    /// The last chunk number sealed.
    sealed: u64,
}

/// Figures for the log and the benchmark.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sent {
    pub chunks: u64,
    pub events: u64,
    pub retries: u64,
}

/// Sends everything `rx` yields as chunks of job `job`; returns the last chunk's number once
/// every chunk is acknowledged (0 when there were no events), or the lease loss.
pub async fn run(
    source: &dyn JobSource,
    job: i64,
    lease_id: &str,
    mut rx: mpsc::Receiver<Event>,
) -> Result<Sent, SourceError> {
    let queue = Arc::new(Mutex::new(Queue::default()));
    let wake_sender = Arc::new(Notify::new());
    let wake_collector = Arc::new(Notify::new());
    let collector = {
        let queue = queue.clone();
        let wake_sender = wake_sender.clone();
        let wake_collector = wake_collector.clone();
        async move {
            let mut current: Vec<EventBody> = Vec::new();
            let mut bytes = 0usize;
            let seal = |current: &mut Vec<EventBody>, bytes: &mut usize| {
                if current.is_empty() {
                    return;
                }
                let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                q.sealed += 1;
                let n = q.sealed;
                q.bytes += *bytes;
                q.chunks.push_back((n, std::mem::take(current), *bytes));
                *bytes = 0;
                drop(q);
                wake_sender.notify_one();
            };
            let mut tick = tokio::time::interval(SEAL_EVERY);
            loop {
                let full = queue.lock().unwrap_or_else(|e| e.into_inner()).bytes > MAX_BUFFERED;
                if full {
                    seal(&mut current, &mut bytes);
                    wake_collector.notified().await;
                    continue;
                }
                tokio::select! {
                    e = rx.recv() => match e {
                        Some(e) => {
                            bytes += approx_size(&e.body);
                            current.push(e.body);
                            if current.len() >= CHUNK_EVENTS || bytes >= CHUNK_BYTES {
                                seal(&mut current, &mut bytes);
                            }
                        }
                        None => break,
                    },
                    _ = tick.tick() => seal(&mut current, &mut bytes),
                }
            }
            seal(&mut current, &mut bytes);
            queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            wake_sender.notify_one();
        }
    };
    let sender = async {
        let mut sent = Sent::default();
        let mut backoff = Duration::from_millis(100);
        loop {
            let front = {
                let q = queue.lock().unwrap_or_else(|e| e.into_inner());
                match q.chunks.front() {
                    Some((n, events, _)) => Some((*n, events.clone())),
                    None if q.closed => {
                        sent.chunks = q.sealed;
                        return Ok(sent);
                    }
                    None => None,
                }
            };
            let Some((n, events)) = front else {
                wake_sender.notified().await;
                continue;
            };
            let chunk = EventChunk {
                lease_id: lease_id.to_string(),
                chunk: n,
                events,
            };
            match source.send_events(job, &chunk).await {
                Ok(ack) => {
                    backoff = Duration::from_millis(100);
                    if ack.acked_through + 1 < n {
                        return Err(SourceError::LeaseLost(format!(
                            "the server has chunks up to {} stored, but {} was acknowledged before",
                            ack.acked_through,
                            n - 1
                        )));
                    }
                    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                    while q
                        .chunks
                        .front()
                        .is_some_and(|(c, _, _)| *c <= ack.acked_through)
                    {
                        if let Some((_, ev, b)) = q.chunks.pop_front() {
                            q.bytes -= b;
                            sent.events += ev.len() as u64;
                        }
                    }
                    drop(q);
                    wake_collector.notify_one();
                }
                Err(SourceError::Retry(e)) => {
                    sent.retries += 1;
                    tracing::debug!(job, chunk = n, error = %e, "events not acknowledged; sending again in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    };
    tokio::pin!(collector);
    tokio::pin!(sender);
    let mut collecting = true;
    loop {
        tokio::select! {
            _ = &mut collector, if collecting => collecting = false,
            r = &mut sender => return r,
        }
    }
}

fn approx_size(e: &EventBody) -> usize {
    match e {
        EventBody::Log { text, .. } => text.len() + 64,
        _ => 256,
    }
}
