//! The autoscaler of a process in the supervisor (SPEC 12): its interval
//! timer, the samples the effects bring back, the policy's decision
//! (`autoscale/policy.rs`), and the decision applied as a change of the
//! desired count, like any scale request.
//!
//! Invariants:
//! - One sampling round per process at a time; a tick while one is going
//!   is skipped, and a round for an older generation (before a reload or a
//!   re-enable) is ignored.
//! - The autoscaler only changes `desired`; reconciling does the rest, so
//!   every guarantee of SPEC 4 holds for its changes.
//! - A manual scale pauses it (`manual`) until it is enabled again or the
//!   config is reloaded; while paused, and in `dry_run`, it still samples
//!   and decides (the API and metrics show it), and acts on nothing.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use phpeek_config::{Autoscale, MaxStep, MetricSource, MetricTarget, ScaleBehavior};

use super::messages::{AutoscaleChanged, CommandError, InstanceRef, Timer, TimerKind};
use super::model::{Process, RunState};
use super::spawning::spawn_spec;
use super::{Effects, Supervisor};
use crate::autoscale::{
    decide, effective_bounds, Behavior, Bounds, Input, LimitedBy, PolicyConfig, PolicyState,
    Sample, SampleError, Step, StepRow, Target, Window, WindowConfig,
};
use crate::snapshot::{AutoscaleMetricSnap, AutoscaleSnap};

/// Whether the autoscaler acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Active,
    /// Paused by a manual scale or `enabled: false`.
    Manual,
}

/// The last decision, for the API and metrics.
#[derive(Debug, Clone)]
pub(crate) struct LastDecision {
    pub at: SystemTime,
    pub metrics: Vec<AutoscaleMetricSnap>,
    pub limited_by: Option<LimitedBy>,
    pub recommended: u32,
    pub recommended_unclamped: u32,
    pub bounds: Bounds,
    /// Every metric failed this round.
    pub all_failed: bool,
}

pub(crate) struct Autoscaler {
    pub policy: PolicyConfig,
    pub windows: Vec<Window>,
    pub state: PolicyState,
    pub mode: Mode,
    pub dry_run: bool,
    pub interval: Duration,
    /// A label per metric: its source kind, numbered when repeated
    /// (`redis`, `redis#2`).
    pub names: Vec<String>,
    pub errors: Vec<u64>,
    pub last: Option<LastDecision>,
    pub gen: u64,
    pub sampling: bool,
}

fn behavior(b: &ScaleBehavior) -> Behavior {
    Behavior {
        stabilization: b.stabilization,
        max_step: match b.max_step {
            MaxStep::Instances(n) => Step::Instances(n),
            MaxStep::Percent(p) => Step::Percent(p),
        },
        period: b.period,
    }
}

/// The policy's view of an `autoscale` block.
pub(crate) fn policy_of(a: &Autoscale) -> PolicyConfig {
    let metrics = a
        .metrics
        .iter()
        .map(|m| match (&m.source, &m.target) {
            (MetricSource::Cpu { utilization }, _) => Target::CpuUtilization(*utilization),
            (_, MetricTarget::PerInstance(v)) => Target::PerInstance(*v),
            (_, MetricTarget::Steps(rows)) => Target::Steps(
                rows.iter()
                    .map(|r| StepRow {
                        above: r.above,
                        instances: r.instances,
                    })
                    .collect(),
            ),
            // Only a cpu metric has this target (checked at load); a NaN
            // target is a failed metric for the policy, never a panic.
            (_, MetricTarget::Utilization) => Target::PerInstance(f64::NAN),
        })
        .collect();
    PolicyConfig {
        min: a.min,
        max: a.max,
        tolerance: a.behavior.tolerance,
        metrics,
        scale_up: behavior(&a.behavior.scale_up),
        scale_down: behavior(&a.behavior.scale_down),
        fallback: a.fallback,
    }
}

fn metric_names(a: &Autoscale) -> Vec<String> {
    let mut seen: std::collections::BTreeMap<&str, u32> = std::collections::BTreeMap::new();
    a.metrics
        .iter()
        .map(|m| {
            let kind = m.source.kind();
            let n = seen.entry(kind).or_insert(0);
            *n += 1;
            if *n == 1 {
                kind.to_string()
            } else {
                format!("{kind}#{n}")
            }
        })
        .collect()
}

impl Autoscaler {
    pub(crate) fn new(process: &str, a: &Autoscale) -> Autoscaler {
        let windows = a
            .windows
            .iter()
            .filter_map(|w| {
                let parsed = Window::parse(&WindowConfig {
                    start: w.start.clone(),
                    end: w.end.clone(),
                    timezone: Some(w.timezone.clone()),
                    min: w.min,
                    max: w.max,
                });
                match parsed {
                    Ok(w) => Some(w),
                    Err(e) => {
                        tracing::error!(process, "`{process}`: window ignored: {e}");
                        None
                    }
                }
            })
            .collect();
        let names = metric_names(a);
        Autoscaler {
            policy: policy_of(a),
            windows,
            state: PolicyState::new(),
            mode: Mode::Active,
            dry_run: a.dry_run,
            interval: a.interval,
            errors: vec![0; names.len()],
            names,
            last: None,
            gen: 0,
            sampling: false,
        }
    }

    /// `active`, `manual`, `dry_run` or `error` (every metric failed the
    /// last round).
    pub(crate) fn state_name(&self) -> &'static str {
        if self.last.as_ref().is_some_and(|l| l.all_failed) {
            "error"
        } else if self.dry_run {
            "dry_run"
        } else if self.mode == Mode::Manual {
            "manual"
        } else {
            "active"
        }
    }
}

/// The autoscale part of a process's snapshot.
pub(super) fn autoscale_snap(p: &Process) -> Option<AutoscaleSnap> {
    let a = p.autoscaler.as_ref()?;
    let bounds = a.last.as_ref().map_or(
        Bounds {
            min: a.policy.min,
            max: a.policy.max,
        },
        |l| l.bounds,
    );
    Some(AutoscaleSnap {
        state: a.state_name(),
        min: bounds.min,
        max: bounds.max,
        recommended: a.last.as_ref().map(|l| l.recommended),
        recommended_unclamped: a.last.as_ref().map(|l| l.recommended_unclamped),
        desired: p.desired,
        at: a.last.as_ref().map(|l| l.at),
        metrics: a
            .last
            .as_ref()
            .map(|l| l.metrics.clone())
            .unwrap_or_default(),
        limited_by: a
            .last
            .as_ref()
            .and_then(|l| l.limited_by.map(LimitedBy::as_str)),
        errors: a
            .names
            .iter()
            .cloned()
            .zip(a.errors.iter().copied())
            .collect(),
    })
}

fn to_utc(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

impl<E: Effects> Supervisor<E> {
    /// Starts every autoscaler (first round at once).
    pub(super) fn arm_autoscalers(&mut self) {
        let names: Vec<Arc<str>> = self
            .processes
            .values()
            .filter(|p| p.autoscaler.is_some())
            .map(|p| Arc::clone(&p.name))
            .collect();
        for name in names {
            self.arm_autoscale(&name, Duration::ZERO);
        }
    }

    fn arm_autoscale(&mut self, pname: &str, after: Duration) {
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let Some(a) = p.autoscaler.as_mut() else {
            return;
        };
        let timer = Timer {
            at: InstanceRef {
                process: Arc::clone(&p.name),
                number: 0,
            },
            gen: a.gen,
            kind: TimerKind::AutoscaleTick,
        };
        self.fx.start_timer(timer, after);
    }

    /// An interval is over: sample every metric.
    pub(super) fn on_autoscale_tick(&mut self, pname: &str, gen: u64) {
        let base_env = &self.base_env;
        let Some(p) = self.processes.get(pname) else {
            return;
        };
        let Some(a) = p.autoscaler.as_ref() else {
            return;
        };
        if a.gen != gen || self.shutting_down {
            return;
        }
        let interval = a.interval;
        if a.sampling {
            tracing::warn!(
                process = pname,
                "`{pname}`: the last samples are still being taken; skipping a round"
            );
            self.arm_autoscale(pname, interval);
            return;
        }
        let Some(cfg) = p.cfg.autoscale.as_ref() else {
            return;
        };
        // Commands run as the process's user, with its environment.
        let probe = super::model::Instance::new(&p.name, 0);
        let base = spawn_spec(base_env, p, &probe);
        let pids = p
            .instances
            .values()
            .filter_map(|i| match &i.run {
                RunState::Running(l) => Some(l.pid),
                _ => None,
            })
            .collect();
        let job = crate::effects::SampleJob {
            process: Arc::clone(&p.name),
            gen,
            metrics: cfg.metrics.clone(),
            base,
            pids,
        };
        if let Some(a) = self
            .processes
            .get_mut(pname)
            .and_then(|p| p.autoscaler.as_mut())
        {
            a.sampling = true;
        }
        self.fx.sample_metrics(job);
        self.arm_autoscale(pname, interval);
    }

    /// The samples of a round came back: decide, and act unless paused or
    /// dry-running.
    pub(super) fn on_samples(&mut self, report: crate::effects::SampleReport) {
        let now = self.fx.now();
        let wall = self.fx.wall_clock();
        let shutting_down = self.shutting_down;
        let Some(p) = self.processes.get_mut(&*report.process) else {
            return;
        };
        let current = p.desired;
        let acting_allowed = p.cfg.enabled && !p.removed && !shutting_down;
        let Some(a) = p.autoscaler.as_mut() else {
            return;
        };
        if a.gen != report.gen {
            return;
        }
        a.sampling = false;
        let samples: Vec<Sample> = report
            .results
            .iter()
            .map(|r| r.as_ref().map(|v| *v).map_err(|_| SampleError))
            .collect();
        let warming = crate::autoscale::sources::SampleFailure::WarmingUp.to_string();
        for (i, r) in report.results.iter().enumerate() {
            if let Err(e) = r {
                // A cpu metric's first reading has nothing to compare to.
                if *e == warming {
                    continue;
                }
                if let Some(n) = a.errors.get_mut(i) {
                    *n += 1;
                }
                let name = a.names.get(i).map_or("metric", String::as_str);
                tracing::warn!(process = %p.name, "`{}` autoscale: {name}: {e}", p.name);
            }
        }
        let bounds = effective_bounds(a.policy.min, a.policy.max, &a.windows, to_utc(wall));
        let d = decide(
            &Input {
                config: &a.policy,
                current,
                samples: &samples,
                bounds,
                now,
            },
            &mut a.state,
        );
        let metrics = a
            .names
            .iter()
            .zip(report.results.iter())
            .zip(d.per_metric.iter())
            .map(|((name, r), m)| AutoscaleMetricSnap {
                name: name.clone(),
                value: r.as_ref().ok().copied(),
                desired: m.desired,
                error: r.as_ref().err().cloned(),
            })
            .collect();
        a.last = Some(LastDecision {
            at: wall,
            metrics,
            limited_by: d.limited_by,
            recommended: d.recommended,
            recommended_unclamped: d.recommended_unclamped,
            bounds,
            all_failed: !samples.is_empty() && samples.iter().all(|s| s.is_err()),
        });
        let acts = acting_allowed && a.mode == Mode::Active && !a.dry_run;
        if d.desired == current {
            return;
        }
        if !acts {
            tracing::debug!(process = %p.name, "`{}` autoscale would scale {current} → {} ({}); not acting ({})", p.name, d.desired, d.reason, a.state_name());
            return;
        }
        a.state.record_change(now, current, d.desired);
        tracing::info!(process = %p.name, "autoscale `{}`: {current} → {}: {}", p.name, d.desired, d.reason);
        p.scale_events.record(current, d.desired);
        p.desired = d.desired;
    }

    /// A manual scale pauses the autoscaler of that process.
    pub(super) fn pause_autoscaler(&mut self, pname: &str) {
        if let Some(a) = self
            .processes
            .get_mut(pname)
            .and_then(|p| p.autoscaler.as_mut())
        {
            if a.mode == Mode::Active {
                a.mode = Mode::Manual;
                tracing::info!(process = pname, "autoscaler of `{pname}` paused by a manual scale; re-enable with POST /api/v1/processes/{pname}/autoscale {{\"enabled\": true}}");
            }
        }
    }

    /// `POST …/autoscale {"enabled": …}`.
    pub(super) fn apply_autoscale(
        &mut self,
        pname: &str,
        enabled: bool,
    ) -> Result<AutoscaleChanged, CommandError> {
        let Some(p) = self.processes.get_mut(pname) else {
            return Err(CommandError::NotFound(format!(
                "no process named `{pname}`"
            )));
        };
        let Some(a) = p.autoscaler.as_mut() else {
            return Err(CommandError::BadRequest(format!(
                "`{pname}` has no autoscale block in the config"
            )));
        };
        if enabled {
            if a.mode == Mode::Manual {
                a.mode = Mode::Active;
                a.state = PolicyState::new();
                a.gen += 1;
                a.sampling = false;
                tracing::info!(process = pname, "autoscaler of `{pname}` enabled");
                self.arm_autoscale(pname, Duration::ZERO);
            }
        } else if a.mode == Mode::Active {
            a.mode = Mode::Manual;
            tracing::info!(process = pname, "autoscaler of `{pname}` disabled");
        }
        let state = self
            .processes
            .get(pname)
            .and_then(|p| p.autoscaler.as_ref())
            .map_or("active", Autoscaler::state_name);
        Ok(AutoscaleChanged {
            process: pname.to_string(),
            enabled,
            state,
        })
    }

    /// A reload: the autoscaler starts over from the new block.
    pub(super) fn reset_autoscaler(&mut self, pname: &str) {
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let old_gen = p.autoscaler.as_ref().map_or(0, |a| a.gen);
        p.autoscaler = p.cfg.autoscale.as_ref().map(|a| {
            let mut s = Autoscaler::new(pname, a);
            s.gen = old_gen + 1;
            s
        });
        self.arm_autoscale(pname, Duration::ZERO);
    }
}
