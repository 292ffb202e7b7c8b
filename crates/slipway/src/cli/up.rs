//! `slipway up`: the quick start. A data directory, the server with its embedded runner in the
//! foreground, a demo project whose repository lives in the data directory, its pipeline
//! started, and what to type next. Running it again reuses all of it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use slipway_proto::api::StartExecution;

use super::server;

/// The demo project's files: examples/hello-shell, built into the binary so `up` works from
/// anywhere. (path, contents, executable)
const DEMO: &[(&str, &[u8], bool)] = &[
    (
        ".slipway/pipeline.yml",
        include_bytes!("../../../../examples/hello-shell/.slipway/pipeline.yml"),
        false,
    ),
    (
        "buildspec.yml",
        include_bytes!("../../../../examples/hello-shell/buildspec.yml"),
        false,
    ),
    (
        "README.md",
        include_bytes!("../../../../examples/hello-shell/README.md"),
        false,
    ),
    (
        ".gitignore",
        include_bytes!("../../../../examples/hello-shell/.gitignore"),
        false,
    ),
    (
        "VERSION",
        include_bytes!("../../../../examples/hello-shell/VERSION"),
        false,
    ),
    (
        "bin/hello",
        include_bytes!("../../../../examples/hello-shell/bin/hello"),
        true,
    ),
    (
        "lib/greet.sh",
        include_bytes!("../../../../examples/hello-shell/lib/greet.sh"),
        false,
    ),
    (
        "tests/assert.sh",
        include_bytes!("../../../../examples/hello-shell/tests/assert.sh"),
        false,
    ),
    (
        "tests/run.sh",
        include_bytes!("../../../../examples/hello-shell/tests/run.sh"),
        true,
    ),
    (
        "tests/test_greet.sh",
        include_bytes!("../../../../examples/hello-shell/tests/test_greet.sh"),
        false,
    ),
];

pub const DEMO_PROJECT: &str = "hello";

pub async fn run(args: server::Args, data: &Path) -> anyhow::Result<ExitCode> {
    let fresh = !data.join("slipway.db").exists();
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let c = server::config(&args, data)?;
    let srv = server::start(c).await?;
    let sched = srv.state.sched.clone();

    let repo = data.join("demo").join(DEMO_PROJECT);
    let made_repo = demo_repository(&repo).await?;
    let project = match sched.db.project(DEMO_PROJECT).await? {
        Some(p) => p,
        None => {
            sched
                .db
                .create_project(
                    DEMO_PROJECT,
                    &repo.to_string_lossy(),
                    slipway_engine::events::now_ms(),
                )
                .await?
        }
    };
    let started = sched
        .start(
            &project.name,
            StartExecution {
                trigger: Some("up".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .map_err(|e| anyhow::anyhow!("starting the demo pipeline: {}", e.message))?;
    let name = format!("{}#{}", started.project, started.number);
    let url = format!("http://{}", srv.addr);
    let server_flag = if srv.addr.to_string() == "127.0.0.1:8080" {
        String::new()
    } else {
        format!(" --server {url}")
    };
    println!("Slipway is up at {url}");
    println!(
        "  data directory  {}{}",
        data.display(),
        if fresh { " (new)" } else { " (reused)" }
    );
    println!("  credentials     none needed yet: the server listens on this machine only");
    println!(
        "  demo project    {DEMO_PROJECT}, repository {}{}",
        repo.display(),
        if made_repo { " (new)" } else { "" }
    );
    println!("  started         {name}");
    println!();
    println!("Watch it:");
    println!("  slipway logs -f {name}{server_flag}");
    println!("  slipway execution show {name}{server_flag}");
    println!(
        "  curl {url}/api/v1/projects/{DEMO_PROJECT}/executions/{}",
        started.number
    );
    println!("Change the demo and run it again:");
    println!(
        "  git -C {} commit --allow-empty -m again && slipway pipeline start {DEMO_PROJECT}{server_flag}",
        repo.display()
    );
    println!();
    println!("Ctrl-C stops the server.");
    server::stopped().await;
    eprintln!("stopping: cancelling running executions");
    srv.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// Makes the demo's git repository unless it exists; true when it was made.
async fn demo_repository(repo: &Path) -> anyhow::Result<bool> {
    if repo.join(".git").is_dir() {
        return Ok(false);
    }
    std::fs::create_dir_all(repo).with_context(|| format!("creating {}", repo.display()))?;
    for (path, bytes, exec) in DEMO {
        let p = repo.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
        if *exec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .env("GIT_AUTHOR_NAME", "Slipway")
            .env("GIT_AUTHOR_EMAIL", "slipway@localhost")
            .env("GIT_COMMITTER_NAME", "Slipway")
            .env("GIT_COMMITTER_EMAIL", "slipway@localhost")
            .output()
            .context("running git (is it installed?)")?;
        anyhow::ensure!(
            out.status.success(),
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    };
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "-A"])?;
    git(&[
        "commit",
        "-q",
        "-m",
        "The Slipway demo: examples/hello-shell",
    ])?;
    Ok(true)
}
