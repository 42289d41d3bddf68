//! An exit, and what follows from it: the restart decision (a pure
//! function of the policy, how the run ended, how long it ran and the
//! attempts so far), the backoff timer, and the respawn.
//!
//! Invariants:
//! - The policy decides only about runs that ended on their own. An
//!   instance stopped by request, scaled away or stopped by shutdown is
//!   never restarted by policy; a manual restart and a failed health check
//!   restart whatever the policy.
//! - A run that lasted `Backoff::reset_after` forgets earlier failures.

use std::time::Duration;

use nix::sys::signal::Signal;
use phpeek_config::RestartPolicy;

use super::messages::{InstanceRef, Timer, TimerKind};
use super::model::{Intent, RunState};
use super::{Effects, Supervisor};
use crate::backoff::Backoff;
use crate::registry::ExitStatus;
use crate::snapshot::RestartReason;
use crate::workloads::hooks::HookPoint;
use crate::workloads::oneshot::OneshotEnd;

/// How a run ended, for the restart decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunEnd {
    /// The program exited (true: with code 0).
    Exited(bool),
    /// The program could not be started at all.
    SpawnFailed,
    /// We stopped it after failed health checks.
    HealthFailed,
}

/// What the restart machinery knows when a run ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunOutcome {
    pub policy: RestartPolicy,
    pub end: RunEnd,
    /// How long the run lasted (zero when it never started).
    pub ran: Duration,
    /// Consecutive restarts before this one.
    pub attempts: u32,
    /// 0 = unlimited.
    pub max_attempts: u32,
    pub backoff: Backoff,
}

/// The restart decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartDecision {
    /// The policy does not restart: the run is over (`failed` when it never
    /// started, else `exited`).
    Settle { failed: bool },
    /// Too many restarts in a row: `failed`.
    GiveUp { max_attempts: u32 },
    /// Restart after `delay` (zero: now), as attempt number `attempts`.
    Restart {
        attempts: u32,
        reason: RestartReason,
        delay: Duration,
    },
}

/// Decides what follows the end of a run.
pub(crate) fn decide_restart(o: RunOutcome) -> RestartDecision {
    let success = o.end == RunEnd::Exited(true);
    let spawn_failed = o.end == RunEnd::SpawnFailed;
    // A failed health check restarts whatever the policy: the policy is
    // about the program's own exits.
    let restart = o.end == RunEnd::HealthFailed
        || match o.policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Never => false,
        };
    if !restart {
        return RestartDecision::Settle {
            failed: spawn_failed,
        };
    }
    let attempts = if o.ran >= o.backoff.reset_after() {
        0
    } else {
        o.attempts
    };
    if o.max_attempts > 0 && attempts >= o.max_attempts {
        return RestartDecision::GiveUp {
            max_attempts: o.max_attempts,
        };
    }
    let attempts = attempts + 1;
    let reason = match o.end {
        RunEnd::HealthFailed => RestartReason::HealthCheck,
        RunEnd::Exited(true) => RestartReason::Exit,
        RunEnd::Exited(false) | RunEnd::SpawnFailed => RestartReason::Crash,
    };
    let mut delay = o.backoff.delay(attempts);
    if spawn_failed {
        // A command that cannot start will not start a microsecond later.
        delay = delay.max(Duration::from_secs(1));
    }
    RestartDecision::Restart {
        attempts,
        reason,
        delay,
    }
}

impl<E: Effects> Supervisor<E> {
    pub(super) fn on_exit(&mut self, pid: i32, status: ExitStatus) {
        self.fx.forget_pid(pid);
        if self.strays.remove(&pid) {
            return;
        }
        let Some(at) = self.pids.remove(&pid) else {
            self.orphans_reaped += 1;
            tracing::debug!(pid, "reaped an orphan ({})", status.describe());
            return;
        };
        // The instance is its process group: leftovers go with the leader.
        self.fx.signal_leftovers(pid, Signal::SIGKILL);
        // A stop deadline is moot once the leader is gone.
        self.fx.cancel_timers(&at);
        let now = self.fx.now();
        let shutting_down = self.shutting_down;
        let (pname, n) = (at.process, at.number);
        let Some(inst) = self.instance_mut(&pname, n) else {
            return;
        };
        let (ran, was_stopping) = match &inst.run {
            RunState::Running(l) => (now.saturating_duration_since(l.since), false),
            RunState::Stopping(l) => (now.saturating_duration_since(l.since), true),
            _ => (Duration::ZERO, false),
        };
        inst.run = RunState::Exited;
        inst.hook = None;
        inst.last_exit_code = Some(status.as_code());
        let stopped = matches!(inst.intent, Intent::Stop | Intent::Remove) || shutting_down;
        let (oneshot, scheduled) = self
            .processes
            .get(&pname)
            .map_or((false, false), |p| (p.cfg.is_oneshot(), p.is_scheduled()));
        if stopped {
            self.start_instance_hooks(&pname, n, HookPoint::PostStop);
        }
        let Some(inst) = self.instance_mut(&pname, n) else {
            return;
        };
        if scheduled {
            let why = status.describe();
            tracing::info!(instance = %inst.name, "{} {why}", inst.name);
            self.end_scheduled_run(&pname, n, Some(status), why);
        } else if stopped {
            tracing::info!(instance = %inst.name, "{} stopped ({})", inst.name, status.describe());
            inst.timer_gen += 1;
            if inst.intent == Intent::Remove {
                if let Some(p) = self.processes.get_mut(&pname) {
                    p.instances.remove(&n);
                }
            } else {
                inst.run = RunState::Stopped;
            }
        } else if let Some(reason) = inst.respawn_after_exit.take() {
            inst.timer_gen += 1;
            if reason == RestartReason::HealthCheck {
                // Restarts for failed checks back off like crashes, so a
                // slow starter with a strict check does not spin.
                let why = inst
                    .reason
                    .clone()
                    .unwrap_or_else(|| "health check failed".into());
                self.after_run(&pname, n, RunEnd::HealthFailed, ran, why);
            } else {
                tracing::info!(instance = %inst.name, "{} restarting on request", inst.name);
                self.respawn(&pname, n, reason);
            }
        } else if oneshot {
            let end = if inst.timed_out {
                OneshotEnd::TimedOut
            } else {
                OneshotEnd::Exited(status.code)
            };
            tracing::info!(instance = %inst.name, "{} {}", inst.name, status.describe());
            self.after_oneshot(&pname, n, end, status.describe());
        } else {
            if !status.success() && !was_stopping {
                tracing::warn!(instance = %inst.name, "{} {}", inst.name, status.describe());
            } else {
                tracing::info!(instance = %inst.name, "{} {}", inst.name, status.describe());
            }
            let end = RunEnd::Exited(status.success());
            self.after_run(&pname, n, end, ran, status.describe());
        }
        self.advance_rollout(&pname);
    }

    /// Applies the restart decision after a run ended on its own (or could
    /// not start at all).
    pub(super) fn after_run(
        &mut self,
        pname: &str,
        n: u32,
        end: RunEnd,
        ran: Duration,
        why: String,
    ) {
        let backoff = self.backoff;
        let global_max = self.config.global.max_restart_attempts;
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let max_attempts = p.cfg.max_restart_attempts.unwrap_or(global_max);
        let policy = p.cfg.restart;
        let Some(inst) = p.instances.get_mut(&n) else {
            return;
        };
        inst.timer_gen += 1;
        let decision = decide_restart(RunOutcome {
            policy,
            end,
            ran,
            attempts: inst.attempts,
            max_attempts,
            backoff,
        });
        match decision {
            RestartDecision::Settle { failed } => {
                inst.run = if failed {
                    RunState::Failed
                } else {
                    RunState::Exited
                };
                inst.reason = Some(why);
            }
            RestartDecision::GiveUp { max_attempts } => {
                inst.run = RunState::Failed;
                inst.reason = Some(format!("{why}; gave up after {max_attempts} restarts"));
                tracing::error!(instance = %inst.name, "{} failed: gave up after {max_attempts} restarts", inst.name);
            }
            RestartDecision::Restart {
                attempts,
                reason,
                delay,
            } => {
                inst.attempts = attempts;
                if delay.is_zero() {
                    self.respawn(pname, n, reason);
                    return;
                }
                inst.run = RunState::Backoff { reason };
                inst.reason = Some(format!(
                    "{why}; restarting in {}",
                    phpeek_config::format_duration(delay)
                ));
                let timer = Timer {
                    at: InstanceRef {
                        process: std::sync::Arc::clone(&p.name),
                        number: n,
                    },
                    gen: inst.timer_gen,
                    kind: TimerKind::BackoffDone,
                };
                self.fx.start_timer(timer, delay);
            }
        }
    }

    pub(super) fn on_timer(&mut self, timer: Timer) {
        let Timer { at, gen, kind } = timer;
        if kind == TimerKind::ScheduleWake {
            self.on_schedule_wake(&at.process, gen);
            return;
        }
        if kind == TimerKind::AutoscaleTick {
            self.on_autoscale_tick(&at.process, gen);
            return;
        }
        if kind == TimerKind::RolloutReady {
            // No generation check: the roll looks at the instance afresh,
            // so a stale wake only finds it still waiting.
            self.advance_rollout(&at.process);
            return;
        }
        let shutting_down = self.shutting_down;
        let Some(inst) = self.instance_mut(&at.process, at.number) else {
            return;
        };
        if inst.timer_gen != gen {
            return;
        }
        match kind {
            TimerKind::BackoffDone => {
                if let RunState::Backoff { reason } = inst.run {
                    if inst.intent == Intent::Run && !shutting_down {
                        self.respawn(&at.process, at.number, reason);
                    }
                }
            }
            TimerKind::StopDeadline => self.on_stop_deadline(&at.process, at.number),
            TimerKind::RunTimeout => self.on_run_timeout(&at.process, at.number),
            TimerKind::ScheduleWake | TimerKind::AutoscaleTick | TimerKind::RolloutReady => {}
        }
    }
}
