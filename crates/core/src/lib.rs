//! The phpeek-pm supervisor.
//!
//! [`start`] wires the pieces together: signal listeners (installed before
//! the first spawn, so a PID 1 gets its signals and no exit is missed), the
//! SIGCHLD-driven reaper, the spawner threads, the log writer and the
//! [`supervisor`] task that owns all state. Callers talk to it through a
//! [`Handle`]: commands go in as messages, state comes out as snapshots.

pub mod backoff;
pub mod health;
pub mod logs;
pub mod procfs;
pub mod reconcile;
pub mod registry;
pub mod snapshot;
pub mod spawn;
pub mod supervisor;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use phpeek_config::Config;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};

pub use snapshot::{InstanceSnap, ProcessSnap, RestartReason, Snapshot, Target};
pub use supervisor::{Command, CommandError, Outcome, ReloadSummary, SignalEvent};

use registry::ChildRegistry;
use spawn::{Limits, Spawner};
use supervisor::{Msg, Supervisor};

/// Children reaped per batch before the reaper yields.
const REAP_BATCH: usize = 64;

/// A running supervisor.
pub struct Core {
    pub handle: Handle,
    done: tokio::task::JoinHandle<i32>,
    log_writer: std::thread::JoinHandle<()>,
}

/// How the rest of the program talks to the supervisor. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    config_path: Arc<PathBuf>,
    health: health::HealthMetrics,
}

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new file has errors; the running config is untouched.
    #[error("config rejected")]
    Rejected(phpeek_config::ConfigErrors),
    #[error(transparent)]
    Refused(#[from] CommandError),
}

impl Handle {
    /// The latest published state.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.borrow())
    }

    /// A receiver that wakes on every published change.
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    /// Sends a command; answers once the supervisor applied (or refused) it.
    pub async fn command(&self, cmd: Command) -> Result<Outcome, CommandError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Command(cmd, tx)).is_err() {
            return Err(CommandError::Conflict(
                "the manager is shutting down".into(),
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(CommandError::Conflict(
                "the manager is shutting down".into(),
            ))
        })
    }

    /// Probe counters for the metrics endpoint.
    pub fn health_metrics(&self) -> &health::HealthMetrics {
        &self.health
    }

    /// Re-reads the config file the manager started from and applies it.
    /// A file with errors changes nothing; every error is logged.
    pub async fn reload(&self) -> Result<ReloadSummary, ReloadError> {
        let path = Arc::clone(&self.config_path);
        let loaded = tokio::task::spawn_blocking(move || {
            let env = phpeek_config::Env::from_process();
            phpeek_config::load_file(&path, &env)
        })
        .await
        .map_err(|_| CommandError::Conflict("the reload task failed".into()))?;
        // An empty file is far more likely a truncated write than a wish to
        // stop everything.
        let loaded = loaded.and_then(|c| {
            if c.processes.is_empty() && !self.snapshot().processes.is_empty() {
                Err(phpeek_config::ConfigErrors::single(
                    self.config_path.display().to_string(),
                    "the new file defines no processes; refusing to stop everything \
                     (scale processes to 0 or remove them one by one)",
                ))
            } else {
                Ok(c)
            }
        });
        let config = match loaded {
            Ok(c) => c,
            Err(errors) => {
                tracing::error!(
                    "reload rejected: {} has {} error(s); the running configuration stays",
                    self.config_path.display(),
                    errors.errors.len()
                );
                for line in errors.to_string().lines() {
                    tracing::error!("{line}");
                }
                return Err(ReloadError::Rejected(errors));
            }
        };
        match self.command(Command::Reload(Box::new(config))).await? {
            Outcome::Reloaded(summary) => Ok(summary),
            _ => Ok(ReloadSummary::default()),
        }
    }

    /// Delivers a signal event as if the OS had sent it.
    pub fn signal(&self, ev: SignalEvent) {
        let _ = self.tx.send(Msg::Signal(ev));
    }
}

/// Errors that keep the supervisor from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot install the {0} handler: {1}")]
    Signal(&'static str, std::io::Error),
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
}

/// Starts supervising `config`, read from `config_path` (re-read on
/// reload). Must be called inside a tokio runtime.
pub fn start(config: Config, config_path: PathBuf) -> Result<Core, StartError> {
    // Listeners first: before any child exists, and (as PID 1) before any
    // signal could arrive with no handler to make the kernel deliver it.
    let mut chld = signal(SignalKind::child()).map_err(|e| StartError::Signal("SIGCHLD", e))?;
    let sig = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|e| StartError::Signal(name, e))
    };
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let mut quit = sig(SignalKind::quit(), "SIGQUIT")?;
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;
    let mut usr1 = sig(SignalKind::user_defined1(), "SIGUSR1")?;
    let mut usr2 = sig(SignalKind::user_defined2(), "SIGUSR2")?;

    if std::process::id() != 1 {
        // Orphans of our children come to us, as they would to a PID 1.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::debug!("cannot become a child subreaper: {e}");
        }
    }
    let limits = Limits::raise_nofile();
    let registry = Arc::new(ChildRegistry::new());
    let spawner = Spawner::start(Arc::clone(&registry), limits, 4)
        .map_err(|e| StartError::Thread("spawner", e))?;
    let (logs, log_writer) = logs::LogHub::start(config.global.log_format)
        .map_err(|e| StartError::Thread("log writer", e))?;

    let (tx, rx) = mpsc::unbounded_channel();
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));

    let reaper_tx = tx.clone();
    let reaper_registry = Arc::clone(&registry);
    tokio::spawn(async move {
        loop {
            loop {
                let batch = reaper_registry.reap_batch(REAP_BATCH);
                let full = batch.len() == REAP_BATCH;
                for (pid, status) in batch {
                    if reaper_registry.deliver_to_waiter(pid, status) {
                        continue;
                    }
                    if reaper_tx.send(Msg::Exited(pid, status)).is_err() {
                        return;
                    }
                }
                if !full {
                    break;
                }
                tokio::task::yield_now().await;
            }
            // Every wake drains until waitpid finds nothing, and a SIGCHLD
            // that lands during the drain makes the next recv return at
            // once, so coalesced signals lose no exit: no polling timer.
            if chld.recv().await.is_none() {
                return;
            }
        }
    });

    let kit = health::ProbeKit::new(spawner, Arc::clone(&registry));
    let handle = Handle {
        tx: tx.clone(),
        snapshot: snap_rx,
        config_path: Arc::new(config_path),
        health: kit.metrics.clone(),
    };
    let sig_tx = tx.clone();
    let sig_handle = handle.clone();
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                _ = term.recv() => SignalEvent::Terminate(libc::SIGTERM),
                _ = int.recv() => SignalEvent::Terminate(libc::SIGINT),
                _ = quit.recv() => SignalEvent::Terminate(libc::SIGQUIT),
                _ = hup.recv() => {
                    let h = sig_handle.clone();
                    tokio::spawn(async move {
                        tracing::info!("SIGHUP received: reloading the configuration");
                        if let Err(ReloadError::Refused(e)) = h.reload().await {
                            tracing::warn!("reload refused: {e}");
                        }
                    });
                    continue;
                }
                _ = usr1.recv() => SignalEvent::Forward(libc::SIGUSR1),
                _ = usr2.recv() => SignalEvent::Forward(libc::SIGUSR2),
            };
            if sig_tx.send(Msg::Signal(ev)).is_err() {
                return;
            }
        }
    });

    let supervisor = Supervisor::new(config, tx, kit, logs, snap_tx);
    // Readers see every configured process from the first request on.
    supervisor.publish();
    let done = tokio::spawn(supervisor.run(rx));
    Ok(Core {
        handle,
        done,
        log_writer,
    })
}

impl Core {
    /// Waits until the supervisor is done; returns the manager's exit code.
    pub async fn wait(self) -> (i32, LogFlush) {
        let code = self.done.await.unwrap_or(1);
        (code, LogFlush(self.log_writer))
    }
}

/// The log writer, finishing once every reader is gone (drop the runtime
/// first, then call [`LogFlush::join`]).
pub struct LogFlush(std::thread::JoinHandle<()>);

impl LogFlush {
    /// Waits for queued output to be written, at most `limit`: a manager
    /// whose stdout nobody reads must still exit.
    pub fn join(self, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        while !self.0.is_finished() {
            if std::time::Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.0.join();
    }
}
