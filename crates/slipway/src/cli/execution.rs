//! `slipway execution ls|show|cancel|retry|rerun`: one project's executions on the server.

use std::io::Write;
use std::process::ExitCode;

use slipway_model::Status;
use slipway_proto::api::{ActionState, Execution, ExecutionDetail, Page};

use super::client::{self, Client, ExecutionRef, ServerArgs};
use super::logs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// A project's executions, newest first.
    Ls {
        /// The project's name.
        project: String,
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// An execution with its actions and the approvals it waits for.
    Show {
        /// `project#number`, or `project` for its latest.
        execution: ExecutionRef,
    },
    /// Stop a queued or running execution.
    Cancel {
        /// `project#number`, or `project` for its latest.
        execution: ExecutionRef,
    },
    /// Run a failed or cancelled execution's failed actions again (same number).
    Retry {
        /// `project#number`, or `project` for its latest.
        execution: ExecutionRef,
        /// Follow it like `slipway logs -f`; exit with its result.
        #[arg(short, long)]
        follow: bool,
    },
    /// Start a new execution with the same pipeline, revision and variables.
    Rerun {
        /// `project#number`, or `project` for its latest.
        execution: ExecutionRef,
        /// Follow it like `slipway logs -f`; exit with its result.
        #[arg(short, long)]
        follow: bool,
    },
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let c = Client::new(&args.server)?;
    match args.command {
        Command::Ls { project, limit } => ls(&c, &project, limit).await,
        Command::Show { execution } => {
            let (project, number) = c.resolve(&execution).await?;
            let d = c.execution(&project, number).await?;
            if c.json {
                client::print_json(&d.json);
            } else {
                show(&mut std::io::stdout(), &d.value, client::now_ms());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { execution } => {
            let (project, number) = c.resolve(&execution).await?;
            let e = c
                .post::<Execution, ()>(c.execution_url(&project, number, &["cancel"]), None)
                .await?;
            if c.json {
                client::print_json(&e.json);
            } else if e.value.status.is_terminal() {
                println!("{} {}", e.value.name, e.value.status);
            } else {
                println!("cancelling {}", e.value.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry { execution, follow } => {
            let (project, number) = c.resolve(&execution).await?;
            let e = c
                .post::<Execution, ()>(c.execution_url(&project, number, &["retry"]), None)
                .await?;
            if c.json && !follow {
                client::print_json(&e.json);
                return Ok(ExitCode::SUCCESS);
            }
            if !c.json {
                println!("retrying {}: its failed actions run again", e.value.name);
            }
            after_start(&c, &e.value, follow).await
        }
        Command::Rerun { execution, follow } => {
            let (project, number) = c.resolve(&execution).await?;
            let e = c
                .post::<Execution, ()>(c.execution_url(&project, number, &["rerun"]), None)
                .await?;
            if c.json && !follow {
                client::print_json(&e.json);
                return Ok(ExitCode::SUCCESS);
            }
            if !c.json {
                println!("started {} (a rerun of {project}#{number})", e.value.name);
            }
            after_start(&c, &e.value, follow).await
        }
    }
}

/// After an execution started: follow it, or say how to.
pub async fn after_start(c: &Client, e: &Execution, follow: bool) -> anyhow::Result<ExitCode> {
    if follow {
        let view = logs::View {
            json: c.json,
            action: None,
        };
        return logs::follow(c, &e.project, e.number, &view).await;
    }
    println!("  follow it:  slipway logs -f {}", e.name);
    println!("  details:    slipway execution show {}", e.name);
    Ok(ExitCode::SUCCESS)
}

async fn ls(c: &Client, project: &str, limit: u32) -> anyhow::Result<ExitCode> {
    // Page through until `limit` executions, whatever page size the server keeps to.
    let mut items: Vec<serde_json::Value> = Vec::new();
    let mut executions: Vec<Execution> = Vec::new();
    let mut before: Option<String> = None;
    while (executions.len() as u32) < limit {
        let mut url = c.url(&["projects", project, "executions"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("limit", &(limit - executions.len() as u32).to_string());
            if let Some(b) = &before {
                q.append_pair("before", b);
            }
        }
        let page = c.get::<Page<Execution>>(url).await?;
        if let Some(a) = page.json.get("items").and_then(|i| i.as_array()) {
            items.extend(a.iter().cloned());
        }
        let got = page.value.items.len();
        executions.extend(page.value.items);
        match page.value.next {
            Some(n) if got > 0 => before = Some(n),
            _ => break,
        }
    }
    executions.truncate(limit as usize);
    items.truncate(limit as usize);
    if c.json {
        client::print_json(&serde_json::json!({ "items": items }));
    } else if executions.is_empty() {
        println!(
            "{project} has no executions yet (start one with `slipway pipeline start {project}`)"
        );
    } else {
        print_list(&executions, client::now_ms());
    }
    Ok(ExitCode::SUCCESS)
}

/// The executions table (`execution ls`, `project show`).
pub fn print_list(executions: &[Execution], now: i64) {
    let rows: Vec<Vec<String>> = executions
        .iter()
        .map(|e| {
            vec![
                e.name.clone(),
                e.status.to_string(),
                e.pipeline.clone(),
                client::short(e.revision.as_deref()),
                e.trigger.clone(),
                e.started_ms
                    .map(|s| client::when(s, now))
                    .unwrap_or_else(|| "-".into()),
                client::took(e.started_ms, e.finished_ms, now),
            ]
        })
        .collect();
    client::table(
        &mut std::io::stdout(),
        &[
            "EXECUTION",
            "STATUS",
            "PIPELINE",
            "REVISION",
            "TRIGGER",
            "STARTED",
            "DURATION",
        ],
        &rows,
    );
}

/// `execution show`: the header, every action, and what waits for a person.
pub fn show(out: &mut dyn Write, d: &ExecutionDetail, now: i64) {
    let e = &d.execution;
    let _ = writeln!(out, "{}  {}", e.name, e.status);
    let _ = writeln!(out, "  pipeline  {}", e.pipeline);
    let rev = match (&e.revision, &e.source_ref) {
        (Some(r), Some(s)) if s != r => format!("{r} ({s})"),
        (Some(r), _) => r.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => "-".into(),
    };
    let _ = writeln!(out, "  revision  {rev}");
    let trigger = match e.rerun_of {
        Some(n) => format!("{} (rerun of {}#{n})", e.trigger, e.project),
        None => e.trigger.clone(),
    };
    let _ = writeln!(out, "  trigger   {trigger}");
    let started = e
        .started_ms
        .map(|s| client::when(s, now))
        .unwrap_or_else(|| format!("not yet (created {})", client::when(e.created_ms, now)));
    let _ = writeln!(out, "  started   {started}");
    let _ = writeln!(
        out,
        "  duration  {}",
        client::took(e.started_ms, e.finished_ms, now)
    );
    if !e.variables.is_empty() {
        let vars: Vec<String> = e
            .variables
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "  variables {}", vars.join(" "));
    }
    if let Some(r) = &e.reason {
        let _ = writeln!(out, "  reason    {r}");
    }
    if !d.actions.is_empty() {
        let _ = writeln!(out);
        actions_table(out, &d.actions, now);
    }
    let waiting: Vec<_> = d
        .approvals
        .iter()
        .filter(|a| a.status == Status::Waiting)
        .collect();
    if !waiting.is_empty() {
        let _ = writeln!(out);
        for a in &waiting {
            let msg = a
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            let left = a.deadline_ms - now;
            let deadline = if left > 0 {
                format!("times out in {}", client::secs(left as u64))
            } else {
                "timing out".into()
            };
            let _ = writeln!(
                out,
                "waiting for approval: {}/{}{msg} (asked {}, {deadline})",
                a.stage,
                a.action,
                client::when(a.requested_ms, now)
            );
            let which = if waiting.len() > 1 {
                format!(" --action {}/{}", a.stage, a.action)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  slipway approve {}{which}   or   slipway reject {}{which}",
                e.name, e.name
            );
        }
    }
    if !e.status.is_terminal() {
        let _ = writeln!(out);
        let _ = writeln!(out, "follow it: slipway logs -f {}", e.name);
    }
    let _ = out.flush();
}

/// Every action as it stands: stage, action, kind, status, attempt, duration, reason.
pub fn actions_table(out: &mut dyn Write, actions: &[ActionState], now: i64) {
    let rows: Vec<Vec<String>> = actions
        .iter()
        .map(|a| {
            vec![
                a.stage.clone(),
                a.action.clone(),
                a.kind.clone(),
                a.status.to_string(),
                a.attempt.to_string(),
                client::took(a.started_ms, a.finished_ms, now),
                a.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    client::table(
        out,
        &[
            "STAGE", "ACTION", "KIND", "STATUS", "ATTEMPT", "DURATION", "REASON",
        ],
        &rows,
    );
}
