//! `slipway approve|reject EXECUTION`: decide an approval action that waits for a person.

use std::process::ExitCode;

use slipway_proto::api::{Approval, Decide};

use super::client::{self, Client, ExecutionRef, ServerArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// `project#number`, or `project` for its latest.
    execution: ExecutionRef,
    /// The approval action (`action` or `stage/action`); needed only when several wait.
    #[arg(long, value_name = "NAME")]
    action: Option<String>,
    /// Recorded with the decision.
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
}

pub async fn run(args: Args, approved: bool) -> anyhow::Result<ExitCode> {
    let c = Client::new(&args.server)?;
    let (project, number) = c.resolve(&args.execution).await?;
    let body = Decide {
        action: args.action,
        approved,
        comment: args.comment,
        by: Some(client::user()),
    };
    let a = c
        .post::<Approval, _>(
            c.execution_url(&project, number, &["approvals"]),
            Some(&body),
        )
        .await?;
    if c.json {
        client::print_json(&a.json);
    } else {
        let what = if approved { "approved" } else { "rejected" };
        let by = a.value.decided_by.as_deref().unwrap_or("?");
        println!(
            "{what} {project}#{number} {}/{} (by {by})",
            a.value.stage, a.value.action
        );
    }
    Ok(ExitCode::SUCCESS)
}
