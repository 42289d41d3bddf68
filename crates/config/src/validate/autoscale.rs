//! A process's `autoscale:` and `scale_down:` blocks (SPEC 12).
//!
//! Invariants:
//! * An autoscale is returned whenever the key holds a mapping, even with
//!   rejected values (they keep placeholders), so the cross checks still
//!   see an autoscaled process; the bounds checks that need `min` and
//!   `max` run only when both were accepted and `min <= max`
//!   ([`AutoscaleMeta::bounds_ok`]), so one mistake is one error.
//! * A metric is kept only when its source and its target were accepted;
//!   each metric entry has exactly one source key, and every source but
//!   `cpu` exactly one target (`per_instance` or `steps`).
//! * Key order is free: rules that relate keys (`timeout` default from
//!   `interval`, rows and windows against `min`/`max`) run after the whole
//!   mapping was read.
//! * Nothing here is expanded per instance (the autoscaler samples once
//!   per process), so per-instance variables are errors in its values.

use std::time::Duration;

use regex::RegexBuilder;

use super::health_check::{check_authority, check_web_url};
use super::reader::{join, origin_within, parse_uint, set, shorten, Ctx, Got};
use super::schedule::read_cron;
use super::SCALE_LIMIT;
use crate::substitute::instance_var_used;
use crate::text::is_null_literal;
use crate::tree::{Entry, Node, Origin, Style, Value};
use crate::{
    zone, Autoscale, AutoscaleBehavior, AutoscaleMetric, AutoscaleWindow, IdleDetection, MaxStep,
    MetricSource, MetricTarget, ScaleBehavior, ScaleDown, ScaleDownOrder, StepRow,
    DEFAULT_AUTOSCALE_INTERVAL,
};

pub(super) const AUTOSCALE_KEYS: &[&str] = &[
    "min", "max", "interval", "metrics", "windows", "behavior", "fallback", "dry_run",
];
/// The source keys of a metric, one per [`MetricSource`] kind.
const SOURCE_KEYS: &[&str] = &["redis", "command", "http", "prometheus", "cpu"];
pub(super) const METRIC_KEYS: &[&str] = &[
    "redis",
    "command",
    "http",
    "prometheus",
    "cpu",
    "per_instance",
    "steps",
    "timeout",
];
pub(super) const REDIS_KEYS: &[&str] = &["url", "llen"];
pub(super) const HTTP_KEYS: &[&str] = &["url", "json"];
pub(super) const PROMETHEUS_KEYS: &[&str] = &["url", "metric", "labels"];
pub(super) const CPU_KEYS: &[&str] = &["utilization"];
pub(super) const STEP_KEYS: &[&str] = &["above", "instances"];
pub(super) const WINDOW_KEYS: &[&str] = &["start", "end", "timezone", "min", "max"];
pub(super) const BEHAVIOR_KEYS: &[&str] = &["tolerance", "scale_up", "scale_down"];
pub(super) const SCALE_BEHAVIOR_KEYS: &[&str] = &["stabilization", "max_step", "period"];
pub(super) const SCALE_DOWN_KEYS: &[&str] = &["order", "idle"];
pub(super) const IDLE_KEYS: &[&str] = &["laravel_json", "busy", "idle"];

/// Shortest `interval`.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// A metric's `timeout` default is the smaller of `interval` and this.
const DEFAULT_METRIC_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `cpu.utilization` (% of one core) and `max_step` percent.
const MAX_PERCENT: u64 = 1000;

const STEPS_EXAMPLE: &str = "steps: [{ above: 100, instances: 5 }]";

/// Positions the cross checks need.
pub(crate) struct AutoscaleMeta {
    /// The `autoscale` key.
    pub(crate) key: Origin,
    pub(crate) max_origin: Origin,
    /// `min` and `max` were both accepted and `min <= max`.
    pub(crate) bounds_ok: bool,
}

/// A value that was accepted, with where it was written.
struct At<T> {
    value: T,
    origin: Origin,
}

/// `None` when the key is null (no autoscaling) or not a mapping
/// (reported).
pub(super) fn parse_autoscale(
    node: &Node,
    key: &Origin,
    path: &str,
    ctx: &mut Ctx<'_>,
) -> Option<(Autoscale, AutoscaleMeta)> {
    if is_null(node) {
        return None;
    }
    let entries = ctx.map(node, path)?;
    let mut a = Autoscale {
        min: 0,
        max: 0,
        interval: DEFAULT_AUTOSCALE_INTERVAL,
        metrics: Vec::new(),
        windows: Vec::new(),
        behavior: AutoscaleBehavior::default(),
        fallback: None,
        dry_run: false,
    };
    let (mut min, mut max) = (None, None);
    let (mut min_seen, mut max_seen) = (false, false);
    let mut metrics = Vec::new();
    let mut windows = Vec::new();
    let mut fallback = None;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "min" => {
                let got = ctx.u32(n, &kpath, SCALE_LIMIT);
                min_seen |= !matches!(got, Got::Null);
                min = at(n, got);
            }
            "max" => {
                let got = ctx.u32(n, &kpath, SCALE_LIMIT);
                max_seen |= !matches!(got, Got::Null);
                match got {
                    Got::Val(0) => ctx.err(
                        &n.origin,
                        &kpath,
                        "must be at least 1 (for a process that never runs, use scale: 0 without autoscale)",
                    ),
                    got => max = at(n, got),
                }
            }
            "interval" => match ctx.duration(n, &kpath) {
                Got::Val(d) if d < MIN_INTERVAL => {
                    ctx.err(&n.origin, &kpath, "must be at least 1s")
                }
                got => set(&mut a.interval, got),
            },
            "metrics" => metrics = read_list(n, &kpath, ctx, read_metric),
            "windows" => windows = read_list(n, &kpath, ctx, read_window),
            "behavior" => read_behavior(n, &kpath, ctx, &mut a.behavior),
            "fallback" => fallback = at(n, ctx.u32(n, &kpath, SCALE_LIMIT)),
            "dry_run" => set(&mut a.dry_run, ctx.bool(n, &kpath)),
            _ => ctx.unknown_key(e, path, AUTOSCALE_KEYS, ""),
        }
    }
    for (given, k, example) in [(min_seen, "min", "min: 2"), (max_seen, "max", "max: 20")] {
        if !given {
            ctx.err(
                &node.origin,
                &join(path, k),
                format!("missing `{k}`: autoscale needs both bounds, e.g. {example}"),
            );
        }
    }
    let mut bounds_ok = false;
    if let (Some(lo), Some(hi)) = (&min, &max) {
        if lo.value > hi.value {
            ctx.err(
                &lo.origin,
                &join(path, "min"),
                format!("min {} is above max {}", lo.value, hi.value),
            );
        } else {
            bounds_ok = true;
            a.min = lo.value;
            a.max = hi.value;
        }
    }
    let default_timeout = a.interval.min(DEFAULT_METRIC_TIMEOUT);
    for m in metrics {
        if bounds_ok {
            check_rows(&m, &a, &format!("{path}.metrics[{}]", m.index), ctx);
        }
        a.metrics.push(AutoscaleMetric {
            source: m.source,
            target: m.target,
            timeout: m.timeout.unwrap_or(default_timeout),
        });
    }
    for w in windows {
        if bounds_ok {
            check_window_bounds(&w, &a, &format!("{path}.windows[{}]", w.index), ctx);
        }
        a.windows.push(w.window);
    }
    if let Some(f) = fallback {
        if bounds_ok && !(a.min..=a.max).contains(&f.value) {
            ctx.err(
                &f.origin,
                &join(path, "fallback"),
                format!(
                    "fallback {} is outside min..max ({} to {})",
                    f.value, a.min, a.max
                ),
            );
        } else {
            a.fallback = Some(f.value);
        }
    }
    let meta = AutoscaleMeta {
        key: key.clone(),
        max_origin: max.map_or_else(|| node.origin.clone(), |m| m.origin),
        bounds_ok,
    };
    Some((a, meta))
}

fn is_null(node: &Node) -> bool {
    matches!(&node.value, Value::Scalar { text, style: Style::Plain } if is_null_literal(text))
}

fn at<T>(node: &Node, got: Got<T>) -> Option<At<T>> {
    got.val().map(|value| At {
        value,
        origin: node.origin.clone(),
    })
}

/// A list of entries read by `item`; a null value is an empty list.
fn read_list<T>(
    node: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
    item: fn(&Node, &str, usize, &mut Ctx<'_>) -> Option<T>,
) -> Vec<T> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| item(n, &format!("{path}[{i}]"), i, ctx))
            .collect(),
        _ if is_null(node) => Vec::new(),
        _ => {
            ctx.err(
                &node.origin,
                path,
                format!("expected a list, found {}", node.kind_name()),
            );
            Vec::new()
        }
    }
}

/// A string that may not use per-instance variables (not expanded here).
fn process_wide(node: &Node, path: &str, ctx: &mut Ctx<'_>, s: &str) -> bool {
    match instance_var_used(s) {
        Some(var) => {
            ctx.err(
                &node.origin,
                path,
                format!("`${{{var}}}` is per instance: the autoscaler samples once for the whole process"),
            );
            false
        }
        None => true,
    }
}

/// A non-empty, process-wide string.
fn required_text(node: &Node, path: &str, ctx: &mut Ctx<'_>) -> Option<String> {
    match ctx.string(node, path) {
        Got::Val(s) if s.trim().is_empty() => {
            ctx.err(&node.origin, path, "is empty");
            None
        }
        Got::Val(s) => process_wide(node, path, ctx, &s).then_some(s),
        Got::Null => {
            ctx.err(&node.origin, path, "is empty");
            None
        }
        Got::Bad => None,
    }
}

/// A required value: null is an error ("is empty"), reported as `Bad`.
fn non_null<T>(
    node: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
    read: impl FnOnce(&mut Ctx<'_>) -> Got<T>,
) -> Got<T> {
    match read(ctx) {
        Got::Null => {
            ctx.err(&node.origin, path, "is empty");
            Got::Bad
        }
        got => got,
    }
}

/// "missing `key`, e.g. …" at the mapping.
fn missing(node: &Node, path: &str, key: &str, example: &str, ctx: &mut Ctx<'_>) {
    ctx.err(
        &node.origin,
        &join(path, key),
        format!("missing `{key}`, e.g. {example}"),
    );
}

// ------------------------------------------------------------------ metrics

/// A metric read from its entry, before the checks against `min`/`max`.
struct Metric {
    index: usize,
    source: MetricSource,
    target: MetricTarget,
    timeout: Option<Duration>,
    /// Where each step row's `instances` was written, in row order.
    row_origins: Vec<Origin>,
}

fn read_metric(node: &Node, path: &str, index: usize, ctx: &mut Ctx<'_>) -> Option<Metric> {
    let entries = ctx.map(node, path)?;
    let mut source_key: Option<&Entry> = None;
    let mut source = None;
    let mut target_key: Option<&Entry> = None;
    let mut target = None;
    let mut row_origins = Vec::new();
    let mut timeout = None;
    let mut ok = true;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        let key = e.key.as_str();
        match key {
            _ if SOURCE_KEYS.contains(&key) => {
                if let Some(first) = source_key.filter(|f| f.key != key) {
                    ctx.err(
                        &e.key_origin,
                        &kpath,
                        format!(
                            "a second source in one metric: `{}` and `{key}`; give each source its own entry under `metrics:`",
                            first.key
                        ),
                    );
                    ok = false;
                    continue;
                }
                source_key = Some(e);
                source = read_source(key, n, &kpath, ctx);
                ok &= source.is_some();
            }
            "per_instance" | "steps" => {
                if let Some(first) = target_key.filter(|f| f.key != key) {
                    ctx.err(
                        &e.key_origin,
                        &kpath,
                        format!("both `{}` and `{key}`: a metric has one target", first.key),
                    );
                    ok = false;
                    continue;
                }
                target_key = Some(e);
                target = if key == "steps" {
                    read_steps(n, &kpath, ctx, &mut row_origins)
                } else {
                    match ctx.number(n, &kpath) {
                        Got::Val(v) if v > 0.0 => Some(MetricTarget::PerInstance(v)),
                        Got::Val(_) => {
                            ctx.err(&n.origin, &kpath, "must be more than 0");
                            None
                        }
                        Got::Null => {
                            ctx.err(
                                &n.origin,
                                &kpath,
                                "is empty: give a number, e.g. per_instance: 100",
                            );
                            None
                        }
                        Got::Bad => None,
                    }
                };
                ok &= target.is_some();
            }
            "timeout" => match ctx.duration(n, &kpath) {
                Got::Val(Duration::ZERO) => {
                    ctx.err(&n.origin, &kpath, "must be more than 0");
                    ok = false;
                }
                Got::Val(d) => timeout = Some(d),
                Got::Null => {}
                Got::Bad => ok = false,
            },
            _ => {
                ctx.unknown_key(e, path, METRIC_KEYS, "");
                ok = false;
            }
        }
    }
    let Some(source_key) = source_key else {
        ctx.err(
            &node.origin,
            path,
            "missing the metric's source: one of redis, command, http, prometheus, cpu",
        );
        return None;
    };
    if source_key.key == "cpu" {
        if let Some(t) = target_key {
            ctx.err(
                &t.key_origin,
                &join(path, &t.key),
                "a cpu metric takes no `per_instance` or `steps`: its target is `cpu.utilization`",
            );
            return None;
        }
        target = Some(MetricTarget::Utilization);
    } else if target_key.is_none() {
        ctx.err(
            &node.origin,
            path,
            format!("missing the target: per_instance: N (desired = ceil(value / N)) or {STEPS_EXAMPLE}"),
        );
        return None;
    }
    match (ok, source, target) {
        (true, Some(source), Some(target)) => Some(Metric {
            index,
            source,
            target,
            timeout,
            row_origins,
        }),
        _ => None,
    }
}

fn read_source(kind: &str, node: &Node, path: &str, ctx: &mut Ctx<'_>) -> Option<MetricSource> {
    if kind == "command" {
        return match ctx.string_list(node, path, "[\"php\", \"artisan\", \"queue:size\"]") {
            Got::Val(c) if c.first().is_none_or(|a| a.trim().is_empty()) => {
                ctx.err(
                    &node.origin,
                    path,
                    "is empty: give the program and its arguments",
                );
                None
            }
            Got::Val(c) => {
                let wide = c.iter().all(|a| process_wide(node, path, ctx, a));
                wide.then_some(MetricSource::Command(c))
            }
            Got::Null => {
                ctx.err(
                    &node.origin,
                    path,
                    "is empty: give the program and its arguments",
                );
                None
            }
            Got::Bad => None,
        };
    }
    let keys = match kind {
        "redis" => REDIS_KEYS,
        "http" => HTTP_KEYS,
        "prometheus" => PROMETHEUS_KEYS,
        _ => CPU_KEYS,
    };
    let entries = ctx.map(node, path)?;
    let mut ok = true;
    let mut url = None;
    let mut second = None; // llen, json or metric
    let mut labels = std::collections::BTreeMap::new();
    let mut utilization = None;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            k if !keys.contains(&k) => {
                ctx.unknown_key(e, path, keys, "");
                ok = false;
            }
            "url" => {
                url = required_text(n, &kpath, ctx).filter(|u| {
                    let checked = if kind == "redis" {
                        check_redis_url(u)
                    } else {
                        check_web_url(u, true, "http://127.0.0.1:8080/stats")
                    };
                    checked.map_err(|m| ctx.err(&n.origin, &kpath, m)).is_ok()
                });
                ok &= url.is_some();
            }
            "llen" => {
                second = required_text(n, &kpath, ctx);
                ok &= second.is_some();
            }
            "json" => {
                second =
                    required_text(n, &kpath, ctx).filter(|p| check_json_path(n, &kpath, p, ctx));
                ok &= second.is_some();
            }
            "metric" => {
                second = required_text(n, &kpath, ctx)
                    .filter(|m| check_prometheus_name(n, &kpath, m, "metric", true, ctx));
                ok &= second.is_some();
            }
            "labels" => ok &= read_labels(n, &kpath, ctx, &mut labels),
            _ => match ctx.number(n, &kpath) {
                Got::Val(v) if v > 0.0 && v <= MAX_PERCENT as f64 => utilization = Some(v),
                Got::Val(_) => {
                    ctx.err(
                        &n.origin,
                        &kpath,
                        "must be more than 0 and at most 1000 (% of one core per instance)",
                    );
                    ok = false;
                }
                Got::Null => {
                    ctx.err(&n.origin, &kpath, "is empty, e.g. utilization: 75");
                    ok = false;
                }
                Got::Bad => ok = false,
            },
        }
    }
    let given = |k: &str| entries.iter().any(|e| e.key == k);
    let mut need = |k: &str, example: &str, ctx: &mut Ctx<'_>| {
        if !given(k) {
            missing(node, path, k, example, ctx);
            ok = false;
        }
    };
    match kind {
        "redis" => {
            need("url", "url: \"redis://127.0.0.1:6379/0\"", ctx);
            need("llen", "llen: \"queues:default\"", ctx);
        }
        "http" => {
            need("url", "url: \"http://127.0.0.1:8080/stats\"", ctx);
            need("json", "json: \"queues.default.pending\"", ctx);
        }
        "prometheus" => {
            need("url", "url: \"http://127.0.0.1:9090/metrics\"", ctx);
            need("metric", "metric: \"jobs_pending\"", ctx);
        }
        _ => need("utilization", "utilization: 75", ctx),
    }
    if !ok {
        return None;
    }
    match kind {
        "redis" => Some(MetricSource::Redis {
            url: url?,
            llen: second?,
        }),
        "http" => Some(MetricSource::Http {
            url: url?,
            json: second?,
        }),
        "prometheus" => Some(MetricSource::Prometheus {
            url: url?,
            metric: second?,
            labels,
        }),
        _ => Some(MetricSource::Cpu {
            utilization: utilization?,
        }),
    }
}

/// `redis://[user][:password@]host[:port][/db]`, or `rediss://` (TLS).
fn check_redis_url(u: &str) -> Result<(), String> {
    const EXAMPLE: &str = "redis://127.0.0.1:6379/0";
    let lower = u.to_ascii_lowercase();
    let Some(rest) = ["redis://", "rediss://"]
        .iter()
        .find(|s| lower.starts_with(*s))
        .and_then(|s| u.get(s.len()..))
    else {
        return Err(format!(
            "`{}` is not a redis:// or rediss:// URL, e.g. {EXAMPLE}",
            shorten(u)
        ));
    };
    let (authority, db) = match rest.split_once('/') {
        Some((a, db)) => (a, db),
        None => (rest, ""),
    };
    check_authority(u, authority, EXAMPLE)?;
    if !db.is_empty() && (!db.chars().all(|c| c.is_ascii_digit()) || db.parse::<u32>().is_err()) {
        return Err(format!(
            "`{}` has database `{}`; the path is a database number, e.g. {EXAMPLE}",
            shorten(u),
            shorten(db)
        ));
    }
    Ok(())
}

/// A dotted path into a JSON document: non-empty segments (numbers index
/// arrays). The error points at the empty segment.
fn check_json_path(node: &Node, path: &str, p: &str, ctx: &mut Ctx<'_>) -> bool {
    let mut offset = 0;
    for segment in p.split('.') {
        if segment.is_empty() || segment.trim() != segment {
            let origin = origin_within(node, p, offset);
            ctx.err(
                &origin,
                path,
                format!(
                    "`{}` has an empty or padded segment at character {}: a dotted path like queues.default.pending (numbers index arrays: jobs.0.count)",
                    shorten(p),
                    offset + 1
                ),
            );
            return false;
        }
        offset += segment.chars().count() + 1;
    }
    true
}

/// A Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or, without
/// `colons`, a label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn check_prometheus_name(
    node: &Node,
    path: &str,
    name: &str,
    what: &str,
    colons: bool,
    ctx: &mut Ctx<'_>,
) -> bool {
    let allowed = |c: char, first: bool| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (colons && c == ':')
            || (!first && c.is_ascii_digit())
    };
    let bad = name.chars().enumerate().find(|&(i, c)| !allowed(c, i == 0));
    match bad {
        None => true,
        Some((i, c)) => {
            let shape = if colons {
                "[a-zA-Z_:][a-zA-Z0-9_:]*"
            } else {
                "[a-zA-Z_][a-zA-Z0-9_]*"
            };
            ctx.err(
                &origin_within(node, name, i),
                path,
                format!(
                    "`{}` is not a Prometheus {what} name ({shape}): `{c}` at character {}",
                    shorten(name),
                    i + 1
                ),
            );
            false
        }
    }
}

fn read_labels(
    node: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
    labels: &mut std::collections::BTreeMap<String, String>,
) -> bool {
    let Some(entries) = ctx.map(node, path) else {
        return false;
    };
    let mut ok = true;
    for e in entries {
        let kpath = join(path, &e.key);
        // Positions inside a key are not kept: errors point at the key.
        let name_node = Node::new(
            Value::Scalar {
                text: e.key.clone(),
                style: Style::Plain,
            },
            e.key_origin.clone(),
        );
        if e.key.is_empty() {
            ctx.err(&e.key_origin, &kpath, "an empty label name");
            ok = false;
            continue;
        }
        if !check_prometheus_name(&name_node, &kpath, &e.key, "label", false, ctx) {
            ok = false;
            continue;
        }
        let value = match ctx.text(&e.value, &kpath, "a label value") {
            Got::Val(v) => v,
            Got::Null => String::new(),
            Got::Bad => {
                ok = false;
                continue;
            }
        };
        if process_wide(&e.value, &kpath, ctx, &value) {
            labels.insert(e.key.clone(), value);
        } else {
            ok = false;
        }
    }
    ok
}

/// `steps:`: rows tried in order, so each row's `above` must be below the
/// previous row's (a later row with a higher bound could never match).
fn read_steps(
    node: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
    row_origins: &mut Vec<Origin>,
) -> Option<MetricTarget> {
    let Value::Seq(items) = &node.value else {
        ctx.err(
            &node.origin,
            path,
            format!("expected a list of rows, e.g. {STEPS_EXAMPLE}"),
        );
        return None;
    };
    if items.is_empty() {
        ctx.err(
            &node.origin,
            path,
            format!("is empty: give at least one row, e.g. {STEPS_EXAMPLE}"),
        );
        return None;
    }
    let mut rows = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let ipath = format!("{path}[{i}]");
        let Some(entries) = ctx.map(item, &ipath) else {
            ok = false;
            continue;
        };
        let (mut above, mut instances) = (None, None);
        for e in entries {
            let kpath = join(&ipath, &e.key);
            let n = &e.value;
            match e.key.as_str() {
                "above" => above = at(n, non_null(n, &kpath, ctx, |c| c.number(n, &kpath))),
                "instances" => {
                    instances = at(
                        n,
                        non_null(n, &kpath, ctx, |c| c.u32(n, &kpath, SCALE_LIMIT)),
                    )
                }
                _ => {
                    ctx.unknown_key(e, &ipath, STEP_KEYS, "");
                    ok = false;
                }
            }
        }
        for k in ["above", "instances"] {
            if !entries.iter().any(|e| e.key == k) {
                missing(item, &ipath, k, "{ above: 100, instances: 5 }", ctx);
            }
        }
        let (Some(above), Some(instances)) = (above, instances) else {
            ok = false;
            continue;
        };
        if let Some(prev) = rows.last().map(|r: &StepRow| r.above) {
            if above.value >= prev {
                ctx.err(
                    &above.origin,
                    &join(&ipath, "above"),
                    format!(
                        "{} is not below the previous row's {prev}: rows are tried in order, highest `above` first, so this row would never match",
                        above.value
                    ),
                );
                ok = false;
            }
        }
        row_origins.push(instances.origin);
        rows.push(StepRow {
            above: above.value,
            instances: instances.value,
        });
    }
    ok.then_some(MetricTarget::Steps(rows))
}

/// Each step row's `instances` within the process's `min..max`.
fn check_rows(m: &Metric, a: &Autoscale, path: &str, ctx: &mut Ctx<'_>) {
    let MetricTarget::Steps(rows) = &m.target else {
        return;
    };
    for (i, (row, origin)) in rows.iter().zip(&m.row_origins).enumerate() {
        if !(a.min..=a.max).contains(&row.instances) {
            ctx.err(
                origin,
                &format!("{path}.steps[{i}].instances"),
                format!(
                    "{} is outside autoscale min..max ({} to {}): the row could never take effect",
                    row.instances, a.min, a.max
                ),
            );
        }
    }
}

// ------------------------------------------------------------------ windows

struct Window {
    index: usize,
    window: AutoscaleWindow,
    min_origin: Option<Origin>,
    max_origin: Option<Origin>,
}

fn read_window(node: &Node, path: &str, index: usize, ctx: &mut Ctx<'_>) -> Option<Window> {
    let entries = ctx.map(node, path)?;
    let mut w = AutoscaleWindow {
        start: String::new(),
        end: String::new(),
        timezone: zone::default_zone(ctx.env_var("TZ")).to_string(),
        min: None,
        max: None,
    };
    let (mut min, mut max) = (None, None);
    let mut ok = true;
    let mut end_origin = None;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            k @ ("start" | "end") => match non_null(n, &kpath, ctx, |c| read_cron(n, &kpath, c)) {
                Got::Val(c) if k == "start" => w.start = c,
                Got::Val(c) => {
                    w.end = c;
                    end_origin = Some(n.origin.clone());
                }
                Got::Null | Got::Bad => ok = false,
            },
            "timezone" => match ctx.opt_string(n, &kpath) {
                Got::Val(Some(name)) => match zone::resolve(&name) {
                    Ok(tz) => w.timezone = tz.to_string(),
                    Err(m) => {
                        ctx.err(&n.origin, &kpath, m);
                        ok = false;
                    }
                },
                Got::Val(None) | Got::Null => {}
                Got::Bad => ok = false,
            },
            "min" | "max" => {
                let got = at(n, ctx.u32(n, &kpath, SCALE_LIMIT));
                ok &= got.is_some() || is_null(n);
                if e.key == "min" {
                    min = got;
                } else {
                    max = got;
                }
            }
            _ => {
                ctx.unknown_key(e, path, WINDOW_KEYS, "");
                ok = false;
            }
        }
    }
    for (k, example) in [
        ("start", "start: \"0 9 * * 1-5\""),
        ("end", "end: \"0 18 * * 1-5\""),
    ] {
        if !entries.iter().any(|e| e.key == k) {
            missing(node, path, k, example, ctx);
            ok = false;
        }
    }
    if ok && min.is_none() && max.is_none() {
        ctx.err(
            &node.origin,
            path,
            "a window without `min` or `max` changes nothing: give one or both",
        );
        ok = false;
    }
    if let (Some(lo), Some(hi)) = (&min, &max) {
        if lo.value > hi.value {
            ctx.err(
                &lo.origin,
                &join(path, "min"),
                format!("min {} is above this window's max {}", lo.value, hi.value),
            );
            ok = false;
        }
    }
    if let Some(origin) = end_origin.filter(|_| !w.start.is_empty() && w.start == w.end) {
        ctx.err(
            &origin,
            &join(path, "end"),
            "is the same as `start`: the window would never be active",
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    w.min = min.as_ref().map(|m| m.value);
    w.max = max.as_ref().map(|m| m.value);
    Some(Window {
        index,
        window: w,
        min_origin: min.map(|m| m.origin),
        max_origin: max.map(|m| m.origin),
    })
}

/// A window may raise the lower bound or lower the upper one, but only
/// within the process's `min..max`.
fn check_window_bounds(w: &Window, a: &Autoscale, path: &str, ctx: &mut Ctx<'_>) {
    if let (Some(m), Some(origin)) = (w.window.min, &w.min_origin) {
        if m > a.max {
            ctx.err(
                origin,
                &join(path, "min"),
                format!("min {m} is above autoscale max {}", a.max),
            );
        }
    }
    if let (Some(m), Some(origin)) = (w.window.max, &w.max_origin) {
        if m < a.min {
            ctx.err(
                origin,
                &join(path, "max"),
                format!("max {m} is below autoscale min {}", a.min),
            );
        }
    }
}

// ----------------------------------------------------------------- behavior

fn read_behavior(node: &Node, path: &str, ctx: &mut Ctx<'_>, b: &mut AutoscaleBehavior) {
    let Some(entries) = ctx.map(node, path) else {
        return;
    };
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "tolerance" => match ctx.number(n, &kpath) {
                Got::Val(t) if (0.0..1.0).contains(&t) => b.tolerance = t,
                Got::Val(_) => ctx.err(
                    &n.origin,
                    &kpath,
                    "must be 0 or more and below 1 (a relative change, 0.1 = 10 %)",
                ),
                Got::Null | Got::Bad => {}
            },
            "scale_up" => read_scale_behavior(n, &kpath, ctx, &mut b.scale_up),
            "scale_down" => read_scale_behavior(n, &kpath, ctx, &mut b.scale_down),
            _ => ctx.unknown_key(e, path, BEHAVIOR_KEYS, ""),
        }
    }
}

fn read_scale_behavior(node: &Node, path: &str, ctx: &mut Ctx<'_>, s: &mut ScaleBehavior) {
    let Some(entries) = ctx.map(node, path) else {
        return;
    };
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "stabilization" => set(&mut s.stabilization, ctx.duration(n, &kpath)),
            "max_step" => set(
                &mut s.max_step,
                ctx.parsed(n, &kpath, "a count or a percent", parse_max_step),
            ),
            "period" => match ctx.duration(n, &kpath) {
                Got::Val(Duration::ZERO) => ctx.err(&n.origin, &kpath, "must be more than 0"),
                got => set(&mut s.period, got),
            },
            _ => ctx.unknown_key(e, path, SCALE_BEHAVIOR_KEYS, ""),
        }
    }
}

/// `4` (instances) or `100%` (of the current count, at most 1000 %).
fn parse_max_step(s: &str) -> Result<MaxStep, String> {
    let t = s.trim();
    match t.strip_suffix('%') {
        Some(p) => parse_uint(p.trim_end(), MAX_PERCENT)
            .map_err(|_| format!("`{}` is not a percent from 0% to 1000%", shorten(t)))
            .and_then(|v| u32::try_from(v).map_err(|e| e.to_string()))
            .map(MaxStep::Percent),
        None => parse_uint(t, SCALE_LIMIT)
            .map_err(|m| format!("{m} (or a percent like 100%)"))
            .and_then(|v| u32::try_from(v).map_err(|e| e.to_string()))
            .map(MaxStep::Instances),
    }
}

// --------------------------------------------------------------- scale_down

/// `scale_down:`: `order`, and `idle` (required by `idle_first`, checked
/// but unused with `highest`).
pub(super) fn parse_scale_down(node: &Node, path: &str, ctx: &mut Ctx<'_>) -> ScaleDown {
    let mut sd = ScaleDown::default();
    let Some(entries) = ctx.map(node, path) else {
        return sd;
    };
    let mut order_origin = None;
    let mut order_ok = true;
    let mut idle_key = None;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "order" => match ctx.choice(n, &kpath, ScaleDownOrder::NAMES) {
                Got::Val(o) => {
                    sd.order = o;
                    order_origin = Some(n.origin.clone());
                }
                Got::Bad => order_ok = false,
                Got::Null => {}
            },
            "idle" if is_null(n) => {}
            "idle" => {
                idle_key = Some(e.key_origin.clone());
                sd.idle = read_idle(n, &kpath, ctx);
            }
            _ => ctx.unknown_key(e, path, SCALE_DOWN_KEYS, ""),
        }
    }
    // `idle` with `highest` is checked but not used (SPEC 12's example
    // has both), so switching to idle_first later needs no other change.
    if order_ok && sd.order == ScaleDownOrder::IdleFirst && idle_key.is_none() {
        ctx.err(
            order_origin.as_ref().unwrap_or(&node.origin),
            &join(path, "order"),
            "idle_first needs `idle`: how busy and idle are told apart, e.g. idle: { laravel_json: true } or idle: { busy: REGEX, idle: REGEX }",
        );
    }
    sd
}

fn read_idle(node: &Node, path: &str, ctx: &mut Ctx<'_>) -> Option<IdleDetection> {
    let entries = ctx.map(node, path)?;
    let mut laravel = None;
    let (mut busy, mut idle) = (None, None);
    let mut ok = true;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "laravel_json" => match ctx.bool(n, &kpath) {
                Got::Val(true) => laravel = Some(e.key_origin.clone()),
                Got::Val(false) | Got::Null => {}
                Got::Bad => ok = false,
            },
            k @ ("busy" | "idle") => {
                let re = required_text(n, &kpath, ctx).filter(|r| check_regex(n, &kpath, r, ctx));
                ok &= re.is_some();
                if k == "busy" {
                    busy = re.map(|r| (r, e.key_origin.clone()));
                } else {
                    idle = re.map(|r| (r, e.key_origin.clone()));
                }
            }
            _ => {
                ctx.unknown_key(e, path, IDLE_KEYS, "");
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    match (laravel, busy, idle) {
        (Some(_), None, None) => Some(IdleDetection::LaravelJson),
        (None, Some((busy, _)), Some((idle, _))) => Some(IdleDetection::Regex { busy, idle }),
        (Some(_), b, i) => {
            if let Some((_, origin)) = b.as_ref().or(i.as_ref()) {
                ctx.err(origin, path, "laravel_json or busy/idle regexes, not both");
            }
            None
        }
        (None, Some(_), None) | (None, None, Some(_)) => {
            let k = if entries.iter().any(|e| e.key == "busy") {
                "idle"
            } else {
                "busy"
            };
            missing(
                node,
                path,
                k,
                "{ busy: \"Processing\", idle: \"Processed|Failed\" }",
                ctx,
            );
            None
        }
        (None, None, None) => {
            ctx.err(
                &node.origin,
                path,
                "give laravel_json: true, or busy and idle regexes over the instance's output lines",
            );
            None
        }
    }
}

/// A regex as the manager will match it (the `regex` crate's syntax); the
/// error is the engine's one-line reason, at the value.
fn check_regex(node: &Node, path: &str, re: &str, ctx: &mut Ctx<'_>) -> bool {
    match RegexBuilder::new(re).size_limit(1 << 20).build() {
        Ok(_) => true,
        Err(e) => {
            let text = e.to_string();
            let reason = text
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .unwrap_or(text.trim());
            ctx.err(
                &node.origin,
                path,
                format!("`{}` is not a valid regex: {reason}", shorten(re)),
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        for ok in [
            "redis://127.0.0.1:6379/0",
            "redis://localhost",
            "rediss://user:pw@cache.internal:6380/15",
            "redis://:secret@[::1]:6379",
            "REDIS://h/",
        ] {
            assert_eq!(check_redis_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://h",
            "redis://",
            "redis://h:0/0",
            "redis://h:99999",
            "redis://h/x",
            "redis://h/0/1",
            "redis://h h",
        ] {
            assert!(check_redis_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_steps() {
        assert_eq!(parse_max_step("4"), Ok(MaxStep::Instances(4)));
        assert_eq!(parse_max_step("0"), Ok(MaxStep::Instances(0)));
        assert_eq!(parse_max_step("100%"), Ok(MaxStep::Percent(100)));
        assert_eq!(parse_max_step(" 50 %"), Ok(MaxStep::Percent(50)));
        assert_eq!(parse_max_step("1000%"), Ok(MaxStep::Percent(1000)));
        for bad in ["1001%", "-1", "%", "1.5", "x%", "-5%"] {
            assert!(parse_max_step(bad).is_err(), "{bad}");
        }
    }
}
