//! Hooks (SPEC 11): commands run around the manager's start and stop and
//! around each instance's, through the same spawner and reaper as every
//! child, as the owner's user, with the owner's environment, their output
//! logged as `[horizon-1:pre_stop] line`.
//!
//! Invariants:
//! - The hooks of one point run one after the other, in file order; each
//!   attempt is bounded by its `timeout` (then its process group is
//!   killed), and a failed hook is tried again `retries` times.
//! - A failure after the retries ends the list, unless the hook has
//!   `continue_on_error`; what that failure means (exit 1, a start
//!   failure, a logged warning) is the supervisor's decision.
//! - A hook's exit status reaches this task through the registry's waiter,
//!   registered under the spawn gate, so the reaper never sees it.
//! - The result of the whole list arrives as one `Msg::Hook`, after the
//!   hooks' output was written.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use phpeek_wire::RunResult;
use tokio::sync::oneshot;

use crate::logs::{LogHub, LogRing, Stream};
use crate::registry::{ChildRegistry, ExitStatus};
use crate::spawn::{SpawnJob, SpawnSpec, Spawner};
use crate::supervisor::InstanceRef;

/// Where in a life a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPoint {
    PreStart,
    PostStart,
    PreStop,
    PostStop,
}

impl HookPoint {
    pub fn as_str(self) -> &'static str {
        match self {
            HookPoint::PreStart => "pre_start",
            HookPoint::PostStart => "post_start",
            HookPoint::PreStop => "pre_stop",
            HookPoint::PostStop => "post_stop",
        }
    }
}

/// Whose hooks these are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HookOwner {
    Global,
    /// An instance's run started under `spawn_gen` `gen`.
    Instance {
        at: InstanceRef,
        gen: u64,
    },
}

/// One hook, its command already expanded for its owner.
#[derive(Debug, Clone)]
pub(crate) struct HookCommand {
    pub argv: Vec<String>,
    pub timeout: Duration,
    pub retries: u32,
    pub continue_on_error: bool,
}

/// The hooks of one point for one owner.
#[derive(Debug, Clone)]
pub(crate) struct HookJob {
    pub owner: HookOwner,
    pub point: HookPoint,
    pub commands: Vec<HookCommand>,
    /// Environment, user, group, directory and capture of the owner; the
    /// argv is replaced per hook.
    pub base: SpawnSpec,
    /// The process the hooks belong to (empty for global hooks).
    pub process: Arc<str>,
    /// The log prefix: `horizon-1:pre_stop`, `global:pre_start`.
    pub label: Arc<str>,
}

/// The result of a job: whether it may go on, and each attempt's result
/// (for `phpeek_pm_hook_runs_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HookOutcome {
    pub ok: bool,
    /// The failure, for reasons and logs.
    pub detail: Option<String>,
    pub attempts: Vec<RunResult>,
}

/// What running hooks needs: shared with the rest of the effects.
#[derive(Clone)]
pub(crate) struct HookKit {
    pub spawner: Spawner,
    pub registry: Arc<ChildRegistry>,
    pub logs: LogHub,
}

/// How long a hook's output may take to drain after its exit.
const DRAIN: Duration = Duration::from_secs(2);

/// Runs the job's hooks in order and says how it went.
pub(crate) async fn run_hooks(kit: &HookKit, job: &HookJob) -> HookOutcome {
    let mut attempts = Vec::new();
    for cmd in &job.commands {
        let shown = phpeek_config::shorten(&cmd.argv.join(" "), 201);
        let mut last = String::new();
        let mut done = false;
        for attempt in 0..=cmd.retries {
            let (result, detail) = run_once(kit, job, cmd).await;
            attempts.push(result);
            if result == RunResult::Success {
                tracing::info!("[{}] `{shown}` {detail}", job.label);
                done = true;
                break;
            }
            last = detail;
            let left = cmd.retries - attempt;
            if left > 0 {
                tracing::warn!(
                    "[{}] `{shown}` {last}; trying again ({left} left)",
                    job.label
                );
            }
        }
        if done {
            continue;
        }
        let why = format!("{} hook `{shown}` {last}", job.point.as_str());
        if cmd.continue_on_error {
            tracing::warn!("[{}] {why}; continuing (continue_on_error)", job.label);
            continue;
        }
        tracing::error!("[{}] {why}", job.label);
        return HookOutcome {
            ok: false,
            detail: Some(why),
            attempts,
        };
    }
    HookOutcome {
        ok: true,
        detail: None,
        attempts,
    }
}

/// One attempt of one hook: its result and a description.
async fn run_once(kit: &HookKit, job: &HookJob, cmd: &HookCommand) -> (RunResult, String) {
    let mut spec = job.base.clone();
    spec.argv = cmd.argv.clone();
    let (started_tx, started_rx) = oneshot::channel();
    let registry = Arc::clone(&kit.registry);
    let spawn = SpawnJob {
        spec,
        done: Box::new(move |result| {
            // Under the spawn gate: the waiter is in place before the
            // reaper can see this pid.
            let sent = result.map(|child| {
                let exit = registry.watch_exit(child.pid);
                (child, exit)
            });
            let _ = started_tx.send(sent);
        }),
    };
    if kit.spawner.submit(spawn).is_err() {
        return (
            RunResult::Failure,
            "could not start: spawner is gone".into(),
        );
    }
    let (mut child, exit) = match started_rx.await {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => return (RunResult::Failure, format!("could not start: {e}")),
        Err(_) => {
            return (
                RunResult::Failure,
                "could not start: spawner is gone".into(),
            )
        }
    };
    let ring = Arc::new(LogRing::default());
    let mut readers = Vec::new();
    for (fd, stream) in [
        (child.stdout.take(), Stream::Stdout),
        (child.stderr.take(), Stream::Stderr),
    ] {
        let Some(fd) = fd else { continue };
        match kit
            .logs
            .attach(fd, stream, &job.process, &job.label, Arc::clone(&ring))
        {
            Ok(task) => readers.push(task),
            Err(e) => tracing::warn!("[{}] cannot read its {}: {e}", job.label, stream.as_str()),
        }
    }
    let pid = child.pid;
    tokio::pin!(exit);
    let status: Option<ExitStatus> = match tokio::time::timeout(cmd.timeout, &mut exit).await {
        Ok(r) => r.ok(),
        Err(_) => {
            let _ = kit.registry.signal_group(pid, Signal::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut exit).await;
            drain(readers).await;
            let took = phpeek_config::format_duration(cmd.timeout);
            return (
                RunResult::Timeout,
                format!("did not finish within {took}; killed"),
            );
        }
    };
    // Leftovers of its group go with it, as for any instance.
    let _ = kit.registry.signal_leftovers(pid, Signal::SIGKILL);
    drain(readers).await;
    match status {
        Some(s) if s.success() => (RunResult::Success, "exited 0".into()),
        Some(s) => (RunResult::Failure, s.describe()),
        None => (RunResult::Failure, "vanished".into()),
    }
}

async fn drain(readers: Vec<crate::logs::Drained>) {
    let all = async {
        for r in readers {
            r.wait().await;
        }
    };
    let _ = tokio::time::timeout(DRAIN, all).await;
}
