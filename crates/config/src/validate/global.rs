//! The `global:` section.
//!
//! Invariant: every key of [`GLOBAL_KEYS`] has an arm here, and a value
//! with an error leaves the default of [`Global`] in place.

use std::path::PathBuf;

use super::hooks::parse_global_hooks;
use super::reader::{join, set, shorten, Ctx, Got};
use super::tls::parse_tls;
use super::{GLOBAL_KEYS, PROCESS_KEYS, SCALE_LIMIT};
use crate::tree::{Node, Origin};
use crate::{Global, LogFormat, LogLevel, LOG_BUFFER_RANGE};

pub(super) fn parse_global(node: &Node, ctx: &mut Ctx<'_>, g: &mut Global) -> Option<Origin> {
    let entries = ctx.map(node, "global")?;
    let mut host_origin = None;
    for e in entries {
        let path = join("global", &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "shutdown_timeout" => set(&mut g.shutdown_timeout, ctx.duration(n, &path)),
            "log_format" => set(&mut g.log_format, ctx.choice(n, &path, LogFormat::NAMES)),
            "log_level" => set(&mut g.log_level, ctx.choice(n, &path, LogLevel::NAMES)),
            "api_enabled" => set(&mut g.api_enabled, ctx.bool(n, &path)),
            "api_host" => {
                host_origin = Some(n.origin.clone());
                if let Got::Val(h) = ctx.string(n, &path) {
                    if h.trim().is_empty() {
                        ctx.err(&n.origin, &path, "must not be empty");
                    } else {
                        g.api_host = h;
                    }
                }
            }
            "api_port" => set(&mut g.api_port, ctx.u16(n, &path)),
            "api_auth" => set(&mut g.api_auth, ctx.opt_string(n, &path)),
            "api_socket" => {
                if let Got::Val(s) = ctx.opt_string(n, &path) {
                    g.api_socket = s.map(PathBuf::from);
                }
            }
            "api_insecure" => set(&mut g.api_insecure, ctx.bool(n, &path)),
            "api_tls" => set(&mut g.api_tls, parse_tls(n, ctx, &path)),
            "metrics_tls" => set(&mut g.metrics_tls, parse_tls(n, ctx, &path)),
            "metrics_enabled" => set(&mut g.metrics_enabled, ctx.bool(n, &path)),
            "metrics_host" => {
                if let Got::Val(h) = ctx.string(n, &path) {
                    if h.trim().is_empty() {
                        ctx.err(&n.origin, &path, "must not be empty");
                    } else {
                        g.metrics_host = h;
                    }
                }
            }
            "metrics_port" => set(&mut g.metrics_port, ctx.u16(n, &path)),
            "metrics_path" => {
                if let Got::Val(p) = ctx.string(n, &path) {
                    if p.starts_with('/') && !p.contains(char::is_whitespace) {
                        g.metrics_path = p;
                    } else {
                        ctx.err(
                            &n.origin,
                            &path,
                            format!(
                                "`{}` must start with `/` and contain no spaces, e.g. /metrics",
                                shorten(&p)
                            ),
                        );
                    }
                }
            }
            "max_process_scale" => match ctx.u32(n, &path, SCALE_LIMIT) {
                Got::Val(0) => ctx.err(&n.origin, &path, "must be at least 1"),
                got => set(&mut g.max_process_scale, got),
            },
            "restart_backoff_initial" => {
                set(&mut g.restart_backoff_initial, ctx.duration(n, &path))
            }
            "restart_backoff_max" => set(&mut g.restart_backoff_max, ctx.duration(n, &path)),
            "max_restart_attempts" => set(
                &mut g.max_restart_attempts,
                ctx.u32(n, &path, u64::from(u32::MAX)),
            ),
            "dependency_timeout" => set(&mut g.dependency_timeout, ctx.duration(n, &path)),
            "log_buffer" => match ctx.size(n, &path) {
                Got::Val(v) if !LOG_BUFFER_RANGE.contains(&v) => ctx.err(
                    &n.origin,
                    &path,
                    format!("{v} bytes is outside 64KiB..=1GiB (the default is 8MiB)"),
                ),
                got => set(&mut g.log_buffer, got),
            },
            "hooks" => g.hooks = parse_global_hooks(n, &path, ctx),
            "watch_config" => set(&mut g.watch_config, ctx.bool(n, &path)),
            _ => {
                let extra = if PROCESS_KEYS.contains(&e.key.as_str()) {
                    " (this is a process setting: put it under `processes.<name>:`)"
                } else {
                    ""
                };
                ctx.unknown_key(e, "global", GLOBAL_KEYS, extra);
            }
        }
    }
    host_origin
}
