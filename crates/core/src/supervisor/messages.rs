//! What travels to the supervisor: requests from the API and CLI (each with
//! its own typed reply), and the events of the world it reacts to (spawn
//! results, exits, timers, probe results, signals).
//!
//! Invariants:
//! - Every request is answered exactly once, after its change was applied
//!   to the state (or refused); a dropped reply sender means the manager is
//!   going away.
//! - Events that concern one instance carry the generation they were
//!   started under (`spawn_gen` for spawns and probes, `timer_gen` for
//!   timers); an event whose generation is no longer current is ignored.

use std::sync::Arc;

use phpeek_config::Config;
use tokio::sync::oneshot;

use crate::health::ProbeResult;
use crate::registry::ExitStatus;
use crate::spawn::Spawned;
use crate::workloads::hooks::{HookOutcome, HookOwner, HookPoint};

/// The answer to a scale request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleOutcome {
    /// The desired scale changed.
    Scaling {
        process: String,
        /// Running instances when the request was applied.
        current: u32,
        /// The desired scale before the request.
        previous: u32,
        desired: u32,
    },
    /// The desired scale already was that.
    Unchanged {
        process: String,
        current: u32,
        desired: u32,
    },
}

/// Which lifecycle action a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
}

impl Action {
    /// The answer's message: `start initiated`, …
    pub fn initiated(self) -> &'static str {
        match self {
            Action::Start => "start initiated",
            Action::Stop => "stop initiated",
            Action::Restart => "restart initiated",
        }
    }
}

/// The answer to start, stop and restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionDone {
    /// The name as given (a process or an instance).
    pub process: String,
    pub action: Action,
}

/// The answer to a run request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStarted {
    pub process: String,
    /// The instances that run (or will, once a replaced run is gone).
    pub instances: Vec<String>,
}

/// The answer to enabling or pausing an autoscaler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoscaleChanged {
    pub process: String,
    pub enabled: bool,
    /// `active`, `manual`, `dry_run` or `error`.
    pub state: &'static str,
}

/// What a reload changed, by process name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub rescaled: Vec<String>,
    /// Processes whose instances are rolled onto the new definition.
    pub restarted: Vec<String>,
    /// Other changes applied in place (policy, timeouts, checks, limits).
    pub updated: Vec<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
}

impl CommandError {
    pub(crate) fn shutting_down() -> Self {
        CommandError::Conflict("the manager is shutting down".into())
    }
}

/// OS signals the supervisor acts on (SIGHUP is a reload, handled by
/// `signals.rs` through `Handle::reload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    /// SIGTERM, SIGINT or SIGQUIT: shut down (a second one kills).
    Terminate(i32),
    /// SIGUSR1 or SIGUSR2: passed on to every instance's leader.
    Forward(i32),
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, CommandError>>;

/// A request, with the channel its typed answer goes back on.
pub(crate) enum Request {
    Scale {
        process: String,
        desired: u32,
        reply: Reply<ScaleOutcome>,
    },
    Act {
        name: String,
        action: Action,
        reply: Reply<ActionDone>,
    },
    /// Enable or pause a process's autoscaler.
    Autoscale {
        process: String,
        enabled: bool,
        reply: Reply<AutoscaleChanged>,
    },
    /// Run a scheduled or one-shot process now.
    Run {
        name: String,
        reply: Reply<RunStarted>,
    },
    /// Apply a new, already validated configuration (hot reload).
    Reload {
        config: Box<Config>,
        reply: Reply<ReloadSummary>,
    },
}

impl Request {
    /// Answers the request with a refusal.
    pub(crate) fn refuse(self, e: CommandError) {
        match self {
            Request::Scale { reply, .. } => drop(reply.send(Err(e))),
            Request::Act { reply, .. } => drop(reply.send(Err(e))),
            Request::Reload { reply, .. } => drop(reply.send(Err(e))),
            Request::Run { reply, .. } => drop(reply.send(Err(e))),
            Request::Autoscale { reply, .. } => drop(reply.send(Err(e))),
        }
    }
}

/// One instance of one process, as events name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct InstanceRef {
    pub process: Arc<str>,
    pub number: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TimerKind {
    /// The backoff delay before a restart is over.
    BackoffDone,
    /// The stop signal's timeout is over: SIGKILL if still alive.
    StopDeadline,
    /// A one-shot or scheduled run is past its `timeout`.
    RunTimeout,
    /// A schedule's wake (armed on the process, number 0).
    ScheduleWake,
    /// An autoscaler's interval is over (armed on the process, number 0).
    AutoscaleTick,
    /// The instance a roll replaced may have been ready for
    /// `rollout.min_ready` now: look at the roll again.
    RolloutReady,
}

/// A timer that fired, for the instance's `timer_gen` it was armed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Timer {
    pub at: InstanceRef,
    pub gen: u64,
    pub kind: TimerKind,
}

/// The result of a spawn started under `spawn_gen` `gen`.
pub(crate) struct SpawnReport {
    pub at: InstanceRef,
    pub gen: u64,
    pub result: std::io::Result<Spawned>,
}

/// A probe attempt's result for the run started under `spawn_gen` `gen`.
pub(crate) struct ProbeReport {
    pub at: InstanceRef,
    pub gen: u64,
    pub result: ProbeResult,
}

pub(crate) enum Msg {
    Request(Request),
    Spawned(SpawnReport),
    Exited {
        pid: i32,
        status: ExitStatus,
    },
    Timer(Timer),
    Signal(SignalEvent),
    Probe(ProbeReport),
    /// A list of hooks ran to its end.
    Hook(HookReport),
    /// An autoscaler's samples of one round.
    Samples(crate::effects::SampleReport),
    /// Wakes the loop while a dependency gate has a deadline.
    Tick,
}

/// The result of the hooks of one point for one owner.
pub(crate) struct HookReport {
    pub owner: HookOwner,
    pub point: HookPoint,
    pub outcome: HookOutcome,
}
