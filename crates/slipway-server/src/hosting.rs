//! Repositories Slipway hosts: made by `slipway project create NAME` (no `--git`) at
//! `<data>/git/NAME.git`, served at `/git/NAME.git` over git's smart HTTP protocol by
//! `git http-backend` run as a CGI program, request and response bodies streamed both ways.
//! After a push (a `git-receive-pack` request) has been answered, the refs it moved go to
//! the triggers in the background, so the push returns as fast as git alone would.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use slipway_store::ProjectRow;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::AppState;

/// Where hosted repositories live: `<data>/git`, made absolute (a project records its
/// repository's path, which must not depend on the server's working directory).
pub fn root(data: &Path) -> PathBuf {
    std::path::absolute(data)
        .unwrap_or_else(|_| data.to_path_buf())
        .join("git")
}

/// The hosted repository of project `name`.
pub fn repo_path(data: &Path, name: &str) -> PathBuf {
    root(data).join(format!("{name}.git"))
}

/// Whether Slipway hosts the project's repository (its git is `<data>/git/NAME.git`).
pub fn is_hosted(data: &Path, p: &ProjectRow) -> bool {
    Path::new(&p.git) == repo_path(data, &p.name)
}

/// Makes (or keeps, when it exists) the bare repository of a hosted project, ready for
/// pushes over HTTP and for runners that fetch by commit id or shallow.
pub async fn create_repo(data: &Path, name: &str) -> Result<PathBuf, String> {
    let path = repo_path(data, name);
    tokio::fs::create_dir_all(root(data))
        .await
        .map_err(|e| format!("{}: {e}", root(data).display()))?;
    let run = |args: Vec<String>| async move {
        let out = Command::new("git")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("running git: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    let p = path.display().to_string();
    run(vec![
        "init".into(),
        "--bare".into(),
        "--quiet".into(),
        "--initial-branch=main".into(),
        p.clone(),
    ])
    .await?;
    for (k, v) in [
        ("http.receivepack", "true"),
        ("uploadpack.allowReachableSHA1InWant", "true"),
        ("uploadpack.allowFilter", "true"),
    ] {
        run(vec![
            "-C".into(),
            p.clone(),
            "config".into(),
            k.into(),
            v.into(),
        ])
        .await?;
    }
    Ok(path)
}

/// `/git/NAME.git/...` (any method): one `git http-backend` CGI request.
pub async fn serve(State(s): State<AppState>, req: Request) -> Response {
    let full = req.uri().path().to_string();
    let rest = full.strip_prefix("/git/").unwrap_or("");
    let (repo, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let name = repo.strip_suffix(".git").unwrap_or(repo);
    if !crate::api::valid_name(name) || tail.split('/').any(|seg| seg == "..") {
        return not_found(name);
    }
    let project = match s.sched.db.project(name).await {
        Ok(Some(p)) if is_hosted(&s.config.data, &p) => p,
        Ok(_) => return not_found(name),
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let is_push = req.method() == axum::http::Method::POST && tail == "git-receive-pack";
    let remote_addr = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let headers = req.headers().clone();
    let header = |h: HeaderName| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("GIT_PROJECT_ROOT", root(&s.config.data))
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{name}.git/{tail}"))
        .env("QUERY_STRING", req.uri().query().unwrap_or(""))
        .env("REQUEST_METHOD", req.method().as_str())
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    if let Some(v) = header(header::CONTENT_TYPE) {
        cmd.env("CONTENT_TYPE", v);
    }
    if let Some(v) = header(header::CONTENT_LENGTH) {
        cmd.env("CONTENT_LENGTH", v);
    }
    if let Some(v) = header(header::CONTENT_ENCODING) {
        cmd.env("HTTP_CONTENT_ENCODING", v);
    }
    if let Some(v) = header(HeaderName::from_static("git-protocol")) {
        cmd.env("GIT_PROTOCOL", v);
    }
    if let Some(a) = remote_addr {
        cmd.env("REMOTE_ADDR", a);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return crate::error::ApiError::internal(format!("git http-backend: {e}"))
                .into_response();
        }
    };
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return crate::error::ApiError::internal("git http-backend: no pipes").into_response();
    };
    // The request body flows into git as it arrives (a pack can be any size).
    let mut body = req.into_body().into_data_stream();
    tokio::spawn(async move {
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = stdin.shutdown().await;
    });
    // git's complaints, and the end of the request: for a push, its refs go to the triggers.
    let state = s.clone();
    let waiter = tokio::spawn(async move {
        let mut err = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut err).await;
        let status = child.wait().await;
        if !err.is_empty() || !status.as_ref().is_ok_and(|s| s.success()) {
            tracing::warn!(
                status = ?status,
                stderr = %String::from_utf8_lossy(&err).trim(),
                "git http-backend"
            );
        }
        if is_push {
            crate::poll::after_push(&state, &project).await;
        }
    });
    let mut out = BufReader::with_capacity(64 << 10, stdout);
    let (status, headers) = match read_cgi_headers(&mut out).await {
        Ok(h) => h,
        Err(e) => {
            waiter.abort();
            return crate::error::ApiError::internal(format!("git http-backend: {e}"))
                .into_response();
        }
    };
    let mut resp = Response::new(Body::from_stream(
        tokio_util::io::ReaderStream::with_capacity(out, 64 << 10),
    ));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

fn not_found(name: &str) -> Response {
    crate::error::ApiError::not_found(format!("no hosted repository `{name}`")).into_response()
}

/// Reads a CGI response's header block (up to the blank line): `Status:` becomes the status,
/// the rest are headers.
async fn read_cgi_headers<R: tokio::io::AsyncBufRead + Unpin>(
    out: &mut R,
) -> Result<(StatusCode, HeaderMap), String> {
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    let mut line = String::new();
    let mut total = 0;
    loop {
        line.clear();
        let n = out
            .read_line(&mut line)
            .await
            .map_err(|e| format!("reading its headers: {e}"))?;
        total += n;
        if n == 0 {
            return Err("it ended before its headers did".into());
        }
        if total > 64 << 10 {
            return Err("its headers are too long".into());
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            return Ok((status, headers));
        }
        let Some((k, v)) = l.split_once(':') else {
            return Err(format!("a header line without a colon: {l:?}"));
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            let code = v.split_whitespace().next().unwrap_or("");
            status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| format!("a bad Status: {v:?}"))?;
        } else if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.trim().as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cgi_headers_give_status_and_headers() {
        let text = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nExpires: x\r\n\r\nbody";
        let mut r = BufReader::new(&text[..]);
        let (s, h) = read_cgi_headers(&mut r).await.unwrap();
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(h["content-type"], "text/plain");
        let mut rest = String::new();
        r.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "body");
        let mut r = BufReader::new(&b"Content-Type: a/b\n\n"[..]);
        assert_eq!(read_cgi_headers(&mut r).await.unwrap().0, StatusCode::OK);
        let mut r = BufReader::new(&b"Content-Type: a/b\n"[..]);
        assert!(read_cgi_headers(&mut r).await.is_err());
    }
}
