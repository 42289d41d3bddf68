//! Prometheus metrics (SPEC §6), built fresh from the latest snapshot at
//! every scrape: series of instances that were scaled away simply are not
//! there any more. The one exception is the probe histograms and counters
//! (`phpeek_core::health::HealthMetrics`), which must accumulate across
//! scrapes; the supervisor drops a process's probe series when a reload
//! removes the process.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use phpeek_core::{Handle, RestartReason, Snapshot};
use phpeek_wire::InstanceState;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Per-instance labels as SPEC §6 names them: `name` is the process
/// (`queue-default`), `process` the instance (`queue-default-2`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    name: String,
    process: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RestartLabels {
    name: String,
    process: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProcessLabels {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScaleLabels {
    name: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabels {
    name: String,
    process: String,
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    name: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    name: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    name: String,
    hook: String,
    result: String,
}

/// A histogram whose buckets were counted elsewhere (the supervisor keeps
/// run durations; the endpoint only encodes them).
#[derive(Debug, Default)]
struct CountedHistogram {
    inner: std::sync::Mutex<Counted>,
}

/// Sum, count, and (upper bound, count in that bucket) pairs.
#[derive(Debug, Default)]
struct Counted {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl CountedHistogram {
    fn set(&self, sum: f64, count: u64, cumulative: &[(f64, u64)]) {
        // The encoder wants counts per bucket and adds them up itself.
        let mut per_bucket = Vec::with_capacity(cumulative.len() + 1);
        let mut below = 0;
        for (bound, c) in cumulative {
            per_bucket.push((*bound, c.saturating_sub(below)));
            below = *c;
        }
        per_bucket.push((f64::INFINITY, count.saturating_sub(below)));
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = Counted {
            sum,
            count,
            buckets: per_bucket,
        };
    }
}

impl prometheus_client::metrics::TypedMetric for CountedHistogram {
    const TYPE: prometheus_client::metrics::MetricType =
        prometheus_client::metrics::MetricType::Histogram;
}

impl prometheus_client::encoding::EncodeMetric for CountedHistogram {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        let c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            c.sum, c.count, &c.buckets, None,
        )
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

fn unix_seconds(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// Renders the metrics text for a snapshot.
pub fn render(
    snap: &Snapshot,
    usage: &std::collections::HashMap<i32, phpeek_core::procfs::Usage>,
    health: &phpeek_core::health::HealthMetrics,
) -> String {
    let mut reg = Registry::default();
    let up = Family::<InstanceLabels, Gauge>::default();
    let restarts = Family::<RestartLabels, Counter>::default();
    let start_time = Family::<InstanceLabels, Gauge>::default();
    let exit_code = Family::<InstanceLabels, Gauge>::default();
    let desired = Family::<ProcessLabels, Gauge>::default();
    let current = Family::<ProcessLabels, Gauge>::default();
    let cpu = Family::<InstanceLabels, Counter<f64, AtomicU64>>::default();
    let memory = Family::<InstanceLabels, Gauge>::default();
    let health_status = Family::<HealthLabels, Gauge>::default();
    let health_duration = health.duration.clone();
    let health_checks = health.checks.clone();
    let scale_events = Family::<ScaleLabels, Counter>::default();
    let build_info = Family::<VersionLabels, Gauge>::default();
    let manager_up = Gauge::<i64>::default();
    let schedule_runs = Family::<ResultLabels, Counter>::default();
    let schedule_missed = Family::<ProcessLabels, Counter>::default();
    let schedule_running = Family::<ProcessLabels, Gauge>::default();
    let schedule_last_run = Family::<ProcessLabels, Gauge>::default();
    let schedule_last_success = Family::<ProcessLabels, Gauge>::default();
    let schedule_next_run = Family::<ProcessLabels, Gauge>::default();
    let schedule_duration = Family::<ProcessLabels, CountedHistogram>::default();
    let hook_runs = Family::<HookLabels, Counter>::default();
    let as_recommended = Family::<ProcessLabels, Gauge>::default();
    let as_value = Family::<MetricLabels, Gauge<f64, AtomicU64>>::default();
    let as_errors = Family::<MetricLabels, Counter>::default();
    for h in &snap.hook_runs {
        hook_runs
            .get_or_create(&HookLabels {
                name: h.process.to_string(),
                hook: h.hook.into(),
                result: h.result.into(),
            })
            .inc_by(h.count);
    }

    for p in &snap.processes {
        let name = p.name.to_string();
        let pl = ProcessLabels { name: name.clone() };
        desired.get_or_create(&pl).set(i64::from(p.desired));
        let running = p
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .count();
        current
            .get_or_create(&pl)
            .set(i64::try_from(running).unwrap_or(i64::MAX));
        for (dir, n) in [("up", p.scale_events.up), ("down", p.scale_events.down)] {
            scale_events
                .get_or_create(&ScaleLabels {
                    name: name.clone(),
                    direction: dir.into(),
                })
                .inc_by(n);
        }
        if let Some(a) = &p.autoscale {
            if let Some(r) = a.recommended_unclamped {
                as_recommended.get_or_create(&pl).set(i64::from(r));
            }
            for m in &a.metrics {
                if let Some(v) = m.value {
                    as_value
                        .get_or_create(&MetricLabels {
                            name: name.clone(),
                            metric: m.name.clone(),
                        })
                        .set(v);
                }
            }
            for (metric, n) in &a.errors {
                as_errors
                    .get_or_create(&MetricLabels {
                        name: name.clone(),
                        metric: metric.clone(),
                    })
                    .inc_by(*n);
            }
        }
        if let Some(sched) = &p.schedule {
            use phpeek_wire::RunResult;
            let stats = &p.history.stats;
            for result in [RunResult::Success, RunResult::Failure, RunResult::Timeout] {
                schedule_runs
                    .get_or_create(&ResultLabels {
                        name: name.clone(),
                        result: result.as_str().into(),
                    })
                    .inc_by(p.finished_runs(result));
            }
            schedule_missed.get_or_create(&pl).inc_by(sched.missed);
            schedule_running
                .get_or_create(&pl)
                .set(i64::try_from(p.runs_going.len()).unwrap_or(i64::MAX));
            if let Some(r) = p.last_run() {
                schedule_last_run
                    .get_or_create(&pl)
                    .set(unix_seconds(r.started_at));
            }
            if let Some(t) = stats.last_success {
                schedule_last_success
                    .get_or_create(&pl)
                    .set(unix_seconds(t));
            }
            if let Some(t) = sched.next_run {
                schedule_next_run.get_or_create(&pl).set(unix_seconds(t));
            }
            let cumulative: Vec<(f64, u64)> = phpeek_core::workloads::history::RUN_DURATION_BUCKETS
                .iter()
                .copied()
                .zip(stats.buckets.iter().copied())
                .collect();
            schedule_duration.get_or_create(&pl).set(
                stats.duration_sum,
                stats.finished(),
                &cumulative,
            );
        }
        for i in &p.instances {
            let il = InstanceLabels {
                name: name.clone(),
                process: i.name.to_string(),
            };
            let is_up = i.state == InstanceState::Running && i.pid.is_some();
            up.get_or_create(&il).set(i64::from(is_up));
            for reason in RestartReason::ALL {
                let n = i.restarts.get(reason);
                restarts
                    .get_or_create(&RestartLabels {
                        name: name.clone(),
                        process: i.name.to_string(),
                        reason: reason.as_str().into(),
                    })
                    .inc_by(n);
            }
            if let Some(t) = i.started_at {
                let secs = t
                    .duration_since(std::time::SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                start_time
                    .get_or_create(&il)
                    .set(i64::try_from(secs).unwrap_or(i64::MAX));
            }
            if let Some(code) = i.last_exit_code {
                exit_code.get_or_create(&il).set(i64::from(code));
            }
            if let Some(u) = i.pid.and_then(|pid| usage.get(&pid)) {
                cpu.get_or_create(&il).inc_by(u.cpu_seconds);
                memory
                    .get_or_create(&il)
                    .set(i64::try_from(u.rss_bytes).unwrap_or(i64::MAX));
            }
            if let (Some(t), phpeek_wire::Health::Healthy | phpeek_wire::Health::Unhealthy) =
                (p.health_type, i.health)
            {
                health_status
                    .get_or_create(&HealthLabels {
                        name: name.clone(),
                        process: i.name.to_string(),
                        r#type: t.into(),
                    })
                    .set(i64::from(i.health == phpeek_wire::Health::Healthy));
            }
        }
    }
    build_info
        .get_or_create(&VersionLabels {
            version: env!("CARGO_PKG_VERSION").into(),
        })
        .set(1);
    manager_up.set(1);

    reg.register("phpeek_pm_process_up", "1 when the instance is running", up);
    reg.register(
        "phpeek_pm_process_restarts",
        "Restarts of the instance by reason",
        restarts,
    );
    reg.register(
        "phpeek_pm_process_start_time_seconds",
        "Unix time the instance last started",
        start_time,
    );
    reg.register(
        "phpeek_pm_process_last_exit_code",
        "Exit code of the instance's last run",
        exit_code,
    );
    reg.register(
        "phpeek_pm_process_desired_scale",
        "Desired number of instances",
        desired,
    );
    reg.register(
        "phpeek_pm_process_current_scale",
        "Running instances",
        current,
    );
    reg.register(
        "phpeek_pm_process_cpu_seconds",
        "CPU time of the instance's process tree",
        cpu,
    );
    reg.register(
        "phpeek_pm_process_memory_bytes",
        "Resident memory of the instance's process tree",
        memory,
    );
    reg.register(
        "phpeek_pm_health_check_status",
        "1 healthy, 0 unhealthy",
        health_status,
    );
    reg.register(
        "phpeek_pm_health_check_duration_seconds",
        "Duration of health probes",
        health_duration,
    );
    reg.register(
        "phpeek_pm_health_checks",
        "Health probes by result",
        health_checks,
    );
    reg.register(
        "phpeek_pm_scale_events",
        "Scale requests by direction",
        scale_events,
    );
    reg.register(
        "phpeek_pm_schedule_runs",
        "Finished runs of a schedule by result",
        schedule_runs,
    );
    reg.register(
        "phpeek_pm_schedule_missed",
        "Ticks of a schedule that did not run",
        schedule_missed,
    );
    reg.register(
        "phpeek_pm_schedule_running",
        "Runs of a schedule going now",
        schedule_running,
    );
    reg.register(
        "phpeek_pm_schedule_last_run_timestamp_seconds",
        "Unix time the last run started",
        schedule_last_run,
    );
    reg.register(
        "phpeek_pm_schedule_last_success_timestamp_seconds",
        "Unix time the last successful run ended",
        schedule_last_success,
    );
    reg.register(
        "phpeek_pm_schedule_next_run_timestamp_seconds",
        "Unix time of the next tick",
        schedule_next_run,
    );
    reg.register(
        "phpeek_pm_schedule_run_duration_seconds",
        "Durations of finished runs",
        schedule_duration,
    );
    reg.register(
        "phpeek_pm_autoscale_recommended_instances",
        "Instances the autoscaler's metrics ask for, before the max clamp (for KEDA: aggregate with max())",
        as_recommended,
    );
    reg.register(
        "phpeek_pm_autoscale_metric_value",
        "The last value sampled for each autoscale metric",
        as_value,
    );
    reg.register(
        "phpeek_pm_autoscale_errors",
        "Failed samples of each autoscale metric",
        as_errors,
    );
    reg.register(
        "phpeek_pm_hook_runs",
        "Hook attempts by process (empty: global), hook and result",
        hook_runs,
    );
    reg.register("phpeek_pm_build_info", "Build information", build_info);
    reg.register("phpeek_pm_up", "1 while the manager runs", manager_up);

    let mut out = String::new();
    if encode(&mut out, &reg).is_err() {
        out.clear();
    }
    out
}

#[derive(Clone)]
struct MetricsState {
    handle: Handle,
}

/// The same families in the Prometheus text format 0.0.4, for clients that
/// do not ask for OpenMetrics (`promtool check metrics`, a plain `curl`):
/// a counter's HELP and TYPE name its `_total` series, and there is no
/// `# EOF`. Everything else is the same in both formats here.
fn text_format(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let comment = ["# HELP ", "# TYPE "]
            .into_iter()
            .find(|p| line.starts_with(p));
        match comment.and_then(|p| Some((p, line[p.len()..].split_once(' ')?))) {
            Some((p, (name, rest))) if counters.contains(name) && !name.ends_with("_total") => {
                out.push_str(&format!("{p}{name}_total {rest}"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// True when the scraper's `Accept` asks for OpenMetrics (Prometheus does).
fn wants_openmetrics(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

async fn scrape(
    axum::extract::State(state): State<MetricsState>,
    headers: axum::http::HeaderMap,
) -> Response {
    let openmetrics = wants_openmetrics(&headers);
    let snap = state.handle.snapshot();
    let text = tokio::task::spawn_blocking(move || {
        let usage = phpeek_core::procfs::usage_by_session();
        render(&snap, &usage, state.handle.health_metrics())
    })
    .await;
    match text {
        Ok(text) if openmetrics => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text_format(&text),
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable").into_response(),
    }
}

pub fn router(handle: Handle, path: &str) -> Router {
    Router::new()
        .route(path, get(scrape))
        .with_state(MetricsState { handle })
}

#[cfg(test)]
mod tests {
    use super::text_format;

    #[test]
    fn text_format_names_counter_series_and_drops_eof() {
        let om = "# HELP a_restarts Restarts.\n# TYPE a_restarts counter\n\
                  a_restarts_total{x=\"1\"} 2\n# HELP a_up Up.\n# TYPE a_up gauge\n\
                  a_up 1\n# EOF\n";
        assert_eq!(
            text_format(om),
            "# HELP a_restarts_total Restarts.\n# TYPE a_restarts_total counter\n\
             a_restarts_total{x=\"1\"} 2\n# HELP a_up Up.\n# TYPE a_up gauge\na_up 1\n"
        );
    }
}
