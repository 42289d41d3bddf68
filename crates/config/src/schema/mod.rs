//! JSON Schema of the configuration **file** (for editors), via schemars.
//!
//! The structs below describe the file's shape only; they are never used to
//! parse (the loader reads a node tree, see `tree.rs`). Scalars that may be
//! written as `${VAR}` accept that string form too, so `scale: ${CPU_COUNT}`
//! is not flagged by an editor. Enum-valued keys use the real enums'
//! schemas (their one name table, see `vocab.rs`), so the schema cannot
//! drift from what the validator accepts.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Value};

use crate::{
    DependencyCondition, HealthCheckType, InitialState, LogFormat, LogLevel, OnFailure,
    ProcessType, RestartPolicy,
};
use autoscale::{FileAutoscale, FileScaleDown};
use tasks::{FileGlobalHooks, FileProcessHooks, FileScheduleAny};

mod autoscale;
mod tasks;

fn schema(v: Value) -> Schema {
    Schema::try_from(v).unwrap_or_else(|_| Schema::from(true))
}

const VAR_PATTERN: &str = r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}";

fn var_string() -> Value {
    json!({
        "type": "string",
        "pattern": VAR_PATTERN,
        "description": "an environment variable reference, substituted at load time"
    })
}

macro_rules! scalar_schema {
    ($vis:vis $name:ident, $id:literal, $body:expr) => {
        $vis struct $name;
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($id)
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                schema($body)
            }
        }
    };
}
use scalar_schema;

scalar_schema!(
    Count,
    "Count",
    json!({ "anyOf": [ { "type": "integer", "minimum": 0 }, var_string() ] })
);
scalar_schema!(
    Port,
    "Port",
    json!({ "anyOf": [ { "type": "integer", "minimum": 0, "maximum": 65535 }, var_string() ] })
);
scalar_schema!(
    Flag,
    "Flag",
    json!({ "anyOf": [
        { "type": "boolean" },
        { "type": "string", "pattern": "^(true|false|yes|no|on|off|True|False|Yes|No|On|Off|TRUE|FALSE|YES|NO|ON|OFF|1|0)$" },
        var_string()
    ] })
);
scalar_schema!(
    SizeText,
    "Size",
    json!({
        "description": "a size: `8MiB`, `512KiB`, `1GiB`, `16MB`, or a number of bytes",
        "anyOf": [
            { "type": "integer", "minimum": 65536, "maximum": 1073741824 },
            { "type": "string", "pattern": r"^\s*\d+\s*([bB]|[kKmMgG]([iI]?[bB])?)?\s*$" },
            var_string()
        ]
    })
);
scalar_schema!(
    DurationText,
    "Duration",
    json!({
        "description": "a duration: `250ms`, `5s`, `1m`, `1h`, or a number of seconds",
        "anyOf": [
            { "type": "number", "minimum": 0 },
            { "type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$" },
            var_string()
        ]
    })
);
scalar_schema!(
    Signal,
    "Signal",
    json!({
        "description": "a signal name (SIGTERM, TERM, sigterm) or number",
        "anyOf": [ { "type": "string" }, { "type": "integer", "minimum": 1, "maximum": 64 } ]
    })
);
scalar_schema!(
    Command,
    "Command",
    json!({
        "description": "the program and its arguments, e.g. [\"php\", \"artisan\", \"queue:work\"]",
        "type": "array", "items": { "type": "string" }, "minItems": 1
    })
);
scalar_schema!(
    EnvMap,
    "EnvMap",
    json!({
        "type": "object",
        "additionalProperties": { "type": ["string", "number", "boolean", "null"] }
    })
);
/// `depends_on:`: names (list or one), or a mapping `name: condition`
/// (the conditions from [`DependencyCondition::NAMES`]).
struct DependsOn;

impl JsonSchema for DependsOn {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("DependsOn")
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let condition = generator.subschema_for::<DependencyCondition>().to_value();
        schema(json!({
            "description": "process names (healthy for a longrun, completed_successfully for a one-shot), or a mapping name: condition",
            "anyOf": [
                { "type": "array", "items": { "type": "string", "pattern": NAME_PATTERN } },
                { "type": "string" },
                {
                    "type": "object",
                    "propertyNames": { "pattern": NAME_PATTERN },
                    "additionalProperties": { "anyOf": [condition, { "type": "null" }] }
                }
            ]
        }))
    }
}

const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]*$";

scalar_schema!(
    StatusCode,
    "StatusCode",
    json!({ "anyOf": [ { "type": "integer", "minimum": 100, "maximum": 599 }, var_string() ] })
);

/// phpeek-pm configuration file.
#[derive(JsonSchema)]
#[schemars(title = "phpeek-pm configuration")]
#[schemars(extend("patternProperties" = { "^x-": {} }))]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileConfig {
    /// Format version; "1.0" when absent.
    version: Option<String>,
    /// Manager-wide settings.
    global: Option<FileGlobal>,
    /// The programs to run, by name. Instances are named `<name>-1`, `<name>-2`, …
    #[schemars(extend("propertyNames" = { "pattern": "^[a-z0-9][a-z0-9_-]*$" }))]
    processes: Option<BTreeMap<String, FileProcess>>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileGlobal {
    /// Default grace period before SIGKILL (default 30s).
    shutdown_timeout: Option<DurationText>,
    /// text (default) or json.
    log_format: Option<LogFormat>,
    /// debug, info (default), warn or error.
    log_level: Option<LogLevel>,
    /// Serve the management API (default true).
    api_enabled: Option<Flag>,
    /// API listen address (default 127.0.0.1).
    api_host: Option<String>,
    /// API port (default 9180; 0 = ephemeral).
    api_port: Option<Port>,
    /// Bearer token required by the API.
    api_auth: Option<String>,
    /// Also serve the API on this unix socket.
    api_socket: Option<String>,
    /// Allow a non-loopback API without api_auth or api_tls.client_ca
    /// (default false).
    api_insecure: Option<Flag>,
    /// Serve the API over TLS (PEM files, re-read on reload).
    api_tls: Option<FileTls>,
    /// Serve Prometheus metrics (default true).
    metrics_enabled: Option<Flag>,
    /// Metrics listen address (default 0.0.0.0).
    metrics_host: Option<String>,
    /// Metrics port (default 9090).
    metrics_port: Option<Port>,
    /// Metrics path (default /metrics).
    metrics_path: Option<String>,
    /// Serve metrics over TLS (PEM files, re-read on reload).
    metrics_tls: Option<FileTls>,
    /// Hard ceiling for any scale (default 1000).
    max_process_scale: Option<Count>,
    /// First restart delay (default 1s).
    restart_backoff_initial: Option<DurationText>,
    /// Longest restart delay (default 60s).
    restart_backoff_max: Option<DurationText>,
    /// Restarts in a row before `failed`; 0 = unlimited (default).
    max_restart_attempts: Option<Count>,
    /// How long a dependent waits for its dependencies (default 5m).
    dependency_timeout: Option<DurationText>,
    /// Child output held while the manager's stdout is slow (default 8MiB;
    /// 64KiB to 1GiB); when full, children block on their pipes.
    log_buffer: Option<SizeText>,
    /// Commands run around the manager's own start and stop.
    hooks: Option<FileGlobalHooks>,
    /// Reload when the file changes (default false; `serve --watch` too).
    watch_config: Option<Flag>,
}

/// TLS files of a listener.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileTls {
    /// PEM certificate chain, leaf first.
    cert: String,
    /// PEM private key of the leaf certificate.
    key: String,
    /// PEM CA certificates: clients must present a certificate signed by
    /// one (the API's health and ready routes excepted).
    client_ca: Option<String>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileProcess {
    /// Start this process (default true).
    enabled: Option<Flag>,
    /// longrun (default) or oneshot (runs to its end once per start).
    #[serde(rename = "type")]
    kind: Option<ProcessType>,
    /// The program and its arguments (required).
    command: Command,
    /// Number of instances (default 1; with a schedule at most 1).
    scale: Option<Count>,
    /// Per-process ceiling for scale requests.
    max_scale: Option<Count>,
    /// always (default), on-failure or never; one-shots and schedules
    /// default to never (always is an error there).
    restart: Option<RestartPolicy>,
    /// Restarts in a row before `failed`; 0 = unlimited (default: global).
    max_restart_attempts: Option<Count>,
    /// One-shots: a run still going after this is stopped and fails.
    timeout: Option<DurationText>,
    /// One-shots: continue (default) or shutdown when it fails for good.
    on_failure: Option<OnFailure>,
    /// Run at the ticks of a cron expression (no standing instances).
    schedule: Option<FileScheduleAny>,
    /// Commands run around each instance's start and stop.
    hooks: Option<FileProcessHooks>,
    /// started (default) or stopped (defined, started on request).
    initial_state: Option<InitialState>,
    /// The manager sets the scale itself from metrics and time windows
    /// (not with a schedule, not for one-shots).
    autoscale: Option<FileAutoscale>,
    /// Which instances a scale-down stops.
    scale_down: Option<FileScaleDown>,
    /// How a rolling restart paces itself.
    rollout: Option<FileRollout>,
    /// Extra environment variables.
    env: Option<EnvMap>,
    /// Working directory.
    working_dir: Option<String>,
    /// User name or uid.
    user: Option<String>,
    /// Group name or gid (default: the user's primary group).
    group: Option<String>,
    /// Processes that must be running (and healthy), or completed, first.
    depends_on: Option<DependsOn>,
    /// Instance N gets PHPEEK_PM_INSTANCE_PORT = port_base + N.
    port_base: Option<Port>,
    /// How instances are stopped.
    shutdown: Option<FileShutdown>,
    /// Probe run against every instance.
    health_check: Option<FileHealthCheck>,
    /// Forward the instances' stdout (default true).
    stdout: Option<Flag>,
    /// Forward the instances' stderr (default true).
    stderr: Option<Flag>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileShutdown {
    /// Stop signal (default SIGTERM).
    signal: Option<Signal>,
    /// Grace period before SIGKILL (default: global.shutdown_timeout).
    timeout: Option<DurationText>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileRollout {
    /// Each next step waits until the new instance has been running (and
    /// healthy) this long (default 0: at once).
    min_ready: Option<DurationText>,
}

/// `health_check:`: one object per check type, told apart by `type`
/// (the names come from [`HealthCheckType::NAMES`]).
struct FileHealthCheck;

impl JsonSchema for FileHealthCheck {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("FileHealthCheck")
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let variants: Vec<Value> = HealthCheckType::NAMES
            .iter()
            .map(|&(name, t)| {
                let mut variant = match t {
                    HealthCheckType::Tcp => FileTcpCheck::json_schema(generator),
                    HealthCheckType::Http => FileHttpCheck::json_schema(generator),
                    HealthCheckType::Exec => FileExecCheck::json_schema(generator),
                }
                .to_value();
                if let Some(props) = variant.get_mut("properties").and_then(Value::as_object_mut) {
                    props.insert("type".into(), json!({ "type": "string", "const": name }));
                }
                if let Some(required) = variant.get_mut("required").and_then(Value::as_array_mut) {
                    required.insert(0, json!("type"));
                }
                variant
            })
            .collect();
        schema(json!({ "oneOf": variants }))
    }
}

/// The timing keys every check type has.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct FileProbeTiming {
    initial_delay: Option<DurationText>,
    period: Option<DurationText>,
    timeout: Option<DurationText>,
    failure_threshold: Option<Count>,
    success_threshold: Option<Count>,
}

/// Connect to host:port.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileTcpCheck {
    /// host:port, e.g. 127.0.0.1:${PHPEEK_PM_INSTANCE_PORT}
    address: String,
    #[serde(flatten)]
    timing: FileProbeTiming,
}

/// GET an http:// URL.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileHttpCheck {
    /// http://host[:port]/path
    url: String,
    /// Expected status (default: any 2xx).
    expected_status: Option<StatusCode>,
    #[serde(flatten)]
    timing: FileProbeTiming,
}

/// Run a command; exit 0 is healthy.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileExecCheck {
    command: Command,
    #[serde(flatten)]
    timing: FileProbeTiming,
}

pub(crate) fn json_schema() -> Value {
    schemars::schema_for!(FileConfig).to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_the_file_shape() {
        let s = json_schema();
        assert!(s.get("$schema").and_then(Value::as_str).is_some());
        let props = s.get("properties").and_then(Value::as_object);
        let props = props.map(|p| p.keys().cloned().collect::<Vec<_>>());
        assert_eq!(
            props,
            Some(vec!["global".into(), "processes".into(), "version".into()])
        );
        assert_eq!(s.get("additionalProperties"), Some(&Value::Bool(false)));
        let text = s.to_string();
        for needle in [
            "max_process_scale",
            "depends_on",
            "health_check",
            "expected_status",
            "on-failure",
            "propertyNames",
            "completed_successfully",
            "oneshot",
            "starting_deadline",
            "continue_on_error",
            "idle_first",
            "per_instance",
            "stabilization",
        ] {
            assert!(text.contains(needle), "{needle} missing");
        }
    }

    /// The keys of a definition in `$defs`, sorted.
    fn keys_of(s: &Value, def: &str) -> Vec<String> {
        let mut keys: Vec<String> = s
            .pointer(&format!("/$defs/{def}/properties"))
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    fn sorted(keys: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        v.sort();
        v
    }

    /// The schema and the validator know the same keys.
    #[test]
    fn schema_keys_are_the_validators() {
        use crate::validate::key_tables;
        let s = json_schema();
        for (def, keys) in key_tables() {
            assert_eq!(keys_of(&s, def), sorted(keys), "{def}");
        }
    }
}
