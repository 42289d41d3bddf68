//! Checks that need the whole config: API exposure, backoff order,
//! per-process limits and ports, names, dependencies and cycles.
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
use crate::Config;

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

pub(super) fn cross_checks(
    config: &Config,
    metas: &BTreeMap<String, ProcMeta>,
    host_origin: Option<&Origin>,
    global_node: Option<&Node>,
    ctx: &mut Ctx<'_>,
) {
    let g = &config.global;
    let global_origin = global_node.map(|n| n.origin.clone());
    if g.api_enabled && !is_loopback(&g.api_host) && g.api_auth.is_none() && !g.api_insecure {
        let origin = host_origin
            .cloned()
            .or(global_origin.clone())
            .unwrap_or(Origin::Env(String::new()));
        ctx.err(
            &origin,
            "global.api_host",
            format!(
                "refusing a non-loopback API (`{}`) without api_auth; set api_auth or api_insecure: true",
                g.api_host
            ),
        );
    }
    if g.restart_backoff_max < g.restart_backoff_initial {
        let origin = global_origin.unwrap_or(Origin::Env(String::new()));
        ctx.err(
            &origin,
            "global.restart_backoff_max",
            "is below restart_backoff_initial",
        );
    }

    for (name, p) in &config.processes {
        let Some(meta) = metas.get(name) else {
            continue;
        };
        let base = format!("processes.{name}");
        if !is_valid_name(name) {
            ctx.err(
                &meta.name_origin,
                &base,
                format!("invalid process name `{}`: use lowercase letters, digits, `-` and `_`, starting with a letter or digit", shorten(name)),
            );
        }
        let scale_origin = meta.scale_origin.as_ref().unwrap_or(&meta.origin);
        if let Some(max) = p.max_scale {
            if p.scale > max {
                ctx.err(
                    scale_origin,
                    &format!("{base}.scale"),
                    format!("scale {} is above max_scale {max}", p.scale),
                );
            }
            if max > g.max_process_scale {
                let origin = meta.max_scale_origin.as_ref().unwrap_or(&meta.origin);
                ctx.err(
                    origin,
                    &format!("{base}.max_scale"),
                    format!(
                        "max_scale {max} is above global.max_process_scale {}",
                        g.max_process_scale
                    ),
                );
            }
        }
        if p.scale > g.max_process_scale {
            ctx.err(
                scale_origin,
                &format!("{base}.scale"),
                format!(
                    "scale {} is above global.max_process_scale {}",
                    p.scale, g.max_process_scale
                ),
            );
        }
        if let Some(port) = p.port_base {
            let top = u64::from(p.scale.max(p.max_scale.unwrap_or(0)));
            if u64::from(port) + top > u64::from(u16::MAX) {
                let origin = meta.port_base_origin.as_ref().unwrap_or(&meta.origin);
                ctx.err(
                    origin,
                    &format!("{base}.port_base"),
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
        for (i, (dep, origin)) in meta.depends.iter().enumerate() {
            let path = format!("{base}.depends_on[{i}]");
            if !config.processes.contains_key(dep) {
                let names: Vec<&str> = config.processes.keys().map(String::as_str).collect();
                let hint = suggest::hint(dep, &names);
                ctx.err(
                    origin,
                    &path,
                    format!("no process named `{}`{hint}", shorten(dep)),
                );
            }
        }
    }

    // A process name equal to an instance name of another process.
    for (name, meta) in metas {
        let Some((owner, number)) = name.rsplit_once('-') else {
            continue;
        };
        let Some(owner_cfg) = config.processes.get(owner) else {
            continue;
        };
        if number.starts_with('0')
            || number.is_empty()
            || !number.chars().all(|c| c.is_ascii_digit())
        {
            continue;
        }
        let ceiling = owner_cfg
            .max_scale
            .unwrap_or(g.max_process_scale)
            .min(g.max_process_scale)
            .max(owner_cfg.scale);
        if number
            .parse::<u64>()
            .is_ok_and(|n| n >= 1 && n <= u64::from(ceiling))
        {
            ctx.err(
                &meta.name_origin,
                &format!("processes.{name}"),
                format!(
                    "process name `{name}` is also the name of instance {number} of process `{owner}` (its instances are {owner}-1 to {owner}-{ceiling}); rename one of them, or lower `{owner}`'s max_scale"
                ),
            );
        }
    }

    // Dependency cycles.
    for cycle in find_cycles(config) {
        let (first, second) = match (cycle.first(), cycle.get(1)) {
            (Some(a), Some(b)) => (a, b),
            _ => continue,
        };
        let origin = metas
            .get(first)
            .and_then(|m| m.depends.iter().find(|(d, _)| d == second))
            .map(|(_, o)| o.clone())
            .unwrap_or(Origin::Env(String::new()));
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
