//! The effective configuration: what the rest of phpeek-pm reads once the file
//! was substituted, overridden, validated and defaulted. Every value here is
//! already checked; consumers never re-validate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::autoscale::{Autoscale, ScaleDown};
use crate::rollout::RolloutPolicy;
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
    /// TLS for the API's TCP listener (SPEC §13).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_tls: Option<TlsFiles>,
    pub metrics_enabled: bool,
    pub metrics_host: String,
    pub metrics_port: u16,
    pub metrics_path: String,
    /// TLS for the metrics listener (SPEC §13).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_tls: Option<TlsFiles>,
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
    /// `global.hooks`: commands run around the manager's own start and stop.
    pub hooks: GlobalHooks,
    /// Reload when the config file changes (`serve --watch` also turns it on).
    pub watch_config: bool,
}

/// `global.api_tls` / `global.metrics_tls`: PEM files, checked at load
/// (see `tls.rs`) and re-read by the server after every applied reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf certificate.
    pub key: PathBuf,
    /// CA certificates that client certificates must be signed by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// True when clients must present a certificate.
    pub fn wants_client_cert(&self) -> bool {
        self.client_ca.is_some()
    }
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
            api_tls: None,
            metrics_enabled: true,
            metrics_host: "0.0.0.0".to_string(),
            metrics_port: 9090,
            metrics_path: "/metrics".to_string(),
            metrics_tls: None,
            max_process_scale: 1000,
            restart_backoff_initial: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(60),
            max_restart_attempts: 0,
            dependency_timeout: Duration::from_secs(300),
            log_buffer: DEFAULT_LOG_BUFFER,
            hooks: GlobalHooks::default(),
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

/// A process's `type:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessType {
    /// Runs until stopped; restarted by its policy.
    Longrun,
    /// Runs to its end once per start of the manager (SPEC 11).
    Oneshot,
}

impl ProcessType {
    /// The one name table (see `vocab.rs`).
    pub const NAMES: &'static [(&'static str, Self)] = &[
        ("longrun", ProcessType::Longrun),
        ("oneshot", ProcessType::Oneshot),
    ];
}
vocabulary!(ProcessType);

impl ProcessType {
    fn is_longrun(&self) -> bool {
        *self == ProcessType::Longrun
    }
}

/// A one-shot's `on_failure:`: what its failing for good means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    Continue,
    /// Stop everything in order and exit with the task's exit code.
    Shutdown,
}

impl OnFailure {
    /// The one name table (see `vocab.rs`).
    pub const NAMES: &'static [(&'static str, Self)] = &[
        ("continue", OnFailure::Continue),
        ("shutdown", OnFailure::Shutdown),
    ];
}
vocabulary!(OnFailure);

impl OnFailure {
    fn is_continue(&self) -> bool {
        *self == OnFailure::Continue
    }
}

/// What a dependency must reach before its dependents start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyCondition {
    /// Every instance running (a one-shot: started, whatever came after).
    Started,
    /// Running and, where it has a health check, healthy.
    Healthy,
    /// Every one-shot instance ended, with any exit code.
    Completed,
    /// Every one-shot instance ended with exit code 0.
    CompletedSuccessfully,
}

impl DependencyCondition {
    /// The one name table (see `vocab.rs`).
    pub const NAMES: &'static [(&'static str, Self)] = &[
        ("started", DependencyCondition::Started),
        ("healthy", DependencyCondition::Healthy),
        ("completed", DependencyCondition::Completed),
        (
            "completed_successfully",
            DependencyCondition::CompletedSuccessfully,
        ),
    ];
}
vocabulary!(DependencyCondition);

/// One entry of `depends_on`: a process and the condition it must meet.
/// The list form resolves to `healthy` for a longrun and
/// `completed_successfully` for a one-shot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub process: String,
    pub condition: DependencyCondition,
}

impl Dependency {
    pub fn new(process: impl Into<String>, condition: DependencyCondition) -> Self {
        Dependency {
            process: process.into(),
            condition,
        }
    }
}

/// Serialised in the long form, `name: condition`, so a rendered file
/// re-reads to the same conditions.
pub(crate) mod depends_text {
    use serde::ser::SerializeMap;

    pub fn serialize<S: serde::Serializer>(
        deps: &[super::Dependency],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(deps.len()))?;
        for d in deps {
            map.serialize_entry(&d.process, d.condition.as_str())?;
        }
        map.end()
    }
}

/// `initial_state:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialState {
    Started,
    /// Defined, not started until a `start` request.
    Stopped,
}

impl InitialState {
    /// The one name table (see `vocab.rs`).
    pub const NAMES: &'static [(&'static str, Self)] = &[
        ("started", InitialState::Started),
        ("stopped", InitialState::Stopped),
    ];
}
vocabulary!(InitialState);

impl InitialState {
    fn is_started(&self) -> bool {
        *self == InitialState::Started
    }
}

/// A schedule's `concurrency:`: what a tick does while a run is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Skip the tick (counted as missed), unless the run ends within
    /// `starting_deadline`.
    Forbid,
    /// Start another run, up to `max_concurrent`.
    Allow,
    /// Stop the running one, then start the new one.
    Replace,
}

impl Concurrency {
    /// The one name table (see `vocab.rs`).
    pub const NAMES: &'static [(&'static str, Self)] = &[
        ("forbid", Concurrency::Forbid),
        ("allow", Concurrency::Allow),
        ("replace", Concurrency::Replace),
    ];
}
vocabulary!(Concurrency);

/// `schedule:` (SPEC 11): the process runs at the ticks of `cron`.
/// Serialised in the file's long form, without the keys its `concurrency`
/// forbids (`max_concurrent` only with allow, `starting_deadline` only
/// with forbid), so a rendered file re-reads to the same schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// 5 fields, or 6 with seconds first, or an `@` alias; checked at load.
    pub cron: String,
    /// An IANA zone name from the built-in database; checked at load
    /// (defaults to `$TZ` when that names a zone, else `UTC`).
    pub timezone: String,
    pub concurrency: Concurrency,
    /// With `allow`: runs at once.
    pub max_concurrent: u32,
    /// A run still going after this is stopped (signal, then SIGKILL).
    pub timeout: Option<Duration>,
    /// `forbid`: a tick waits this long for the previous run to end.
    pub starting_deadline: Duration,
    pub run_on_start: bool,
    /// Runs kept in the history.
    pub history: u32,
    pub suspended: bool,
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("cron", &self.cron)?;
        map.serialize_entry("timezone", &self.timezone)?;
        map.serialize_entry("concurrency", &self.concurrency)?;
        if self.concurrency == Concurrency::Allow {
            map.serialize_entry("max_concurrent", &self.max_concurrent)?;
        }
        if let Some(t) = self.timeout {
            map.serialize_entry("timeout", &crate::format_duration(t))?;
        }
        if self.concurrency == Concurrency::Forbid {
            map.serialize_entry(
                "starting_deadline",
                &crate::format_duration(self.starting_deadline),
            )?;
        }
        map.serialize_entry("run_on_start", &self.run_on_start)?;
        map.serialize_entry("history", &self.history)?;
        map.serialize_entry("suspended", &self.suspended)?;
        map.end()
    }
}

/// Default of `schedule.history`.
pub const DEFAULT_SCHEDULE_HISTORY: u32 = 10;

/// One hook command (SPEC 11).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hook {
    pub command: Vec<String>,
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    /// Further attempts after a failure.
    pub retries: u32,
    pub continue_on_error: bool,
}

/// Default of a hook's `timeout`.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// `global.hooks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GlobalHooks {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_start: Vec<Hook>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<Hook>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<Hook>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_stop: Vec<Hook>,
}

/// A process's `hooks`, run around each of its instances.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProcessHooks {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_start: Vec<Hook>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<Hook>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_stop: Vec<Hook>,
}

impl ProcessHooks {
    pub fn is_empty(&self) -> bool {
        self.pre_start.is_empty() && self.pre_stop.is_empty() && self.post_stop.is_empty()
    }
}

/// One entry under `processes:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessConfig {
    pub enabled: bool,
    #[serde(rename = "type", skip_serializing_if = "ProcessType::is_longrun")]
    pub kind: ProcessType,
    /// argv; may still hold `${PHPEEK_PM_INSTANCE_*}` / `${PHPEEK_PM_PROCESS_NAME}`
    /// references, expanded per instance by [`crate::expand_instance_vars`].
    pub command: Vec<String>,
    pub scale: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_scale: Option<u32>,
    pub restart: RestartPolicy,
    /// Overrides `global.max_restart_attempts` (0 = unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_restart_attempts: Option<u32>,
    /// One-shots: a run still going after this is stopped and fails.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration_text")]
    pub timeout: Option<Duration>,
    /// One-shots: what failing for good means.
    #[serde(skip_serializing_if = "OnFailure::is_continue")]
    pub on_failure: OnFailure,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(skip_serializing_if = "ProcessHooks::is_empty")]
    pub hooks: ProcessHooks,
    #[serde(skip_serializing_if = "InitialState::is_started")]
    pub initial_state: InitialState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
    #[serde(skip_serializing_if = "ScaleDown::is_default")]
    pub scale_down: ScaleDown,
    #[serde(skip_serializing_if = "RolloutPolicy::is_default")]
    pub rollout: RolloutPolicy,
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
    #[serde(with = "depends_text", skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
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

impl ProcessConfig {
    pub fn is_oneshot(&self) -> bool {
        self.kind == ProcessType::Oneshot
    }

    /// The names in `depends_on`, in order.
    pub fn dependency_names(&self) -> impl Iterator<Item = &str> {
        self.depends_on.iter().map(|d| d.process.as_str())
    }

    /// Whether `name` is among the dependencies.
    pub fn depends_on_process(&self, name: &str) -> bool {
        self.dependency_names().any(|d| d == name)
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
