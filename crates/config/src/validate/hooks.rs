//! `global.hooks` and a process's `hooks`: lists of commands run around
//! starts and stops (SPEC 11).
//!
//! Invariants: a hook is kept only when all its keys were accepted; a hook
//! name of the other scope is an error that says where it belongs;
//! per-instance variables are checked like `command`'s (a process hook
//! runs with its instance's environment, a global hook has no instance).

use std::time::Duration;

use super::reader::{join, set, Ctx, Got};
use super::ProcMeta;
use crate::substitute::{instance_var_used, uses_port_without_default};
use crate::tree::{Node, Style, Value};
use crate::{text::is_null_literal, GlobalHooks, Hook, ProcessHooks, DEFAULT_HOOK_TIMEOUT};

pub(super) const GLOBAL_HOOK_KEYS: &[&str] = &["pre_start", "post_start", "pre_stop", "post_stop"];
pub(super) const PROCESS_HOOK_KEYS: &[&str] = &["pre_start", "pre_stop", "post_stop"];
pub(super) const HOOK_KEYS: &[&str] = &["command", "timeout", "retries", "continue_on_error"];
/// Largest `retries` accepted.
const RETRIES_MAX: u64 = 100;
const HOOK_EXAMPLE: &str = "{ command: [\"php\", \"artisan\", \"config:cache\"] }";

/// Where a hook runs: per-instance variables are only known in a process.
enum Scope<'m> {
    Global,
    Process(&'m mut ProcMeta),
}

pub(super) fn parse_global_hooks(node: &Node, path: &str, ctx: &mut Ctx<'_>) -> GlobalHooks {
    let mut hooks = GlobalHooks::default();
    let Some(entries) = ctx.map(node, path) else {
        return hooks;
    };
    for e in entries {
        let kpath = join(path, &e.key);
        let list = match e.key.as_str() {
            "pre_start" => &mut hooks.pre_start,
            "post_start" => &mut hooks.post_start,
            "pre_stop" => &mut hooks.pre_stop,
            "post_stop" => &mut hooks.post_stop,
            _ => {
                ctx.unknown_key(e, path, GLOBAL_HOOK_KEYS, "");
                continue;
            }
        };
        *list = read_list(&e.value, &kpath, ctx, &mut Scope::Global);
    }
    hooks
}

pub(super) fn parse_process_hooks(
    node: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
    meta: &mut ProcMeta,
) -> ProcessHooks {
    let mut hooks = ProcessHooks::default();
    let Some(entries) = ctx.map(node, path) else {
        return hooks;
    };
    for e in entries {
        let kpath = join(path, &e.key);
        let list = match e.key.as_str() {
            "pre_start" => &mut hooks.pre_start,
            "pre_stop" => &mut hooks.pre_stop,
            "post_stop" => &mut hooks.post_stop,
            k if GLOBAL_HOOK_KEYS.contains(&k) => {
                ctx.err(
                    &e.key_origin,
                    &kpath,
                    format!(
                        "`{k}` is a global hook only (put it under `global.hooks:`); a process has {}",
                        PROCESS_HOOK_KEYS.join(", ")
                    ),
                );
                continue;
            }
            _ => {
                ctx.unknown_key(e, path, PROCESS_HOOK_KEYS, "");
                continue;
            }
        };
        *list = read_list(&e.value, &kpath, ctx, &mut Scope::Process(meta));
    }
    hooks
}

/// A list of hooks; a single mapping is a list of one; null is empty.
fn read_list(node: &Node, path: &str, ctx: &mut Ctx<'_>, scope: &mut Scope<'_>) -> Vec<Hook> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| read_hook(item, &format!("{path}[{i}]"), ctx, scope))
            .collect(),
        Value::Map(_) => read_hook(node, path, ctx, scope).into_iter().collect(),
        Value::Scalar { text, style } => {
            if *style == Style::Plain && is_null_literal(text) {
                return Vec::new();
            }
            ctx.err(
                &node.origin,
                path,
                format!("expected a list of hooks, e.g. [{HOOK_EXAMPLE}]"),
            );
            Vec::new()
        }
    }
}

fn read_hook(node: &Node, path: &str, ctx: &mut Ctx<'_>, scope: &mut Scope<'_>) -> Option<Hook> {
    let entries = match &node.value {
        Value::Map(entries) => entries,
        Value::Scalar { text, style } if *style == Style::Plain && is_null_literal(text) => {
            ctx.err(
                &node.origin,
                path,
                format!("empty entry: expected a hook, e.g. {HOOK_EXAMPLE}"),
            );
            return None;
        }
        _ => {
            ctx.err(
                &node.origin,
                path,
                format!(
                    "expected a hook mapping with `command`, e.g. {HOOK_EXAMPLE}, found {}",
                    node.kind_name()
                ),
            );
            return None;
        }
    };
    let mut hook = Hook {
        command: Vec::new(),
        timeout: DEFAULT_HOOK_TIMEOUT,
        retries: 0,
        continue_on_error: false,
    };
    let mut ok = true;
    let mut command = Got::Null;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "command" => {
                command = read_command(n, &kpath, ctx, scope);
            }
            "timeout" => match ctx.duration(n, &kpath) {
                Got::Val(Duration::ZERO) => {
                    ctx.err(&n.origin, &kpath, "must be more than 0");
                    ok = false;
                }
                Got::Bad => ok = false,
                got => set(&mut hook.timeout, got),
            },
            "retries" => match ctx.u32(n, &kpath, RETRIES_MAX) {
                Got::Bad => ok = false,
                got => set(&mut hook.retries, got),
            },
            "continue_on_error" => match ctx.bool(n, &kpath) {
                Got::Bad => ok = false,
                got => set(&mut hook.continue_on_error, got),
            },
            _ => {
                ctx.unknown_key(e, path, HOOK_KEYS, "");
                ok = false;
            }
        }
    }
    match command {
        Got::Val(c) => hook.command = c,
        Got::Null => {
            ctx.err(
                &node.origin,
                &join(path, "command"),
                format!("missing `command`: e.g. {HOOK_EXAMPLE}"),
            );
            return None;
        }
        Got::Bad => return None,
    }
    ok.then_some(hook)
}

fn read_command(
    n: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
    scope: &mut Scope<'_>,
) -> Got<Vec<String>> {
    let command = match ctx.string_list(n, path, "[\"php\", \"artisan\", \"config:cache\"]") {
        Got::Val(c) => c,
        Got::Null => {
            // `command:` with nothing: as missing, but here.
            ctx.err(&n.origin, path, format!("is empty: e.g. {HOOK_EXAMPLE}"));
            return Got::Bad;
        }
        Got::Bad => return Got::Bad,
    };
    if command.is_empty() {
        ctx.err(
            &n.origin,
            path,
            "is empty: give the program and its arguments",
        );
        return Got::Bad;
    }
    if command.first().is_some_and(|s| s.trim().is_empty()) {
        ctx.err(&n.origin, path, "the program (first entry) is empty");
        return Got::Bad;
    }
    match scope {
        Scope::Global => {
            if let Some(var) = command.iter().find_map(|a| instance_var_used(a)) {
                ctx.err(
                    &n.origin,
                    path,
                    format!("uses ${{{var}}}, which only a process's instances have: global hooks run outside any process"),
                );
                return Got::Bad;
            }
        }
        Scope::Process(meta) => {
            if command.iter().any(|a| uses_port_without_default(a)) {
                meta.port_users.push((path.to_string(), n.origin.clone()));
            }
        }
    }
    Got::Val(command)
}
