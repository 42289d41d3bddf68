//! The signaller thread: sends the supervisor's large bursts of stop
//! signals off the runtime's workers.
//!
//! A burst of a hundred stop signals keeps its sender busy for several
//! milliseconds: every signal wakes a child, the woken children take the
//! sender's CPU, and the sender waits behind them (issue 13). On a runtime
//! worker that stalled the supervisor (which could not handle the first
//! exits while the burst went on) and every API request queued on that
//! worker. Here the burst goes to this thread and the supervisor goes on.
//!
//! Invariants:
//! - One FIFO for everything the supervisor sends to its instances and for
//!   its `forget`s: a send queued before the supervisor handled a pid's
//!   exit runs before that pid leaves the registry's `reaped` set, so it
//!   is refused once the pid was reaped and never reaches a recycled pid
//!   (`registry.rs`).
//! - A send or `forget` that finds the queue empty runs at once on the
//!   caller's thread (nothing queued can run after it), and so does a small
//!   burst; a single send that finds jobs queued waits for its turn, since
//!   its caller needs the result.
//! - Only the supervisor (one task) queues jobs, so `pending` can only fall
//!   between the caller's check and its direct send.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::signal::Signal;

use crate::registry::ChildRegistry;

/// Bursts up to this long are sent by the caller itself (a scale-down by a
/// few instances gains nothing from a thread hop).
const INLINE_BURST: usize = 8;

/// What the queued work sends to, beside the bursts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The process group led by the pid.
    Group,
    /// The process itself (the leader only).
    Pid,
    /// What is left of a group whose leader was reaped.
    Leftovers,
}

enum Job {
    Burst(Vec<(i32, Signal)>),
    One(Target, i32, Signal, Option<SyncSender<bool>>),
    Forget(i32),
}

pub(crate) struct Signaller {
    registry: Arc<ChildRegistry>,
    /// None when the thread could not start: everything runs inline.
    tx: Option<Sender<Job>>,
    /// Jobs queued and not yet done.
    pending: Arc<AtomicUsize>,
}

impl Signaller {
    /// Starts the thread; without one (the OS refused) every send runs on
    /// the caller's thread, as before there was one.
    pub(crate) fn start(registry: Arc<ChildRegistry>) -> Self {
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let thread_registry = Arc::clone(&registry);
        let thread_pending = Arc::clone(&pending);
        let started = std::thread::Builder::new()
            .name("signaller".into())
            .spawn(move || run(&thread_registry, &rx, &thread_pending));
        let tx = match started {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!("cannot start the signaller thread ({e}); stop signals are sent by the supervisor itself");
                None
            }
        };
        Signaller {
            registry,
            tx,
            pending,
        }
    }

    /// True when nothing queued is left: the caller may act directly.
    fn idle(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Queues a job; hands it back when there is no thread to take it.
    fn queue(&self, job: Job) -> Result<(), Job> {
        let Some(tx) = &self.tx else {
            return Err(job);
        };
        self.pending.fetch_add(1, Ordering::AcqRel);
        match tx.send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                Err(e.0)
            }
        }
    }

    /// Sends a burst in order, without waiting for it.
    pub(crate) fn burst(&self, sends: Vec<(i32, Signal)>) {
        if sends.len() <= INLINE_BURST && self.idle() {
            send_burst(&self.registry, &sends);
            return;
        }
        if let Err(Job::Burst(sends)) = self.queue(Job::Burst(sends)) {
            send_burst(&self.registry, &sends);
        }
    }

    /// Sends one signal after everything queued; true when delivered.
    pub(crate) fn send(&self, target: Target, pid: i32, sig: Signal) -> bool {
        if !self.idle() {
            let (reply, answer) = mpsc::sync_channel(1);
            if self.queue(Job::One(target, pid, sig, Some(reply))).is_ok() {
                // The thread answers every job it takes; it is gone only
                // when the manager is (then nothing was sent).
                return answer.recv().unwrap_or(false);
            }
        }
        send_one(&self.registry, target, pid, sig)
    }

    /// Sends one signal after everything queued, without waiting.
    pub(crate) fn send_later(&self, target: Target, pid: i32, sig: Signal) {
        if self.idle() {
            send_one(&self.registry, target, pid, sig);
        } else if let Err(Job::One(target, pid, sig, _)) =
            self.queue(Job::One(target, pid, sig, None))
        {
            send_one(&self.registry, target, pid, sig);
        }
    }

    /// Lets the registry forget a reaped pid once every send queued before
    /// has run.
    pub(crate) fn forget(&self, pid: i32) {
        if self.idle() || self.queue(Job::Forget(pid)).is_err() {
            self.registry.forget(pid);
        }
    }

    /// Waits until everything queued so far was done (tests).
    #[cfg(test)]
    fn drain(&self) {
        while !self.idle() {
            std::thread::yield_now();
        }
    }
}

fn run(registry: &ChildRegistry, rx: &Receiver<Job>, pending: &AtomicUsize) {
    while let Ok(job) = rx.recv() {
        match job {
            Job::Burst(sends) => send_burst(registry, &sends),
            Job::One(target, pid, sig, reply) => {
                let sent = send_one(registry, target, pid, sig);
                if let Some(reply) = reply {
                    let _ = reply.send(sent);
                }
            }
            Job::Forget(pid) => registry.forget(pid),
        }
        pending.fetch_sub(1, Ordering::AcqRel);
    }
}

fn send_burst(registry: &ChildRegistry, sends: &[(i32, Signal)]) {
    for (pgid, sig, e) in registry.signal_groups(sends) {
        tracing::debug!(pid = pgid, "{sig} not delivered: {e}");
    }
}

fn send_one(registry: &ChildRegistry, target: Target, pid: i32, sig: Signal) -> bool {
    let result: Result<(), Errno> = match target {
        Target::Group => registry.signal_group(pid, sig),
        Target::Pid => registry.signal_pid(pid, sig),
        Target::Leftovers => registry.signal_leftovers(pid, sig),
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(pid, "{sig} not delivered: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests;
