//! The write routes on long-running processes: scale, start, stop,
//! restart, and reload.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use phpeek_core::{Action, ReloadError, ScaleOutcome, Target};
use phpeek_wire::{ActionResponse, ErrorResponse, ReloadResponse, ScaleResponse};

use super::{json_body, no_process, ApiError, ApiState};
use crate::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, ScaleBody, Unauthorized, EXAMPLE_INSTANCE,
    EXAMPLE_PROCESS,
};

fn instances_word(n: u32) -> &'static str {
    if n == 1 {
        "instance"
    } else {
        "instances"
    }
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
pub(super) async fn scale_process(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !matches!(
        state.handle.snapshot().resolve(&name),
        Some(Target::Process(_))
    ) {
        return Err(no_process(&name));
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
pub(super) async fn reload(State(state): State<ApiState>) -> Response {
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
pub(super) async fn start_process(
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
pub(super) async fn stop_process(
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
pub(super) async fn restart_process(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    action(&state, name, Action::Restart).await
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
}
