//! The management API (SPEC §5). Handlers only translate: reads come from
//! the latest snapshot, writes are commands to the supervisor, answered once
//! applied.

mod listing;
mod read;
mod workloads;
mod write;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use phpeek_core::{CommandError, Handle};
use phpeek_wire::{
    ActionResponse, AutoscaleInfo, AutoscaleLast, AutoscaleMetricInfo, AutoscaleRequest,
    AutoscaleResponse, ErrorResponse, HealthResponse, InstanceInfo, LastRun, LogLine, LogsResponse,
    ProcessInfo, ProcessOrInstance, ReadyResponse, ReloadResponse, RunInfo, RunResponse, RunResult,
    RunTrigger, ScaleResponse, ScheduleInfo,
};
use utoipa::OpenApi;

use crate::auth::TokenCheck;
use crate::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, ScaleBody, Security, Unauthorized, OPEN_PATHS,
};
// Globs, so that utoipa's `__path_*` item of each handler comes along and
// `paths(...)` below names the handlers without a module: a module path
// there would become the operations' tag and change the document.
use read::*;
use workloads::*;
pub use write::parse_desired;
use write::*;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares. Cloned per request (the router's state and
/// the credentials middleware's), so it is one `Arc`: cloning and dropping
/// each field's own counters on every request, from both workers, was 8 %
/// of the API's CPU (issue 13).
#[derive(Clone)]
pub struct ApiState(std::sync::Arc<ApiShared>);

pub struct ApiShared {
    pub handle: Handle,
    pub auth: Option<TokenCheck>,
    /// The instance listing, rendered once per snapshot.
    pub listing: listing::ListingCache,
}

impl ApiState {
    pub fn new(handle: Handle, auth: Option<TokenCheck>) -> Self {
        ApiState(std::sync::Arc::new(ApiShared {
            handle,
            auth,
            listing: listing::ListingCache::default(),
        }))
    }
}

impl std::ops::Deref for ApiState {
    type Target = ApiShared;
    fn deref(&self) -> &ApiShared {
        &self.0
    }
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

/// 404 for a route that takes a process, not an instance.
fn no_process(name: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no process named `{name}`"))
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
        ListView,
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

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses(
        (status = 200, description = "The OpenAPI document.", body = Object),
        (status = 401, response = Unauthorized)))]
async fn openapi() -> Json<serde_json::Value> {
    Json(openapi_json())
}
