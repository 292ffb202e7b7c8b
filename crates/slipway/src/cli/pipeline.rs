//! `slipway pipeline start`: an execution of a project's pipeline on the server.

use std::collections::BTreeMap;
use std::process::ExitCode;

use slipway_proto::api::{Execution, StartExecution};

use super::client::{Client, ServerArgs};
use super::{execution, setup};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Start an execution of a project's pipeline.
    Start {
        /// The project's name.
        project: String,
        /// Which pipeline, when the repository has several.
        #[arg(long, value_name = "NAME")]
        pipeline: Option<String>,
        /// A branch, tag or commit (default: the repository's HEAD).
        #[arg(long, value_name = "REV")]
        revision: Option<String>,
        /// A pipeline variable's value (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = setup::parse_kv)]
        variables: Vec<(String, String)>,
        /// Follow it like `slipway logs -f`; exit with its result (0 succeeded, 1 otherwise).
        #[arg(short, long)]
        follow: bool,
    },
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let c = Client::new(&args.server)?;
    match args.command {
        Command::Start {
            project,
            pipeline,
            revision,
            variables,
            follow,
        } => {
            let body = StartExecution {
                pipeline,
                revision,
                variables: variables.into_iter().collect::<BTreeMap<_, _>>(),
                trigger: Some("cli".into()),
                source_ref: None,
            };
            let e = c
                .post::<Execution, _>(c.url(&["projects", &project, "executions"]), Some(&body))
                .await?;
            if c.json && !follow {
                super::client::print_json(&e.json);
                return Ok(ExitCode::SUCCESS);
            }
            if !c.json {
                println!("started {}", e.value.name);
            }
            execution::after_start(&c, &e.value, follow).await
        }
    }
}
