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

use std::collections::VecDeque;

use phpeek_wire::{Health, InstanceState, Rollout, RolloutPhase};

use super::model::{Process, RunState};
use super::{Effects, Supervisor};

pub(crate) struct RolloutState {
    /// Instance numbers still to replace, in order.
    pub queue: VecDeque<u32>,
    /// The instance being replaced now.
    pub current: Option<u32>,
    pub phase: RolloutPhase,
    pub reason: Option<String>,
}

impl RolloutState {
    pub(crate) fn new(numbers: Vec<u32>) -> Self {
        RolloutState {
            queue: numbers.into(),
            current: None,
            phase: RolloutPhase::Running,
            reason: None,
        }
    }

    pub(crate) fn public(&self) -> Rollout {
        Rollout {
            state: self.phase,
            reason: self.reason.clone(),
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
    /// Running again (and healthy where checked): the roll may move on.
    Back,
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
    Wait,
    Halt(String),
    /// Replace the next instance in the queue (or finish when empty).
    Proceed,
}

/// The step for the instance `name` being replaced, doing `status`.
pub(crate) fn rollout_step(name: &str, status: &Replaced) -> RolloutStep {
    match status {
        Replaced::Back | Replaced::Gone => RolloutStep::Proceed,
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
        RunState::Running(live)
            if i.respawn_after_exit.is_none() && (!checked || live.health == Health::Healthy) =>
        {
            Replaced::Back
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
            let Some(roll) = p.rollout.as_mut() else {
                return;
            };
            if let Some((cur, status)) = cur_status {
                let name = phpeek_config::instance_name(pname, cur);
                match rollout_step(&name, &status) {
                    RolloutStep::Wait => return,
                    RolloutStep::Halt(why) => {
                        roll.halt(pname, why);
                        return;
                    }
                    RolloutStep::Proceed => roll.current = None,
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
