//! From a process definition to a running instance: the spawn spec (argv,
//! environment, user, directory, captured streams), the spawn request, and
//! what its result means.
//!
//! Invariants:
//! - An instance has at most one spawn in flight (`RunState::Starting`);
//!   a result for an older `spawn_gen`, or for an instance that is no
//!   longer starting, is a stray: its child is killed and its exit ignored.
//! - A child is in `pids` from its `Spawned` message until its exit.

use std::sync::Arc;

use nix::sys::signal::Signal;
use phpeek_config::{expand_instance_vars, InstanceVars};

use super::messages::{InstanceRef, SpawnReport};
use super::model::{Instance, Intent, Live, Process, RunState};
use super::restarts::RunEnd;
use super::{Effects, Supervisor};
use crate::snapshot::RestartReason;
use crate::spawn::SpawnSpec;
use crate::workloads::hooks::HookPoint;
use crate::workloads::oneshot::OneshotEnd;

/// The per-instance variables of instance `inst` of `p`, for its definition.
pub(super) fn instance_vars<'a>(p: &'a Process, inst: &'a Instance) -> InstanceVars<'a> {
    let (cfg, _) = p.definition_for(inst);
    InstanceVars {
        process: &p.name,
        instance: &inst.name,
        number: inst.number,
        port: cfg.port_base.map(|b| u32::from(b) + inst.number),
    }
}

/// What to start for `inst`: its definition with the per-instance
/// variables expanded, on top of the manager's own environment.
pub(super) fn spawn_spec(
    base_env: &[(std::ffi::OsString, std::ffi::OsString)],
    p: &Process,
    inst: &Instance,
) -> SpawnSpec {
    let (cfg, _) = p.definition_for(inst);
    let vars = instance_vars(p, inst);
    let mut env = base_env.to_vec();
    for (k, v) in &cfg.env {
        env.push((k.into(), expand_instance_vars(v, &vars).into()));
    }
    env.push(("PHPEEK_PM_PROCESS_NAME".into(), p.name.to_string().into()));
    env.push(("PHPEEK_PM_INSTANCE_ID".into(), inst.name.to_string().into()));
    env.push((
        "PHPEEK_PM_INSTANCE_NUMBER".into(),
        inst.number.to_string().into(),
    ));
    if let Some(port) = vars.port {
        env.push(("PHPEEK_PM_INSTANCE_PORT".into(), port.to_string().into()));
    }
    SpawnSpec {
        argv: cfg
            .command
            .iter()
            .map(|a| expand_instance_vars(a, &vars))
            .collect(),
        env,
        working_dir: cfg.working_dir.clone(),
        user: cfg.user.clone(),
        group: cfg.group.clone(),
        capture_stdout: cfg.stdout,
        capture_stderr: cfg.stderr,
    }
}

impl<E: Effects> Supervisor<E> {
    /// Counts a restart for `reason` and spawns again.
    pub(super) fn respawn(&mut self, pname: &str, n: u32, reason: RestartReason) {
        if let Some(inst) = self.instance_mut(pname, n) {
            inst.restarts.count(reason);
        }
        self.spawn_instance(pname, n);
    }

    /// Asks for a new run of an instance: its `pre_start` hooks first,
    /// if any, then the spawn.
    pub(super) fn spawn_instance(&mut self, pname: &str, n: u32) {
        let Some(inst) = self.instance_mut(pname, n) else {
            return;
        };
        inst.spawn_gen += 1;
        inst.run = RunState::Starting;
        inst.reason = None;
        inst.timed_out = false;
        inst.hook = None;
        self.ever_started = true;
        if self.start_instance_hooks(pname, n, HookPoint::PreStart) {
            if let Some(inst) = self.instance_mut(pname, n) {
                inst.hook = Some(HookPoint::PreStart);
            }
            return;
        }
        self.spawn_now(pname, n);
    }

    /// Spawns the instance (its spawn generation is already current).
    pub(super) fn spawn_now(&mut self, pname: &str, n: u32) {
        let Some(p) = self.processes.get(pname) else {
            return;
        };
        let Some(inst) = p.instances.get(&n) else {
            return;
        };
        let spec = spawn_spec(&self.base_env, p, inst);
        let (_, version) = p.definition_for(inst);
        let at = InstanceRef {
            process: Arc::clone(&p.name),
            number: n,
        };
        let Some(inst) = self.instance_mut(pname, n) else {
            return;
        };
        inst.version = version;
        inst.upgrade = false;
        let gen = inst.spawn_gen;
        self.fx.spawn(at, gen, spec);
    }

    /// A run could not start (spawn error, failed `pre_start` hook).
    pub(super) fn start_failed(&mut self, pname: &str, n: u32, why: String) {
        let Some(inst) = self.instance_mut(pname, n) else {
            return;
        };
        tracing::error!(instance = %inst.name, "{}: {why}", inst.name);
        inst.last_exit_code = None;
        let kind = self
            .processes
            .get(pname)
            .map(|p| (p.cfg.is_oneshot(), p.is_scheduled()));
        match kind {
            Some((_, true)) => self.end_scheduled_run(pname, n, None, why),
            Some((true, false)) => self.after_oneshot(pname, n, OneshotEnd::SpawnFailed, why),
            _ => self.after_run(
                pname,
                n,
                RunEnd::SpawnFailed,
                std::time::Duration::ZERO,
                why,
            ),
        }
    }

    pub(super) fn on_spawned(&mut self, report: SpawnReport) {
        let SpawnReport { at, gen, result } = report;
        let pname: &str = &at.process;
        let n = at.number;
        let current = self
            .instance_mut(pname, n)
            .is_some_and(|i| i.spawn_gen == gen && matches!(i.run, RunState::Starting));
        if !current {
            if let Ok(child) = result {
                self.fx.signal_group(child.pid, Signal::SIGKILL);
                self.strays.insert(child.pid);
            }
            return;
        }
        match result {
            Ok(mut child) => {
                let pid = child.pid;
                self.pids.insert(pid, at.clone());
                let now = self.fx.now();
                let wall = self.fx.wall_clock();
                let Some(p) = self.processes.get_mut(pname) else {
                    return;
                };
                let Some(inst) = p.instances.get_mut(&n) else {
                    return;
                };
                self.fx
                    .attach_logs(&mut child, &p.name, &inst.name, &inst.ring);
                inst.run = RunState::Running(Live::new(pid, now));
                inst.started_at = Some(wall);
                tracing::debug!(instance = %inst.name, pid, "started");
                let unwanted = inst.intent != Intent::Run
                    || inst.respawn_after_exit.is_some()
                    || self.shutting_down;
                let timeout = match &p.cfg.schedule {
                    Some(s) => s.timeout,
                    None => p.cfg.timeout,
                };
                let task = p.cfg.is_oneshot() || p.is_scheduled();
                if unwanted {
                    self.stop_instance(pname, n);
                } else if task {
                    self.arm_run_timeout(pname, n, timeout);
                } else {
                    self.start_probe(pname, n);
                }
            }
            Err(e) => {
                let command = self
                    .processes
                    .get(pname)
                    .map(|p| phpeek_config::shorten(&p.cfg.command.join(" "), 201))
                    .unwrap_or_default();
                self.start_failed(pname, n, format!("cannot start `{command}`: {e}"));
            }
        }
        self.advance_rollout(pname);
    }
}
