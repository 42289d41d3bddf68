//! The management API (SPEC §5). Handlers only translate: reads come from
//! the latest snapshot, writes are commands to the supervisor, answered once
//! applied.

use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use phpeek_core::{Action, CommandError, Handle, ReloadError, ScaleOutcome, Target};
use phpeek_wire::{
    ActionResponse, AutoscaleInfo, AutoscaleLast, AutoscaleMetricInfo, AutoscaleRequest,
    AutoscaleResponse, ErrorResponse, HealthResponse, InstanceInfo, InstanceState, LastRun,
    LogLine, LogsResponse, ProcessInfo, ProcessOrInstance, ReadyResponse, ReloadResponse, RunInfo,
    RunResponse, RunResult, RunTrigger, ScaleResponse, ScheduleInfo,
};
use serde::Deserialize;
use utoipa::OpenApi;

use crate::auth::TokenCheck;
use crate::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, ScaleBody, Security, Unauthorized,
    EXAMPLE_AUTOSCALED, EXAMPLE_INSTANCE, EXAMPLE_PROCESS, EXAMPLE_SCHEDULED, OPEN_PATHS,
};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Most log lines one request returns.
const MAX_LOG_LINES: usize = phpeek_core::logs::RING_LINES * 64;

#[derive(Clone)]
pub struct ApiState {
    pub handle: Handle,
    pub auth: Option<TokenCheck>,
}

/// An error answer: `{"error": …}` with its status.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: self.1,
            errors: Vec::new(),
        };
        (self.0, Json(body)).into_response()
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
            CommandError::BadRequest(m) => ApiError(StatusCode::BAD_REQUEST, m),
            CommandError::Conflict(m) => ApiError(StatusCode::CONFLICT, m),
        }
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no process or instance named `{name}`"),
    )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "phpeek-pm management API",
        description = "Inspect and control the processes of a phpeek-pm manager.\n\n\
            Every error is JSON `{\"error\": ...}`. Besides the answers listed per \
            operation, a path outside this document gets 404 and a method a path does not \
            list gets 405 with an `Allow` header (both after the token check)."
    ),
    modifiers(&Security),
    paths(
        health,
        ready,
        list_processes,
        get_process,
        scale_process,
        start_process,
        stop_process,
        restart_process,
        process_logs,
        run_process,
        process_runs,
        autoscale_process,
        reload,
        openapi
    ),
    components(schemas(
        HealthResponse,
        ReadyResponse,
        InstanceInfo,
        ProcessInfo,
        ProcessOrInstance,
        ScaleBody,
        ScaleResponse,
        ActionResponse,
        LogsResponse,
        LogLine,
        ReloadResponse,
        ErrorResponse,
        RunResponse,
        RunInfo,
        RunTrigger,
        RunResult,
        ScheduleInfo,
        LastRun,
        AutoscaleInfo,
        AutoscaleLast,
        AutoscaleMetricInfo,
        AutoscaleRequest,
        AutoscaleResponse
    ),
    responses(BadRequest, Unauthorized, NotFound, Conflict, PayloadTooLarge))
)]
pub struct ApiDoc;

/// The OpenAPI document of this API.
pub fn openapi_json() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/ready", get(ready))
        .route("/api/v1/processes", get(list_processes))
        .route("/api/v1/processes/{name}", get(get_process))
        .route("/api/v1/processes/{name}/scale", post(scale_process))
        .route("/api/v1/processes/{name}/start", post(start_process))
        .route("/api/v1/processes/{name}/stop", post(stop_process))
        .route("/api/v1/processes/{name}/restart", post(restart_process))
        .route("/api/v1/processes/{name}/logs", get(process_logs))
        .route("/api/v1/processes/{name}/run", post(run_process))
        .route(
            "/api/v1/processes/{name}/autoscale",
            post(autoscale_process),
        )
        .route("/api/v1/processes/{name}/runs", get(process_runs))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/openapi.json", get(openapi))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        // Outside the routes, so unknown paths and methods need the
        // credentials too and reveal nothing to a client without them.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_credentials,
        ))
        .layer(middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Outermost: sees the final status of every request.
        .layer(middleware::from_fn(crate::audit::audit_writes))
        .with_state(state)
}

/// The client certificate (when the listener has a `client_ca`), then the
/// token (when `api_auth` is set); health and ready need neither.
async fn require_credentials(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let open = OPEN_PATHS.contains(&req.uri().path());
    let peer = req.extensions().get::<crate::Peer>();
    if !open && peer.is_some_and(|p| p.client_cert_required && !p.client_cert) {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "client certificate required".into(),
        )
        .into_response();
    }
    if let (Some(check), false) = (&state.auth, open) {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if !check.accepts(header) {
            let mut resp =
                ApiError(StatusCode::UNAUTHORIZED, "unauthorized".into()).into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
    }
    next.run(req).await
}

/// Extractor rejections (a bad path encoding, a bad query) come as plain
/// text from axum; every error of this API is JSON.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_string();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_lowercase();
    }
    let mut out = ApiError(status, message).into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

async fn fallback(method: Method) -> ApiError {
    let _ = method;
    ApiError(StatusCode::NOT_FOUND, "no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError(StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into())
}

/// Liveness: the manager answers.
#[utoipa::path(get, path = "/api/v1/health",
    responses((status = 200, description = "The manager answers.", body = HealthResponse)))]
async fn health() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "healthy".into(),
    })
}

/// Readiness: every enabled process at its desired scale and healthy.
#[utoipa::path(get, path = "/api/v1/ready",
    responses(
        (status = 200, description = "Every enabled process is at its desired scale and healthy.", body = ReadyResponse),
        (status = 503, description = "Not ready; `reasons` says why.", body = ReadyResponse)))]
async fn ready(State(state): State<ApiState>) -> Response {
    let snap = state.handle.snapshot();
    let mut reasons = Vec::new();
    if snap.shutting_down {
        reasons.push("the manager is shutting down".to_string());
    }
    for p in snap.processes.iter().filter(|p| p.enabled) {
        if let Some(why) = &p.reason {
            reasons.push(format!("{}: {why}", p.name));
            continue;
        }
        // Runs of a schedule come and go: they are no reason either way.
        if p.schedule.is_some() {
            continue;
        }
        let oneshot = p.kind == phpeek_config::ProcessType::Oneshot;
        for i in &p.instances {
            if oneshot && matches!(i.state, InstanceState::Running | InstanceState::Starting) {
                reasons.push(format!("{} is {} (one-shot)", i.name, i.state.as_str()));
                continue;
            }
            let fine = match i.state {
                InstanceState::Completed => true,
                InstanceState::Running => {
                    p.health_type.is_none() || i.health == phpeek_wire::Health::Healthy
                }
                InstanceState::Stopped => true,
                InstanceState::Exited => {
                    p.restart == phpeek_config::RestartPolicy::Never && i.last_exit_code == Some(0)
                }
                _ => false,
            };
            if !fine {
                let what = if i.state == InstanceState::Running {
                    format!("{:?}", i.health).to_lowercase()
                } else {
                    i.state.as_str().to_string()
                };
                reasons.push(format!("{} is {what}", i.name));
            }
        }
        let present = p.instances.iter().filter(|i| i.number <= p.desired).count();
        if (present as u64) < u64::from(p.desired) {
            reasons.push(format!(
                "{} has {present} of {} instances",
                p.name, p.desired
            ));
        }
    }
    if reasons.is_empty() {
        (
            StatusCode::OK,
            Json(ReadyResponse {
                status: "ready".into(),
                reasons,
            }),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ReadyResponse {
                status: "not ready".into(),
                reasons,
            }),
        )
            .into_response()
    }
}

/// `view` of the process listing (the document's type; the handler reads
/// the raw text to answer a clear 400).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
enum ListView {
    Instances,
    Processes,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    resources: Option<String>,
    view: Option<String>,
}

/// Every instance of every process, ordered by process name then number.
/// With `?resources=true` each running instance also carries the CPU time
/// and resident memory of its process tree (read from /proc).
#[utoipa::path(get, path = "/api/v1/processes",
    params(
        ("resources" = Option<bool>, Query, description = "`true` adds cpu_seconds and memory_bytes"),
        ("view" = Option<ListView>, Query, description = "`instances` (default; also when empty): every instance; `processes`: every process object, also those without instances (a schedule between runs, a process at scale 0)", example = json!("processes"))),
    responses(
        (status = 200, description = "Every instance (or, with `view=processes`, every process).", body = [ProcessOrInstance], links(
            ("GetInstance" = (operation_id = "get_process", parameters(("name" = "$response.body#/0/name")))),
            // `name` is in both shapes (an instance's, or with
            // `view=processes` a process's); `process` only in instances.
            ("GetProcess" = (operation_id = "get_process", parameters(("name" = "$response.body#/0/name")))),
            ("ScaleProcess" = (operation_id = "scale_process", parameters(("name" = "$response.body#/0/name")))),
            ("StartInstance" = (operation_id = "start_process", parameters(("name" = "$response.body#/0/name")))),
            ("StopInstance" = (operation_id = "stop_process", parameters(("name" = "$response.body#/0/name")))),
            ("RestartInstance" = (operation_id = "restart_process", parameters(("name" = "$response.body#/0/name")))),
            ("ProcessLogs" = (operation_id = "process_logs", parameters(("name" = "$response.body#/0/name")))),
            ("InstanceLogs" = (operation_id = "process_logs", parameters(("name" = "$response.body#/0/name")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized)))]
async fn list_processes(
    State(state): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    match q.view.as_deref() {
        None | Some("") | Some("instances") => {}
        Some("processes") => {
            let now = SystemTime::now();
            let list: Vec<ProcessInfo> = state
                .handle
                .snapshot()
                .processes
                .iter()
                .map(|p| p.to_info(now))
                .collect();
            return Ok(Json(list).into_response());
        }
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("`view` must be instances or processes, not `{other}`"),
            ))
        }
    }
    let resources = match q.resources.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("`resources` must be true or false, not `{other}`"),
            ))
        }
    };
    let mut list = state.handle.snapshot().instance_infos(SystemTime::now());
    if resources {
        let usage = tokio::task::spawn_blocking(phpeek_core::procfs::usage_by_session)
            .await
            .unwrap_or_default();
        for i in &mut list {
            if let Some(u) = i.pid.and_then(|pid| usage.get(&pid)) {
                i.cpu_seconds = Some(u.cpu_seconds);
                i.memory_bytes = Some(u.rss_bytes);
            }
        }
    }
    Ok(Json(list).into_response())
}

/// A process (with its instances) or a single instance.
#[utoipa::path(get, path = "/api/v1/processes/{name}",
    params(("name" = String, Path, description = "process or instance name", example = json!(EXAMPLE_PROCESS))),
    responses(
        (status = 200, description = "The process, or the instance.", body = ProcessOrInstance, links(
            ("Scale" = (operation_id = "scale_process", parameters(("name" = "$request.path.name")))),
            ("Start" = (operation_id = "start_process", parameters(("name" = "$request.path.name")))),
            ("Stop" = (operation_id = "stop_process", parameters(("name" = "$request.path.name")))),
            ("Restart" = (operation_id = "restart_process", parameters(("name" = "$request.path.name")))),
            ("Logs" = (operation_id = "process_logs", parameters(("name" = "$request.path.name")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound)))]
async fn get_process(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    let snap = state.handle.snapshot();
    let now = SystemTime::now();
    match snap.resolve(&name) {
        Some(Target::Process(p)) => {
            Json(ProcessOrInstance::Process(p.to_info(now))).into_response()
        }
        Some(Target::Instance(p, i)) => {
            Json(ProcessOrInstance::Instance(i.to_info(&p.name, now))).into_response()
        }
        None => not_found(&name).into_response(),
    }
}

/// Reads a JSON body whatever its content type.
fn json_body(body: Result<Bytes, BytesRejection>) -> Result<serde_json::Value, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body above {BODY_LIMIT} bytes"),
            )
        } else {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "empty body; expected JSON like {\"desired\": 3}".into(),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("body is not valid JSON: {e}"),
        )
    })
}

fn instances_word(n: u32) -> &'static str {
    if n == 1 {
        "instance"
    } else {
        "instances"
    }
}

/// `?lines=`: digits only (no sign), capped at the most one request returns.
fn parse_lines(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<usize>()
            .unwrap_or(MAX_LOG_LINES)
            .min(MAX_LOG_LINES),
    )
}

/// Parses `{"desired": N}` (or `{"scale": N}`); both must be whole numbers
/// when given, and `desired` wins.
pub fn parse_desired(body: &serde_json::Value) -> Result<u32, String> {
    let Some(obj) = body.as_object() else {
        return Err("body must be a JSON object like {\"desired\": 3}".into());
    };
    let count = |key: &str| -> Result<Option<u32>, String> {
        let Some(value) = obj.get(key) else {
            return Ok(None);
        };
        let n = value
            .as_u64()
            .ok_or_else(|| format!("`{key}` must be a whole number >= 0, not {value}"))?;
        u32::try_from(n)
            .map(Some)
            .map_err(|_| format!("`{key}` {n} is too large"))
    };
    let desired = count("desired")?;
    let scale = count("scale")?;
    desired
        .or(scale)
        .ok_or_else(|| "missing `desired` (e.g. {\"desired\": 3})".to_string())
}

/// Sets the desired number of instances.
#[utoipa::path(post, path = "/api/v1/processes/{name}/scale",
    params(("name" = String, Path, description = "process name", example = json!(EXAMPLE_PROCESS))),
    request_body = ScaleBody,
    responses(
        (status = 202, description = "Scaling to the new target.", body = ScaleResponse, links(
            ("GetProcess" = (operation_id = "get_process", parameters(("name" = "$response.body#/process")))),
            ("Logs" = (operation_id = "process_logs", parameters(("name" = "$response.body#/process")))),
        )),
        (status = 200, description = "Already at that target.", body = ScaleResponse, links(
            ("GetProcess" = (operation_id = "get_process", parameters(("name" = "$response.body#/process")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge)))]
async fn scale_process(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !matches!(
        state.handle.snapshot().resolve(&name),
        Some(Target::Process(_))
    ) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no process named `{name}`"),
        ));
    }
    let value = json_body(body)?;
    let desired = parse_desired(&value).map_err(|m| ApiError(StatusCode::BAD_REQUEST, m))?;
    let outcome = state.handle.scale(name, desired).await?;
    Ok(match outcome {
        ScaleOutcome::Scaling {
            process,
            current,
            previous,
            desired,
        } => (
            StatusCode::ACCEPTED,
            Json(ScaleResponse {
                status: "scaling".into(),
                message: format!(
                    "Scaling from {previous} to {desired} {}",
                    instances_word(desired)
                ),
                process,
                current,
                desired,
            }),
        )
            .into_response(),
        ScaleOutcome::Unchanged {
            process,
            current,
            desired,
        } => (
            StatusCode::OK,
            Json(ScaleResponse {
                status: "unchanged".into(),
                message: format!("Already at {desired} {}", instances_word(desired)),
                process,
                current,
                desired,
            }),
        )
            .into_response(),
    })
}

/// Starts, stops or restarts; answers once the request was applied.
async fn action(state: &ApiState, name: String, action: Action) -> Result<Response, ApiError> {
    let done = state.handle.act(name, action).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ActionResponse {
            message: done.action.initiated().to_string(),
            process: done.process,
        }),
    )
        .into_response())
}

/// Re-reads the config file; a bad file changes nothing.
#[utoipa::path(post, path = "/api/v1/reload",
    responses(
        (status = 202, description = "The new file is applied.", body = ReloadResponse),
        (status = 400, description = "The file is rejected (`errors` lists why); nothing changed.", body = ErrorResponse),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict)))]
async fn reload(State(state): State<ApiState>) -> Response {
    match state.handle.reload().await {
        Ok(s) => (
            StatusCode::ACCEPTED,
            Json(ReloadResponse {
                status: "reloaded".into(),
                added: s.added,
                removed: s.removed,
                rescaled: s.rescaled,
                restarted: s.restarted,
                updated: s.updated,
            }),
        )
            .into_response(),
        Err(ReloadError::Rejected(errors)) => (
            StatusCode::BAD_REQUEST,
            Json(ErrorResponse {
                error: "config rejected".into(),
                errors: errors.to_string().lines().map(str::to_string).collect(),
            }),
        )
            .into_response(),
        Err(ReloadError::Refused(e)) => ApiError::from(e).into_response(),
    }
}

/// Starts a process's stopped instances, or one instance.
#[utoipa::path(post, path = "/api/v1/processes/{name}/start",
    params(("name" = String, Path, description = "process or instance name", example = json!(EXAMPLE_INSTANCE))),
    responses(
        (status = 202, description = "Starting.", body = ActionResponse, links(
            ("Get" = (operation_id = "get_process", parameters(("name" = "$response.body#/process")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict)))]
async fn start_process(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    action(&state, name, Action::Start).await
}

/// Stops a process's instances, or one instance; they stay stopped.
#[utoipa::path(post, path = "/api/v1/processes/{name}/stop",
    params(("name" = String, Path, description = "process or instance name", example = json!(EXAMPLE_INSTANCE))),
    responses(
        (status = 202, description = "Stopping.", body = ActionResponse, links(
            ("Get" = (operation_id = "get_process", parameters(("name" = "$response.body#/process")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict)))]
async fn stop_process(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    action(&state, name, Action::Stop).await
}

/// Restarts a process (rolling when it has several instances) or one instance.
#[utoipa::path(post, path = "/api/v1/processes/{name}/restart",
    params(("name" = String, Path, description = "process or instance name", example = json!(EXAMPLE_INSTANCE))),
    responses(
        (status = 202, description = "Restarting.", body = ActionResponse, links(
            ("Get" = (operation_id = "get_process", parameters(("name" = "$response.body#/process")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict)))]
async fn restart_process(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    action(&state, name, Action::Restart).await
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    lines: Option<String>,
}

/// The last lines kept in memory for a process or an instance.
#[utoipa::path(get, path = "/api/v1/processes/{name}/logs",
    params(
        ("name" = String, Path, description = "process or instance name", example = json!(EXAMPLE_PROCESS)),
        ("lines" = Option<usize>, Query, description = "how many lines (default 100; more than are kept returns all kept)", example = json!(20))),
    responses(
        (status = 200, description = "The last lines, oldest first.", body = LogsResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound)))]
async fn process_logs(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<LogsResponse>, ApiError> {
    let n = match q.lines.as_deref() {
        None => 100,
        Some(s) => parse_lines(s).ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("`lines` must be a whole number, not `{s}`"),
            )
        })?,
    };
    let snap = state.handle.snapshot();
    let instances: Vec<&phpeek_core::InstanceSnap> = match snap.resolve(&name) {
        Some(Target::Process(p)) => p.instances.iter().collect(),
        Some(Target::Instance(_, i)) => vec![i],
        None => return Err(not_found(&name)),
    };
    let mut lines: Vec<(SystemTime, LogLine)> = Vec::new();
    for i in instances {
        for l in i.ring.tail(n) {
            lines.push((
                l.ts,
                LogLine {
                    ts: phpeek_core::logs::rfc3339_millis(l.ts),
                    instance: i.name.to_string(),
                    stream: l.stream.as_str().to_string(),
                    msg: l.msg,
                },
            ));
        }
    }
    lines.sort_by_key(|(ts, _)| *ts);
    let skip = lines.len().saturating_sub(n);
    Ok(Json(LogsResponse {
        process: name,
        lines: lines.into_iter().skip(skip).map(|(_, l)| l).collect(),
    }))
}

/// Enables or pauses a process's autoscaler. A manual scale pauses it too;
/// a reload enables it again.
#[utoipa::path(post, path = "/api/v1/processes/{name}/autoscale",
    params(("name" = String, Path, description = "a process with `autoscale:`", example = json!(EXAMPLE_AUTOSCALED))),
    request_body = AutoscaleRequest,
    responses(
        (status = 200, description = "The autoscaler's new state.", body = AutoscaleResponse, links(
            ("GetProcess" = (operation_id = "get_process", parameters(("name" = "$response.body#/process")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge)))]
async fn autoscale_process(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let value = json_body(body)?;
    let enabled = match value.get("enabled") {
        Some(serde_json::Value::Bool(b)) if value.as_object().is_some_and(|o| o.len() == 1) => *b,
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "expected {\"enabled\": true} or {\"enabled\": false}".into(),
            ))
        }
    };
    let changed = state.handle.autoscale(name, enabled).await?;
    Ok((
        StatusCode::OK,
        Json(AutoscaleResponse {
            message: if changed.enabled {
                "autoscale enabled".into()
            } else {
                "autoscale paused".into()
            },
            process: changed.process,
            state: changed.state.to_string(),
        }),
    )
        .into_response())
}

/// Runs a scheduled or one-shot process now.
#[utoipa::path(post, path = "/api/v1/processes/{name}/run",
    params(("name" = String, Path, description = "a scheduled or one-shot process", example = json!(EXAMPLE_SCHEDULED))),
    responses(
        (status = 202, description = "The run is starting (with `replace`, once the running one stopped).", body = RunResponse, links(
            ("Runs" = (operation_id = "process_runs", parameters(("name" = "$response.body#/process")))),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict)))]
async fn run_process(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let started = state.handle.run(name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RunResponse {
            message: "run initiated".into(),
            process: started.process,
            instances: started.instances,
        }),
    )
        .into_response())
}

/// The runs of a scheduled or one-shot process, newest first.
#[utoipa::path(get, path = "/api/v1/processes/{name}/runs",
    params(("name" = String, Path, description = "a scheduled or one-shot process", example = json!(EXAMPLE_SCHEDULED))),
    responses(
        (status = 200, description = "Runs going, then finished ones (as many as `history` keeps).", body = [RunInfo]),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound)))]
async fn process_runs(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<RunInfo>>, ApiError> {
    let snap = state.handle.snapshot();
    let Some(p) = snap.processes.iter().find(|p| *p.name == *name) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no process named `{name}`"),
        ));
    };
    if !p.has_runs() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("`{name}` is a long-running process: it has no runs"),
        ));
    }
    Ok(Json(p.run_infos()))
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses(
        (status = 200, description = "The OpenAPI document.", body = Object),
        (status = 401, response = Unauthorized)))]
async fn openapi() -> Json<serde_json::Value> {
    Json(openapi_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn desired_parsing() {
        assert_eq!(parse_desired(&json!({"desired": 10})), Ok(10));
        assert_eq!(parse_desired(&json!({"scale": 0})), Ok(0));
        assert!(parse_desired(&json!({"desired": -1})).is_err());
        assert!(parse_desired(&json!({"desired": 1.5})).is_err());
        assert!(parse_desired(&json!({"desired": "3"})).is_err());
        assert!(parse_desired(&json!({"desired": 1u64 << 40})).is_err());
        assert!(parse_desired(&json!([3])).is_err());
        assert!(parse_desired(&json!({})).is_err());
        assert_eq!(parse_desired(&json!({"desired": 2, "scale": 5})), Ok(2));
        assert!(parse_desired(&json!({"desired": 2, "scale": "x"})).is_err());
        assert!(parse_desired(&json!({"desired": null, "scale": 2})).is_err());
    }

    #[test]
    fn lines_parsing() {
        assert_eq!(parse_lines("0"), Some(0));
        assert_eq!(parse_lines("20"), Some(20));
        assert_eq!(parse_lines("99999999999999999999999"), Some(MAX_LOG_LINES));
        for bad in ["", "-1", "+1", "1.5", "x", " 1"] {
            assert_eq!(parse_lines(bad), None, "{bad:?}");
        }
    }
}
