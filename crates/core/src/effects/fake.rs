//! A recording stand-in for the operating system, for in-process tests of
//! the supervisor. Nothing is spawned, signalled or read: every effect is
//! written down for the test to inspect and to answer (by delivering the
//! `Spawned`, `Exited`, `Timer` and `Probe` messages the real world would
//! send). The clock is tokio's, so tests run with paused time.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

use super::{Effects, ProbeHandle, ProbeStart};
use crate::logs::LogRing;
use crate::spawn::{SpawnSpec, Spawned};
use crate::supervisor::{InstanceRef, Timer};
use crate::workloads::hooks::HookJob;

/// One recorded effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    Spawn {
        at: InstanceRef,
        gen: u64,
        argv: Vec<String>,
    },
    SignalGroup {
        pid: i32,
        sig: Signal,
    },
    SignalPid {
        pid: i32,
        sig: Signal,
    },
    Leftovers {
        pid: i32,
    },
    /// A burst of group signals starts (its signals follow as
    /// `SignalGroup`s).
    Burst {
        len: usize,
    },
    Probe {
        at: InstanceRef,
        gen: u64,
    },
    /// A hook list started, by label (`web-1:pre_stop`), with its commands.
    Hooks {
        label: String,
        argv: Vec<String>,
    },
}

/// A spawn the test has not answered yet.
#[derive(Debug, Clone)]
pub(crate) struct PendingSpawn {
    pub at: InstanceRef,
    pub gen: u64,
    pub spec: SpawnSpec,
}

/// An armed timer, due at `due`.
#[derive(Debug, Clone)]
pub(crate) struct ArmedTimer {
    pub due: Instant,
    pub timer: Timer,
}

pub(crate) struct FakeEffects {
    pub log: Vec<Effect>,
    pub spawns: Vec<PendingSpawn>,
    pub timers: Vec<ArmedTimer>,
    /// Pids that exist (spawned and not yet reaped): signals to others fail.
    pub alive: BTreeSet<i32>,
    /// Pids whose exit the supervisor handled.
    pub forgotten: Vec<i32>,
    /// Hook lists the test has not answered yet.
    pub hooks: Vec<HookJob>,
    /// Sampling rounds the test has not answered yet.
    pub samples: Vec<super::SampleJob>,
    /// When the fake was made: the wall clock moves with tokio's clock
    /// from [`FAKE_EPOCH`], plus `wall_offset` (a test's clock jump).
    pub started: Instant,
    pub wall_offset: chrono::Duration,
}

/// The fake wall clock's start: 2027-01-15T08:00:00Z.
pub(crate) const FAKE_EPOCH: u64 = 1_800_000_000;

impl Default for FakeEffects {
    fn default() -> Self {
        FakeEffects {
            log: Vec::new(),
            spawns: Vec::new(),
            timers: Vec::new(),
            alive: BTreeSet::new(),
            forgotten: Vec::new(),
            hooks: Vec::new(),
            samples: Vec::new(),
            started: tokio::time::Instant::now().into_std(),
            wall_offset: chrono::Duration::zero(),
        }
    }
}

impl FakeEffects {
    /// Takes the armed timers that are due at `now`, earliest first.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<Timer> {
        let (mut due, rest): (Vec<ArmedTimer>, Vec<ArmedTimer>) =
            self.timers.drain(..).partition(|t| t.due <= now);
        self.timers = rest;
        due.sort_by_key(|t| t.due);
        due.into_iter().map(|t| t.timer).collect()
    }

    /// The signals sent to `pid` (as a group or alone), in order.
    pub(crate) fn signals_to(&self, pid: i32) -> Vec<Signal> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Effect::SignalGroup { pid: p, sig } | Effect::SignalPid { pid: p, sig }
                    if *p == pid =>
                {
                    Some(*sig)
                }
                _ => None,
            })
            .collect()
    }
}

impl Effects for FakeEffects {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn wall_clock(&self) -> SystemTime {
        let base = SystemTime::UNIX_EPOCH
            + Duration::from_secs(FAKE_EPOCH)
            + self.now().saturating_duration_since(self.started);
        match self.wall_offset.to_std() {
            Ok(ahead) => base + ahead,
            Err(_) => base - (-self.wall_offset).to_std().unwrap_or_default(),
        }
    }

    fn spawn(&mut self, at: InstanceRef, gen: u64, spec: SpawnSpec) {
        self.log.push(Effect::Spawn {
            at: at.clone(),
            gen,
            argv: spec.argv.clone(),
        });
        self.spawns.push(PendingSpawn { at, gen, spec });
    }

    fn attach_logs(&mut self, _: &mut Spawned, _: &Arc<str>, _: &Arc<str>, _: &Arc<LogRing>) {}

    fn signal_group(&mut self, pid: i32, sig: Signal) -> bool {
        self.log.push(Effect::SignalGroup { pid, sig });
        self.alive.contains(&pid)
    }

    fn signal_groups(&mut self, sends: Vec<(i32, Signal)>) {
        self.log.push(Effect::Burst { len: sends.len() });
        for (pid, sig) in sends {
            self.signal_group(pid, sig);
        }
    }

    fn signal_pid(&mut self, pid: i32, sig: Signal) -> bool {
        self.log.push(Effect::SignalPid { pid, sig });
        self.alive.contains(&pid)
    }

    fn signal_leftovers(&mut self, pid: i32, _: Signal) {
        self.log.push(Effect::Leftovers { pid });
    }

    fn forget_pid(&mut self, pid: i32) {
        self.forgotten.push(pid);
    }

    fn start_timer(&mut self, timer: Timer, after: Duration) {
        let due = self.now() + after;
        self.timers
            .retain(|t| !(t.timer.at == timer.at && t.timer.kind == timer.kind));
        self.timers.push(ArmedTimer { due, timer });
    }

    fn cancel_timers(&mut self, at: &InstanceRef) {
        self.timers.retain(|t| t.timer.at != *at);
    }

    fn start_probe(&mut self, probe: ProbeStart) -> ProbeHandle {
        self.log.push(Effect::Probe {
            at: probe.at,
            gen: probe.gen,
        });
        ProbeHandle::detached()
    }

    fn forget_probe_metrics(&mut self, _: &str, _: &'static str) {}

    fn run_hooks(&mut self, job: HookJob) {
        self.log.push(Effect::Hooks {
            label: job.label.to_string(),
            argv: job.commands.iter().map(|c| c.argv.join(" ")).collect(),
        });
        self.hooks.push(job);
    }

    fn sample_metrics(&mut self, job: super::SampleJob) {
        self.samples.push(job);
    }

    fn release_memory(&mut self) {}

    async fn finish(&mut self) {}
}
