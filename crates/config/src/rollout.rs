//! A process's `rollout:` block (SPEC 4): how a rolling restart paces
//! itself, and the advice `check-config` gives about it.

use std::time::Duration;

use serde::Serialize;

use crate::types::{opt_duration_text, Config, ProcessConfig};

/// `rollout:` of a process.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RolloutPolicy {
    /// Each next step of a rolling restart waits until the new instance has
    /// been running (and healthy, where checked) this long, like
    /// Kubernetes' `minReadySeconds`. None or zero: move on at once.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration_text")]
    pub min_ready: Option<Duration>,
}

impl RolloutPolicy {
    pub fn is_default(&self) -> bool {
        *self == RolloutPolicy::default()
    }

    /// The wait after each step (zero when not set).
    pub fn min_ready(&self) -> Duration {
        self.min_ready.unwrap_or(Duration::ZERO)
    }
}

/// The most instances `p` can have at once: its scale, `max_scale`, or its
/// autoscaler's `max`.
fn most_instances(p: &ProcessConfig) -> u32 {
    let mut most = p.scale;
    if let Some(m) = p.max_scale {
        most = most.max(m);
    }
    if let Some(a) = &p.autoscale {
        most = most.max(a.max);
    }
    most
}

/// Things in a valid config that an operator most likely wants changed,
/// one line each, naming the key. `check-config` prints them on stderr and
/// the manager logs them at start; they never stop anything.
pub fn advisories(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (name, p) in &config.processes {
        if p.is_oneshot() || p.schedule.is_some() || !p.enabled {
            continue;
        }
        if p.port_base.is_some() && most_instances(p) > 1 && p.rollout.min_ready().is_zero() {
            out.push(format!(
                "processes.{name}: port_base with up to {} instances and no rollout.min_ready: a rolling restart moves to the next instance as soon as the new one runs, faster than a load balancer takes a stopped address back (nginx: fail_timeout=10s); set e.g. rollout: {{ min_ready: 11s }}",
                most_instances(p)
            ));
        }
    }
    out
}
