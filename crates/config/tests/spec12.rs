//! SPEC 12 in the file: `autoscale` (bounds, metrics, windows, behavior,
//! fallback, dry_run) and `scale_down`; their errors (exact text, line and
//! column), the cross rules, overrides and the round trip.

use std::collections::BTreeMap;
use std::time::Duration;

use phpeek_config::{
    parse_str, to_yaml, AutoscaleBehavior, Config, Env, IdleDetection, MaxStep, MetricSource,
    MetricTarget, ScaleDownOrder, StepRow, DEFAULT_AUTOSCALE_INTERVAL,
};

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs(pairs.iter().copied())
}

fn ok(text: &str, e: &Env) -> Config {
    match parse_str(text, "phpeek-pm.yaml", e) {
        Ok(c) => c,
        Err(err) => panic!("rejected:\n{err}"),
    }
}

/// Every error line.
fn errs(text: &str, e: &Env) -> Vec<String> {
    match parse_str(text, "phpeek-pm.yaml", e) {
        Ok(c) => panic!("accepted: {c:#?}"),
        Err(err) => err.to_string().lines().map(str::to_string).collect(),
    }
}

/// The errors of a process `q` (command given) whose remaining keys are
/// `body`, indented by four spaces in the file (line 4 on).
fn q_errs(body: &str) -> Vec<String> {
    errs(&q(body), &Env::default())
}

fn q(body: &str) -> String {
    let mut text = String::from("processes:\n  q:\n    command: [w]\n");
    for line in body.lines() {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

fn round_trip(c: &Config) {
    let yaml = to_yaml(c);
    let back = ok(&yaml, &Env::default());
    assert_eq!(&back, c, "rendered:\n{yaml}");
}

/// SPEC 12's example, verbatim.
const SPEC_EXAMPLE: &str = r#"processes:
  queue-default:
    command: ["php", "artisan", "queue:work", "--queue=default", "--json"]
    scale: 2                      # where it starts
    shutdown: { timeout: 330 }    # longer than the job timeout
    autoscale:
      min: 2
      max: 20                     # within max_scale / max_process_scale
      interval: 15s
      metrics:                    # desired = the largest over all metrics
        - redis: { url: "redis://127.0.0.1:6379/0", llen: "queues:default" }
          per_instance: 100       # desired = ceil(value / per_instance)
        - command: ["php", "artisan", "queue:size", "default"]   # first number on stdout
          steps:                  # or a step table (the seed's script, as written)
            - { above: 1000, instances: 20 }
            - { above: 500, instances: 10 }
            - { above: 100, instances: 5 }
        - http: { url: "http://127.0.0.1:8080/stats", json: "queues.default.pending" }
          per_instance: 50
        - prometheus: { url: "http://127.0.0.1:9090/metrics", metric: "jobs_pending", labels: { queue: default } }
          per_instance: 50
        - cpu: { utilization: 75 }   # % of one core per instance, averaged over running instances
      windows:                    # active between a start tick and the next end tick, in its zone
        - { start: "0 9 * * 1-5", end: "0 18 * * 1-5", timezone: Europe/Amsterdam, min: 10 }
        - { start: "0 0 * * *", end: "0 6 * * *", max: 4 }
      behavior:
        tolerance: 0.1
        scale_up:   { stabilization: 0s,   max_step: 4,    period: 15s }
        scale_down: { stabilization: 300s, max_step: 100%, period: 15s }
      fallback: 4                 # after 3 failed samples in a row of every metric
      dry_run: false              # decide, show and export; do not act
    scale_down:
      order: highest              # highest (default) | idle_first
      idle: { laravel_json: true }   # or { busy: REGEX, idle: REGEX } over the instance's output lines
"#;

#[test]
fn the_spec_example_loads() {
    let c = ok(SPEC_EXAMPLE, &Env::default());
    let p = &c.processes["queue-default"];
    assert_eq!(p.scale, 2);
    let a = p.autoscale.as_ref().expect("autoscale");
    assert_eq!((a.min, a.max, a.interval), (2, 20, Duration::from_secs(15)));
    assert_eq!(a.metrics.len(), 5);
    assert_eq!(
        a.metrics[0].source,
        MetricSource::Redis {
            url: "redis://127.0.0.1:6379/0".into(),
            llen: "queues:default".into()
        }
    );
    assert_eq!(a.metrics[0].target, MetricTarget::PerInstance(100.0));
    assert_eq!(
        a.metrics[1].target,
        MetricTarget::Steps(vec![
            StepRow {
                above: 1000.0,
                instances: 20
            },
            StepRow {
                above: 500.0,
                instances: 10
            },
            StepRow {
                above: 100.0,
                instances: 5
            },
        ])
    );
    assert_eq!(
        a.metrics[1].source,
        MetricSource::Command(vec![
            "php".into(),
            "artisan".into(),
            "queue:size".into(),
            "default".into()
        ])
    );
    assert_eq!(
        a.metrics[3].source,
        MetricSource::Prometheus {
            url: "http://127.0.0.1:9090/metrics".into(),
            metric: "jobs_pending".into(),
            labels: BTreeMap::from([("queue".to_string(), "default".to_string())]),
        }
    );
    assert_eq!(a.metrics[4].source, MetricSource::Cpu { utilization: 75.0 });
    assert_eq!(a.metrics[4].target, MetricTarget::Utilization);
    for m in &a.metrics {
        assert_eq!(m.timeout, Duration::from_secs(5), "min(interval, 5s)");
    }
    assert_eq!(a.windows.len(), 2);
    assert_eq!(a.windows[0].timezone, "Europe/Amsterdam");
    assert_eq!((a.windows[0].min, a.windows[0].max), (Some(10), None));
    assert_eq!(a.windows[1].timezone, "UTC");
    assert_eq!((a.windows[1].min, a.windows[1].max), (None, Some(4)));
    assert_eq!(
        a.behavior,
        AutoscaleBehavior::default(),
        "the example spells the defaults"
    );
    assert_eq!((a.fallback, a.dry_run), (Some(4), false));
    // `idle` beside `order: highest` is checked and kept, not used.
    assert_eq!(p.scale_down.order, ScaleDownOrder::Highest);
    assert_eq!(p.scale_down.idle, Some(IdleDetection::LaravelJson));
    round_trip(&c);
}

// ------------------------------------------------------------------ bounds

#[test]
fn defaults_and_scale_starting_at_min() {
    let c = ok(&q("autoscale: { min: 3, max: 8 }"), &Env::default());
    let p = &c.processes["q"];
    assert_eq!(p.scale, 3, "scale defaults to autoscale.min");
    let a = p.autoscale.as_ref().expect("autoscale");
    assert_eq!(a.interval, DEFAULT_AUTOSCALE_INTERVAL);
    assert!(a.metrics.is_empty() && a.windows.is_empty());
    assert_eq!(a.behavior, AutoscaleBehavior::default());
    assert_eq!((a.fallback, a.dry_run), (None, false));
    // A short interval shortens the default metric timeout.
    let c = ok(
        &q("autoscale:\n  interval: 2s\n  min: 1\n  max: 2\n  metrics: [{ cpu: { utilization: 50 } }, { cpu: { utilization: 50 }, timeout: 30s }]"),
        &Env::default(),
    );
    let a = c.processes["q"].autoscale.clone().expect("autoscale");
    assert_eq!(a.metrics[0].timeout, Duration::from_secs(2));
    assert_eq!(a.metrics[1].timeout, Duration::from_secs(30));
    // Partial behavior keeps the other defaults.
    let c = ok(
        &q("autoscale:\n  min: 1\n  max: 2\n  behavior: { tolerance: 0, scale_down: { max_step: 2 } }"),
        &Env::default(),
    );
    let b = c.processes["q"]
        .autoscale
        .clone()
        .expect("autoscale")
        .behavior;
    let d = AutoscaleBehavior::default();
    assert_eq!(b.tolerance, 0.0);
    assert_eq!(b.scale_up, d.scale_up);
    assert_eq!(b.scale_down.max_step, MaxStep::Instances(2));
    assert_eq!(b.scale_down.stabilization, d.scale_down.stabilization);
}

#[test]
fn missing_and_crossed_bounds() {
    assert_eq!(
        q_errs("autoscale: { interval: 5s }"),
        [
            "phpeek-pm.yaml:4:16: processes.q.autoscale.min: missing `min`: autoscale needs both bounds, e.g. min: 2",
            "phpeek-pm.yaml:4:16: processes.q.autoscale.max: missing `max`: autoscale needs both bounds, e.g. max: 20",
        ]
    );
    assert_eq!(
        q_errs("autoscale: { min: 5, max: 2 }"),
        ["phpeek-pm.yaml:4:23: processes.q.autoscale.min: min 5 is above max 2"]
    );
    assert_eq!(
        q_errs("autoscale: { min: 0, max: 0 }"),
        ["phpeek-pm.yaml:4:31: processes.q.autoscale.max: must be at least 1 (for a process that never runs, use scale: 0 without autoscale)"]
    );
    assert_eq!(
        q_errs("autoscale: { min: ~, max: -1 }"),
        [
            "phpeek-pm.yaml:4:16: processes.q.autoscale.min: missing `min`: autoscale needs both bounds, e.g. min: 2",
            "phpeek-pm.yaml:4:31: processes.q.autoscale.max: `-1` is negative: expected 0 or more",
        ]
    );
}

#[test]
fn max_within_the_scale_limits_and_scale_within_min_max() {
    assert_eq!(
        q_errs("max_scale: 10\nautoscale: { min: 2, max: 20 }"),
        ["phpeek-pm.yaml:5:31: processes.q.autoscale.max: max 20 is above the process's max_scale 10"]
    );
    let text = format!(
        "global:\n  max_process_scale: 8\n{}",
        q("autoscale: { min: 2, max: 9 }")
    );
    assert_eq!(
        errs(&text, &Env::default()),
        ["phpeek-pm.yaml:6:31: processes.q.autoscale.max: max 9 is above global.max_process_scale 8"]
    );
    assert_eq!(
        q_errs("scale: 1\nautoscale: { min: 2, max: 20 }"),
        ["phpeek-pm.yaml:4:12: processes.q.scale: scale 1 is outside autoscale min..max (2 to 20): scale is where the autoscaler starts (leave it out to start at min)"]
    );
    assert_eq!(
        q_errs("autoscale: { min: 2, max: 4 }\nscale: 5"),
        ["phpeek-pm.yaml:5:12: processes.q.scale: scale 5 is outside autoscale min..max (2 to 4): scale is where the autoscaler starts (leave it out to start at min)"]
    );
    // port_base is fine, as long as autoscale.max still gets a port.
    ok(
        &q("port_base: 8000\nautoscale: { min: 1, max: 20 }"),
        &Env::default(),
    );
    assert_eq!(
        q_errs("port_base: 65530\nautoscale: { min: 1, max: 20 }"),
        ["phpeek-pm.yaml:4:16: processes.q.port_base: port_base 65530 + 20 instances goes past port 65535"]
    );
}

#[test]
fn interval_fallback_and_behavior_values() {
    assert_eq!(
        q_errs("autoscale:\n  min: 2\n  max: 4\n  interval: 500ms\n  fallback: 5\n  dry_run: maybe\n  behavior:\n    tolerance: 1\n    scale_up: { max_step: 1001%, period: 0, stabilization: -1s }\n    scale_down: { max_step: 1.5, speed: 2 }\n    scale_sideways: {}"),
        [
            "phpeek-pm.yaml:7:17: processes.q.autoscale.interval: must be at least 1s",
            "phpeek-pm.yaml:8:17: processes.q.autoscale.fallback: fallback 5 is outside min..max (2 to 4)",
            "phpeek-pm.yaml:9:16: processes.q.autoscale.dry_run: expected true or false, got `maybe`",
            "phpeek-pm.yaml:11:20: processes.q.autoscale.behavior.tolerance: must be 0 or more and below 1 (a relative change, 0.1 = 10 %)",
            "phpeek-pm.yaml:12:31: processes.q.autoscale.behavior.scale_up.max_step: `1001%` is not a percent from 0% to 1000%",
            "phpeek-pm.yaml:12:46: processes.q.autoscale.behavior.scale_up.period: must be more than 0",
            "phpeek-pm.yaml:12:64: processes.q.autoscale.behavior.scale_up.stabilization: `-1s` is negative: durations must be 0 or more",
            "phpeek-pm.yaml:13:33: processes.q.autoscale.behavior.scale_down.max_step: expected a whole number, got `1.5` (or a percent like 100%)",
            "phpeek-pm.yaml:13:38: processes.q.autoscale.behavior.scale_down.speed: unknown key",
            "phpeek-pm.yaml:14:9: processes.q.autoscale.behavior.scale_sideways: unknown key",
        ]
    );
    assert_eq!(
        q_errs("autoscale: { min: 1, max: 2, metric: [] }"),
        ["phpeek-pm.yaml:4:34: processes.q.autoscale.metric: unknown key (did you mean `metrics`?)"]
    );
}

// ----------------------------------------------------------------- metrics

#[test]
fn metric_sources_and_targets() {
    assert_eq!(
        q_errs("autoscale:\n  min: 1\n  max: 5\n  metrics:\n    - redis: { url: \"redis://h\", llen: q }\n      http: { url: \"http://h\", json: a }\n      per_instance: 10\n    - { per_instance: 5 }\n    - redis: { url: \"redis://h\", llen: q }\n    - cpu: { utilization: 50 }\n      steps: [{ above: 1, instances: 2 }]\n    - command: [x]\n      per_instance: 1\n      steps: [{ above: 1, instances: 2 }]\n    - command: [x]\n      per_instanse: 1"),
        [
            "phpeek-pm.yaml:9:11: processes.q.autoscale.metrics[0].http: a second source in one metric: `redis` and `http`; give each source its own entry under `metrics:`",
            "phpeek-pm.yaml:11:11: processes.q.autoscale.metrics[1]: missing the metric's source: one of redis, command, http, prometheus, cpu",
            "phpeek-pm.yaml:12:11: processes.q.autoscale.metrics[2]: missing the target: per_instance: N (desired = ceil(value / N)) or steps: [{ above: 100, instances: 5 }]",
            "phpeek-pm.yaml:14:11: processes.q.autoscale.metrics[3].steps: a cpu metric takes no `per_instance` or `steps`: its target is `cpu.utilization`",
            "phpeek-pm.yaml:17:11: processes.q.autoscale.metrics[4].steps: both `per_instance` and `steps`: a metric has one target",
            "phpeek-pm.yaml:18:11: processes.q.autoscale.metrics[5]: missing the target: per_instance: N (desired = ceil(value / N)) or steps: [{ above: 100, instances: 5 }]",
            "phpeek-pm.yaml:19:11: processes.q.autoscale.metrics[5].per_instanse: unknown key (did you mean `per_instance`?)",
        ]
    );
}

#[test]
fn metric_values() {
    assert_eq!(
        q_errs("autoscale:\n  min: 1\n  max: 5\n  metrics:\n    - { command: [], per_instance: 0 }\n    - { command: [\"\"], per_instance: -3, timeout: 0 }\n    - { command: [x], per_instance: lots }\n    - { cpu: { utilization: 0 } }\n    - { cpu: { utilization: 1001, util: 2 } }\n    - { cpu: {} }"),
        [
            "phpeek-pm.yaml:8:22: processes.q.autoscale.metrics[0].command: is empty: give the program and its arguments",
            "phpeek-pm.yaml:8:40: processes.q.autoscale.metrics[0].per_instance: must be more than 0",
            "phpeek-pm.yaml:9:22: processes.q.autoscale.metrics[1].command: is empty: give the program and its arguments",
            "phpeek-pm.yaml:9:42: processes.q.autoscale.metrics[1].per_instance: must be more than 0",
            "phpeek-pm.yaml:9:55: processes.q.autoscale.metrics[1].timeout: must be more than 0",
            "phpeek-pm.yaml:10:41: processes.q.autoscale.metrics[2].per_instance: expected a number, got `lots`",
            "phpeek-pm.yaml:11:33: processes.q.autoscale.metrics[3].cpu.utilization: must be more than 0 and at most 1000 (% of one core per instance)",
            "phpeek-pm.yaml:12:33: processes.q.autoscale.metrics[4].cpu.utilization: must be more than 0 and at most 1000 (% of one core per instance)",
            "phpeek-pm.yaml:12:39: processes.q.autoscale.metrics[4].cpu.util: unknown key",
            "phpeek-pm.yaml:13:18: processes.q.autoscale.metrics[5].cpu.utilization: missing `utilization`, e.g. utilization: 75",
        ]
    );
}

#[test]
fn redis_and_web_urls() {
    assert_eq!(
        q_errs("autoscale:\n  min: 1\n  max: 5\n  metrics:\n    - { redis: { url: \"http://h:6379\", llen: \"\" }, per_instance: 1 }\n    - { redis: { url: \"redis://h:70000/0\", llen: q }, per_instance: 1 }\n    - { redis: { url: \"rediss://:pw@h:6380/x\", llen: q }, per_instance: 1 }\n    - { redis: { llen: q, lenght: 3 }, per_instance: 1 }\n    - { http: { url: \"ftp://h/stats\", json: a }, per_instance: 1 }\n    - { http: { url: \"https://:80/\", json: a }, per_instance: 1 }\n    - { prometheus: { url: \"http://h:0/metrics\", metric: m }, per_instance: 1 }"),
        [
            "phpeek-pm.yaml:8:27: processes.q.autoscale.metrics[0].redis.url: `http://h:6379` is not a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379/0",
            "phpeek-pm.yaml:8:50: processes.q.autoscale.metrics[0].redis.llen: is empty",
            "phpeek-pm.yaml:9:27: processes.q.autoscale.metrics[1].redis.url: `redis://h:70000/0` has port `70000`; a port is 1 to 65535",
            "phpeek-pm.yaml:10:27: processes.q.autoscale.metrics[2].redis.url: `rediss://:pw@h:6380/x` has database `x`; the path is a database number, e.g. redis://127.0.0.1:6379/0",
            "phpeek-pm.yaml:11:20: processes.q.autoscale.metrics[3].redis.url: missing `url`, e.g. url: \"redis://127.0.0.1:6379/0\"",
            "phpeek-pm.yaml:11:31: processes.q.autoscale.metrics[3].redis.lenght: unknown key",
            "phpeek-pm.yaml:12:26: processes.q.autoscale.metrics[4].http.url: `ftp://h/stats` is not an http(s):// URL, e.g. http://127.0.0.1:8080/stats",
            "phpeek-pm.yaml:13:26: processes.q.autoscale.metrics[5].http.url: `https://:80/` has no valid host, e.g. http://127.0.0.1:8080/stats",
            "phpeek-pm.yaml:14:32: processes.q.autoscale.metrics[6].prometheus.url: `http://h:0/metrics` has port `0`; a port is 1 to 65535",
        ]
    );
    ok(
        &q("autoscale:\n  min: 1\n  max: 5\n  metrics:\n    - { redis: { url: \"rediss://user:pw@cache:6380/15\", llen: q }, per_instance: 1 }\n    - { redis: { url: \"redis://[::1]\", llen: q }, per_instance: 1 }\n    - { http: { url: \"https://stats.internal/q?x=1\", json: \"jobs.0.count\" }, per_instance: 1 }"),
        &Env::default(),
    );
}

#[test]
fn json_paths_and_prometheus_names() {
    assert_eq!(
        q_errs("autoscale:\n  min: 1\n  max: 5\n  metrics:\n    - { http: { url: \"http://h\", json: \"queues..pending\" }, per_instance: 1 }\n    - { http: { url: \"http://h\", json: \".a\" }, per_instance: 1 }\n    - { prometheus: { url: \"http://h\", metric: \"jobs-pending\" }, per_instance: 1 }\n    - { prometheus: { url: \"http://h\", metric: \"9jobs\", labels: { queue: a, \"bad:name\": b } }, per_instance: 1 }"),
        [
            "phpeek-pm.yaml:8:52: processes.q.autoscale.metrics[0].http.json: `queues..pending` has an empty or padded segment at character 8: a dotted path like queues.default.pending (numbers index arrays: jobs.0.count)",
            "phpeek-pm.yaml:9:45: processes.q.autoscale.metrics[1].http.json: `.a` has an empty or padded segment at character 1: a dotted path like queues.default.pending (numbers index arrays: jobs.0.count)",
            "phpeek-pm.yaml:10:57: processes.q.autoscale.metrics[2].prometheus.metric: `jobs-pending` is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*): `-` at character 5",
            "phpeek-pm.yaml:11:53: processes.q.autoscale.metrics[3].prometheus.metric: `9jobs` is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*): `9` at character 1",
            "phpeek-pm.yaml:11:81: processes.q.autoscale.metrics[3].prometheus.labels.bad:name: `bad:name` is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*): `:` at character 4",
        ]
    );
}

#[test]
fn per_instance_variables_are_not_expanded_here() {
    assert_eq!(
        q_errs("port_base: 8000\nautoscale:\n  min: 1\n  max: 5\n  metrics:\n    - { http: { url: \"http://h:${PHPEEK_PM_INSTANCE_PORT}/s\", json: a }, per_instance: 1 }\n    - { command: [size, \"${PHPEEK_PM_INSTANCE_ID}\"], per_instance: 1 }"),
        [
            "phpeek-pm.yaml:9:26: processes.q.autoscale.metrics[0].http.url: `${PHPEEK_PM_INSTANCE_PORT}` is per instance: the autoscaler samples once for the whole process",
            "phpeek-pm.yaml:10:22: processes.q.autoscale.metrics[1].command: `${PHPEEK_PM_INSTANCE_ID}` is per instance: the autoscaler samples once for the whole process",
        ]
    );
    // Manager-wide variables are substituted as everywhere.
    let c = ok(
        &q("autoscale:\n  min: 1\n  max: 5\n  metrics:\n    - { redis: { url: \"${REDIS_URL}\", llen: q }, per_instance: \"${PER:-25}\" }"),
        &env(&[("REDIS_URL", "redis://cache:6379/2")]),
    );
    let a = c.processes["q"].autoscale.clone().expect("autoscale");
    assert_eq!(a.metrics[0].target, MetricTarget::PerInstance(25.0));
}

#[test]
fn step_tables() {
    assert_eq!(
        q_errs("autoscale:\n  min: 2\n  max: 20\n  metrics:\n    - command: [x]\n      steps: []\n    - command: [x]\n      steps:\n        - { above: 100, instances: 5 }\n        - { above: 500, instances: 10 }\n        - { above: 50, instances: 30 }\n        - { above: 10 }\n        - { instances: 1, bleow: 3 }\n    - command: [x]\n      steps: { above: 1, instances: 2 }"),
        [
            "phpeek-pm.yaml:9:18: processes.q.autoscale.metrics[0].steps: is empty: give at least one row, e.g. steps: [{ above: 100, instances: 5 }]",
            "phpeek-pm.yaml:13:24: processes.q.autoscale.metrics[1].steps[1].above: 500 is not below the previous row's 100: rows are tried in order, highest `above` first, so this row would never match",
            "phpeek-pm.yaml:15:15: processes.q.autoscale.metrics[1].steps[3].instances: missing `instances`, e.g. { above: 100, instances: 5 }",
            "phpeek-pm.yaml:16:15: processes.q.autoscale.metrics[1].steps[4].above: missing `above`, e.g. { above: 100, instances: 5 }",
            "phpeek-pm.yaml:16:31: processes.q.autoscale.metrics[1].steps[4].bleow: unknown key",
            "phpeek-pm.yaml:18:18: processes.q.autoscale.metrics[2].steps: expected a list of rows, e.g. steps: [{ above: 100, instances: 5 }]",
        ]
    );
    // Rows within min..max, checked once the table is whole.
    assert_eq!(
        q_errs("autoscale:\n  metrics:\n    - command: [x]\n      steps:\n        - { above: 1000, instances: 30 }\n        - { above: 100, instances: 1 }\n  min: 2\n  max: 20"),
        [
            "phpeek-pm.yaml:8:41: processes.q.autoscale.metrics[0].steps[0].instances: 30 is outside autoscale min..max (2 to 20): the row could never take effect",
            "phpeek-pm.yaml:9:40: processes.q.autoscale.metrics[0].steps[1].instances: 1 is outside autoscale min..max (2 to 20): the row could never take effect",
        ]
    );
}

// ----------------------------------------------------------------- windows

#[test]
fn windows() {
    let c = ok(
        &q("autoscale:\n  min: 2\n  max: 20\n  windows:\n    - { start: \"0 9 * * MON-FRI\", end: \"@daily\", min: 20, max: 20 }"),
        &env(&[("TZ", "Asia/Tokyo")]),
    );
    let w = &c.processes["q"]
        .autoscale
        .clone()
        .expect("autoscale")
        .windows[0];
    assert_eq!(
        w.timezone, "Asia/Tokyo",
        "$TZ is the default zone, as for schedules"
    );
    assert_eq!(
        (w.start.as_str(), w.end.as_str()),
        ("0 9 * * MON-FRI", "@daily")
    );
    assert_eq!(
        q_errs("autoscale:\n  min: 2\n  max: 20\n  windows:\n    - { start: \"0 25 * * *\", end: \"0 18 * * 1-5\", min: 4 }\n    - { start: \"0 9 * * *\", end: \"0 18 * * *\", timezone: Europe/Amsterdm, min: 4 }\n    - { start: \"0 9 * * *\", end: \"0 18 * * *\" }\n    - { end: \"0 18 * * *\", max: 4 }\n    - { start: \"0 9 * * *\", end: \"0 9 * * *\", max: 4 }\n    - { start: \"0 9 * * *\", end: \"0 18 * * *\", min: 8, max: 4 }\n    - { start: \"0 9 * * *\", end: \"0 18 * * *\", min: 21, mx: 1 }\n    - { start: \"0 9 * * *\", end: \"0 18 * * *\", min: 21 }\n    - { start: \"0 9 * * *\", end: \"0 18 * * *\", max: 1 }"),
        [
            "phpeek-pm.yaml:8:23: processes.q.autoscale.windows[0].start: field 2 (hour) `25` is out of range 0-23",
            "phpeek-pm.yaml:9:62: processes.q.autoscale.windows[1].timezone: unknown time zone `Europe/Amsterdm`: expected an IANA name like Europe/Amsterdam or UTC (did you mean `Europe/Amsterdam`?)",
            "phpeek-pm.yaml:10:11: processes.q.autoscale.windows[2]: a window without `min` or `max` changes nothing: give one or both",
            "phpeek-pm.yaml:11:11: processes.q.autoscale.windows[3].start: missing `start`, e.g. start: \"0 9 * * 1-5\"",
            "phpeek-pm.yaml:12:38: processes.q.autoscale.windows[4].end: is the same as `start`: the window would never be active",
            "phpeek-pm.yaml:13:57: processes.q.autoscale.windows[5].min: min 8 is above this window's max 4",
            "phpeek-pm.yaml:14:61: processes.q.autoscale.windows[6].mx: unknown key (did you mean `max`?)",
            "phpeek-pm.yaml:15:57: processes.q.autoscale.windows[7].min: min 21 is above autoscale max 20",
            "phpeek-pm.yaml:16:57: processes.q.autoscale.windows[8].max: max 1 is below autoscale min 2",
        ]
    );
}

// -------------------------------------------------------------- scale_down

#[test]
fn scale_down() {
    let c = ok(
        &q("scale_down: { order: idle_first, idle: { busy: \"^Processing\", idle: \"^(Processed|Failed)$$\" } }"),
        &Env::default(),
    );
    let sd = &c.processes["q"].scale_down;
    assert_eq!(sd.order, ScaleDownOrder::IdleFirst);
    assert_eq!(
        sd.idle,
        Some(IdleDetection::Regex {
            busy: "^Processing".into(),
            idle: "^(Processed|Failed)$".into()
        })
    );
    round_trip(&c);
    // idle_first works without autoscale too (manual scale-downs).
    assert!(c.processes["q"].autoscale.is_none());
    assert_eq!(
        q_errs("scale_down: { order: idle_frist }"),
        ["phpeek-pm.yaml:4:26: processes.q.scale_down.order: unknown value `idle_frist`: expected one of highest, idle_first (did you mean `idle_first`?)"]
    );
    assert_eq!(
        q_errs("scale_down: { order: idle_first }"),
        ["phpeek-pm.yaml:4:26: processes.q.scale_down.order: idle_first needs `idle`: how busy and idle are told apart, e.g. idle: { laravel_json: true } or idle: { busy: REGEX, idle: REGEX }"]
    );
    assert_eq!(
        q_errs("scale_down:\n  order: idle_first\n  idle: { busy: \"(unclosed\", idle: \"ok\" }\n  idel: 1"),
        [
            "phpeek-pm.yaml:6:21: processes.q.scale_down.idle.busy: `(unclosed` is not a valid regex: unclosed group",
            "phpeek-pm.yaml:7:7: processes.q.scale_down.idel: unknown key (did you mean `idle`?)",
        ]
    );
    assert_eq!(
        q_errs("scale_down:\n  order: idle_first\n  idle: { busy: a }"),
        ["phpeek-pm.yaml:6:13: processes.q.scale_down.idle.idle: missing `idle`, e.g. { busy: \"Processing\", idle: \"Processed|Failed\" }"]
    );
    assert_eq!(
        q_errs("scale_down:\n  order: idle_first\n  idle: { laravel_json: true, idle: b }"),
        ["phpeek-pm.yaml:6:35: processes.q.scale_down.idle: laravel_json or busy/idle regexes, not both"]
    );
    assert_eq!(
        q_errs("scale_down:\n  order: idle_first\n  idle: { laravel_json: false }"),
        ["phpeek-pm.yaml:6:13: processes.q.scale_down.idle: give laravel_json: true, or busy and idle regexes over the instance's output lines"]
    );
}

// ------------------------------------------------------------ cross rules

#[test]
fn what_autoscale_excludes() {
    assert_eq!(
        q_errs("schedule: \"* * * * *\"\nautoscale: { min: 1, max: 2 }\nscale_down: { order: highest }"),
        [
            "phpeek-pm.yaml:5:5: processes.q.autoscale: not with a schedule: a scheduled process has no standing instances (each run is one instance, not probed, scaled or restarted)",
            "phpeek-pm.yaml:6:5: processes.q.scale_down: not with a schedule: a scheduled process has no standing instances (each run is one instance, not probed, scaled or restarted)",
        ]
    );
    ok(
        &q("schedule: \"* * * * *\"\nscale_down: ~"),
        &Env::default(),
    );
    assert_eq!(
        q_errs("type: oneshot\nautoscale: { min: 1, max: 2 }"),
        ["phpeek-pm.yaml:5:5: processes.q.autoscale: is only for longrun processes: a one-shot runs to its end, it has no standing count to scale"]
    );
}

#[test]
fn shape_errors() {
    assert_eq!(
        q_errs("autoscale: [1, 2]\nscale_down: highest"),
        [
            "phpeek-pm.yaml:4:16: processes.q.autoscale: this key must be a mapping (`key: value` lines), found a list",
            "phpeek-pm.yaml:5:17: processes.q.scale_down: this key must be a mapping (`key: value` lines), found a single value",
        ]
    );
    assert_eq!(
        q_errs("autoscale: { min: 1, max: 2, metrics: { cpu: {} }, windows: 3 }"),
        [
            "phpeek-pm.yaml:4:43: processes.q.autoscale.metrics: expected a list, found a mapping",
            "phpeek-pm.yaml:4:65: processes.q.autoscale.windows: expected a list, found a single value",
        ]
    );
    // Null means "not set".
    let c = ok(&q("autoscale: ~\nscale_down: ~"), &Env::default());
    assert!(c.processes["q"].autoscale.is_none());
}

// --------------------------------------------------------------- overrides

#[test]
fn autoscale_overrides() {
    let text = q("autoscale: { min: 2, max: 20, dry_run: true }");
    let c = ok(
        &text,
        &env(&[
            ("PHPEEK_PM_PROCESS_Q_AUTOSCALE_MIN", "4"),
            ("PHPEEK_PM_PROCESS_Q_AUTOSCALE_MAX", "10"),
            ("PHPEEK_PM_PROCESS_Q_AUTOSCALE_DRY_RUN", "false"),
        ]),
    );
    let p = &c.processes["q"];
    let a = p.autoscale.as_ref().expect("autoscale");
    assert_eq!((a.min, a.max, a.dry_run, p.scale), (4, 10, false, 4));
    assert_eq!(
        errs(&text, &env(&[("PHPEEK_PM_PROCESS_Q_AUTOSCALE_MAX", "1")])),
        ["phpeek-pm.yaml:4:23: processes.q.autoscale.min: min 2 is above max 1"]
    );
    assert_eq!(
        errs(&q(""), &env(&[("PHPEEK_PM_PROCESS_Q_AUTOSCALE_MAX", "x")])),
        [
            "phpeek-pm.yaml: processes.q.autoscale.max: expected a whole number, got `x` (set by environment variable PHPEEK_PM_PROCESS_Q_AUTOSCALE_MAX)",
            "phpeek-pm.yaml: processes.q.autoscale.min: missing `min`: autoscale needs both bounds, e.g. min: 2 (set by environment variable PHPEEK_PM_PROCESS_Q_AUTOSCALE_MAX)",
        ]
    );
    let e = errs(&q(""), &env(&[("PHPEEK_PM_PROCESS_Q_AUTOSCALE_MAXX", "1")]));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].contains("(did you mean PHPEEK_PM_PROCESS_Q_AUTOSCALE_MAX?)"),
        "{e:?}"
    );
}

// -------------------------------------------------------------- round trip

#[test]
fn every_new_key_round_trips() {
    let text = r#"processes:
  q:
    command: ["php", "artisan", "queue:work"]
    max_scale: 30
    port_base: 9000
    autoscale:
      min: 0
      max: 30
      interval: 2500ms
      metrics:
        - redis: { url: "rediss://u:p$$w@cache:6380/3", llen: "queues:$$x" }
          per_instance: 12.5
          timeout: 750ms
        - command: ["sh", "-c", "echo $$((1+1))"]
          steps: [{ above: 10.5, instances: 30 }, { above: -1, instances: 0 }]
        - http: { url: "https://stats/x?a=$$b", json: "a.0.b" }
          per_instance: 1
        - prometheus: { url: "http://h:9090/metrics", metric: "ns:jobs_pending", labels: { queue: "$$high", empty: "" } }
          per_instance: 0.5
        - cpu: { utilization: 62.5 }
      windows:
        - { start: "*/5 * * * * *", end: "@hourly", timezone: America/New_York, min: 3, max: 3 }
      behavior:
        tolerance: 0
        scale_up: { stabilization: 1m, max_step: 0%, period: 1s }
        scale_down: { stabilization: 0, max_step: 0, period: 1h }
      fallback: 0
      dry_run: yes
    scale_down:
      order: idle_first
      idle: { busy: "^\\{\"status\":\"busy\"\\}$$", idle: "done$$" }
  l:
    command: [l]
    scale_down: { order: idle_first, idle: { laravel_json: true } }
"#;
    let c = ok(text, &Env::default());
    let a = c.processes["q"].autoscale.clone().expect("autoscale");
    assert_eq!(a.metrics[0].timeout, Duration::from_millis(750));
    assert_eq!(
        a.metrics[0].source,
        MetricSource::Redis {
            url: "rediss://u:p$w@cache:6380/3".into(),
            llen: "queues:$x".into()
        }
    );
    assert_eq!(a.behavior.scale_up.max_step, MaxStep::Percent(0));
    assert_eq!(a.behavior.scale_down.max_step, MaxStep::Instances(0));
    assert!(a.dry_run);
    round_trip(&c);
    // And the rendering renders the same again.
    let yaml = to_yaml(&c);
    assert_eq!(to_yaml(&ok(&yaml, &Env::default())), yaml);
}
