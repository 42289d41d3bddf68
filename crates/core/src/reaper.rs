//! The SIGCHLD task: the only caller of `waitpid` in the manager.
//!
//! Invariants:
//! - Every wake drains `waitpid(-1, WNOHANG)` until it finds nothing, and a
//!   SIGCHLD that lands during the drain makes the next wait return at
//!   once, so coalesced signals lose no exit: there is no polling timer.
//! - An exit whose pid has a registered waiter (an exec probe, see
//!   `registry.rs`) goes to that waiter; every other exit, of an instance or
//!   of an orphan, goes to the supervisor as `Msg::Exited`.
//! - SIGCHLD is never set to ignored (that would make the kernel reap
//!   children itself and lose their statuses).

use std::sync::Arc;

use tokio::signal::unix::Signal;
use tokio::sync::mpsc;

use crate::registry::ChildRegistry;
use crate::supervisor::Msg;

/// Children reaped per batch before the reaper yields.
const REAP_BATCH: usize = 64;

/// Reaps until the supervisor is gone. `chld` must be installed before
/// the first child is spawned.
pub(crate) async fn reap_children(
    mut chld: Signal,
    registry: Arc<ChildRegistry>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    loop {
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
            tokio::task::yield_now().await;
        }
        if chld.recv().await.is_none() {
            return;
        }
    }
}
