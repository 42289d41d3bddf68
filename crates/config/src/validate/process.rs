//! One entry under `processes:`, and its `shutdown:` block.
//!
//! Invariants: every key of [`PROCESS_KEYS`] has an arm here; a process is
//! always returned (with defaults where a value was rejected) together with
//! the positions the cross checks need ([`ProcMeta`]); a missing `command`
//! is reported once, at the process name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use std::time::Duration;

use super::autoscale::{parse_autoscale, parse_scale_down};
use super::health_check::parse_health_check;
use super::hooks::parse_process_hooks;
use super::reader::{join, set, Ctx, Got};
use super::schedule::parse_schedule;
use super::{DepMeta, ProcMeta, GLOBAL_KEYS, PROCESS_KEYS, SCALE_LIMIT};
use crate::duration::parse_signal;
use crate::substitute::uses_port_without_default;
use crate::tree::{Entry, Node, Origin, Value};
use crate::{
    Dependency, DependencyCondition, InitialState, OnFailure, ProcessConfig, ProcessHooks,
    ProcessType, RestartPolicy, Shutdown,
};

pub(super) const SHUTDOWN_KEYS: &[&str] = &["signal", "timeout"];
pub(super) const ROLLOUT_KEYS: &[&str] = &["min_ready"];

pub(crate) fn default_process() -> ProcessConfig {
    ProcessConfig {
        enabled: true,
        kind: ProcessType::Longrun,
        command: Vec::new(),
        scale: 1,
        max_scale: None,
        restart: RestartPolicy::Always,
        max_restart_attempts: None,
        timeout: None,
        on_failure: OnFailure::Continue,
        schedule: None,
        hooks: ProcessHooks::default(),
        initial_state: InitialState::Started,
        autoscale: None,
        scale_down: crate::ScaleDown::default(),
        rollout: crate::RolloutPolicy::default(),
        env: BTreeMap::new(),
        working_dir: None,
        user: None,
        group: None,
        depends_on: Vec::new(),
        port_base: None,
        shutdown: Shutdown {
            signal: libc::SIGTERM,
            timeout: None,
        },
        health_check: None,
        stdout: true,
        stderr: true,
    }
}

const COMMAND_EXAMPLE: &str = "[\"php\", \"artisan\", \"queue:work\"]";

pub(super) fn parse_process(entry: &Entry, ctx: &mut Ctx<'_>) -> (ProcessConfig, ProcMeta) {
    let name = entry.key.as_str();
    let base = format!("processes.{name}");
    let mut p = default_process();
    let mut meta = ProcMeta {
        name_origin: entry.key_origin.clone(),
        origin: entry.value.origin.clone(),
        scale_origin: None,
        max_scale_origin: None,
        port_base_origin: None,
        depends: Vec::new(),
        port_users: Vec::new(),
        kind_rejected: false,
        restart_origin: None,
        max_restart_attempts_key: None,
        timeout_key: None,
        on_failure_key: None,
        schedule_key: None,
        schedule: None,
        health_check_key: None,
        autoscale: None,
        scale_down_key: None,
        rollout_key: None,
    };
    let Some(entries) = ctx.map(&entry.value, &base) else {
        return (p, meta);
    };
    let mut command_state = Got::Null;
    for e in entries {
        let path = join(&base, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "enabled" => set(&mut p.enabled, ctx.bool(n, &path)),
            "type" => match ctx.choice(n, &path, ProcessType::NAMES) {
                Got::Bad => meta.kind_rejected = true,
                got => set(&mut p.kind, got),
            },
            "command" => {
                command_state = ctx.string_list(n, &path, COMMAND_EXAMPLE);
                match &command_state {
                    Got::Val(c) if c.is_empty() => {
                        ctx.err(&n.origin, &path, format!("is empty: give the program and its arguments, e.g. {COMMAND_EXAMPLE}"));
                        command_state = Got::Bad;
                    }
                    Got::Val(c) if c.first().is_some_and(|s| s.trim().is_empty()) => {
                        ctx.err(&n.origin, &path, "the program (first entry) is empty");
                        command_state = Got::Bad;
                    }
                    Got::Val(c) => p.command = c.clone(),
                    _ => {}
                }
            }
            "scale" => {
                meta.scale_origin = Some(n.origin.clone());
                set(&mut p.scale, ctx.u32(n, &path, SCALE_LIMIT));
            }
            "max_scale" => {
                meta.max_scale_origin = Some(n.origin.clone());
                if let Got::Val(v) = ctx.u32(n, &path, SCALE_LIMIT) {
                    p.max_scale = Some(v);
                }
            }
            "restart" => {
                if let Got::Val(r) = ctx.choice(n, &path, RestartPolicy::NAMES) {
                    p.restart = r;
                    meta.restart_origin = Some(n.origin.clone());
                }
            }
            "max_restart_attempts" => {
                if let Got::Val(v) = ctx.u32(n, &path, u64::from(u32::MAX)) {
                    p.max_restart_attempts = Some(v);
                    meta.max_restart_attempts_key = Some(e.key_origin.clone());
                }
            }
            "timeout" => match ctx.duration(n, &path) {
                Got::Val(Duration::ZERO) => ctx.err(
                    &n.origin,
                    &path,
                    "must be more than 0 (leave it out for no limit)",
                ),
                Got::Val(d) => {
                    p.timeout = Some(d);
                    meta.timeout_key = Some(e.key_origin.clone());
                }
                Got::Null | Got::Bad => {}
            },
            "on_failure" => {
                if let Got::Val(v) = ctx.choice(n, &path, OnFailure::NAMES) {
                    p.on_failure = v;
                    meta.on_failure_key = Some(e.key_origin.clone());
                }
            }
            "schedule" => {
                if let Some((s, m)) = parse_schedule(n, &path, ctx) {
                    p.schedule = Some(s);
                    meta.schedule = Some(m);
                    meta.schedule_key = Some(e.key_origin.clone());
                }
            }
            "hooks" => p.hooks = parse_process_hooks(n, &path, ctx, &mut meta),
            "initial_state" => set(
                &mut p.initial_state,
                ctx.choice(n, &path, InitialState::NAMES),
            ),
            "autoscale" => {
                if let Some((a, m)) = parse_autoscale(n, &e.key_origin, &path, ctx) {
                    p.autoscale = Some(a);
                    meta.autoscale = Some(m);
                }
            }
            "scale_down" => {
                p.scale_down = parse_scale_down(n, &path, ctx);
                // Null or `{}` says nothing (and is fine with a schedule).
                if matches!(&n.value, Value::Map(m) if !m.is_empty()) {
                    meta.scale_down_key = Some(e.key_origin.clone());
                }
            }
            "rollout" => {
                p.rollout = parse_rollout(n, &path, ctx);
                if matches!(&n.value, Value::Map(m) if !m.is_empty()) {
                    meta.rollout_key = Some(e.key_origin.clone());
                }
            }
            "env" => read_env(n, &path, ctx, &mut p, &mut meta),
            "working_dir" => {
                if let Got::Val(s) = ctx.opt_string(n, &path) {
                    p.working_dir = s.map(PathBuf::from);
                }
            }
            "user" => set(&mut p.user, ctx.opt_string(n, &path)),
            "group" => set(&mut p.group, ctx.opt_string(n, &path)),
            "depends_on" => read_depends_on(n, &path, ctx, &mut p, &mut meta),
            "port_base" => {
                meta.port_base_origin = Some(n.origin.clone());
                if let Got::Val(v) = ctx.u16(n, &path) {
                    p.port_base = Some(v);
                }
            }
            "shutdown" => parse_shutdown(n, &path, ctx, &mut p.shutdown),
            "health_check" => {
                p.health_check = parse_health_check(n, &path, ctx, &mut meta);
                if p.health_check.is_some() {
                    meta.health_check_key = Some(e.key_origin.clone());
                }
            }
            "stdout" => set(&mut p.stdout, ctx.bool(n, &path)),
            "stderr" => set(&mut p.stderr, ctx.bool(n, &path)),
            _ => {
                let extra = if GLOBAL_KEYS.contains(&e.key.as_str()) {
                    " (this is a global setting: put it under `global:`)"
                } else {
                    ""
                };
                ctx.unknown_key(e, &base, PROCESS_KEYS, extra);
            }
        }
    }
    if matches!(command_state, Got::Null) {
        ctx.err(
            &entry.key_origin,
            &format!("{base}.command"),
            format!("missing `command`: give the program and its arguments, e.g. command: {COMMAND_EXAMPLE}"),
        );
    }
    if p.command.iter().any(|a| uses_port_without_default(a)) {
        meta.port_users
            .push((format!("{base}.command"), command_origin(entries)));
    }
    // Defaults that depend on other keys, whatever their order: a one-shot
    // or a scheduled process is not restarted unless asked to.
    if meta.restart_origin.is_none() && (p.is_oneshot() || p.schedule.is_some()) {
        p.restart = RestartPolicy::Never;
    }
    // An autoscaled process starts at its `min` unless `scale` says where.
    if let (None, Some(a), Some(true)) = (
        &meta.scale_origin,
        &p.autoscale,
        meta.autoscale.as_ref().map(|m| m.bounds_ok),
    ) {
        p.scale = a.min;
    }
    (p, meta)
}

/// `env:`: a mapping of variable names to single values.
fn read_env(n: &Node, path: &str, ctx: &mut Ctx<'_>, p: &mut ProcessConfig, meta: &mut ProcMeta) {
    if let Some(vars) = ctx.map(n, path) {
        for v in vars {
            let vpath = join(path, &v.key);
            if v.key.is_empty() || v.key.contains('=') || v.key.contains('\0') {
                ctx.err(
                    &v.key_origin,
                    &vpath,
                    "invalid environment variable name (empty, or contains `=` or NUL)",
                );
                continue;
            }
            let value = match ctx.text(&v.value, &vpath, "a single value (quote it)") {
                Got::Val(s) => s,
                Got::Null => String::new(),
                Got::Bad => continue,
            };
            if value.contains('\0') {
                ctx.err(&v.value.origin, &vpath, "contains a NUL character");
                continue;
            }
            if uses_port_without_default(&value) {
                meta.port_users
                    .push((vpath.clone(), v.value.origin.clone()));
            }
            p.env.insert(v.key.clone(), value);
        }
    }
}

/// `depends_on:`: a list of process names, or one name (conditions
/// resolved later from the dependencies' types), or a mapping
/// `name: condition`; repeats dropped.
fn read_depends_on(
    n: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
    p: &mut ProcessConfig,
    meta: &mut ProcMeta,
) {
    let mut add = |p: &mut ProcessConfig, dep: DepMeta, condition: DependencyCondition| {
        if !p.depends_on_process(&dep.name) {
            p.depends_on
                .push(Dependency::new(dep.name.clone(), condition));
            meta.depends.push(dep);
        }
    };
    if let Value::Map(entries) = &n.value {
        for e in entries {
            let epath = join(path, &e.key);
            let (condition, from_list) =
                match ctx.choice(&e.value, &epath, DependencyCondition::NAMES) {
                    Got::Val(c) => (c, false),
                    // No condition (or a rejected one, reported): as in the list form.
                    Got::Null | Got::Bad => (DependencyCondition::Healthy, true),
                };
            let dep = DepMeta {
                name: e.key.clone(),
                origin: e.key_origin.clone(),
                path: epath,
                from_list,
            };
            add(p, dep, condition);
        }
        return;
    }
    let items: Vec<&Node> = match &n.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![n],
    };
    for (i, item) in items.into_iter().enumerate() {
        let ipath = if matches!(n.value, Value::Seq(_)) {
            format!("{path}[{i}]")
        } else {
            path.to_string()
        };
        match ctx.text(item, &ipath, "a process name") {
            Got::Val(dep) => {
                // The list form's condition depends on the dependency's
                // type; the cross checks settle it once all are read.
                let dep = DepMeta {
                    name: dep,
                    origin: item.origin.clone(),
                    path: ipath,
                    from_list: true,
                };
                add(p, dep, DependencyCondition::Healthy);
            }
            Got::Null => {
                if matches!(n.value, Value::Seq(_)) {
                    ctx.err(&item.origin, &ipath, "empty entry: expected a process name");
                }
            }
            Got::Bad => {}
        }
    }
}

fn command_origin(entries: &[Entry]) -> Origin {
    entries
        .iter()
        .find(|e| e.key == "command")
        .map(|e| e.value.origin.clone())
        .unwrap_or(Origin::Env(String::new()))
}

/// `rollout:`: `min_ready`, a duration (0 is the same as leaving it out).
fn parse_rollout(node: &Node, path: &str, ctx: &mut Ctx<'_>) -> crate::RolloutPolicy {
    let mut r = crate::RolloutPolicy::default();
    let Some(entries) = ctx.map(node, path) else {
        return r;
    };
    for e in entries {
        let kpath = join(path, &e.key);
        match e.key.as_str() {
            "min_ready" => {
                if let Got::Val(d) = ctx.duration(&e.value, &kpath) {
                    r.min_ready = (!d.is_zero()).then_some(d);
                }
            }
            _ => ctx.unknown_key(e, path, ROLLOUT_KEYS, ""),
        }
    }
    r
}

fn parse_shutdown(node: &Node, path: &str, ctx: &mut Ctx<'_>, s: &mut Shutdown) {
    let Some(entries) = ctx.map(node, path) else {
        return;
    };
    for e in entries {
        let kpath = join(path, &e.key);
        match e.key.as_str() {
            "signal" => match ctx.text(&e.value, &kpath, "a signal name") {
                Got::Val(v) => match parse_signal(&v) {
                    Ok(sig) => s.signal = sig,
                    Err(m) => ctx.err(&e.value.origin, &kpath, m),
                },
                Got::Null | Got::Bad => {}
            },
            "timeout" => {
                if let Got::Val(d) = ctx.duration(&e.value, &kpath) {
                    s.timeout = Some(d);
                }
            }
            _ => ctx.unknown_key(e, path, SHUTDOWN_KEYS, ""),
        }
    }
}
