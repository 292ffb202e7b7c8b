//! The Docker executor: a job is a build container (workspace bind-mounted at
//! `/workspace/src`) plus service containers on the job's own network; sessions are
//! attached `docker exec` shells speaking the same protocol as local ones.
//!
//! Written against Engine 20.10 (API 1.41): only fields that API knows are used.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::session::{SessionBackend, SessionFlag};
use crate::{
    Executor, ExecutorError, ExecutorKind, Job, JobSpec, RunnerId, ShellOptions, ShellSession,
    merged_env, resolve_in,
};

/// Label naming the runner that owns a container or network.
pub const LABEL_RUNNER: &str = "io.slipway.runner";
/// Label naming the job a container or network belongs to.
pub const LABEL_JOB: &str = "io.slipway.job";
/// Label holding the pid of the runner process that created the object.
pub const LABEL_PID: &str = "io.slipway.pid";
/// Label holding the hostname of the runner that created the object.
pub const LABEL_HOST: &str = "io.slipway.host";

/// Where the workspace appears inside the build container.
const WORKDIR: &str = "/workspace/src";
const DOCKER_SOCK: &str = "/var/run/docker.sock";
/// Keeps the build container alive with what any image with `sh` has.
const KEEPALIVE: &str = "while :; do sleep 3600; done";

/// Configuration of the Docker executor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerConfig {
    /// Engine address (`unix:///…`, `tcp://…`); `None` uses DOCKER_HOST or the local socket.
    pub host: Option<String>,
}

/// Runs jobs in containers on one Docker engine.
#[derive(Debug, Clone)]
pub struct DockerExecutor {
    docker: Docker,
    runner: RunnerId,
    hostname: String,
    pid: u32,
}

impl DockerExecutor {
    /// The engine's client, for image builds.
    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Docker names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; job ids are ours but may carry `#`.
fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Whether a process with this pid exists on this host.
fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn env_strings(env: &[(String, String)]) -> Vec<String> {
    env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

impl DockerExecutor {
    /// Connects to the engine and negotiates the API version once.
    pub async fn connect(config: DockerConfig, runner: RunnerId) -> Result<Self, ExecutorError> {
        let docker = match &config.host {
            Some(h) => Docker::connect_with_host(h),
            None => Docker::connect_with_local_defaults(),
        }
        .map_err(|source| ExecutorError::EngineUnreachable { source })?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|source| ExecutorError::EngineUnreachable { source })?;
        Ok(DockerExecutor {
            docker,
            runner,
            hostname: hostname(),
            pid: std::process::id(),
        })
    }

    /// The bollard client, for callers (tests, tools) that need the same connection.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    fn labels(&self, job_id: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_RUNNER.to_string(), self.runner.0.clone()),
            (LABEL_JOB.to_string(), job_id.to_string()),
            (LABEL_PID.to_string(), self.pid.to_string()),
            (LABEL_HOST.to_string(), self.hostname.clone()),
        ])
    }

    /// Makes sure `image` is present locally, pulling it if not.
    async fn ensure_image(&self, image: &str) -> Result<(), ExecutorError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(ExecutorError::docker(
                    format!("inspecting image {image}"),
                    e,
                ));
            }
        }
        tracing::info!(image, "image not present locally; pulling");
        let opts = CreateImageOptionsBuilder::new().from_image(image).build();
        let mut pull = self.docker.create_image(Some(opts), None, None);
        while let Some(item) = pull.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error_detail.and_then(|d| d.message) {
                        return Err(ExecutorError::ImageUnavailable {
                            image: image.to_string(),
                            detail: err,
                        });
                    }
                    if let Some(status) = info.status {
                        tracing::info!(image, id = ?info.id, %status, "pull");
                    }
                }
                Err(e) => {
                    return Err(ExecutorError::ImageUnavailable {
                        image: image.to_string(),
                        detail: e.to_string(),
                    });
                }
            }
        }
        // A pull stream can end "successfully" without the image (old engines).
        self.docker
            .inspect_image(image)
            .await
            .map(|_| ())
            .map_err(|e| ExecutorError::ImageUnavailable {
                image: image.to_string(),
                detail: format!("pull finished but the image is still missing: {e}"),
            })
    }

    async fn start_inner(&self, job: &JobSpec, dj: &mut DockerJob) -> Result<(), ExecutorError> {
        let image = job
            .image
            .as_deref()
            .ok_or_else(|| ExecutorError::ImageRequired {
                job_id: job.job_id.clone(),
            })?;
        let workspace = job.workspace_dir()?;
        self.ensure_image(image).await?;
        for svc in &job.services {
            self.ensure_image(&svc.image).await?;
        }
        let labels = self.labels(&job.job_id);

        // A network of the job's own only when service containers must be reached by name:
        // creating and removing one costs ~200 ms, a third of a short build's overhead.
        if !job.services.is_empty() {
            self.docker
                .create_network(NetworkCreateRequest {
                    name: dj.network.clone(),
                    driver: Some("bridge".into()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    ExecutorError::docker(format!("creating network {}", dj.network), e)
                })?;
            dj.network_created = true;
        }

        for svc in &job.services {
            let name = format!(
                "slipway-{}-svc-{}",
                safe_name(&job.job_id),
                safe_name(&svc.name)
            );
            let body = ContainerCreateBody {
                image: Some(svc.image.clone()),
                env: Some(env_strings(&svc.env)),
                cmd: svc.command.clone(),
                labels: Some(labels.clone()),
                host_config: Some(HostConfig {
                    network_mode: Some(dj.network.clone()),
                    ..Default::default()
                }),
                networking_config: Some(NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(
                        dj.network.clone(),
                        EndpointSettings {
                            aliases: Some(vec![svc.name.clone()]),
                            ..Default::default()
                        },
                    )])),
                }),
                ..Default::default()
            };
            self.create_and_start(&name, body, dj).await?;
            tracing::info!(job_id = %job.job_id, service = %svc.name, container = %name, "service started");
        }

        let mut binds = vec![format!("{workspace}:{WORKDIR}")];
        if job.privileged {
            binds.push(format!("{DOCKER_SOCK}:{DOCKER_SOCK}"));
        }
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(vec!["sh".into(), "-c".into(), KEEPALIVE.into()]),
            // The image's entrypoint would wrap our keep-alive command.
            entrypoint: Some(vec![]),
            working_dir: Some(WORKDIR.into()),
            env: Some(env_strings(&job.env)),
            labels: Some(labels),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: dj.network_created.then(|| dj.network.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let build = dj.build.clone();
        self.create_and_start(&build, body, dj).await?;
        tracing::info!(job_id = %job.job_id, container = %build, image, "build container started");
        Ok(())
    }

    async fn create_and_start(
        &self,
        name: &str,
        body: ContainerCreateBody,
        dj: &mut DockerJob,
    ) -> Result<(), ExecutorError> {
        let opts = CreateContainerOptionsBuilder::new().name(name).build();
        self.docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| ExecutorError::docker(format!("creating container {name}"), e))?;
        dj.containers.push(name.to_string());
        self.docker
            .start_container(name, None)
            .await
            .map_err(|e| ExecutorError::docker(format!("starting container {name}"), e))?;
        Ok(())
    }

    /// Whether an object with these labels was left by a dead process of this runner here.
    fn is_orphan(&self, labels: Option<&HashMap<String, String>>) -> bool {
        let Some(labels) = labels else { return false };
        if labels.get(LABEL_RUNNER) != Some(&self.runner.0) {
            return false;
        }
        if labels.get(LABEL_HOST) != Some(&self.hostname) {
            return false;
        }
        match labels.get(LABEL_PID).and_then(|p| p.parse::<i32>().ok()) {
            Some(pid) => !pid_alive(pid),
            // Our runner's label but no readable pid: not provably ours to delete.
            None => false,
        }
    }
}

#[async_trait]
impl Executor for DockerExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Docker
    }

    async fn health(&self) -> Result<(), ExecutorError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|source| ExecutorError::EngineUnreachable { source })
    }

    async fn start(&self, job: &JobSpec) -> Result<Box<dyn Job>, ExecutorError> {
        let base = format!("slipway-{}", safe_name(&job.job_id));
        let mut dj = DockerJob {
            docker: self.docker.clone(),
            build: format!("{base}-build"),
            network: format!("slipway-job-{}", safe_name(&job.job_id)),
            network_created: false,
            containers: Vec::new(),
            sessions: Vec::new(),
        };
        if let Err(e) = self.start_inner(job, &mut dj).await {
            tracing::warn!(job_id = %job.job_id, error = %e, "docker job failed to start; removing what was created");
            if let Err(ce) = dj.cleanup().await {
                tracing::warn!(job_id = %job.job_id, error = %ce, "cleanup after failed start");
            }
            return Err(e);
        }
        Ok(Box::new(dj))
    }

    async fn remove_orphans(&self) -> Result<usize, ExecutorError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_RUNNER}={}", self.runner.0)],
        )]);
        let mut removed = 0;
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| ExecutorError::docker("listing containers", e))?;
        for c in containers {
            if !self.is_orphan(c.labels.as_ref()) {
                continue;
            }
            let Some(id) = c.id else { continue };
            let opts = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            match self.docker.remove_container(&id, Some(opts)).await {
                Ok(()) => {
                    tracing::info!(container = %id, names = ?c.names, "removed orphaned container");
                    removed += 1;
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(ExecutorError::docker(format!("removing container {id}"), e)),
            }
        }
        let opts = ListNetworksOptionsBuilder::new().filters(&filters).build();
        let networks = self
            .docker
            .list_networks(Some(opts))
            .await
            .map_err(|e| ExecutorError::docker("listing networks", e))?;
        for n in networks {
            if !self.is_orphan(n.labels.as_ref()) {
                continue;
            }
            let Some(id) = n.id else { continue };
            match self.docker.remove_network(&id).await {
                Ok(()) => {
                    tracing::info!(network = %id, name = ?n.name, "removed orphaned network");
                    removed += 1;
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(ExecutorError::docker(format!("removing network {id}"), e)),
            }
        }
        Ok(removed)
    }
}

/// A job's containers and network on the engine.
#[derive(Debug)]
pub struct DockerJob {
    docker: Docker,
    build: String,
    network: String,
    network_created: bool,
    /// Containers created so far (services first, build last), for cleanup.
    containers: Vec<String>,
    sessions: Vec<Arc<SessionFlag>>,
}

impl DockerJob {
    /// Runs a short command in the build container as root and returns its exit code
    /// and output.
    async fn exec_simple(&self, cmd: Vec<String>) -> Result<(i64, Vec<u8>), ExecutorError> {
        exec_simple(&self.docker, &self.build, cmd).await
    }
}

async fn exec_simple(
    docker: &Docker,
    container: &str,
    cmd: Vec<String>,
) -> Result<(i64, Vec<u8>), ExecutorError> {
    let what = format!("exec {cmd:?} in {container}");
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(cmd),
                user: Some("0".to_string()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| ExecutorError::docker(what.clone(), e))?;
    let mut output = Vec::new();
    match docker
        .start_exec(&created.id, None)
        .await
        .map_err(|e| ExecutorError::docker(what.clone(), e))?
    {
        StartExecResults::Attached { output: mut o, .. } => {
            while let Some(item) = o.next().await {
                let item = item.map_err(|e| ExecutorError::docker(what.clone(), e))?;
                output.extend_from_slice(&item.into_bytes());
            }
        }
        StartExecResults::Detached => {}
    }
    let code = exec_exit_code(docker, &created.id).await?.unwrap_or(-1);
    Ok((code, output))
}

/// Waits (briefly) for an exec to be reported finished and returns its exit code.
async fn exec_exit_code(docker: &Docker, exec_id: &str) -> Result<Option<i64>, ExecutorError> {
    for _ in 0..50 {
        let info = docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| ExecutorError::docker(format!("inspecting exec {exec_id}"), e))?;
        if info.running != Some(true) {
            return Ok(info.exit_code);
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    Ok(None)
}

#[async_trait]
impl Job for DockerJob {
    fn workdir(&self) -> &str {
        WORKDIR
    }

    async fn open_shell(&mut self, opts: ShellOptions) -> Result<ShellSession, ExecutorError> {
        let program = opts.shell.program();
        let what = format!("opening a `{program}` session in {}", self.build);
        // JobSpec.env is the container's env already; the exec adds the session's.
        let env = merged_env([opts.env.as_slice()]);
        let created = self
            .docker
            .create_exec(
                &self.build,
                CreateExecOptions {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(false),
                    env: Some(env_strings(&env)),
                    cmd: Some(vec![program.to_string()]),
                    user: opts.user.clone(),
                    working_dir: Some(WORKDIR.to_string()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ExecutorError::docker(what.clone(), e))?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(64 * 1024),
                }),
            )
            .await
            .map_err(|e| ExecutorError::docker(what.clone(), e))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(ExecutorError::Protocol {
                detail: format!("{what}: engine started the exec detached"),
            });
        };
        let stream = output.map(|item| match item {
            // Docker echoes nothing on stdin here, but never treat it as output.
            Ok(LogOutput::StdIn { .. }) => Ok(Bytes::new()),
            Ok(o) => Ok(o.into_bytes()),
            Err(e) => Err(std::io::Error::other(e)),
        });
        let reader = StreamReader::new(stream);
        let pid = Arc::new(AtomicI32::new(0));
        let flag = SessionFlag::new_alive();
        self.sessions.retain(|f| f.is_alive());
        self.sessions.push(flag.clone());
        let backend = DockerBackend {
            docker: self.docker.clone(),
            container: self.build.clone(),
            exec_id: created.id.clone(),
            pid: pid.clone(),
        };
        let mut session = ShellSession::start(Box::pin(reader), input, Box::new(backend), flag)
            .await
            .map_err(|e| match e {
                // Typically an unknown user or a missing shell: say which.
                ExecutorError::Protocol { detail } => ExecutorError::Protocol {
                    detail: format!("{what} (user {:?}): {detail}", opts.user),
                },
                other => other,
            })?;
        // Docker runs each exec as a session leader; its pid (in the container) names
        // the process group that cancel kills.
        let probe = session.run_captured("printf '%s' \"$$\"").await?;
        let text = String::from_utf8_lossy(&probe.output);
        match text.trim().parse::<i32>() {
            Ok(p) if p > 1 => pid.store(p, Ordering::SeqCst),
            _ => {
                return Err(ExecutorError::Protocol {
                    detail: format!("{what}: could not learn the shell's pid (got `{text}`)"),
                });
            }
        }
        tracing::debug!(container = %self.build, exec = %created.id, pid = pid.load(Ordering::SeqCst), "docker session opened");
        Ok(session)
    }

    async fn archive_out(&mut self, path: &str, dest: &Path) -> Result<bool, ExecutorError> {
        let full = resolve_in(WORKDIR, path);
        let opts = DownloadFromContainerOptionsBuilder::new()
            .path(&full)
            .build();
        let mut stream = self.docker.download_from_container(&self.build, Some(opts));
        let mut file: Option<tokio::fs::File> = None;
        while let Some(item) = stream.next().await {
            let chunk = match item {
                Ok(c) => c,
                Err(e) if is_not_found(&e) && file.is_none() => return Ok(false),
                Err(e) => {
                    return Err(ExecutorError::docker(
                        format!("downloading {full} from {}", self.build),
                        e,
                    ));
                }
            };
            let f =
                match file.as_mut() {
                    Some(f) => f,
                    None => file.insert(tokio::fs::File::create(dest).await.map_err(|e| {
                        ExecutorError::io(format!("creating {}", dest.display()), e)
                    })?),
                };
            f.write_all(&chunk)
                .await
                .map_err(|e| ExecutorError::io(format!("writing {}", dest.display()), e))?;
        }
        match file {
            Some(mut f) => {
                f.flush()
                    .await
                    .map_err(|e| ExecutorError::io(format!("writing {}", dest.display()), e))?;
                Ok(true)
            }
            // An empty answer is not a tar; treat it as nothing there.
            None => Ok(false),
        }
    }

    async fn archive_in(&mut self, src: &Path, dir: &str) -> Result<(), ExecutorError> {
        let full = resolve_in(WORKDIR, dir);
        let (code, out) = self
            .exec_simple(vec!["mkdir".into(), "-p".into(), "--".into(), full.clone()])
            .await?;
        if code != 0 {
            return Err(ExecutorError::InvalidPath {
                path: full,
                reason: format!(
                    "cannot create it in the container: {}",
                    String::from_utf8_lossy(&out).trim()
                ),
            });
        }
        let file = tokio::fs::File::open(src)
            .await
            .map_err(|e| ExecutorError::io(format!("opening {}", src.display()), e))?;
        // A read error aborts the request body, so the engine never sees a truncated tar.
        let body = bollard::body_try_stream(ReaderStream::with_capacity(file, 64 * 1024));
        let opts = UploadToContainerOptionsBuilder::new().path(&full).build();
        self.docker
            .upload_to_container(&self.build, Some(opts), body)
            .await
            .map_err(|e| ExecutorError::docker(format!("uploading {} to {full}", src.display()), e))
    }

    async fn cleanup(&mut self) -> Result<(), ExecutorError> {
        for flag in self.sessions.drain(..) {
            flag.set_dead();
        }
        // Build container first: it is the one holding user processes.
        let mut names: Vec<String> = self.containers.drain(..).rev().collect();
        if !names.contains(&self.build) {
            names.insert(0, self.build.clone());
        }
        let mut first_error = None;
        for name in names {
            let opts = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            match self.docker.remove_container(&name, Some(opts)).await {
                Ok(()) => tracing::debug!(container = %name, "removed"),
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    tracing::warn!(container = %name, error = %e, "removing container");
                    first_error.get_or_insert(ExecutorError::docker(
                        format!("removing container {name}"),
                        e,
                    ));
                }
            }
        }
        // A failed start may have failed creating the network because it existed; only
        // remove a network this job created.
        if self.network_created {
            match self.docker.remove_network(&self.network).await {
                Ok(()) => self.network_created = false,
                Err(e) if is_not_found(&e) => self.network_created = false,
                Err(e) => {
                    first_error.get_or_insert(ExecutorError::docker(
                        format!("removing network {}", self.network),
                        e,
                    ));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Kills a docker session from a second exec, by the process group of its shell.
struct DockerBackend {
    docker: Docker,
    container: String,
    exec_id: String,
    pid: Arc<AtomicI32>,
}

#[async_trait]
impl SessionBackend for DockerBackend {
    async fn kill(&mut self) -> Result<(), ExecutorError> {
        let pid = self.pid.load(Ordering::SeqCst);
        if pid <= 1 {
            tracing::warn!(exec = %self.exec_id, "session pid unknown; cannot kill its processes");
            return Ok(());
        }
        // Group first (children), then the shell itself in case it left its group.
        let script =
            format!("kill -s KILL -- -{pid} 2>/dev/null; kill -s KILL {pid} 2>/dev/null; true");
        match exec_simple(
            &self.docker,
            &self.container,
            vec!["sh".into(), "-c".into(), script],
        )
        .await
        {
            Ok(_) => Ok(()),
            // The container is gone (cleanup ran): so are the processes.
            Err(ExecutorError::Docker { source, .. }) if is_not_found(&source) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn exit_code(&mut self) -> Result<Option<i32>, ExecutorError> {
        match exec_exit_code(&self.docker, &self.exec_id).await {
            Ok(code) => Ok(code.map(|c| i32::try_from(c).unwrap_or(-1))),
            Err(ExecutorError::Docker { source, .. }) if is_not_found(&source) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
