//! `TestServer`: the real `slipway server` on a free port over a data directory of its own,
//! stopped (SIGTERM, then SIGKILL) when dropped; and a runner with a deadline for client
//! verbs that could otherwise hang a test.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::support::{Run, bin};

pub struct TestServer {
    child: Option<Child>,
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl TestServer {
    /// Starts `slipway server --data DATA --listen 127.0.0.1:0` and waits for its
    /// `listening on http://...` line.
    pub fn start(data: &Path) -> TestServer {
        TestServer::start_on(data, "127.0.0.1:0")
    }

    /// The same on a given address (a restart where the clients expect it).
    pub fn start_on(data: &Path, listen: &str) -> TestServer {
        TestServer::start_with(data, listen, &[])
    }

    /// The same with more `slipway server` arguments (`--database URL`).
    pub fn start_with(data: &Path, listen: &str, extra: &[&str]) -> TestServer {
        let mut child = Command::new(bin())
            .arg("server")
            .arg("--data")
            .arg(data)
            .args(["--listen", listen])
            .args(extra)
            .env_remove("SLIPWAY_LOG")
            .env_remove("SLIPWAY_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start slipway server");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let stderr = child.stderr.take().expect("stderr");
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let url = url.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(url);
                }
                let mut l = l2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let l3 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut l = l3.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut server = TestServer {
            child: Some(child),
            url: String::new(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => server.url = url.trim_end_matches('/').to_string(),
            Err(_) => {
                server.stop();
                panic!(
                    "the server printed no `listening on` line within 60 s\n--- server log\n{}",
                    server.log()
                );
            }
        }
        server
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Runs a client verb against this server (within two minutes).
    pub fn slipway(&self, args: &[&str]) -> Run {
        self.slipway_in(None, args)
    }

    /// A client verb running beside the test; join it for its result.
    pub fn background(&self, args: &[&str]) -> std::thread::JoinHandle<Run> {
        let cmd = self.command(None, args);
        std::thread::spawn(move || run_with_deadline(cmd, Duration::from_secs(120)))
    }

    fn command(&self, dir: Option<&Path>, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("SLIPWAY_SERVER", &self.url)
            .env("USER", "tester")
            .env_remove("SLIPWAY_LOG")
            .env_remove("SLIPWAY_DATA");
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        cmd
    }

    pub fn slipway_in(&self, dir: Option<&Path>, args: &[&str]) -> Run {
        let cmd = self.command(dir, args);
        let r = run_with_deadline(cmd, Duration::from_secs(120));
        if r.code == -1 {
            panic!(
                "slipway {args:?} did not finish\n{}\n--- server log\n{}",
                r.explain(),
                self.log()
            );
        }
        r
    }

    /// `host:port` it listens on.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// Kills the server at once (SIGKILL): no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server: SIGTERM, then SIGKILL after 15 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a command, killing it after `limit` (then `code` is -1).
pub fn run_with_deadline(mut cmd: Command, limit: Duration) -> Run {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run slipway");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let o = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let e = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code,
        stdout: String::from_utf8_lossy(&o.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&e.join().unwrap_or_default()).into_owned(),
    }
}
