//! Image actions: a Dockerfile built through the real Docker engine by `slipway run` (tagged
//! locally) and by the server (pushed to Slipway's registry and pulled back).

use serde_json::Value;

use super::support::{Scratch, docker, example, git};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in walk(from) {
        let rel = e.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if e.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&e, &dest).unwrap();
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// The web example as a repository of its own in the scratch dir.
pub fn web_repo(s: &Scratch) -> std::path::PathBuf {
    let repo = s.path().join("web");
    copy_dir(&example("web"), &repo);
    let _ = std::fs::remove_dir_all(repo.join("dist"));
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "web"]);
    repo
}

#[test]
fn slipway_run_builds_the_web_example_image_locally() {
    if !docker() {
        return;
    }
    let s = Scratch::new();
    let repo = web_repo(&s);
    let r = s.slipway(&["run", repo.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let finished: Vec<Value> = r
        .of_type("action_finished")
        .into_iter()
        .filter(|e| e["action"] == "web-image")
        .collect();
    let outputs = &finished[0]["outputs"];
    let version = std::fs::read_to_string(repo.join("VERSION")).unwrap();
    assert_eq!(outputs["tag"], version.trim(), "{finished:?}");
    assert_eq!(outputs["repository"], "web/web");
    let log = r.log("web-image");
    assert!(log.contains("not pushed"), "{log}");
    // The image is on the engine under both tags, and serves its version.
    let inspect = std::process::Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            &format!("web/web:{}", version.trim()),
        ])
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let id = String::from_utf8_lossy(&inspect.stdout).trim().to_string();
    assert_eq!(outputs["digest"], id);
    let out = std::process::Command::new("docker")
        .args(["run", "--rm", &id, "cat", "/www/index.html"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(version.trim()),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A second build reuses the engine's layer cache.
    let again = s.slipway(&["run", repo.to_str().unwrap(), "--json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.log("web-image").contains("Using cache"),
        "{}",
        again.log("web-image")
    );
}

#[test]
fn a_failing_dockerfile_step_fails_the_action_with_its_message() {
    if !docker() {
        return;
    }
    let s = Scratch::new();
    s.write(
        "repo/.slipway/pipeline.yml",
        "name: bad\nstages:\n  - name: image\n    actions:\n      - name: img\n        type: image\n        tags: [t1]\n",
    );
    s.write(
        "repo/Dockerfile",
        "FROM slipway-busybox:latest\nRUN echo about to fail && exit 3\n",
    );
    let r = s.slipway(&["run", &s.repo(), "--json"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let fin = &r.of_type("action_finished")[0];
    assert_eq!(fin["status"], "failed");
    let reason = fin["reason"].as_str().unwrap();
    assert!(reason.starts_with("IMAGE_BUILD failed"), "{reason}");
    assert!(r.log("img").contains("about to fail"), "{}", r.log("img"));
}

#[test]
fn the_server_builds_the_web_example_and_pushes_it_to_its_own_registry() {
    if !docker() {
        return;
    }
    let s = Scratch::new();
    let repo = web_repo(&s);
    let server = super::server_support::TestServer::start(&s.data());
    let r = server.slipway(&["project", "create", "web", "--git", repo.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let r = server.slipway(&["pipeline", "start", "web", "--follow"]);
    assert_eq!(r.code, 0, "{}\n--- server\n{}", r.explain(), server.log());
    let r = server.slipway(&["execution", "show", "web#1", "--json"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let image = v["actions"][1]["outputs"]["image"]
        .as_str()
        .unwrap()
        .to_string();
    let host = server.addr();
    assert!(
        image.starts_with(&format!("{host}/web/web@sha256:")),
        "{image}"
    );
    // A client signed in with the registry's credentials pulls what the pipeline pushed.
    let config = tempfile::tempdir().unwrap();
    let password = std::fs::read_to_string(s.data().join("registry-password")).unwrap();
    let docker_cmd = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut c = std::process::Command::new("docker")
            .env("DOCKER_CONFIG", config.path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(i) = stdin {
            c.stdin.take().unwrap().write_all(i.as_bytes()).unwrap();
        } else {
            drop(c.stdin.take());
        }
        c.wait_with_output().unwrap()
    };
    let login = docker_cmd(
        &["login", &host, "-u", "slipway", "--password-stdin"],
        Some(password.trim()),
    );
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    // Remove the engine's local copy so the pull really comes from the registry.
    let version = std::fs::read_to_string(repo.join("VERSION")).unwrap();
    let tagged = format!("{host}/web/web:{}", version.trim());
    let _ = docker_cmd(&["image", "rm", "-f", &tagged], None);
    let pull = docker_cmd(&["pull", &image], None);
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let out = docker_cmd(&["run", "--rm", &image, "cat", "/www/index.html"], None);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(version.trim()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tags = server.slipway(&["registry", "tags", "web/web", "--json"]);
    assert!(tags.stdout.contains(version.trim()), "{}", tags.explain());
}

#[test]
fn slipway_run_pushes_to_another_registry_with_credentials_from_a_secret() {
    if !docker() {
        return;
    }
    // Another registry: a Slipway server's, which wants its user and password.
    let s = Scratch::new();
    let server = super::server_support::TestServer::start(&s.data());
    let r = server.slipway(&["project", "create", "other", "--git", "/nonexistent"]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let host = server.addr();
    let password = std::fs::read_to_string(s.data().join("registry-password")).unwrap();
    s.write(
        "repo/.slipway/pipeline.yml",
        &format!(
            "name: ext\nstages:\n  - name: image\n    actions:\n      - name: img\n        type: image\n        namespace: img\n        registry: \"{host}\"\n        repository: other/ext\n        credentials: REGISTRY_LOGIN\n        tags: [v1]\n"
        ),
    );
    s.write(
        "repo/Dockerfile",
        "FROM slipway-busybox:latest\nRUN echo external > /ext\n",
    );
    let secrets = s.write(
        "secrets.env",
        &format!("REGISTRY_LOGIN=slipway:{}\n", password.trim()),
    );
    let r = s.slipway(&[
        "run",
        &s.repo(),
        "--json",
        "--secrets-file",
        secrets.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let fin = &r.of_type("action_finished")[0];
    let image = fin["outputs"]["image"].as_str().unwrap();
    assert!(
        image.starts_with(&format!("{host}/other/ext@sha256:")),
        "{image}"
    );
    // Wrong credentials: the push fails and says so.
    let bad = s.write("bad.env", "REGISTRY_LOGIN=slipway:wrong\n");
    let r = s.slipway(&[
        "run",
        &s.repo(),
        "--json",
        "--secrets-file",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let fin = &r.of_type("action_finished")[0];
    assert!(
        fin["reason"].as_str().unwrap().starts_with("IMAGE_PUSH of"),
        "{fin}"
    );
}
