//! The reaper thread: the only caller of `waitpid` in the manager, and the
//! taker of the manager's own signals (`signals.rs`).
//!
//! Invariants:
//! - SIGCHLD and the manager's signals are blocked in every thread of the
//!   manager (the binary blocks them before it starts any thread;
//!   [`signals_blocked`] checks) and this thread takes them with
//!   `sigwait`. No handler runs, so no thread is interrupted for one, and
//!   the kernel wakes this thread directly: reaping goes on while the
//!   runtime's workers are busy (a shutdown's burst of stop signals, a
//!   scale-up), instead of waiting for one of them to poll a signal
//!   driver.
//! - Every wake drains `waitpid(-1, WNOHANG)` until it finds nothing, and a
//!   SIGCHLD that lands during the drain stays pending, so the next
//!   `sigwait` returns at once: coalesced signals lose no exit, and there
//!   is no polling timer.
//! - An exit whose pid has a registered waiter (an exec probe, see
//!   `registry.rs`) goes to that waiter; every other exit, of an instance or
//!   of an orphan, goes to the supervisor as `Msg::Exited`.
//! - SIGCHLD is never set to ignored (that would make the kernel reap
//!   children itself and lose their statuses). Children start with an
//!   empty signal mask (`spawn.rs`).

use std::sync::Arc;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use tokio::sync::mpsc;

use crate::registry::ChildRegistry;
use crate::signals::{SignalSink, TAKEN};
use crate::supervisor::Msg;

/// Children reaped per batch (and per hold of the registry's write lock).
const REAP_BATCH: usize = 64;

/// SIGCHLD and every signal the manager acts on.
fn taken_set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for sig in TAKEN {
        set.add(sig);
    }
    set
}

/// Blocks SIGCHLD and the manager's signals in the calling thread. Call it
/// first thing in `main`, before any thread exists: every thread started
/// later inherits it.
pub fn block_signals() -> nix::Result<()> {
    taken_set().thread_block()
}

/// Whether the calling thread blocks every signal the reaper takes.
pub(crate) fn signals_blocked() -> bool {
    SigSet::thread_get_mask().is_ok_and(|m| taken_set().iter().all(|s| m.contains(s)))
}

/// Starts the reaper thread; it reaps until the supervisor is gone.
pub(crate) fn start(registry: Arc<ChildRegistry>, sink: SignalSink) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || run(&registry, &sink))
        .map(drop)
}

fn run(registry: &ChildRegistry, sink: &SignalSink) {
    let set = taken_set();
    // Blocked already (inherited); made sure of here, since `sigwait` on an
    // unblocked signal races with its default action.
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    let tx: &mpsc::UnboundedSender<Msg> = &sink.tx;
    loop {
        // Drain first: children may have exited before this thread ran.
        loop {
            let batch = registry.reap_batch(REAP_BATCH);
            let full = batch.len() == REAP_BATCH;
            for (pid, status) in batch {
                if registry.deliver_to_waiter(pid, status) {
                    continue;
                }
                if tx.send(Msg::Exited { pid, status }).is_err() {
                    return;
                }
            }
            if !full {
                break;
            }
        }
        if tx.is_closed() {
            return;
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(sig) => {
                if !sink.deliver(sig) {
                    return;
                }
            }
            Err(e) => {
                // sigwait fails only on an invalid set; do not spin.
                tracing::error!("cannot wait for signals: {e}");
                return;
            }
        }
    }
}
