//! The `image` action: a Dockerfile built through the Docker engine from the action's working
//! tree (the source plus its input artifacts), tagged, and pushed to Slipway's registry (or
//! another one), its reference and digest becoming the action's output variables.

use std::collections::BTreeMap;
use std::time::Instant;

use slipway_executor::{ImageBuildRequest, ImageBuilt, ImagePushed, RegistryAuth};
use slipway_model::Status;
use slipway_proto::EventBody;
use slipway_spec::pipeline::ImageAction;
use tokio_util::sync::CancellationToken;

use crate::build::BuildResult;
use crate::events::{ActionLog, EventSink};
use crate::execution::{Engine, ExecutionRequest};
use crate::workspace;

/// Where images go when an action names no registry: Slipway's own.
#[derive(Clone, Debug)]
pub struct RegistryTarget {
    /// `host:port` as Docker should address it (loopback is allowed over plain HTTP).
    pub address: String,
    pub auth: Option<RegistryAuth>,
}

/// An image action with its variables already substituted.
pub struct ImageJob<'a> {
    pub stage: &'a str,
    pub action: &'a str,
    pub spec: ImageAction,
    /// Input artifacts over the source: (name, tar path).
    pub inputs: Vec<(String, std::path::PathBuf)>,
}

fn ended(status: Status, reason: String, log: Option<slipway_model::Digest>) -> BuildResult {
    let mut r = BuildResult::ended(status, Some(reason));
    r.log = log;
    r
}

struct Phases<'a> {
    events: &'a EventSink,
    stage: &'a str,
    action: &'a str,
}

impl Phases<'_> {
    async fn start(&self, phase: &str) -> Instant {
        self.events
            .emit(EventBody::PhaseStarted {
                stage: self.stage.into(),
                action: self.action.into(),
                phase: phase.into(),
            })
            .await;
        Instant::now()
    }

    async fn end(&self, phase: &str, t: Instant, status: Status, reason: Option<String>) {
        self.events
            .emit(EventBody::PhaseFinished {
                stage: self.stage.into(),
                action: self.action.into(),
                phase: phase.into(),
                status,
                duration_ms: t.elapsed().as_millis() as u64,
                exit_code: None,
                reason,
            })
            .await;
    }
}

pub async fn run_image(
    engine: &Engine,
    req: &ExecutionRequest,
    job: ImageJob<'_>,
    events: &EventSink,
    cancel: &CancellationToken,
) -> BuildResult {
    let Some(builder) = engine.executors.images.clone() else {
        return ended(
            Status::Fault,
            "image actions need a Docker engine, and none answers".into(),
            None,
        );
    };
    let phases = Phases {
        events,
        stage: job.stage,
        action: job.action,
    };
    let mut log = ActionLog::new(events.clone(), &engine.store, job.stage, job.action).await;
    let spec = &job.spec;

    // Where it goes: another registry, Slipway's own under the project, or nowhere (a laptop).
    let (host, repository, auth) = match (&spec.registry, &engine.registry) {
        (Some(r), _) => {
            let auth = match &spec.credentials {
                None => None,
                Some(name) => match engine.secrets.get(name) {
                    Some(v) => match v.split_once(':') {
                        Some((u, p)) => Some(RegistryAuth {
                            username: u.into(),
                            password: p.into(),
                        }),
                        None => {
                            let d = log.finish().await;
                            return ended(
                                Status::Failed,
                                format!("secret `{name}` is not USER:PASSWORD"),
                                d,
                            );
                        }
                    },
                    None => {
                        let d = log.finish().await;
                        return ended(Status::Failed, format!("secret `{name}` is not set"), d);
                    }
                },
            };
            (Some(r.clone()), spec.repository.clone(), auth)
        }
        (None, Some(own)) => (
            Some(own.address.clone()),
            format!("{}/{}", req.project.to_ascii_lowercase(), spec.repository),
            own.auth.clone(),
        ),
        // Local only: named as it would be in Slipway's registry, without the host.
        (None, None) => (
            None,
            format!("{}/{}", req.project.to_ascii_lowercase(), spec.repository),
            None,
        ),
    };
    let full_repo = match &host {
        Some(h) => format!("{h}/{repository}"),
        None => repository.clone(),
    };
    let refs: Vec<String> = spec
        .tags
        .iter()
        .map(|t| format!("{full_repo}:{t}"))
        .collect();

    // The working tree: the source and input artifacts, as a build action gets it.
    let t = phases.start("DOWNLOAD_SOURCE").await;
    let ws_root = engine
        .work_root
        .join(format!("{}", uuid::Uuid::now_v7().simple()));
    let ws = ws_root.join("src");
    if let Err(e) = workspace::prepare(&req.source, &ws, &job.inputs).await {
        let reason = format!("preparing the build context: {e}");
        phases
            .end("DOWNLOAD_SOURCE", t, Status::Fault, Some(reason.clone()))
            .await;
        let d = log.finish().await;
        let _ = tokio::fs::remove_dir_all(&ws_root).await;
        return ended(Status::Fault, reason, d);
    }
    phases
        .end("DOWNLOAD_SOURCE", t, Status::Succeeded, None)
        .await;

    let t = phases.start("IMAGE_BUILD").await;
    log.note(&format!("building {}", refs.join(", "))).await;
    let request = ImageBuildRequest {
        context: ws.join(&spec.context),
        dockerfile: ws.join(&spec.dockerfile),
        build_args: spec.build_args.clone(),
        target: spec.target.clone(),
        tags: refs.clone(),
        labels: vec![
            ("io.slipway.project".into(), req.project.clone()),
            (
                "io.slipway.revision".into(),
                req.revision.clone().unwrap_or_default(),
            ),
        ],
    };
    let built = builder.build(&request, &mut log, cancel).await;
    let _ = tokio::fs::remove_dir_all(&ws_root).await;
    let id = match built {
        Ok(ImageBuilt::Built { id }) => id,
        Ok(ImageBuilt::Failed { message }) => {
            let status = if cancel.is_cancelled() {
                Status::Cancelled
            } else {
                Status::Failed
            };
            let reason = format!("IMAGE_BUILD failed: {message}");
            phases
                .end("IMAGE_BUILD", t, status, Some(reason.clone()))
                .await;
            let d = log.finish().await;
            return ended(status, reason, d);
        }
        Err(e) => {
            let reason = format!("IMAGE_BUILD: {e}");
            phases
                .end("IMAGE_BUILD", t, Status::Fault, Some(reason.clone()))
                .await;
            let d = log.finish().await;
            return ended(Status::Fault, reason, d);
        }
    };
    phases.end("IMAGE_BUILD", t, Status::Succeeded, None).await;

    let mut outputs = BTreeMap::new();
    outputs.insert("repository".to_string(), full_repo.clone());
    outputs.insert(
        "tag".to_string(),
        spec.tags.first().cloned().unwrap_or_default(),
    );
    if host.is_none() {
        log.note(&format!(
            "built {id}; not pushed: no registry here (give the action a `registry`, or run it on a Slipway server)"
        ))
        .await;
        outputs.insert(
            "image".to_string(),
            refs.first().cloned().unwrap_or_default(),
        );
        outputs.insert("digest".to_string(), id);
        let d = log.finish().await;
        let mut r = BuildResult::ended(Status::Succeeded, None);
        r.exported = outputs;
        r.log = d;
        return r;
    }

    let t = phases.start("IMAGE_PUSH").await;
    let mut digest = None;
    for r in &refs {
        if cancel.is_cancelled() {
            break;
        }
        log.note(&format!("pushing {r}")).await;
        match builder.push(r, auth.as_ref(), &mut log).await {
            Ok(ImagePushed::Pushed { digest: d }) => digest = Some(d),
            Ok(ImagePushed::Failed { message }) => {
                let reason = format!("IMAGE_PUSH of {r} failed: {message}");
                phases
                    .end("IMAGE_PUSH", t, Status::Failed, Some(reason.clone()))
                    .await;
                let d = log.finish().await;
                return ended(Status::Failed, reason, d);
            }
            Err(e) => {
                let reason = format!("IMAGE_PUSH of {r}: {e}");
                phases
                    .end("IMAGE_PUSH", t, Status::Fault, Some(reason.clone()))
                    .await;
                let d = log.finish().await;
                return ended(Status::Fault, reason, d);
            }
        }
    }
    let Some(digest) = digest.filter(|_| !cancel.is_cancelled()) else {
        phases
            .end("IMAGE_PUSH", t, Status::Cancelled, Some("cancelled".into()))
            .await;
        let d = log.finish().await;
        return ended(Status::Cancelled, "cancelled while pushing".into(), d);
    };
    phases.end("IMAGE_PUSH", t, Status::Succeeded, None).await;
    log.note(&format!("pushed {full_repo}@{digest}")).await;
    outputs.insert("image".to_string(), format!("{full_repo}@{digest}"));
    outputs.insert("digest".to_string(), digest.to_string());
    let d = log.finish().await;
    let mut r = BuildResult::ended(Status::Succeeded, None);
    r.exported = outputs;
    r.log = d;
    r
}
