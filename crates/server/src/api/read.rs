//! The read routes: health, readiness, the process listing, one process
//! or instance, and its logs.

use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use phpeek_core::Target;
use phpeek_wire::{
    HealthResponse, InstanceState, LogLine, LogsResponse, ProcessInfo, ProcessOrInstance,
    ReadyResponse,
};
use serde::Deserialize;

use super::{not_found, ApiError, ApiState};
use crate::openapi::{BadRequest, NotFound, Unauthorized, EXAMPLE_PROCESS};

/// Most log lines one request returns.
const MAX_LOG_LINES: usize = phpeek_core::logs::RING_LINES * 64;

/// Liveness: the manager answers.
#[utoipa::path(get, path = "/api/v1/health",
    responses((status = 200, description = "The manager answers.", body = HealthResponse)))]
pub(super) async fn health() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "healthy".into(),
    })
}

/// Readiness: every enabled process at its desired scale and healthy.
#[utoipa::path(get, path = "/api/v1/ready",
    responses(
        (status = 200, description = "Every enabled process is at its desired scale and healthy.", body = ReadyResponse),
        (status = 503, description = "Not ready; `reasons` says why.", body = ReadyResponse)))]
pub(super) async fn ready(State(state): State<ApiState>) -> Response {
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
pub(super) enum ListView {
    Instances,
    Processes,
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    resources: Option<String>,
    view: Option<String>,
}

/// Every instance of every process, ordered by process name then number.
/// With `?resources=true` each running instance also carries the CPU time
/// and resident memory of its process tree (read from /proc).
#[utoipa::path(get, path = "/api/v1/processes",
    params(
        ("resources" = Option<bool>, Query, description = "`true` adds cpu_seconds and memory_bytes"),
        ("view" = Option<ListView>, Query, description = "`instances` (the default when absent): every instance; `processes`: every process object, also those without instances (a schedule between runs, a process at scale 0)", example = json!("processes"))),
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
pub(super) async fn list_processes(
    State(state): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    // Every parameter is checked before any is acted on: a bad `resources`
    // is a 400 whatever the view.
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
    match q.view.as_deref() {
        None | Some("instances") => {}
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
    if !resources {
        let body = state
            .listing
            .body(&state.handle.snapshot(), SystemTime::now());
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    let mut list = state.handle.snapshot().instance_infos(SystemTime::now());
    let usage = tokio::task::spawn_blocking(phpeek_core::procfs::usage_by_session)
        .await
        .unwrap_or_default();
    for i in &mut list {
        if let Some(u) = i.pid.and_then(|pid| usage.get(&pid)) {
            i.cpu_seconds = Some(u.cpu_seconds);
            i.memory_bytes = Some(u.rss_bytes);
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
pub(super) async fn get_process(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Response {
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

#[derive(Debug, Deserialize)]
pub(super) struct LogsQuery {
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
pub(super) async fn process_logs(
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

#[cfg(test)]
mod tests {
    use super::*;

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
