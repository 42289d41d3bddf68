//! The seam between the supervisor's decisions and the operating system.
//!
//! Everything the supervisor does to the world goes through [`Effects`]:
//! starting children, signalling them, reading their output, arming
//! timers, starting probes, and reading the clock. [`OsEffects`] is the real
//! thing (the spawner threads, the child registry, the log hub, tokio
//! timers); the recording fake in `effects/fake.rs` lets the supervisor's
//! state machine be tested in-process with paused time, without a single
//! real child and without the real reaper.
//!
//! Invariants:
//! - Results of effects never come back as return values that could be
//!   reordered with other events: a spawn's result, a timer and a probe
//!   result each come back as a message on the supervisor's channel.
//! - Signals go only through the registry, which refuses pids that were
//!   already reaped (see `registry.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use phpeek_config::HealthCheck;
use tokio::sync::mpsc;

use crate::health::{start_probing, ProbeKit, Target as ProbeTarget};
use crate::logs::{LogHub, LogRing, Stream};
use crate::signaller::{Signaller, Target};
use crate::spawn::{SpawnJob, SpawnSpec, Spawned, Spawner};
use crate::supervisor::{HookReport, InstanceRef, Msg, ProbeReport, SpawnReport, Timer};
use crate::timers::Timers;
use crate::workloads::hooks::{run_hooks, HookJob, HookKit};

#[cfg(test)]
pub(crate) mod fake;

/// A running probe task; dropping the handle ends the task.
pub(crate) struct ProbeHandle(Option<tokio::task::AbortHandle>);

impl ProbeHandle {
    /// A handle that owns no task (for the fake).
    #[cfg(test)]
    pub(crate) fn detached() -> Self {
        ProbeHandle(None)
    }
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// A probe to start for one run of an instance.
pub(crate) struct ProbeStart {
    pub at: InstanceRef,
    /// The run's `spawn_gen`, carried back with every result.
    pub gen: u64,
    pub check: HealthCheck,
    pub target: ProbeTarget,
}

/// What the supervisor does to the world.
/// One sampling round of an autoscaler.
#[derive(Debug, Clone)]
pub(crate) struct SampleJob {
    pub process: Arc<str>,
    pub gen: u64,
    pub metrics: Vec<phpeek_config::AutoscaleMetric>,
    /// The process's user, group, environment and directory, for
    /// `command` metrics.
    pub base: SpawnSpec,
    /// Leaders of the running instances, for `cpu`.
    pub pids: Vec<i32>,
}

/// The values of one round, one per metric in order (an error says why).
#[derive(Debug, Clone)]
pub(crate) struct SampleReport {
    pub process: Arc<str>,
    pub gen: u64,
    pub results: Vec<Result<f64, String>>,
}

pub(crate) trait Effects {
    /// The monotonic clock, for deadlines and run lengths.
    fn now(&self) -> Instant;
    /// The wall clock, for start times shown to users.
    fn wall_clock(&self) -> SystemTime;
    /// Starts a child; the result comes back as `Msg::Spawned` for `at` and
    /// `gen`, always after any exit of that child could be reported.
    fn spawn(&mut self, at: InstanceRef, gen: u64, spec: SpawnSpec);
    /// Starts reading a new child's stdout and stderr into the log hub.
    fn attach_logs(
        &mut self,
        child: &mut Spawned,
        process: &Arc<str>,
        instance: &Arc<str>,
        ring: &Arc<LogRing>,
    );
    /// Signals a process group; false when it was not delivered.
    fn signal_group(&mut self, pgid: i32, sig: Signal) -> bool;
    /// Signals several process groups in order, as one burst: the stop
    /// signals of a shutdown or a scale-down, sent without waiting for
    /// them. The real effects hand a large burst to the signaller thread
    /// (`signaller.rs`), which checks the registry once for the whole
    /// burst, so the reaper (which reaps the first of them while the rest
    /// are still being signalled) does not take turns with the sender for
    /// each signal; every later signal and `forget_pid` waits its turn.
    fn signal_groups(&mut self, sends: Vec<(i32, Signal)>) {
        for (pgid, sig) in sends {
            self.signal_group(pgid, sig);
        }
    }
    /// Signals one process; false when it was not delivered.
    fn signal_pid(&mut self, pid: i32, sig: Signal) -> bool;
    /// Signals what is left of a group whose leader was reaped.
    fn signal_leftovers(&mut self, pgid: i32, sig: Signal);
    /// The supervisor handled the exit of `pid`: the registry may forget it.
    fn forget_pid(&mut self, pid: i32);
    /// Delivers `timer` as a message after `after`, replacing a pending
    /// timer of the same instance and kind.
    fn start_timer(&mut self, timer: Timer, after: Duration);
    /// Drops the pending timers of an instance (its leader exited).
    fn cancel_timers(&mut self, at: &InstanceRef);
    /// Starts probing one run; results come back as `Msg::Probe`.
    fn start_probe(&mut self, probe: ProbeStart) -> ProbeHandle;
    /// Drops the probe metric series of a process that left the config.
    fn forget_probe_metrics(&mut self, process: &str, kind: &'static str);
    /// Runs a list of hooks; the outcome comes back as `Msg::Hook`.
    fn run_hooks(&mut self, job: HookJob);
    /// Samples an autoscaler's metrics; the values come back as
    /// `Msg::Samples`.
    fn sample_metrics(&mut self, job: SampleJob);
    /// Gives memory the allocator holds but no longer uses back to the OS.
    fn release_memory(&mut self);
    /// Waits (bounded) for output readers to drain before the manager exits.
    fn finish(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

/// The real effects.
pub(crate) struct OsEffects {
    tx: mpsc::UnboundedSender<Msg>,
    /// Every signal to an instance, and every `forget`, in one order.
    signaller: Signaller,
    spawner: Spawner,
    logs: LogHub,
    kit: ProbeKit,
    timers: Timers,
    hooks: HookKit,
    sources: crate::autoscale::sources::SourceKit,
    /// CPU readings per autoscale metric (`process#index`): utilization
    /// needs the previous one.
    cpu: Arc<std::sync::Mutex<HashMap<String, Arc<crate::autoscale::sources::CpuTracker>>>>,
}

impl OsEffects {
    pub(crate) fn new(tx: mpsc::UnboundedSender<Msg>, kit: ProbeKit, logs: LogHub) -> Self {
        OsEffects {
            timers: Timers::start(tx.clone()),
            tx,
            signaller: Signaller::start(Arc::clone(&kit.registry)),
            spawner: kit.spawner.clone(),
            sources: crate::autoscale::sources::SourceKit::new(
                kit.spawner.clone(),
                Arc::clone(&kit.registry),
                kit.http.clone(),
            ),
            cpu: Arc::default(),
            hooks: HookKit {
                spawner: kit.spawner.clone(),
                registry: Arc::clone(&kit.registry),
                logs: logs.clone(),
            },
            logs,
            kit,
        }
    }
}

impl Effects for OsEffects {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }

    fn spawn(&mut self, at: InstanceRef, gen: u64, spec: SpawnSpec) {
        let tx = self.tx.clone();
        let job = SpawnJob {
            spec,
            done: Box::new(move |result| {
                let _ = tx.send(Msg::Spawned(SpawnReport { at, gen, result }));
            }),
        };
        if let Err(job) = self.spawner.submit(job) {
            (job.done)(Err(std::io::Error::other("spawner threads are gone")));
        }
    }

    fn attach_logs(
        &mut self,
        child: &mut Spawned,
        process: &Arc<str>,
        instance: &Arc<str>,
        ring: &Arc<LogRing>,
    ) {
        for (fd, stream) in [
            (child.stdout.take(), Stream::Stdout),
            (child.stderr.take(), Stream::Stderr),
        ] {
            let Some(fd) = fd else { continue };
            // The manager waits for all of them at once (`finish`).
            if let Err(e) = self
                .logs
                .attach(fd, stream, process, instance, Arc::clone(ring))
            {
                tracing::warn!("cannot read {} of {instance}: {e}", stream.as_str());
            }
        }
    }

    fn signal_group(&mut self, pgid: i32, sig: Signal) -> bool {
        self.signaller.send(Target::Group, pgid, sig)
    }

    fn signal_groups(&mut self, sends: Vec<(i32, Signal)>) {
        self.signaller.burst(sends);
    }

    fn signal_pid(&mut self, pid: i32, sig: Signal) -> bool {
        self.signaller.send(Target::Pid, pid, sig)
    }

    fn signal_leftovers(&mut self, pgid: i32, sig: Signal) {
        self.signaller.send_later(Target::Leftovers, pgid, sig);
    }

    fn forget_pid(&mut self, pid: i32) {
        self.signaller.forget(pid);
    }

    fn start_timer(&mut self, timer: Timer, after: Duration) {
        self.timers.arm(timer, after);
    }

    fn cancel_timers(&mut self, at: &InstanceRef) {
        self.timers.cancel(at.clone());
    }

    fn start_probe(&mut self, probe: ProbeStart) -> ProbeHandle {
        let tx = self.tx.clone();
        let ProbeStart {
            at,
            gen,
            check,
            target,
        } = probe;
        let process = Arc::clone(&at.process);
        let task = start_probing(self.kit.clone(), &check, target, process, move |result| {
            tx.send(Msg::Probe(ProbeReport {
                at: at.clone(),
                gen,
                result,
            }))
            .is_ok()
        });
        ProbeHandle(Some(task))
    }

    fn forget_probe_metrics(&mut self, process: &str, kind: &'static str) {
        self.kit.metrics.forget_process(process, kind);
    }

    fn run_hooks(&mut self, job: HookJob) {
        let kit = self.hooks.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let outcome = run_hooks(&kit, &job).await;
            let _ = tx.send(Msg::Hook(HookReport {
                owner: job.owner,
                point: job.point,
                outcome,
            }));
        });
    }

    fn sample_metrics(&mut self, job: SampleJob) {
        let kit = self.sources.clone();
        let tx = self.tx.clone();
        let trackers: Vec<Arc<crate::autoscale::sources::CpuTracker>> = {
            let mut map = self.cpu.lock().unwrap_or_else(|p| p.into_inner());
            (0..job.metrics.len())
                .map(|i| {
                    Arc::clone(
                        map.entry(format!("{}#{i}", job.process))
                            .or_insert_with(|| {
                                Arc::new(crate::autoscale::sources::CpuTracker::new())
                            }),
                    )
                })
                .collect()
        };
        tokio::spawn(async move {
            let job = Arc::new(job);
            let mut set = tokio::task::JoinSet::new();
            for (i, tracker) in trackers.into_iter().enumerate() {
                let (kit, job) = (kit.clone(), Arc::clone(&job));
                set.spawn(async move {
                    let Some(m) = job.metrics.get(i) else {
                        return (i, Err("no such metric".to_string()));
                    };
                    let ctx = crate::autoscale::sources::SampleContext {
                        base: &job.base,
                        sessions: &job.pids,
                        cpu: &tracker,
                    };
                    let r =
                        crate::autoscale::sources::sample(&kit, &m.source, &ctx, m.timeout).await;
                    (i, r.map_err(|e| e.to_string()))
                });
            }
            let mut results: Vec<Result<f64, String>> =
                vec![Err("not sampled".to_string()); job.metrics.len()];
            while let Some(done) = set.join_next().await {
                if let Ok((i, r)) = done {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = r;
                    }
                }
            }
            let _ = tx.send(Msg::Samples(SampleReport {
                process: Arc::clone(&job.process),
                gen: job.gen,
                results,
            }));
        });
    }

    fn release_memory(&mut self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free heap pages to the kernel; it
        // takes no pointers and is safe to call from any thread.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    async fn finish(&mut self) {
        // A grandchild that escaped its group may hold a pipe open forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.logs.drained()).await;
    }
}
