//! The one owner of all process state.
//!
//! Everything that wants a change (API, CLI, signals, the reaper, spawn
//! results, timers, probes) arrives as a [`Msg`]. The loop applies messages
//! one at a time, then reconciles every process towards its desired state
//! and publishes a [`Snapshot`]. Each message kind has its file:
//!
//! | message | file |
//! | --- | --- |
//! | scale / start / stop / restart | `commands.rs` |
//! | reload | `reload.rs` |
//! | spawn result | `spawning.rs` |
//! | exit, backoff timer | `restarts.rs` |
//! | probe result | `probes.rs` |
//! | signal, stop deadline | `shutdown.rs` |
//!
//! and reconciling calls `deps.rs` (gates), `reconcile.rs` (scale plans),
//! `rollout.rs` (rolling restarts) and `shutdown.rs` (ordered stop, exit
//! code). Decisions are pure functions in those files; what they decide is
//! applied through [`Effects`].
//!
//! Invariants:
//! - Only this task mutates state; readers see immutable snapshots.
//! - Replies to requests are sent once the change was applied.
//! - After every batch of messages, reconcile runs before the snapshot is
//!   published, so a snapshot never shows a desired scale without the
//!   instances reconciling has created for it.

mod autoscaling;
mod commands;
mod deps;
mod hooks;
mod messages;
mod model;
mod probes;
mod reload;
mod restarts;
mod rollout;
mod runs;
mod shutdown;
mod spawning;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use phpeek_config::Config;
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::effects::Effects;
use crate::snapshot::{ProcessSnap, Snapshot};

pub use messages::{
    Action, ActionDone, AutoscaleChanged, CommandError, ReloadSummary, RunStarted, ScaleOutcome,
    SignalEvent,
};
pub(crate) use messages::{
    HookReport, InstanceRef, Msg, ProbeReport, Reply, Request, SpawnReport, Timer, TimerKind,
};
use model::{DepGate, Process};

/// Messages handled per batch before reconciling and publishing.
const BATCH: usize = 64;
/// Least time between two snapshots published for routine messages only.
const PUBLISH_GAP: Duration = Duration::from_millis(2);

/// Messages nobody waits on to see their effect in the snapshot at once.
fn routine(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Spawned(_) | Msg::Exited { .. } | Msg::Probe(_) | Msg::Timer(_) | Msg::Tick
    )
}

/// Exits after which a quiet second gives freed memory back to the OS.
const TRIM_AFTER_EXITS: u32 = 64;

/// Environment variables never passed on to children (secrets of ours).
const PRIVATE_VARS: [&str; 2] = ["PHPEEK_PM_GLOBAL_API_AUTH", "PHPEEK_PM_API_TOKEN"];

pub(crate) struct Supervisor<E: Effects> {
    config: Config,
    processes: BTreeMap<Arc<str>, Process>,
    /// Live leaders, by pid.
    pids: HashMap<i32, InstanceRef>,
    /// Children whose spawn was no longer wanted; their exit is ignored.
    strays: HashSet<i32>,
    fx: E,
    base_env: Vec<(OsString, OsString)>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    backoff: Backoff,
    shutting_down: bool,
    forced_kills: u64,
    orphans_reaped: u64,
    ever_started: bool,
    /// Exits since memory was last given back.
    churn: u32,
    /// The manager-wide hooks and where they stand.
    global_hooks: hooks::GlobalHookStages,
    /// Hook lists running now (the manager exits only once none is).
    hooks_in_flight: u32,
    /// Hook attempts by process (empty: global), point and result.
    hook_counts: BTreeMap<
        (
            Arc<str>,
            crate::workloads::hooks::HookPoint,
            phpeek_wire::RunResult,
        ),
        u64,
    >,
    /// The exit code a cause other than the processes' ends decided (a
    /// one-shot with `on_failure: shutdown`, a failed global `pre_start`).
    exit_override: Option<i32>,
    /// While reconciling: stop signals decided but not yet sent.
    stop_burst: Option<Vec<(i32, nix::sys::signal::Signal)>>,
}

fn backoff_of(config: &Config) -> Backoff {
    Backoff {
        initial: config.global.restart_backoff_initial,
        max: config.global.restart_backoff_max,
    }
}

impl<E: Effects> Supervisor<E> {
    pub(crate) fn new(config: Config, fx: E, snapshot: watch::Sender<Arc<Snapshot>>) -> Self {
        let now = fx.now();
        let processes = config
            .processes
            .iter()
            .map(|(name, cfg)| {
                let name: Arc<str> = Arc::from(name.as_str());
                (Arc::clone(&name), Process::new(name, cfg.clone(), now))
            })
            .collect();
        let base_env = std::env::vars_os()
            .filter(|(k, _)| !PRIVATE_VARS.iter().any(|p| k == p))
            .collect();
        Supervisor {
            backoff: backoff_of(&config),
            config,
            processes,
            pids: HashMap::new(),
            strays: HashSet::new(),
            fx,
            base_env,
            snapshot,
            shutting_down: false,
            forced_kills: 0,
            orphans_reaped: 0,
            ever_started: false,
            churn: 0,
            global_hooks: hooks::GlobalHookStages::default(),
            hooks_in_flight: 0,
            hook_counts: BTreeMap::new(),
            exit_override: None,
            stop_burst: None,
        }
    }

    /// Runs until every process has ended (by itself or by shutdown).
    /// Returns the manager's exit code.
    /// [`Supervisor::begin`] must have run.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) -> i32 {
        self.settle();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_publish = tokio::time::Instant::now();
        let mut publish_due: Option<tokio::time::Instant> = None;
        loop {
            if let Some(code) = self.ready_to_exit() {
                if publish_due.is_some() {
                    self.publish();
                }
                self.fx.finish().await;
                return code;
            }
            // The tick only matters while a dependency gate has a deadline.
            let waiting = self.any_gate_waiting();
            // After a storm of stops, a quiet second hands the allocator's
            // freed pages back (the high-water mark would stay otherwise).
            let trim = self.churn >= TRIM_AFTER_EXITS;
            let due = publish_due.unwrap_or_else(tokio::time::Instant::now);
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = tick.tick(), if waiting => Some(Msg::Tick),
                _ = tokio::time::sleep(Duration::from_secs(1)), if trim => {
                    self.churn = 0;
                    self.fx.release_memory();
                    continue;
                }
                _ = tokio::time::sleep_until(due), if publish_due.is_some() => {
                    publish_due = None;
                    self.publish();
                    last_publish = tokio::time::Instant::now();
                    continue;
                }
            };
            let Some(msg) = msg else {
                self.fx.finish().await;
                return 1;
            };
            let mut urgent = !routine(&msg);
            self.handle(msg);
            let mut full = true;
            for _ in 0..BATCH {
                match rx.try_recv() {
                    Ok(m) => {
                        urgent |= !routine(&m);
                        self.handle(m);
                    }
                    Err(_) => {
                        full = false;
                        break;
                    }
                }
            }
            self.reconcile();
            // Spawn results and exits arrive one by one while a thousand
            // instances start or stop: publishing the whole snapshot after
            // each made that quadratic (issue 13). Such batches publish at
            // most every PUBLISH_GAP; anything a caller waits on (a request,
            // a signal) publishes at once.
            let now = tokio::time::Instant::now();
            if urgent || now >= last_publish + PUBLISH_GAP {
                self.publish();
                last_publish = now;
                publish_due = None;
            } else if publish_due.is_none() {
                publish_due = Some(last_publish + PUBLISH_GAP);
            }
            if full {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Hands one message to the file that owns it.
    pub(crate) fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Request(req) => self.apply_request(req),
            Msg::Spawned(report) => self.on_spawned(report),
            Msg::Exited { pid, status } => {
                self.churn = self.churn.saturating_add(1);
                self.on_exit(pid, status);
            }
            Msg::Timer(timer) => self.on_timer(timer),
            Msg::Signal(sig) => self.on_signal(sig),
            Msg::Probe(report) => self.on_probe(report),
            Msg::Hook(report) => self.on_hook(report),
            Msg::Samples(report) => self.on_samples(report),
            Msg::Tick => {}
        }
    }

    /// Reconciles every process, then publishes the result.
    pub(crate) fn settle(&mut self) {
        self.reconcile();
        self.publish();
    }

    /// Starts what begins with the manager: the global `pre_start` hooks
    /// (nothing else starts before they succeed) and the schedules.
    pub(crate) fn begin(&mut self) {
        self.start_global_pre_start();
        self.arm_schedules();
        self.arm_autoscalers();
    }

    /// Reconciles every process; the stop signals it decides go out
    /// together at the end, as one burst (see `Effects::signal_groups`).
    fn reconcile(&mut self) {
        self.stop_burst = Some(Vec::new());
        self.reconcile_all();
        if let Some(burst) = self.stop_burst.take() {
            if !burst.is_empty() {
                self.fx.signal_groups(burst);
            }
        }
    }

    fn reconcile_all(&mut self) {
        if self.shutting_down {
            if self.global_pre_stop_done() {
                self.reconcile_shutdown();
            }
            return;
        }
        if !self.global_hooks.started() {
            return;
        }
        let names: Vec<Arc<str>> = self.processes.keys().cloned().collect();
        for name in names {
            self.update_gate(&name);
            self.reconcile_scale(&name);
            self.start_due_runs(&name);
        }
        self.drop_removed_processes();
        self.maybe_post_start();
    }

    /// Starts the missing instance numbers and stops the extra ones.
    fn reconcile_scale(&mut self, name: &str) {
        let Some(p) = self.processes.get_mut(name) else {
            return;
        };
        if p.is_scheduled() {
            return;
        }
        let target = p.target();
        if target > 0 && p.gate != DepGate::Open {
            return;
        }
        let plan = match p.cfg.scale_down.order {
            phpeek_config::ScaleDownOrder::Highest => crate::reconcile::plan_scale(
                p.instances
                    .iter()
                    .map(|(n, i)| (*n, i.intent == model::Intent::Remove)),
                target,
            ),
            phpeek_config::ScaleDownOrder::IdleFirst => crate::reconcile::plan_scale_idle_first(
                p.instances.iter().map(|(n, i)| crate::reconcile::Held {
                    number: *n,
                    removing: i.intent == model::Intent::Remove,
                    busy: i.ring.is_busy(),
                }),
                target,
            ),
        };
        for n in &plan.start {
            let inst = p.new_instance(*n);
            p.instances.insert(*n, inst);
        }
        for n in &plan.remove {
            if let Some(inst) = p.instances.get_mut(n) {
                inst.intent = model::Intent::Remove;
                inst.respawn_after_exit = None;
            }
        }
        for n in plan.start {
            self.spawn_instance(name, n);
        }
        for n in plan.remove {
            self.stop_instance(name, n);
        }
    }

    /// Processes a reload removed leave once their last instance is gone.
    fn drop_removed_processes(&mut self) {
        let gone: Vec<Arc<str>> = self
            .processes
            .iter()
            .filter(|(_, p)| p.removed && p.instances.is_empty())
            .map(|(n, _)| Arc::clone(n))
            .collect();
        for name in gone {
            if let Some(p) = self.processes.remove(&name) {
                if let Some(check) = &p.cfg.health_check {
                    self.fx.forget_probe_metrics(&name, check.kind.type_name());
                }
                tracing::info!(process = %name, "`{name}` removed");
            }
        }
    }

    fn any_gate_waiting(&self) -> bool {
        self.processes
            .values()
            .any(|p| matches!(p.gate, DepGate::Waiting { .. }))
    }

    pub(crate) fn publish(&self) {
        let processes = self.processes.values().map(process_snap).collect();
        let hook_runs = self
            .hook_counts
            .iter()
            .map(
                |((process, point, result), count)| crate::snapshot::HookCount {
                    process: Arc::clone(process),
                    hook: point.as_str(),
                    result: result.as_str(),
                    count: *count,
                },
            )
            .collect();
        let snap = Snapshot {
            processes,
            shutting_down: self.shutting_down,
            orphans_reaped: self.orphans_reaped,
            hook_runs,
        };
        self.snapshot.send_replace(Arc::new(snap));
    }

    fn instance_mut(&mut self, pname: &str, n: u32) -> Option<&mut model::Instance> {
        self.processes.get_mut(pname)?.instances.get_mut(&n)
    }
}

fn process_snap(p: &Process) -> ProcessSnap {
    let instances: Vec<_> = p.instances.values().map(model::Instance::snap).collect();
    let gate = match &p.gate {
        DepGate::Waiting { .. } => crate::snapshot::GateView::Waiting,
        DepGate::Open => crate::snapshot::GateView::Open,
        DepGate::Failed(why) => crate::snapshot::GateView::Failed(why),
    };
    let (state, reason) = crate::snapshot::process_state(&crate::snapshot::ProcessView {
        enabled: p.cfg.enabled,
        gate,
        depends_on: &p.cfg.depends_on,
        desired: p.desired,
        instances: &instances,
        scheduled: p.is_scheduled(),
    });
    ProcessSnap {
        name: Arc::clone(&p.name),
        desired: p.desired,
        enabled: p.cfg.enabled,
        restart: p.cfg.restart,
        state,
        reason,
        rollout: p
            .rollout
            .as_ref()
            .map(|r| r.public(&p.name, p.cfg.rollout.min_ready)),
        health_type: p.cfg.health_check.as_ref().map(|h| h.kind.type_name()),
        scale_events: p.scale_events,
        kind: p.cfg.kind,
        schedule: runs::schedule_snap(p),
        autoscale: autoscaling::autoscale_snap(p),
        history: Arc::clone(&p.history),
        runs_going: runs::runs_going(p),
        instances,
    }
}
