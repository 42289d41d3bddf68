//! The effective configuration: what the rest of phpeek-pm reads once the file
//! was substituted, overridden, validated and defaulted. Every value here is
//! already checked; consumers never re-validate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::vocab::vocabulary;

/// The whole file after loading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub version: String,
    pub global: Global,
    /// Ordered by name, which is also the listing order of the API.
    pub processes: BTreeMap<String, ProcessConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Global {
    #[serde(with = "duration_text")]
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub log_level: LogLevel,
    pub api_enabled: bool,
    pub api_host: String,
    /// 0 binds an ephemeral port (the bound address is logged).
    pub api_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_auth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_socket: Option<PathBuf>,
    pub api_insecure: bool,
    pub metrics_enabled: bool,
    pub metrics_host: String,
    pub metrics_port: u16,
    pub metrics_path: String,
    pub max_process_scale: u32,
    #[serde(with = "duration_text")]
    pub restart_backoff_initial: Duration,
    #[serde(with = "duration_text")]
    pub restart_backoff_max: Duration,
    /// 0 = unlimited.
    pub max_restart_attempts: u32,
    #[serde(with = "duration_text")]
    pub dependency_timeout: Duration,
    /// Bytes of child output read and not yet written, across all
    /// instances and both streams; when full, children wait.
    pub log_buffer: u64,
    /// Reload when the config file changes (`serve --watch` also turns it on).
    pub watch_config: bool,
}

/// Default of `global.log_buffer`: 8 MiB.
pub const DEFAULT_LOG_BUFFER: u64 = 8 << 20;
/// Bounds of `global.log_buffer`.
pub const LOG_BUFFER_RANGE: std::ops::RangeInclusive<u64> = (64 << 10)..=(1 << 30);

impl Default for Global {
    fn default() -> Self {
        Global {
            shutdown_timeout: Duration::from_secs(30),
            log_format: LogFormat::Text,
            log_level: LogLevel::Info,
            api_enabled: true,
            api_host: "127.0.0.1".to_string(),
            api_port: 9180,
            api_auth: None,
            api_socket: None,
            api_insecure: false,
            metrics_enabled: true,
            metrics_host: "0.0.0.0".to_string(),
            metrics_port: 9090,
            metrics_path: "/metrics".to_string(),
            max_process_scale: 1000,
            restart_backoff_initial: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(60),
            max_restart_attempts: 0,
            dependency_timeout: Duration::from_secs(300),
            log_buffer: DEFAULT_LOG_BUFFER,
            watch_config: false,
        }
    }
}

/// `global.log_format`: how the manager writes its own and the children's
/// lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// The one name table (see `vocab.rs`).
    pub const NAMES: &'static [(&'static str, Self)] =
        &[("text", LogFormat::Text), ("json", LogFormat::Json)];
}
vocabulary!(LogFormat);

/// `global.log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The one name table (see `vocab.rs`).
    pub const NAMES: &'static [(&'static str, Self)] = &[
        ("debug", LogLevel::Debug),
        ("info", LogLevel::Info),
        ("warn", LogLevel::Warn),
        ("error", LogLevel::Error),
    ];
}
vocabulary!(LogLevel);

/// A process's `restart:` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// The one name table (see `vocab.rs`).
    pub const NAMES: &'static [(&'static str, Self)] = &[
        ("always", RestartPolicy::Always),
        ("on-failure", RestartPolicy::OnFailure),
        ("never", RestartPolicy::Never),
    ];
}
vocabulary!(RestartPolicy);

/// One entry under `processes:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessConfig {
    pub enabled: bool,
    /// argv; may still hold `${PHPEEK_PM_INSTANCE_*}` / `${PHPEEK_PM_PROCESS_NAME}`
    /// references, expanded per instance by [`crate::expand_instance_vars`].
    pub command: Vec<String>,
    pub scale: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_scale: Option<u32>,
    pub restart: RestartPolicy,
    /// Values may hold per-instance references like `command`.
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    /// A user name or a numeric uid, resolved at spawn time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A group name or a numeric gid; when absent the user's primary group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub depends_on: Vec<String>,
    /// Instance N gets `PHPEEK_PM_INSTANCE_PORT = port_base + N`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_base: Option<u16>,
    pub shutdown: Shutdown,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    pub stdout: bool,
    pub stderr: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shutdown {
    /// Signal number, e.g. `libc::SIGTERM`; serialised by name.
    #[serde(serialize_with = "signal_text::serialize")]
    pub signal: i32,
    /// None: use `global.shutdown_timeout`.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration_text")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    /// Flattened so the rendered YAML has the file's shape
    /// (`type: tcp`, `address: …` beside the timing keys).
    #[serde(flatten)]
    pub kind: HealthCheckKind,
    #[serde(with = "duration_text")]
    pub initial_delay: Duration,
    #[serde(with = "duration_text")]
    pub period: Duration,
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

/// Targets may hold per-instance references (`${PHPEEK_PM_INSTANCE_PORT}`).
/// Serialised in the file's shape: `type: <name>` (from
/// [`HealthCheckType::NAMES`]) beside the target keys.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthCheckKind {
    Tcp {
        address: String,
    },
    Http {
        url: String,
        expected_status: Option<u16>,
    },
    Exec {
        command: Vec<String>,
    },
}

/// A health check's `type:`, without its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckType {
    Tcp,
    Http,
    Exec,
}

impl HealthCheckType {
    /// The one name table (see `vocab.rs`).
    pub const NAMES: &'static [(&'static str, Self)] = &[
        ("tcp", HealthCheckType::Tcp),
        ("http", HealthCheckType::Http),
        ("exec", HealthCheckType::Exec),
    ];
}
vocabulary!(HealthCheckType);

impl HealthCheckKind {
    pub fn check_type(&self) -> HealthCheckType {
        match self {
            HealthCheckKind::Tcp { .. } => HealthCheckType::Tcp,
            HealthCheckKind::Http { .. } => HealthCheckType::Http,
            HealthCheckKind::Exec { .. } => HealthCheckType::Exec,
        }
    }

    /// `tcp`, `http` or `exec`.
    pub fn type_name(&self) -> &'static str {
        self.check_type().as_str()
    }
}

impl Serialize for HealthCheckKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("type", self.type_name())?;
        match self {
            HealthCheckKind::Tcp { address } => map.serialize_entry("address", address)?,
            HealthCheckKind::Http {
                url,
                expected_status,
            } => {
                map.serialize_entry("url", url)?;
                if let Some(status) = expected_status {
                    map.serialize_entry("expected_status", status)?;
                }
            }
            HealthCheckKind::Exec { command } => map.serialize_entry("command", command)?,
        }
        map.end()
    }
}

/// Serialises durations the way the file accepts them (`250ms`, `5s`, `1m`).
pub(crate) mod duration_text {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::format_duration(*d))
    }
}

pub(crate) mod opt_duration_text {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&crate::format_duration(*d)),
            None => s.serialize_none(),
        }
    }
}

pub(crate) mod signal_text {
    pub fn serialize<S: serde::Serializer>(sig: &i32, s: S) -> Result<S::Ok, S::Error> {
        match crate::signal_name(*sig) {
            Some(name) => s.serialize_str(name),
            None => s.serialize_i32(*sig),
        }
    }
}
