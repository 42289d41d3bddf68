//! Requests from the API and CLI: scale, start, stop, restart. A request
//! only changes what is wanted (the desired scale, an instance's intent);
//! reconciling and the restart machinery make it happen.
//!
//! Invariants:
//! - A scale request sets the desired count and nothing else, so racing
//!   requests cannot leak instances: the last one wins.
//! - During shutdown every request is refused with a conflict.
//! - A stop by request is undone only by a start or restart request.

use std::sync::Arc;

use super::messages::{Action, ActionDone, CommandError, Reply, Request, ScaleOutcome};
use super::model::{DepGate, Intent, RunState};
use super::{Effects, Supervisor};
use crate::snapshot::RestartReason;

/// What a name given to a request designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    /// A whole process: every one of its instances.
    Process,
    /// One instance by number.
    Instance(u32),
}

fn answer<T>(reply: Reply<T>, result: Result<T, CommandError>) {
    let _ = reply.send(result);
}

impl<E: Effects> Supervisor<E> {
    pub(super) fn apply_request(&mut self, req: Request) {
        if self.shutting_down {
            req.refuse(CommandError::shutting_down());
            return;
        }
        match req {
            Request::Scale {
                process,
                desired,
                reply,
            } => {
                let result = self.apply_scale(&process, desired);
                if result.is_ok() {
                    self.pause_autoscaler(&process);
                }
                answer(reply, result)
            }
            Request::Act {
                name,
                action,
                reply,
            } => answer(reply, self.apply_action(&name, action)),
            Request::Reload { config, reply } => answer(reply, Ok(self.apply_reload(*config))),
            Request::Run { name, reply } => answer(reply, self.apply_run(&name)),
            Request::Autoscale {
                process,
                enabled,
                reply,
            } => answer(reply, self.apply_autoscale(&process, enabled)),
        }
    }

    fn apply_scale(&mut self, name: &str, desired: u32) -> Result<ScaleOutcome, CommandError> {
        let max_global = self.config.global.max_process_scale;
        let Some(p) = self.processes.get_mut(name) else {
            return Err(CommandError::NotFound(format!("no process named `{name}`")));
        };
        if !p.cfg.enabled {
            return Err(CommandError::BadRequest(format!(
                "process `{name}` is disabled in the config"
            )));
        }
        if p.is_scheduled() {
            return Err(CommandError::BadRequest(format!(
                "`{name}` is scheduled: its runs are not scaled (use run)"
            )));
        }
        p.cfg
            .check_scale(desired, max_global)
            .map_err(|limit| CommandError::BadRequest(limit.message(name, desired)))?;
        let current = p.running_count();
        let previous = p.desired;
        if desired == previous {
            return Ok(ScaleOutcome::Unchanged {
                process: name.to_string(),
                current,
                desired,
            });
        }
        p.scale_events.record(previous, desired);
        tracing::info!(
            process = name,
            "scaling `{name}` from {previous} to {desired}"
        );
        p.desired = desired;
        Ok(ScaleOutcome::Scaling {
            process: name.to_string(),
            current,
            previous,
            desired,
        })
    }

    /// Finds the process a name designates, and whether it names the whole
    /// process or one of its instances.
    pub(super) fn resolve(&self, name: &str) -> Result<(Arc<str>, Selection), CommandError> {
        if let Some(p) = self.processes.get(name) {
            return Ok((Arc::clone(&p.name), Selection::Process));
        }
        if let Some((pname, n)) = phpeek_config::split_instance_name(name) {
            if let Some(p) = self.processes.get(pname) {
                if p.instances.contains_key(&n) {
                    return Ok((Arc::clone(&p.name), Selection::Instance(n)));
                }
            }
        }
        Err(CommandError::NotFound(format!(
            "no process or instance named `{name}`"
        )))
    }

    /// The instance numbers a selection covers today.
    fn numbers(&self, pname: &str, sel: Selection) -> Vec<u32> {
        match sel {
            Selection::Instance(n) => vec![n],
            Selection::Process => self
                .processes
                .get(pname)
                .map(|p| p.instances.keys().copied().collect())
                .unwrap_or_default(),
        }
    }

    fn apply_action(&mut self, name: &str, action: Action) -> Result<ActionDone, CommandError> {
        let (pname, sel) = self.resolve(name)?;
        let scheduled = self.processes.get(&pname).is_some_and(|p| p.is_scheduled());
        if scheduled && sel == Selection::Process {
            match action {
                Action::Start => self.resume_schedule(&pname),
                Action::Stop => self.suspend_schedule(&pname),
                Action::Restart => {
                    return Err(CommandError::BadRequest(format!(
                    "`{pname}` is scheduled: use run (run now), stop (suspend) or start (resume)"
                )))
                }
            }
            return Ok(ActionDone {
                process: name.to_string(),
                action,
            });
        }
        match action {
            Action::Start => self.apply_start(&pname, sel)?,
            Action::Stop => self.apply_stop(&pname, sel),
            Action::Restart => self.apply_restart(&pname, sel),
        }
        Ok(ActionDone {
            process: name.to_string(),
            action,
        })
    }

    fn apply_start(&mut self, pname: &str, sel: Selection) -> Result<(), CommandError> {
        let now = self.fx.now();
        if let Some(p) = self.processes.get_mut(pname) {
            if !p.cfg.enabled {
                return Err(CommandError::BadRequest(format!(
                    "process `{pname}` is disabled in the config"
                )));
            }
            if sel == Selection::Process && matches!(p.gate, DepGate::Failed(_)) {
                p.gate = DepGate::Waiting { since: now };
            }
            // `initial_state: stopped`: a start brings it to its scale.
            if sel == Selection::Process
                && p.desired == 0
                && p.instances.is_empty()
                && p.cfg.initial_state == phpeek_config::InitialState::Stopped
            {
                p.desired = p.cfg.scale;
                p.scale_events.record(0, p.desired);
            }
        }
        if sel == Selection::Process {
            self.rearm_failed_dependents(pname);
        }
        for n in self.numbers(pname, sel) {
            self.start_requested(pname, n);
        }
        Ok(())
    }

    /// Wants the instance running again; spawns it when it has ended.
    fn start_requested(&mut self, pname: &str, n: u32) {
        let Some(inst) = self.instance_mut(pname, n) else {
            return;
        };
        if inst.intent == Intent::Remove {
            return;
        }
        inst.intent = Intent::Run;
        if matches!(
            inst.run,
            RunState::Stopped | RunState::Exited | RunState::Failed | RunState::Completed
        ) {
            inst.attempts = 0;
            inst.timer_gen += 1;
            inst.trigger = phpeek_wire::RunTrigger::Manual;
            self.spawn_instance(pname, n);
        }
    }

    fn apply_stop(&mut self, pname: &str, sel: Selection) {
        if sel == Selection::Process {
            if let Some(p) = self.processes.get_mut(pname) {
                p.rollout = None;
            }
        }
        for n in self.numbers(pname, sel) {
            let Some(inst) = self.instance_mut(pname, n) else {
                continue;
            };
            if inst.intent == Intent::Remove {
                continue;
            }
            inst.intent = Intent::Stop;
            inst.respawn_after_exit = None;
            self.stop_instance(pname, n);
        }
    }

    fn apply_restart(&mut self, pname: &str, sel: Selection) {
        let whole = sel == Selection::Process;
        let wanted: Vec<u32> = self
            .numbers(pname, sel)
            .into_iter()
            .filter(|n| {
                self.processes
                    .get(pname)
                    .and_then(|p| p.instances.get(n))
                    // A process restart leaves instances stopped by request
                    // alone; naming a stopped instance starts it.
                    .is_some_and(|i| {
                        i.intent == Intent::Run || (!whole && i.intent == Intent::Stop)
                    })
            })
            .collect();
        if whole && wanted.len() > 1 {
            self.start_rollout(pname, wanted);
        } else {
            for n in wanted {
                self.restart_instance(pname, n);
            }
        }
    }

    /// Restarts one instance now: stop then respawn, or start if it is down.
    pub(super) fn restart_instance(&mut self, pname: &str, n: u32) {
        let Some(inst) = self.instance_mut(pname, n) else {
            return;
        };
        // An explicit restart (API or roll) moves to the current definition.
        inst.upgrade = true;
        inst.intent = Intent::Run;
        inst.attempts = 0;
        match inst.run {
            RunState::Starting => inst.respawn_after_exit = Some(RestartReason::Manual),
            RunState::Running(_) | RunState::Stopping(_) => {
                inst.respawn_after_exit = Some(RestartReason::Manual);
                self.stop_instance(pname, n);
            }
            _ => {
                inst.timer_gen += 1;
                inst.trigger = phpeek_wire::RunTrigger::Manual;
                self.respawn(pname, n, RestartReason::Manual);
            }
        }
    }
}
