//! The one owner of all process state.
//!
//! Everything that wants a change (API, CLI, signals, the reaper, spawners,
//! timers) sends a [`Msg`]; the supervisor applies messages one at a time,
//! then reconciles every process towards its desired scale and publishes a
//! [`Snapshot`]. Replies to commands are sent once the change was applied.
//!
//! Invariants:
//! - An instance has a pid exactly while its leader is alive and unreaped.
//! - An instance number is reused only after its predecessor was reaped
//!   (a removed instance leaves the table only on its exit).
//! - Timers carry the instance's `timer_gen`; a stale timer is ignored.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use phpeek_config::{
    expand_instance_vars, Config, HealthCheckKind, InstanceVars, ProcessConfig, RestartPolicy,
};
use phpeek_wire::{Health, InstanceState, ProcessState, Rollout, RolloutPhase};
use tokio::sync::{mpsc, oneshot, watch};

use crate::backoff::Backoff;
use crate::health::{start_probing, ProbeKit, ProbeResult, Target as ProbeTarget};
use crate::logs::{LogHub, LogRing, Stream};
use crate::reconcile::plan_scale;
use crate::registry::{ChildRegistry, ExitStatus};
use crate::snapshot::{InstanceSnap, ProcessSnap, RestartReason, Snapshot};
use crate::spawn::{SpawnJob, SpawnSpec, Spawned, Spawner};

/// A request to the supervisor, answered once applied.
#[derive(Debug)]
pub enum Command {
    Scale {
        process: String,
        desired: u32,
    },
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    Restart {
        name: String,
    },
    /// Apply a new, already validated configuration (hot reload).
    Reload(Box<Config>),
}

/// The answer to a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Scaling {
        process: String,
        /// Running instances when the request was applied.
        current: u32,
        /// The desired scale before the request.
        previous: u32,
        desired: u32,
    },
    Unchanged {
        process: String,
        current: u32,
        desired: u32,
    },
    Done {
        process: String,
        message: String,
    },
    Reloaded(ReloadSummary),
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

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
}

/// OS signals the supervisor acts on (SIGHUP is a reload, see
/// `Handle::reload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    Terminate(i32),
    Forward(i32),
}

pub(crate) enum Msg {
    Command(Command, oneshot::Sender<Result<Outcome, CommandError>>),
    Spawned {
        process: Arc<str>,
        number: u32,
        gen: u64,
        result: std::io::Result<Spawned>,
    },
    Exited(i32, ExitStatus),
    Timer {
        process: Arc<str>,
        number: u32,
        gen: u64,
        kind: TimerKind,
    },
    Signal(SignalEvent),
    Probe {
        process: Arc<str>,
        number: u32,
        gen: u64,
        result: ProbeResult,
    },
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    BackoffDone,
    StopDeadline,
}

/// How a run ended, for the restart decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunEnd {
    /// The program exited (true: with code 0).
    Exited(bool),
    /// The program could not be started at all.
    SpawnFailed,
    /// We stopped it after failed health checks.
    HealthFailed,
}

/// What an instance is supposed to be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    Run,
    /// Stopped by request: stays listed, never restarted by policy.
    Stop,
    /// Scaled away: leaves the table once its leader exited.
    Remove,
}

struct Instance {
    number: u32,
    name: Arc<str>,
    state: InstanceState,
    intent: Intent,
    pid: Option<i32>,
    spawn_gen: u64,
    timer_gen: u64,
    started_at: Option<SystemTime>,
    started_instant: Option<Instant>,
    restarts: u64,
    restarts_by_reason: [u64; 4],
    last_exit_code: Option<i32>,
    reason: Option<String>,
    /// Consecutive restarts without a long enough run in between.
    attempts: u32,
    /// Restart reason to count when the pending respawn happens.
    pending_reason: Option<RestartReason>,
    /// A manual restart: respawn as soon as the current run exits.
    restart_after_exit: bool,
    health: Health,
    ring: Arc<LogRing>,
    probe: Option<tokio::task::AbortHandle>,
    probe_ok: u32,
    probe_fail: u32,
    /// The process definition version this instance was spawned with.
    version: u64,
    /// Spawn the next run with the current definition.
    upgrade: bool,
}

impl Instance {
    fn new(process: &str, number: u32) -> Self {
        Instance {
            number,
            name: Arc::from(format!("{process}-{number}")),
            state: InstanceState::Starting,
            intent: Intent::Run,
            pid: None,
            spawn_gen: 0,
            timer_gen: 0,
            started_at: None,
            started_instant: None,
            restarts: 0,
            restarts_by_reason: [0; 4],
            last_exit_code: None,
            reason: None,
            attempts: 0,
            pending_reason: None,
            restart_after_exit: false,
            health: Health::Unknown,
            ring: Arc::new(LogRing::default()),
            probe: None,
            probe_ok: 0,
            probe_fail: 0,
            version: 0,
            upgrade: true,
        }
    }

    /// Ends the probe task of the current run, if any.
    fn stop_probing(&mut self) {
        if let Some(p) = self.probe.take() {
            p.abort();
        }
        self.probe_ok = 0;
        self.probe_fail = 0;
    }

    /// No live leader and no spawn in flight.
    fn is_down(&self) -> bool {
        self.pid.is_none() && self.state != InstanceState::Starting
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DepGate {
    Waiting { since: Instant },
    Open,
    Failed(String),
}

struct RolloutState {
    queue: VecDeque<u32>,
    current: Option<u32>,
    state: RolloutPhase,
    reason: Option<String>,
}

struct Process {
    name: Arc<str>,
    cfg: ProcessConfig,
    desired: u32,
    instances: BTreeMap<u32, Instance>,
    gate: DepGate,
    rollout: Option<RolloutState>,
    scale_events: (u64, u64),
    /// Shutdown: the stop signal was sent to this process's instances.
    stop_begun: bool,
    /// Gone from the config by a reload: leaves once its instances are gone.
    removed: bool,
    /// Bumped when a reload changes how instances are spawned.
    version: u64,
    /// The definition before that change, for instances not rolled yet.
    previous: Option<ProcessConfig>,
}

impl Process {
    fn new(name: Arc<str>, cfg: ProcessConfig, now: Instant) -> Process {
        let gate = if cfg.depends_on.is_empty() {
            DepGate::Open
        } else {
            DepGate::Waiting { since: now }
        };
        Process {
            name,
            desired: cfg.scale,
            cfg,
            instances: BTreeMap::new(),
            gate,
            rollout: None,
            scale_events: (0, 0),
            stop_begun: false,
            removed: false,
            version: 0,
            previous: None,
        }
    }

    /// The number of instances reconciling aims at.
    fn target(&self) -> u32 {
        if self.cfg.enabled && !self.removed {
            self.desired
        } else {
            0
        }
    }
}

pub(crate) struct Supervisor {
    config: Config,
    processes: BTreeMap<Arc<str>, Process>,
    pids: HashMap<i32, (Arc<str>, u32)>,
    /// Children whose spawn was no longer wanted; their exit is ignored.
    strays: HashSet<i32>,
    tx: mpsc::UnboundedSender<Msg>,
    registry: Arc<ChildRegistry>,
    spawner: Spawner,
    logs: LogHub,
    log_tasks: Vec<tokio::task::JoinHandle<()>>,
    base_env: Vec<(OsString, OsString)>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    backoff: Backoff,
    shutting_down: bool,
    forced_kills: u64,
    orphans_reaped: u64,
    ever_started: bool,
    kit: ProbeKit,
}

/// Environment variables never passed on to children (secrets of ours).
const PRIVATE_VARS: [&str; 2] = ["PHPEEK_PM_GLOBAL_API_AUTH", "PHPEEK_PM_API_TOKEN"];

impl Supervisor {
    pub(crate) fn new(
        config: Config,
        tx: mpsc::UnboundedSender<Msg>,
        kit: ProbeKit,
        logs: LogHub,
        snapshot: watch::Sender<Arc<Snapshot>>,
    ) -> Self {
        let registry = Arc::clone(&kit.registry);
        let spawner = kit.spawner.clone();
        let now = Instant::now();
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
        let backoff = Backoff {
            initial: config.global.restart_backoff_initial,
            max: config.global.restart_backoff_max,
        };
        Supervisor {
            config,
            processes,
            pids: HashMap::new(),
            strays: HashSet::new(),
            tx,
            registry,
            spawner,
            logs,
            log_tasks: Vec::new(),
            base_env,
            snapshot,
            backoff,
            shutting_down: false,
            forced_kills: 0,
            orphans_reaped: 0,
            ever_started: false,
            kit,
        }
    }

    /// Runs until every process has ended (by itself or by shutdown).
    /// Returns the manager's exit code.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) -> i32 {
        self.reconcile();
        self.publish();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Some(code) = self.exit_code() {
                self.finish().await;
                return code;
            }
            // The tick only matters while a dependency gate has a deadline.
            let waiting = self
                .processes
                .values()
                .any(|p| matches!(p.gate, DepGate::Waiting { .. }));
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = tick.tick(), if waiting => Some(Msg::Tick),
            };
            let Some(msg) = msg else {
                self.finish().await;
                return 1;
            };
            self.handle(msg);
            let mut n = 0;
            while n < 4096 {
                match rx.try_recv() {
                    Ok(m) => self.handle(m),
                    Err(_) => break,
                }
                n += 1;
            }
            self.reconcile();
            self.publish();
        }
    }

    /// After the last instance ended: kill leftovers, let log readers drain.
    async fn finish(&mut self) {
        let tasks = std::mem::take(&mut self.log_tasks);
        let drain = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        // A grandchild that escaped its group may hold a pipe open forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Command(cmd, reply) => {
                let result = self.apply_command(cmd);
                let _ = reply.send(result);
            }
            Msg::Spawned {
                process,
                number,
                gen,
                result,
            } => self.on_spawned(&process, number, gen, result),
            Msg::Exited(pid, status) => self.on_exit(pid, status),
            Msg::Timer {
                process,
                number,
                gen,
                kind,
            } => self.on_timer(&process, number, gen, kind),
            Msg::Signal(sig) => self.on_signal(sig),
            Msg::Probe {
                process,
                number,
                gen,
                result,
            } => self.on_probe(&process, number, gen, result),
            Msg::Tick => {}
        }
    }

    // ----- commands -------------------------------------------------------

    fn apply_command(&mut self, cmd: Command) -> Result<Outcome, CommandError> {
        if self.shutting_down {
            return Err(CommandError::Conflict(
                "the manager is shutting down".into(),
            ));
        }
        match cmd {
            Command::Scale { process, desired } => self.apply_scale(&process, desired),
            Command::Start { name } => self.apply_start(&name),
            Command::Stop { name } => self.apply_stop(&name),
            Command::Restart { name } => self.apply_restart(&name),
            Command::Reload(config) => Ok(Outcome::Reloaded(self.apply_reload(*config))),
        }
    }

    fn apply_scale(&mut self, name: &str, desired: u32) -> Result<Outcome, CommandError> {
        let max_global = self.config.global.max_process_scale;
        let Some(p) = self.processes.get_mut(name) else {
            return Err(CommandError::NotFound(format!("no process named `{name}`")));
        };
        if !p.cfg.enabled {
            return Err(CommandError::BadRequest(format!(
                "process `{name}` is disabled in the config"
            )));
        }
        if let Some(max) = p.cfg.max_scale {
            if desired > max {
                return Err(CommandError::BadRequest(format!(
                    "desired {desired} is above max_scale {max} of `{name}`"
                )));
            }
        }
        if desired > max_global {
            return Err(CommandError::BadRequest(format!(
                "desired {desired} is above max_process_scale {max_global}"
            )));
        }
        if let Some(base) = p.cfg.port_base {
            if u32::from(base) + desired > u32::from(u16::MAX) {
                return Err(CommandError::BadRequest(format!(
                    "desired {desired} would give ports past 65535 (port_base {base})"
                )));
            }
        }
        let current = running_count(p);
        let previous = p.desired;
        if desired == p.desired {
            return Ok(Outcome::Unchanged {
                process: name.to_string(),
                current,
                desired,
            });
        }
        if desired > p.desired {
            p.scale_events.0 += 1;
        } else {
            p.scale_events.1 += 1;
        }
        tracing::info!(
            process = name,
            "scaling `{name}` from {} to {desired}",
            p.desired
        );
        p.desired = desired;
        Ok(Outcome::Scaling {
            process: name.to_string(),
            current,
            previous,
            desired,
        })
    }

    /// Finds the process and the instance numbers a name designates.
    fn targets(&self, name: &str) -> Result<(Arc<str>, Vec<u32>, bool), CommandError> {
        if let Some(p) = self.processes.get(name) {
            return Ok((
                Arc::clone(&p.name),
                p.instances.keys().copied().collect(),
                true,
            ));
        }
        for p in self.processes.values() {
            if let Some(i) = p.instances.values().find(|i| &*i.name == name) {
                return Ok((Arc::clone(&p.name), vec![i.number], false));
            }
        }
        Err(CommandError::NotFound(format!(
            "no process or instance named `{name}`"
        )))
    }

    fn apply_start(&mut self, name: &str) -> Result<Outcome, CommandError> {
        let (pname, numbers, whole) = self.targets(name)?;
        if let Some(p) = self.processes.get_mut(&pname) {
            if !p.cfg.enabled {
                return Err(CommandError::BadRequest(format!(
                    "process `{pname}` is disabled in the config"
                )));
            }
            if whole && matches!(p.gate, DepGate::Failed(_)) {
                p.gate = DepGate::Waiting {
                    since: Instant::now(),
                };
            }
        }
        if whole {
            self.rearm_failed_dependents(&pname);
        }
        for n in numbers {
            self.start_requested(&pname, n);
        }
        Ok(Outcome::Done {
            process: name.to_string(),
            message: "start initiated".into(),
        })
    }

    /// Processes that gave up waiting on `root` (directly or through other
    /// failed processes) wait again.
    fn rearm_failed_dependents(&mut self, root: &str) {
        let mut queue = vec![root.to_string()];
        while let Some(dep) = queue.pop() {
            for p in self.processes.values_mut() {
                if matches!(p.gate, DepGate::Failed(_)) && p.cfg.depends_on.contains(&dep) {
                    p.gate = DepGate::Waiting {
                        since: Instant::now(),
                    };
                    queue.push(p.name.to_string());
                }
            }
        }
    }

    fn start_requested(&mut self, pname: &str, n: u32) {
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let Some(inst) = p.instances.get_mut(&n) else {
            return;
        };
        if inst.intent == Intent::Remove {
            return;
        }
        inst.intent = Intent::Run;
        if inst.is_down()
            && matches!(
                inst.state,
                InstanceState::Stopped | InstanceState::Exited | InstanceState::Failed
            )
        {
            inst.attempts = 0;
            inst.timer_gen += 1;
            self.spawn_instance(pname, n);
        }
    }

    fn apply_stop(&mut self, name: &str) -> Result<Outcome, CommandError> {
        let (pname, numbers, whole) = self.targets(name)?;
        if whole {
            if let Some(p) = self.processes.get_mut(&pname) {
                p.rollout = None;
            }
        }
        for n in numbers {
            let Some(inst) = self.instance_mut(&pname, n) else {
                continue;
            };
            if inst.intent == Intent::Remove {
                continue;
            }
            inst.intent = Intent::Stop;
            inst.restart_after_exit = false;
            self.stop_instance(&pname, n);
        }
        Ok(Outcome::Done {
            process: name.to_string(),
            message: "stop initiated".into(),
        })
    }

    fn apply_restart(&mut self, name: &str) -> Result<Outcome, CommandError> {
        let (pname, numbers, whole) = self.targets(name)?;
        let live: Vec<u32> = numbers
            .iter()
            .copied()
            .filter(|n| {
                self.processes
                    .get(&pname)
                    .and_then(|p| p.instances.get(n))
                    // A process restart leaves instances stopped by request
                    // alone; naming a stopped instance starts it.
                    .is_some_and(|i| {
                        i.intent == Intent::Run || (!whole && i.intent == Intent::Stop)
                    })
            })
            .collect();
        if whole && live.len() > 1 {
            if let Some(p) = self.processes.get_mut(&pname) {
                p.rollout = Some(RolloutState {
                    queue: live.into_iter().collect(),
                    current: None,
                    state: RolloutPhase::Running,
                    reason: None,
                });
            }
            self.advance_rollout(&pname);
        } else {
            for n in live {
                self.restart_instance(&pname, n);
            }
        }
        Ok(Outcome::Done {
            process: name.to_string(),
            message: "restart initiated".into(),
        })
    }

    /// Restarts one instance now: stop then respawn, or start if it is down.
    fn restart_instance(&mut self, pname: &str, n: u32) {
        let Some(inst) = self.instance_mut(pname, n) else {
            return;
        };
        // An explicit restart (API or roll) moves to the current definition.
        inst.upgrade = true;
        inst.intent = Intent::Run;
        inst.attempts = 0;
        if inst.pid.is_some() || inst.state == InstanceState::Starting {
            inst.restart_after_exit = true;
            inst.pending_reason = Some(RestartReason::Manual);
            if inst.pid.is_some() {
                self.stop_instance(pname, n);
            }
        } else {
            inst.timer_gen += 1;
            inst.pending_reason = Some(RestartReason::Manual);
            self.respawn(pname, n);
        }
    }

    /// Moves a rolling restart on once its current instance runs again.
    fn advance_rollout(&mut self, pname: &str) {
        loop {
            let Some(p) = self.processes.get_mut(pname) else {
                return;
            };
            let Some(roll) = p.rollout.as_mut() else {
                return;
            };
            if roll.state != RolloutPhase::Running {
                return;
            }
            if let Some(cur) = roll.current {
                match p.instances.get(&cur) {
                    Some(i)
                        if i.state == InstanceState::Running
                            && !i.restart_after_exit
                            && (p.cfg.health_check.is_none() || i.health == Health::Healthy) =>
                    {
                        roll.current = None;
                    }
                    Some(i)
                        if matches!(
                            i.state,
                            InstanceState::Failed | InstanceState::Backoff | InstanceState::Exited
                        ) =>
                    {
                        roll.state = RolloutPhase::Halted;
                        roll.reason = Some(format!(
                            "{} did not come back: {}",
                            i.name,
                            i.state.as_str()
                        ));
                        tracing::warn!(process = %pname, "rolling restart of `{pname}` halted: {} did not come back", i.name);
                        return;
                    }
                    Some(_) => return,
                    None => roll.current = None,
                }
            }
            let Some(next) = roll.queue.pop_front() else {
                roll.state = RolloutPhase::Done;
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

    // ----- reload -----------------------------------------------------------

    /// Moves to a new configuration: starts added processes, stops removed
    /// ones, turns a changed `scale` into a scale request and rolls the
    /// instances of a process whose spawn-relevant settings changed.
    /// Untouched processes keep their instances and pids.
    fn apply_reload(&mut self, new: Config) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        warn_listener_changes(&self.config.global, &new.global);
        self.backoff = Backoff {
            initial: new.global.restart_backoff_initial,
            max: new.global.restart_backoff_max,
        };
        let now = Instant::now();
        for (name, cfg) in &new.processes {
            let Some(p) = self.processes.get_mut(name.as_str()) else {
                let key: Arc<str> = Arc::from(name.as_str());
                self.processes
                    .insert(Arc::clone(&key), Process::new(key, cfg.clone(), now));
                summary.added.push(name.clone());
                continue;
            };
            let old = std::mem::replace(&mut p.cfg, cfg.clone());
            let was_removed = std::mem::take(&mut p.removed);
            if old == *cfg && !was_removed {
                continue;
            }
            if old.scale != cfg.scale || was_removed {
                if cfg.scale > p.desired {
                    p.scale_events.0 += 1;
                } else if cfg.scale < p.desired {
                    p.scale_events.1 += 1;
                }
                p.desired = cfg.scale;
                summary.rescaled.push(name.clone());
            }
            if old.depends_on != cfg.depends_on
                && p.instances.is_empty()
                && !cfg.depends_on.is_empty()
            {
                p.gate = DepGate::Waiting { since: now };
            }
            let spawn_changed = old.command != cfg.command
                || old.env != cfg.env
                || old.user != cfg.user
                || old.group != cfg.group
                || old.working_dir != cfg.working_dir
                || old.port_base != cfg.port_base
                || old.stdout != cfg.stdout
                || old.stderr != cfg.stderr;
            let running: Vec<u32> = p
                .instances
                .values()
                .filter(|i| i.intent == Intent::Run && i.number <= p.target())
                .map(|i| i.number)
                .collect();
            if spawn_changed {
                p.version += 1;
                p.previous = Some(old.clone());
                // Instances outside the roll (stopped, exited, failed) take
                // the new definition whenever they start again.
                for inst in p.instances.values_mut() {
                    if !running.contains(&inst.number) {
                        inst.upgrade = true;
                    }
                }
            }
            if spawn_changed && !running.is_empty() {
                summary.restarted.push(name.clone());
                if running.len() > 1 {
                    p.rollout = Some(RolloutState {
                        queue: running.into_iter().collect(),
                        current: None,
                        state: RolloutPhase::Running,
                        reason: None,
                    });
                    self.advance_rollout(name);
                } else {
                    for n in running {
                        self.restart_instance(name, n);
                    }
                }
            } else {
                if old.health_check != cfg.health_check {
                    for n in running {
                        self.start_probe(name, n);
                    }
                }
                let beyond_scale = old
                    != ProcessConfig {
                        scale: old.scale,
                        ..cfg.clone()
                    };
                if beyond_scale {
                    summary.updated.push(name.clone());
                }
            }
        }
        for (name, p) in self.processes.iter_mut() {
            if !new.processes.contains_key(&**name) && !p.removed {
                p.removed = true;
                p.rollout = None;
                summary.removed.push(name.to_string());
            }
        }
        self.config = new;
        tracing::info!(
            "configuration reloaded: {} added, {} removed, {} rescaled, {} restarted, {} updated",
            summary.added.len(),
            summary.removed.len(),
            summary.rescaled.len(),
            summary.restarted.len(),
            summary.updated.len()
        );
        summary
    }

    // ----- spawning -------------------------------------------------------

    fn instance_mut(&mut self, pname: &str, n: u32) -> Option<&mut Instance> {
        self.processes.get_mut(pname)?.instances.get_mut(&n)
    }

    /// The definition an instance runs: the current one, except for an
    /// instance a reload has not rolled over yet, which keeps the previous
    /// one (so a halted roll leaves the old version on the old definition
    /// even when such an instance crashes and restarts).
    fn definition<'a>(p: &'a Process, inst: &Instance) -> (&'a ProcessConfig, u64) {
        match &p.previous {
            Some(prev) if inst.version < p.version && !inst.upgrade => (prev, inst.version),
            _ => (&p.cfg, p.version),
        }
    }

    fn spawn_spec(&self, p: &Process, inst: &Instance) -> SpawnSpec {
        let (cfg, _) = Self::definition(p, inst);
        let port = cfg.port_base.map(|b| u32::from(b) + inst.number);
        let vars = InstanceVars {
            process: &p.name,
            instance: &inst.name,
            number: inst.number,
            port,
        };
        let mut env = self.base_env.clone();
        for (k, v) in &cfg.env {
            env.push((k.into(), expand_instance_vars(v, &vars).into()));
        }
        env.push(("PHPEEK_PM_PROCESS_NAME".into(), p.name.to_string().into()));
        env.push(("PHPEEK_PM_INSTANCE_ID".into(), inst.name.to_string().into()));
        env.push((
            "PHPEEK_PM_INSTANCE_NUMBER".into(),
            inst.number.to_string().into(),
        ));
        if let Some(port) = port {
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

    /// Counts the pending restart and spawns again.
    fn respawn(&mut self, pname: &str, n: u32) {
        if let Some(inst) = self.instance_mut(pname, n) {
            let reason = inst.pending_reason.take().unwrap_or(RestartReason::Crash);
            inst.restarts += 1;
            if let Some(c) = inst.restarts_by_reason.get_mut(reason as usize) {
                *c += 1;
            }
        }
        self.spawn_instance(pname, n);
    }

    fn spawn_instance(&mut self, pname: &str, n: u32) {
        let Some(p) = self.processes.get(pname) else {
            return;
        };
        let Some(inst) = p.instances.get(&n) else {
            return;
        };
        let spec = self.spawn_spec(p, inst);
        let (_, version) = Self::definition(p, inst);
        let Some(inst) = self.instance_mut(pname, n) else {
            return;
        };
        inst.version = version;
        inst.upgrade = false;
        inst.spawn_gen += 1;
        inst.state = InstanceState::Starting;
        inst.reason = None;
        inst.health = Health::Unknown;
        let gen = inst.spawn_gen;
        let process: Arc<str> = Arc::from(pname);
        let tx = self.tx.clone();
        self.ever_started = true;
        let job = SpawnJob {
            spec,
            done: Box::new(move |result| {
                let _ = tx.send(Msg::Spawned {
                    process,
                    number: n,
                    gen,
                    result,
                });
            }),
        };
        if let Err(job) = self.spawner.submit(job) {
            (job.done)(Err(std::io::Error::other("spawner threads are gone")));
        }
    }

    fn on_spawned(&mut self, pname: &str, n: u32, gen: u64, result: std::io::Result<Spawned>) {
        let current = self
            .instance_mut(pname, n)
            .is_some_and(|i| i.spawn_gen == gen && i.state == InstanceState::Starting);
        if !current {
            if let Ok(child) = result {
                let _ = self.registry.signal_group(child.pid, Signal::SIGKILL);
                self.strays.insert(child.pid);
            }
            return;
        }
        match result {
            Ok(child) => {
                let pid = child.pid;
                self.pids.insert(pid, (Arc::from(pname), n));
                let format_ring = self.processes.get(pname).and_then(|p| {
                    p.instances.get(&n).map(|i| {
                        (
                            Arc::clone(&p.name),
                            Arc::clone(&i.name),
                            Arc::clone(&i.ring),
                        )
                    })
                });
                if let Some((pn, iname, ring)) = format_ring {
                    for (fd, stream) in [
                        (child.stdout, Stream::Stdout),
                        (child.stderr, Stream::Stderr),
                    ] {
                        let Some(fd) = fd else { continue };
                        match self.logs.attach(
                            fd,
                            stream,
                            Arc::clone(&pn),
                            Arc::clone(&iname),
                            Arc::clone(&ring),
                        ) {
                            Ok(task) => self.log_tasks.push(task),
                            Err(e) => {
                                tracing::warn!("cannot read {} of {iname}: {e}", stream.as_str())
                            }
                        }
                    }
                }
                self.log_tasks.retain(|t| !t.is_finished());
                let Some(inst) = self.instance_mut(pname, n) else {
                    return;
                };
                inst.pid = Some(pid);
                inst.state = InstanceState::Running;
                inst.started_at = Some(SystemTime::now());
                inst.started_instant = Some(Instant::now());
                tracing::debug!(instance = %inst.name, pid, "started");
                if inst.intent != Intent::Run || inst.restart_after_exit || self.shutting_down {
                    self.stop_instance(pname, n);
                } else {
                    self.start_probe(pname, n);
                }
            }
            Err(e) => {
                let command = self
                    .processes
                    .get(pname)
                    .map(|p| shorten(&p.cfg.command.join(" "), 200))
                    .unwrap_or_default();
                let Some(inst) = self.instance_mut(pname, n) else {
                    return;
                };
                let why = format!("cannot start `{command}`: {e}");
                tracing::error!(instance = %inst.name, "{}: {why}", inst.name);
                inst.last_exit_code = None;
                inst.started_instant = None;
                self.after_run(pname, n, RunEnd::SpawnFailed, why);
            }
        }
        self.advance_rollout(pname);
    }

    // ----- health -----------------------------------------------------------

    /// Starts probing a freshly running instance, when its process has a check.
    fn start_probe(&mut self, pname: &str, n: u32) {
        let Some(p) = self.processes.get(pname) else {
            return;
        };
        let Some(check) = p.cfg.health_check.clone() else {
            return;
        };
        let Some(inst) = p.instances.get(&n) else {
            return;
        };
        let port = p.cfg.port_base.map(|b| u32::from(b) + n);
        let vars = InstanceVars {
            process: &p.name,
            instance: &inst.name,
            number: n,
            port,
        };
        let target = match &check.kind {
            HealthCheckKind::Tcp { address } => {
                ProbeTarget::Tcp(expand_instance_vars(address, &vars))
            }
            HealthCheckKind::Http {
                url,
                expected_status,
            } => ProbeTarget::Http {
                url: expand_instance_vars(url, &vars),
                expected: *expected_status,
            },
            HealthCheckKind::Exec { command } => {
                let mut spec = self.spawn_spec(p, inst);
                spec.argv = command
                    .iter()
                    .map(|a| expand_instance_vars(a, &vars))
                    .collect();
                spec.capture_stdout = false;
                spec.capture_stderr = false;
                ProbeTarget::Exec(spec)
            }
        };
        let gen = inst.spawn_gen;
        let tx = self.tx.clone();
        let process = Arc::clone(&p.name);
        let reported = Arc::clone(&p.name);
        let handle = start_probing(self.kit.clone(), &check, target, process, move |result| {
            tx.send(Msg::Probe {
                process: Arc::clone(&reported),
                number: n,
                gen,
                result,
            })
            .is_ok()
        });
        if let Some(inst) = self.instance_mut(pname, n) {
            inst.stop_probing();
            inst.probe = Some(handle);
        }
    }

    /// Counts a probe result; restarts the instance (reason `health_check`)
    /// once consecutive failures reach the threshold.
    fn on_probe(&mut self, pname: &str, n: u32, gen: u64, result: ProbeResult) {
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let Some(check) = p.cfg.health_check.as_ref() else {
            return;
        };
        let success_threshold = check.success_threshold.max(1);
        let failure_threshold = check.failure_threshold.max(1);
        let Some(inst) = p.instances.get_mut(&n) else {
            return;
        };
        if inst.spawn_gen != gen || inst.pid.is_none() || inst.state != InstanceState::Running {
            return;
        }
        if result.ok {
            inst.probe_fail = 0;
            inst.probe_ok = inst.probe_ok.saturating_add(1);
            if inst.probe_ok >= success_threshold && inst.health != Health::Healthy {
                tracing::info!(instance = %inst.name, "{} is healthy ({})", inst.name, result.detail);
                inst.health = Health::Healthy;
            }
            self.advance_rollout(pname);
            return;
        }
        inst.probe_ok = 0;
        inst.probe_fail = inst.probe_fail.saturating_add(1);
        tracing::debug!(instance = %inst.name, "health check of {} failed: {}", inst.name, result.detail);
        if inst.probe_fail < failure_threshold || inst.intent != Intent::Run {
            return;
        }
        tracing::warn!(
            instance = %inst.name,
            "{} failed its health check {} times in a row ({}); restarting it",
            inst.name,
            inst.probe_fail,
            result.detail
        );
        inst.health = Health::Unhealthy;
        inst.reason = Some(format!("health check failed: {}", result.detail));
        inst.restart_after_exit = true;
        inst.pending_reason = Some(RestartReason::HealthCheck);
        inst.stop_probing();
        let name = Arc::clone(&inst.name);
        if let Some(roll) = p.rollout.as_mut() {
            if roll.current == Some(n) && roll.state == RolloutPhase::Running {
                roll.state = RolloutPhase::Halted;
                roll.reason = Some(format!("{name} failed its health check: {}", result.detail));
                tracing::warn!(
                    process = pname,
                    "rolling restart of `{pname}` halted: {name} failed its health check"
                );
            }
        }
        self.stop_instance(pname, n);
    }

    // ----- exits ------------------------------------------------------------

    fn on_exit(&mut self, pid: i32, status: ExitStatus) {
        self.registry.forget(pid);
        if self.strays.remove(&pid) {
            return;
        }
        let Some((pname, n)) = self.pids.remove(&pid) else {
            self.orphans_reaped += 1;
            tracing::debug!(pid, "reaped an orphan ({})", status.describe());
            return;
        };
        // The instance is its process group: leftovers go with the leader.
        let _ = self.registry.signal_leftovers(pid, Signal::SIGKILL);
        let shutting_down = self.shutting_down;
        let Some(inst) = self.instance_mut(&pname, n) else {
            return;
        };
        inst.pid = None;
        inst.stop_probing();
        inst.health = Health::Unknown;
        inst.last_exit_code = Some(status.as_code());
        let was_stopping = inst.state == InstanceState::Stopping;
        match inst.intent {
            Intent::Remove => {
                tracing::info!(instance = %inst.name, "{} stopped ({})", inst.name, status.describe());
                if let Some(p) = self.processes.get_mut(&pname) {
                    p.instances.remove(&n);
                }
            }
            Intent::Stop => {
                tracing::info!(instance = %inst.name, "{} stopped ({})", inst.name, status.describe());
                inst.state = InstanceState::Stopped;
                inst.timer_gen += 1;
            }
            Intent::Run if shutting_down => {
                tracing::info!(instance = %inst.name, "{} stopped ({})", inst.name, status.describe());
                inst.state = InstanceState::Stopped;
                inst.timer_gen += 1;
            }
            Intent::Run if inst.restart_after_exit => {
                inst.restart_after_exit = false;
                inst.timer_gen += 1;
                if inst.pending_reason == Some(RestartReason::HealthCheck) {
                    // Restarts for failed checks back off like crashes, so a
                    // slow starter with a strict check does not spin.
                    let why = inst
                        .reason
                        .clone()
                        .unwrap_or_else(|| "health check failed".into());
                    self.after_run(&pname, n, RunEnd::HealthFailed, why);
                } else {
                    tracing::info!(instance = %inst.name, "{} restarting on request", inst.name);
                    self.respawn(&pname, n);
                }
            }
            Intent::Run => {
                let level_warn = !status.success() && !was_stopping;
                if level_warn {
                    tracing::warn!(instance = %inst.name, "{} {}", inst.name, status.describe());
                } else {
                    tracing::info!(instance = %inst.name, "{} {}", inst.name, status.describe());
                }
                self.after_run(
                    &pname,
                    n,
                    RunEnd::Exited(status.success()),
                    status.describe(),
                );
            }
        }
        self.advance_rollout(&pname);
    }

    /// Applies the restart policy after a run ended on its own (or could not
    /// start at all).
    fn after_run(&mut self, pname: &str, n: u32, end: RunEnd, why: String) {
        let max_attempts = self.config.global.max_restart_attempts;
        let backoff = self.backoff;
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let policy = p.cfg.restart;
        let Some(inst) = p.instances.get_mut(&n) else {
            return;
        };
        inst.timer_gen += 1;
        let success = end == RunEnd::Exited(true);
        let spawn_failed = end == RunEnd::SpawnFailed;
        // A failed health check restarts whatever the policy: the policy
        // is about the program's own exits.
        let restart = end == RunEnd::HealthFailed
            || match policy {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !success,
                RestartPolicy::Never => false,
            };
        if !restart {
            inst.state = if spawn_failed {
                InstanceState::Failed
            } else {
                InstanceState::Exited
            };
            inst.reason = Some(why);
            return;
        }
        let ran = inst
            .started_instant
            .map(|t| t.elapsed())
            .unwrap_or_default();
        if ran >= backoff.reset_after() {
            inst.attempts = 0;
        }
        if max_attempts > 0 && inst.attempts >= max_attempts {
            inst.state = InstanceState::Failed;
            inst.reason = Some(format!("{why}; gave up after {max_attempts} restarts"));
            tracing::error!(instance = %inst.name, "{} failed: gave up after {max_attempts} restarts", inst.name);
            return;
        }
        inst.attempts += 1;
        inst.pending_reason = Some(match end {
            RunEnd::HealthFailed => RestartReason::HealthCheck,
            RunEnd::Exited(true) => RestartReason::Exit,
            RunEnd::Exited(false) | RunEnd::SpawnFailed => RestartReason::Crash,
        });
        let mut delay = backoff.delay(inst.attempts);
        if spawn_failed {
            // A command that cannot start will not start a microsecond later.
            delay = delay.max(Duration::from_secs(1));
        }
        if delay.is_zero() {
            self.respawn(pname, n);
            return;
        }
        inst.state = InstanceState::Backoff;
        inst.reason = Some(format!("{why}; restarting in {}", fmt_duration(delay)));
        let gen = inst.timer_gen;
        self.schedule(pname, n, gen, TimerKind::BackoffDone, delay);
    }

    fn schedule(&self, pname: &str, n: u32, gen: u64, kind: TimerKind, after: Duration) {
        let tx = self.tx.clone();
        let process: Arc<str> = Arc::from(pname);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(Msg::Timer {
                process,
                number: n,
                gen,
                kind,
            });
        });
    }

    fn on_timer(&mut self, pname: &str, n: u32, gen: u64, kind: TimerKind) {
        let Some(inst) = self.instance_mut(pname, n) else {
            return;
        };
        if inst.timer_gen != gen {
            return;
        }
        match kind {
            TimerKind::BackoffDone => {
                if inst.state == InstanceState::Backoff
                    && inst.intent == Intent::Run
                    && !self.shutting_down
                {
                    self.respawn(pname, n);
                }
            }
            TimerKind::StopDeadline => {
                if let (Some(pid), InstanceState::Stopping) = (inst.pid, inst.state) {
                    tracing::warn!(instance = %inst.name, "{} did not stop in time; sending SIGKILL", inst.name);
                    if self.registry.signal_group(pid, Signal::SIGKILL).is_ok() {
                        self.forced_kills += 1;
                    }
                }
            }
        }
    }

    // ----- stopping -------------------------------------------------------

    /// Sends the process's stop signal to an instance and arms the deadline.
    /// An instance that is not running is settled at once.
    fn stop_instance(&mut self, pname: &str, n: u32) {
        let default_timeout = self.config.global.shutdown_timeout;
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let sig = p.cfg.shutdown.signal;
        let timeout = p.cfg.shutdown.timeout.unwrap_or(default_timeout);
        let Some(inst) = p.instances.get_mut(&n) else {
            return;
        };
        match (inst.pid, inst.state) {
            (Some(_), InstanceState::Stopping) => {}
            (Some(pid), _) => {
                inst.state = InstanceState::Stopping;
                inst.timer_gen += 1;
                let gen = inst.timer_gen;
                let signal = Signal::try_from(sig).unwrap_or(Signal::SIGTERM);
                if let Err(e) = self.registry.signal_group(pid, signal) {
                    tracing::debug!(pid, "stop signal not delivered: {e}");
                }
                self.schedule(pname, n, gen, TimerKind::StopDeadline, timeout);
            }
            // A spawn is in flight: on_spawned stops it once it has a pid.
            (None, InstanceState::Starting) => {}
            (None, _) => {
                inst.timer_gen += 1;
                if inst.intent == Intent::Remove {
                    p.instances.remove(&n);
                } else if inst.state == InstanceState::Backoff
                    || inst.intent == Intent::Stop
                    || self.shutting_down
                {
                    inst.state = InstanceState::Stopped;
                }
            }
        }
    }

    fn on_signal(&mut self, sig: SignalEvent) {
        match sig {
            SignalEvent::Terminate(signo) => {
                let name = phpeek_config::signal_name(signo).unwrap_or("signal");
                if self.shutting_down {
                    tracing::warn!("{name} again: killing every process now");
                    self.kill_everything();
                } else {
                    tracing::info!("{name} received: shutting down");
                    self.shutting_down = true;
                    for p in self.processes.values_mut() {
                        p.rollout = None;
                    }
                }
            }
            SignalEvent::Forward(signo) => {
                let Ok(signal) = Signal::try_from(signo) else {
                    return;
                };
                for (pid, _) in self.pids.iter() {
                    let _ = self.registry.signal_pid(*pid, signal);
                }
            }
        }
    }

    fn kill_everything(&mut self) {
        for p in self.processes.values_mut() {
            p.stop_begun = true;
            for inst in p.instances.values_mut() {
                if let Some(pid) = inst.pid {
                    if self.registry.signal_group(pid, Signal::SIGKILL).is_ok() {
                        self.forced_kills += 1;
                    }
                    inst.state = InstanceState::Stopping;
                }
            }
        }
    }

    // ----- reconciling ----------------------------------------------------

    fn reconcile(&mut self) {
        if self.shutting_down {
            self.reconcile_shutdown();
            return;
        }
        let names: Vec<Arc<str>> = self.processes.keys().cloned().collect();
        for name in names {
            self.update_gate(&name);
            self.reconcile_process(&name);
        }
        let metrics = &self.kit.metrics;
        self.processes.retain(|name, p| {
            let gone = p.removed && p.instances.is_empty();
            if gone {
                if let Some(check) = &p.cfg.health_check {
                    metrics.forget_process(name, check.kind.type_name());
                }
                tracing::info!(process = %name, "`{name}` removed");
            }
            !gone
        });
    }

    /// Opens a waiting process once every dependency has all its instances
    /// running, or fails it after `dependency_timeout`.
    fn update_gate(&mut self, name: &str) {
        let Some(p) = self.processes.get(name) else {
            return;
        };
        let DepGate::Waiting { since } = p.gate else {
            return;
        };
        if p.target() == 0 {
            return;
        }
        let mut missing = Vec::new();
        for dep in &p.cfg.depends_on {
            match self.processes.get(dep.as_str()) {
                Some(d) if !d.cfg.enabled => {}
                Some(d) if dependency_ready(d) => {}
                _ => missing.push(dep.clone()),
            }
        }
        let timeout = self.config.global.dependency_timeout;
        let Some(p) = self.processes.get_mut(name) else {
            return;
        };
        if missing.is_empty() {
            tracing::info!(
                process = name,
                "dependencies of `{name}` are running; starting it"
            );
            p.gate = DepGate::Open;
        } else if since.elapsed() >= timeout {
            let why = format!(
                "dependency {} not ready after {}",
                missing.join(", "),
                fmt_duration(timeout)
            );
            tracing::error!(process = name, "`{name}` failed: {why}");
            p.gate = DepGate::Failed(why);
        }
    }

    fn reconcile_process(&mut self, name: &str) {
        let Some(p) = self.processes.get_mut(name) else {
            return;
        };
        let target = p.target();
        if target > 0 && p.gate != DepGate::Open {
            return;
        }
        let plan = plan_scale(
            p.instances
                .iter()
                .map(|(n, i)| (*n, i.intent == Intent::Remove)),
            target,
        );
        for n in &plan.start {
            p.instances.insert(*n, Instance::new(&p.name, *n));
        }
        for n in &plan.remove {
            if let Some(inst) = p.instances.get_mut(n) {
                inst.intent = Intent::Remove;
                inst.restart_after_exit = false;
            }
        }
        for n in plan.start {
            self.spawn_instance(name, n);
        }
        for n in plan.remove {
            self.stop_instance(name, n);
        }
    }

    /// Stops processes whose dependents are all down, dependents first.
    fn reconcile_shutdown(&mut self) {
        let names: Vec<Arc<str>> = self.processes.keys().cloned().collect();
        for name in names {
            let Some(p) = self.processes.get(&name) else {
                continue;
            };
            if p.stop_begun {
                continue;
            }
            let dependents_down = self.processes.values().all(|other| {
                !other.cfg.depends_on.iter().any(|d| d.as_str() == &*name)
                    || other.instances.values().all(Instance::is_down)
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

    /// Some(code) once the manager should exit.
    fn exit_code(&self) -> Option<i32> {
        let all_down = self
            .processes
            .values()
            .all(|p| p.instances.values().all(Instance::is_down));
        if self.shutting_down {
            if all_down && self.processes.values().all(|p| p.stop_begun) {
                return Some(i32::from(self.forced_kills > 0));
            }
            return None;
        }
        if !self.ever_started || !all_down {
            return None;
        }
        // Processes scaled to zero do not count as ended: something must
        // have run and ended for "nothing left to run" to hold.
        let mut failed = false;
        let mut any_ended = false;
        for p in self.processes.values().filter(|p| p.cfg.enabled) {
            match &p.gate {
                DepGate::Waiting { .. } => return None,
                DepGate::Failed(_) => {
                    failed = true;
                    any_ended = true;
                }
                DepGate::Open => {}
            }
            if (p.instances.len() as u64) < u64::from(p.desired) {
                return None;
            }
            for i in p.instances.values() {
                match i.state {
                    InstanceState::Exited => failed |= i.last_exit_code != Some(0),
                    InstanceState::Failed => failed = true,
                    _ => return None,
                }
                any_ended = true;
            }
        }
        if !any_ended {
            return None;
        }
        tracing::info!("every process has ended; exiting");
        Some(i32::from(failed))
    }

    // ----- snapshot -------------------------------------------------------

    pub(crate) fn publish(&self) {
        let processes = self
            .processes
            .values()
            .map(|p| self.process_snap(p))
            .collect();
        let snap = Snapshot {
            processes,
            shutting_down: self.shutting_down,
            orphans_reaped: self.orphans_reaped,
        };
        self.snapshot.send_replace(Arc::new(snap));
    }

    fn process_snap(&self, p: &Process) -> ProcessSnap {
        let instances: Vec<InstanceSnap> = p
            .instances
            .values()
            .map(|i| InstanceSnap {
                name: Arc::clone(&i.name),
                number: i.number,
                state: i.state,
                pid: i.pid,
                started_at: i.started_at,
                restarts: i.restarts,
                restarts_by_reason: i.restarts_by_reason,
                last_exit_code: i.last_exit_code,
                health: i.health,
                reason: i.reason.clone(),
                ring: Arc::clone(&i.ring),
            })
            .collect();
        let (state, reason) = process_state(p, &instances);
        ProcessSnap {
            name: Arc::clone(&p.name),
            desired: p.desired,
            enabled: p.cfg.enabled,
            restart: p.cfg.restart.as_str(),
            state,
            reason,
            rollout: p.rollout.as_ref().map(|r| Rollout {
                state: r.state,
                reason: r.reason.clone(),
            }),
            health_type: p.cfg.health_check.as_ref().map(|h| h.kind.type_name()),
            scale_events: p.scale_events,
            instances,
        }
    }
}

fn running_count(p: &Process) -> u32 {
    let n = p
        .instances
        .values()
        .filter(|i| i.state == InstanceState::Running)
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A dependency is ready when every wanted instance runs and, where the
/// process has a health check, is healthy.
fn dependency_ready(d: &Process) -> bool {
    let checked = d.cfg.health_check.is_some();
    d.gate == DepGate::Open
        && (1..=d.target()).all(|n| {
            d.instances.get(&n).is_some_and(|i| {
                i.state == InstanceState::Running && (!checked || i.health == Health::Healthy)
            })
        })
}

fn process_state(p: &Process, instances: &[InstanceSnap]) -> (ProcessState, Option<String>) {
    if !p.cfg.enabled {
        return (ProcessState::Disabled, None);
    }
    match &p.gate {
        DepGate::Waiting { .. } => {
            let deps = p.cfg.depends_on.join(", ");
            return (
                ProcessState::Waiting,
                Some(format!("waiting for dependencies: {deps}")),
            );
        }
        DepGate::Failed(why) => return (ProcessState::Failed, Some(why.clone())),
        DepGate::Open => {}
    }
    let count = |s: InstanceState| instances.iter().filter(|i| i.state == s).count();
    let total = instances.len();
    let running = count(InstanceState::Running);
    if total == 0 {
        return (ProcessState::Stopped, None);
    }
    if count(InstanceState::Failed) == total {
        return (ProcessState::Failed, None);
    }
    if count(InstanceState::Stopped) == total {
        return (ProcessState::Stopped, None);
    }
    if count(InstanceState::Exited) + count(InstanceState::Failed) == total {
        return (ProcessState::Exited, None);
    }
    if running == total && running as u64 == u64::from(p.desired) {
        return (ProcessState::Running, None);
    }
    (ProcessState::Degraded, None)
}

/// Listeners are bound once at startup; say so when a reload changes them.
fn warn_listener_changes(old: &phpeek_config::Global, new: &phpeek_config::Global) {
    let changed = old.api_enabled != new.api_enabled
        || old.api_host != new.api_host
        || old.api_port != new.api_port
        || old.api_auth != new.api_auth
        || old.api_socket != new.api_socket
        || old.metrics_enabled != new.metrics_enabled
        || old.metrics_host != new.metrics_host
        || old.metrics_port != new.metrics_port
        || old.metrics_path != new.metrics_path
        || old.log_format != new.log_format
        || old.log_level != new.log_level;
    if changed {
        tracing::warn!(
            "API, metrics and log settings changed in the file take effect at the next start"
        );
    }
}

/// At most `max` characters of `s`, marked when cut.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", s.get(..at).unwrap_or(s)),
        None => s.to_string(),
    }
}

fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}
