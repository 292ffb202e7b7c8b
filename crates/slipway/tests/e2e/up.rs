//! `slipway up`, the README's first command: a server, a demo project and its pipeline
//! running; the second time, the same data directory and project reused.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::server_support::run_with_deadline;
use super::support::{Scratch, bin};

struct Up {
    child: Child,
    url: String,
    stdout: String,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `slipway up` and reads what it prints until the "Ctrl-C" line.
fn up(data: &Path) -> Up {
    let mut child = Command::new(bin())
        .args(["--data"])
        .arg(data)
        .args(["up", "--listen", "127.0.0.1:0"])
        .env_remove("SLIPWAY_LOG")
        .env_remove("SLIPWAY_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("slipway up");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdout = String::new();
    let t = Instant::now();
    while !stdout.contains("Ctrl-C stops the server") {
        match rx.recv_timeout(Duration::from_secs(60).saturating_sub(t.elapsed())) {
            Ok(l) => {
                stdout.push_str(&l);
                stdout.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                panic!("slipway up printed no Ctrl-C line within 60 s:\n{stdout}");
            }
        }
    }
    let url = stdout
        .split("Slipway is up at ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no URL in:\n{stdout}"))
        .to_string();
    Up { child, url, stdout }
}

fn client(url: &str, args: &[&str]) -> Value {
    let mut cmd = Command::new(bin());
    cmd.args(args).arg("--json").env("SLIPWAY_SERVER", url);
    let r = run_with_deadline(cmd, Duration::from_secs(120));
    assert_eq!(r.code, 0, "{}", r.explain());
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

fn wait_succeeded(url: &str, execution: &str) {
    let t = Instant::now();
    loop {
        let v = client(url, &["execution", "show", execution]);
        match v["status"].as_str() {
            Some("succeeded") => return,
            Some("queued" | "running") if t.elapsed() < Duration::from_secs(120) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            _ => panic!("{execution}: {v:#}"),
        }
    }
}

#[test]
fn up_starts_a_demo_that_succeeds_and_reuses_everything_the_second_time() {
    let s = Scratch::new();
    let data = s.data();
    let first = up(&data);
    assert!(first.stdout.contains("(new)"), "{}", first.stdout);
    assert!(
        first.stdout.contains("started         hello#1"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("slipway logs -f hello#1"),
        "{}",
        first.stdout
    );
    wait_succeeded(&first.url, "hello#1");
    let v = client(&first.url, &["execution", "show", "hello#1"]);
    assert_eq!(v["actions"][0]["reports"][0]["passed"], 7, "{v:#}");
    // Ctrl-C stops it cleanly.
    let mut first = first;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(first.child.id() as libc::pid_t, libc::SIGINT) };
    let t = Instant::now();
    loop {
        if let Ok(Some(st)) = first.child.try_wait() {
            assert!(st.success(), "exit {st:?}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "up did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(first);

    let second = up(&data);
    assert!(second.stdout.contains("(reused)"), "{}", second.stdout);
    assert!(
        second.stdout.contains("started         hello#2"),
        "{}",
        second.stdout
    );
    wait_succeeded(&second.url, "hello#2");
    let projects = client(&second.url, &["project", "ls"]);
    assert_eq!(
        projects["items"].as_array().unwrap().len(),
        1,
        "{projects:#}"
    );
}
