//! Who may call `waitpid` and who may send signals.
//!
//! Invariants:
//! - Only [`ChildRegistry::reap_batch`] calls `waitpid`, and it does so under
//!   the write side of the gate. Spawning holds the read side from before
//!   `clone` until the `Spawned` message is queued to the supervisor (or an
//!   exec probe registered as the pid's waiter), so a child that dies at
//!   once is always reported *after* its spawn. A child whose set-up or
//!   `exec` failed (it writes the failed step into shared memory and exits;
//!   `CLONE_VFORK` returns only then) is collected by the spawner itself
//!   while it still holds the gate, so the reaper never sees that pid.
//! - A reaped pid stays in the `reaped` set until the supervisor has handled
//!   its exit ([`ChildRegistry::forget`]). Signals are sent under the read
//!   side and refused for pids in that set, so a pid the kernel may already
//!   have recycled is never signalled.
//! - The gate is task-fair (parking_lot): once the reaper waits for the
//!   write side, new readers wait behind it, so a burst of signals or
//!   spawns cannot hold exits back. Nobody takes the read side twice in
//!   one thread (that could deadlock behind a waiting writer).
//! - Signals go to process groups (every instance leads its own session).
//!   A group id stays allocated while any member lives, so signalling a group
//!   whose leader was reaped reaches only that instance's leftovers.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use parking_lot::{RwLock, RwLockReadGuard};

use tokio::sync::oneshot;

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code when it exited normally.
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self.code == Some(0)
    }

    /// The shell convention: the code, or 128 + the signal number.
    pub fn as_code(self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => -1,
        }
    }

    pub fn describe(self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => {
                let name = phpeek_config::signal_name(s).unwrap_or("an unknown signal");
                format!("killed by {name}")
            }
            (None, None) => "ended".to_string(),
        }
    }
}

/// killpg, unless `pgid` was reaped and its exit not yet handled (it may
/// be another process's pid by now).
fn signal_unless_reaped(reaped: &HashSet<i32>, pgid: i32, sig: Signal) -> Result<(), Errno> {
    if reaped.contains(&pgid) {
        return Err(Errno::ESRCH);
    }
    killpg(Pid::from_raw(pgid), sig)
}

#[derive(Debug, Default)]
pub struct ChildRegistry {
    reaped: RwLock<HashSet<i32>>,
    /// Short-lived children (exec probes) whose exit goes straight to a
    /// waiter instead of the supervisor.
    waiters: Mutex<HashMap<i32, oneshot::Sender<ExitStatus>>>,
}

impl ChildRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Held by a spawner from before `fork` until its result is queued.
    pub fn spawn_gate(&self) -> RwLockReadGuard<'_, HashSet<i32>> {
        self.reaped.read()
    }

    /// Sends `sig` to the process group led by `pgid`, unless that pid was
    /// reaped and its exit not yet handled.
    pub fn signal_group(&self, pgid: i32, sig: Signal) -> Result<(), Errno> {
        signal_unless_reaped(&self.spawn_gate(), pgid, sig)
    }

    /// [`Self::signal_group`] for several groups under one hold of the
    /// spawn gate; returns the sends that failed.
    pub fn signal_groups(&self, sends: &[(i32, Signal)]) -> Vec<(i32, Signal, Errno)> {
        let reaped = self.spawn_gate();
        let mut failed = Vec::new();
        for &(pgid, sig) in sends {
            if let Err(e) = signal_unless_reaped(&reaped, pgid, sig) {
                failed.push((pgid, sig, e));
            }
        }
        failed
    }

    /// Sends `sig` to one process (the leader only), under the same check.
    pub fn signal_pid(&self, pid: i32, sig: Signal) -> Result<(), Errno> {
        let reaped = self.spawn_gate();
        if reaped.contains(&pid) {
            return Err(Errno::ESRCH);
        }
        nix::sys::signal::kill(Pid::from_raw(pid), sig)
    }

    /// Sends `sig` to the group even when its leader is gone: used for
    /// leftovers of an instance whose leader exited while being stopped.
    pub fn signal_leftovers(&self, pgid: i32, sig: Signal) -> Result<(), Errno> {
        let _gate = self.spawn_gate();
        killpg(Pid::from_raw(pgid), sig)
    }

    /// Reaps up to `max` exited children (managed or orphaned).
    pub fn reap_batch(&self, max: usize) -> Vec<(i32, ExitStatus)> {
        let mut out = Vec::new();
        let mut reaped = self.reaped.write();
        while out.len() < max {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    reaped.insert(pid.as_raw());
                    out.push((
                        pid.as_raw(),
                        ExitStatus {
                            code: Some(code),
                            signal: None,
                        },
                    ));
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    reaped.insert(pid.as_raw());
                    out.push((
                        pid.as_raw(),
                        ExitStatus {
                            code: None,
                            signal: Some(sig as i32),
                        },
                    ));
                }
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        out
    }

    /// Routes the exit of `pid` to the returned receiver. Must be called
    /// while the spawn gate of that pid's spawn is still held.
    pub fn watch_exit(&self, pid: i32) -> oneshot::Receiver<ExitStatus> {
        let (tx, rx) = oneshot::channel();
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        w.insert(pid, tx);
        rx
    }

    /// Delivers an exit to its waiter, if it has one; true when delivered.
    pub fn deliver_to_waiter(&self, pid: i32, status: ExitStatus) -> bool {
        let tx = {
            let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
            w.remove(&pid)
        };
        match tx {
            Some(tx) => {
                self.forget(pid);
                let _ = tx.send(status);
                true
            }
            None => false,
        }
    }

    /// Puts `pid` in the `reaped` set as the reaper would (tests).
    #[cfg(test)]
    pub(crate) fn mark_reaped(&self, pid: i32) {
        self.reaped.write().insert(pid);
    }

    /// Whether `pid` is in the `reaped` set (tests).
    #[cfg(test)]
    pub(crate) fn is_reaped(&self, pid: i32) -> bool {
        self.reaped.read().contains(&pid)
    }

    /// The supervisor has handled this pid's exit; it may now be reused.
    pub fn forget(&self, pid: i32) {
        let mut reaped = self.reaped.write();
        reaped.remove(&pid);
    }
}
