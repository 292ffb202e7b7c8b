//! The registry's part of the REST API (`/api/v1/registry/...`), for `slipway registry`. The
//! server lists these routes in its `api::table()`; handlers take the registry through
//! `State<Arc<Registry>>` (the server's state provides it with `FromRef`). Repositories are
//! named in the query (`?repository=proj/app`), since names contain slashes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use slipway_store::db::{RepoRow, RepoSummary};

use crate::Registry;
use crate::error::OciError;
use crate::name::{Reference, check_name};
use crate::services::gc::GcReport;
use crate::services::lifecycle::{self, Expiry, LifecyclePolicy};

/// An error in the API's own shape (`{code, message, details}`).
pub struct AdminError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<String>,
}

impl AdminError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }
    fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", m)
    }
    fn invalid(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", m)
    }
}

impl<E: Into<OciError>> From<E> for AdminError {
    fn from(e: E) -> Self {
        let e: OciError = e.into();
        let code = match e.status {
            StatusCode::NOT_FOUND => "not_found",
            s if s.is_client_error() => "invalid",
            _ => "internal",
        };
        Self::new(e.status, code, e.message)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "code": self.code,
            "message": self.message,
            "details": self.details,
        });
        (self.status, Json(body)).into_response()
    }
}

type Result<T> = std::result::Result<T, AdminError>;

/// A repository as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RepoView {
    pub name: String,
    /// `HOST/PROJECT/NAME`, for `docker pull`.
    pub image: String,
    pub manifests: u64,
    pub tags: u64,
    pub immutable_tags: bool,
    pub anonymous_pull: bool,
    pub lifecycle: bool,
    pub pushed_ms: Option<i64>,
}

fn view(reg: &Registry, s: &RepoSummary) -> RepoView {
    RepoView {
        name: s.repo.name.clone(),
        image: format!("{}/{}", reg.config.public_address, s.repo.name),
        manifests: s.manifests,
        tags: s.tags,
        immutable_tags: s.repo.immutable_tags,
        anonymous_pull: s.repo.anonymous_pull,
        lifecycle: s.repo.lifecycle.is_some(),
        pushed_ms: s.pushed_ms,
    }
}

#[derive(Deserialize)]
pub struct ProjectQuery {
    project: Option<String>,
}

/// `GET /api/v1/registry/repositories[?project=P]`
#[utoipa::path(get, path = "/api/v1/registry/repositories", params(("project" = Option<String>, Query, description = "only this project's repositories")), responses((status = 200, description = "the registry's repositories")))]
pub async fn repositories(
    State(reg): State<Arc<Registry>>,
    Query(q): Query<ProjectQuery>,
) -> Result<Json<serde_json::Value>> {
    let pid = match &q.project {
        Some(p) => Some(
            reg.db
                .project(p)
                .await?
                .ok_or_else(|| AdminError::not_found(format!("project `{p}` does not exist")))?
                .id,
        ),
        None => None,
    };
    let items: Vec<RepoView> = reg
        .db
        .registry_repos(pid)
        .await?
        .iter()
        .map(|s| view(&reg, s))
        .collect();
    Ok(Json(serde_json::json!({ "items": items, "next": null })))
}

#[derive(Deserialize)]
pub struct RepoQuery {
    repository: String,
}

async fn repo(reg: &Registry, name: &str) -> Result<RepoRow> {
    check_name(name)?;
    reg.db.registry_repo(name).await?.ok_or_else(|| {
        AdminError::not_found(format!(
            "repository `{name}` is not known (nothing was pushed to it)"
        ))
    })
}

/// One tag.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TagView {
    pub tag: String,
    pub digest: String,
    pub updated_ms: i64,
}

/// `GET /api/v1/registry/tags?repository=R`
#[utoipa::path(get, path = "/api/v1/registry/tags", params(("repository" = String, Query, description = "PROJECT/NAME")), responses((status = 200, description = "the repository's tags"), (status = 404, description = "no such repository")))]
pub async fn tags(
    State(reg): State<Arc<Registry>>,
    Query(q): Query<RepoQuery>,
) -> Result<Json<serde_json::Value>> {
    let r = repo(&reg, &q.repository).await?;
    let items: Vec<TagView> = reg
        .db
        .registry_tagged(r.id)
        .await?
        .into_iter()
        .map(|(tag, d, updated_ms)| TagView {
            tag,
            digest: d.to_string(),
            updated_ms,
        })
        .collect();
    Ok(Json(
        serde_json::json!({ "repository": r.name, "items": items }),
    ))
}

#[derive(Deserialize)]
pub struct ImageQuery {
    repository: String,
    reference: String,
}

/// `DELETE /api/v1/registry/images?repository=R&reference=TAG|DIGEST`: a tag goes alone; a
/// digest goes with its tags and referrers.
#[utoipa::path(delete, path = "/api/v1/registry/images", params(("repository" = String, Query), ("reference" = String, Query, description = "a tag or a digest")), responses((status = 200, description = "deleted"), (status = 404, description = "no such image")))]
pub async fn delete_image(
    State(reg): State<Arc<Registry>>,
    Query(q): Query<ImageQuery>,
) -> Result<Json<serde_json::Value>> {
    let r = repo(&reg, &q.repository).await?;
    match Reference::parse(&q.reference)? {
        Reference::Tag(t) => {
            if !reg.db.registry_delete_tag(r.id, &t).await? {
                return Err(AdminError::not_found(format!(
                    "{}:{t} does not exist",
                    r.name
                )));
            }
        }
        Reference::Digest(d) => {
            if reg.db.registry_manifest(r.id, &d).await?.is_none() {
                return Err(AdminError::not_found(format!(
                    "{}@{d} does not exist",
                    r.name
                )));
            }
            lifecycle::delete_image(&reg, r.id, &d).await?;
        }
    }
    Ok(Json(
        serde_json::json!({ "deleted": format!("{}{}{}", r.name, if q.reference.contains(':') { "@" } else { ":" }, q.reference) }),
    ))
}

#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub immutable_tags: Option<bool>,
    pub anonymous_pull: Option<bool>,
}

/// `POST /api/v1/registry/settings?repository=R` with `{immutable_tags?, anonymous_pull?}`;
/// creates the repository (its project must exist) if nothing was pushed yet.
#[utoipa::path(post, path = "/api/v1/registry/settings", params(("repository" = String, Query)), responses((status = 200, description = "the repository with its settings")))]
pub async fn settings(
    State(reg): State<Arc<Registry>>,
    Query(q): Query<RepoQuery>,
    Json(s): Json<Settings>,
) -> Result<Json<RepoView>> {
    let project = check_name(&q.repository)?;
    let p = reg
        .db
        .project(project)
        .await?
        .ok_or_else(|| AdminError::not_found(format!("project `{project}` does not exist")))?;
    let r = reg
        .db
        .registry_ensure_repo(p.id, &q.repository, crate::now_ms())
        .await?;
    reg.db
        .registry_set_repo(r.id, s.immutable_tags, s.anonymous_pull)
        .await?;
    let all = reg.db.registry_repos(Some(p.id)).await?;
    let s = all
        .iter()
        .find(|s| s.repo.id == r.id)
        .ok_or_else(|| AdminError::not_found("the repository vanished"))?;
    Ok(Json(view(&reg, s)))
}

/// `GET /api/v1/registry/lifecycle?repository=R`: the policy as stored.
#[utoipa::path(get, path = "/api/v1/registry/lifecycle", params(("repository" = String, Query)), responses((status = 200, description = "the lifecycle policy (ECR JSON)"), (status = 404, description = "none set")))]
pub async fn get_lifecycle(
    State(reg): State<Arc<Registry>>,
    Query(q): Query<RepoQuery>,
) -> Result<Response> {
    let r = repo(&reg, &q.repository).await?;
    match r.lifecycle {
        Some(p) => {
            Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], p).into_response())
        }
        None => Err(AdminError::not_found(format!(
            "{} has no lifecycle policy",
            r.name
        ))),
    }
}

/// `PUT /api/v1/registry/lifecycle?repository=R` with the policy (ECR's JSON) as the body.
#[utoipa::path(put, path = "/api/v1/registry/lifecycle", params(("repository" = String, Query)), responses((status = 200, description = "the policy, validated"), (status = 400, description = "every problem, in details")))]
pub async fn put_lifecycle(
    State(reg): State<Arc<Registry>>,
    Query(q): Query<RepoQuery>,
    body: String,
) -> Result<Json<LifecyclePolicy>> {
    let project = check_name(&q.repository)?;
    let policy = LifecyclePolicy::parse(&body).map_err(|e| {
        let mut err = AdminError::invalid("invalid lifecycle policy");
        err.details = e.0;
        err
    })?;
    let p = reg
        .db
        .project(project)
        .await?
        .ok_or_else(|| AdminError::not_found(format!("project `{project}` does not exist")))?;
    let r = reg
        .db
        .registry_ensure_repo(p.id, &q.repository, crate::now_ms())
        .await?;
    let text =
        serde_json::to_string(&policy).map_err(|e| AdminError::from(OciError::internal(e)))?;
    reg.db.registry_set_lifecycle(r.id, Some(&text)).await?;
    Ok(Json(policy))
}

/// `GET /api/v1/registry/lifecycle/preview?repository=R`: what the policy would expire now.
#[utoipa::path(get, path = "/api/v1/registry/lifecycle/preview", params(("repository" = String, Query)), responses((status = 200, description = "the images the policy would expire now")))]
pub async fn preview_lifecycle(
    State(reg): State<Arc<Registry>>,
    Query(q): Query<RepoQuery>,
) -> Result<Json<serde_json::Value>> {
    let r = repo(&reg, &q.repository).await?;
    if r.lifecycle.is_none() {
        return Err(AdminError::not_found(format!(
            "{} has no lifecycle policy",
            r.name
        )));
    }
    let items: Vec<Expiry> = lifecycle::run(&reg, &r.name, false).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

#[derive(Deserialize)]
pub struct GcQuery {
    #[serde(default)]
    dry_run: bool,
}

/// `POST /api/v1/registry/gc[?dry_run=true]`: lifecycle policies (not in a dry run), then
/// garbage collection.
#[utoipa::path(post, path = "/api/v1/registry/gc", params(("dry_run" = Option<bool>, Query)), responses((status = 200, description = "what was (or would be) collected")))]
pub async fn gc(
    State(reg): State<Arc<Registry>>,
    Query(q): Query<GcQuery>,
) -> Result<Json<GcReport>> {
    if !q.dry_run {
        lifecycle::apply_all(&reg).await?;
    }
    Ok(Json(crate::services::gc::collect(&reg, q.dry_run).await?))
}
