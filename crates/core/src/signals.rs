//! The manager's own signals, turned into messages.
//!
//! Invariants:
//! - The manager takes its signals the way it takes SIGCHLD: blocked in
//!   every thread from the first line of `main` (see `reaper.rs`), and
//!   taken with `sigwait` by the reaper thread, which sends the message
//!   itself. No handler runs and no runtime thread has to wake to relay
//!   the signal: a SIGTERM reaches the supervisor in one thread hop.
//! - A blocked signal is never dropped, not even for a PID 1 with default
//!   dispositions (the kernel ignores only unblocked signals that have no
//!   handler), and one that arrives before the reaper thread runs stays
//!   pending until it does.
//! - SIGTERM, SIGINT and SIGQUIT shut down; a second one kills at once.
//!   SIGHUP reloads the config file (in its own task: reading and
//!   validating the file never blocks the supervisor or the reaper).
//!   SIGUSR1 and SIGUSR2 are forwarded to every instance that takes them.

use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use crate::supervisor::{Msg, SignalEvent};
use crate::{Handle, ReloadError};

/// The signals the manager acts on (besides SIGCHLD).
pub(crate) const TAKEN: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Where the reaper thread hands the manager's signals.
pub(crate) struct SignalSink {
    pub tx: mpsc::UnboundedSender<Msg>,
    pub handle: Handle,
    /// The runtime a reload runs on.
    pub runtime: tokio::runtime::Handle,
}

impl SignalSink {
    /// Acts on one signal; false once the supervisor is gone.
    pub(crate) fn deliver(&self, sig: Signal) -> bool {
        let ev = match sig {
            Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => {
                SignalEvent::Terminate(sig as i32)
            }
            Signal::SIGUSR1 | Signal::SIGUSR2 => SignalEvent::Forward(sig as i32),
            Signal::SIGHUP => {
                let h = self.handle.clone();
                self.runtime.spawn(async move {
                    tracing::info!("SIGHUP received: reloading the configuration");
                    if let Err(ReloadError::Refused(e)) = h.reload().await {
                        tracing::warn!("reload refused: {e}");
                    }
                });
                return !self.tx.is_closed();
            }
            _ => return !self.tx.is_closed(),
        };
        self.tx.send(Msg::Signal(ev)).is_ok()
    }
}
