//! Measures session throughput: pipes N bytes (default 1 GiB) through a local shell
//! session into a counting sink and compares with plain `sh -c` reading the same output.
//! Run: `cargo run --release -p slipway-executor --example throughput [bytes]`.

use std::time::Instant;

use slipway_executor::{
    CancellationToken, CommandStatus, ExecutorConfig, JobSpec, LocalConfig, LogSink, RunnerId,
    ShellOptions,
};
use tokio::io::AsyncReadExt;

struct Counter(u64);

#[async_trait::async_trait]
impl LogSink for Counter {
    async fn write(&mut self, data: &[u8]) {
        self.0 += data.len() as u64;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bytes: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1 << 30);
    let cmd = format!("head -c {bytes} /dev/zero");
    let dir = tempfile::tempdir()?;

    // Baseline: the peer a user would otherwise pick, `sh -c` read straight from a pipe.
    let t = Instant::now();
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let r = out.read(&mut buf).await?;
        if r == 0 {
            break;
        }
        n += r as u64;
    }
    child.wait().await?;
    let base = t.elapsed();

    let exec = ExecutorConfig::Local(LocalConfig::default())
        .build(RunnerId("bench".into()))
        .await?;
    let mut job = exec
        .start(&JobSpec {
            job_id: "bench".into(),
            workspace: dir.path().to_path_buf(),
            image: None,
            env: vec![],
            privileged: false,
            services: vec![],
        })
        .await?;
    let mut session = job.open_shell(ShellOptions::default()).await?;
    let mut sink = Counter(0);
    let t = Instant::now();
    let status = session
        .run(&cmd, &mut sink, &CancellationToken::new())
        .await?;
    let ours = t.elapsed();
    assert_eq!(status, CommandStatus::Exited(0));
    assert_eq!(sink.0, bytes);
    assert_eq!(n, bytes);
    let mbps = |d: std::time::Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    eprintln!(
        "bytes={bytes} sh_c={:.0}MB/s session={:.0}MB/s ratio={:.2}",
        mbps(base),
        mbps(ours),
        base.as_secs_f64() / ours.as_secs_f64()
    );
    session.close().await?;
    job.cleanup().await?;
    Ok(())
}
