//! What a probe result means for an instance: counting consecutive
//! results against the check's thresholds, becoming healthy, and the
//! restart (reason `health_check`) once failures reach the threshold.
//! The probes themselves run in `health.rs` and know nothing of this.
//!
//! Invariants:
//! - A result counts only for the run it was started for (`spawn_gen`)
//!   and only while that run is `Running`.
//! - A failed-check restart halts a roll whose current instance it is.

use std::sync::Arc;

use phpeek_wire::Health;

use super::messages::{InstanceRef, ProbeReport};
use super::model::{Intent, Live, RunState};
use super::spawning::{instance_vars, spawn_spec};
use super::{Effects, Supervisor};
use crate::effects::ProbeStart;
use crate::health::expand_target;
use crate::snapshot::RestartReason;

/// What one probe result does to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeVerdict {
    /// Nothing changes visibly.
    Count,
    /// The run became healthy.
    Healthy,
    /// Failures reached the threshold: restart the instance.
    Restart,
}

/// Counts one result into `live`'s counters and says what it means.
pub(crate) fn judge_probe(
    live: &mut Live,
    ok: bool,
    success_threshold: u32,
    failure_threshold: u32,
) -> ProbeVerdict {
    if ok {
        live.probe_fail = 0;
        live.probe_ok = live.probe_ok.saturating_add(1);
        if live.probe_ok >= success_threshold.max(1) && live.health != Health::Healthy {
            return ProbeVerdict::Healthy;
        }
        return ProbeVerdict::Count;
    }
    live.probe_ok = 0;
    live.probe_fail = live.probe_fail.saturating_add(1);
    if live.probe_fail >= failure_threshold.max(1) {
        ProbeVerdict::Restart
    } else {
        ProbeVerdict::Count
    }
}

impl<E: Effects> Supervisor<E> {
    /// Starts probing a freshly running instance, when its process has a
    /// check (a running probe of the same run is replaced).
    pub(super) fn start_probe(&mut self, pname: &str, n: u32) {
        let Some(p) = self.processes.get(pname) else {
            return;
        };
        let Some(check) = p.cfg.health_check.clone() else {
            return;
        };
        let Some(inst) = p.instances.get(&n) else {
            return;
        };
        let vars = instance_vars(p, inst);
        let target = expand_target(&check.kind, &vars, || spawn_spec(&self.base_env, p, inst));
        let probe = ProbeStart {
            at: InstanceRef {
                process: Arc::clone(&p.name),
                number: n,
            },
            gen: inst.spawn_gen,
            check,
            target,
        };
        let handle = self.fx.start_probe(probe);
        if let Some(RunState::Running(live)) = self.instance_mut(pname, n).map(|i| &mut i.run) {
            live.stop_probing();
            live.probe = Some(handle);
        }
    }

    pub(super) fn on_probe(&mut self, report: ProbeReport) {
        let ProbeReport { at, gen, result } = report;
        let pname: &str = &at.process;
        let n = at.number;
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let Some(check) = p.cfg.health_check.as_ref() else {
            return;
        };
        let (success_threshold, failure_threshold) =
            (check.success_threshold, check.failure_threshold);
        let Some(inst) = p.instances.get_mut(&n) else {
            return;
        };
        if inst.spawn_gen != gen {
            return;
        }
        let RunState::Running(live) = &mut inst.run else {
            return;
        };
        match judge_probe(live, result.ok, success_threshold, failure_threshold) {
            ProbeVerdict::Count => {
                if result.ok {
                    self.advance_rollout(pname);
                } else {
                    tracing::debug!(instance = %inst.name, "health check of {} failed: {}", inst.name, result.detail);
                }
                return;
            }
            ProbeVerdict::Healthy => {
                tracing::info!(instance = %inst.name, "{} is healthy ({})", inst.name, result.detail);
                live.health = Health::Healthy;
                live.healthy_since = Some(self.fx.now());
                self.advance_rollout(pname);
                return;
            }
            ProbeVerdict::Restart if inst.intent != Intent::Run => return,
            ProbeVerdict::Restart => {}
        }
        tracing::warn!(
            instance = %inst.name,
            "{} failed its health check {} times in a row ({}); restarting it",
            inst.name,
            live.probe_fail,
            result.detail
        );
        live.health = Health::Unhealthy;
        live.healthy_since = None;
        live.stop_probing();
        inst.reason = Some(format!("health check failed: {}", result.detail));
        inst.respawn_after_exit = Some(RestartReason::HealthCheck);
        let name = Arc::clone(&inst.name);
        if let Some(roll) = p.rollout.as_mut() {
            if roll.current == Some(n) && roll.phase == phpeek_wire::RolloutPhase::Running {
                roll.halt(
                    pname,
                    format!("{name} failed its health check: {}", result.detail),
                );
            }
        }
        self.stop_instance(pname, n);
    }
}
