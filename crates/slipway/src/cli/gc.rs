//! `slipway gc [--dry-run]`: the server's retention pass, now.

use std::process::ExitCode;

use slipway_proto::api::GcReport;

use super::client::{self, Client, ServerArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Show what would be removed without removing anything.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let c = Client::new(&args.server)?;
    let mut url = c.url(&["gc"]);
    url.set_query(Some(if args.dry_run {
        "dry_run=true"
    } else {
        "dry_run=false"
    }));
    let r = c.post::<GcReport, ()>(url, None).await?;
    if c.json {
        client::print_json(&r.json);
        return Ok(ExitCode::SUCCESS);
    }
    let g = r.value;
    let verb = if g.dry_run { "would remove" } else { "removed" };
    println!("{verb}:");
    println!("  executions        {}", g.executions.len());
    for e in g.executions.iter().take(20) {
        println!("    {e}");
    }
    if g.executions.len() > 20 {
        println!("    ... and {} more", g.executions.len() - 20);
    }
    println!("  blobs             {} ({})", g.blobs, mib(g.blob_bytes));
    println!(
        "  cache entries     {} ({})",
        g.cache_entries,
        mib(g.cache_bytes)
    );
    if !g.dry_run {
        println!("  docker containers {}", g.docker_containers);
    }
    Ok(ExitCode::SUCCESS)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
