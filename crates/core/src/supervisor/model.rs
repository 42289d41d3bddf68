//! The supervisor's state: processes, their instances, and the states an
//! instance can be in.
//!
//! Invariants:
//! - A pid exists only inside [`RunState::Running`] and
//!   [`RunState::Stopping`]: while the leader is alive and unreaped. The
//!   probe of a run lives in the same place, so it ends with the run.
//! - An instance number is reused only after its predecessor was reaped:
//!   an instance with [`Intent::Remove`] leaves the table only on its exit.
//! - `intent` is what the instance should do; `run` is what it does. A
//!   stop by request (`Intent::Stop`) is never undone by the restart
//!   policy, only by a start or restart request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use phpeek_config::ProcessConfig;
use phpeek_wire::{Health, InstanceState, RunTrigger};

use crate::effects::ProbeHandle;
use crate::logs::LogRing;
use crate::snapshot::{InstanceSnap, RestartCounts, RestartReason, ScaleEvents};

use super::rollout::RolloutState;
use crate::workloads::history::RunHistory;
use crate::workloads::hooks::HookPoint;
use crate::workloads::schedule::ScheduleState;

/// What an instance is supposed to be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    Run,
    /// Stopped by request: stays listed, never restarted by policy.
    Stop,
    /// Scaled away: leaves the table once its leader exited.
    Remove,
}

/// A live leader: spawned, not yet reaped.
pub(crate) struct Live {
    pub pid: i32,
    pub since: Instant,
    pub health: Health,
    /// When `health` last became healthy (rollout.min_ready counts from it).
    pub healthy_since: Option<Instant>,
    /// Aborted when dropped.
    pub probe: Option<ProbeHandle>,
    pub probe_ok: u32,
    pub probe_fail: u32,
}

impl Live {
    pub(crate) fn new(pid: i32, since: Instant) -> Self {
        Live {
            pid,
            since,
            health: Health::Unknown,
            healthy_since: None,
            probe: None,
            probe_ok: 0,
            probe_fail: 0,
        }
    }

    /// Ends the probe of this run, if any.
    pub(crate) fn stop_probing(&mut self) {
        self.probe = None;
        self.probe_ok = 0;
        self.probe_fail = 0;
    }
}

/// What an instance is doing now.
pub(crate) enum RunState {
    /// A spawn is in flight; its result comes as a `Spawned` message.
    Starting,
    Running(Live),
    /// The stop signal was sent; the deadline timer is armed.
    Stopping(Live),
    /// Waiting for the backoff timer; the restart will count `reason`.
    Backoff {
        reason: RestartReason,
    },
    /// Stopped by request or by shutdown.
    Stopped,
    /// Ended and the policy does not restart it.
    Exited,
    /// Could not start, or gave up after too many restarts (a one-shot:
    /// ended non-zero after its retries, or cut by its timeout).
    Failed,
    /// A one-shot that ended with exit code 0.
    Completed,
}

impl RunState {
    pub(crate) fn public(&self) -> InstanceState {
        match self {
            RunState::Starting => InstanceState::Starting,
            RunState::Running(_) => InstanceState::Running,
            RunState::Stopping(_) => InstanceState::Stopping,
            RunState::Backoff { .. } => InstanceState::Backoff,
            RunState::Stopped => InstanceState::Stopped,
            RunState::Exited => InstanceState::Exited,
            RunState::Failed => InstanceState::Failed,
            RunState::Completed => InstanceState::Completed,
        }
    }

    pub(crate) fn live(&self) -> Option<&Live> {
        match self {
            RunState::Running(l) | RunState::Stopping(l) => Some(l),
            _ => None,
        }
    }

    pub(crate) fn pid(&self) -> Option<i32> {
        self.live().map(|l| l.pid)
    }
}

pub(crate) struct Instance {
    pub number: u32,
    pub name: Arc<str>,
    pub run: RunState,
    pub intent: Intent,
    /// Bumped by every spawn; spawn results and probe results carry it.
    pub spawn_gen: u64,
    /// Bumped whenever pending timers become meaningless.
    pub timer_gen: u64,
    /// The current or last start, for the API.
    pub started_at: Option<SystemTime>,
    pub restarts: RestartCounts,
    pub last_exit_code: Option<i32>,
    pub reason: Option<String>,
    /// Consecutive restarts without a long enough run in between.
    pub attempts: u32,
    /// Respawn as soon as the current run exits (a manual restart or a
    /// failed health check), counting this reason.
    pub respawn_after_exit: Option<RestartReason>,
    pub ring: Arc<LogRing>,
    /// The process definition version this instance was spawned with.
    pub version: u64,
    /// Spawn the next run with the current definition.
    pub upgrade: bool,
    /// What started the current run (one-shots and scheduled runs).
    pub trigger: RunTrigger,
    /// The current run was stopped for running past its `timeout`.
    pub timed_out: bool,
    /// A hook of this run is going (`pre_start` before the spawn,
    /// `pre_stop` before the stop signal).
    pub hook: Option<HookPoint>,
}

impl Instance {
    pub(crate) fn new(process: &str, number: u32) -> Self {
        Instance {
            number,
            name: Arc::from(phpeek_config::instance_name(process, number)),
            run: RunState::Starting,
            intent: Intent::Run,
            spawn_gen: 0,
            timer_gen: 0,
            started_at: None,
            restarts: RestartCounts::default(),
            last_exit_code: None,
            reason: None,
            attempts: 0,
            respawn_after_exit: None,
            ring: Arc::new(LogRing::default()),
            version: 0,
            upgrade: true,
            trigger: RunTrigger::Start,
            timed_out: false,
            hook: None,
        }
    }

    pub(crate) fn state(&self) -> InstanceState {
        self.run.public()
    }

    /// No live leader and no spawn in flight.
    pub(crate) fn is_down(&self) -> bool {
        !matches!(
            self.run,
            RunState::Starting | RunState::Running(_) | RunState::Stopping(_)
        )
    }

    pub(crate) fn health(&self) -> Health {
        self.run.live().map_or(Health::Unknown, |l| l.health)
    }

    pub(crate) fn snap(&self) -> InstanceSnap {
        InstanceSnap {
            name: Arc::clone(&self.name),
            number: self.number,
            state: self.state(),
            pid: self.run.pid(),
            started_at: self.started_at,
            restarts: self.restarts,
            last_exit_code: self.last_exit_code,
            health: self.health(),
            reason: self.reason.clone(),
            ring: Arc::clone(&self.ring),
        }
    }
}

/// Whether a process may start its instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DepGate {
    Waiting { since: Instant },
    Open,
    Failed(String),
}

pub(crate) struct Process {
    pub name: Arc<str>,
    pub cfg: ProcessConfig,
    pub desired: u32,
    pub instances: BTreeMap<u32, Instance>,
    pub gate: DepGate,
    pub rollout: Option<RolloutState>,
    pub scale_events: ScaleEvents,
    /// Shutdown: the stop signal was sent to this process's instances.
    pub stop_begun: bool,
    /// Gone from the config by a reload: leaves once its instances are gone.
    pub removed: bool,
    /// Bumped when a reload changes how instances are spawned.
    pub version: u64,
    /// The definition before that change, for instances not rolled yet.
    pub previous: Option<ProcessConfig>,
    /// A scheduled process's timer state.
    pub schedule: Option<ScheduleState>,
    /// Finished runs of a one-shot or scheduled process.
    pub history: Arc<RunHistory>,
    /// The autoscaler, with `autoscale:`.
    pub autoscaler: Option<super::autoscaling::Autoscaler>,
}

impl Process {
    pub(crate) fn new(name: Arc<str>, cfg: ProcessConfig, now: Instant) -> Process {
        let gate = if cfg.depends_on.is_empty() {
            DepGate::Open
        } else {
            DepGate::Waiting { since: now }
        };
        let desired = match cfg.initial_state {
            phpeek_config::InitialState::Started => cfg.scale,
            phpeek_config::InitialState::Stopped => 0,
        };
        let schedule = cfg.schedule.as_ref().map(|s| {
            ScheduleState::new(
                &name,
                s,
                cfg.initial_state == phpeek_config::InitialState::Stopped,
            )
        });
        let history = cfg
            .schedule
            .as_ref()
            .map_or(phpeek_config::DEFAULT_SCHEDULE_HISTORY, |s| s.history);
        let autoscaler = cfg
            .autoscale
            .as_ref()
            .map(|a| super::autoscaling::Autoscaler::new(&name, a));
        Process {
            name,
            desired,
            cfg,
            instances: BTreeMap::new(),
            gate,
            rollout: None,
            scale_events: ScaleEvents::default(),
            stop_begun: false,
            removed: false,
            version: 0,
            previous: None,
            schedule,
            history: Arc::new(RunHistory::new(history)),
            autoscaler,
        }
    }

    pub(crate) fn is_scheduled(&self) -> bool {
        self.schedule.is_some()
    }

    /// Runs of a scheduled process going now.
    pub(crate) fn runs_going(&self) -> u32 {
        let n = self.instances.values().filter(|i| !i.is_down()).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// A new instance of this process: its log ring tracks busy/idle when
    /// `scale_down.idle` is set.
    pub(crate) fn new_instance(&self, number: u32) -> Instance {
        let mut inst = Instance::new(&self.name, number);
        if let Some(rule) = &self.cfg.scale_down.idle {
            if let Some(d) = crate::autoscale::idle::BusyDetector::new(rule) {
                inst.ring = Arc::new(LogRing::with_activity(
                    crate::autoscale::idle::Activity::new(d),
                ));
            }
        }
        inst
    }

    /// The lowest instance number not in use.
    pub(crate) fn free_number(&self) -> u32 {
        (1..)
            .find(|n| !self.instances.contains_key(n))
            .unwrap_or(u32::MAX)
    }

    /// The number of instances reconciling aims at.
    pub(crate) fn target(&self) -> u32 {
        if self.cfg.enabled && !self.removed && !self.is_scheduled() {
            self.desired
        } else {
            0
        }
    }

    pub(crate) fn running_count(&self) -> u32 {
        let n = self
            .instances
            .values()
            .filter(|i| matches!(i.run, RunState::Running(_)))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The definition an instance runs: the current one, except for an
    /// instance a reload has not rolled over yet, which keeps the previous
    /// one (so a halted roll leaves the old version on the old definition
    /// even when such an instance crashes and restarts).
    pub(crate) fn definition_for(&self, inst: &Instance) -> (&ProcessConfig, u64) {
        match &self.previous {
            Some(prev) if inst.version < self.version && !inst.upgrade => (prev, inst.version),
            _ => (&self.cfg, self.version),
        }
    }
}
