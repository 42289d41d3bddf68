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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::duration::{parse_duration, parse_signal};
use crate::substitute::{substitute, uses_port_without_default};
use crate::suggest;
use crate::tree::{Entry, Node, Origin, Style, Value};
use crate::{
    Config, ConfigError, Env, Global, HealthCheck, HealthCheckKind, LogFormat, LogLevel,
    ProcessConfig, RestartPolicy, Shutdown,
};

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
    "metrics_enabled",
    "metrics_host",
    "metrics_port",
    "metrics_path",
    "max_process_scale",
    "restart_backoff_initial",
    "restart_backoff_max",
    "max_restart_attempts",
    "dependency_timeout",
];
pub(crate) const PROCESS_KEYS: &[&str] = &[
    "enabled",
    "command",
    "scale",
    "max_scale",
    "restart",
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
const SHUTDOWN_KEYS: &[&str] = &["signal", "timeout"];
const HC_COMMON: &[&str] = &[
    "type",
    "initial_delay",
    "period",
    "timeout",
    "failure_threshold",
    "success_threshold",
];

/// Largest `scale`/`max_scale`/`max_process_scale` accepted at all.
const SCALE_LIMIT: u64 = 1_000_000;

/// The result of reading one value.
enum Got<T> {
    /// Absent or null: keep the default.
    Null,
    Val(T),
    /// An error was recorded.
    Bad,
}

impl<T> Got<T> {
    fn val(self) -> Option<T> {
        match self {
            Got::Val(v) => Some(v),
            _ => None,
        }
    }
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

pub(crate) struct Ctx<'e> {
    env: &'e Env,
    pub errors: Vec<ConfigError>,
}

impl<'e> Ctx<'e> {
    pub(crate) fn new(env: &'e Env) -> Self {
        Ctx {
            env,
            errors: Vec::new(),
        }
    }

    pub(crate) fn err(&mut self, origin: &Origin, key: &str, message: impl Into<String>) {
        let message = message.into();
        let (line, column, message) = match origin {
            Origin::File(p) => (Some(p.line), Some(p.col), message),
            Origin::Env(var) if var.is_empty() => (None, None, message),
            Origin::Env(var) => (
                None,
                None,
                format!("{message} (set by environment variable {var})"),
            ),
        };
        self.errors.push(ConfigError {
            line,
            column,
            key: (!key.is_empty()).then(|| key.to_string()),
            message,
        });
    }

    fn unknown_key(&mut self, e: &Entry, parent: &str, known: &[&str], extra: &str) {
        let path = join(parent, &e.key);
        let hint = suggest::hint(&e.key, known);
        let message = if hint.is_empty() && !extra.is_empty() {
            format!("unknown key{extra}")
        } else {
            format!("unknown key{hint}")
        };
        self.err(&e.key_origin, &path, message);
    }

    /// A scalar as text, substituted; `what` describes the expected value.
    fn text(&mut self, node: &Node, path: &str, what: &str) -> Got<String> {
        match &node.value {
            Value::Scalar { text, style } => {
                if *style == Style::Env {
                    return Got::Val(text.clone());
                }
                match substitute(text, self.env) {
                    Ok(s) if *style == Style::Plain && is_null(&s) => Got::Null,
                    Ok(s) => Got::Val(s),
                    Err(errs) => {
                        for e in errs {
                            self.err(&node.origin, path, e.message());
                        }
                        Got::Bad
                    }
                }
            }
            _ => {
                self.err(
                    &node.origin,
                    path,
                    format!("expected {what}, found {}", node.kind_name()),
                );
                Got::Bad
            }
        }
    }

    /// A string; empty means "not set" when `empty_is_unset`.
    fn string(&mut self, node: &Node, path: &str) -> Got<String> {
        self.text(node, path, "a string")
    }

    fn opt_string(&mut self, node: &Node, path: &str) -> Got<Option<String>> {
        match self.string(node, path) {
            Got::Val(s) if s.is_empty() => Got::Val(None),
            Got::Val(s) => {
                if s.contains('\0') {
                    self.err(&node.origin, path, "contains a NUL character");
                    Got::Bad
                } else {
                    Got::Val(Some(s))
                }
            }
            Got::Null => Got::Val(None),
            Got::Bad => Got::Bad,
        }
    }

    fn bool(&mut self, node: &Node, path: &str) -> Got<bool> {
        match self.text(node, path, "true or false") {
            Got::Val(s) => match parse_bool(&s) {
                Some(b) => Got::Val(b),
                None => {
                    self.err(
                        &node.origin,
                        path,
                        format!("expected true or false, got `{}`", shorten(&s)),
                    );
                    Got::Bad
                }
            },
            Got::Null => Got::Null,
            Got::Bad => Got::Bad,
        }
    }

    /// A whole number in `0..=max`.
    fn uint(&mut self, node: &Node, path: &str, max: u64) -> Got<u64> {
        match self.text(node, path, "a whole number") {
            Got::Val(s) => match parse_uint(&s, max) {
                Ok(v) => Got::Val(v),
                Err(m) => {
                    self.err(&node.origin, path, m);
                    Got::Bad
                }
            },
            Got::Null => Got::Null,
            Got::Bad => Got::Bad,
        }
    }

    fn u32(&mut self, node: &Node, path: &str, max: u64) -> Got<u32> {
        match self.uint(node, path, max.min(u64::from(u32::MAX))) {
            Got::Val(v) => u32::try_from(v).map(Got::Val).unwrap_or(Got::Bad),
            Got::Null => Got::Null,
            Got::Bad => Got::Bad,
        }
    }

    fn u16(&mut self, node: &Node, path: &str) -> Got<u16> {
        match self.uint(node, path, u64::from(u16::MAX)) {
            Got::Val(v) => u16::try_from(v).map(Got::Val).unwrap_or(Got::Bad),
            Got::Null => Got::Null,
            Got::Bad => Got::Bad,
        }
    }

    fn duration(&mut self, node: &Node, path: &str) -> Got<Duration> {
        match self.text(node, path, "a duration") {
            Got::Val(s) => match parse_duration(&s) {
                Ok(d) => Got::Val(d),
                Err(m) => {
                    self.err(&node.origin, path, m);
                    Got::Bad
                }
            },
            Got::Null => Got::Null,
            Got::Bad => Got::Bad,
        }
    }

    fn choice<T: Copy>(&mut self, node: &Node, path: &str, options: &[(&str, T)]) -> Got<T> {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let listing = names.join(", ");
        match self.text(node, path, &format!("one of {listing}")) {
            Got::Val(s) => {
                let norm = s.trim().to_ascii_lowercase();
                match options.iter().find(|(n, _)| *n == norm) {
                    Some((_, v)) => Got::Val(*v),
                    None => {
                        let hint = suggest::hint(&norm, &names);
                        self.err(
                            &node.origin,
                            path,
                            format!(
                                "unknown value `{}`: expected one of {listing}{hint}",
                                shorten(&s)
                            ),
                        );
                        Got::Bad
                    }
                }
            }
            Got::Null => Got::Null,
            Got::Bad => Got::Bad,
        }
    }

    /// A list of strings (`[a, b]`); each item must be a non-null scalar.
    fn string_list(&mut self, node: &Node, path: &str, example: &str) -> Got<Vec<String>> {
        match &node.value {
            Value::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut bad = false;
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    match self.text(item, &p, "a string") {
                        Got::Val(s) => {
                            if s.contains('\0') {
                                self.err(&item.origin, &p, "contains a NUL character");
                                bad = true;
                            }
                            out.push(s);
                        }
                        Got::Null => {
                            self.err(&item.origin, &p, "empty list entry (quote it: \"\")");
                            bad = true;
                        }
                        Got::Bad => bad = true,
                    }
                }
                if bad {
                    Got::Bad
                } else {
                    Got::Val(out)
                }
            }
            Value::Scalar { .. } => match self.text(node, path, "a list") {
                Got::Null => Got::Null,
                Got::Bad => Got::Bad,
                Got::Val(_) => {
                    self.err(
                        &node.origin,
                        path,
                        format!("expected a list of strings, e.g. {example}"),
                    );
                    Got::Bad
                }
            },
            Value::Map(_) => {
                self.err(
                    &node.origin,
                    path,
                    format!("expected a list of strings, e.g. {example}, found a mapping"),
                );
                Got::Bad
            }
        }
    }

    /// The entries of a mapping; a null value is an empty mapping.
    fn map<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Entry]> {
        match &node.value {
            Value::Map(entries) => Some(entries),
            Value::Scalar {
                text,
                style: Style::Plain,
            } if is_null(text) => Some(&[]),
            _ => {
                let what = if path.is_empty() {
                    "the file"
                } else {
                    "this key"
                };
                self.err(
                    &node.origin,
                    path,
                    format!(
                        "{what} must be a mapping (`key: value` lines), found {}",
                        node.kind_name()
                    ),
                );
                None
            }
        }
    }
}

fn set<T>(slot: &mut T, got: Got<T>) {
    if let Got::Val(v) = got {
        *slot = v;
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(37).collect();
        format!("{head}...")
    } else {
        s.to_string()
    }
}

fn parse_uint(s: &str, max: u64) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    if let Some(neg) = t.strip_prefix('-') {
        if !neg.is_empty() && neg.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("`{t}` is negative: expected 0 or more"));
        }
    }
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("expected a whole number, got `{}`", shorten(t)));
    }
    match digits.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(format!("`{}` is too large (at most {max})", shorten(t))),
    }
}

/// Positions kept for the cross-checks.
struct ProcMeta {
    name_origin: Origin,
    origin: Origin,
    scale_origin: Option<Origin>,
    max_scale_origin: Option<Origin>,
    port_base_origin: Option<Origin>,
    depends: Vec<(String, Origin)>,
    /// Values that may use `${PHPEEK_PM_INSTANCE_PORT}`, with their key and origin.
    port_users: Vec<(String, Origin)>,
}

pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
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
    cross_checks(&config, &metas, host_origin.as_ref(), global_node, ctx);
    config
}

fn parse_global(node: &Node, ctx: &mut Ctx<'_>, g: &mut Global) -> Option<Origin> {
    let entries = ctx.map(node, "global")?;
    let mut host_origin = None;
    for e in entries {
        let path = join("global", &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "shutdown_timeout" => set(&mut g.shutdown_timeout, ctx.duration(n, &path)),
            "log_format" => set(
                &mut g.log_format,
                ctx.choice(
                    n,
                    &path,
                    &[("text", LogFormat::Text), ("json", LogFormat::Json)],
                ),
            ),
            "log_level" => set(
                &mut g.log_level,
                ctx.choice(
                    n,
                    &path,
                    &[
                        ("debug", LogLevel::Debug),
                        ("info", LogLevel::Info),
                        ("warn", LogLevel::Warn),
                        ("error", LogLevel::Error),
                    ],
                ),
            ),
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

fn default_process() -> ProcessConfig {
    ProcessConfig {
        enabled: true,
        command: Vec::new(),
        scale: 1,
        max_scale: None,
        restart: RestartPolicy::Always,
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

fn parse_process(entry: &Entry, ctx: &mut Ctx<'_>) -> (ProcessConfig, ProcMeta) {
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
            "restart" => set(
                &mut p.restart,
                ctx.choice(
                    n,
                    &path,
                    &[
                        ("always", RestartPolicy::Always),
                        ("on-failure", RestartPolicy::OnFailure),
                        ("never", RestartPolicy::Never),
                    ],
                ),
            ),
            "env" => {
                if let Some(vars) = ctx.map(n, &path) {
                    for v in vars {
                        let vpath = join(&path, &v.key);
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
            "working_dir" => {
                if let Got::Val(s) = ctx.opt_string(n, &path) {
                    p.working_dir = s.map(PathBuf::from);
                }
            }
            "user" => set(&mut p.user, ctx.opt_string(n, &path)),
            "group" => set(&mut p.group, ctx.opt_string(n, &path)),
            "depends_on" => {
                let items: Vec<&Node> = match &n.value {
                    Value::Seq(items) => items.iter().collect(),
                    _ => vec![n],
                };
                for (i, item) in items.into_iter().enumerate() {
                    let ipath = if matches!(n.value, Value::Seq(_)) {
                        format!("{path}[{i}]")
                    } else {
                        path.clone()
                    };
                    match ctx.text(item, &ipath, "a process name") {
                        Got::Val(dep) => {
                            if !p.depends_on.contains(&dep) {
                                p.depends_on.push(dep.clone());
                                meta.depends.push((dep, item.origin.clone()));
                            }
                        }
                        Got::Null => {
                            if matches!(n.value, Value::Seq(_)) {
                                ctx.err(
                                    &item.origin,
                                    &ipath,
                                    "empty entry: expected a process name",
                                );
                            }
                        }
                        Got::Bad => {}
                    }
                }
            }
            "port_base" => {
                meta.port_base_origin = Some(n.origin.clone());
                if let Got::Val(v) = ctx.u16(n, &path) {
                    p.port_base = Some(v);
                }
            }
            "shutdown" => parse_shutdown(n, &path, ctx, &mut p.shutdown),
            "health_check" => {
                p.health_check = parse_health_check(n, &path, ctx, &mut meta);
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
    (p, meta)
}

fn command_origin(entries: &[Entry]) -> Origin {
    entries
        .iter()
        .find(|e| e.key == "command")
        .map(|e| e.value.origin.clone())
        .unwrap_or(Origin::Env(String::new()))
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

#[derive(Clone, Copy, PartialEq)]
enum HcType {
    Tcp,
    Http,
    Exec,
}

fn hc_keys_of(t: HcType) -> &'static [&'static str] {
    match t {
        HcType::Tcp => &["address"],
        HcType::Http => &["url", "expected_status"],
        HcType::Exec => &["command"],
    }
}

fn hc_type_of_key(key: &str) -> Option<&'static str> {
    match key {
        "address" => Some("tcp"),
        "url" | "expected_status" => Some("http"),
        "command" => Some("exec"),
        _ => None,
    }
}

fn parse_health_check(
    node: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
    meta: &mut ProcMeta,
) -> Option<HealthCheck> {
    if let Value::Scalar {
        text,
        style: Style::Plain,
    } = &node.value
    {
        if is_null(text) {
            return None;
        }
    }
    let entries = ctx.map(node, path)?;
    let type_entry = entries.iter().find(|e| e.key == "type");
    let kind = match type_entry {
        None => {
            ctx.err(
                &node.origin,
                &join(path, "type"),
                "missing `type`: expected tcp, http or exec",
            );
            None
        }
        Some(e) => ctx
            .choice(
                &e.value,
                &join(path, "type"),
                &[
                    ("tcp", HcType::Tcp),
                    ("http", HcType::Http),
                    ("exec", HcType::Exec),
                ],
            )
            .val(),
    };
    let mut hc = HealthCheck {
        kind: HealthCheckKind::Exec {
            command: Vec::new(),
        },
        initial_delay: Duration::ZERO,
        period: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        failure_threshold: 3,
        success_threshold: 1,
    };
    let mut address = None;
    let mut url = None;
    let mut status = None;
    let mut command = None;
    let mut ok = true;
    // Set when address/url/command was given but rejected (already reported).
    let mut target_reported = false;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        let key = e.key.as_str();
        if let (Some(t), Some(owner)) = (kind, hc_type_of_key(key)) {
            if !hc_keys_of(t).contains(&key) {
                ctx.err(
                    &e.key_origin,
                    &kpath,
                    format!("`{key}` is only used by `type: {owner}` checks"),
                );
                ok = false;
                continue;
            }
        }
        match key {
            "type" => {}
            "initial_delay" => set(&mut hc.initial_delay, ctx.duration(n, &kpath)),
            "period" | "timeout" => match ctx.duration(n, &kpath) {
                Got::Val(d) if d.is_zero() => {
                    ctx.err(&n.origin, &kpath, "must be more than 0");
                    ok = false;
                }
                Got::Val(d) if key == "period" => hc.period = d,
                Got::Val(d) => hc.timeout = d,
                Got::Bad => ok = false,
                Got::Null => {}
            },
            "failure_threshold" | "success_threshold" => match ctx.u32(n, &kpath, 1_000_000) {
                Got::Val(0) => {
                    ctx.err(&n.origin, &kpath, "must be at least 1");
                    ok = false;
                }
                Got::Val(v) if key == "failure_threshold" => hc.failure_threshold = v,
                Got::Val(v) => hc.success_threshold = v,
                Got::Bad => ok = false,
                Got::Null => {}
            },
            "address" => match ctx.string(n, &kpath) {
                Got::Val(a) => {
                    if valid_address(&a) {
                        if uses_port_without_default(&a) {
                            meta.port_users.push((kpath.clone(), n.origin.clone()));
                        }
                        address = Some(a);
                    } else {
                        ctx.err(
                            &n.origin,
                            &kpath,
                            format!("`{}` is not `host:port`, e.g. 127.0.0.1:${{PHPEEK_PM_INSTANCE_PORT}}", shorten(&a)),
                        );
                        ok = false;
                        target_reported = true;
                    }
                }
                Got::Bad => {
                    ok = false;
                    target_reported = true;
                }
                Got::Null => {}
            },
            "url" => match ctx.string(n, &kpath) {
                Got::Val(u) => match check_url(&u) {
                    Ok(()) => {
                        if uses_port_without_default(&u) {
                            meta.port_users.push((kpath.clone(), n.origin.clone()));
                        }
                        url = Some(u);
                    }
                    Err(m) => {
                        ctx.err(&n.origin, &kpath, m);
                        ok = false;
                        target_reported = true;
                    }
                },
                Got::Bad => {
                    ok = false;
                    target_reported = true;
                }
                Got::Null => {}
            },
            "expected_status" => match ctx.uint(n, &kpath, 999) {
                Got::Val(s) if (100..=599).contains(&s) => status = u16::try_from(s).ok(),
                Got::Val(s) => {
                    ctx.err(
                        &n.origin,
                        &kpath,
                        format!("{s} is not an HTTP status (100 to 599)"),
                    );
                    ok = false;
                }
                Got::Bad => ok = false,
                Got::Null => {}
            },
            "command" => match ctx.string_list(n, &kpath, "[\"php-fpm-healthcheck\"]") {
                Got::Val(c) if c.first().is_none_or(|s| s.trim().is_empty()) => {
                    ctx.err(
                        &n.origin,
                        &kpath,
                        "is empty: give the program and its arguments",
                    );
                    ok = false;
                    target_reported = true;
                }
                Got::Val(c) => {
                    if c.iter().any(|a| uses_port_without_default(a)) {
                        meta.port_users.push((kpath.clone(), n.origin.clone()));
                    }
                    command = Some(c);
                }
                Got::Bad => {
                    ok = false;
                    target_reported = true;
                }
                Got::Null => {}
            },
            _ => {
                let mut known: Vec<&str> = HC_COMMON.to_vec();
                match kind {
                    Some(t) => known.extend_from_slice(hc_keys_of(t)),
                    None => {
                        known.extend_from_slice(&["address", "url", "expected_status", "command"])
                    }
                }
                ctx.unknown_key(e, path, &known, "");
                ok = false;
            }
        }
    }
    let t = kind?;
    let missing = |ctx: &mut Ctx<'_>, key: &str, example: &str| {
        if target_reported {
            return;
        }
        ctx.err(
            &node.origin,
            &join(path, key),
            format!(
                "missing `{key}` for a {} check, e.g. {example}",
                match t {
                    HcType::Tcp => "tcp",
                    HcType::Http => "http",
                    HcType::Exec => "exec",
                }
            ),
        );
    };
    hc.kind = match t {
        HcType::Tcp => match address {
            Some(address) => HealthCheckKind::Tcp { address },
            None => {
                missing(ctx, "address", "address: \"127.0.0.1:8080\"");
                return None;
            }
        },
        HcType::Http => match url {
            Some(url) => HealthCheckKind::Http {
                url,
                expected_status: status,
            },
            None => {
                missing(ctx, "url", "url: \"http://127.0.0.1:8080/health\"");
                return None;
            }
        },
        HcType::Exec => match command {
            Some(command) => HealthCheckKind::Exec { command },
            None => {
                missing(ctx, "command", "command: [\"php-fpm-healthcheck\"]");
                return None;
            }
        },
    };
    ok.then_some(hc)
}

fn valid_address(a: &str) -> bool {
    let Some((host, port)) = a.rsplit_once(':') else {
        return false;
    };
    let host_ok = !host.is_empty() && !host.contains(char::is_whitespace);
    let port_ok = port.contains("${")
        || (!port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u16>().is_ok());
    host_ok && port_ok
}

fn check_url(u: &str) -> Result<(), String> {
    let lower = u.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(format!(
            "`{}`: https is not supported for health checks; use http://",
            shorten(u)
        ));
    }
    let Some(rest) = u.get(7..).filter(|_| lower.starts_with("http://")) else {
        return Err(format!(
            "`{}` is not an http:// URL, e.g. http://127.0.0.1:8080/health",
            shorten(u)
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host_only = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    if host_only.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!(
            "`{}` has no host, e.g. http://127.0.0.1:8080/health",
            shorten(u)
        ));
    }
    Ok(())
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

fn cross_checks(
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

/// Every elementary cycle found by a depth-first search, each listed once
/// as `a, b, …, a`, starting at its smallest name.
pub(crate) fn find_cycles(config: &Config) -> Vec<Vec<String>> {
    let graph: BTreeMap<&str, Vec<&str>> = config
        .processes
        .iter()
        .map(|(n, p)| {
            let deps = p
                .depends_on
                .iter()
                .map(String::as_str)
                .filter(|d| config.processes.contains_key(*d))
                .collect();
            (n.as_str(), deps)
        })
        .collect();
    let mut color: HashMap<&str, u8> = HashMap::new();
    let mut cycles = Vec::new();
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    for &start in graph.keys() {
        if color.get(start).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        color.insert(start, 1);
        while let Some(top) = stack.last_mut() {
            let (node, idx) = *top;
            let children = graph.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(&child) = children.get(idx) {
                top.1 += 1;
                match color.get(child).copied().unwrap_or(0) {
                    0 => {
                        color.insert(child, 1);
                        stack.push((child, 0));
                    }
                    1 => {
                        if let Some(at) = stack.iter().position(|(n, _)| *n == child) {
                            let mut cycle: Vec<String> =
                                stack[at..].iter().map(|(n, _)| n.to_string()).collect();
                            // Rotate so the smallest name comes first.
                            if let Some(min_at) = cycle
                                .iter()
                                .enumerate()
                                .min_by(|a, b| a.1.cmp(b.1))
                                .map(|(i, _)| i)
                            {
                                cycle.rotate_left(min_at);
                            }
                            if seen.insert(cycle.clone()) {
                                let mut shown = cycle.clone();
                                if let Some(f) = cycle.first() {
                                    shown.push(f.clone());
                                }
                                cycles.push(shown);
                            }
                        }
                    }
                    _ => {}
                }
            } else {
                color.insert(node, 2);
                stack.pop();
            }
        }
    }
    cycles
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
    fn uints() {
        assert_eq!(parse_uint("5", 10), Ok(5));
        assert_eq!(parse_uint(" 007 ", 10), Ok(7));
        assert_eq!(parse_uint("+3", 10), Ok(3));
        assert!(parse_uint("-3", 10).unwrap_err().contains("negative"));
        assert!(parse_uint("11", 10).unwrap_err().contains("too large"));
        assert!(parse_uint("99999999999999999999999", 10)
            .unwrap_err()
            .contains("too large"));
        assert!(parse_uint("abc", 10).unwrap_err().contains("whole number"));
        assert!(parse_uint("1.5", 10).is_err());
        assert!(parse_uint("", 10).is_err());
    }

    #[test]
    fn bools() {
        for t in ["true", "TRUE", "yes", "on", "1"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["false", "No", "off", "0"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(parse_bool("2"), None);
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

    #[test]
    fn urls_and_addresses() {
        assert!(check_url("http://127.0.0.1:8080/health").is_ok());
        assert!(check_url("HTTP://localhost").is_ok());
        assert!(check_url("http://[::1]:80/").is_ok());
        assert!(check_url("http://127.0.0.1:${PHPEEK_PM_INSTANCE_PORT}/h").is_ok());
        assert!(check_url("https://x").is_err());
        assert!(check_url("http:///path").is_err());
        assert!(check_url("http://").is_err());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("localhost:80").is_err());
        assert!(valid_address("127.0.0.1:80"));
        assert!(valid_address("[::1]:80"));
        assert!(valid_address("127.0.0.1:${PHPEEK_PM_INSTANCE_PORT}"));
        assert!(!valid_address("127.0.0.1"));
        assert!(!valid_address(":80"));
        assert!(!valid_address("host:99999"));
        assert!(!valid_address("host:http"));
    }

    fn config_with_deps(deps: &[(&str, &[&str])]) -> Config {
        let mut c = Config {
            version: "1.0".into(),
            global: Global::default(),
            processes: BTreeMap::new(),
        };
        for (name, ds) in deps {
            let mut p = default_process();
            p.depends_on = ds.iter().map(|s| s.to_string()).collect();
            c.processes.insert(name.to_string(), p);
        }
        c
    }

    #[test]
    fn cycles() {
        let c = config_with_deps(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]);
        assert_eq!(find_cycles(&c), vec![vec!["a", "b", "c", "a"]]);
        let c = config_with_deps(&[("a", &["a"])]);
        assert_eq!(find_cycles(&c), vec![vec!["a", "a"]]);
        let c = config_with_deps(&[("a", &["b"]), ("b", &[]), ("c", &["a", "b"])]);
        assert!(find_cycles(&c).is_empty());
        let c = config_with_deps(&[("x", &["y"]), ("y", &["x"]), ("p", &["q"]), ("q", &["p"])]);
        assert_eq!(find_cycles(&c).len(), 2);
        let c = config_with_deps(&[("a", &["missing"])]);
        assert!(find_cycles(&c).is_empty());
    }

    #[test]
    fn long_dependency_chain_does_not_overflow() {
        let names: Vec<String> = (0..20_000).map(|i| format!("p{i}")).collect();
        let mut c = config_with_deps(&[]);
        for (i, n) in names.iter().enumerate() {
            let mut p = default_process();
            if let Some(next) = names.get(i + 1) {
                p.depends_on = vec![next.clone()];
            } else {
                p.depends_on = vec!["p0".to_string()];
            }
            c.processes.insert(n.clone(), p);
        }
        assert_eq!(find_cycles(&c).len(), 1);
    }
}
