//! Image builds and pushes through a Docker engine: the `image` action's half that talks to
//! Docker. The classic builder keeps its layer cache on the engine, so an unchanged step is
//! not rebuilt by the next build on the same engine.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, BuilderVersion, PushImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures::StreamExt;
use slipway_model::Digest;

use crate::{CancellationToken, DockerExecutor, ExecutorError, LogSink};

/// One image to build.
#[derive(Clone, Debug, Default)]
pub struct ImageBuildRequest {
    /// The build context: a directory on the runner's host.
    pub context: PathBuf,
    /// The Dockerfile, relative to `context`'s parent tree root or absolute; one outside the
    /// context is sent along with it.
    pub dockerfile: PathBuf,
    pub build_args: Vec<(String, String)>,
    /// The stage of a multi-stage Dockerfile to stop at.
    pub target: Option<String>,
    /// Full references (`host/repo:tag`) the image gets.
    pub tags: Vec<String>,
    pub labels: Vec<(String, String)>,
}

/// Credentials for a registry.
#[derive(Clone, Debug)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
}

/// How a build ended: a failing Dockerfile step is an outcome, not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageBuilt {
    Built { id: String },
    Failed { message: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImagePushed {
    Pushed { digest: Digest },
    Failed { message: String },
}

/// Builds and pushes images. Both calls may run concurrently for different images; a
/// cancelled build stops when its future is dropped (the engine aborts the build with the
/// connection).
#[async_trait]
pub trait ImageBuilder: Send + Sync {
    async fn build(
        &self,
        req: &ImageBuildRequest,
        log: &mut dyn LogSink,
        cancel: &CancellationToken,
    ) -> Result<ImageBuilt, ExecutorError>;

    /// Pushes `reference` (`host/repo:tag`) and returns the manifest digest the registry has.
    async fn push(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        log: &mut dyn LogSink,
    ) -> Result<ImagePushed, ExecutorError>;

    /// Removes images Slipway built (labelled `io.slipway.project`) older than `older_than`
    /// that no container uses, with the build cache's dangling layers; returns (images, bytes).
    async fn prune(&self, older_than: std::time::Duration) -> Result<(u64, u64), ExecutorError>;
}

/// The name the Dockerfile travels under when it lies outside the context.
const OUTSIDE_DOCKERFILE: &str = ".slipway.Dockerfile";

/// The Dockerfile's name inside the context's tar.
fn dockerfile_name(context: &Path, dockerfile: &Path) -> String {
    match dockerfile.strip_prefix(context) {
        Ok(inside) if !inside.as_os_str().is_empty() => inside.to_string_lossy().to_string(),
        _ => OUTSIDE_DOCKERFILE.to_string(),
    }
}

/// Writes the context as a tar into `out`, with the Dockerfile under [`dockerfile_name`].
fn pack_context(
    context: &Path,
    dockerfile: &Path,
    out: impl std::io::Write,
) -> std::io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Deterministic);
    for entry in walkdir::WalkDir::new(context)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(std::io::Error::other)?;
        let rel = entry.path().strip_prefix(context).unwrap_or(entry.path());
        if rel.as_os_str().is_empty() {
            continue;
        }
        tar.append_path_with_name(entry.path(), rel)?;
    }
    if dockerfile_name(context, dockerfile) == OUTSIDE_DOCKERFILE {
        let mut f = std::fs::File::open(dockerfile)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(f.metadata()?.len());
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, OUTSIDE_DOCKERFILE, &mut f)?;
    }
    tar.into_inner()?.flush()
}

/// `name:tag` split at the last `:` after the last `/` (a registry port is not a tag).
pub fn split_tag(reference: &str) -> (&str, &str) {
    let slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], &reference[slash + i + 1..]),
        None => (reference, "latest"),
    }
}

#[async_trait]
impl ImageBuilder for DockerExecutor {
    async fn build(
        &self,
        req: &ImageBuildRequest,
        log: &mut dyn LogSink,
        cancel: &CancellationToken,
    ) -> Result<ImageBuilt, ExecutorError> {
        if !req.dockerfile.is_file() {
            return Ok(ImageBuilt::Failed {
                message: format!("no Dockerfile at {}", req.dockerfile.display()),
            });
        }
        if !req.context.is_dir() {
            return Ok(ImageBuilt::Failed {
                message: format!(
                    "the build context {} is not a directory",
                    req.context.display()
                ),
            });
        }
        // The context streams to the engine as it is packed: never whole in memory.
        let (reader, writer) = tokio::io::duplex(256 * 1024);
        let (context, dockerfile) = (req.context.clone(), req.dockerfile.clone());
        let df_name = dockerfile_name(&context, &dockerfile);
        let packer = tokio::task::spawn_blocking(move || {
            pack_context(
                &context,
                &dockerfile,
                tokio_util::io::SyncIoBridge::new(writer),
            )
        });
        let args: std::collections::HashMap<String, String> =
            req.build_args.iter().cloned().collect();
        let labels: std::collections::HashMap<String, String> =
            req.labels.iter().cloned().collect();
        let mut opts = BuildImageOptionsBuilder::new()
            .dockerfile(&df_name)
            .buildargs(&args)
            .labels(&labels)
            .rm(true)
            .forcerm(true)
            .version(BuilderVersion::BuilderV1);
        if let Some(first) = req.tags.first() {
            opts = opts.t(first);
        }
        if let Some(t) = &req.target {
            opts = opts.target(t);
        }
        let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(reader));
        let mut stream = self.docker().build_image(opts.build(), None, Some(body));
        let mut id = None;
        let mut failure = None;
        loop {
            let item = tokio::select! {
                i = stream.next() => i,
                _ = cancel.cancelled() => {
                    return Ok(ImageBuilt::Failed { message: "cancelled".into() });
                }
            };
            let Some(item) = item else { break };
            match item {
                Ok(info) => {
                    if let Some(s) = info.stream {
                        log.write(s.as_bytes()).await;
                    }
                    if let Some(s) = info.status {
                        log.write(format!("{s}\n").as_bytes()).await;
                    }
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        failure = Some(e);
                    }
                    if let Some(aux) = info.aux.and_then(|a| a.id) {
                        id = Some(aux);
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    failure = Some(error);
                }
                Err(e) => {
                    let _ = packer.await;
                    return Err(ExecutorError::docker("building an image", e));
                }
            }
        }
        if let Ok(Err(e)) = packer.await {
            return Ok(ImageBuilt::Failed {
                message: format!("packing the build context: {e}"),
            });
        }
        if let Some(message) = failure {
            return Ok(ImageBuilt::Failed { message });
        }
        let Some(id) = id else {
            return Ok(ImageBuilt::Failed {
                message: "the engine reported no image id".into(),
            });
        };
        for extra in req.tags.iter().skip(1) {
            let (repo, tag) = split_tag(extra);
            self.docker()
                .tag_image(
                    &id,
                    Some(TagImageOptionsBuilder::new().repo(repo).tag(tag).build()),
                )
                .await
                .map_err(|e| ExecutorError::docker("tagging an image", e))?;
        }
        Ok(ImageBuilt::Built { id })
    }

    async fn prune(&self, older_than: std::time::Duration) -> Result<(u64, u64), ExecutorError> {
        let until = format!("{}s", older_than.as_secs());
        let mut count = 0;
        let mut bytes = 0;
        for dangling in ["false", "true"] {
            let mut filters: std::collections::HashMap<&str, Vec<&str>> = Default::default();
            filters.insert("label", vec!["io.slipway.project"]);
            filters.insert("until", vec![until.as_str()]);
            filters.insert("dangling", vec![dangling]);
            let r = self
                .docker()
                .prune_images(Some(
                    bollard::query_parameters::PruneImagesOptionsBuilder::new()
                        .filters(&filters)
                        .build(),
                ))
                .await
                .map_err(|e| ExecutorError::docker("pruning images", e))?;
            count += r
                .images_deleted
                .map(|v| v.iter().filter(|i| i.deleted.is_some()).count() as u64)
                .unwrap_or(0);
            bytes += r.space_reclaimed.unwrap_or(0).max(0) as u64;
        }
        Ok((count, bytes))
    }

    async fn push(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        log: &mut dyn LogSink,
    ) -> Result<ImagePushed, ExecutorError> {
        let (repo, tag) = split_tag(reference);
        let creds = auth.map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(repo.split('/').next().unwrap_or("").to_string()),
            ..Default::default()
        });
        let mut stream = self.docker().push_image(
            repo,
            Some(PushImageOptionsBuilder::new().tag(tag).build()),
            creds,
        );
        let mut digest = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        return Ok(ImagePushed::Failed { message: e });
                    }
                    if let Some(s) = info.status {
                        // The last status names the manifest: "<tag>: digest: sha256:... size: N".
                        if let Some(d) = s
                            .split("digest: ")
                            .nth(1)
                            .and_then(|r| r.split_whitespace().next())
                            .and_then(|d| Digest::parse(d).ok())
                        {
                            digest = Some(d);
                        }
                        if info.progress_detail.is_none() || s.contains("digest") {
                            log.write(format!("{s}\n").as_bytes()).await;
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Ok(ImagePushed::Failed { message: error });
                }
                Err(e) => return Err(ExecutorError::docker("pushing an image", e)),
            }
        }
        match digest {
            Some(digest) => Ok(ImagePushed::Pushed { digest }),
            None => Ok(ImagePushed::Failed {
                message: format!("pushing {reference}: the engine reported no digest"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(
            split_tag("127.0.0.1:8080/p/app:v1"),
            ("127.0.0.1:8080/p/app", "v1")
        );
        assert_eq!(
            split_tag("127.0.0.1:8080/p/app"),
            ("127.0.0.1:8080/p/app", "latest")
        );
        assert_eq!(split_tag("app:1.2"), ("app", "1.2"));
    }
}
