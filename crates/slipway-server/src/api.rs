//! The REST API under `/api/v1`, `/healthz` and `/metrics`. [`ROUTES`] lists every route; a
//! test checks that the router serves exactly those, so the security tests can walk it.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use slipway_engine::Decision;
use slipway_engine::events::now_ms;
use slipway_proto::Event;
use slipway_proto::api::{
    ActionState, Approval, CreateProject, Decide, Execution, ExecutionDetail, GcReport, Page,
    Project, ProjectSettings, StartExecution,
};
use slipway_store::{ExecutionRow, ProjectRow};
use utoipa::OpenApi;

use crate::AppState;
use crate::error::ApiError;
use crate::scheduler::Scheduler;

type ApiResult<T> = Result<T, ApiError>;

/// One route: method, path (axum syntax) and whether it needs no authentication.
#[derive(Clone, Debug)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: String,
    pub public: bool,
}

const EXEC: &str = "/api/v1/projects/{project}/executions/{number}";

/// Every route the server serves, in one place: [`routes`] builds the router from this table
/// and tests walk the same table.
pub fn table() -> Vec<(RouteInfo, MethodRouter<AppState>)> {
    let r = |method, path: &str, public, handler| {
        (
            RouteInfo {
                method,
                path: path.to_string(),
                public,
            },
            handler,
        )
    };
    let x = |tail: &str| format!("{EXEC}{tail}");
    vec![
        r("GET", "/healthz", true, get(healthz)),
        r("GET", "/metrics", false, get(crate::metrics::render)),
        r("GET", "/api/v1/openapi.json", false, get(openapi)),
        r("GET", "/api/v1/projects", false, get(list_projects)),
        r("POST", "/api/v1/projects", false, post(create_project)),
        r(
            "GET",
            "/api/v1/projects/{project}",
            false,
            get(show_project),
        ),
        r(
            "PATCH",
            "/api/v1/projects/{project}",
            false,
            patch(update_project),
        ),
        r(
            "GET",
            "/api/v1/projects/{project}/executions",
            false,
            get(list_executions),
        ),
        r(
            "POST",
            "/api/v1/projects/{project}/executions",
            false,
            post(start_execution),
        ),
        r(
            "GET",
            "/api/v1/projects/{project}/deliveries",
            false,
            get(crate::hooks::settings::deliveries),
        ),
        r(
            "GET",
            "/api/v1/projects/{project}/notifications",
            false,
            get(crate::hooks::settings::notifications),
        ),
        // Signed by the forge with the project's secret: public by design.
        r(
            "POST",
            "/hooks/github/{project}",
            true,
            crate::hooks::route(crate::hooks::Forge::GitHub),
        ),
        r(
            "POST",
            "/hooks/gitlab/{project}",
            true,
            crate::hooks::route(crate::hooks::Forge::GitLab),
        ),
        r(
            "POST",
            "/hooks/gitea/{project}",
            true,
            crate::hooks::route(crate::hooks::Forge::Gitea),
        ),
        r("GET", EXEC, false, get(show_execution)),
        r("POST", &x("/cancel"), false, post(cancel_execution)),
        r("POST", &x("/retry"), false, post(retry_execution)),
        r("POST", &x("/rerun"), false, post(rerun_execution)),
        r("POST", &x("/approvals"), false, post(decide)),
        r("GET", &x("/events"), false, get(events)),
        r(
            "GET",
            &x("/actions/{stage}/{action}/log"),
            false,
            get(action_log),
        ),
        r("POST", "/api/v1/gc", false, post(crate::gc::handle)),
        r("GET", "/api/v1/backup", false, get(crate::backup::handle)),
        r(
            "GET",
            "/api/v1/registry/repositories",
            false,
            get(slipway_registry::admin::repositories),
        ),
        r(
            "GET",
            "/api/v1/registry/tags",
            false,
            get(slipway_registry::admin::tags),
        ),
        r(
            "DELETE",
            "/api/v1/registry/images",
            false,
            axum::routing::delete(slipway_registry::admin::delete_image),
        ),
        r(
            "POST",
            "/api/v1/registry/settings",
            false,
            post(slipway_registry::admin::settings),
        ),
        r(
            "GET",
            "/api/v1/registry/lifecycle",
            false,
            get(slipway_registry::admin::get_lifecycle),
        ),
        r(
            "PUT",
            "/api/v1/registry/lifecycle",
            false,
            axum::routing::put(slipway_registry::admin::put_lifecycle),
        ),
        r(
            "GET",
            "/api/v1/registry/lifecycle/preview",
            false,
            get(slipway_registry::admin::preview_lifecycle),
        ),
        r(
            "POST",
            "/api/v1/registry/gc",
            false,
            post(slipway_registry::admin::gc),
        ),
        // Agents (docs/agents.md): the job protocol authenticates each agent by its token.
        r("GET", "/api/v1/agents", false, get(crate::agents::list)),
        r(
            "POST",
            "/api/v1/agents/tokens",
            false,
            post(crate::agents::create_token),
        ),
        r(
            "POST",
            "/api/v1/agent/register",
            true,
            post(crate::agents::register),
        ),
        r(
            "POST",
            "/api/v1/agent/lease",
            true,
            post(crate::agents::lease),
        ),
        r(
            "POST",
            "/api/v1/agent/jobs/{id}/heartbeat",
            true,
            post(crate::agents::heartbeat),
        ),
        r(
            "POST",
            "/api/v1/agent/jobs/{id}/events",
            true,
            post(crate::agents::events),
        ),
        r(
            "POST",
            "/api/v1/agent/jobs/{id}/result",
            true,
            post(crate::agents::result),
        ),
        r(
            "GET",
            "/api/v1/agent/blobs/{digest}",
            true,
            get(crate::agents::get_blob),
        ),
        r(
            "PUT",
            "/api/v1/agent/blobs/{digest}",
            true,
            axum::routing::put(crate::agents::put_blob),
        ),
        // Hosted repositories (git smart HTTP); authentication comes with the security issue.
        r("GET", "/git/{*rest}", false, get(crate::hosting::serve)),
        r("POST", "/git/{*rest}", false, post(crate::hosting::serve)),
    ]
}

pub fn routes(state: AppState) -> Router {
    table()
        .into_iter()
        .fold(Router::new(), |router, (info, handler)| {
            router.route(&info.path, handler)
        })
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Slipway", description = "Slipway's REST API (docs/api.md)."),
    paths(
        list_projects,
        create_project,
        show_project,
        update_project,
        crate::hooks::settings::deliveries,
        crate::hooks::settings::notifications,
        list_executions,
        start_execution,
        show_execution,
        cancel_execution,
        retry_execution,
        rerun_execution,
        decide,
        events,
        action_log,
        crate::gc::handle,
        crate::backup::handle,
        slipway_registry::admin::repositories,
        slipway_registry::admin::tags,
        slipway_registry::admin::delete_image,
        slipway_registry::admin::settings,
        slipway_registry::admin::get_lifecycle,
        slipway_registry::admin::put_lifecycle,
        slipway_registry::admin::preview_lifecycle,
        slipway_registry::admin::gc,
        crate::agents::list,
        crate::agents::create_token,
        crate::agents::register,
        crate::agents::lease,
        crate::agents::heartbeat,
        crate::agents::events,
        crate::agents::result,
        crate::agents::put_blob,
        crate::agents::get_blob
    ),
    components(schemas(
        Project,
        CreateProject,
        ProjectSettings,
        slipway_proto::api::Delivery,
        slipway_proto::api::NotificationDelivery,
        Execution,
        ExecutionDetail,
        ActionState,
        Approval,
        StartExecution,
        Decide,
        GcReport,
        slipway_proto::job::AgentInfo,
        slipway_proto::job::RegistrationToken,
        slipway_proto::api::ApiError
    ))
)]
pub struct ApiDoc;

async fn healthz() -> &'static str {
    "ok"
}

async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(j) => ([(header::CONTENT_TYPE, "application/json")], j).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// A project as the API shows it; `headers` (the request's `Host`) make the clone URL.
async fn project_view(s: &AppState, p: ProjectRow, headers: &HeaderMap) -> ApiResult<Project> {
    let hosted = crate::hosting::is_hosted(&s.config.data, &p);
    let clone_url = hosted.then(|| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| s.config.listen.to_string());
        format!("http://{host}/git/{}.git", p.name)
    });
    let poll_interval = if hosted {
        None
    } else {
        let ms = s.sched.db.source_settings(p.id).await?.poll_interval_ms;
        let d = ms.map_or(s.config.sources.poll_interval, |ms| {
            Duration::from_millis(ms.max(0) as u64)
        });
        Some(if d.is_zero() {
            "off".to_string()
        } else {
            slipway_spec::pipeline::format_duration(d)
        })
    };
    let hooks = crate::hooks::settings::view(s, &p, headers).await?;
    Ok(Project {
        name: p.name,
        git: p.git,
        created_ms: p.created_ms,
        last_number: p.last_number,
        clone_url,
        poll_interval,
        webhook_urls: hooks.webhook_urls,
        webhook_secret: hooks.webhook_secret,
        forge: hooks.forge,
        forge_api: hooks.forge_api,
        forge_repo: hooks.forge_repo,
        forge_token_set: hooks.forge_token_set,
        notify_urls: hooks.notify_urls,
    })
}

/// Project names are used in paths, URLs and `name#N`: letters, digits, `-`, `_`, `.`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[utoipa::path(get, path = "/api/v1/projects", responses((status = 200, body = Page<Project>)))]
async fn list_projects(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Page<Project>>> {
    let mut items = Vec::new();
    for p in s.sched.db.projects().await? {
        items.push(project_view(&s, p, &headers).await?);
    }
    Ok(Json(Page { items, next: None }))
}

#[utoipa::path(post, path = "/api/v1/projects", request_body = CreateProject,
    responses((status = 201, body = Project), (status = 409, body = slipway_proto::api::ApiError)))]
async fn create_project(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<CreateProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    if !valid_name(&req.name) {
        return Err(ApiError::invalid(format!(
            "project name `{}`: use letters, digits, `-`, `_` and `.` (not first)",
            req.name
        )));
    }
    // No git: Slipway hosts the repository. The name is claimed first, so two creates of one
    // name never share a repository; an existing directory (a restored one) is kept.
    let hosted = req.git.trim().is_empty();
    let git = if hosted {
        crate::hosting::repo_path(&s.config.data, &req.name)
            .display()
            .to_string()
    } else {
        req.git.trim().to_string()
    };
    let p = s.sched.db.create_project(&req.name, &git, now_ms()).await?;
    crate::hooks::settings::ensure(&s, &p).await?;
    if hosted {
        crate::hosting::create_repo(&s.config.data, &req.name)
            .await
            .map_err(|e| {
                ApiError::internal(format!("making the repository of {}: {e}", req.name))
            })?;
    }
    Ok((
        StatusCode::CREATED,
        Json(project_view(&s, p, &headers).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}", responses((status = 200, body = Project)))]
async fn show_project(
    State(s): State<AppState>,
    Path(project): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Project>> {
    let p = s.sched.project(&project).await?;
    Ok(Json(project_view(&s, p, &headers).await?))
}

/// Changes a project's settings: `poll_interval` (`30s`, `off`, `default`), and the webhook,
/// forge and notification settings (`hooks::settings`).
#[utoipa::path(patch, path = "/api/v1/projects/{project}", request_body = ProjectSettings,
    responses((status = 200, body = Project), (status = 400, body = slipway_proto::api::ApiError)))]
async fn update_project(
    State(s): State<AppState>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(req): Json<ProjectSettings>,
) -> ApiResult<Json<Project>> {
    let p = s.sched.project(&project).await?;
    if let Some(v) = &req.poll_interval {
        if crate::hosting::is_hosted(&s.config.data, &p) {
            return Err(ApiError::invalid(format!(
                "project `{project}` is hosted: pushes start its pipelines, it is not polled"
            )));
        }
        let ms = match v.trim() {
            "default" => None,
            v => Some(
                crate::config::poll_interval(v)
                    .map_err(|e| ApiError::invalid(format!("poll_interval: {e}")))?
                    .as_millis() as i64,
            ),
        };
        s.sched.db.set_poll_interval(p.id, ms).await?;
    }
    crate::hooks::settings::apply(&s, &p, &req).await?;
    Ok(Json(project_view(&s, p, &headers).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct ListQuery {
    /// At most this many (default 50, at most 500).
    limit: Option<u32>,
    /// Only executions numbered below this (the previous page's `next`).
    before: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/executions", params(ListQuery),
    responses((status = 200, body = Page<Execution>)))]
async fn list_executions(
    State(s): State<AppState>,
    Path(project): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<Execution>>> {
    let p = s.sched.project(&project).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let rows = s.sched.db.executions(p.id, q.before, limit).await?;
    let next = (rows.len() as u32 == limit)
        .then(|| rows.last().map(|r| r.number.to_string()))
        .flatten();
    Ok(Json(Page {
        items: rows.iter().map(Scheduler::view).collect(),
        next,
    }))
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/executions", request_body = StartExecution,
    responses((status = 201, body = Execution), (status = 422, body = slipway_proto::api::ApiError)))]
async fn start_execution(
    State(s): State<AppState>,
    Path(project): Path<String>,
    body: Option<Json<StartExecution>>,
) -> ApiResult<(StatusCode, Json<Execution>)> {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let row = s.sched.start(&project, req, None).await?;
    Ok((StatusCode::CREATED, Json(Scheduler::view(&row))))
}

async fn detail(s: &AppState, row: &ExecutionRow) -> ApiResult<ExecutionDetail> {
    Ok(ExecutionDetail {
        execution: Scheduler::view(row),
        actions: s.sched.db.actions(row.id).await?,
        approvals: s.sched.db.approvals(row.id).await?,
        last_seq: row.last_seq,
    })
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/executions/{number}",
    responses((status = 200, body = ExecutionDetail)))]
async fn show_execution(
    State(s): State<AppState>,
    Path((project, number)): Path<(String, u64)>,
) -> ApiResult<Json<ExecutionDetail>> {
    let row = s.sched.execution(&project, number).await?;
    Ok(Json(detail(&s, &row).await?))
}

async fn reload(s: &AppState, row: &ExecutionRow) -> ApiResult<Execution> {
    let row = s
        .sched
        .db
        .execution_by_id(row.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the execution is gone"))?;
    Ok(Scheduler::view(&row))
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/executions/{number}/cancel",
    responses((status = 202, body = Execution), (status = 409, body = slipway_proto::api::ApiError)))]
async fn cancel_execution(
    State(s): State<AppState>,
    Path((project, number)): Path<(String, u64)>,
) -> ApiResult<(StatusCode, Json<Execution>)> {
    let row = s.sched.execution(&project, number).await?;
    s.sched.cancel(&row).await?;
    Ok((StatusCode::ACCEPTED, Json(reload(&s, &row).await?)))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
struct ByBody {
    by: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/executions/{number}/retry",
    responses((status = 200, body = Execution), (status = 409, body = slipway_proto::api::ApiError)))]
async fn retry_execution(
    State(s): State<AppState>,
    Path((project, number)): Path<(String, u64)>,
    body: Option<Json<ByBody>>,
) -> ApiResult<Json<Execution>> {
    let row = s.sched.execution(&project, number).await?;
    let by = body
        .and_then(|Json(b)| b.by)
        .unwrap_or_else(|| "api".into());
    s.sched.retry(&row, &by).await?;
    Ok(Json(reload(&s, &row).await?))
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/executions/{number}/rerun",
    responses((status = 201, body = Execution)))]
async fn rerun_execution(
    State(s): State<AppState>,
    Path((project, number)): Path<(String, u64)>,
) -> ApiResult<(StatusCode, Json<Execution>)> {
    let row = s.sched.execution(&project, number).await?;
    let new = s.sched.rerun(&row).await?;
    Ok((StatusCode::CREATED, Json(Scheduler::view(&new))))
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/executions/{number}/approvals",
    request_body = Decide,
    responses((status = 200, body = Approval), (status = 409, body = slipway_proto::api::ApiError)))]
async fn decide(
    State(s): State<AppState>,
    Path((project, number)): Path<(String, u64)>,
    Json(d): Json<Decide>,
) -> ApiResult<Json<Approval>> {
    let row = s.sched.execution(&project, number).await?;
    let decision = Decision {
        approved: d.approved,
        timed_out: false,
        by: d.by.clone().unwrap_or_else(|| "api".into()),
        comment: d.comment.clone(),
    };
    Ok(Json(
        s.sched.decide(&row, d.action.as_deref(), decision).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct EventsQuery {
    /// Events with a sequence number above this (default 0: from the start).
    after: Option<u64>,
    /// At most this many (default 1000, at most 10000).
    limit: Option<u32>,
}

/// A page of an execution's events as JSON, or, with `Accept: text/event-stream`, the live
/// stream: every stored event from `after` (or `Last-Event-ID`) on, then new ones as they are
/// stored, until the execution has ended and everything was sent.
#[utoipa::path(get, path = "/api/v1/projects/{project}/executions/{number}/events",
    params(EventsQuery), responses((status = 200, body = Page<Object>)))]
async fn events(
    State(s): State<AppState>,
    Path((project, number)): Path<(String, u64)>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let row = s.sched.execution(&project, number).await?;
    let wants_sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(q.after)
        .unwrap_or(0);
    if !wants_sse {
        let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
        let items: Vec<Event> = s.sched.db.events(row.id, after, limit).await?;
        let next = (items.len() as u32 == limit)
            .then(|| items.last().map(|e| e.seq.to_string()))
            .flatten();
        let page = Page { items, next };
        return Ok(Json(page).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(256);
    let sched = s.sched.clone();
    let mut updates = sched.updates.subscribe();
    tokio::spawn(async move {
        let mut cursor = after;
        loop {
            // Everything stored so far, in pages.
            loop {
                let page = match sched.db.events(row.id, cursor, 500).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading events for a stream");
                        return;
                    }
                };
                let n = page.len();
                for e in page {
                    cursor = e.seq;
                    let kind = event_type(&e);
                    let data = serde_json::to_string(&e).unwrap_or_default();
                    let msg = SseEvent::default()
                        .id(e.seq.to_string())
                        .event(kind)
                        .data(data);
                    if tx.send(Ok(msg)).await.is_err() {
                        return;
                    }
                }
                if n < 500 {
                    break;
                }
            }
            let done = match sched.db.execution_by_id(row.id).await {
                Ok(Some(r)) => r.status.is_terminal() && r.last_seq <= cursor,
                _ => true,
            };
            if done {
                return;
            }
            // Wait for this execution's next stored batch (or re-check now and then).
            let wait = async {
                loop {
                    match updates.recv().await {
                        Ok(id) if id == row.id => return,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(_) => {
                            std::future::pending::<()>().await;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
            if tx.is_closed() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn event_type(e: &Event) -> String {
    serde_json::to_value(&e.body)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(String::from))
        .unwrap_or_else(|| "event".into())
}

/// An action's log: the stored blob once its attempt finished, else the lines stored so far.
#[utoipa::path(get, path = "/api/v1/projects/{project}/executions/{number}/actions/{stage}/{action}/log",
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn action_log(
    State(s): State<AppState>,
    Path((project, number, stage, action)): Path<(String, u64, String, String)>,
) -> ApiResult<Response> {
    let row = s.sched.execution(&project, number).await?;
    let actions = s.sched.db.actions(row.id).await?;
    let a = actions
        .iter()
        .find(|a| a.stage == stage && a.action == action)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "{project}#{number} has no action {stage}/{action} that ran"
            ))
        })?;
    let text_plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if let (Some(d), true) = (&a.log, a.status.is_terminal()) {
        let f = s.blobs.open_blob(d).await.map_err(ApiError::internal)?;
        let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
        return Ok((text_plain, body).into_response());
    }
    // Still running (or stopped before its log was stored): the stored lines, streamed by page.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, Infallible>>(16);
    let db = s.sched.db.clone();
    let id = row.id;
    tokio::spawn(async move {
        let mut cursor = 0;
        loop {
            let Ok(page) = db.events(id, cursor, 1000).await else {
                return;
            };
            let n = page.len();
            for e in page {
                cursor = e.seq;
                if let slipway_proto::EventBody::Log {
                    stage: st,
                    action: ac,
                    text,
                } = e.body
                    && st == stage
                    && ac == action
                    && tx.send(Ok(text)).await.is_err()
                {
                    return;
                }
            }
            if n < 1000 {
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((text_plain, body).into_response())
}
