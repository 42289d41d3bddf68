//! The read model the supervisor publishes after every change. Readers (API,
//! metrics, CLI) never touch supervisor state; they convert a snapshot.
//!
//! Invariants:
//! - A snapshot is immutable once published; the next change publishes a
//!   new one.
//! - The aggregate state of a process ([`process_state`]) is a function of
//!   what the snapshot shows, so every reader derives the same answer.

use std::sync::Arc;
use std::time::SystemTime;

use phpeek_config::{Dependency, ProcessType, RestartPolicy};
use phpeek_wire::{
    AutoscaleInfo, AutoscaleLast, AutoscaleMetricInfo, Health, InstanceInfo, InstanceState,
    LastRun, ProcessInfo, ProcessState, Rollout, RunInfo, RunResult, ScheduleInfo,
};

use crate::logs::LogRing;
use crate::workloads::history::{RunHistory, RunRecord};

/// Why an instance was restarted (metric label `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    Exit,
    Crash,
    HealthCheck,
    Manual,
}

impl RestartReason {
    pub const ALL: [RestartReason; 4] = [
        RestartReason::Exit,
        RestartReason::Crash,
        RestartReason::HealthCheck,
        RestartReason::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::Exit => "exit",
            RestartReason::Crash => "crash",
            RestartReason::HealthCheck => "health_check",
            RestartReason::Manual => "manual",
        }
    }
}

/// Restarts of one instance, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestartCounts {
    pub exit: u64,
    pub crash: u64,
    pub health_check: u64,
    pub manual: u64,
}

impl RestartCounts {
    pub fn get(&self, reason: RestartReason) -> u64 {
        match reason {
            RestartReason::Exit => self.exit,
            RestartReason::Crash => self.crash,
            RestartReason::HealthCheck => self.health_check,
            RestartReason::Manual => self.manual,
        }
    }

    pub fn count(&mut self, reason: RestartReason) {
        let slot = match reason {
            RestartReason::Exit => &mut self.exit,
            RestartReason::Crash => &mut self.crash,
            RestartReason::HealthCheck => &mut self.health_check,
            RestartReason::Manual => &mut self.manual,
        };
        *slot += 1;
    }

    pub fn total(&self) -> u64 {
        RestartReason::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// Changes of a process's desired scale, by direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScaleEvents {
    pub up: u64,
    pub down: u64,
}

impl ScaleEvents {
    /// Counts a change of the desired scale from `from` to `to`.
    pub fn record(&mut self, from: u32, to: u32) {
        if to > from {
            self.up += 1;
        } else if to < from {
            self.down += 1;
        }
    }
}

#[derive(Debug, Clone)]
pub struct InstanceSnap {
    pub name: Arc<str>,
    pub number: u32,
    pub state: InstanceState,
    pub pid: Option<i32>,
    pub started_at: Option<SystemTime>,
    pub restarts: RestartCounts,
    pub last_exit_code: Option<i32>,
    pub health: Health,
    pub reason: Option<String>,
    pub ring: Arc<LogRing>,
}

#[derive(Debug, Clone)]
pub struct ProcessSnap {
    pub name: Arc<str>,
    pub desired: u32,
    pub enabled: bool,
    pub restart: RestartPolicy,
    pub state: ProcessState,
    pub reason: Option<String>,
    pub rollout: Option<Rollout>,
    /// `health_check.type` when the process has one.
    pub health_type: Option<&'static str>,
    pub scale_events: ScaleEvents,
    pub kind: ProcessType,
    pub schedule: Option<ScheduleSnap>,
    pub autoscale: Option<AutoscaleSnap>,
    /// Finished runs (one-shots and schedules), newest last.
    pub history: Arc<RunHistory>,
    /// Runs going now, as run records (`result: running`).
    pub runs_going: Vec<RunRecord>,
    pub instances: Vec<InstanceSnap>,
}

/// An autoscaler, as the API shows it.
#[derive(Debug, Clone)]
pub struct AutoscaleSnap {
    /// `active`, `manual`, `dry_run` or `error`.
    pub state: &'static str,
    /// Effective now (windows applied).
    pub min: u32,
    pub max: u32,
    pub recommended: Option<u32>,
    /// Before the max clamp: what KEDA should read.
    pub recommended_unclamped: Option<u32>,
    pub desired: u32,
    /// When the last decision was made.
    pub at: Option<SystemTime>,
    pub metrics: Vec<AutoscaleMetricSnap>,
    pub limited_by: Option<&'static str>,
    /// Failed samples so far, by metric name.
    pub errors: Vec<(String, u64)>,
}

#[derive(Debug, Clone)]
pub struct AutoscaleMetricSnap {
    pub name: String,
    pub value: Option<f64>,
    pub desired: Option<u32>,
    pub error: Option<String>,
}

/// A scheduled process's schedule.
#[derive(Debug, Clone)]
pub struct ScheduleSnap {
    pub cron: String,
    pub timezone: String,
    pub next_run: Option<SystemTime>,
    pub suspended: bool,
    pub missed: u64,
}

/// Attempts of one hook point by result (`phpeek_pm_hook_runs_total`).
#[derive(Debug, Clone)]
pub struct HookCount {
    /// Empty for global hooks.
    pub process: Arc<str>,
    pub hook: &'static str,
    pub result: &'static str,
    pub count: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Ordered by name.
    pub processes: Vec<ProcessSnap>,
    pub shutting_down: bool,
    pub orphans_reaped: u64,
    pub hook_runs: Vec<HookCount>,
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

impl InstanceSnap {
    pub fn running_count(instances: &[InstanceSnap]) -> u32 {
        let n = instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// When the current run started, if the instance has a live pid: what
    /// `uptime` counts from.
    pub fn running_since(&self) -> Option<SystemTime> {
        self.pid.and(self.started_at)
    }

    /// Whole seconds from `since` (see `running_since`) to `now`; 0 for
    /// none, and for a start in the future (the clock was set back).
    pub fn uptime_at(since: Option<SystemTime>, now: SystemTime) -> u64 {
        since
            .and_then(|t| now.duration_since(t).ok())
            .map_or(0, |d| d.as_secs())
    }

    pub fn to_info(&self, process: &str, now: SystemTime) -> InstanceInfo {
        let uptime = Self::uptime_at(self.running_since(), now);
        InstanceInfo {
            name: self.name.to_string(),
            process: process.to_string(),
            number: self.number,
            state: self.state,
            pid: self.pid,
            uptime,
            started_at: self.started_at.map(unix_secs),
            restarts: self.restarts.total(),
            last_exit_code: self.last_exit_code,
            health: self.health,
            reason: self.reason.clone(),
            cpu_seconds: None,
            memory_bytes: None,
        }
    }
}

impl ProcessSnap {
    pub fn to_info(&self, now: SystemTime) -> ProcessInfo {
        ProcessInfo {
            name: self.name.to_string(),
            scale: self.desired,
            desired: self.desired,
            current: InstanceSnap::running_count(&self.instances),
            state: self.state,
            restart: self.restart.as_str().to_string(),
            enabled: self.enabled,
            reason: self.reason.clone(),
            rollout: self.rollout.clone(),
            kind: self.kind.as_str().to_string(),
            schedule: self.schedule.as_ref().map(|s| ScheduleInfo {
                cron: s.cron.clone(),
                timezone: s.timezone.clone(),
                next_run: s.next_run.map(unix_secs),
                suspended: s.suspended,
                running: u32::try_from(self.runs_going.len()).unwrap_or(u32::MAX),
                missed: s.missed,
                last_run: self.last_run().map(|r| LastRun {
                    started_at: unix_secs(r.started_at),
                    ended_at: r.ended_at.map(unix_secs),
                    exit_code: r.exit_code,
                    duration_ms: r.duration.map(millis),
                    trigger: r.trigger,
                }),
            }),
            autoscale: self.autoscale.as_ref().map(|a| AutoscaleInfo {
                state: a.state.to_string(),
                min: a.min,
                max: a.max,
                recommended: a.recommended,
                desired: a.desired,
                last: a.at.map(|at| AutoscaleLast {
                    at: unix_secs(at),
                    metrics: a
                        .metrics
                        .iter()
                        .map(|m| AutoscaleMetricInfo {
                            name: m.name.clone(),
                            value: m.value,
                            desired: m.desired,
                            error: m.error.clone(),
                        })
                        .collect(),
                    limited_by: a.limited_by.map(str::to_string),
                }),
            }),
            instances: self
                .instances
                .iter()
                .map(|i| i.to_info(&self.name, now))
                .collect(),
        }
    }
}

/// What a name given to the API or CLI refers to.
fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RunRecord {
    pub fn to_info(&self) -> RunInfo {
        RunInfo {
            instance: self.instance.to_string(),
            started_at: unix_secs(self.started_at),
            ended_at: self.ended_at.map(unix_secs),
            exit_code: self.exit_code,
            duration_ms: self.duration.map(millis),
            trigger: self.trigger,
            result: self.result,
            lines: self.output(),
        }
    }
}

impl ProcessSnap {
    /// The newest run: one going, else the last finished.
    pub fn last_run(&self) -> Option<&RunRecord> {
        self.runs_going
            .iter()
            .max_by_key(|r| r.started_at)
            .or_else(|| self.history.last())
    }

    /// Runs newest first: those going, then the finished ones.
    pub fn run_infos(&self) -> Vec<RunInfo> {
        let mut going: Vec<&RunRecord> = self.runs_going.iter().collect();
        going.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        going
            .into_iter()
            .chain(self.history.runs.iter().rev())
            .map(RunRecord::to_info)
            .collect()
    }

    /// Whether runs of this process are listed (`/runs`).
    pub fn has_runs(&self) -> bool {
        self.schedule.is_some() || self.kind == ProcessType::Oneshot
    }

    pub fn finished_runs(&self, result: RunResult) -> u64 {
        let s = &self.history.stats;
        match result {
            RunResult::Success => s.success,
            RunResult::Failure => s.failure,
            RunResult::Timeout => s.timeout,
            RunResult::Running => u64::try_from(self.runs_going.len()).unwrap_or(u64::MAX),
        }
    }
}

pub enum Target<'a> {
    Process(&'a ProcessSnap),
    Instance(&'a ProcessSnap, &'a InstanceSnap),
}

impl Snapshot {
    /// All instances, ordered by process name then number.
    pub fn instance_infos(&self, now: SystemTime) -> Vec<InstanceInfo> {
        self.processes
            .iter()
            .flat_map(|p| p.instances.iter().map(move |i| i.to_info(&p.name, now)))
            .collect()
    }

    /// Resolves a name as a process first, then as an instance.
    pub fn resolve(&self, name: &str) -> Option<Target<'_>> {
        if let Some(p) = self.processes.iter().find(|p| &*p.name == name) {
            return Some(Target::Process(p));
        }
        let (pname, n) = phpeek_config::split_instance_name(name)?;
        let p = self.processes.iter().find(|p| &*p.name == pname)?;
        let i = p.instances.iter().find(|i| i.number == n)?;
        Some(Target::Instance(p, i))
    }
}

/// How the dependency gate of a process looks to readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GateView<'a> {
    Waiting,
    Open,
    Failed(&'a str),
}

/// What the aggregate state of a process is computed from.
pub(crate) struct ProcessView<'a> {
    pub enabled: bool,
    pub gate: GateView<'a>,
    pub depends_on: &'a [Dependency],
    pub desired: u32,
    pub instances: &'a [InstanceSnap],
    pub scheduled: bool,
}

/// The aggregate state of a process, with a reason when there is one.
pub(crate) fn process_state(p: &ProcessView<'_>) -> (ProcessState, Option<String>) {
    if !p.enabled {
        return (ProcessState::Disabled, None);
    }
    match p.gate {
        GateView::Waiting => {
            let deps = p
                .depends_on
                .iter()
                .map(|d| d.process.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return (
                ProcessState::Waiting,
                Some(format!("waiting for dependencies: {deps}")),
            );
        }
        GateView::Failed(why) => return (ProcessState::Failed, Some(why.to_string())),
        GateView::Open => {}
    }
    if p.scheduled {
        return (ProcessState::Scheduled, None);
    }
    let count = |s: InstanceState| p.instances.iter().filter(|i| i.state == s).count();
    let total = p.instances.len();
    let running = count(InstanceState::Running);
    if total == 0 {
        return (ProcessState::Stopped, None);
    }
    if count(InstanceState::Failed) == total {
        return (ProcessState::Failed, None);
    }
    if count(InstanceState::Stopped) == total {
        return (ProcessState::Stopped, None);
    }
    let completed = count(InstanceState::Completed);
    if completed == total {
        return (ProcessState::Completed, None);
    }
    if count(InstanceState::Exited) + count(InstanceState::Failed) + completed == total {
        // A one-shot with a failed copy failed, whatever the others did.
        if completed > 0 && count(InstanceState::Failed) > 0 {
            return (ProcessState::Failed, None);
        }
        return (ProcessState::Exited, None);
    }
    if running == total && running as u64 == u64::from(p.desired) {
        return (ProcessState::Running, None);
    }
    (ProcessState::Degraded, None)
}
