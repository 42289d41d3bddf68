//! The routes of scheduled and one-shot processes (run, runs) and of the
//! autoscaler (SPEC 11, 12).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use phpeek_wire::{AutoscaleRequest, AutoscaleResponse, RunInfo, RunResponse};

use super::{json_body, no_process, ApiError, ApiState};
use crate::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, Unauthorized, EXAMPLE_AUTOSCALED,
    EXAMPLE_SCHEDULED,
};

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
pub(super) async fn autoscale_process(
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
pub(super) async fn run_process(
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
pub(super) async fn process_runs(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<RunInfo>>, ApiError> {
    let snap = state.handle.snapshot();
    let Some(p) = snap.processes.iter().find(|p| *p.name == *name) else {
        return Err(no_process(&name));
    };
    if !p.has_runs() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("`{name}` is a long-running process: it has no runs"),
        ));
    }
    Ok(Json(p.run_infos()))
}
