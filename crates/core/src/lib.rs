//! The phpeek-pm supervisor.
//!
//! # Theory of operation
//!
//! **Who owns what.** One task, the supervisor (`supervisor/`), owns every
//! process and instance. Nothing else mutates that state. Readers (the API,
//! the metrics endpoint, the TUI through the API) read the latest
//! immutable [`Snapshot`] from a `watch` channel and never wait for the
//! owner.
//!
//! **How a message flows.** Everything that wants a change sends a message
//! on one unbounded channel: a [`Handle`] call (scale, start, stop,
//! restart, reload) carries a oneshot for its typed answer; the reaper
//! thread sends exits (`reaper.rs`) and the manager's own signals
//! (`signals.rs`); spawner threads send spawn results; timers and probes
//! send their results. The supervisor applies a batch of messages one at
//! a time, answers each request once its change was applied, then
//! reconciles every process towards its desired state and publishes a new
//! snapshot.
//!
//! **Decisions and effects.** What to do is decided by pure functions
//! (restart decision, dependency gates, reload classification, rollout
//! steps, scale plans, the exit code); doing it goes through the
//! [`effects`] seam (spawn, signal, attach logs, timers, probes, clock),
//! whose real implementation is the OS and whose fake lets the state
//! machine be tested in-process with paused time.
//!
//! **Who may call waitpid.** Only the reaper, through
//! [`registry::ChildRegistry::reap_batch`]. Spawning holds the registry's
//! spawn gate from before the child exists until its `Spawned` message is
//! queued, so an exit is always reported after its spawn. Signals go only
//! through the registry, and only to pids it has not reaped yet.
//!
//! **Threads.** The tokio runtime (supervisor, signals, probes, the two
//! log pipe readers, API), a few spawner threads (`spawn.rs`: clone + exec without
//! allocating in the child), the reaper thread (`reaper.rs`, woken by the
//! kernel through `sigwait`), the signaller (`signaller.rs`) and one log
//! writer thread (`logs.rs`).

pub mod autoscale;
pub mod backoff;
mod effects;
pub mod health;
pub mod logs;
pub mod procfs;
mod reaper;
pub use reaper::block_signals;
pub mod reconcile;
pub mod registry;
mod signaller;
mod signals;
pub mod snapshot;
pub mod spawn;
pub mod supervisor;
mod timers;
pub mod workloads;
mod zoned;

/// Installs ring as the process's TLS crypto provider, once (reqwest is
/// built without one, and panics when a client is built before it).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client of health probes and metric sources: no proxy (a
/// `127.0.0.1` target must not go through `HTTP_PROXY`), no redirects.
/// https targets are verified against the system's CA certificates; an
/// image without any (scratch, distroless) still gets a client, whose
/// https checks then fail with an unknown-issuer error instead of the
/// manager failing to start.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    let builder = || {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
    };
    builder().build().or_else(|e| {
        tracing::warn!("no CA certificates for https probes and metrics ({e}); https targets will fail verification");
        builder()
            .tls_certs_only(std::iter::empty::<reqwest::Certificate>())
            .build()
    })
}

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use phpeek_config::Config;
use tokio::sync::{mpsc, oneshot, watch};

pub use snapshot::{
    InstanceSnap, ProcessSnap, RestartCounts, RestartReason, ScaleEvents, Snapshot, Target,
};
pub use supervisor::{
    Action, ActionDone, AutoscaleChanged, CommandError, ReloadSummary, RunStarted, ScaleOutcome,
    SignalEvent,
};

use effects::OsEffects;
use registry::ChildRegistry;
use spawn::{Limits, Spawner};
use supervisor::{Msg, Reply, Request, Supervisor};

/// A running supervisor.
pub struct Core {
    pub handle: Handle,
    done: tokio::task::JoinHandle<i32>,
    log_writer: logs::LogWriter,
}

/// How the rest of the program talks to the supervisor. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    config_path: Arc<PathBuf>,
    health: health::HealthMetrics,
    /// The configuration last applied (the start one, then each reload).
    applied: Arc<watch::Sender<Arc<Config>>>,
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

    /// Sends a request built around its reply channel; answers once the
    /// supervisor applied (or refused) it.
    async fn request<T>(&self, build: impl FnOnce(Reply<T>) -> Request) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Request(build(tx))).is_err() {
            return Err(CommandError::shutting_down());
        }
        rx.await
            .unwrap_or_else(|_| Err(CommandError::shutting_down()))
    }

    /// Sets the desired scale of a process.
    pub async fn scale(&self, process: String, desired: u32) -> Result<ScaleOutcome, CommandError> {
        self.request(|reply| Request::Scale {
            process,
            desired,
            reply,
        })
        .await
    }

    /// Starts, stops or restarts a process (every instance) or one instance.
    pub async fn act(&self, name: String, action: Action) -> Result<ActionDone, CommandError> {
        self.request(|reply| Request::Act {
            name,
            action,
            reply,
        })
        .await
    }

    /// Enables or pauses a process's autoscaler.
    pub async fn autoscale(
        &self,
        process: String,
        enabled: bool,
    ) -> Result<AutoscaleChanged, CommandError> {
        self.request(|reply| Request::Autoscale {
            process,
            enabled,
            reply,
        })
        .await
    }

    /// Runs a scheduled or one-shot process now.
    pub async fn run(&self, name: String) -> Result<RunStarted, CommandError> {
        self.request(|reply| Request::Run { name, reply }).await
    }

    /// Applies an already validated configuration.
    pub async fn apply_config(&self, config: Config) -> Result<ReloadSummary, CommandError> {
        let published = Arc::new(config.clone());
        let summary = self
            .request(|reply| Request::Reload {
                config: Box::new(config),
                reply,
            })
            .await?;
        self.applied.send_replace(published);
        Ok(summary)
    }

    /// The configuration last applied; wakes after every applied reload
    /// (the server re-reads its TLS files then).
    pub fn applied_config(&self) -> watch::Receiver<Arc<Config>> {
        self.applied.subscribe()
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
        Ok(self.apply_config(config).await?)
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
    #[error("cannot set up the HTTP client of health probes: {0}")]
    Http(reqwest::Error),
}

/// Starts supervising `config`, read from `config_path` (re-read on
/// reload). Must be called inside a tokio runtime.
pub fn start(config: Config, config_path: PathBuf) -> Result<Core, StartError> {
    // SIGCHLD and the manager's signals are not handled but blocked
    // everywhere and taken by the reaper thread (`reaper.rs`, `signals.rs`):
    // one that arrives before that thread runs stays pending, also for a
    // PID 1.
    if !reaper::signals_blocked() {
        return Err(StartError::Signal(
            "SIGCHLD",
            std::io::Error::other(
                "it and the manager's signals must be blocked (block_signals) before any thread starts",
            ),
        ));
    }

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
    let (logs, log_writer) = logs::LogHub::start(
        config.global.log_format,
        usize::try_from(config.global.log_buffer).unwrap_or(usize::MAX),
    )
    .map_err(|e| StartError::Thread("log writer", e))?;

    let (tx, rx) = mpsc::unbounded_channel();
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));

    let kit = health::ProbeKit::new(spawner, registry).map_err(StartError::Http)?;
    let handle = Handle {
        tx: tx.clone(),
        snapshot: snap_rx,
        config_path: Arc::new(config_path),
        health: kit.metrics.clone(),
        applied: Arc::new(watch::channel(Arc::new(config.clone())).0),
    };
    let sink = signals::SignalSink {
        tx: tx.clone(),
        handle: handle.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    reaper::start(Arc::clone(&kit.registry), sink).map_err(|e| StartError::Thread("reaper", e))?;

    let fx = OsEffects::new(tx, kit, logs);
    let mut supervisor = Supervisor::new(config, fx, snap_tx);
    // Readers see every configured process and its first instances from
    // the first request on (reconciling creates the instances); the global
    // pre_start hooks, schedules and autoscalers start here too.
    supervisor.begin();
    supervisor.settle();
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

/// The log writer's flush, for the manager's way out.
pub struct LogFlush(logs::LogWriter);

impl LogFlush {
    /// Waits, at most `limit` (a manager whose stdout nobody reads must
    /// still exit), until what was queued is written; the runtime's tasks
    /// may still exist. The supervisor has awaited every log reader by
    /// then.
    pub fn flush(&self, limit: Duration) -> bool {
        self.0.flush(limit)
    }
}
