//! The file's one-shot, schedule and hook keys (SPEC 11).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::json;

use super::{scalar_schema, schema, Command, Count, DurationText, Flag};
use crate::Concurrency;

scalar_schema!(
    pub(super) CronText,
    "Cron",
    json!({
        "type": "string",
        "description": "5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; or @yearly @annually @monthly @weekly @daily @hourly",
        "examples": ["* * * * *", "30 6 * * 1-5", "@daily"]
    })
);

/// `schedule:`: a cron string, or the long form.
pub(super) struct FileScheduleAny;

impl JsonSchema for FileScheduleAny {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Schedule")
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let short = generator.subschema_for::<CronText>().to_value();
        let long = generator.subschema_for::<FileSchedule>().to_value();
        schema(json!({ "anyOf": [short, long] }))
    }
}

/// A list of hooks (a single hook is a list of one).
struct HookList;

impl JsonSchema for HookList {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("HookList")
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let hook = generator.subschema_for::<FileHook>().to_value();
        schema(json!({ "anyOf": [ { "type": "array", "items": hook.clone() }, hook ] }))
    }
}

/// The long form of `schedule:`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileSchedule {
    cron: CronText,
    /// IANA zone name (default: $TZ when it names a zone, else UTC).
    timezone: Option<String>,
    /// forbid (default), allow or replace.
    concurrency: Option<Concurrency>,
    /// Runs at once; only with concurrency: allow (default 1).
    max_concurrent: Option<Count>,
    /// A run still going after this is stopped.
    timeout: Option<DurationText>,
    /// Only with forbid: how long a tick waits for the previous run (default 0).
    starting_deadline: Option<DurationText>,
    /// Also run once when the manager starts (default false).
    run_on_start: Option<Flag>,
    /// Runs kept in the history, 1 to 1000 (default 10).
    history: Option<Count>,
    /// Defined but not ticking (default false).
    suspended: Option<Flag>,
}

/// One hook command.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileHook {
    command: Command,
    /// Default 30s; must be more than 0.
    timeout: Option<DurationText>,
    /// Further attempts after a failure, 0 to 100 (default 0).
    retries: Option<Count>,
    /// A failure is logged and the next step goes on (default false).
    continue_on_error: Option<Flag>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct FileGlobalHooks {
    /// Before any process starts; a failure stops the manager (exit 1).
    pre_start: Option<HookList>,
    /// Once every process was started.
    post_start: Option<HookList>,
    /// Before the processes are stopped.
    pre_stop: Option<HookList>,
    /// After every process stopped.
    post_stop: Option<HookList>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct FileProcessHooks {
    /// Before each instance start, with its environment.
    pre_start: Option<HookList>,
    /// Before its stop signal (counts inside shutdown.timeout).
    pre_stop: Option<HookList>,
    /// After it stopped.
    post_stop: Option<HookList>,
}
