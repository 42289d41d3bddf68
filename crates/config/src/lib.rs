//! phpeek-pm configuration: find the file, substitute `${VAR}`, apply
//! `PHPEEK_PM_*` overrides, validate (collecting every error with its line
//! and column) and hand out a fully defaulted [`Config`].
//!
//! Pipeline of [`parse_str`]:
//! 1. `${...}` tokens are protected by same-width placeholders
//!    (`substitute.rs`), so a plain `${X}` is valid YAML even in flow
//!    collections;
//! 2. the text is read into a node tree with positions (`tree.rs`): a
//!    budgeted serde-saphyr pass rejects syntax errors and hostile YAML, a
//!    granit-parser pass builds the tree, reporting every duplicate key;
//! 3. environment overrides replace nodes of the tree (`overrides.rs`);
//! 4. the validator walks the tree, substitutes and types each value by its
//!    key, and collects every error (`validate/`).
//!
//! Rules the rest of phpeek-pm shares live here, once: the enum
//! vocabularies (`NAMES` on each config enum), the scale limits
//! ([`ProcessConfig::check_scale`]), instance names ([`instance_name`],
//! [`split_instance_name`]), signal names, and small text rules
//! ([`is_null_literal`], [`format_duration`], [`shorten`]).
//!
//! The loader never panics: no `unwrap`/`expect`, no fallible indexing, and
//! recursion is bounded by the tree's depth limit.

mod autoscale;
mod cron;
mod duration;
mod find;
mod instance;
mod overrides;
mod render;
mod rollout;
mod scale;
mod schema;
mod substitute;
mod suggest;
mod sysinfo;
mod text;
pub mod tls;
mod tree;
mod types;
mod validate;
mod vocab;
mod zone;

pub use autoscale::*;
pub use cron::{cron_parser, CRON_ALIASES};
pub use instance::{instance_name, split_instance_name};
pub use rollout::{advisories, RolloutPolicy};
pub use scale::ScaleLimit;
pub use substitute::INSTANCE_VARS;
pub use text::{format_duration, is_null_literal, shorten};
pub use types::*;
pub use zone::zone_by_name;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found in the configuration, printable as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line and column in the file, when the error has a place.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key path, e.g. `processes.web.scale`, when known.
    pub key: Option<String>,
    pub message: String,
}

/// Every problem found; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file name the errors refer to (for rendering).
    pub source: String,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// One error without a position.
    pub fn single(source: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigErrors {
            source: source.into(),
            errors: vec![ConfigError {
                line: None,
                column: None,
                key: None,
                message: message.into(),
            }],
        }
    }
}

/// `4:5: processes.web.scael: unknown key (did you mean `scale`?)`; without
/// a position: `processes.web.scale: …`. (The file name is added by
/// [`ConfigErrors`]' `Display`.)
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "{line}:{}: ", self.column.unwrap_or(1))?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// One line per error: `phpeek-pm.yaml:4:5: processes.web.scael: unknown key
/// (did you mean `scale`?)`.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match e.line {
                Some(_) => write!(f, "{}:{e}", self.source)?,
                None => write!(f, "{}: {e}", self.source)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The process environment the loader reads (`${VAR}` values, overrides and
/// the built-in `CPU_COUNT` / `MEMORY_LIMIT_MB`).
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub vars: HashMap<String, String>,
}

impl Env {
    /// The manager's environment (`std::env::vars()`, non-UTF-8 entries
    /// skipped) plus `CPU_COUNT` and `MEMORY_LIMIT_MB` when it lacks them
    /// (from the cgroup limits, else the machine; see `sysinfo.rs`).
    pub fn from_process() -> Env {
        let mut vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        sysinfo::add_builtins(&mut vars);
        Env { vars }
    }

    /// An environment from explicit pairs, without built-ins (for tests and
    /// embedding).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// Per-instance values expanded in `command`, `env` and health-check targets.
#[derive(Debug, Clone)]
pub struct InstanceVars<'a> {
    pub process: &'a str,
    pub instance: &'a str,
    pub number: u32,
    pub port: Option<u32>,
}

/// `"SIGTERM"` for `libc::SIGTERM`, …; `None` for an unknown number.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    duration::signal_name(sig)
}

/// Parses a signal name as the file accepts it (`TERM`, `SIGTERM`,
/// `sigterm`, or a number); the error is a sentence for the user.
pub fn parse_signal(name: &str) -> Result<i32, String> {
    duration::parse_signal(name)
}

/// `--config` path if given (it must exist), else `$PHPEEK_PM_CONFIG` (it
/// must exist too), else `./phpeek-pm.yaml`, else
/// `/etc/phpeek-pm/phpeek-pm.yaml`. Not found: one error naming every place
/// looked.
pub fn find_config_path(cli: Option<&Path>, env: &Env) -> Result<PathBuf, ConfigErrors> {
    find::find_config_path(cli, env)
}

/// Reads the file (at most 16 MiB, UTF-8) and calls [`parse_str`] with the
/// path as the source name.
pub fn load_file(path: &Path, env: &Env) -> Result<Config, ConfigErrors> {
    find::load_file(path, env)
}

/// Substitution, parsing, overrides and validation of one file's text.
/// `source` names the file in error messages.
pub fn parse_str(text: &str, source: &str, env: &Env) -> Result<Config, ConfigErrors> {
    let fail = |errors: Vec<ConfigError>| ConfigErrors {
        source: source.to_string(),
        errors,
    };
    let protected = substitute::protect(text);
    let mut root = match tree::parse(&protected) {
        Ok(root) => root,
        Err(errs) => {
            return Err(fail(
                errs.into_iter()
                    .map(|e| ConfigError {
                        line: e.pos.map(|p| p.line),
                        column: e.pos.map(|p| p.col),
                        key: None,
                        message: e.message,
                    })
                    .collect(),
            ))
        }
    };
    let mut ctx = validate::Ctx::new(env);
    overrides::apply(&mut root, env, &mut ctx);
    let config = validate::build(root.as_ref(), &mut ctx);
    if ctx.errors.is_empty() {
        Ok(config)
    } else {
        let mut errors = ctx.errors;
        // File errors in file order, then errors without a position; keep
        // the discovery order otherwise, and drop exact repeats.
        errors.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
        errors.dedup();
        Err(fail(errors))
    }
}

/// Expands exactly `${PHPEEK_PM_INSTANCE_ID}`, `${PHPEEK_PM_INSTANCE_NUMBER}`,
/// `${PHPEEK_PM_INSTANCE_PORT}` and `${PHPEEK_PM_PROCESS_NAME}` (also the
/// `${NAME:-default}` form) and nothing else. Without a port,
/// `${PHPEEK_PM_INSTANCE_PORT}` becomes its default or the empty string
/// (the loader rejects that use when `port_base` is unset).
pub fn expand_instance_vars(s: &str, vars: &InstanceVars<'_>) -> String {
    substitute::expand_instance_vars(s, vars)
}

/// A JSON Schema (draft 2020-12) of the configuration file, for editors.
pub fn json_schema() -> serde_json::Value {
    schema::json_schema()
}

/// The effective configuration as YAML in the file's own format:
/// `parse_str(&to_yaml(c), …)` gives back `c` (with an environment that has
/// no overrides). `$` in values is written as `$$`.
pub fn to_yaml(config: &Config) -> String {
    render::to_yaml(config)
}
