//! Stopping: one instance (stop signal to its group, deadline, SIGKILL),
//! the ordered shutdown of everything (dependents before what they depend
//! on), a second signal that kills at once, and the manager's exit code.
//!
//! Invariants:
//! - A process begins stopping only once every process that depends on it
//!   has no live instance left.
//! - The exit code is 0 after a clean shutdown and 1 when anything had to
//!   be killed; without a shutdown the manager exits only when something
//!   ran and everything ended (1 when something failed).

use std::sync::Arc;

use nix::sys::signal::Signal;
use phpeek_wire::InstanceState;

use super::messages::{InstanceRef, SignalEvent, Timer, TimerKind};
use super::model::{DepGate, Intent, RunState};
use super::{Effects, Supervisor};
use crate::workloads::hooks::HookPoint;

/// How a process looks to the exit-code decision.
#[derive(Debug, Clone)]
pub(crate) struct ProcessEnd {
    pub enabled: bool,
    pub gate: GateKind,
    pub desired: u32,
    pub stop_begun: bool,
    /// A scheduled process keeps the manager alive.
    pub scheduled: bool,
    /// Each instance's state and last exit code.
    pub instances: Vec<(InstanceState, Option<i32>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GateKind {
    Waiting,
    Open,
    Failed,
}

/// The manager-wide facts the exit code depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ManagerEnd {
    pub shutting_down: bool,
    pub forced_kills: u64,
    pub ever_started: bool,
}

fn is_down(state: InstanceState) -> bool {
    !matches!(
        state,
        InstanceState::Starting | InstanceState::Running | InstanceState::Stopping
    )
}

/// Some(code) once the manager should exit.
pub(crate) fn exit_code(m: ManagerEnd, processes: &[ProcessEnd]) -> Option<i32> {
    let all_down = processes
        .iter()
        .all(|p| p.instances.iter().all(|(s, _)| is_down(*s)));
    if m.shutting_down {
        let done = all_down && processes.iter().all(|p| p.stop_begun);
        return done.then_some(i32::from(m.forced_kills > 0));
    }
    if !m.ever_started || !all_down {
        return None;
    }
    // Processes scaled to zero do not count as ended: something must have
    // run and ended for "nothing left to run" to hold.
    let mut failed = false;
    let mut any_ended = false;
    for p in processes.iter().filter(|p| p.enabled) {
        if p.scheduled {
            return None;
        }
        match p.gate {
            GateKind::Waiting => return None,
            GateKind::Failed => {
                failed = true;
                any_ended = true;
            }
            GateKind::Open => {}
        }
        if (p.instances.len() as u64) < u64::from(p.desired) {
            return None;
        }
        for (state, code) in &p.instances {
            match state {
                InstanceState::Exited => failed |= *code != Some(0),
                InstanceState::Completed => {}
                InstanceState::Failed => failed = true,
                _ => return None,
            }
            any_ended = true;
        }
    }
    any_ended.then_some(i32::from(failed))
}

impl<E: Effects> Supervisor<E> {
    /// Some(code) once the manager should exit.
    pub(super) fn exit_code(&self) -> Option<i32> {
        let processes: Vec<ProcessEnd> = self
            .processes
            .values()
            .map(|p| ProcessEnd {
                enabled: p.cfg.enabled,
                gate: match p.gate {
                    DepGate::Waiting { .. } => GateKind::Waiting,
                    DepGate::Open => GateKind::Open,
                    DepGate::Failed(_) => GateKind::Failed,
                },
                desired: p.desired,
                stop_begun: p.stop_begun,
                scheduled: p.is_scheduled(),
                instances: p
                    .instances
                    .values()
                    .map(|i| (i.state(), i.last_exit_code))
                    .collect(),
            })
            .collect();
        let code = exit_code(
            ManagerEnd {
                shutting_down: self.shutting_down,
                forced_kills: self.forced_kills,
                ever_started: self.ever_started,
            },
            &processes,
        );
        if code.is_some() && !self.shutting_down {
            tracing::info!("every process has ended; exiting");
        }
        code
    }

    pub(super) fn on_signal(&mut self, sig: SignalEvent) {
        match sig {
            SignalEvent::Terminate(signo) => {
                let name = phpeek_config::signal_name(signo).unwrap_or("signal");
                if self.shutting_down {
                    tracing::warn!("{name} again: killing every process now");
                    self.kill_everything();
                } else {
                    tracing::info!("{name} received: shutting down");
                    self.begin_shutdown();
                }
            }
            SignalEvent::Forward(signo) => {
                let Ok(signal) = Signal::try_from(signo) else {
                    return;
                };
                // Only to processes that take it (`forward_signals`).
                let pids: Vec<i32> = self
                    .pids
                    .iter()
                    .filter(|(_, at)| {
                        self.processes
                            .get(&*at.process)
                            .is_some_and(|p| p.cfg.forward_signals.forwards(signo))
                    })
                    .map(|(pid, _)| *pid)
                    .collect();
                for pid in pids {
                    self.fx.signal_pid(pid, signal);
                }
            }
        }
    }

    /// Starts the ordered shutdown (global `pre_stop` hooks first).
    pub(super) fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        for p in self.processes.values_mut() {
            p.rollout = None;
            if let Some(state) = p.schedule.as_mut() {
                state.gen += 1;
                state.deferred_until = None;
                state.replace_pending = None;
            }
        }
    }

    fn kill_everything(&mut self) {
        for p in self.processes.values_mut() {
            p.stop_begun = true;
            for inst in p.instances.values_mut() {
                let run = std::mem::replace(&mut inst.run, RunState::Starting);
                inst.run = match run {
                    RunState::Running(live) | RunState::Stopping(live) => {
                        if self.fx.signal_group(live.pid, Signal::SIGKILL) {
                            self.forced_kills += 1;
                        }
                        RunState::Stopping(live)
                    }
                    other => other,
                };
            }
        }
    }

    /// Stops processes whose dependents are all down, dependents first.
    pub(super) fn reconcile_shutdown(&mut self) {
        let names: Vec<Arc<str>> = self.processes.keys().cloned().collect();
        for name in names {
            let Some(p) = self.processes.get(&name) else {
                continue;
            };
            if p.stop_begun {
                continue;
            }
            let dependents_down = self.processes.values().all(|other| {
                !other.cfg.depends_on_process(&name)
                    || other.instances.values().all(|i| i.is_down())
            });
            if !dependents_down {
                continue;
            }
            let numbers: Vec<u32> = p.instances.keys().copied().collect();
            if let Some(p) = self.processes.get_mut(&name) {
                p.stop_begun = true;
            }
            for n in numbers {
                self.stop_instance(&name, n);
            }
        }
    }

    /// Sends the process's stop signal to an instance and arms the deadline.
    /// An instance that is not running is settled at once.
    pub(super) fn stop_instance(&mut self, pname: &str, n: u32) {
        let default_timeout = self.config.global.shutdown_timeout;
        let shutting_down = self.shutting_down;
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let timeout = p.cfg.shutdown.timeout.unwrap_or(default_timeout);
        let Some(inst) = p.instances.get_mut(&n) else {
            return;
        };
        let run = std::mem::replace(&mut inst.run, RunState::Starting);
        match run {
            RunState::Running(live) => {
                inst.run = RunState::Stopping(live);
                inst.timer_gen += 1;
                // The deadline covers the `pre_stop` hooks too.
                let timer = Timer {
                    at: InstanceRef {
                        process: Arc::clone(&p.name),
                        number: n,
                    },
                    gen: inst.timer_gen,
                    kind: TimerKind::StopDeadline,
                };
                self.fx.start_timer(timer, timeout);
                if self.start_instance_hooks(pname, n, HookPoint::PreStop) {
                    if let Some(inst) = self.instance_mut(pname, n) {
                        inst.hook = Some(HookPoint::PreStop);
                    }
                    return;
                }
                self.send_stop_signal(pname, n);
            }
            // Already stopping; or a spawn is in flight, which on_spawned
            // stops once it has a pid.
            live @ (RunState::Stopping(_) | RunState::Starting) => inst.run = live,
            down => {
                inst.timer_gen += 1;
                let settle = matches!(down, RunState::Backoff { .. })
                    || inst.intent == Intent::Stop
                    || shutting_down;
                inst.run = if settle { RunState::Stopped } else { down };
                if inst.intent == Intent::Remove {
                    p.instances.remove(&n);
                }
            }
        }
    }

    /// Sends the stop signal to a stopping instance's group (while
    /// reconciling: with the rest of the burst, at its end).
    pub(super) fn send_stop_signal(&mut self, pname: &str, n: u32) {
        let Some(p) = self.processes.get(pname) else {
            return;
        };
        let sig = p.cfg.shutdown.signal;
        let Some(RunState::Stopping(live)) = p.instances.get(&n).map(|i| &i.run) else {
            return;
        };
        let signal = Signal::try_from(sig).unwrap_or(Signal::SIGTERM);
        match self.stop_burst.as_mut() {
            Some(burst) => burst.push((live.pid, signal)),
            None => {
                self.fx.signal_group(live.pid, signal);
            }
        }
    }

    /// No instance is alive or starting.
    pub(super) fn all_down(&self) -> bool {
        self.processes
            .values()
            .all(|p| p.instances.values().all(|i| i.is_down()))
    }

    /// The stop timeout is over: SIGKILL to the group if still alive.
    pub(super) fn on_stop_deadline(&mut self, pname: &str, n: u32) {
        let Some(inst) = self.instance_mut(pname, n) else {
            return;
        };
        let RunState::Stopping(live) = &inst.run else {
            return;
        };
        let pid = live.pid;
        tracing::warn!(instance = %inst.name, "{} did not stop in time; sending SIGKILL", inst.name);
        if self.fx.signal_group(pid, Signal::SIGKILL) {
            self.forced_kills += 1;
        }
    }
}
