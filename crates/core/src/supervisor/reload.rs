//! Hot reload: what changed between two definitions of a process (a pure
//! classification) and applying it: added processes start, removed ones
//! stop, a changed `scale` becomes a scale request, a changed spawn
//! definition rolls the process, anything else is applied in place.
//!
//! Invariants:
//! - Untouched processes keep their instances and pids.
//! - Whether a process rolls is decided by comparing its whole
//!   [`SpawnDefinition`], built by exhaustive destructuring of
//!   `ProcessConfig`: a new config field does not compile until it is
//!   classified here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use phpeek_config::{Config, Global, ProcessConfig};

use super::messages::ReloadSummary;
use super::model::{DepGate, Intent, Process};
use super::{backoff_of, Effects, Supervisor};

/// Everything that shapes how an instance is spawned. Two definitions
/// with equal spawn definitions run the same program the same way.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SpawnDefinition<'a> {
    kind: phpeek_config::ProcessType,
    command: &'a [String],
    env: &'a BTreeMap<String, String>,
    working_dir: &'a Option<PathBuf>,
    user: &'a Option<String>,
    group: &'a Option<String>,
    port_base: Option<u16>,
    stdout: bool,
    stderr: bool,
}

pub(crate) fn spawn_definition(cfg: &ProcessConfig) -> SpawnDefinition<'_> {
    // Every field is named: adding one to ProcessConfig forces a decision.
    let ProcessConfig {
        enabled: _,
        kind,
        command,
        scale: _,
        max_scale: _,
        restart: _,
        // Applied in place: read at the next exit, stop or start.
        max_restart_attempts: _,
        timeout: _,
        on_failure: _,
        hooks: _,
        initial_state: _,
        // A changed schedule re-arms (see `apply_reload`).
        schedule: _,
        // A reload resets the autoscaler (see `apply_reload`); the order
        // of the next scale-down is read when it happens.
        autoscale: _,
        scale_down: _,
        // Read at each step of a roll, so a running roll takes the new pace.
        rollout: _,
        env,
        working_dir,
        user,
        group,
        depends_on: _,
        port_base,
        shutdown: _,
        health_check: _,
        stdout,
        stderr,
    } = cfg;
    SpawnDefinition {
        kind: *kind,
        command,
        env,
        working_dir,
        user,
        group,
        port_base: *port_base,
        stdout: *stdout,
        stderr: *stderr,
    }
}

/// What a reload changed in one process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ProcessChange {
    /// `scale` changed (or the process came back after a removal).
    pub rescale: bool,
    /// The spawn definition changed: running instances roll.
    pub respawn: bool,
    /// The health check changed: running instances are probed anew.
    pub probe: bool,
    /// `depends_on` changed.
    pub deps: bool,
    /// Something beyond `scale` changed.
    pub beyond_scale: bool,
}

impl ProcessChange {
    pub(crate) fn is_none(&self) -> bool {
        *self == ProcessChange::default()
    }
}

/// Classifies the change from `old` to `new`.
pub(crate) fn classify(
    old: &ProcessConfig,
    new: &ProcessConfig,
    was_removed: bool,
) -> ProcessChange {
    ProcessChange {
        rescale: old.scale != new.scale || was_removed,
        respawn: spawn_definition(old) != spawn_definition(new),
        probe: old.health_check != new.health_check,
        deps: old.depends_on != new.depends_on,
        beyond_scale: *old
            != ProcessConfig {
                scale: old.scale,
                ..new.clone()
            },
    }
}

/// Listeners are bound once at startup; say so when a reload changes them.
fn warn_listener_changes(old: &Global, new: &Global) {
    let listeners = |g: &Global| {
        (
            g.api_enabled,
            g.api_host.clone(),
            g.api_port,
            g.api_auth.clone(),
            g.api_socket.clone(),
            g.metrics_enabled,
            g.metrics_host.clone(),
            g.metrics_port,
            g.metrics_path.clone(),
            g.log_format,
            g.log_level,
        )
    };
    if listeners(old) != listeners(new) {
        tracing::warn!(
            "API, metrics and log settings changed in the file take effect at the next start"
        );
    }
}

impl<E: Effects> Supervisor<E> {
    /// Moves to a new configuration (see the module doc).
    pub(super) fn apply_reload(&mut self, new: Config) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        let mut rearm: Vec<String> = Vec::new();
        let mut rerun: Vec<(String, u32)> = Vec::new();
        let mut autoscale_reset: Vec<String> = Vec::new();
        warn_listener_changes(&self.config.global, &new.global);
        self.backoff = backoff_of(&new);
        let now = self.fx.now();
        for (name, cfg) in &new.processes {
            let Some(p) = self.processes.get_mut(name.as_str()) else {
                let key: Arc<str> = Arc::from(name.as_str());
                self.processes
                    .insert(Arc::clone(&key), Process::new(key, cfg.clone(), now));
                summary.added.push(name.clone());
                continue;
            };
            let was_removed = std::mem::take(&mut p.removed);
            let change = classify(&p.cfg, cfg, was_removed);
            let old = std::mem::replace(&mut p.cfg, cfg.clone());
            // A reload starts the autoscaler over (and ends a manual pause).
            if p.cfg.autoscale.is_some() || old.autoscale.is_some() {
                autoscale_reset.push(name.clone());
            }
            if change.is_none() {
                continue;
            }
            let schedule_changed = old.schedule != cfg.schedule;
            if change.rescale {
                p.scale_events.record(p.desired, cfg.scale);
                p.desired = cfg.scale;
                summary.rescaled.push(name.clone());
            }
            if change.deps && p.instances.is_empty() && !cfg.depends_on.is_empty() {
                p.gate = DepGate::Waiting { since: now };
            }
            let running: Vec<u32> = p
                .instances
                .values()
                .filter(|i| i.intent == Intent::Run && i.number <= p.target())
                .map(|i| i.number)
                .collect();
            if change.respawn {
                p.version += 1;
                p.previous = Some(old);
                // Instances outside the roll (stopped, exited, failed) take
                // the new definition whenever they start again.
                for inst in p.instances.values_mut() {
                    if !running.contains(&inst.number) {
                        inst.upgrade = true;
                    }
                }
            }
            if schedule_changed {
                p.schedule = cfg
                    .schedule
                    .as_ref()
                    .map(|s| crate::workloads::schedule::ScheduleState::new(name, s, false));
                if let Some(s) = &cfg.schedule {
                    Arc::make_mut(&mut p.history).set_capacity(s.history);
                }
                rearm.push(name.clone());
            }
            if change.respawn && cfg.is_oneshot() {
                // A one-shot whose definition changed runs again.
                summary.restarted.push(name.clone());
                let numbers: Vec<u32> = p.instances.keys().copied().collect();
                rerun.extend(numbers.into_iter().map(|n| (name.clone(), n)));
            } else if change.respawn && !running.is_empty() {
                summary.restarted.push(name.clone());
                if running.len() > 1 {
                    self.start_rollout(name, running);
                } else {
                    for n in running {
                        self.restart_instance(name, n);
                    }
                }
            } else {
                if change.probe {
                    for n in running {
                        self.start_probe(name, n);
                    }
                }
                if change.beyond_scale {
                    summary.updated.push(name.clone());
                }
            }
        }
        for (name, p) in self.processes.iter_mut() {
            if !new.processes.contains_key(&**name) && !p.removed {
                p.removed = true;
                p.rollout = None;
                summary.removed.push(name.to_string());
            }
        }
        self.config = new;
        for name in rearm {
            self.rearm_schedule(&name);
        }
        for (name, n) in rerun {
            self.rerun_oneshot(&name, n);
        }
        for name in autoscale_reset {
            self.reset_autoscaler(&name);
        }
        tracing::info!(
            "configuration reloaded: {} added, {} removed, {} rescaled, {} restarted, {} updated",
            summary.added.len(),
            summary.removed.len(),
            summary.rescaled.len(),
            summary.restarted.len(),
            summary.updated.len()
        );
        summary
    }
}
