//! HTTP: the `/v2/` router. Repository names have any number of components, so one wildcard
//! route takes every `/v2/<name>/...` path and `name::parse_path` splits it. Every request is
//! authenticated here (Bearer token, or Basic credentials) before it reaches a handler.

pub mod admin;
mod blobs;
mod manifests;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Deserialize;
use slipway_store::db::RepoRow;

use crate::Registry;
use crate::error::OciError;
use crate::name::{Endpoint, check_name, parse_path};
use crate::services::auth::{self, Caller};

pub(crate) const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

/// The `/v2/` routes, to merge into the server's router. Request bodies stream: no size limit
/// applies to uploads.
pub fn router(reg: Arc<Registry>) -> Router {
    Router::new()
        .route("/v2", get(base))
        .route("/v2/", get(base))
        .route("/v2/token", get(token).post(token))
        .route("/v2/{*rest}", any(dispatch))
        .with_state(reg)
}

/// One request, authenticated, for one repository.
pub(crate) struct Ctx {
    pub reg: Arc<Registry>,
    pub name: String,
    pub caller: Caller,
    pub headers: HeaderMap,
}

impl Ctx {
    /// The repository to read from: it must exist, and the caller may pull from it.
    pub async fn pull_repo(&self) -> Result<RepoRow, OciError> {
        let project = check_name(&self.name)?;
        let repo = self.reg.db.registry_repo(&self.name).await?;
        let allowed = matches!(self.caller, Caller::User(_))
            || repo.as_ref().is_some_and(|r| r.anonymous_pull);
        if !allowed {
            return Err(challenge(
                &self.reg,
                &self.headers,
                Some((&self.name, "pull")),
            ));
        }
        match repo {
            Some(r) => Ok(r),
            None => Err(self.unknown(project).await?),
        }
    }

    /// The repository to write to, created on first push; its project must exist.
    pub async fn push_repo(&self) -> Result<RepoRow, OciError> {
        let project = check_name(&self.name)?;
        if !matches!(self.caller, Caller::User(_)) {
            return Err(challenge(
                &self.reg,
                &self.headers,
                Some((&self.name, "pull,push")),
            ));
        }
        let Some(p) = self.reg.db.project(project).await? else {
            return Err(self.unknown(project).await?);
        };
        Ok(self
            .reg
            .db
            .registry_ensure_repo(p.id, &self.name, crate::now_ms())
            .await?)
    }

    async fn unknown(&self, project: &str) -> Result<OciError, OciError> {
        Ok(if self.reg.db.project(project).await?.is_none() {
            OciError::name_unknown(format!(
                "project `{project}` does not exist: repositories live under a Slipway project \
                 (`{project}/NAME`); create it with `slipway project create {project} --git URL`"
            ))
        } else {
            OciError::name_unknown(format!(
                "repository `{}` is not known (nothing was pushed to it)",
                self.name
            ))
        })
    }

    pub fn location(&self, tail: &str) -> String {
        format!("/v2/{}/{tail}", self.name)
    }
}

/// Who is calling: a valid bearer token, valid Basic credentials, or nobody.
pub(crate) fn authenticate(reg: &Registry, headers: &HeaderMap) -> Caller {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Caller::Nobody;
    };
    if let Some(t) = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
    {
        return reg.auth.verify(t.trim()).unwrap_or(Caller::Nobody);
    }
    match auth::parse_basic(v) {
        Some((u, p)) if check_password(reg, &u, &p) => Caller::User(u),
        _ => Caller::Nobody,
    }
}

fn check_password(reg: &Registry, user: &str, password: &str) -> bool {
    // Both compared, always, in constant time.
    let u = auth::same(user, &reg.config.username);
    let p = auth::same(password, &reg.password);
    u & p
}

/// 401 with the challenge that sends Docker clients to `/v2/token`.
pub(crate) fn challenge(
    reg: &Registry,
    headers: &HeaderMap,
    scope: Option<(&str, &str)>,
) -> OciError {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(&reg.config.public_address);
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    let mut value = format!("Bearer realm=\"{proto}://{host}/v2/token\",service=\"slipway\"");
    if let Some((name, actions)) = scope {
        value.push_str(&format!(",scope=\"repository:{name}:{actions}\""));
    }
    OciError::new(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required (docker login with the registry's credentials)",
    )
    .with_header(header::WWW_AUTHENTICATE, value)
}

fn with_version(mut r: Response) -> Response {
    r.headers_mut()
        .insert(API_VERSION.0, API_VERSION.1.parse().expect("static"));
    r
}

/// `GET /v2/`: 200 for anyone holding a token or credentials, else the challenge.
async fn base(State(reg): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let r = match authenticate(&reg, &headers) {
        Caller::Nobody => challenge(&reg, &headers, None).into_response(),
        _ => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response(),
    };
    with_version(r)
}

#[derive(Deserialize)]
struct TokenQuery {
    #[allow(dead_code)]
    service: Option<String>,
}

/// `GET /v2/token`: Basic credentials give a token for the user; none give an anonymous one
/// (good only where anonymous pulls are allowed); wrong ones give 401.
async fn token(
    State(reg): State<Arc<Registry>>,
    Query(_q): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    let sub = match given.and_then(auth::parse_basic) {
        Some((u, p)) if check_password(&reg, &u, &p) => Some(u),
        Some(_) => {
            tracing::info!("registry: a token was refused (wrong credentials)");
            return with_version(
                OciError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "wrong username or password",
                )
                .into_response(),
            );
        }
        None if given.is_some() => {
            return with_version(
                OciError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "use Basic credentials for a token",
                )
                .into_response(),
            );
        }
        None => None,
    };
    let ttl = reg.config.token_ttl.as_secs().max(60);
    let t = reg.auth.issue(sub.as_deref(), ttl);
    let body = serde_json::json!({
        "token": t,
        "access_token": t,
        "expires_in": ttl,
        "issued_at": jiff_like_now(),
    });
    with_version(axum::Json(body).into_response())
}

/// RFC 3339 UTC, to the second.
fn jiff_like_now() -> String {
    let secs = crate::now_ms() / 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Every `/v2/<name>/...` request.
async fn dispatch(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let rest = parts.uri.path().trim_start_matches("/v2/").to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let caller = authenticate(&reg, &parts.headers);
    let Some((name, endpoint)) = parse_path(&rest) else {
        return with_version(
            OciError::new(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!("no registry endpoint at /v2/{rest}"),
            )
            .into_response(),
        );
    };
    let ctx = Ctx {
        reg,
        name: name.to_string(),
        caller,
        headers: parts.headers,
    };
    let m = parts.method;
    let result = match (&m, endpoint) {
        (&Method::GET | &Method::HEAD, Endpoint::Blob(d)) => {
            blobs::get(&ctx, &d, m == Method::HEAD).await
        }
        (&Method::DELETE, Endpoint::Blob(d)) => blobs::delete(&ctx, &d).await,
        (&Method::POST, Endpoint::UploadStart) => blobs::start(&ctx, &query, body).await,
        (&Method::PATCH, Endpoint::Upload(id)) => blobs::patch(&ctx, &id, body).await,
        (&Method::PUT, Endpoint::Upload(id)) => blobs::put(&ctx, &id, &query, body).await,
        (&Method::GET, Endpoint::Upload(id)) => blobs::status(&ctx, &id).await,
        (&Method::DELETE, Endpoint::Upload(id)) => blobs::cancel(&ctx, &id).await,
        (&Method::GET | &Method::HEAD, Endpoint::Manifest(r)) => {
            manifests::get(&ctx, &r, m == Method::HEAD).await
        }
        (&Method::PUT, Endpoint::Manifest(r)) => manifests::put(&ctx, &r, body).await,
        (&Method::DELETE, Endpoint::Manifest(r)) => manifests::delete(&ctx, &r).await,
        (&Method::GET, Endpoint::Tags) => manifests::tags(&ctx, &query).await,
        (&Method::GET, Endpoint::Referrers(d)) => manifests::referrers(&ctx, &d, &query).await,
        (m, e) => Err(OciError::unsupported(format!(
            "{m} is not supported on {e:?}"
        ))),
    };
    with_version(result.unwrap_or_else(|e| e.into_response()))
}

/// A query string's value (percent-decoded).
pub(crate) fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn empty(status: StatusCode) -> axum::http::response::Builder {
    Response::builder().status(status)
}

pub(crate) fn finish(b: axum::http::response::Builder, body: Body) -> Response {
    b.body(body)
        .unwrap_or_else(|e| OciError::internal(e).into_response())
}
