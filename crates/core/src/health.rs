//! Health probes: one task per running instance that has a `health_check`.
//!
//! A probe never blocks the supervisor: it runs in its own task, every
//! attempt is cut at the check's `timeout`, and only its result travels to
//! the supervisor as a message. Exec probes are spawned by the same spawner
//! and their exit comes from the same reaper as every other child (the
//! probe registers as the waiter of its pid before the reaper can see it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use phpeek_config::{expand_instance_vars, HealthCheck, HealthCheckKind, InstanceVars};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::oneshot;

use crate::registry::{ChildRegistry, ExitStatus};
use crate::spawn::{SpawnJob, SpawnSpec, Spawner};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealthTypeLabels {
    pub name: String,
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealthResultLabels {
    pub name: String,
    pub r#type: String,
    pub result: String,
}

type HistogramMaker = fn() -> Histogram;

fn probe_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// Probe counters shared with the metrics endpoint.
#[derive(Clone)]
pub struct HealthMetrics {
    pub duration: Family<HealthTypeLabels, Histogram, HistogramMaker>,
    pub checks: Family<HealthResultLabels, Counter>,
}

impl Default for HealthMetrics {
    fn default() -> Self {
        HealthMetrics {
            duration: Family::new_with_constructor(probe_histogram),
            checks: Family::default(),
        }
    }
}

impl HealthMetrics {
    fn record(&self, process: &str, kind: &str, ok: bool, took: Duration) {
        self.duration
            .get_or_create(&HealthTypeLabels {
                name: process.to_string(),
                r#type: kind.to_string(),
            })
            .observe(took.as_secs_f64());
        self.checks
            .get_or_create(&HealthResultLabels {
                name: process.to_string(),
                r#type: kind.to_string(),
                result: if ok { "success" } else { "failure" }.to_string(),
            })
            .inc();
    }

    /// Drops the series of a process that left the config.
    pub fn forget_process(&self, process: &str, kind: &str) {
        self.duration.remove(&HealthTypeLabels {
            name: process.to_string(),
            r#type: kind.to_string(),
        });
        for result in ["success", "failure"] {
            self.checks.remove(&HealthResultLabels {
                name: process.to_string(),
                r#type: kind.to_string(),
                result: result.to_string(),
            });
        }
    }
}

/// What a probe needs beyond its check: shared by every probe task.
#[derive(Clone)]
pub struct ProbeKit {
    pub spawner: Spawner,
    pub registry: Arc<ChildRegistry>,
    pub http: reqwest::Client,
    pub metrics: HealthMetrics,
}

impl ProbeKit {
    pub fn new(spawner: Spawner, registry: Arc<ChildRegistry>) -> Result<Self, reqwest::Error> {
        Ok(ProbeKit {
            spawner,
            registry,
            http: crate::http_client()?,
            metrics: HealthMetrics::default(),
        })
    }
}

/// A check with its per-instance targets already expanded.
#[derive(Debug, Clone)]
pub enum Target {
    Tcp(String),
    Http { url: String, expected: Option<u16> },
    Exec(SpawnSpec),
}

/// The target of `kind` for one instance: addresses and URLs with the
/// instance's variables expanded; an exec check runs as the instance does
/// (`instance_spec`: its user, directory and environment), its output not
/// captured.
pub fn expand_target(
    kind: &HealthCheckKind,
    vars: &InstanceVars<'_>,
    instance_spec: impl FnOnce() -> SpawnSpec,
) -> Target {
    match kind {
        HealthCheckKind::Tcp { address } => Target::Tcp(expand_instance_vars(address, vars)),
        HealthCheckKind::Http {
            url,
            expected_status,
        } => Target::Http {
            url: expand_instance_vars(url, vars),
            expected: *expected_status,
        },
        HealthCheckKind::Exec { command } => {
            let mut spec = instance_spec();
            spec.argv = command
                .iter()
                .map(|a| expand_instance_vars(a, vars))
                .collect();
            spec.capture_stdout = false;
            spec.capture_stderr = false;
            Target::Exec(spec)
        }
    }
}

/// One probe attempt's result.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub ok: bool,
    pub detail: String,
}

async fn probe_once(kit: &ProbeKit, target: &Target, timeout: Duration) -> ProbeResult {
    match target {
        Target::Tcp(addr) => {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr.as_str())).await
            {
                Ok(Ok(_)) => ProbeResult {
                    ok: true,
                    detail: format!("connected to {addr}"),
                },
                Ok(Err(e)) => ProbeResult {
                    ok: false,
                    detail: format!("cannot connect to {addr}: {e}"),
                },
                Err(_) => ProbeResult {
                    ok: false,
                    detail: format!("no connection to {addr} within {timeout:?}"),
                },
            }
        }
        Target::Http { url, expected } => {
            let req = kit.http.get(url.as_str()).timeout(timeout).send();
            match tokio::time::timeout(timeout, req).await {
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    let ok = match expected {
                        Some(want) => status == *want,
                        None => (200..300).contains(&status),
                    };
                    ProbeResult {
                        ok,
                        detail: format!("GET {url} answered {status}"),
                    }
                }
                Ok(Err(e)) => ProbeResult {
                    ok: false,
                    detail: format!("GET {url} failed: {}", error_chain(&e)),
                },
                Err(_) => ProbeResult {
                    ok: false,
                    detail: format!("GET {url} got no answer within {timeout:?}"),
                },
            }
        }
        Target::Exec(spec) => run_exec(kit, spec, timeout).await,
    }
}

/// An error with its causes ("error sending request: … Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
    }
    out
}

/// Runs a command to its end (or kills its group at the timeout).
async fn run_exec(kit: &ProbeKit, spec: &SpawnSpec, timeout: Duration) -> ProbeResult {
    let (started_tx, started_rx) = oneshot::channel();
    let registry = Arc::clone(&kit.registry);
    let job = SpawnJob {
        spec: spec.clone(),
        done: Box::new(move |result| {
            // Still under the spawn gate: the waiter is in place before the
            // reaper can reap this pid.
            let sent = result.map(|child| (child.pid, registry.watch_exit(child.pid)));
            let _ = started_tx.send(sent);
        }),
    };
    let command = spec.argv.join(" ");
    if kit.spawner.submit(job).is_err() {
        return ProbeResult {
            ok: false,
            detail: "spawner is gone".into(),
        };
    }
    let (pid, exit) = match started_rx.await {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => {
            return ProbeResult {
                ok: false,
                detail: format!("cannot run `{command}`: {e}"),
            }
        }
        Err(_) => {
            return ProbeResult {
                ok: false,
                detail: "spawner is gone".into(),
            }
        }
    };
    tokio::pin!(exit);
    let status: Option<ExitStatus> = match tokio::time::timeout(timeout, &mut exit).await {
        Ok(r) => r.ok(),
        Err(_) => {
            let _ = kit.registry.signal_group(pid, Signal::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut exit).await;
            return ProbeResult {
                ok: false,
                detail: format!("`{command}` did not finish within {timeout:?}; killed"),
            };
        }
    };
    match status {
        Some(s) if s.success() => ProbeResult {
            ok: true,
            detail: format!("`{command}` exited 0"),
        },
        Some(s) => ProbeResult {
            ok: false,
            detail: format!("`{command}` {}", s.describe()),
        },
        None => ProbeResult {
            ok: false,
            detail: format!("`{command}` vanished"),
        },
    }
}

/// Probes until aborted: first after `initial_delay`, then every `period`.
/// Each result goes to `report`.
pub fn start_probing(
    kit: ProbeKit,
    check: &HealthCheck,
    target: Target,
    process: Arc<str>,
    report: impl Fn(ProbeResult) -> bool + Send + 'static,
) -> tokio::task::AbortHandle {
    let kind = check.kind.type_name();
    let (delay, period, timeout) = (check.initial_delay, check.period, check.timeout);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        loop {
            let t0 = Instant::now();
            let result = probe_once(&kit, &target, timeout).await;
            kit.metrics.record(&process, kind, result.ok, t0.elapsed());
            if !report(result) {
                return;
            }
            tokio::time::sleep(period).await;
        }
    })
    .abort_handle()
}
