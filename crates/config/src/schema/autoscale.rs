//! The file's `autoscale:` and `scale_down:` keys (SPEC 12).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::json;

use super::tasks::CronText;
use super::{scalar_schema, schema, var_string, Command, Count, DurationText, Flag};
use crate::ScaleDownOrder;

scalar_schema!(
    Number,
    "Number",
    json!({ "anyOf": [ { "type": "number" }, var_string() ] })
);
scalar_schema!(
    MaxStepText,
    "MaxStep",
    json!({
        "description": "instances per period (`4`), or percent of the current count (`100%`, at most 1000%)",
        "anyOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": r"^\s*\d+\s*%\s*$" },
            var_string()
        ]
    })
);
scalar_schema!(
    Labels,
    "Labels",
    json!({
        "type": "object",
        "propertyNames": { "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$" },
        "additionalProperties": { "type": ["string", "number", "boolean", "null"] }
    })
);

/// `autoscale:` (SPEC 12).
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct FileAutoscale {
    /// The fewest instances (required; `scale` defaults to it).
    min: Count,
    /// The most instances (required; within max_scale and
    /// global.max_process_scale).
    max: Count,
    /// How often the metrics are sampled (default 15s, at least 1s).
    interval: Option<DurationText>,
    /// The desired count is the largest any metric asks for; none = the
    /// effective min (time windows only).
    metrics: Option<Vec<FileMetric>>,
    /// Time windows that move min and max.
    windows: Option<Vec<FileWindow>>,
    /// Tolerance, stabilization and rate limits.
    behavior: Option<FileBehavior>,
    /// The count when every metric failed 3 times in a row (within
    /// min..max; default: hold).
    fallback: Option<Count>,
    /// Decide, show and export; do not act (default false).
    dry_run: Option<Flag>,
}

/// One metric: exactly one source (redis, command, http, prometheus or
/// cpu) and, except for cpu, one target (per_instance or steps).
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
#[schemars(extend("minProperties" = 2))]
struct FileMetric {
    /// LLEN of a key on a Redis server.
    redis: Option<FileRedisSource>,
    /// The first number this command prints on stdout.
    command: Option<Command>,
    /// A number in a JSON document, by dotted path.
    http: Option<FileHttpSource>,
    /// One sample of a Prometheus text exposition.
    prometheus: Option<FilePrometheusSource>,
    /// Average CPU of the running instances (takes no target).
    cpu: Option<FileCpuSource>,
    /// desired = ceil(value / per_instance); more than 0.
    per_instance: Option<Number>,
    /// Rows tried in order (highest `above` first): the first whose
    /// `above` the value exceeds gives the count, else min.
    steps: Option<Vec<FileStep>>,
    /// A sample that takes longer fails (default: the smaller of interval
    /// and 5s).
    timeout: Option<DurationText>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileRedisSource {
    /// redis://[user][:password@]host[:port][/db], or rediss:// (TLS).
    url: String,
    /// The list key whose length is the value.
    llen: String,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileHttpSource {
    /// http:// or https:// URL answering JSON.
    url: String,
    /// Dotted path to the number, e.g. queues.default.pending (numbers
    /// index arrays).
    json: String,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FilePrometheusSource {
    /// http:// or https:// URL of a text exposition.
    url: String,
    /// Metric name ([a-zA-Z_:][a-zA-Z0-9_:]*).
    #[schemars(regex(pattern = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"))]
    metric: String,
    /// Labels the sample must have.
    labels: Option<Labels>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileCpuSource {
    /// Target % of one core per instance (more than 0, at most 1000).
    utilization: Number,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileStep {
    /// The row matches a value above this (each row below the previous).
    above: Number,
    /// The count it asks for (within min..max).
    instances: Count,
}

/// Active between a `start` tick and the next `end` tick, in its zone.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
#[schemars(extend("anyOf" = [ { "required": ["min"] }, { "required": ["max"] } ]))]
struct FileWindow {
    start: CronText,
    end: CronText,
    /// IANA zone name (default: $TZ when it names a zone, else UTC).
    timezone: Option<String>,
    /// The lower bound while active (at most autoscale.max).
    min: Option<Count>,
    /// The upper bound while active (at least autoscale.min).
    max: Option<Count>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileBehavior {
    /// Relative change within which nothing changes (default 0.1; 0 to
    /// below 1).
    tolerance: Option<Number>,
    /// Default: stabilization 0s, max_step 4, period 15s.
    scale_up: Option<FileScaleBehavior>,
    /// Default: stabilization 300s, max_step 100%, period 15s.
    scale_down: Option<FileScaleBehavior>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileScaleBehavior {
    /// Recommendations kept this long; up to the lowest (up) or down to
    /// the highest (down) of them.
    stabilization: Option<DurationText>,
    /// At most this change per period.
    max_step: Option<MaxStepText>,
    /// The period of max_step (more than 0).
    period: Option<DurationText>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct FileScaleDown {
    /// highest (default) or idle_first.
    order: Option<ScaleDownOrder>,
    /// How busy and idle are told apart (required by idle_first).
    idle: Option<FileIdle>,
}

/// `{ laravel_json: true }` or `{ busy: REGEX, idle: REGEX }`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileIdle {
    /// Laravel's `queue:work --json` statuses.
    laravel_json: Option<Flag>,
    /// A line matching this makes the instance busy (regex).
    busy: Option<String>,
    /// A line matching this makes it idle again (regex).
    idle: Option<String>,
}
