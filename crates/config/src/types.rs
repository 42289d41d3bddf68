//! The effective configuration: what the rest of phpeek-pm reads once the file
//! was substituted, overridden, validated and defaulted. Every value here is
//! already checked; consumers never re-validate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
}

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
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestartPolicy {
    #[serde(rename = "always")]
    Always,
    #[serde(rename = "on-failure")]
    OnFailure,
    #[serde(rename = "never")]
    Never,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }
}

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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum HealthCheckKind {
    Tcp {
        address: String,
    },
    Http {
        url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        expected_status: Option<u16>,
    },
    Exec {
        command: Vec<String>,
    },
}

impl HealthCheckKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            HealthCheckKind::Tcp { .. } => "tcp",
            HealthCheckKind::Http { .. } => "http",
            HealthCheckKind::Exec { .. } => "exec",
        }
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
