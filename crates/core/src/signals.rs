//! The manager's own signals, turned into messages.
//!
//! Invariants:
//! - Every handler is installed before the first child is spawned, so a
//!   PID 1 (which the kernel only signals for handled signals) gets them.
//! - SIGTERM, SIGINT and SIGQUIT shut down; a second one kills at once.
//!   SIGHUP reloads the config file (in its own task: reading and
//!   validating the file never blocks the supervisor). SIGUSR1 and SIGUSR2
//!   are forwarded to every instance.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

use crate::supervisor::{Msg, SignalEvent};
use crate::{Handle, ReloadError, StartError};

/// The installed handlers.
pub(crate) struct ManagerSignals {
    term: Signal,
    int: Signal,
    quit: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

impl ManagerSignals {
    pub(crate) fn install() -> Result<Self, StartError> {
        let sig = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|e| StartError::Signal(name, e))
        };
        Ok(ManagerSignals {
            term: sig(SignalKind::terminate(), "SIGTERM")?,
            int: sig(SignalKind::interrupt(), "SIGINT")?,
            quit: sig(SignalKind::quit(), "SIGQUIT")?,
            hup: sig(SignalKind::hangup(), "SIGHUP")?,
            usr1: sig(SignalKind::user_defined1(), "SIGUSR1")?,
            usr2: sig(SignalKind::user_defined2(), "SIGUSR2")?,
        })
    }

    /// Turns signals into messages until the supervisor is gone.
    pub(crate) async fn forward(mut self, tx: mpsc::UnboundedSender<Msg>, handle: Handle) {
        loop {
            let ev = tokio::select! {
                _ = self.term.recv() => SignalEvent::Terminate(libc::SIGTERM),
                _ = self.int.recv() => SignalEvent::Terminate(libc::SIGINT),
                _ = self.quit.recv() => SignalEvent::Terminate(libc::SIGQUIT),
                _ = self.hup.recv() => {
                    let h = handle.clone();
                    tokio::spawn(async move {
                        tracing::info!("SIGHUP received: reloading the configuration");
                        if let Err(ReloadError::Refused(e)) = h.reload().await {
                            tracing::warn!("reload refused: {e}");
                        }
                    });
                    continue;
                }
                _ = self.usr1.recv() => SignalEvent::Forward(libc::SIGUSR1),
                _ = self.usr2.recv() => SignalEvent::Forward(libc::SIGUSR2),
            };
            if tx.send(Msg::Signal(ev)).is_err() {
                return;
            }
        }
    }
}
