//! `slipway logs [-f] EXECUTION`: an execution's events from the server, shown as
//! `slipway run` shows them (render.rs); `-f` follows the live event stream (SSE) until the
//! execution ends, picking up after the last event seen when the connection drops.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use slipway_model::Status;
use slipway_proto::api::{ActionState, ExecutionDetail, Page};
use slipway_proto::{Event, EventBody};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc};

use super::UsageError;
use super::client::{self, Client, ExecutionRef, ServerFailed, Unreachable};
use super::{execution, render};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: client::ServerArgs,
    /// Follow the execution live until it ends; exit 0 if it succeeded, else 1. Ctrl-C stops
    /// following; the execution goes on.
    #[arg(short, long)]
    follow: bool,
    /// `project#number`, or `project` for its latest.
    execution: ExecutionRef,
    /// Only this action's lines (`action` or `stage/action`).
    #[arg(long, value_name = "NAME")]
    action: Option<String>,
    /// The action's stored log exactly as written, without prefixes (needs --action).
    #[arg(long, requires = "action", conflicts_with = "follow")]
    raw: bool,
}

/// How events are shown.
pub struct View {
    pub json: bool,
    /// Only events of this action (`action` or `stage/action`; a batch build's parent
    /// name takes in its builds).
    pub action: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let c = Client::new(&args.server)?;
    let (project, number) = c.resolve(&args.execution).await?;
    if args.raw {
        let name = args.action.as_deref().unwrap_or_default();
        return raw(&c, &project, number, name).await;
    }
    let view = View {
        json: c.json,
        action: args.action,
    };
    if args.follow {
        follow(&c, &project, number, &view).await
    } else {
        stored(&c, &project, number, &view).await
    }
}

/// What is stored so far, then a closing line; exit 0 whatever the execution's status.
async fn stored(c: &Client, project: &str, number: u64, view: &View) -> anyhow::Result<ExitCode> {
    let d = c.execution(project, number).await?.value;
    if let Some(a) = &view.action
        && d.execution.status.is_terminal()
    {
        find_action(&d, a)?;
    }
    let printer = Printer::new(view);
    let mut after = 0u64;
    let result = async {
        loop {
            let mut url = c.execution_url(project, number, &["events"]);
            url.query_pairs_mut()
                .append_pair("after", &after.to_string())
                .append_pair("limit", "1000");
            let page = c.get::<Page<Event>>(url).await?.value;
            let got = page.items.len();
            for ev in page.items {
                if ev.seq > after {
                    after = ev.seq;
                    printer.send(ev).await;
                }
            }
            if got == 0 || page.next.is_none() {
                return anyhow::Ok(());
            }
        }
    }
    .await;
    printer.finish().await;
    result?;
    if !view.json {
        let d = c.execution(project, number).await?.value;
        closing(&d, false);
    }
    Ok(ExitCode::SUCCESS)
}

/// Gives up after this many failed reconnections in a row (about two minutes).
const MAX_RECONNECTS: u32 = 30;
/// A stream quiet this long (no event, no keep-alive) is re-opened.
const IDLE: Duration = Duration::from_secs(60);

/// Follows the live stream until the execution ends; exit 0 if it succeeded, else 1.
pub async fn follow(
    c: &Client,
    project: &str,
    number: u64,
    view: &View,
) -> anyhow::Result<ExitCode> {
    // A typo is a 404 here (exit 2), not a stream error.
    c.execution(project, number).await?;
    let printer = Printer::new(view);
    let result = follow_events(c, project, number, &printer).await;
    printer.finish().await;
    let d = result?;
    if !view.json {
        closing(&d, true);
    }
    Ok(match d.execution.status {
        Status::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

async fn follow_events(
    c: &Client,
    project: &str,
    number: u64,
    printer: &Printer,
) -> anyhow::Result<ExecutionDetail> {
    let mut last = 0u64;
    let mut failures = 0u32;
    loop {
        let before = last;
        let outcome = stream_once(c, project, number, &mut last, printer).await;
        if last > before {
            failures = 0;
        }
        let outcome = match outcome {
            Ok(()) => c.execution(project, number).await.map(|d| Some(d.value)),
            Err(e) => Err(e),
        };
        match outcome {
            // The server closes the stream once the execution is over and every event was sent.
            Ok(Some(d)) if d.execution.status.is_terminal() && last >= d.last_seq => return Ok(d),
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) if retryable(&e) => {
                failures += 1;
                if failures > MAX_RECONNECTS {
                    return Err(e.context(format!("following {project}#{number}")));
                }
                if failures == 1 {
                    let why = match e.downcast_ref::<Unreachable>() {
                        Some(u) => u.cause.clone(),
                        None => format!("{e:#}"),
                    };
                    eprintln!(
                        "lost the connection to {} ({why}); reconnecting after event {last}",
                        c.server()
                    );
                }
                let wait = Duration::from_millis(250 << failures.min(4));
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The stream broke after it was opened (the connection dropped mid-way).
#[derive(Debug)]
struct StreamBroken(String);

impl std::fmt::Display for StreamBroken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the event stream broke: {}", self.0)
    }
}

impl std::error::Error for StreamBroken {}

fn retryable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Unreachable>().is_some()
        || e.downcast_ref::<ServerFailed>().is_some()
        || e.downcast_ref::<StreamBroken>().is_some()
}

/// One SSE connection, from after `last`; returns when the server ends the stream (or it
/// stays quiet for [`IDLE`]).
async fn stream_once(
    c: &Client,
    project: &str,
    number: u64,
    last: &mut u64,
    printer: &Printer,
) -> anyhow::Result<()> {
    let url = c.execution_url(project, number, &["events"]);
    let mut req = c
        .request(Method::GET, url)
        .header(ACCEPT, "text/event-stream");
    if *last > 0 {
        req = req.header("Last-Event-ID", last.to_string());
    }
    let resp = c.send(req).await?;
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    anyhow::ensure!(
        ct.starts_with("text/event-stream"),
        "the server answered the event stream with `{ct}`, not text/event-stream"
    );
    let mut body = resp.bytes_stream();
    let mut parser = SseParser::default();
    loop {
        let chunk = match tokio::time::timeout(IDLE, body.next()).await {
            Err(_) | Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => {
                let mut cause: &dyn std::error::Error = &e;
                while let Some(s) = cause.source() {
                    cause = s;
                }
                return Err(StreamBroken(cause.to_string()).into());
            }
            Ok(Some(Ok(b))) => b,
        };
        for msg in parser.push(&chunk) {
            let ev: Event = match serde_json::from_str(&msg.data) {
                Ok(ev) => ev,
                Err(e) => {
                    // An event type this client does not know (a newer server): skip it.
                    tracing::warn!(error = %e, id = ?msg.id, "unreadable event");
                    if let Some(id) = msg.id.and_then(|i| i.parse::<u64>().ok()) {
                        *last = (*last).max(id);
                    }
                    continue;
                }
            };
            if ev.seq <= *last {
                continue;
            }
            *last = ev.seq;
            printer.send(ev).await;
        }
    }
}

/// Hands events to render.rs's printer, the same one `slipway run` uses.
struct Printer {
    tx: mpsc::Sender<Event>,
    task: tokio::task::JoinHandle<()>,
    action: Option<String>,
}

impl Printer {
    fn new(view: &View) -> Printer {
        let (tx, rx) = mpsc::channel(1024);
        // No approval is asked here, so nobody waits on the prompt permits.
        let task = tokio::spawn(render::consume(rx, view.json, Arc::new(Semaphore::new(0))));
        Printer {
            tx,
            task,
            action: view.action.clone(),
        }
    }

    async fn send(&self, ev: Event) {
        if self.wants(&ev) {
            let _ = self.tx.send(ev).await;
        }
    }

    fn wants(&self, ev: &Event) -> bool {
        let Some(f) = &self.action else {
            return true;
        };
        let (stage, action) = match &ev.body {
            EventBody::ExecutionStarted { .. } | EventBody::ExecutionFinished { .. } => {
                return true;
            }
            EventBody::ActionStarted { stage, action, .. }
            | EventBody::PhaseStarted { stage, action, .. }
            | EventBody::Log { stage, action, .. }
            | EventBody::PhaseFinished { stage, action, .. }
            | EventBody::ApprovalWaiting { stage, action, .. }
            | EventBody::ApprovalDecided { stage, action, .. }
            | EventBody::ActionFinished { stage, action, .. } => (stage, action),
            _ => return false,
        };
        action_matches(f, stage, action)
    }

    async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

/// `--action NAME`: the action's name or `stage/action`; a batch build's parent name also
/// takes in its builds (`build/linux`).
fn action_matches(filter: &str, stage: &str, action: &str) -> bool {
    let full = format!("{stage}/{action}");
    [action, full.as_str()].iter().any(|n| {
        *n == filter
            || n.strip_prefix(filter)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The one action `name` means; several or none is a usage error naming the choices.
fn find_action<'a>(d: &'a ExecutionDetail, name: &str) -> anyhow::Result<&'a ActionState> {
    let exact: Vec<&ActionState> = d
        .actions
        .iter()
        .filter(|a| format!("{}/{}", a.stage, a.action) == name)
        .collect();
    let found: Vec<&ActionState> = if exact.is_empty() {
        d.actions.iter().filter(|a| a.action == name).collect()
    } else {
        exact
    };
    let all = |v: &[&ActionState]| {
        v.iter()
            .map(|a| format!("{}/{}", a.stage, a.action))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match found.as_slice() {
        [one] => Ok(one),
        [] => {
            let every: Vec<&ActionState> = d.actions.iter().collect();
            Err(UsageError(format!(
                "{} has no action `{name}`; its actions: {}",
                d.execution.name,
                if every.is_empty() {
                    "none yet".to_string()
                } else {
                    all(&every)
                }
            ))
            .into())
        }
        many => Err(UsageError(format!(
            "`{name}` names several actions ({}); write stage/action",
            all(many)
        ))
        .into()),
    }
}

/// `--raw`: the action's stored log, streamed to stdout as it was written.
async fn raw(c: &Client, project: &str, number: u64, name: &str) -> anyhow::Result<ExitCode> {
    let d = c.execution(project, number).await?.value;
    let a = find_action(&d, name)?;
    let url = c.execution_url(project, number, &["actions", &a.stage, &a.action, "log"]);
    let resp = c.send(c.request(Method::GET, url)).await?;
    let mut body = resp.bytes_stream();
    let mut out = tokio::io::stdout();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| c.unreachable(&e))?;
        out.write_all(&chunk).await.context("writing to stdout")?;
    }
    out.flush().await?;
    Ok(ExitCode::SUCCESS)
}

/// After the events: with `table`, every action as `slipway run` ends; then the result.
fn closing(d: &ExecutionDetail, table: bool) {
    let now = client::now_ms();
    let e = &d.execution;
    let mut out = std::io::stdout().lock();
    if table && !d.actions.is_empty() {
        let _ = writeln!(out);
        execution::actions_table(&mut out, &d.actions, now);
    }
    let _ = writeln!(out);
    if e.status.is_terminal() {
        let reason = e
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "==> {} {} in {}{reason}",
            e.name,
            e.status,
            client::took(e.started_ms, e.finished_ms, now)
        );
    } else {
        let _ = writeln!(
            out,
            "==> {} is {}; follow it with `slipway logs -f {}`",
            e.name, e.status, e.name
        );
    }
    let _ = out.flush();
}

/// One server-sent event.
#[derive(Debug, PartialEq)]
struct SseMessage {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// Server-sent events from chunks of bytes that may split lines anywhere.
#[derive(Default)]
struct SseParser {
    buf: Vec<u8>,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    fn push(&mut self, chunk: &[u8]) -> Vec<SseMessage> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let line = self.buf[start..end]
                .strip_suffix(b"\r")
                .unwrap_or(&self.buf[start..end]);
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            self.line(&line, &mut out);
        }
        self.buf.drain(..start);
        out
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseMessage>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseMessage {
                    id: self.id.clone(),
                    event: self.event.take(),
                    data,
                });
            }
            self.event = None;
            return;
        }
        if line.starts_with(':') {
            return; // a comment: keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "id" => self.id = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, event: &str, data: &str) -> SseMessage {
        SseMessage {
            id: Some(id.into()),
            event: Some(event.into()),
            data: data.into(),
        }
    }

    #[test]
    fn sse_messages_split_anywhere_with_comments_and_crlf() {
        let text = ": keep-alive\n\nid: 1\nevent: log\ndata: {\"a\":1}\n\nid:2\r\nevent: log\r\ndata: x\r\ndata: y\r\n\r\n";
        for split in 0..text.len() {
            let mut p = SseParser::default();
            let mut got = p.push(&text.as_bytes()[..split]);
            got.extend(p.push(&text.as_bytes()[split..]));
            assert_eq!(
                got,
                vec![msg("1", "log", "{\"a\":1}"), msg("2", "log", "x\ny")],
                "split at {split}"
            );
        }
    }

    #[test]
    fn action_filters() {
        assert!(action_matches("test", "build", "test"));
        assert!(action_matches("build/test", "build", "test"));
        assert!(action_matches("test", "build", "test/linux"));
        assert!(!action_matches("test", "build", "tests"));
        assert!(!action_matches("other/test", "build", "test"));
    }
}
