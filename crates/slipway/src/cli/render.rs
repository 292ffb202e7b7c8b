//! Shows an execution's events to a person (prefixed live logs, phase headers, a spinner
//! while nothing prints, a closing summary) or to a machine (`--json`: one event per line).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use slipway_proto::{Event, EventBody};
use tokio::sync::{Semaphore, mpsc};

fn new_spinner() -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Consumes events until the sender side closes; writes to stdout.
///
/// An approval asked at the terminal must not be drawn over: for each `approval_waiting`
/// event the spinner is taken down and, once the event is printed, one permit is added to
/// `prompts`, which the approver takes before it asks.
pub async fn consume(mut rx: mpsc::Receiver<Event>, json: bool, prompts: Arc<Semaphore>) {
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout());
    let animate = !json && std::io::stderr().is_terminal();
    let mut spinner = animate.then(new_spinner);
    let mut waiting = 0usize;
    while let Some(ev) = rx.recv().await {
        let mut batch = vec![ev];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 256 {
                break;
            }
        }
        let write = |out: &mut dyn Write| {
            for ev in &batch {
                if json {
                    if let Ok(s) = serde_json::to_string(ev) {
                        let _ = writeln!(out, "{s}");
                    }
                } else {
                    human(out, ev);
                }
            }
            let _ = out.flush();
        };
        match &spinner {
            Some(pb) => {
                pb.suspend(|| write(&mut out));
                if let Some(msg) = spinner_message(batch.last()) {
                    pb.set_message(msg);
                }
            }
            None => write(&mut out),
        }
        for ev in &batch {
            match ev.body {
                EventBody::ApprovalWaiting { .. } => {
                    waiting += 1;
                    if let Some(pb) = spinner.take() {
                        pb.finish_and_clear();
                    }
                    prompts.add_permits(1);
                }
                EventBody::ApprovalDecided { .. } => {
                    waiting = waiting.saturating_sub(1);
                    if waiting == 0 && animate && spinner.is_none() {
                        spinner = Some(new_spinner());
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }
    let _ = out.flush();
}

fn spinner_message(ev: Option<&Event>) -> Option<String> {
    match &ev?.body {
        EventBody::PhaseStarted { action, phase, .. } => Some(format!("{action}: {phase}")),
        EventBody::ApprovalWaiting { action, .. } => {
            Some(format!("{action}: waiting for approval"))
        }
        EventBody::ExecutionFinished { .. } => Some(String::new()),
        _ => None,
    }
}

fn secs(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

pub fn human(out: &mut dyn Write, ev: &Event) {
    match &ev.body {
        EventBody::ExecutionStarted {
            pipeline,
            revision,
            trigger,
        } => {
            let rev = revision
                .as_deref()
                .map(|r| format!(" at {}", &r[..r.len().min(12)]))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "==> {} pipeline `{pipeline}`{rev} ({trigger})",
                ev.execution
            );
        }
        EventBody::ExecutionResumed { reason } => {
            let _ = writeln!(out, "==> {} resumed: {reason}", ev.execution);
        }
        EventBody::StageStarted { stage } => {
            let _ = writeln!(out, "==> stage {stage}");
        }
        EventBody::ActionStarted {
            action,
            attempt,
            kind,
            executor,
            ..
        } => {
            let on = executor
                .as_deref()
                .map(|e| format!(" on {e}"))
                .unwrap_or_default();
            let again = if *attempt > 1 {
                format!(", attempt {attempt}")
            } else {
                String::new()
            };
            let _ = writeln!(out, "[{action}] --> {kind} action{on}{again}");
        }
        EventBody::PhaseStarted { action, phase, .. } => {
            let _ = writeln!(out, "[{action}] --- {phase}");
        }
        EventBody::Log { action, text, .. } => {
            for line in text.split_inclusive('\n') {
                let _ = out.write_all(b"[");
                let _ = out.write_all(action.as_bytes());
                let _ = out.write_all(b"] ");
                let _ = out.write_all(line.as_bytes());
            }
        }
        EventBody::PhaseFinished {
            action,
            phase,
            status,
            duration_ms,
            exit_code,
            ..
        } => {
            let code = exit_code
                .map(|c| format!(" (exit {c})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "[{action}] --- {phase} {status}{code} in {}",
                secs(*duration_ms)
            );
        }
        EventBody::ApprovalWaiting {
            action, message, ..
        } => {
            let _ = writeln!(
                out,
                "[{action}] waiting for approval{}",
                message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
        EventBody::ApprovalDecided {
            action,
            approved,
            by,
            comment,
            ..
        } => {
            let what = if *approved { "approved" } else { "rejected" };
            let c = comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            let _ = writeln!(out, "[{action}] {what} by {by}{c}");
        }
        EventBody::ActionFinished {
            action,
            status,
            duration_ms,
            reason,
            outputs,
            artifacts,
            reports,
            ..
        } => {
            let (passed, failed) = reports
                .iter()
                .fold((0, 0), |(p, f), r| (p + r.passed, f + r.failed));
            let tests = if reports.is_empty() {
                String::new()
            } else {
                format!(", tests {passed} passed, {failed} failed")
            };
            let _ = writeln!(
                out,
                "[{action}] <-- {status} in {}{tests}",
                secs(*duration_ms)
            );
            if let Some(r) = reason {
                let _ = writeln!(out, "[{action}]     reason: {r}");
            }
            for r in reports {
                for f in r.failures.iter().take(10) {
                    let _ = writeln!(
                        out,
                        "[{action}]     failed test: {} {}: {}",
                        f.suite,
                        f.name,
                        f.message.lines().next().unwrap_or("")
                    );
                }
            }
            for a in artifacts {
                let _ = writeln!(
                    out,
                    "[{action}]     artifact {}: {} files, {} bytes, {}",
                    a.name, a.files, a.size, a.digest
                );
            }
            for (k, v) in outputs {
                let _ = writeln!(out, "[{action}]     output {k}={v}");
            }
        }
        EventBody::StageFinished {
            stage,
            status,
            duration_ms,
        } => {
            let _ = writeln!(out, "==> stage {stage} {status} in {}", secs(*duration_ms));
        }
        // The summary table and the last line come from the result (skipped actions included).
        EventBody::ExecutionFinished { .. } => {}
    }
}

/// The closing table: every action of the pipeline, skipped ones included, then why any failed.
pub fn summary(out: &mut dyn Write, execution: &str, result: &slipway_engine::ExecutionResult) {
    let rows = &result.actions;
    let w_stage = rows.iter().map(|r| r.stage.len()).max().unwrap_or(5).max(5);
    let w_action = rows
        .iter()
        .map(|r| r.action.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<w_stage$}  {:<w_action$}  {:<10}  {:>9}  TESTS",
        "STAGE", "ACTION", "STATUS", "DURATION"
    );
    for r in rows {
        let (passed, failed) = r
            .reports
            .iter()
            .fold((0, 0), |(p, f), x| (p + x.passed, f + x.failed));
        let tests = if passed + failed == 0 {
            "-".to_string()
        } else {
            format!("{passed} passed, {failed} failed")
        };
        let _ = writeln!(
            out,
            "{:<w_stage$}  {:<w_action$}  {:<10}  {:>9}  {tests}",
            r.stage,
            r.action,
            r.status.as_str(),
            secs(r.duration.as_millis() as u64)
        );
    }
    let failed: Vec<_> = rows.iter().filter(|r| !r.status.is_success()).collect();
    if !failed.is_empty() {
        let _ = writeln!(out);
        for r in failed {
            let _ = writeln!(
                out,
                "{}/{}: {}",
                r.stage,
                r.action,
                r.reason.as_deref().unwrap_or(r.status.as_str())
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "==> {execution} {} in {}",
        result.status,
        secs(result.duration.as_millis() as u64)
    );
    let _ = out.flush();
}
