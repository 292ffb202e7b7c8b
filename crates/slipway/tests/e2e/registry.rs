//! The registry against the real clients: `docker login/push/pull/manifest inspect` and
//! `skopeo inspect/copy/delete` (both from Debian) against the real `slipway server`, and a
//! garbage collection racing concurrent pushes that loses nothing.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::server_support::TestServer;
use super::support::{IMAGE, Scratch, docker};

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run a client")
}

fn ok(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{what} failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A docker CLI with its own credential store (docker login writes config.json there).
fn docker_cmd(config: &Path) -> Command {
    let mut c = Command::new("docker");
    c.env("DOCKER_CONFIG", config).env("DOCKER_BUILDKIT", "0");
    c
}

/// `docker build` of a small image FROM the local busybox, a few layers, one of them unique.
fn build(config: &Path, dir: &Path, tag: &str, unique: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {IMAGE}\nRUN echo layer-one > /one\nCOPY unique /unique\nRUN dd if=/dev/urandom of=/big bs=64k count=8 2>/dev/null\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("unique"), unique).unwrap();
    ok(docker_cmd(config).args(["build", "-q", "-t", tag]).arg(dir));
}

fn project(server: &TestServer, s: &Scratch, name: &str) {
    let repo = s.path().join(format!("{name}-repo"));
    std::fs::create_dir_all(&repo).unwrap();
    super::support::git(&repo, &["init", "-q"]);
    let r = server.slipway(&["project", "create", name, "--git", repo.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.explain());
}

fn skopeo(args: &[&str]) -> Command {
    let mut c = Command::new("skopeo");
    c.args(args);
    c
}

struct Images(Vec<String>, std::path::PathBuf);

impl Drop for Images {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = docker_cmd(&self.1)
                .args(["rmi", "-f", t])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn docker_and_skopeo_push_pull_inspect_and_delete() {
    if !docker() {
        return;
    }
    let s = Scratch::new();
    let server = TestServer::start(&s.data());
    let addr = server.addr();
    project(&server, &s, "proj");
    assert!(
        server.log().contains("registry: docker login"),
        "{}",
        server.log()
    );
    let password = std::fs::read_to_string(s.data().join("registry-password"))
        .unwrap()
        .trim()
        .to_string();
    let dc = s.path().join("docker-config");
    std::fs::create_dir_all(&dc).unwrap();

    // A wrong password is refused; the right one logs in through the token flow.
    let bad = run(docker_cmd(&dc)
        .args(["login", &addr, "-u", "slipway", "-p", "wrong"])
        .stdin(Stdio::null()));
    assert!(!bad.status.success());
    let mut login = docker_cmd(&dc)
        .args(["login", &addr, "-u", "slipway", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    login
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = login.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));

    let tag = format!("{addr}/proj/app:1");
    let _cleanup = Images(vec![tag.clone()], dc.clone());
    build(&dc, &s.path().join("ctx"), &tag, "e2e");
    let id = ok(docker_cmd(&dc).args(["image", "inspect", "-f", "{{.Id}}", &tag]));
    let pushed = ok(docker_cmd(&dc).args(["push", &tag]));
    let digest = pushed
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .expect("docker push prints the digest")
        .to_string();
    // Pushing again finds every layer there.
    let again = ok(docker_cmd(&dc).args(["push", &tag]));
    assert!(again.contains("Layer already exists"), "{again}");
    ok(docker_cmd(&dc).args(["rmi", "-f", &tag]));
    ok(docker_cmd(&dc).args(["pull", &tag]));
    assert_eq!(
        ok(docker_cmd(&dc).args(["image", "inspect", "-f", "{{.Id}}", &tag])),
        id
    );
    let m = ok(docker_cmd(&dc).args(["manifest", "inspect", "--insecure", &tag]));
    let m: serde_json::Value = serde_json::from_str(&m).unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(m["layers"].as_array().unwrap().len(), 4, "{m}");

    // skopeo: inspect, copy to another repository (blobs mounted), delete.
    let creds = format!("slipway:{password}");
    let insp = ok(&mut skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{tag}"),
    ]));
    let insp: serde_json::Value = serde_json::from_str(&insp).unwrap();
    assert_eq!(insp["Digest"], digest.as_str());
    let copy = format!("docker://{addr}/proj/copy:2");
    ok(&mut skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        &creds,
        "--dest-creds",
        &creds,
        &format!("docker://{tag}"),
        &copy,
    ]));
    let raw = ok(&mut skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds,
        &copy,
    ]));
    assert!(raw.contains("application/vnd.docker.distribution.manifest.v2+json"));
    // An OCI layout round trip: OCI manifests are stored and served as such.
    let layout = format!("oci:{}:x", s.path().join("layout").display());
    ok(&mut skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        "--format",
        "oci",
        &format!("docker://{tag}"),
        &layout,
    ]));
    let oci = format!("docker://{addr}/proj/oci:3");
    ok(&mut skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &layout,
        &oci,
    ]));
    let raw = ok(&mut skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds,
        &oci,
    ]));
    assert!(
        raw.contains("application/vnd.oci.image.manifest.v1+json"),
        "{raw}"
    );
    ok(&mut skopeo(&[
        "delete",
        "--tls-verify=false",
        "--creds",
        &creds,
        &copy,
    ]));
    let gone = run(&mut skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        &copy,
    ]));
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("manifest unknown"));
    // Without credentials, nothing.
    let anon = run(&mut skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--no-creds",
        &format!("docker://{tag}"),
    ]));
    assert!(!anon.status.success());
    let r = server.slipway(&["registry", "set", "proj/app", "--anonymous-pull", "true"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    ok(&mut skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--no-creds",
        &format!("docker://{tag}"),
    ]));

    // Immutable tags: pushing another image under `1` fails with a clear message.
    let r = server.slipway(&["registry", "set", "proj/app", "--immutable-tags", "true"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    build(&dc, &s.path().join("ctx2"), &tag, "another");
    let moved = run(docker_cmd(&dc).args(["push", &tag]));
    assert!(!moved.status.success());
    let err = String::from_utf8_lossy(&moved.stderr);
    assert!(err.contains("immutable"), "{err}");

    // The people's view.
    let r = server.slipway(&["registry", "tags", "proj/app"]);
    assert!(r.stdout.contains(&digest), "{}", r.explain());
    let r = server.slipway(&["registry", "ls", "proj"]);
    assert!(
        r.stdout.contains(&format!("{addr}/proj/app")),
        "{}",
        r.explain()
    );
    let r = server.slipway(&["registry", "rm", "proj/oci:3"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let r = server.slipway(&["registry", "rm", "nosuch/app:1"]);
    assert_eq!(r.code, 2, "{}", r.explain());
    let r = server.slipway(&["registry", "gc"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    // The pushed image still pulls whole after a collection.
    ok(docker_cmd(&dc).args(["rmi", "-f", &tag]));
    ok(docker_cmd(&dc).args(["pull", &tag]));
    assert_eq!(
        ok(docker_cmd(&dc).args(["image", "inspect", "-f", "{{.Id}}", &tag])),
        id
    );
}

#[test]
fn garbage_collection_during_eight_concurrent_pushes_loses_nothing() {
    if !docker() {
        return;
    }
    let s = Scratch::new();
    let config = s.write(
        "slipway.toml",
        "[registry]\npassword = \"pw\"\ngc_grace = \"3s\"\n",
    );
    let server = TestServer::start_with(
        &s.data(),
        "127.0.0.1:0",
        &["--config", config.to_str().unwrap()],
    );
    let addr = server.addr();
    project(&server, &s, "proj");
    let dc = s.path().join("docker-config");
    std::fs::create_dir_all(&dc).unwrap();
    let tags: Vec<String> = (0..8).map(|i| format!("{addr}/proj/app{i}:v{i}")).collect();
    let _cleanup = Images(tags.clone(), dc.clone());
    for (i, t) in tags.iter().enumerate() {
        build(
            &dc,
            &s.path().join(format!("ctx{i}")),
            t,
            &format!("image {i}"),
        );
    }
    // Garbage to collect while the pushes run: an image pushed, then deleted.
    let junk = format!("{addr}/proj/junk:1");
    let mut all = tags.clone();
    all.push(junk.clone());
    let _cleanup2 = Images(vec![junk.clone()], dc.clone());
    build(&dc, &s.path().join("junk"), &junk, "junk");
    let push = |t: &str, digestfile: &Path| {
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "slipway:pw",
            "--digestfile",
            digestfile.to_str().unwrap(),
            &format!("docker-daemon:{t}"),
            &format!("docker://{t}"),
        ])
    };
    ok(&mut push(&junk, &s.path().join("junk.digest")));
    ok(&mut skopeo(&[
        "delete",
        "--tls-verify=false",
        "--creds",
        "slipway:pw",
        &format!("docker://{junk}"),
    ]));

    // Older than the grace before the pushes start, so collections may take it meanwhile.
    std::thread::sleep(Duration::from_millis(3500));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc = {
        let stop = stop.clone();
        let url = server.url.clone();
        std::thread::spawn(move || {
            let (mut passes, mut collected) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = Command::new(super::support::bin())
                    .args(["registry", "gc", "--json", "--server", &url])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                collected += v["blobs"].as_u64().unwrap();
                passes += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (passes, collected)
        })
    };
    let pushes: Vec<_> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let t = t.clone();
            let f = s.path().join(format!("{i}.digest"));
            std::thread::spawn(move || {
                // Blobs younger than the grace are kept, so no push should be refused; if a
                // client were slower than that, the registry would refuse its manifest
                // (MANIFEST_BLOB_UNKNOWN) rather than store one with a blob missing.
                for attempt in 0..5 {
                    let out = run(&mut push(&t, &f));
                    if out.status.success() {
                        return (t, std::fs::read_to_string(&f).unwrap());
                    }
                    let err = String::from_utf8_lossy(&out.stderr).into_owned();
                    assert!(
                        err.contains("blob unknown") || err.contains("BLOB_UNKNOWN"),
                        "attempt {attempt}: {err}"
                    );
                }
                panic!("{t}: five pushes refused");
            })
        })
        .collect();
    let pushed: Vec<(String, String)> = pushes.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (passes, collected) = gc.join().unwrap();
    assert!(passes >= 1);
    // The deleted image's own layers went while the pushes ran.
    assert!(
        collected >= 2,
        "{passes} passes collected {collected} blobs"
    );
    let r = server.slipway(&["registry", "gc"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    assert!(r.stdout.contains("blobs"), "{}", r.explain());
    // Every image pulls whole (skopeo checks each blob's digest) and has the digest pushed.
    for (t, digest) in pushed {
        let dir = s
            .path()
            .join(format!("pulled-{}", digest.trim().replace(':', "-")));
        ok(&mut skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            "slipway:pw",
            &format!("docker://{t}"),
            &format!("dir:{}", dir.display()),
        ]));
        let insp = ok(&mut skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "slipway:pw",
            &format!("docker://{t}"),
        ]));
        let insp: serde_json::Value = serde_json::from_str(&insp).unwrap();
        assert_eq!(insp["Digest"], digest.trim(), "{t}");
    }
    // The deleted image's own layer is gone from the store.
    let gone = run(&mut skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "slipway:pw",
        &format!("docker://{junk}"),
    ]));
    assert!(!gone.status.success());
}
