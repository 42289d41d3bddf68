//! `autoscale.metrics`: each entry's source (redis, command, http,
//! prometheus, cpu) and target (`per_instance` or `steps`), and the step
//! rows against `min`/`max`.

use std::time::Duration;

use super::{
    at, missing, non_null, process_wide, required_text, CPU_KEYS, HTTP_KEYS, MAX_PERCENT,
    METRIC_KEYS, PROMETHEUS_KEYS, REDIS_KEYS, SOURCE_KEYS, STEPS_EXAMPLE, STEP_KEYS,
};
use crate::tree::{Entry, Node, Origin, Style, Value};
use crate::validate::health_check::{check_authority, check_web_url};
use crate::validate::reader::{join, origin_within, shorten, Ctx, Got};
use crate::validate::SCALE_LIMIT;
use crate::{Autoscale, MetricSource, MetricTarget, StepRow};

/// A metric read from its entry, before the checks against `min`/`max`.
pub(super) struct Metric {
    pub(super) index: usize,
    pub(super) source: MetricSource,
    pub(super) target: MetricTarget,
    pub(super) timeout: Option<Duration>,
    /// Where each step row's `instances` was written, in row order.
    row_origins: Vec<Origin>,
}

pub(super) fn read_metric(
    node: &Node,
    path: &str,
    index: usize,
    ctx: &mut Ctx<'_>,
) -> Option<Metric> {
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
            Got::Val(c) if c.first().is_some_and(|a| !a.trim().is_empty()) => {
                let wide = c.iter().all(|a| process_wide(node, path, ctx, a));
                wide.then_some(MetricSource::Command(c))
            }
            Got::Val(_) | Got::Null => {
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
pub(super) fn check_rows(m: &Metric, a: &Autoscale, path: &str, ctx: &mut Ctx<'_>) {
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
}
