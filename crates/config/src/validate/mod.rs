//! From the node tree to a checked [`Config`], collecting every error.
//!
//! Each key is looked up in the tree, its scalar substituted (`${VAR}`) and
//! then typed **by the key** (`api_auth: 007` is the string "007", `scale:
//! "4"` is the number 4). Problems are pushed to [`Ctx::errors`] with the key
//! path and the position of the offending key or value (or the name of the
//! environment variable for overrides) and the walk goes on, so one run
//! reports every mistake. A value with an error keeps its default so later
//! cross-checks do not cascade into confusing follow-up errors.
//!
//! Layout: `reader.rs` types single values ([`Ctx`]); `global.rs`,
//! `process.rs` and `health_check.rs` read their sections; `cross.rs`
//! checks what needs the whole config, with `graph.rs` for cycles.
//!
//! Invariants: [`build`] always returns a whole, defaulted [`Config`] and
//! never panics; the config is usable only when [`Ctx::errors`] is empty.
//! Rules shared with the rest of phpeek-pm are not written here but called:
//! enum names (`NAMES`, `vocab.rs`), scale limits (`scale.rs`), instance
//! names (`instance.rs`), null literals and shortening (`text.rs`).
//!
//! Choices where SPEC is silent (also in `docs/configuration.md`):
//! * An unquoted `~`, `null` or empty value means "not set": the key keeps
//!   its default (after substitution, so `api_auth: ${TOKEN:-}` is unset).
//! * An empty `api_auth`, `api_socket`, `user`, `group` or `working_dir` is
//!   "not set" as well.
//! * Booleans: `true/false/yes/no/on/off/1/0`, any case.
//! * A missing or empty `processes:` map is accepted (the manager then only
//!   serves its API until a reload adds processes); overrides cannot create
//!   processes, they only change processes defined in the file.
//! * Top-level keys starting with `x-` are ignored (as in docker compose),
//!   so shared settings can live there as YAML anchors (`x-base: &base`)
//!   and be merged into processes with `<<: *base`.
//! * `version`: `1` or `1.x`; anything else is rejected as a format this
//!   build does not know.
//! * A process name may not equal `p-N` of another process `p` for any
//!   N in 1..=ceiling, where the ceiling is `max_scale` if set, else
//!   `global.max_process_scale` (the scale the API may later ask for).
//! * `${PHPEEK_PM_INSTANCE_PORT}` without a default in a process without
//!   `port_base` is an error (it would expand to an empty string).
//! * `restart_backoff_max` below `restart_backoff_initial` is an error.
//! * Health-check URLs must be `http://host…` (no https).
//! * SPEC 11 (one-shots, schedules, hooks): see `docs/configuration.md`,
//!   "One-shots, schedules and hooks", for every choice made there (e.g.
//!   `health_check` on a one-shot is an error, a process's `timeout: 0` is
//!   an error, a single hook mapping is a list of one).
//! * `api_tls` / `metrics_tls` need `cert` and `key`; their files are read
//!   and checked at load (`tls.rs`), relative paths from the manager's
//!   working directory. They are mappings, so no `PHPEEK_PM_GLOBAL_*`
//!   override sets them.
//! * SPEC 12 (`autoscale`, `scale_down`): see `docs/configuration.md`,
//!   "Autoscaling" (e.g. `scale` defaults to `autoscale.min`, step rows
//!   must be in descending `above` order, `idle_first` without `idle` is
//!   an error).

mod autoscale;
mod cross;
mod global;
mod graph;
mod health_check;
mod hooks;
mod process;
mod reader;
mod schedule;
mod tls;

use std::collections::BTreeMap;

use cross::cross_checks;
use global::parse_global;
#[cfg(test)]
pub(crate) use process::default_process;
use process::parse_process;
pub(crate) use reader::Ctx;
use reader::{shorten, Got};

use crate::tree::{Node, Origin, Value};
use crate::{Config, Global};

pub(crate) const TOP_KEYS: &[&str] = &["version", "global", "processes"];
pub(crate) const GLOBAL_KEYS: &[&str] = &[
    "shutdown_timeout",
    "log_format",
    "log_level",
    "api_enabled",
    "api_host",
    "api_port",
    "api_auth",
    "api_socket",
    "api_insecure",
    "api_tls",
    "metrics_enabled",
    "metrics_host",
    "metrics_port",
    "metrics_path",
    "metrics_tls",
    "max_process_scale",
    "restart_backoff_initial",
    "restart_backoff_max",
    "max_restart_attempts",
    "dependency_timeout",
    "log_buffer",
    "hooks",
    "watch_config",
];
pub(crate) const PROCESS_KEYS: &[&str] = &[
    "enabled",
    "type",
    "command",
    "scale",
    "max_scale",
    "restart",
    "max_restart_attempts",
    "timeout",
    "on_failure",
    "schedule",
    "hooks",
    "initial_state",
    "autoscale",
    "scale_down",
    "rollout",
    "env",
    "working_dir",
    "user",
    "group",
    "depends_on",
    "port_base",
    "shutdown",
    "health_check",
    "stdout",
    "stderr",
];

/// Each section's keys, by the name of its JSON Schema definition (the
/// schema test checks that both agree).
#[cfg(test)]
pub(crate) fn key_tables() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("FileGlobal", GLOBAL_KEYS),
        ("FileProcess", PROCESS_KEYS),
        ("FileSchedule", schedule::SCHEDULE_KEYS),
        ("FileGlobalHooks", hooks::GLOBAL_HOOK_KEYS),
        ("FileProcessHooks", hooks::PROCESS_HOOK_KEYS),
        ("FileHook", hooks::HOOK_KEYS),
        ("FileShutdown", process::SHUTDOWN_KEYS),
        ("FileRollout", process::ROLLOUT_KEYS),
        ("FileAutoscale", autoscale::AUTOSCALE_KEYS),
        ("FileMetric", autoscale::METRIC_KEYS),
        ("FileRedisSource", autoscale::REDIS_KEYS),
        ("FileHttpSource", autoscale::HTTP_KEYS),
        ("FilePrometheusSource", autoscale::PROMETHEUS_KEYS),
        ("FileCpuSource", autoscale::CPU_KEYS),
        ("FileStep", autoscale::STEP_KEYS),
        ("FileWindow", autoscale::WINDOW_KEYS),
        ("FileBehavior", autoscale::BEHAVIOR_KEYS),
        ("FileScaleBehavior", autoscale::SCALE_BEHAVIOR_KEYS),
        ("FileScaleDown", autoscale::SCALE_DOWN_KEYS),
        ("FileIdle", autoscale::IDLE_KEYS),
    ]
}

/// Largest `scale`/`max_scale`/`max_process_scale` accepted at all.
const SCALE_LIMIT: u64 = 1_000_000;

/// Positions kept for the cross-checks. A `*_key` origin is the position
/// of a key that was given (with a value that was accepted); a value origin
/// is named after its key.
pub(super) struct ProcMeta {
    pub(super) name_origin: Origin,
    pub(super) origin: Origin,
    pub(super) scale_origin: Option<Origin>,
    pub(super) max_scale_origin: Option<Origin>,
    pub(super) port_base_origin: Option<Origin>,
    /// One per entry of `depends_on`, in the same order.
    pub(super) depends: Vec<DepMeta>,
    /// Values that may use `${PHPEEK_PM_INSTANCE_PORT}`, with their key and origin.
    pub(super) port_users: Vec<(String, Origin)>,
    /// `type:` was given but rejected: its checks would only cascade.
    pub(super) kind_rejected: bool,
    /// The value of an accepted `restart:`.
    pub(super) restart_origin: Option<Origin>,
    pub(super) max_restart_attempts_key: Option<Origin>,
    pub(super) timeout_key: Option<Origin>,
    pub(super) on_failure_key: Option<Origin>,
    pub(super) schedule_key: Option<Origin>,
    pub(super) schedule: Option<schedule::ScheduleMeta>,
    pub(super) health_check_key: Option<Origin>,
    pub(super) autoscale: Option<autoscale::AutoscaleMeta>,
    pub(super) scale_down_key: Option<Origin>,
    pub(super) rollout_key: Option<Origin>,
}

/// One `depends_on` entry: where it was written, and whether its
/// condition is still to be resolved from the dependency's type.
pub(super) struct DepMeta {
    pub(super) name: String,
    pub(super) origin: Origin,
    /// `processes.web.depends_on[0]`, `processes.web.depends_on.db`, …
    pub(super) path: String,
    /// From the list form (or the long form without a condition).
    pub(super) from_list: bool,
}

/// Builds the config from the (already overridden) tree.
pub(crate) fn build(root: Option<&Node>, ctx: &mut Ctx<'_>) -> Config {
    let mut config = Config {
        version: "1.0".to_string(),
        global: Global::default(),
        processes: BTreeMap::new(),
    };
    let Some(root) = root else {
        return config;
    };
    let Some(entries) = ctx.map(root, "") else {
        return config;
    };
    let mut global_node = None;
    let mut processes_node = None;
    for e in entries {
        match e.key.as_str() {
            "version" => {
                if let Got::Val(v) = ctx.string(&e.value, "version") {
                    let ok = v == "1"
                        || v.strip_prefix("1.").is_some_and(|m| {
                            !m.is_empty() && m.chars().all(|c| c.is_ascii_digit())
                        });
                    if ok {
                        config.version = v;
                    } else {
                        ctx.err(
                            &e.value.origin,
                            "version",
                            format!(
                                "unsupported config version `{}`: this phpeek-pm reads version 1.0",
                                shorten(&v)
                            ),
                        );
                    }
                }
            }
            "global" => global_node = Some(&e.value),
            "processes" => processes_node = Some(&e.value),
            // Extension keys (as in docker compose): a home for YAML anchors.
            k if k.starts_with("x-") => {}
            _ => {
                let looks_like_process = matches!(&e.value.value, Value::Map(es) if es.iter().any(|x| x.key == "command"));
                let extra = if looks_like_process {
                    " (a process? put it under `processes:`)"
                } else if GLOBAL_KEYS.contains(&e.key.as_str()) {
                    " (global settings go under `global:`)"
                } else {
                    ""
                };
                ctx.unknown_key(e, "", TOP_KEYS, extra);
            }
        }
    }
    let mut host_origin = None;
    if let Some(g) = global_node {
        host_origin = parse_global(g, ctx, &mut config.global);
    }
    let mut metas: BTreeMap<String, ProcMeta> = BTreeMap::new();
    if let Some(p) = processes_node {
        if let Some(entries) = ctx.map(p, "processes") {
            for e in entries {
                if metas.contains_key(&e.key) {
                    continue; // duplicate key, already reported
                }
                let (proc, meta) = parse_process(e, ctx);
                config.processes.insert(e.key.clone(), proc);
                metas.insert(e.key.clone(), meta);
            }
        }
    }
    cross::resolve_list_conditions(&mut config, &metas);
    cross_checks(&config, &metas, host_origin.as_ref(), global_node, ctx);
    config
}
