//! Request and response bodies of the management API, shared by the server,
//! the CLI and the TUI. Plain data: no logic lives here.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Lifecycle state of one instance (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    Starting,
    Running,
    Stopping,
    Stopped,
    Exited,
    Backoff,
    Failed,
    /// A one-shot that ended with exit code 0.
    Completed,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::Exited => "exited",
            InstanceState::Backoff => "backoff",
            InstanceState::Failed => "failed",
            InstanceState::Completed => "completed",
        }
    }
}

/// Health of an instance as last probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Unhealthy,
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Unknown => "unknown",
        }
    }
}

/// One running copy of a process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceInfo {
    /// `queue-default-2`
    pub name: String,
    /// `queue-default`
    pub process: String,
    pub number: u32,
    pub state: InstanceState,
    pub pid: Option<i32>,
    /// Whole seconds since the current run started; 0 when not running.
    pub uptime: u64,
    /// Unix seconds of the current (or last) start.
    pub started_at: Option<i64>,
    pub restarts: u64,
    pub last_exit_code: Option<i32>,
    pub health: Health,
    /// Why the instance is in its state, when there is something to say
    /// (a spawn error, the signal that killed it, the backoff delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// CPU seconds of the instance's process tree (only with
    /// `?resources=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// Resident memory of the instance's process tree in bytes (only with
    /// `?resources=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

/// Aggregate state of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    /// Every wanted instance runs.
    Running,
    /// Some instances are starting, stopping or in backoff.
    Degraded,
    /// Waiting for dependencies.
    Waiting,
    /// Desired scale 0 and nothing runs, or every instance stopped by request.
    Stopped,
    /// Disabled in the config.
    Disabled,
    /// Every instance ended and none will restart.
    Exited,
    /// Restart attempts exhausted or a dependency never became ready.
    Failed,
    /// A one-shot whose every instance completed with exit code 0.
    Completed,
    /// A scheduled process between runs (or with runs going).
    Scheduled,
}

/// Phase of a rolling restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RolloutPhase {
    /// Instances are being replaced one at a time.
    Running,
    /// Every instance runs the new definition.
    Done,
    /// A new instance did not come back; the rest keep the old definition.
    Halted,
}

impl RolloutPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutPhase::Running => "running",
            RolloutPhase::Done => "done",
            RolloutPhase::Halted => "halted",
        }
    }
}

/// Progress of a rolling restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rollout {
    pub state: RolloutPhase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The instance being replaced now (while `running`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Instances still to replace after `current`.
    #[serde(default)]
    pub remaining: u32,
    /// The process's `rollout.min_ready` (e.g. `11s`), when set: each next
    /// step waits until the new instance has been running and healthy
    /// that long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready: Option<String>,
}

/// A process with its instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProcessInfo {
    pub name: String,
    /// Desired number of instances (same as `desired`).
    pub scale: u32,
    pub desired: u32,
    /// Instances in state `running`.
    pub current: u32,
    pub state: ProcessState,
    /// Restart policy: `always`, `on-failure` or `never`.
    pub restart: String,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// `longrun` or `oneshot`.
    #[serde(rename = "type", default = "longrun")]
    pub kind: String,
    /// Present for a scheduled process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleInfo>,
    /// Present for a process with `autoscale:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleInfo>,
    pub instances: Vec<InstanceInfo>,
}

fn longrun() -> String {
    "longrun".to_string()
}

/// `autoscale` in a process object (SPEC 12).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AutoscaleInfo {
    /// `active`, `manual` (paused by a manual scale), `dry_run`, or `error`
    /// (every metric failed its last sample).
    pub state: String,
    /// Effective now: the time windows applied.
    pub min: u32,
    pub max: u32,
    /// What the metrics ask for (after tolerance; before stabilization,
    /// rate limits and the min/max clamps); null before the first round.
    pub recommended: Option<u32>,
    pub desired: u32,
    /// The last decision; null before the first round.
    pub last: Option<AutoscaleLast>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AutoscaleLast {
    /// Unix seconds.
    pub at: i64,
    pub metrics: Vec<AutoscaleMetricInfo>,
    /// What held the count back: null, `min`, `max`, `window`, `rate`,
    /// `stabilization`, `tolerance` or `error`.
    pub limited_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AutoscaleMetricInfo {
    /// Its source kind, numbered when repeated: `redis`, `redis#2`.
    pub name: String,
    /// Null when the sample failed.
    pub value: Option<f64>,
    /// The count this metric asked for.
    pub desired: Option<u32>,
    pub error: Option<String>,
}

/// `POST /api/v1/processes/{name}/autoscale` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AutoscaleRequest {
    pub enabled: bool,
}

/// Answer to `POST /api/v1/processes/{name}/autoscale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AutoscaleResponse {
    /// `autoscale enabled` or `autoscale paused`
    pub message: String,
    pub process: String,
    pub state: String,
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunTrigger {
    /// A tick of the schedule.
    Schedule,
    /// `POST .../run`, `start`/`restart` of a one-shot, or a reload.
    Manual,
    /// The manager's start (a one-shot, or `run_on_start`).
    Start,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Schedule => "schedule",
            RunTrigger::Manual => "manual",
            RunTrigger::Start => "start",
        }
    }
}

/// How a run ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    Success,
    Failure,
    /// Stopped for running past its `timeout`.
    Timeout,
    Running,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Success => "success",
            RunResult::Failure => "failure",
            RunResult::Timeout => "timeout",
            RunResult::Running => "running",
        }
    }
}

/// The last run of a scheduled process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LastRun {
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds; null while running.
    pub ended_at: Option<i64>,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<u64>,
    pub trigger: RunTrigger,
}

/// `schedule` in a scheduled process's object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleInfo {
    pub cron: String,
    pub timezone: String,
    /// Unix seconds of the next tick; null while suspended.
    pub next_run: Option<i64>,
    pub suspended: bool,
    /// Runs going now.
    pub running: u32,
    /// Ticks skipped (a run was going, or the clock jumped over them).
    pub missed: u64,
    pub last_run: Option<LastRun>,
}

/// One run of a scheduled or one-shot process
/// (`GET /api/v1/processes/{name}/runs`, newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunInfo {
    /// `scheduler-1`
    pub instance: String,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds; null while running.
    pub ended_at: Option<i64>,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<u64>,
    pub trigger: RunTrigger,
    pub result: RunResult,
    /// Its last output lines.
    pub lines: Vec<String>,
}

/// `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    pub status: String,
}

/// `GET /api/v1/ready` (200 or 503).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReadyResponse {
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// `POST /api/v1/processes/{process}/scale` body. `desired` wins when both
/// are given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScaleRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<serde_json::Value>,
}

/// Answer to a scale request (202 `scaling`, 200 `unchanged`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScaleResponse {
    pub status: String,
    pub process: String,
    pub current: u32,
    pub desired: u32,
    pub message: String,
}

/// Answer to start, stop, restart and reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActionResponse {
    pub message: String,
    pub process: String,
}

/// Answer to `POST /api/v1/processes/{name}/run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunResponse {
    /// `run initiated`
    pub message: String,
    pub process: String,
    /// The instances that run now (empty when a `replace` run starts once
    /// the running one stopped).
    pub instances: Vec<String>,
}

/// Answer to `POST /api/v1/reload`: what the new file changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReloadResponse {
    /// `reloaded`
    pub status: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Processes whose `scale` changed (applied as a scale request).
    pub rescaled: Vec<String>,
    /// Processes rolled onto their new command/env/user/working_dir.
    pub restarted: Vec<String>,
    /// Processes with other settings changed in place.
    pub updated: Vec<String>,
}

/// One remembered output line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// RFC 3339 UTC with milliseconds.
    pub ts: String,
    pub instance: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub msg: String,
}

/// `GET /api/v1/processes/{name}/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogsResponse {
    pub process: String,
    pub lines: Vec<LogLine>,
}

/// Every error answer: `{"error": "..."}`, with config errors listed for a
/// rejected reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub error: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// `GET /api/v1/processes/{name}`: a process when the name is a process,
/// an instance when it is an instance (`web-2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
// One value per request, serialised at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum ProcessOrInstance {
    Process(ProcessInfo),
    Instance(InstanceInfo),
}
