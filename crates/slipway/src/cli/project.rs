//! `slipway project create|set|ls|show|deliveries|notifications`: the server's projects, their
//! webhook and forge settings, and the logs of webhooks received and notifications sent.

use std::path::Path;
use std::process::ExitCode;

use slipway_proto::api::{
    CreateProject, Delivery, Execution, NotificationDelivery, Page, Project, ProjectSettings,
};

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
        /// The secret forges sign webhooks with (at least 16 characters).
        #[arg(long, value_name = "SECRET")]
        webhook_secret: Option<String>,
        /// Where commit statuses go: github, gitlab, gitea (Forgejo too); "" clears.
        #[arg(long, value_name = "FORGE")]
        forge: Option<String>,
        /// The forge's API URL: https://api.github.com, https://HOST/api/v4 (GitLab),
        /// https://HOST/api/v1 (Gitea, Forgejo).
        #[arg(long, value_name = "URL")]
        forge_api: Option<String>,
        /// The repository on the forge: OWNER/NAME, or GitLab's project id or path.
        #[arg(long = "repo", value_name = "OWNER/NAME")]
        forge_repo: Option<String>,
        /// The token commit statuses are sent with ("" clears); never shown again.
        #[arg(long, value_name = "TOKEN")]
        forge_token: Option<String>,
        /// A URL that gets a JSON notification when an execution's status changes
        /// (repeatable; replaces the list).
        #[arg(long = "notify-url", value_name = "URL")]
        notify_urls: Vec<String>,
        /// Send no notifications.
        #[arg(long, conflicts_with = "notify_urls")]
        no_notify: bool,
    },
    /// The webhooks a project received: what came and what it started, or why not.
    Deliveries {
        /// The project's name.
        name: String,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// The commit statuses and notifications a project sent, with their attempts.
    Notifications {
        /// The project's name.
        name: String,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
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
            webhook_secret,
            forge,
            forge_api,
            forge_repo,
            forge_token,
            notify_urls,
            no_notify,
        } => {
            let notify_urls = if no_notify {
                Some(Vec::new())
            } else {
                (!notify_urls.is_empty()).then_some(notify_urls)
            };
            let body = ProjectSettings {
                poll_interval,
                webhook_secret,
                forge,
                forge_api,
                forge_repo,
                forge_token,
                notify_urls,
            };
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
            print_hooks(&p);
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
        Command::Deliveries { name, limit } => {
            let mut url = c.url(&["projects", &name, "deliveries"]);
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
            let page = c.get::<Page<Delivery>>(url).await?;
            if c.json {
                client::print_json(&page.json);
            } else if page.value.items.is_empty() {
                println!("no webhook deliveries yet (see `slipway project show {name}`)");
            } else {
                let now = client::now_ms();
                let rows: Vec<Vec<String>> = page
                    .value
                    .items
                    .iter()
                    .map(|d| {
                        vec![
                            client::when(d.received_ms, now),
                            d.source.clone(),
                            d.event.clone().unwrap_or_else(|| "-".into()),
                            d.status.to_string(),
                            d.delivery_id.clone().unwrap_or_else(|| "-".into()),
                            d.outcome.clone(),
                        ]
                    })
                    .collect();
                client::table(
                    &mut std::io::stdout(),
                    &[
                        "RECEIVED", "FORGE", "EVENT", "STATUS", "DELIVERY", "OUTCOME",
                    ],
                    &rows,
                );
            }
        }
        Command::Notifications { name, limit } => {
            let mut url = c.url(&["projects", &name, "notifications"]);
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
            let page = c.get::<Page<NotificationDelivery>>(url).await?;
            if c.json {
                client::print_json(&page.json);
            } else if page.value.items.is_empty() {
                println!("no commit statuses or notifications sent yet");
            } else {
                let now = client::now_ms();
                let rows: Vec<Vec<String>> = page
                    .value
                    .items
                    .iter()
                    .map(|n| {
                        let answer = match (&n.last_error, n.last_status) {
                            (Some(e), _) => e.clone(),
                            (None, Some(s)) => s.to_string(),
                            (None, None) => "-".into(),
                        };
                        vec![
                            client::when(n.created_ms, now),
                            n.execution.clone(),
                            n.kind.clone(),
                            n.event.clone(),
                            n.state.clone(),
                            n.attempts.to_string(),
                            n.target.clone(),
                            answer,
                        ]
                    })
                    .collect();
                client::table(
                    &mut std::io::stdout(),
                    &[
                        "CREATED",
                        "EXECUTION",
                        "KIND",
                        "EVENT",
                        "STATE",
                        "ATTEMPTS",
                        "TARGET",
                        "LAST ANSWER",
                    ],
                    &rows,
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The webhook URLs and secret to paste into the forge, and where statuses and
/// notifications go.
fn print_hooks(p: &Project) {
    if let Some(secret) = &p.webhook_secret {
        println!("webhooks    (paste a URL and the secret into the forge's webhook settings)");
        for (forge, url) in &p.webhook_urls {
            println!("  {forge:<9} {url}");
        }
        println!("  secret    {secret}");
    }
    if let Some(f) = &p.forge {
        let token = if p.forge_token_set {
            "token set"
        } else {
            "no token"
        };
        println!(
            "statuses    {f} {} {} ({token})",
            p.forge_api.as_deref().unwrap_or("(no --forge-api)"),
            p.forge_repo.as_deref().unwrap_or("(no --repo)")
        );
    }
    for u in &p.notify_urls {
        println!("notify      {u}");
    }
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
