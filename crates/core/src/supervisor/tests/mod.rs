//! In-process tests of the supervisor's state machine, through the
//! recording fake effects and with paused tokio time. No child is spawned
//! and nothing is reaped: the rig plays the world, answering spawns with
//! made-up pids, delivering exits, firing due timers and probe results.

mod autoscaling;
mod decisions;
mod deps;
mod props;
mod reload;
mod restarts;
mod rollout;
mod scaling;
mod shutdown;
mod workloads;

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use phpeek_config::{Config, Env};
use phpeek_wire::{Health, InstanceState, ProcessState};
use tokio::sync::{oneshot, watch};

use super::messages::{Action, ActionDone, CommandError, Msg, ProbeReport, ReloadSummary};
use super::messages::{InstanceRef, Request, ScaleOutcome, SignalEvent, SpawnReport};
use super::Supervisor;
use crate::effects::fake::{Effect, FakeEffects};
use crate::health::ProbeResult;
use crate::registry::ExitStatus;
use crate::snapshot::{InstanceSnap, ProcessSnap, Snapshot};
use crate::spawn::Spawned;

pub(super) fn config(yaml: &str) -> Config {
    match phpeek_config::parse_str(yaml, "test.yaml", &Env::default()) {
        Ok(c) => c,
        Err(e) => panic!("test config does not load:\n{e}"),
    }
}

/// The supervisor with a fake world around it.
pub(super) struct Rig {
    pub sup: Supervisor<FakeEffects>,
    snap: watch::Receiver<Arc<Snapshot>>,
    next_pid: i32,
    /// How many entries of the effect log `obey` has looked at.
    obeyed: usize,
}

impl Rig {
    pub fn new(yaml: &str) -> Rig {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let mut sup = Supervisor::new(config(yaml), FakeEffects::default(), tx);
        sup.begin();
        sup.settle();
        Rig {
            sup,
            snap: rx,
            next_pid: 1000,
            obeyed: 0,
        }
    }

    /// A rig whose configured instances all run already.
    pub fn started(yaml: &str) -> Rig {
        let mut rig = Rig::new(yaml);
        rig.spawn_all();
        rig
    }

    pub fn fx(&self) -> &FakeEffects {
        &self.sup.fx
    }

    /// Handles one message as the loop would: apply, reconcile, publish.
    pub fn deliver(&mut self, msg: Msg) {
        self.sup.handle(msg);
        self.sup.settle();
    }

    /// Answers every pending spawn with a fresh pid, until none is left;
    /// returns the pids.
    pub fn spawn_all(&mut self) -> Vec<i32> {
        let mut pids = Vec::new();
        while !self.sup.fx.spawns.is_empty() {
            let pending = std::mem::take(&mut self.sup.fx.spawns);
            for s in pending {
                self.next_pid += 1;
                let pid = self.next_pid;
                self.sup.fx.alive.insert(pid);
                pids.push(pid);
                self.deliver(Msg::Spawned(SpawnReport {
                    at: s.at,
                    gen: s.gen,
                    result: Ok(Spawned {
                        pid,
                        stdout: None,
                        stderr: None,
                    }),
                }));
            }
        }
        pids
    }

    /// Answers every pending spawn with an error.
    pub fn fail_spawns(&mut self, why: &str) {
        let pending = std::mem::take(&mut self.sup.fx.spawns);
        for s in pending {
            self.deliver(Msg::Spawned(SpawnReport {
                at: s.at,
                gen: s.gen,
                result: Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    why.to_string(),
                )),
            }));
        }
    }

    /// The leader `pid` ended with `status`.
    pub fn reap(&mut self, pid: i32, status: ExitStatus) {
        self.sup.fx.alive.remove(&pid);
        self.deliver(Msg::Exited { pid, status });
    }

    /// The leader of `instance` exited with `code`.
    pub fn exit(&mut self, instance: &str, code: i32) {
        let pid = self
            .pid(instance)
            .unwrap_or_else(|| panic!("{instance} has no pid"));
        self.reap(
            pid,
            ExitStatus {
                code: Some(code),
                signal: None,
            },
        );
    }

    /// Every live child that was sent a stop signal or SIGKILL since the
    /// last call dies of it (children that obey their stop signal).
    pub fn obey(&mut self) {
        loop {
            let log = &self.sup.fx.log;
            let news: Vec<(i32, Signal)> = log[self.obeyed..]
                .iter()
                .filter_map(|e| match e {
                    Effect::SignalGroup { pid, sig } => Some((*pid, *sig)),
                    _ => None,
                })
                .collect();
            self.obeyed = log.len();
            if news.is_empty() {
                return;
            }
            for (pid, sig) in news {
                if self.sup.fx.alive.contains(&pid) && sig != Signal::SIGUSR1 {
                    self.reap(
                        pid,
                        ExitStatus {
                            code: None,
                            signal: Some(sig as i32),
                        },
                    );
                }
            }
        }
    }

    /// Obeys signals and answers spawns until nothing moves.
    pub fn converge(&mut self) {
        loop {
            let before = (self.sup.fx.log.len(), self.sup.fx.spawns.len());
            self.obey();
            self.spawn_all();
            if (self.sup.fx.log.len(), self.sup.fx.spawns.len()) == before {
                return;
            }
        }
    }

    /// Lets `d` pass, delivering every timer as it falls due, in order
    /// (time moves from one due timer to the next, as it would for real),
    /// and a tick at the end, as the loop does while a gate waits.
    pub async fn advance(&mut self, d: Duration) {
        let end = tokio::time::Instant::now().into_std() + d;
        loop {
            let next = self.sup.fx.timers.iter().map(|t| t.due).min();
            let now = tokio::time::Instant::now().into_std();
            match next {
                Some(due) if due <= end => {
                    if due > now {
                        tokio::time::advance(due - now).await;
                    }
                    let now = tokio::time::Instant::now().into_std();
                    for t in self.sup.fx.take_due(now) {
                        self.deliver(Msg::Timer(t));
                    }
                }
                _ => break,
            }
        }
        let now = tokio::time::Instant::now().into_std();
        if end > now {
            tokio::time::advance(end - now).await;
        }
        self.deliver(Msg::Tick);
    }

    fn ask<T>(
        &mut self,
        build: impl FnOnce(oneshot::Sender<Result<T, CommandError>>) -> Request,
    ) -> Result<T, CommandError> {
        let (tx, mut rx) = oneshot::channel();
        self.deliver(Msg::Request(build(tx)));
        match rx.try_recv() {
            Ok(answer) => answer,
            Err(e) => panic!("request not answered after it was handled: {e}"),
        }
    }

    pub fn scale(&mut self, process: &str, desired: u32) -> Result<ScaleOutcome, CommandError> {
        let process = process.to_string();
        self.ask(|reply| Request::Scale {
            process,
            desired,
            reply,
        })
    }

    pub fn act(&mut self, name: &str, action: Action) -> Result<ActionDone, CommandError> {
        let name = name.to_string();
        self.ask(|reply| Request::Act {
            name,
            action,
            reply,
        })
    }

    pub fn reload(&mut self, yaml: &str) -> ReloadSummary {
        let config = Box::new(config(yaml));
        match self.ask(|reply| Request::Reload { config, reply }) {
            Ok(s) => s,
            Err(e) => panic!("reload refused: {e}"),
        }
    }

    pub fn signal(&mut self, ev: SignalEvent) {
        self.deliver(Msg::Signal(ev));
    }

    pub fn terminate(&mut self) {
        self.signal(SignalEvent::Terminate(libc::SIGTERM));
    }

    /// A probe result for the current run of `instance`.
    pub fn probe(&mut self, instance: &str, ok: bool) {
        let (process, number) = phpeek_config::split_instance_name(instance)
            .unwrap_or_else(|| panic!("not an instance name: {instance}"));
        let gen = self
            .sup
            .processes
            .get(process)
            .and_then(|p| p.instances.get(&number))
            .map(|i| i.spawn_gen)
            .unwrap_or_else(|| panic!("no instance {instance}"));
        self.probe_gen(instance, gen, ok);
    }

    pub fn probe_gen(&mut self, instance: &str, gen: u64, ok: bool) {
        let (process, number) = phpeek_config::split_instance_name(instance)
            .unwrap_or_else(|| panic!("not an instance name: {instance}"));
        self.deliver(Msg::Probe(ProbeReport {
            at: InstanceRef {
                process: Arc::from(process),
                number,
            },
            gen,
            result: ProbeResult {
                ok,
                detail: if ok { "ok".into() } else { "refused".into() },
            },
        }));
    }

    pub fn snap(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snap.borrow())
    }

    pub fn process(&self, name: &str) -> ProcessSnap {
        let snap = self.snap();
        match snap.processes.iter().find(|p| &*p.name == name) {
            Some(p) => p.clone(),
            None => panic!("no process {name} in the snapshot"),
        }
    }

    pub fn instance(&self, name: &str) -> InstanceSnap {
        let snap = self.snap();
        let found = snap
            .processes
            .iter()
            .flat_map(|p| p.instances.iter())
            .find(|i| &*i.name == name)
            .cloned();
        found.unwrap_or_else(|| panic!("no instance {name} in the snapshot"))
    }

    pub fn has_instance(&self, name: &str) -> bool {
        self.snap()
            .processes
            .iter()
            .flat_map(|p| p.instances.iter())
            .any(|i| &*i.name == name)
    }

    pub fn state(&self, name: &str) -> InstanceState {
        self.instance(name).state
    }

    pub fn process_state(&self, name: &str) -> ProcessState {
        self.process(name).state
    }

    pub fn health(&self, name: &str) -> Health {
        self.instance(name).health
    }

    pub fn pid(&self, name: &str) -> Option<i32> {
        self.instance(name).pid
    }

    /// Instance names of `process`, in number order.
    pub fn names(&self, process: &str) -> Vec<String> {
        self.process(process)
            .instances
            .iter()
            .map(|i| i.name.to_string())
            .collect()
    }

    /// Instance names of `process` in state `running`.
    pub fn running(&self, process: &str) -> Vec<String> {
        self.process(process)
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .map(|i| i.name.to_string())
            .collect()
    }

    /// Spawns recorded so far for `process` (argv of each).
    pub fn spawns_of(&self, process: &str) -> Vec<(u32, Vec<String>)> {
        self.fx()
            .log
            .iter()
            .filter_map(|e| match e {
                Effect::Spawn { at, argv, .. } if &*at.process == process => {
                    Some((at.number, argv.clone()))
                }
                _ => None,
            })
            .collect()
    }

    pub fn exit_code(&self) -> Option<i32> {
        self.sup.exit_code()
    }

    /// The exit code once the loop would exit (hooks included).
    pub fn ready_to_exit(&mut self) -> Option<i32> {
        self.sup.ready_to_exit()
    }

    pub fn ask_autoscale(
        &mut self,
        process: &str,
        enabled: bool,
    ) -> Result<super::messages::AutoscaleChanged, CommandError> {
        let process = process.to_string();
        self.ask(|reply| Request::Autoscale {
            process,
            enabled,
            reply,
        })
    }

    pub fn run(&mut self, name: &str) -> Result<super::messages::RunStarted, CommandError> {
        let name = name.to_string();
        self.ask(|reply| Request::Run { name, reply })
    }

    /// Answers every pending hook list whose label starts with `label`
    /// (`global:pre_start`, `web-1:pre_stop`); returns how many.
    pub fn finish_hooks(&mut self, label: &str, ok: bool) -> usize {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sup.fx.hooks)
            .into_iter()
            .partition(|j| j.label.starts_with(label));
        self.sup.fx.hooks = rest;
        let n = mine.len();
        for job in mine {
            let result = if ok {
                phpeek_wire::RunResult::Success
            } else {
                phpeek_wire::RunResult::Failure
            };
            self.deliver(Msg::Hook(super::messages::HookReport {
                owner: job.owner,
                point: job.point,
                outcome: crate::workloads::hooks::HookOutcome {
                    ok,
                    detail: (!ok).then(|| format!("{} hook failed", job.point.as_str())),
                    attempts: vec![result],
                },
            }));
        }
        n
    }

    /// Answers every pending sampling round of `process` with `values`
    /// (one per metric); returns how many rounds were answered.
    pub fn answer_samples(&mut self, process: &str, values: &[Result<f64, &str>]) -> usize {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sup.fx.samples)
            .into_iter()
            .partition(|j| &*j.process == process);
        self.sup.fx.samples = rest;
        let n = mine.len();
        for job in mine {
            self.deliver(Msg::Samples(crate::effects::SampleReport {
                process: job.process,
                gen: job.gen,
                results: values.iter().map(|v| v.map_err(str::to_string)).collect(),
            }));
        }
        n
    }

    /// Labels of the hook lists started so far, in order.
    pub fn hook_labels(&self) -> Vec<String> {
        self.fx()
            .log
            .iter()
            .filter_map(|e| match e {
                Effect::Hooks { label, .. } => Some(label.clone()),
                _ => None,
            })
            .collect()
    }

    /// Moves the fake wall clock by `d` (a clock jump; tokio's clock stays).
    pub fn jump_wall_clock(&mut self, d: chrono::Duration) {
        self.sup.fx.wall_offset += d;
    }
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
