//! `slipway project create|set|ls|show`: the server's projects.

use std::path::Path;
use std::process::ExitCode;

use slipway_proto::api::{CreateProject, Execution, Page, Project, ProjectSettings};

use super::client::{self, Client, ServerArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Add a project: a name and the repository its pipelines are read from (without
    /// `--git`, Slipway hosts the repository: push to the clone URL it prints).
    Create {
        /// The project's name (letters, digits, `_`, `-`, `.`).
        name: String,
        /// The repository to watch: a git URL, or a local path (sent as an absolute path).
        #[arg(long, value_name = "URL")]
        git: Option<String>,
    },
    /// Change a project's settings.
    Set {
        /// The project's name.
        name: String,
        /// How often its repository is polled: `30s`, `5m`, `off`, or `default`.
        #[arg(long, value_name = "DURATION")]
        poll_interval: Option<String>,
    },
    /// List the projects.
    Ls,
    /// Show one project and its latest executions.
    Show {
        /// The project's name.
        name: String,
    },
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let c = Client::new(&args.server)?;
    match args.command {
        Command::Create { name, git } => {
            let body = CreateProject {
                name,
                git: git.as_deref().map(absolute_git).unwrap_or_default(),
            };
            let p = c
                .post::<Project, _>(c.url(&["projects"]), Some(&body))
                .await?;
            if c.json {
                client::print_json(&p.json);
            } else if let Some(url) = &p.value.clone_url {
                println!("created project {}, hosted at {url}", p.value.name);
                println!("  push to it: git remote add slipway {url} && git push slipway main");
            } else {
                println!("created project {} ({})", p.value.name, p.value.git);
                println!(
                    "  start an execution: slipway pipeline start {}",
                    p.value.name
                );
            }
        }
        Command::Set {
            name,
            poll_interval,
        } => {
            let body = ProjectSettings { poll_interval };
            let p = c
                .patch::<Project, _>(c.url(&["projects", &name]), &body)
                .await?;
            if c.json {
                client::print_json(&p.json);
            } else {
                println!("updated project {}", p.value.name);
            }
        }
        Command::Ls => {
            let page = c.get::<Page<Project>>(c.url(&["projects"])).await?;
            if c.json {
                client::print_json(&page.json);
            } else if page.value.items.is_empty() {
                println!("no projects yet (add one with `slipway project create NAME --git URL`)");
            } else {
                let now = client::now_ms();
                let rows: Vec<Vec<String>> = page
                    .value
                    .items
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.last_number.to_string(),
                            client::when(p.created_ms, now),
                            p.git.clone(),
                        ]
                    })
                    .collect();
                client::table(
                    &mut std::io::stdout(),
                    &["NAME", "EXECUTIONS", "CREATED", "GIT"],
                    &rows,
                );
            }
        }
        Command::Show { name } => {
            let p = c.get::<Project>(c.url(&["projects", &name])).await?;
            if c.json {
                client::print_json(&p.json);
                return Ok(ExitCode::SUCCESS);
            }
            let now = client::now_ms();
            let p = p.value;
            println!("project     {}", p.name);
            println!("git         {}", p.git);
            if let Some(url) = &p.clone_url {
                println!("clone       {url}");
            }
            if let Some(i) = &p.poll_interval {
                println!("polling     {i}");
            }
            println!("created     {}", client::when(p.created_ms, now));
            println!("executions  {}", p.last_number);
            if p.last_number > 0 {
                let mut url = c.url(&["projects", &name, "executions"]);
                url.query_pairs_mut().append_pair("limit", "5");
                let page = c.get::<Page<Execution>>(url).await?;
                println!();
                super::execution::print_list(&page.value.items, now);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A local path made absolute (the server runs elsewhere in the file system); URLs and
/// scp-like `host:path` addresses as given.
fn absolute_git(git: &str) -> String {
    if git.contains("://") {
        return git.to_string();
    }
    if let Some((host, _)) = git.split_once(':')
        && !host.contains('/')
        && !host.is_empty()
        && !Path::new(git).exists()
    {
        return git.to_string();
    }
    let p = Path::new(git);
    if let Ok(abs) = p.canonicalize() {
        return abs.display().to_string();
    }
    match std::env::current_dir() {
        Ok(cwd) if p.is_relative() => cwd.join(p).display().to_string(),
        _ => git.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::absolute_git;

    #[test]
    fn git_addresses() {
        assert_eq!(
            absolute_git("https://example.com/a.git"),
            "https://example.com/a.git"
        );
        assert_eq!(
            absolute_git("git@example.com:a/b.git"),
            "git@example.com:a/b.git"
        );
        let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
        assert_eq!(absolute_git("."), cwd.display().to_string());
        assert!(absolute_git("no/such/dir").starts_with('/'));
    }
}
