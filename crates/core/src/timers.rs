//! The supervisor's timers: one task holding one delay queue, instead of a
//! task per timer.
//!
//! Invariants:
//! - An instance has at most one pending timer of each kind: arming again
//!   replaces the earlier one, and cancelling removes both kinds. So the
//!   pending timers are bounded by the instances, however many stops and
//!   restarts a storm of scale requests causes.
//! - A timer fires as a `Msg::Timer` on the supervisor's channel; the
//!   supervisor still checks its generation, so a timer that raced its
//!   cancellation is harmless.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::time::{delay_queue, DelayQueue};

use crate::supervisor::{InstanceRef, Msg, Timer, TimerKind};

enum TimerOp {
    Arm(Timer, Duration),
    Cancel(InstanceRef),
}

/// The sending side: cheap, never blocks.
pub(crate) struct Timers {
    tx: mpsc::UnboundedSender<TimerOp>,
}

impl Timers {
    /// Starts the timer task; fired timers go to `out`.
    pub(crate) fn start(out: mpsc::UnboundedSender<Msg>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_timers(rx, out));
        Timers { tx }
    }

    pub(crate) fn arm(&self, timer: Timer, after: Duration) {
        let _ = self.tx.send(TimerOp::Arm(timer, after));
    }

    pub(crate) fn cancel(&self, at: InstanceRef) {
        let _ = self.tx.send(TimerOp::Cancel(at));
    }
}

async fn run_timers(mut ops: mpsc::UnboundedReceiver<TimerOp>, out: mpsc::UnboundedSender<Msg>) {
    let mut queue: DelayQueue<Timer> = DelayQueue::new();
    let mut keys: HashMap<(InstanceRef, TimerKind), delay_queue::Key> = HashMap::new();
    loop {
        tokio::select! {
            op = ops.recv() => match op {
                None => return,
                Some(TimerOp::Arm(timer, after)) => {
                    let slot = (timer.at.clone(), timer.kind);
                    if let Some(old) = keys.remove(&slot) {
                        queue.try_remove(&old);
                    }
                    keys.insert(slot, queue.insert(timer, after));
                }
                Some(TimerOp::Cancel(at)) => {
                    for kind in [TimerKind::BackoffDone, TimerKind::StopDeadline] {
                        if let Some(old) = keys.remove(&(at.clone(), kind)) {
                            queue.try_remove(&old);
                        }
                    }
                    if queue.is_empty() {
                        // Give the memory of a storm back.
                        queue.compact();
                        keys.shrink_to_fit();
                    }
                }
            },
            Some(expired) = std::future::poll_fn(|cx| queue.poll_expired(cx)), if !queue.is_empty() => {
                let timer = expired.into_inner();
                keys.remove(&(timer.at.clone(), timer.kind));
                if out.send(Msg::Timer(timer)).is_err() {
                    return;
                }
            }
        }
    }
}
