//! Applying hooks: when the manager's and each instance's hooks start, and
//! what their results mean (SPEC 11).
//!
//! Invariants:
//! - Nothing starts before the global `pre_start` hooks succeeded; when
//!   they fail the manager exits 1 with nothing started.
//! - Global `post_start` runs once, the first time every wanted instance
//!   of every process is up (one-shots ended, gates settled).
//! - At shutdown the global `pre_stop` hooks run before any process is
//!   stopped, and `post_stop` after the last one ended, before the exit.
//! - An instance's `pre_start` runs before each spawn, with that
//!   instance's environment; its failure is a start failure (backoff and
//!   the restart policy). Its `pre_stop` runs before the stop signal,
//!   inside the stop timeout (the deadline timer is armed first); its
//!   `post_stop` after a stop by request, by scaling or by shutdown.
//! - The manager exits only when no hook is running.

use std::sync::Arc;

use phpeek_config::{expand_instance_vars, Hook};

use super::messages::{HookReport, InstanceRef};
use super::model::{Intent, RunState};
use super::spawning::{instance_vars, spawn_spec};
use super::{Effects, Supervisor};
use crate::spawn::SpawnSpec;
use crate::workloads::hooks::{HookCommand, HookJob, HookOwner, HookPoint};

/// Where one global hook point stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Stage {
    #[default]
    NotRun,
    Running,
    Done,
}

/// The manager's own hook points.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GlobalHookStages {
    pub pre_start: Stage,
    pub post_start: Stage,
    pub pre_stop: Stage,
    pub post_stop: Stage,
}

impl GlobalHookStages {
    /// Processes may start.
    pub(crate) fn started(&self) -> bool {
        self.pre_start == Stage::Done
    }
}

fn commands(hooks: &[Hook], expand: impl Fn(&str) -> String) -> Vec<HookCommand> {
    hooks
        .iter()
        .map(|h| HookCommand {
            argv: h.command.iter().map(|a| expand(a)).collect(),
            timeout: h.timeout,
            retries: h.retries,
            continue_on_error: h.continue_on_error,
        })
        .collect()
}

impl<E: Effects> Supervisor<E> {
    fn global_hooks_of(&self, point: HookPoint) -> &[Hook] {
        let h = &self.config.global.hooks;
        match point {
            HookPoint::PreStart => &h.pre_start,
            HookPoint::PostStart => &h.post_start,
            HookPoint::PreStop => &h.pre_stop,
            HookPoint::PostStop => &h.post_stop,
        }
    }

    fn stage_mut(&mut self, point: HookPoint) -> &mut Stage {
        let g = &mut self.global_hooks;
        match point {
            HookPoint::PreStart => &mut g.pre_start,
            HookPoint::PostStart => &mut g.post_start,
            HookPoint::PreStop => &mut g.pre_stop,
            HookPoint::PostStop => &mut g.post_stop,
        }
    }

    /// Starts the global hooks of `point` (once). False when there are
    /// none, so the point is done at once.
    fn start_global(&mut self, point: HookPoint) -> bool {
        if *self.stage_mut(point) != Stage::NotRun {
            return *self.stage_mut(point) == Stage::Running;
        }
        let cmds = commands(self.global_hooks_of(point), str::to_string);
        if cmds.is_empty() {
            *self.stage_mut(point) = Stage::Done;
            return false;
        }
        *self.stage_mut(point) = Stage::Running;
        let base = SpawnSpec {
            argv: Vec::new(),
            env: self.base_env.clone(),
            working_dir: None,
            user: None,
            group: None,
            capture_stdout: true,
            capture_stderr: true,
        };
        self.hooks_in_flight += 1;
        self.fx.run_hooks(HookJob {
            owner: HookOwner::Global,
            point,
            commands: cmds,
            base,
            process: Arc::from(""),
            label: Arc::from(format!("global:{}", point.as_str())),
        });
        true
    }

    pub(super) fn start_global_pre_start(&mut self) {
        if self.start_global(HookPoint::PreStart) {
            tracing::info!("running the global pre_start hooks");
        }
    }

    /// Global `post_start`, the first time everything is up.
    pub(super) fn maybe_post_start(&mut self) {
        if self.global_hooks.post_start != Stage::NotRun
            || self.global_hooks_of(HookPoint::PostStart).is_empty()
        {
            return;
        }
        if self.everything_up() {
            self.start_global(HookPoint::PostStart);
        }
    }

    fn everything_up(&self) -> bool {
        self.processes.values().filter(|p| p.cfg.enabled).all(|p| {
            if matches!(p.gate, super::model::DepGate::Waiting { .. }) {
                return false;
            }
            p.is_scheduled()
                || (1..=p.target()).all(|n| {
                    p.instances.get(&n).is_some_and(|i| {
                        matches!(
                            i.run,
                            RunState::Running(_) | RunState::Completed | RunState::Failed
                        )
                    })
                })
        })
    }

    /// Shutdown may stop processes once the global `pre_stop` is over.
    pub(super) fn global_pre_stop_done(&mut self) -> bool {
        if self.global_hooks.pre_start == Stage::Running {
            // Still before anything started: nothing to stop first.
            return true;
        }
        if self.global_hooks.pre_stop == Stage::NotRun && self.global_hooks.started() {
            self.start_global(HookPoint::PreStop);
        }
        self.global_hooks.pre_stop != Stage::Running
    }

    /// The exit code once the manager may exit: everything ended, every
    /// hook finished, and the global `post_stop` hooks ran.
    pub(super) fn ready_to_exit(&mut self) -> Option<i32> {
        let code = match self.exit_override {
            Some(code) => self.all_down().then_some(code),
            None => self.exit_code(),
        }?;
        if self.hooks_in_flight > 0 {
            return None;
        }
        if self.global_hooks.started() && self.start_global(HookPoint::PostStop) {
            return None;
        }
        Some(code)
    }

    /// Starts the hooks of `point` for instance `n`. False when it has none.
    pub(super) fn start_instance_hooks(&mut self, pname: &str, n: u32, point: HookPoint) -> bool {
        let Some(p) = self.processes.get(pname) else {
            return false;
        };
        let Some(inst) = p.instances.get(&n) else {
            return false;
        };
        let (cfg, _) = p.definition_for(inst);
        let hooks = match point {
            HookPoint::PreStart => &cfg.hooks.pre_start,
            HookPoint::PreStop => &cfg.hooks.pre_stop,
            HookPoint::PostStop => &cfg.hooks.post_stop,
            HookPoint::PostStart => return false,
        };
        if hooks.is_empty() {
            return false;
        }
        let vars = instance_vars(p, inst);
        let cmds = commands(hooks, |a| expand_instance_vars(a, &vars));
        let mut base = spawn_spec(&self.base_env, p, inst);
        base.capture_stdout = true;
        base.capture_stderr = true;
        let job = HookJob {
            owner: HookOwner::Instance {
                at: InstanceRef {
                    process: Arc::clone(&p.name),
                    number: n,
                },
                gen: inst.spawn_gen,
            },
            point,
            commands: cmds,
            base,
            process: Arc::clone(&p.name),
            label: Arc::from(format!("{}:{}", inst.name, point.as_str())),
        };
        self.hooks_in_flight += 1;
        self.fx.run_hooks(job);
        true
    }

    pub(super) fn on_hook(&mut self, report: HookReport) {
        let HookReport {
            owner,
            point,
            outcome,
        } = report;
        self.hooks_in_flight = self.hooks_in_flight.saturating_sub(1);
        let process: Arc<str> = match &owner {
            HookOwner::Global => Arc::from(""),
            HookOwner::Instance { at, .. } => Arc::clone(&at.process),
        };
        for result in &outcome.attempts {
            *self
                .hook_counts
                .entry((Arc::clone(&process), point, *result))
                .or_insert(0) += 1;
        }
        match owner {
            HookOwner::Global => {
                *self.stage_mut(point) = Stage::Done;
                if point == HookPoint::PreStart && !outcome.ok {
                    let why = outcome.detail.unwrap_or_default();
                    tracing::error!("global {why}: exiting with 1, nothing was started");
                    self.exit_override = Some(1);
                    self.shutting_down = true;
                    // Nothing ran: no stop hooks either.
                    self.global_hooks.pre_stop = Stage::Done;
                    self.global_hooks.post_stop = Stage::Done;
                    for p in self.processes.values_mut() {
                        p.stop_begun = true;
                    }
                }
            }
            HookOwner::Instance { at, gen } => self.on_instance_hook(&at, gen, point, outcome),
        }
    }

    fn on_instance_hook(
        &mut self,
        at: &InstanceRef,
        gen: u64,
        point: HookPoint,
        outcome: crate::workloads::hooks::HookOutcome,
    ) {
        let shutting_down = self.shutting_down;
        let Some(inst) = self.instance_mut(&at.process, at.number) else {
            return;
        };
        if inst.spawn_gen != gen || inst.hook != Some(point) {
            return;
        }
        inst.hook = None;
        match point {
            HookPoint::PreStart => {
                if !matches!(inst.run, RunState::Starting) {
                    return;
                }
                let wanted = inst.intent == Intent::Run && !shutting_down;
                if !wanted {
                    inst.run = RunState::Stopped;
                    if inst.intent == Intent::Remove {
                        if let Some(p) = self.processes.get_mut(&at.process) {
                            p.instances.remove(&at.number);
                        }
                    }
                    self.advance_rollout(&at.process);
                    return;
                }
                if outcome.ok {
                    self.spawn_now(&at.process, at.number);
                } else {
                    let why = outcome
                        .detail
                        .unwrap_or_else(|| "pre_start hook failed".into());
                    self.start_failed(&at.process, at.number, why);
                }
            }
            HookPoint::PreStop => self.send_stop_signal(&at.process, at.number),
            HookPoint::PostStart | HookPoint::PostStop => {}
        }
    }

    /// Counts a hook point's results where no report comes (tests).
    #[cfg(test)]
    pub(super) fn hook_count(
        &self,
        process: &str,
        point: HookPoint,
        result: phpeek_wire::RunResult,
    ) -> u64 {
        self.hook_counts
            .iter()
            .filter(|((p, h, r), _)| &**p == process && *h == point && *r == result)
            .map(|(_, c)| *c)
            .sum()
    }
}
