//! Rolling restarts: one instance at a time, each next step only once the
//! replaced instance runs again (and is healthy, when the process has a
//! check). A new instance that does not come back halts the roll; the
//! instances not rolled yet keep running on the previous definition.
//!
//! Invariants:
//! - At most one instance of a process is being replaced at a time, so a
//!   roll never takes more than one instance away.
//! - A roll moves only while `Running`; `Halted` and `Done` are final
//!   (a new restart or reload starts a new roll).
//! - With `rollout.min_ready`, a replaced instance counts as back only once
//!   it has been running (and healthy, where checked) that long without a
//!   break: a restart of it starts the count again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use phpeek_wire::{Health, InstanceState, Rollout, RolloutPhase};

use super::messages::{InstanceRef, Timer, TimerKind};
use super::model::{Process, RunState};
use super::{Effects, Supervisor};

pub(crate) struct RolloutState {
    /// Instance numbers still to replace, in order.
    pub queue: VecDeque<u32>,
    /// The instance being replaced now.
    pub current: Option<u32>,
    pub phase: RolloutPhase,
    pub reason: Option<String>,
    /// The `min_ready` wake armed for `current`, so that every probe
    /// report does not arm another.
    pub wake: Option<Instant>,
}

impl RolloutState {
    pub(crate) fn new(numbers: Vec<u32>) -> Self {
        RolloutState {
            queue: numbers.into(),
            current: None,
            phase: RolloutPhase::Running,
            reason: None,
            wake: None,
        }
    }

    /// The `rollout` object of process `pname`, whose `rollout.min_ready`
    /// is `min_ready`.
    pub(crate) fn public(&self, pname: &str, min_ready: Option<Duration>) -> Rollout {
        let running = self.phase == RolloutPhase::Running;
        Rollout {
            state: self.phase,
            reason: self.reason.clone(),
            current: self
                .current
                .filter(|_| running)
                .map(|n| phpeek_config::instance_name(pname, n)),
            remaining: if running {
                u32::try_from(self.queue.len()).unwrap_or(u32::MAX)
            } else {
                0
            },
            min_ready: min_ready.map(phpeek_config::format_duration),
        }
    }

    /// Stops the roll for good with `reason`.
    pub(crate) fn halt(&mut self, process: &str, reason: String) {
        tracing::warn!(process, "rolling restart of `{process}` halted: {reason}");
        self.phase = RolloutPhase::Halted;
        self.reason = Some(reason);
    }
}

/// How the instance being replaced is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Replaced {
    /// Running again (and healthy where checked) since `ready_since`.
    Back { ready_since: Instant },
    /// Still stopping, starting or waiting for its first healthy probe.
    Pending,
    /// Ended in this state instead of coming back.
    Down(InstanceState),
    /// No longer in the table (scaled away).
    Gone,
}

/// What a running roll does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RolloutStep {
    /// Until the replaced instance changes state.
    Wait,
    /// Back, but not yet for `min_ready`: look again at this moment.
    WaitUntil(Instant),
    Halt(String),
    /// Replace the next instance in the queue (or finish when empty).
    Proceed,
}

/// The step for the instance `name` being replaced, doing `status`, at
/// `now`, when each step must stay ready for `min_ready`.
pub(crate) fn rollout_step(
    name: &str,
    status: &Replaced,
    min_ready: Duration,
    now: Instant,
) -> RolloutStep {
    match status {
        Replaced::Back { ready_since } => match ready_since.checked_add(min_ready) {
            Some(due) if due <= now => RolloutStep::Proceed,
            Some(due) => RolloutStep::WaitUntil(due),
            // Too far to represent: as good as never.
            None => RolloutStep::Wait,
        },
        Replaced::Gone => RolloutStep::Proceed,
        Replaced::Pending => RolloutStep::Wait,
        Replaced::Down(state) => {
            RolloutStep::Halt(format!("{name} did not come back: {}", state.as_str()))
        }
    }
}

/// How instance `n` of `p`, which a roll is replacing, is doing.
fn replaced_status(p: &Process, n: u32) -> Replaced {
    let Some(i) = p.instances.get(&n) else {
        return Replaced::Gone;
    };
    let checked = p.cfg.health_check.is_some();
    match &i.run {
        RunState::Running(live) if i.respawn_after_exit.is_none() => {
            match (checked, live.healthy_since) {
                (false, _) => Replaced::Back {
                    ready_since: live.since,
                },
                (true, Some(since)) if live.health == Health::Healthy => {
                    Replaced::Back { ready_since: since }
                }
                (true, _) => Replaced::Pending,
            }
        }
        RunState::Failed | RunState::Backoff { .. } | RunState::Exited => Replaced::Down(i.state()),
        _ => Replaced::Pending,
    }
}

impl<E: Effects> Supervisor<E> {
    /// Starts replacing `numbers` one at a time.
    pub(super) fn start_rollout(&mut self, pname: &str, numbers: Vec<u32>) {
        if let Some(p) = self.processes.get_mut(pname) {
            p.rollout = Some(RolloutState::new(numbers));
        }
        self.advance_rollout(pname);
    }

    /// Moves a rolling restart on once its current instance runs again.
    pub(super) fn advance_rollout(&mut self, pname: &str) {
        loop {
            let Some(p) = self.processes.get_mut(pname) else {
                return;
            };
            let Some(roll) = p
                .rollout
                .as_ref()
                .filter(|r| r.phase == RolloutPhase::Running)
            else {
                return;
            };
            let cur_status = roll.current.map(|cur| (cur, replaced_status(p, cur)));
            let min_ready = p.cfg.rollout.min_ready();
            let now = self.fx.now();
            let Some(roll) = p.rollout.as_mut() else {
                return;
            };
            if let Some((cur, status)) = cur_status {
                let name = phpeek_config::instance_name(pname, cur);
                match rollout_step(&name, &status, min_ready, now) {
                    RolloutStep::Wait => return,
                    RolloutStep::WaitUntil(due) => {
                        if roll.wake != Some(due) {
                            roll.wake = Some(due);
                            let timer = Timer {
                                at: InstanceRef {
                                    process: Arc::clone(&p.name),
                                    number: cur,
                                },
                                gen: 0,
                                kind: TimerKind::RolloutReady,
                            };
                            self.fx
                                .start_timer(timer, due.saturating_duration_since(now));
                        }
                        return;
                    }
                    RolloutStep::Halt(why) => {
                        roll.halt(pname, why);
                        return;
                    }
                    RolloutStep::Proceed => {
                        roll.current = None;
                        roll.wake = None;
                    }
                }
            }
            let Some(next) = roll.queue.pop_front() else {
                roll.phase = RolloutPhase::Done;
                p.previous = None;
                tracing::info!(process = %pname, "rolling restart of `{pname}` done");
                return;
            };
            if !p.instances.contains_key(&next) {
                continue;
            }
            roll.current = Some(next);
            self.restart_instance(pname, next);
        }
    }
}
