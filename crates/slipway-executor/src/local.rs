//! The local executor: sessions are shells on the runner's own host, each in its own
//! process group so a cancel kills every process a command started.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use process_wrap::tokio::{ChildWrapper, CommandWrap, KillOnDrop, ProcessGroup};

use crate::session::{SessionBackend, SessionFlag};
use crate::{
    Executor, ExecutorError, ExecutorKind, Job, JobSpec, RunnerId, ShellOptions, ShellSession,
    archive, merged_env, resolve_in,
};

/// Configuration of the local executor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalConfig {
    /// Start sessions with an empty environment (plus the job's) instead of inheriting
    /// the runner's (PATH, HOME, ...).
    pub clear_env: bool,
    /// Where live sessions' process groups are recorded, so that a runner restarted after
    /// being killed (SIGKILL runs no cleanup) kills the processes its predecessor left.
    /// `None`: not recorded (a CLI run, whose sessions die with their terminal).
    pub state_dir: Option<PathBuf>,
}

/// Runs jobs as processes on this host.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    config: LocalConfig,
    runner: RunnerId,
}

impl LocalExecutor {
    pub fn new(config: LocalConfig, runner: RunnerId) -> Self {
        LocalExecutor { config, runner }
    }
}

#[async_trait]
impl Executor for LocalExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Local
    }

    async fn health(&self) -> Result<(), ExecutorError> {
        Ok(())
    }

    async fn start(&self, job: &JobSpec) -> Result<Box<dyn Job>, ExecutorError> {
        let workdir = job.workspace_dir()?;
        tracing::debug!(job_id = %job.job_id, runner = %self.runner.0, %workdir, "local job started");
        Ok(Box::new(LocalJob {
            workdir,
            env: job.env.clone(),
            clear_env: self.config.clear_env,
            sessions: Vec::new(),
            state_dir: self.config.state_dir.clone(),
        }))
    }

    async fn remove_orphans(&self) -> Result<usize, ExecutorError> {
        let Some(dir) = self.config.state_dir.clone() else {
            return Ok(0);
        };
        tokio::task::spawn_blocking(move || orphans::kill_left_behind(&dir))
            .await
            .map_err(|e| ExecutorError::Task {
                detail: e.to_string(),
            })
    }
}

/// A job on the local host.
#[derive(Debug)]
pub struct LocalJob {
    workdir: String,
    env: Vec<(String, String)>,
    clear_env: bool,
    /// Process group of each session opened, with its live flag so cleanup never
    /// signals a group id that may have been reused after the session ended.
    sessions: Vec<(Arc<SessionFlag>, i32)>,
    state_dir: Option<PathBuf>,
}

/// Which ids a session should run under.
struct Identity {
    uid: u32,
    gid: u32,
    name: String,
}

async fn id_query(flag: &str, user: &str) -> Result<String, ExecutorError> {
    let out = tokio::process::Command::new("id")
        .arg(flag)
        .arg("--")
        .arg(user)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| ExecutorError::Spawn {
            what: "`id` to resolve a user".into(),
            source: e,
        })?;
    if !out.status.success() {
        return Err(ExecutorError::UnknownUser {
            user: user.to_string(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn resolve_user(user: &str) -> Result<Option<Identity>, ExecutorError> {
    let parse = |s: String| {
        s.parse::<u32>().map_err(|_| ExecutorError::UnknownUser {
            user: user.to_string(),
            detail: format!("`id` printed `{s}`"),
        })
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        let uid = parse(id_query("-u", user).await?)?;
        let gid = parse(id_query("-g", user).await?)?;
        let name = id_query("-un", user).await?;
        return Ok(Some(Identity { uid, gid, name }));
    }
    // Not root: only "switching" to ourselves is possible.
    let current = id_query("-un", &euid.to_string()).await?;
    if user == current || user == euid.to_string() {
        Ok(None)
    } else {
        Err(ExecutorError::UserSwitchNotPermitted {
            user: user.to_string(),
            current,
        })
    }
}

#[async_trait]
impl Job for LocalJob {
    fn workdir(&self) -> &str {
        &self.workdir
    }

    async fn open_shell(&mut self, opts: ShellOptions) -> Result<ShellSession, ExecutorError> {
        let identity = match &opts.user {
            Some(u) => resolve_user(u).await?,
            None => None,
        };
        let program = opts.shell.program();
        let mut cmd = tokio::process::Command::new(program);
        cmd.current_dir(&self.workdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Replaced by stdout through the preamble `exec 2>&1`.
            .stderr(Stdio::null());
        if self.clear_env {
            cmd.env_clear();
        }
        for (k, v) in merged_env([self.env.as_slice(), opts.env.as_slice()]) {
            cmd.env(k, v);
        }
        if let Some(id) = &identity {
            cmd.uid(id.uid).gid(id.gid);
            cmd.env("USER", &id.name).env("LOGNAME", &id.name);
        }
        let mut wrap = CommandWrap::from(cmd);
        wrap.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
        let mut child = wrap.spawn().map_err(|e| ExecutorError::Spawn {
            what: format!("shell `{program}` in {}", self.workdir),
            source: e,
        })?;
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        let (Some(stdin), Some(stdout)) = (child.stdin().take(), child.stdout().take()) else {
            return Err(ExecutorError::Protocol {
                detail: "spawned shell has no stdin/stdout pipes".into(),
            });
        };
        let flag = SessionFlag::new_alive();
        if let Some(dir) = &self.state_dir {
            orphans::record(dir, pgid);
        }
        for (f, g) in &self.sessions {
            if !f.is_alive()
                && let Some(dir) = &self.state_dir
            {
                orphans::forget(dir, *g);
            }
        }
        self.sessions.retain(|(f, _)| f.is_alive());
        self.sessions.push((flag.clone(), pgid));
        tracing::debug!(pgid, shell = program, user = ?opts.user, "local session opened");
        ShellSession::start(
            Box::pin(stdout),
            Box::pin(stdin),
            Box::new(LocalBackend { child }),
            flag,
        )
        .await
    }

    async fn archive_out(&mut self, path: &str, dest: &Path) -> Result<bool, ExecutorError> {
        let src = PathBuf::from(resolve_in(&self.workdir, path));
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || archive::pack(&src, &dest))
            .await
            .map_err(|e| ExecutorError::Task {
                detail: e.to_string(),
            })?
    }

    async fn archive_in(&mut self, src: &Path, dir: &str) -> Result<(), ExecutorError> {
        let target = PathBuf::from(resolve_in(&self.workdir, dir));
        let src = src.to_path_buf();
        tokio::task::spawn_blocking(move || archive::unpack(&src, &target))
            .await
            .map_err(|e| ExecutorError::Task {
                detail: e.to_string(),
            })?
    }

    async fn cleanup(&mut self) -> Result<(), ExecutorError> {
        for (flag, pgid) in self.sessions.drain(..) {
            if let Some(dir) = &self.state_dir {
                orphans::forget(dir, pgid);
            }
            if flag.is_alive() && pgid > 0 {
                flag.set_dead();
                // SAFETY: plain syscall; the group is ours (the flag says it is alive).
                unsafe { libc::killpg(pgid, libc::SIGKILL) };
            }
        }
        Ok(())
    }
}

/// The spawned shell, as its process group.
struct LocalBackend {
    child: Box<dyn ChildWrapper>,
}

#[async_trait]
impl SessionBackend for LocalBackend {
    async fn kill(&mut self) -> Result<(), ExecutorError> {
        // ProcessGroupChild sends SIGKILL to the whole group.
        if let Err(e) = self.child.start_kill() {
            tracing::debug!(error = %e, "killing the session's process group");
        }
        match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ExecutorError::io("waiting for the killed shell", e)),
            Err(_) => {
                tracing::warn!("killed shell did not exit within 2s");
                Ok(())
            }
        }
    }

    async fn exit_code(&mut self) -> Result<Option<i32>, ExecutorError> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| ExecutorError::io("waiting for the shell", e))?;
        Ok(status.code())
    }
}

/// Process groups recorded on disk: `<state_dir>/<pgid>` holds the runner's pid and the group
/// leader's start time, so a group id the kernel has since reused is never signalled.
mod orphans {
    use std::path::Path;

    /// A process's parent-independent facts from `/proc/<pid>/stat`: (pgrp, start time).
    fn stat(pid: i32) -> Option<(i32, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields start after the last `)`.
        let rest = &text[text.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state(0) ppid(1) pgrp(2) ... starttime(19).
        Some((f.get(2)?.parse().ok()?, f.get(19)?.parse().ok()?))
    }

    pub fn record(dir: &Path, pgid: i32) {
        if pgid <= 0 {
            return;
        }
        let Some((_, start)) = stat(pgid) else { return };
        let _ = std::fs::create_dir_all(dir);
        let line = format!("{} {start}\n", std::process::id());
        if let Err(e) = std::fs::write(dir.join(pgid.to_string()), line) {
            tracing::warn!(error = %e, "recording a local session's process group");
        }
    }

    pub fn forget(dir: &Path, pgid: i32) {
        let _ = std::fs::remove_file(dir.join(pgid.to_string()));
    }

    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        pid > 0 && unsafe { libc::kill(pid, 0) } == 0
    }

    /// Kills the groups recorded by runner processes that are gone; returns how many.
    pub fn kill_left_behind(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut killed = 0;
        for e in entries.flatten() {
            let Ok(pgid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let mut it = text.split_whitespace();
            let owner: i32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let start: u64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            if owner as u32 != std::process::id() && alive(owner) {
                continue; // its runner still lives and cleans up after itself
            }
            // Same leader (same start time), or, with the leader gone, members that started
            // after it: the group is the one recorded.
            let ours = match stat(pgid) {
                Some((g, s)) => g == pgid && s == start,
                None => members_started_after(pgid, start),
            };
            if ours && pgid > 1 {
                // SAFETY: plain syscall on a process group verified above.
                unsafe { libc::killpg(pgid, libc::SIGKILL) };
                killed += 1;
                tracing::info!(pgid, "killed a local session a stopped runner left");
            }
            let _ = std::fs::remove_file(e.path());
        }
        killed
    }

    fn members_started_after(pgid: i32, start: u64) -> bool {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return false;
        };
        let mut any = false;
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Some((g, s)) = stat(pid)
                && g == pgid
            {
                if s < start {
                    return false;
                }
                any = true;
            }
        }
        any
    }
}
