//! Checks that need the whole config: API exposure, backoff order,
//! per-process limits and ports, what a one-shot or a scheduled process
//! may not have, names, dependencies (their conditions against the
//! dependencies' types) and cycles.
//!
//! Invariant: they run after every section was read, on values that are
//! each valid on their own (a rejected value kept its default), so a
//! mistake is reported once and does not cascade.

use std::collections::BTreeMap;

use super::graph::find_cycles;
use super::reader::{shorten, Ctx};
use super::ProcMeta;
use crate::suggest;
use crate::tree::{Node, Origin};
use crate::{
    instance_name, split_instance_name, Config, DependencyCondition, Global, ProcessConfig,
    RestartPolicy, ScaleLimit,
};

pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(crate) fn is_loopback(host: &str) -> bool {
    let h = host.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Runs every cross check; errors come in the order: API exposure, backoff
/// order, per process (name, scale limits, ports, dependencies), instance
/// name collisions, cycles.
pub(super) fn cross_checks(
    config: &Config,
    metas: &BTreeMap<String, ProcMeta>,
    host_origin: Option<&Origin>,
    global_node: Option<&Node>,
    ctx: &mut Ctx<'_>,
) {
    let global_origin = global_node.map(|n| n.origin.clone());
    check_api_exposure(&config.global, host_origin, global_origin.as_ref(), ctx);
    check_backoff_order(&config.global, global_origin.as_ref(), ctx);
    for (name, p) in &config.processes {
        let Some(meta) = metas.get(name) else {
            continue;
        };
        check_process_name(name, meta, ctx);
        check_scale_limits(name, p, meta, config.global.max_process_scale, ctx);
        check_ports(name, p, meta, ctx);
        check_kind(name, p, meta, ctx);
        check_schedule(name, p, meta, config.global.max_process_scale, ctx);
        check_autoscale(name, p, meta, config.global.max_process_scale, ctx);
        check_dependencies(config, metas, name, meta, ctx);
    }
    check_instance_name_collisions(config, metas, ctx);
    check_cycles(config, metas, ctx);
}

/// No origin known (a value from defaults or the environment).
fn nowhere() -> Origin {
    Origin::Env(String::new())
}

/// A non-loopback API needs `api_auth`, client certificates
/// (`api_tls.client_ca`) or an explicit `api_insecure`.
fn check_api_exposure(
    g: &Global,
    host_origin: Option<&Origin>,
    global_origin: Option<&Origin>,
    ctx: &mut Ctx<'_>,
) {
    let client_certs = g.api_tls.as_ref().is_some_and(|t| t.wants_client_cert());
    if g.api_enabled
        && !is_loopback(&g.api_host)
        && g.api_auth.is_none()
        && !client_certs
        && !g.api_insecure
    {
        let origin = host_origin
            .or(global_origin)
            .cloned()
            .unwrap_or_else(nowhere);
        ctx.err(
            &origin,
            "global.api_host",
            format!(
                "refusing a non-loopback API (`{}`) without api_auth; set api_auth, api_tls.client_ca or api_insecure: true",
                g.api_host
            ),
        );
    }
}

fn check_backoff_order(g: &Global, global_origin: Option<&Origin>, ctx: &mut Ctx<'_>) {
    if g.restart_backoff_max < g.restart_backoff_initial {
        let origin = global_origin.cloned().unwrap_or_else(nowhere);
        ctx.err(
            &origin,
            "global.restart_backoff_max",
            "is below restart_backoff_initial",
        );
    }
}

fn check_process_name(name: &str, meta: &ProcMeta, ctx: &mut Ctx<'_>) {
    if !is_valid_name(name) {
        ctx.err(
            &meta.name_origin,
            &format!("processes.{name}"),
            format!("invalid process name `{}`: use lowercase letters, digits, `-` and `_`, starting with a letter or digit", shorten(name)),
        );
    }
}

/// `scale` and `max_scale` against the scale rule
/// ([`ProcessConfig::scale_limits`]); the ports are [`check_ports`]'s.
fn check_scale_limits(
    name: &str,
    p: &ProcessConfig,
    meta: &ProcMeta,
    max_process_scale: u32,
    ctx: &mut Ctx<'_>,
) {
    let scale_path = format!("processes.{name}.scale");
    let scale_origin = meta.scale_origin.as_ref().unwrap_or(&meta.origin);
    let broken = p.scale_limits(p.scale, max_process_scale);
    for limit in &broken {
        if let ScaleLimit::AboveMaxScale { max } = limit {
            ctx.err(
                scale_origin,
                &scale_path,
                format!("scale {} is above max_scale {max}", p.scale),
            );
        }
    }
    if let Some(max) = p.max_scale {
        if let Err(ScaleLimit::AboveGlobalMax { .. }) = p.check_scale(max, max_process_scale) {
            let origin = meta.max_scale_origin.as_ref().unwrap_or(&meta.origin);
            ctx.err(
                origin,
                &format!("processes.{name}.max_scale"),
                format!("max_scale {max} is above global.max_process_scale {max_process_scale}"),
            );
        }
    }
    for limit in &broken {
        if let ScaleLimit::AboveGlobalMax { max } = limit {
            ctx.err(
                scale_origin,
                &scale_path,
                format!("scale {} is above global.max_process_scale {max}", p.scale),
            );
        }
    }
}

/// With `port_base`, the highest instance (`scale` or `max_scale`) must
/// still get a port; without it, nothing may use
/// `${PHPEEK_PM_INSTANCE_PORT}` without a default.
fn check_ports(name: &str, p: &ProcessConfig, meta: &ProcMeta, ctx: &mut Ctx<'_>) {
    if let Some(port) = p.port_base {
        let top = p
            .scale
            .max(p.max_scale.unwrap_or(0))
            .max(p.autoscale.as_ref().map_or(0, |a| a.max));
        let past_end = p
            .scale_limits(top, u32::MAX)
            .iter()
            .any(|l| matches!(l, ScaleLimit::PortsPastEnd { .. }));
        if past_end {
            let origin = meta.port_base_origin.as_ref().unwrap_or(&meta.origin);
            ctx.err(
                origin,
                &format!("processes.{name}.port_base"),
                format!("port_base {port} + {top} instances goes past port 65535"),
            );
        }
    } else {
        for (path, origin) in &meta.port_users {
            ctx.err(
                origin,
                path,
                "uses ${PHPEEK_PM_INSTANCE_PORT} but the process has no port_base (set port_base, or give a default: ${PHPEEK_PM_INSTANCE_PORT:-8080})",
            );
        }
    }
}

/// The list form (`depends_on: [a]`) means `healthy` for a longrun and
/// `completed_successfully` for a one-shot: settled here, once every
/// process's type is known. (A name that is no process keeps the
/// placeholder; it is reported.)
pub(super) fn resolve_list_conditions(config: &mut Config, metas: &BTreeMap<String, ProcMeta>) {
    let oneshots: std::collections::BTreeSet<String> = config
        .processes
        .iter()
        .filter(|(_, p)| p.is_oneshot())
        .map(|(n, _)| n.clone())
        .collect();
    for (name, p) in config.processes.iter_mut() {
        let Some(meta) = metas.get(name) else {
            continue;
        };
        for (dep, dm) in p.depends_on.iter_mut().zip(&meta.depends) {
            if dm.from_list {
                dep.condition = if oneshots.contains(&dep.process) {
                    DependencyCondition::CompletedSuccessfully
                } else {
                    DependencyCondition::Healthy
                };
            }
        }
    }
}

/// Each dependency names a process that has standing instances, with a
/// condition its type can meet.
fn check_dependencies(
    config: &Config,
    metas: &BTreeMap<String, ProcMeta>,
    name: &str,
    meta: &ProcMeta,
    ctx: &mut Ctx<'_>,
) {
    let Some(p) = config.processes.get(name) else {
        return;
    };
    for (dep, dm) in p.depends_on.iter().zip(&meta.depends) {
        let Some(target) = config.processes.get(&dep.process) else {
            let names: Vec<&str> = config.processes.keys().map(String::as_str).collect();
            let hint = suggest::hint(&dep.process, &names);
            ctx.err(
                &dm.origin,
                &dm.path,
                format!("no process named `{}`{hint}", shorten(&dep.process)),
            );
            continue;
        };
        let d = &dep.process;
        if target.schedule.is_some() {
            ctx.err(
                &dm.origin,
                &dm.path,
                format!(
                    "`{d}` is scheduled: it has no standing instances to wait for (only its runs)"
                ),
            );
            continue;
        }
        if dm.from_list || metas.get(d).is_some_and(|m| m.kind_rejected) {
            continue;
        }
        use DependencyCondition as C;
        match (target.is_oneshot(), dep.condition) {
            (false, C::Completed | C::CompletedSuccessfully) => ctx.err(
                &dm.origin,
                &dm.path,
                format!("`{d}` is a longrun: it never completes; use started or healthy"),
            ),
            (true, C::Healthy) => ctx.err(
                &dm.origin,
                &dm.path,
                format!("`{d}` is a one-shot: it is never healthy, it completes; use completed_successfully (or completed, or started)"),
            ),
            _ => {}
        }
    }
}

/// What a one-shot may not have, and what only a one-shot may have.
fn check_kind(name: &str, p: &ProcessConfig, meta: &ProcMeta, ctx: &mut Ctx<'_>) {
    let key = |k: &str| format!("processes.{name}.{k}");
    if p.is_oneshot() {
        if let (RestartPolicy::Always, Some(origin)) = (p.restart, &meta.restart_origin) {
            ctx.err(
                origin,
                &key("restart"),
                "`always` is not allowed for type: oneshot (it runs to its end): use never (the default) or on-failure",
            );
        }
        if let Some(origin) = &meta.schedule_key {
            ctx.err(
                origin,
                &key("schedule"),
                "a schedule is not for type: oneshot: each run of a scheduled process already runs to its end; drop `type: oneshot`",
            );
        }
        if let Some(origin) = &meta.health_check_key {
            ctx.err(
                origin,
                &key("health_check"),
                "is only for longrun processes: a one-shot is done when it exits (depend on it with completed_successfully)",
            );
        }
        if let Some(m) = &meta.autoscale {
            ctx.err(
                &m.key,
                &key("autoscale"),
                "is only for longrun processes: a one-shot runs to its end, it has no standing count to scale",
            );
        }
    } else if !meta.kind_rejected {
        let why = if p.schedule.is_some() {
            " (for the runs of a schedule: schedule.timeout)"
        } else {
            " (a longrun runs until stopped)"
        };
        if let Some(origin) = &meta.timeout_key {
            ctx.err(
                origin,
                &key("timeout"),
                format!("only for type: oneshot{why}"),
            );
        }
        if let Some(origin) = &meta.on_failure_key {
            let why = if p.schedule.is_some() {
                " (a failed run of a schedule is counted and the next tick runs)"
            } else {
                " (a longrun is restarted by its restart policy)"
            };
            ctx.err(
                origin,
                &key("on_failure"),
                format!("only for type: oneshot{why}"),
            );
        }
    }
}

/// A scheduled process has no standing instances: each run is one
/// instance, not restarted and not probed. Every key that assumes standing
/// instances is listed here (autoscaling joins this list).
fn check_schedule(
    name: &str,
    p: &ProcessConfig,
    meta: &ProcMeta,
    max_process_scale: u32,
    ctx: &mut Ctx<'_>,
) {
    let Some(schedule) = &p.schedule else {
        return;
    };
    if p.is_oneshot() {
        return; // reported by check_kind
    }
    let key = |k: &str| format!("processes.{name}.{k}");
    if p.scale > 1 {
        let origin = meta.scale_origin.as_ref().unwrap_or(&meta.origin);
        ctx.err(
            origin,
            &key("scale"),
            format!(
                "scale {} with a schedule: each run is one instance; for overlapping runs use schedule.concurrency: allow with max_concurrent",
                p.scale
            ),
        );
    }
    if let (RestartPolicy::Always | RestartPolicy::OnFailure, Some(origin)) =
        (p.restart, &meta.restart_origin)
    {
        ctx.err(
            origin,
            &key("restart"),
            format!(
                "`{}` with a schedule: runs are not restarted (the next tick runs again); use never (the default)",
                p.restart
            ),
        );
    }
    let standing: [(&str, Option<&Origin>); 6] = [
        ("health_check", meta.health_check_key.as_ref()),
        ("max_scale", meta.max_scale_origin.as_ref()),
        (
            "max_restart_attempts",
            meta.max_restart_attempts_key.as_ref(),
        ),
        ("autoscale", meta.autoscale.as_ref().map(|m| &m.key)),
        ("scale_down", meta.scale_down_key.as_ref()),
        ("rollout", meta.rollout_key.as_ref()),
    ];
    for (k, origin) in standing {
        if let Some(origin) = origin {
            ctx.err(
                origin,
                &key(k),
                "not with a schedule: a scheduled process has no standing instances (each run is one instance, not probed, scaled or restarted)",
            );
        }
    }
    if schedule.max_concurrent > max_process_scale {
        let origin = meta
            .schedule
            .as_ref()
            .and_then(|m| m.max_concurrent_origin.as_ref())
            .unwrap_or(&meta.origin);
        ctx.err(
            origin,
            &key("schedule.max_concurrent"),
            format!(
                "max_concurrent {} is above global.max_process_scale {max_process_scale}",
                schedule.max_concurrent
            ),
        );
    }
}

/// `autoscale.max` within the scale limits, and `scale` (where it starts)
/// within `autoscale.min..max`. (A one-shot or scheduled process with
/// autoscale is reported by [`check_kind`] / [`check_schedule`].)
fn check_autoscale(
    name: &str,
    p: &ProcessConfig,
    meta: &ProcMeta,
    max_process_scale: u32,
    ctx: &mut Ctx<'_>,
) {
    let (Some(a), Some(m)) = (&p.autoscale, &meta.autoscale) else {
        return;
    };
    if !m.bounds_ok || p.is_oneshot() || p.schedule.is_some() {
        return;
    }
    let max_path = format!("processes.{name}.autoscale.max");
    if let Some(ms) = p.max_scale.filter(|ms| a.max > *ms) {
        ctx.err(
            &m.max_origin,
            &max_path,
            format!("max {} is above the process's max_scale {ms}", a.max),
        );
    }
    if a.max > max_process_scale {
        ctx.err(
            &m.max_origin,
            &max_path,
            format!(
                "max {} is above global.max_process_scale {max_process_scale}",
                a.max
            ),
        );
    }
    if let Some(origin) = &meta.scale_origin {
        if !(a.min..=a.max).contains(&p.scale) {
            ctx.err(
                origin,
                &format!("processes.{name}.scale"),
                format!(
                    "scale {} is outside autoscale min..max ({} to {}): scale is where the autoscaler starts (leave it out to start at min)",
                    p.scale, a.min, a.max
                ),
            );
        }
    }
}

/// A process name may not be the name of an instance of another process,
/// up to the scale that process may reach.
fn check_instance_name_collisions(
    config: &Config,
    metas: &BTreeMap<String, ProcMeta>,
    ctx: &mut Ctx<'_>,
) {
    let g = &config.global;
    for (name, meta) in metas {
        let Some((owner, number)) = split_instance_name(name) else {
            continue;
        };
        let Some(owner_cfg) = config.processes.get(owner) else {
            continue;
        };
        let ceiling = owner_cfg
            .max_scale
            .unwrap_or(g.max_process_scale)
            .min(g.max_process_scale)
            .max(owner_cfg.scale);
        if number <= ceiling {
            ctx.err(
                &meta.name_origin,
                &format!("processes.{name}"),
                format!(
                    "process name `{name}` is also the name of instance {number} of process `{owner}` (its instances are {first} to {last}); rename one of them, or lower `{owner}`'s max_scale",
                    first = instance_name(owner, 1),
                    last = instance_name(owner, ceiling),
                ),
            );
        }
    }
}

fn check_cycles(config: &Config, metas: &BTreeMap<String, ProcMeta>, ctx: &mut Ctx<'_>) {
    for cycle in find_cycles(config) {
        let (first, second) = match (cycle.first(), cycle.get(1)) {
            (Some(a), Some(b)) => (a, b),
            _ => continue,
        };
        let origin = metas
            .get(first)
            .and_then(|m| m.depends.iter().find(|d| d.name == *second))
            .map(|d| d.origin.clone())
            .unwrap_or_else(nowhere);
        let shown = cycle.join(" -> ");
        let message = if cycle.len() == 2 {
            format!("dependency cycle: {shown} (a process cannot depend on itself)")
        } else {
            format!("dependency cycle: {shown}")
        };
        ctx.err(&origin, &format!("processes.{first}.depends_on"), message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web", "queue-default", "php_fpm", "0worker", "a"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "Web", "-web", "_web", "web.1", "web 1", "wéb", "web/1"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn loopback() {
        for h in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.evil"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
