//! The effective `autoscale:` and `scale_down:` of a process (SPEC 12), as
//! the loader checked them (`validate/autoscale.rs`). Re-exported from the
//! crate root with the other config types.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::types::duration_text;
use crate::vocab::vocabulary;

/// `autoscale:` (SPEC 12): the manager sets the desired scale itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
    #[serde(with = "duration_text")]
    pub interval: Duration,
    /// The desired count is the largest any metric asks for.
    pub metrics: Vec<AutoscaleMetric>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<AutoscaleWindow>,
    pub behavior: AutoscaleBehavior,
    /// Applied after 3 intervals in a row in which every metric failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<u32>,
    /// Decide, show and export; do not act.
    pub dry_run: bool,
}

/// Default of `autoscale.interval`.
pub const DEFAULT_AUTOSCALE_INTERVAL: Duration = Duration::from_secs(15);

/// One metric: where its value comes from and how it becomes a count.
/// Serialised in the file's shape: the source key (`redis: {…}`), the
/// target key (`per_instance` or `steps`; none for `cpu`) and `timeout`.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleMetric {
    pub source: MetricSource,
    pub target: MetricTarget,
    /// A sample that takes longer fails (default: the smaller of
    /// `interval` and 5 s).
    pub timeout: Duration,
}

impl Serialize for AutoscaleMetric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// The file's keys of one metric entry.
        #[derive(Serialize)]
        struct Entry<'a> {
            #[serde(flatten)]
            source: &'a MetricSource,
            #[serde(skip_serializing_if = "Option::is_none")]
            per_instance: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            steps: Option<&'a [StepRow]>,
            #[serde(with = "duration_text")]
            timeout: Duration,
        }
        let (per_instance, steps) = match &self.target {
            MetricTarget::PerInstance(n) => (Some(*n), None),
            MetricTarget::Steps(rows) => (None, Some(rows.as_slice())),
            MetricTarget::Utilization => (None, None),
        };
        Entry {
            source: &self.source,
            per_instance,
            steps,
            timeout: self.timeout,
        }
        .serialize(s)
    }
}

/// Where a metric's value comes from; serialised as `kind: { … }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricSource {
    /// `LLEN key` on a Redis server (`redis://[:password@]host:port/db`).
    Redis { url: String, llen: String },
    /// The first number the command prints on stdout (run as the
    /// process's user, through the manager's spawner).
    Command(Vec<String>),
    /// A JSON value by dotted path from `GET url`.
    Http { url: String, json: String },
    /// One sample of a text exposition, by name and labels.
    Prometheus {
        url: String,
        metric: String,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        labels: BTreeMap<String, String>,
    },
    /// Average CPU utilization (% of one core) of the running instances.
    Cpu { utilization: f64 },
}

impl MetricSource {
    /// `redis`, `command`, `http`, `prometheus`, `cpu` (the metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            MetricSource::Redis { .. } => "redis",
            MetricSource::Command(_) => "command",
            MetricSource::Http { .. } => "http",
            MetricSource::Prometheus { .. } => "prometheus",
            MetricSource::Cpu { .. } => "cpu",
        }
    }
}

/// How a metric's value becomes an instance count.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricTarget {
    /// `ceil(value / per_instance)`.
    PerInstance(f64),
    /// The first row (in file order) whose `above` the value exceeds, else
    /// `min`.
    Steps(Vec<StepRow>),
    /// A `cpu` metric: `ceil(current × average / utilization)`.
    #[serde(skip)]
    Utilization,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRow {
    pub above: f64,
    pub instances: u32,
}

/// A time window: between a `start` tick and the next `end` tick, in its
/// zone, the bounds move.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutoscaleWindow {
    pub start: String,
    pub end: String,
    /// Resolved IANA name (default as for schedules: `$TZ`, else UTC).
    pub timezone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutoscaleBehavior {
    /// Relative change within which nothing changes (default 0.1).
    pub tolerance: f64,
    pub scale_up: ScaleBehavior,
    pub scale_down: ScaleBehavior,
}

/// One direction's stabilization and rate limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleBehavior {
    #[serde(with = "duration_text")]
    pub stabilization: Duration,
    pub max_step: MaxStep,
    #[serde(with = "duration_text")]
    pub period: Duration,
}

/// `max_step`: instances (`4`) or percent of the current count (`100%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxStep {
    Instances(u32),
    Percent(u32),
}

impl Serialize for MaxStep {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxStep::Instances(n) => s.serialize_u32(*n),
            MaxStep::Percent(p) => s.serialize_str(&format!("{p}%")),
        }
    }
}

impl Default for AutoscaleBehavior {
    /// SPEC 12's defaults: up at once by up to 4 per 15 s; down after 300 s
    /// of stabilization by up to 100 % per 15 s.
    fn default() -> Self {
        AutoscaleBehavior {
            tolerance: 0.1,
            scale_up: ScaleBehavior {
                stabilization: Duration::ZERO,
                max_step: MaxStep::Instances(4),
                period: Duration::from_secs(15),
            },
            scale_down: ScaleBehavior {
                stabilization: Duration::from_secs(300),
                max_step: MaxStep::Percent(100),
                period: Duration::from_secs(15),
            },
        }
    }
}

/// `scale_down:`: which instances a scale-down stops.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScaleDown {
    pub order: ScaleDownOrder,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleDetection>,
}

impl ScaleDown {
    pub fn is_default(&self) -> bool {
        *self == ScaleDown::default()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScaleDownOrder {
    /// The highest numbers first (per-instance ports need it).
    #[default]
    Highest,
    /// Idle instances first (highest number among equals).
    IdleFirst,
}

impl ScaleDownOrder {
    /// The one name table (see `vocab.rs`).
    pub const NAMES: &'static [(&'static str, Self)] = &[
        ("highest", ScaleDownOrder::Highest),
        ("idle_first", ScaleDownOrder::IdleFirst),
    ];
}
vocabulary!(ScaleDownOrder);

/// How busy/idle is read from an instance's own output lines. Serialised
/// in the file's shape: `{ laravel_json: true }` or `{ busy: …, idle: … }`.
#[derive(Debug, Clone, PartialEq)]
pub enum IdleDetection {
    /// Laravel's `queue:work --json` statuses (`starting` → busy;
    /// `success`, `failed`, `released_after_exception` → idle).
    LaravelJson,
    /// Busy from a line matching `busy` until a line matching `idle`
    /// (regexes, checked at load).
    Regex { busy: String, idle: String },
}

impl Serialize for IdleDetection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        match self {
            IdleDetection::LaravelJson => map.serialize_entry("laravel_json", &true)?,
            IdleDetection::Regex { busy, idle } => {
                map.serialize_entry("busy", busy)?;
                map.serialize_entry("idle", idle)?;
            }
        }
        map.end()
    }
}
