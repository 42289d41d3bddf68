//! Dependency gates: a process with `depends_on` starts only once every
//! dependency meets its condition, and fails after
//! `global.dependency_timeout`, or at once when a condition can no longer
//! be met.
//!
//! Invariants:
//! - `started`: the dependency's gate is open and every wanted instance
//!   runs (a one-shot's: has started, whatever came after). `healthy`: as
//!   `started`, and healthy where the process has a health check.
//!   `completed`: every wanted one-shot instance ended, with any code;
//!   `completed_successfully`: every one ended with 0.
//! - A one-shot that failed for good makes `completed_successfully`
//!   impossible: its dependents fail at once, with a reason naming it.
//! - A disabled dependency does not hold anything back.
//! - A gate opens once and stays open; a failed gate waits again only when
//!   the user starts the process (or one it waits for) by request.

use std::time::{Duration, Instant};

use phpeek_config::DependencyCondition;
use phpeek_wire::Health;

use super::model::{DepGate, Process, RunState};
use super::{Effects, Supervisor};

/// How one dependency looks to the process waiting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DepStatus {
    Ready,
    NotReady,
    /// Disabled in the config: does not hold anything back.
    Disabled,
    /// Not in the config (removed by a reload).
    Missing,
    /// Can no longer be met, and why.
    Impossible(String),
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
    if let Some((_, DepStatus::Impossible(why))) = deps
        .iter()
        .find(|(_, s)| matches!(s, DepStatus::Impossible(_)))
    {
        return GateDecision::Fail(why.clone());
    }
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

/// Whether `d` meets `condition`.
pub(crate) fn dependency_status(d: Option<&Process>, condition: DependencyCondition) -> DepStatus {
    let Some(d) = d else {
        return DepStatus::Missing;
    };
    if !d.cfg.enabled {
        return DepStatus::Disabled;
    }
    if let DepGate::Failed(why) = &d.gate {
        if d.cfg.is_oneshot() {
            return DepStatus::Impossible(format!("dependency {} failed: {why}", d.name));
        }
    }
    if d.gate != DepGate::Open {
        return DepStatus::NotReady;
    }
    let checked = d.cfg.health_check.is_some();
    let wanted = || (1..=d.target()).map(|n| d.instances.get(&n));
    let all = |ok: &dyn Fn(&RunState) -> bool| wanted().all(|i| i.is_some_and(|i| ok(&i.run)));
    let ready = match condition {
        DependencyCondition::Started if d.cfg.is_oneshot() => all(&|r| {
            matches!(
                r,
                RunState::Running(_)
                    | RunState::Stopping(_)
                    | RunState::Completed
                    | RunState::Failed
            )
        }),
        DependencyCondition::Started => all(&|r| matches!(r, RunState::Running(_))),
        DependencyCondition::Healthy => all(&|r| match r {
            RunState::Running(live) => !checked || live.health == Health::Healthy,
            _ => false,
        }),
        DependencyCondition::Completed => {
            all(&|r| matches!(r, RunState::Completed | RunState::Failed))
        }
        DependencyCondition::CompletedSuccessfully => {
            if let Some(i) = wanted()
                .flatten()
                .find(|i| matches!(i.run, RunState::Failed))
            {
                let why = i.reason.as_deref().unwrap_or("failed");
                return DepStatus::Impossible(format!(
                    "dependency {} failed ({why}); it had to complete successfully",
                    i.name
                ));
            }
            all(&|r| matches!(r, RunState::Completed))
        }
    };
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
                let status = dependency_status(self.processes.get(d.process.as_str()), d.condition);
                (d.process.as_str(), status)
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
                    "dependencies of `{name}` are ready; starting it"
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
                if matches!(p.gate, DepGate::Failed(_)) && p.cfg.depends_on_process(&dep) {
                    p.gate = DepGate::Waiting { since: now };
                    queue.push(p.name.to_string());
                }
            }
        }
    }
}
