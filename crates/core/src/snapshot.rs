//! The read model the supervisor publishes after every change. Readers (API,
//! metrics, CLI) never touch supervisor state; they convert a snapshot.

use std::sync::Arc;
use std::time::SystemTime;

use phpeek_wire::{Health, InstanceInfo, InstanceState, ProcessInfo, ProcessState, Rollout};

use crate::logs::LogRing;

/// Why an instance was restarted (metric label `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    Exit = 0,
    Crash = 1,
    HealthCheck = 2,
    Manual = 3,
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

#[derive(Debug, Clone)]
pub struct InstanceSnap {
    pub name: Arc<str>,
    pub number: u32,
    pub state: InstanceState,
    pub pid: Option<i32>,
    pub started_at: Option<SystemTime>,
    pub restarts: u64,
    /// Indexed by `RestartReason as usize`.
    pub restarts_by_reason: [u64; 4],
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
    pub restart: &'static str,
    pub state: ProcessState,
    pub reason: Option<String>,
    pub rollout: Option<Rollout>,
    /// `health_check.type` when the process has one.
    pub health_type: Option<&'static str>,
    /// Scale events so far: (up, down).
    pub scale_events: (u64, u64),
    pub instances: Vec<InstanceSnap>,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Ordered by name.
    pub processes: Vec<ProcessSnap>,
    pub shutting_down: bool,
    pub orphans_reaped: u64,
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

    pub fn to_info(&self, process: &str, now: SystemTime) -> InstanceInfo {
        let uptime = match (self.pid, self.started_at) {
            (Some(_), Some(t)) => now.duration_since(t).map(|d| d.as_secs()).unwrap_or(0),
            _ => 0,
        };
        InstanceInfo {
            name: self.name.to_string(),
            process: process.to_string(),
            number: self.number,
            state: self.state,
            pid: self.pid,
            uptime,
            started_at: self.started_at.map(unix_secs),
            restarts: self.restarts,
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
            restart: self.restart.to_string(),
            enabled: self.enabled,
            reason: self.reason.clone(),
            rollout: self.rollout.clone(),
            instances: self
                .instances
                .iter()
                .map(|i| i.to_info(&self.name, now))
                .collect(),
        }
    }
}

/// What a name given to the API or CLI refers to.
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
        self.processes.iter().find_map(|p| {
            p.instances
                .iter()
                .find(|i| &*i.name == name)
                .map(|i| Target::Instance(p, i))
        })
    }
}
