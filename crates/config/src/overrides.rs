//! `PHPEEK_PM_GLOBAL_<KEY>` and `PHPEEK_PM_PROCESS_<NAME>_<KEY>` overrides.
//!
//! Overrides are applied to the node tree **before** validation: each one
//! replaces (or adds) the value of one key, as a node that remembers the
//! variable it came from. The validator then types and checks it exactly
//! like a value from the file (so `SCALE=abc` or a `SCALE` above
//! `max_scale` is an error naming the variable). Values are typed by the
//! key they set, never guessed: `API_AUTH=007` stays the string "007".
//! Override values are taken literally (no `${VAR}` substitution).
//!
//! Name matching: `NAME` is a process name from the file, upper-cased with
//! `-` turned into `_`. A variable matches process `p` when it starts with
//! `PHPEEK_PM_PROCESS_<P>_` and the rest is a known key (`ENABLED`,
//! `TYPE`, `COMMAND`, `RESTART`, `SCALE`, `MAX_SCALE`, `WORKING_DIR`,
//! `USER`, `GROUP`, `PORT_BASE`, `SCHEDULE`, `AUTOSCALE_MIN`,
//! `AUTOSCALE_MAX`, `AUTOSCALE_DRY_RUN`, `ENV_<VAR>`).
//!
//! `AUTOSCALE_*` set one key of the process's `autoscale:` mapping (the
//! other keys stay); without one in the file the mapping is created, so
//! its missing bounds are then reported against the variable.
//!
//! `SCHEDULE` is a cron string: it sets the short form, or, when the file
//! has the long form, replaces its `cron` and keeps the other schedule
//! keys (zone, concurrency, …). `PHPEEK_PM_GLOBAL_HOOKS` is rejected:
//! hooks are lists, set in the file only. So with processes `queue` and
//! `queue-default`, `…_QUEUE_DEFAULT_SCALE` sets `queue-default`'s scale
//! (`DEFAULT_SCALE` is no key of `queue`), and with a process `x`,
//! `…_X_MAX_SCALE` sets `x`'s `max_scale`. When two processes both give a
//! valid reading (processes `x` and `x-max` for `…_X_MAX_SCALE`, or `a-b`
//! and `a_b`), the variable is rejected as ambiguous rather than guessed.
//!
//! Ignored: `PHPEEK_PM_PROCESS_NAME` (a per-instance variable set by a
//! parent phpeek-pm), `PHPEEK_PM_CONFIG`, `PHPEEK_PM_API_URL`,
//! `PHPEEK_PM_API_TOKEN` and every other `PHPEEK_PM_*` name without the
//! `GLOBAL_`/`PROCESS_` prefix. Overrides cannot create processes.

use crate::suggest;
use crate::text::is_null_literal;
use crate::tree::{Entry, Node, Origin, Style, Value};
use crate::validate::{Ctx, GLOBAL_KEYS};
use crate::Env;

const PROCESS_OVERRIDE_KEYS: &[&str] = &[
    "ENABLED",
    "TYPE",
    "COMMAND",
    "RESTART",
    "SCALE",
    "MAX_SCALE",
    "WORKING_DIR",
    "USER",
    "GROUP",
    "PORT_BASE",
    "SCHEDULE",
    "AUTOSCALE_MIN",
    "AUTOSCALE_MAX",
    "AUTOSCALE_DRY_RUN",
];

/// Global keys that hold lists or mappings: not settable by a variable.
const GLOBAL_NOT_SCALAR: &[&str] = &["hooks"];

const GLOBAL_PREFIX: &str = "PHPEEK_PM_GLOBAL_";
const PROCESS_PREFIX: &str = "PHPEEK_PM_PROCESS_";
const IGNORED: &[&str] = &["PHPEEK_PM_PROCESS_NAME"];

fn is_override_key(key: &str) -> bool {
    PROCESS_OVERRIDE_KEYS.contains(&key) || key.strip_prefix("ENV_").is_some_and(|v| !v.is_empty())
}

/// `queue-default` → `QUEUE_DEFAULT`.
pub(crate) fn env_name(process: &str) -> String {
    process.to_ascii_uppercase().replace('-', "_")
}

/// Applies every override in `env` to `root`, reporting problems in `ctx`.
pub(crate) fn apply(root: &mut Option<Node>, env: &Env, ctx: &mut Ctx<'_>) {
    let mut vars: Vec<(&String, &String)> = env
        .vars
        .iter()
        .filter(|(k, _)| {
            (k.starts_with(GLOBAL_PREFIX) || k.starts_with(PROCESS_PREFIX))
                && !IGNORED.contains(&k.as_str())
        })
        .collect();
    if vars.is_empty() {
        return;
    }
    vars.sort();
    let root =
        root.get_or_insert_with(|| Node::new(Value::Map(Vec::new()), Origin::Env(String::new())));
    null_to_map(root);
    let Value::Map(top) = &mut root.value else {
        return; // reported by the validator
    };
    for (var, value) in vars {
        if let Some(key) = var.strip_prefix(GLOBAL_PREFIX) {
            apply_global(top, var, key, value, ctx);
        } else if let Some(rest) = var.strip_prefix(PROCESS_PREFIX) {
            apply_process(top, var, rest, value, ctx);
        }
    }
}

fn report(ctx: &mut Ctx<'_>, var: &str, message: String) {
    ctx.err(&Origin::Env(String::new()), "", format!("{var}: {message}"));
}

fn apply_global(top: &mut Vec<Entry>, var: &str, key: &str, value: &str, ctx: &mut Ctx<'_>) {
    let lower = key.to_ascii_lowercase();
    if !GLOBAL_KEYS.contains(&lower.as_str()) {
        let hint = suggest::closest(&lower, GLOBAL_KEYS)
            .map(|k| format!(" (did you mean {GLOBAL_PREFIX}{}?)", k.to_ascii_uppercase()))
            .unwrap_or_default();
        report(ctx, var, format!("`{key}` is not a global setting{hint}"));
        return;
    }
    if GLOBAL_NOT_SCALAR.contains(&lower.as_str()) {
        report(
            ctx,
            var,
            format!("`{key}` holds lists of commands: set it in the file (global.{lower})"),
        );
        return;
    }
    let Some(global) = child_map(top, "global", var) else {
        return;
    };
    set_entry(global, &lower, Node::env_scalar(value, var));
}

fn apply_process(top: &mut [Entry], var: &str, rest: &str, value: &str, ctx: &mut Ctx<'_>) {
    let names: Vec<String> = match top.iter().find(|e| e.key == "processes") {
        Some(Entry {
            value: Node {
                value: Value::Map(ps),
                ..
            },
            ..
        }) => ps.iter().map(|e| e.key.clone()).collect(),
        _ => Vec::new(),
    };
    // (process, key) readings of the variable.
    let mut prefixed: Vec<(&String, &str)> = names
        .iter()
        .filter_map(|n| {
            rest.strip_prefix(env_name(n).as_str())
                .and_then(|r| r.strip_prefix('_'))
                .map(|k| (n, k))
        })
        .collect();
    prefixed.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    let valid: Vec<&(&String, &str)> = prefixed
        .iter()
        .filter(|(_, k)| is_override_key(k))
        .collect();
    match valid.as_slice() {
        [] => {
            if let Some((name, key)) = prefixed.first() {
                let hint = suggest::closest(&key.to_ascii_lowercase(), &lower_keys())
                    .map(|k| {
                        format!(
                            " (did you mean {PROCESS_PREFIX}{}_{}?)",
                            env_name(name),
                            k.to_ascii_uppercase()
                        )
                    })
                    .unwrap_or_default();
                report(
                    ctx,
                    var,
                    format!(
                        "`{key}` is not a setting of process `{name}` (known: {}, ENV_<VAR>){hint}",
                        PROCESS_OVERRIDE_KEYS.join(", ")
                    ),
                );
            } else {
                let mut known: Vec<String> = names.iter().map(|n| env_name(n)).collect();
                known.sort();
                let listing = if known.is_empty() {
                    "the file defines no processes".to_string()
                } else {
                    format!(
                        "processes in the file, as written here: {}",
                        known.join(", ")
                    )
                };
                report(
                    ctx,
                    var,
                    format!("names no process defined in the file ({listing}); overrides cannot add processes"),
                );
            }
        }
        [(name, key)] => {
            let (name, key) = ((*name).clone(), key.to_string());
            set_process_key(top, var, &name, &key, value, ctx);
        }
        many => {
            let readings: Vec<String> = many
                .iter()
                .map(|(n, k)| format!("`{k}` of process `{n}`"))
                .collect();
            report(
                ctx,
                var,
                format!(
                    "ambiguous: it can mean {}; rename one of the processes",
                    readings.join(" or ")
                ),
            );
        }
    }
}

fn lower_keys() -> Vec<&'static str> {
    vec![
        "enabled",
        "type",
        "command",
        "restart",
        "scale",
        "max_scale",
        "working_dir",
        "user",
        "group",
        "port_base",
        "schedule",
        "autoscale_min",
        "autoscale_max",
        "autoscale_dry_run",
    ]
}

fn set_process_key(
    top: &mut [Entry],
    var: &str,
    name: &str,
    key: &str,
    value: &str,
    ctx: &mut Ctx<'_>,
) {
    let Some(processes) = top.iter_mut().find(|e| e.key == "processes") else {
        return;
    };
    let Value::Map(ps) = &mut processes.value.value else {
        return;
    };
    let Some(entry) = ps.iter_mut().find(|e| e.key == name) else {
        return;
    };
    let proc_node = &mut entry.value;
    null_to_map(proc_node);
    let Value::Map(fields) = &mut proc_node.value else {
        return; // reported by the validator
    };
    if let Some(sub) = key.strip_prefix("AUTOSCALE_") {
        if let Some(autoscale) = child_map(fields, "autoscale", var) {
            set_entry(
                autoscale,
                &sub.to_ascii_lowercase(),
                Node::env_scalar(value, var),
            );
        }
        return;
    }
    if let Some(var_name) = key.strip_prefix("ENV_") {
        if let Some(env_map) = child_map(fields, "env", var) {
            set_entry(env_map, var_name, Node::env_scalar(value, var));
        }
        return;
    }
    let node = if key == "COMMAND" {
        match serde_json::from_str::<Vec<String>>(value) {
            Ok(items) => Node::new(
                Value::Seq(items.iter().map(|s| Node::env_scalar(s, var)).collect()),
                Origin::Env(var.to_string()),
            ),
            Err(_) => {
                report(
                    ctx,
                    var,
                    "must be a JSON array of strings, e.g. [\"php\",\"artisan\",\"queue:work\"]"
                        .to_string(),
                );
                return;
            }
        }
    } else if key == "SCHEDULE" {
        // The long form keeps its other keys; only `cron` changes.
        if let Some(Entry {
            value:
                Node {
                    value: Value::Map(schedule),
                    ..
                },
            ..
        }) = fields.iter_mut().rev().find(|e| e.key == "schedule")
        {
            set_entry(schedule, "cron", Node::env_scalar(value, var));
            return;
        }
        Node::env_scalar(value, var)
    } else {
        Node::env_scalar(value, var)
    };
    set_entry(fields, &key.to_ascii_lowercase(), node);
}

/// The mapping under `key` in `entries`, created when absent or null.
fn child_map<'a>(entries: &'a mut Vec<Entry>, key: &str, var: &str) -> Option<&'a mut Vec<Entry>> {
    let idx = match entries.iter().position(|e| e.key == key) {
        Some(i) => i,
        None => {
            entries.push(Entry {
                key: key.to_string(),
                key_origin: Origin::Env(var.to_string()),
                value: Node::new(Value::Map(Vec::new()), Origin::Env(var.to_string())),
            });
            entries.len() - 1
        }
    };
    let node = &mut entries.get_mut(idx)?.value;
    null_to_map(node);
    match &mut node.value {
        Value::Map(m) => Some(m),
        _ => None,
    }
}

/// A plain null scalar (`key:` with nothing after it) becomes an empty
/// mapping, so an override can add keys under it.
fn null_to_map(node: &mut Node) {
    if let Value::Scalar {
        text,
        style: Style::Plain,
    } = &node.value
    {
        if is_null_literal(text) {
            node.value = Value::Map(Vec::new());
        }
    }
}

/// Replaces the value of `key` (every occurrence) or adds the key.
fn set_entry(entries: &mut Vec<Entry>, key: &str, node: Node) {
    let mut found = false;
    for e in entries.iter_mut().filter(|e| e.key == key) {
        e.value = node.clone();
        found = true;
    }
    if !found {
        entries.push(Entry {
            key: key.to_string(),
            key_origin: node.origin.clone(),
            value: node,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert_eq!(env_name("queue-default"), "QUEUE_DEFAULT");
        assert_eq!(env_name("php_fpm"), "PHP_FPM");
        assert!(is_override_key("ENV_APP_ENV"));
        assert!(!is_override_key("ENV_"));
        assert!(is_override_key("MAX_SCALE"));
        assert!(!is_override_key("DEFAULT_SCALE"));
    }
}
