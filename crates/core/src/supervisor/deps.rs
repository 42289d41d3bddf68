//! Dependency gates: a process with `depends_on` starts only once every
//! dependency is ready, and fails after `global.dependency_timeout`.
//!
//! Invariants:
//! - A dependency is ready when its gate is open and every wanted instance
//!   runs and, where the process has a health check, is healthy. A
//!   disabled dependency does not hold anything back.
//! - A gate opens once and stays open; a failed gate waits again only when
//!   the user starts the process (or one it waits for) by request.

use std::time::{Duration, Instant};

use phpeek_wire::Health;

use super::model::{DepGate, Process, RunState};
use super::{Effects, Supervisor};

/// How one dependency looks to the process waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DepStatus {
    Ready,
    NotReady,
    /// Disabled in the config: does not hold anything back.
    Disabled,
    /// Not in the config (removed by a reload).
    Missing,
}

/// What a waiting gate does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GateDecision {
    Open,
    Wait,
    Fail(String),
}

/// Evaluates a gate that has waited since `since`.
pub(crate) fn evaluate_gate(
    deps: &[(&str, DepStatus)],
    since: Instant,
    now: Instant,
    timeout: Duration,
) -> GateDecision {
    let missing: Vec<&str> = deps
        .iter()
        .filter(|(_, s)| matches!(s, DepStatus::NotReady | DepStatus::Missing))
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        return GateDecision::Open;
    }
    if now.saturating_duration_since(since) >= timeout {
        return GateDecision::Fail(format!(
            "dependency {} not ready after {}",
            missing.join(", "),
            phpeek_config::format_duration(timeout)
        ));
    }
    GateDecision::Wait
}

/// Whether `d` is ready to be depended on.
pub(crate) fn dependency_status(d: Option<&Process>) -> DepStatus {
    let Some(d) = d else {
        return DepStatus::Missing;
    };
    if !d.cfg.enabled {
        return DepStatus::Disabled;
    }
    let checked = d.cfg.health_check.is_some();
    let ready = d.gate == DepGate::Open
        && (1..=d.target()).all(|n| {
            d.instances.get(&n).is_some_and(|i| match &i.run {
                RunState::Running(live) => !checked || live.health == Health::Healthy,
                _ => false,
            })
        });
    if ready {
        DepStatus::Ready
    } else {
        DepStatus::NotReady
    }
}

impl<E: Effects> Supervisor<E> {
    /// Opens a waiting gate once every dependency is ready, or fails it
    /// after `dependency_timeout`.
    pub(super) fn update_gate(&mut self, name: &str) {
        let Some(p) = self.processes.get(name) else {
            return;
        };
        let DepGate::Waiting { since } = p.gate else {
            return;
        };
        if p.target() == 0 {
            return;
        }
        let deps: Vec<(&str, DepStatus)> = p
            .cfg
            .depends_on
            .iter()
            .map(|d| {
                (
                    d.as_str(),
                    dependency_status(self.processes.get(d.as_str())),
                )
            })
            .collect();
        let decision = evaluate_gate(
            &deps,
            since,
            self.fx.now(),
            self.config.global.dependency_timeout,
        );
        let Some(p) = self.processes.get_mut(name) else {
            return;
        };
        match decision {
            GateDecision::Wait => {}
            GateDecision::Open => {
                tracing::info!(
                    process = name,
                    "dependencies of `{name}` are running; starting it"
                );
                p.gate = DepGate::Open;
            }
            GateDecision::Fail(why) => {
                tracing::error!(process = name, "`{name}` failed: {why}");
                p.gate = DepGate::Failed(why);
            }
        }
    }

    /// Processes that gave up waiting on `root` (directly or through other
    /// failed processes) wait again.
    pub(super) fn rearm_failed_dependents(&mut self, root: &str) {
        let now = self.fx.now();
        let mut queue = vec![root.to_string()];
        while let Some(dep) = queue.pop() {
            for p in self.processes.values_mut() {
                if matches!(p.gate, DepGate::Failed(_)) && p.cfg.depends_on.contains(&dep) {
                    p.gate = DepGate::Waiting { since: now };
                    queue.push(p.name.to_string());
                }
            }
        }
    }
}
