//! Helpers for driving the real binary: temp data dirs, repos, running and reading events.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const IMAGE: &str = "slipway-busybox:latest";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_slipway")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

pub fn example(name: &str) -> PathBuf {
    repo_root().join("examples").join(name)
}

/// `true` when Docker tests should run; panics when no engine answers unless skipping was asked
/// for, so the README's test command can never skip them silently.
pub fn docker() -> bool {
    if std::env::var("SLIPWAY_SKIP_DOCKER_TESTS").as_deref() == Ok("1") {
        eprintln!("!!! SKIPPED: Docker test (SLIPWAY_SKIP_DOCKER_TESTS=1) !!!");
        return false;
    }
    let ok = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "no Docker engine with image {IMAGE}: run scripts/provision.sh (or set SLIPWAY_SKIP_DOCKER_TESTS=1 to skip loudly)"
    );
    true
}

/// A scratch directory with its own Slipway data directory.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes a file below the scratch dir, creating parents.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The scratch repository, `<scratch>/repo`, as an argument.
    pub fn repo(&self) -> String {
        self.dir.path().join("repo").display().to_string()
    }

    /// `slipway build <repo> --json --executor EXECUTOR [EXTRA...]`; docker adds `--image IMAGE`.
    pub fn build_json(&self, executor: &str, extra: &[&str]) -> Run {
        let repo = self.repo();
        let mut args = vec!["build", repo.as_str(), "--json", "--executor", executor];
        if executor == "docker" {
            args.extend(["--image", IMAGE]);
        }
        args.extend(extra);
        self.slipway(&args)
    }

    /// Runs slipway with this scratch's data dir.
    pub fn slipway(&self, args: &[&str]) -> Run {
        let out = Command::new(bin())
            .args(args)
            .env("SLIPWAY_DATA", self.data())
            .env_remove("SLIPWAY_LOG")
            .output()
            .expect("run slipway");
        Run::from(out)
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The `--json` event stream.
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON event: {l}: {e}"))
            })
            .collect()
    }

    pub fn of_type(&self, t: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["type"] == t)
            .collect()
    }

    /// All log text of an action, concatenated.
    pub fn log(&self, action: &str) -> String {
        self.of_type("log")
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["text"].as_str().unwrap_or("").to_string())
            .collect()
    }

    pub fn explain(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .status()
        .expect("git");
    assert!(st.success(), "git {args:?}");
}

/// Processes whose working directory is inside `dir` (builds something there started).
pub fn processes_in(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or(dir.to_path_buf());
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        if p.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        if let Ok(cwd) = std::fs::read_link(p.path().join("cwd"))
            && cwd.starts_with(&dir)
        {
            let cmd = std::fs::read_to_string(p.path().join("cmdline")).unwrap_or_default();
            out.push(format!(
                "{} {}",
                p.file_name().to_string_lossy(),
                cmd.replace('\0', " ")
            ));
        }
    }
    out
}

/// Containers (running or not) carrying the runner label `runner`.
pub fn containers_labelled(runner: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.slipway.runner={runner}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}
