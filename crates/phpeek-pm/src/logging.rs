//! The manager's own messages: to stderr, in the format chosen for child
//! output (`[phpeek-pm] …` or one JSON object per line with
//! `"process":"phpeek-pm"`). Each message is one write under std's stderr
//! lock, which the child-output writer takes too, so lines never mix.

use std::fmt::Write as _;
use std::io::Write as _;

use phpeek_config::{LogFormat, LogLevel};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

struct ManagerLog {
    format: LogFormat,
}

#[derive(Default)]
struct Fields {
    message: String,
    /// Other fields, typed (`"audit":true`, `"status":202` in JSON).
    extra: Vec<(&'static str, serde_json::Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.extra.push((field.name(), value.into()));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.extra.push((field.name(), value.into()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.extra.push((field.name(), value.into()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.extra.push((field.name(), value.into()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.extra.push((field.name(), format!("{value:?}").into()));
        }
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl<S: Subscriber> Layer<S> for ManagerLog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = event.metadata().level();
        let mut line = match self.format {
            LogFormat::Text => {
                let mut s = String::from("[phpeek-pm] ");
                if *level != Level::INFO {
                    s.push_str(&level_name(level).to_ascii_uppercase());
                    s.push(' ');
                }
                s.push_str(&fields.message);
                s
            }
            LogFormat::Json => {
                let mut obj = serde_json::Map::new();
                obj.insert(
                    "ts".into(),
                    phpeek_core::logs::rfc3339_millis(std::time::SystemTime::now()).into(),
                );
                obj.insert("level".into(), level_name(level).into());
                obj.insert("process".into(), "phpeek-pm".into());
                obj.insert("msg".into(), fields.message.into());
                for (k, v) in fields.extra {
                    if k != "process" {
                        obj.insert(k.into(), v);
                    }
                }
                serde_json::Value::Object(obj).to_string()
            }
        };
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// Installs the manager's logger for the configured format and level.
pub fn init(format: LogFormat, level: LogLevel) {
    let level = match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    };
    // Our crates at the chosen level; libraries only when something is
    // wrong; audit lines (SPEC §13) always.
    let filter = Targets::new()
        .with_target("phpeek", level)
        .with_target(phpeek_server::audit::AUDIT_TARGET, LevelFilter::INFO)
        .with_default(LevelFilter::WARN.min(level));
    let _ = tracing_subscriber::registry()
        .with(ManagerLog { format }.with_filter(filter))
        .try_init();
}
