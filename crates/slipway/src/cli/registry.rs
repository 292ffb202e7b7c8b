//! `slipway registry`: the server's OCI registry for people: repositories, tags, deleting
//! images, settings (tag immutability, anonymous pulls), ECR lifecycle policies (set, show,
//! preview) and garbage collection, over `/api/v1/registry/...`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use reqwest::Method;
use serde_json::Value;

use super::UsageError;
use super::client::{self, Client, ServerArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// List repositories (of one project).
    Ls { project: Option<String> },
    /// List a repository's tags (REPO is PROJECT/NAME).
    Tags { repo: String },
    /// Delete a tag (REPO:TAG) or an image with all its tags (REPO@DIGEST).
    Rm { image: String },
    /// Garbage-collect blobs no image needs (after applying lifecycle policies).
    Gc {
        /// Show what would be removed without removing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Change a repository's settings.
    Set {
        repo: String,
        /// Refuse pushes that would move an existing tag (ECR's IMMUTABLE).
        #[arg(long, value_name = "true|false")]
        immutable_tags: Option<bool>,
        /// Allow pulls without credentials.
        #[arg(long, value_name = "true|false")]
        anonymous_pull: Option<bool>,
    },
    /// A repository's lifecycle policy (ECR's JSON form).
    Lifecycle {
        #[command(subcommand)]
        command: LifecycleCmd,
    },
}

#[derive(clap::Subcommand, Debug)]
enum LifecycleCmd {
    /// Set the policy from a JSON file (validated; every problem is listed).
    Set { repo: String, file: PathBuf },
    /// Print the policy.
    Show { repo: String },
    /// Show what the policy would expire now, without expiring anything.
    Preview { repo: String },
}

/// `HOST:PORT/proj/app` -> `proj/app`: a registry address in front is allowed.
fn repo_name(s: &str) -> String {
    match s.split_once('/') {
        Some((host, rest)) if host.contains(':') || host == "localhost" => rest.to_string(),
        _ => s.to_string(),
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let c = Client::new(&args.server)?;
    let now = client::now_ms();
    match args.command {
        Cmd::Ls { project } => {
            let mut url = c.url(&["registry", "repositories"]);
            if let Some(p) = &project {
                url.query_pairs_mut().append_pair("project", p);
            }
            let r = c.get::<Value>(url).await?;
            if c.json {
                client::print_json(&r.json);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = items(&r.value)
                .iter()
                .map(|i| {
                    let mut flags = Vec::new();
                    if i["immutable_tags"] == true {
                        flags.push("immutable-tags");
                    }
                    if i["anonymous_pull"] == true {
                        flags.push("anonymous-pull");
                    }
                    if i["lifecycle"] == true {
                        flags.push("lifecycle");
                    }
                    vec![
                        s(&i["image"]),
                        i["tags"].to_string(),
                        i["manifests"].to_string(),
                        i["pushed_ms"]
                            .as_i64()
                            .map(|ms| client::when(ms, now))
                            .unwrap_or_else(|| "-".into()),
                        if flags.is_empty() {
                            "-".into()
                        } else {
                            flags.join(",")
                        },
                    ]
                })
                .collect();
            client::table(
                &mut std::io::stdout(),
                &["REPOSITORY", "TAGS", "MANIFESTS", "PUSHED", "SETTINGS"],
                &rows,
            );
        }
        Cmd::Tags { repo } => {
            let mut url = c.url(&["registry", "tags"]);
            url.query_pairs_mut()
                .append_pair("repository", &repo_name(&repo));
            let r = c.get::<Value>(url).await?;
            if c.json {
                client::print_json(&r.json);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = items(&r.value)
                .iter()
                .map(|i| {
                    vec![
                        s(&i["tag"]),
                        s(&i["digest"]),
                        i["updated_ms"]
                            .as_i64()
                            .map(|ms| client::when(ms, now))
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            client::table(&mut std::io::stdout(), &["TAG", "DIGEST", "PUSHED"], &rows);
        }
        Cmd::Rm { image } => {
            let image = repo_name(&image);
            let (repo, reference) = match image.split_once('@') {
                Some((r, d)) => (r.to_string(), d.to_string()),
                None => match image.rsplit_once(':') {
                    Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
                    _ => {
                        return Err(UsageError(format!(
                            "`{image}`: expected REPO:TAG or REPO@sha256:..."
                        ))
                        .into());
                    }
                },
            };
            let mut url = c.url(&["registry", "images"]);
            url.query_pairs_mut()
                .append_pair("repository", &repo)
                .append_pair("reference", &reference);
            let resp = c.send(c.request(Method::DELETE, url)).await?;
            let v: Value = resp.json().await.context("reading the answer")?;
            if c.json {
                client::print_json(&v);
            } else {
                println!("deleted {}", s(&v["deleted"]));
            }
        }
        Cmd::Gc { dry_run } => {
            let mut url = c.url(&["registry", "gc"]);
            url.query_pairs_mut()
                .append_pair("dry_run", if dry_run { "true" } else { "false" });
            let r = c.post::<Value, ()>(url, None).await?;
            if c.json {
                client::print_json(&r.json);
                return Ok(ExitCode::SUCCESS);
            }
            let g = &r.value;
            let verb = if dry_run { "would remove" } else { "removed" };
            println!("{verb}:");
            println!("  unused blob links  {}", g["unlinked"]);
            println!(
                "  blobs              {} ({:.1} MiB)",
                g["blobs"],
                g["bytes"].as_f64().unwrap_or(0.0) / (1024.0 * 1024.0)
            );
            if !dry_run {
                println!("  abandoned uploads  {}", g["uploads"]);
            }
        }
        Cmd::Set {
            repo,
            immutable_tags,
            anonymous_pull,
        } => {
            if immutable_tags.is_none() && anonymous_pull.is_none() {
                return Err(UsageError(
                    "nothing to set: give --immutable-tags true|false and/or --anonymous-pull true|false"
                        .into(),
                )
                .into());
            }
            let mut url = c.url(&["registry", "settings"]);
            url.query_pairs_mut()
                .append_pair("repository", &repo_name(&repo));
            let body = serde_json::json!({
                "immutable_tags": immutable_tags,
                "anonymous_pull": anonymous_pull,
            });
            let r = c.post::<Value, Value>(url, Some(&body)).await?;
            if c.json {
                client::print_json(&r.json);
            } else {
                let v = &r.value;
                println!(
                    "{}: immutable tags {}, anonymous pull {}",
                    s(&v["image"]),
                    v["immutable_tags"],
                    v["anonymous_pull"]
                );
            }
        }
        Cmd::Lifecycle { command } => return lifecycle(&c, command, now).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn lifecycle(c: &Client, cmd: LifecycleCmd, now: i64) -> anyhow::Result<ExitCode> {
    let (repo, path): (String, Vec<&'static str>) = match &cmd {
        LifecycleCmd::Set { repo, .. } | LifecycleCmd::Show { repo } => {
            (repo.clone(), vec!["registry", "lifecycle"])
        }
        LifecycleCmd::Preview { repo } => (repo.clone(), vec!["registry", "lifecycle", "preview"]),
    };
    let mut url = c.url(&path);
    url.query_pairs_mut()
        .append_pair("repository", &repo_name(&repo));
    match cmd {
        LifecycleCmd::Set { file, .. } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
            let req = c
                .request(Method::PUT, url)
                .header("content-type", "application/json")
                .body(text);
            let resp = c.send(req).await.map_err(|e| {
                if e.downcast_ref::<UsageError>().is_some() {
                    UsageError(format!("{}: {e:#}", file.display())).into()
                } else {
                    e
                }
            })?;
            let v: Value = resp.json().await.context("reading the answer")?;
            if c.json {
                client::print_json(&v);
            } else {
                let n = v["rules"].as_array().map_or(0, Vec::len);
                println!(
                    "lifecycle policy set ({n} rule{}); see what it expires with `slipway registry lifecycle preview {repo}`",
                    if n == 1 { "" } else { "s" },
                    repo = repo_name(&repo),
                );
            }
        }
        LifecycleCmd::Show { .. } => {
            let r = c.get::<Value>(url).await?;
            client::print_json(&r.json);
        }
        LifecycleCmd::Preview { .. } => {
            let r = c.get::<Value>(url).await?;
            if c.json {
                client::print_json(&r.json);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = items(&r.value)
                .iter()
                .map(|i| {
                    let tags: Vec<String> = i["tags"]
                        .as_array()
                        .map(|t| t.iter().map(s).collect())
                        .unwrap_or_default();
                    vec![
                        s(&i["digest"]),
                        if tags.is_empty() {
                            "<untagged>".into()
                        } else {
                            tags.join(",")
                        },
                        i["pushed_ms"]
                            .as_i64()
                            .map(|ms| client::when(ms, now))
                            .unwrap_or_default(),
                        i["rule_priority"].to_string(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("nothing would expire now");
            } else {
                println!("would expire {} image(s):", rows.len());
                client::table(
                    &mut std::io::stdout(),
                    &["DIGEST", "TAGS", "PUSHED", "RULE"],
                    &rows,
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn s(v: &Value) -> String {
    v.as_str()
        .map(String::from)
        .unwrap_or_else(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::repo_name;

    #[test]
    fn a_registry_address_in_front_is_dropped() {
        assert_eq!(repo_name("127.0.0.1:8080/proj/app"), "proj/app");
        assert_eq!(repo_name("localhost/proj/app:1"), "proj/app:1");
        assert_eq!(repo_name("proj/app"), "proj/app");
    }
}
