//! Busy or idle, from an instance's own output (`scale_down.idle`), for
//! drain-aware scale-down (`order: idle_first`).
//!
//! Invariants:
//! - An instance is busy from a line that says a job started until a line
//!   that says it ended; before any such line it is idle.
//! - Reading a line never fails: a line that is not JSON, or has no
//!   status, changes nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use phpeek_config::IdleDetection;

/// The compiled detection rule.
#[derive(Debug)]
pub enum BusyDetector {
    /// Laravel's `queue:work --json`: `status: starting` is busy;
    /// `success`, `failed`, `released_after_exception` are idle.
    LaravelJson,
    Regex {
        busy: regex::Regex,
        idle: regex::Regex,
    },
}

impl BusyDetector {
    /// None when a pattern does not compile (the loader checked them).
    pub fn new(rule: &IdleDetection) -> Option<BusyDetector> {
        match rule {
            IdleDetection::LaravelJson => Some(BusyDetector::LaravelJson),
            IdleDetection::Regex { busy, idle } => Some(BusyDetector::Regex {
                busy: regex::Regex::new(busy).ok()?,
                idle: regex::Regex::new(idle).ok()?,
            }),
        }
    }

    /// Some(true) when `line` starts a job, Some(false) when it ends one.
    pub fn classify(&self, line: &str) -> Option<bool> {
        match self {
            BusyDetector::LaravelJson => laravel_status(line),
            BusyDetector::Regex { busy, idle } => {
                if idle.is_match(line) {
                    Some(false)
                } else if busy.is_match(line) {
                    Some(true)
                } else {
                    None
                }
            }
        }
    }
}

fn laravel_status(line: &str) -> Option<bool> {
    // Cheap test first: most lines of most programs are not job events.
    if !line.contains("\"status\"") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    match v.get("status")?.as_str()? {
        "starting" => Some(true),
        "success" | "failed" | "released_after_exception" => Some(false),
        _ => None,
    }
}

/// One instance's busy flag, fed by its output reader.
#[derive(Debug)]
pub struct Activity {
    detector: BusyDetector,
    busy: AtomicBool,
}

impl Activity {
    pub fn new(detector: BusyDetector) -> Activity {
        Activity {
            detector,
            busy: AtomicBool::new(false),
        }
    }

    pub fn observe(&self, line: &str) {
        if let Some(busy) = self.detector.classify(line) {
            self.busy.store(busy, Ordering::Relaxed);
        }
    }

    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laravel_json_statuses() {
        let a = Activity::new(BusyDetector::LaravelJson);
        assert!(!a.is_busy(), "idle until a job starts");
        a.observe(r#"{"level":"info","id":"1","job":"App\\Jobs\\Mail","status":"starting","timestamp":"2026-01-01"}"#);
        assert!(a.is_busy());
        a.observe("some unrelated line");
        a.observe(r#"{"status": "unknown"}"#);
        assert!(a.is_busy(), "other lines change nothing");
        a.observe(r#"{"level":"info","id":"1","status":"success","duration":0.2}"#);
        assert!(!a.is_busy());
        for end in ["failed", "released_after_exception"] {
            a.observe(r#"{"status":"starting"}"#);
            a.observe(&format!(r#"{{"status":"{end}"}}"#));
            assert!(!a.is_busy(), "{end}");
        }
        a.observe(r#"{"status": "starting" "#);
        assert!(!a.is_busy(), "broken JSON changes nothing");
    }

    #[test]
    fn regex_rules() {
        let rule = IdleDetection::Regex {
            busy: "^job start".into(),
            idle: "^job (done|failed)".into(),
        };
        let Some(d) = BusyDetector::new(&rule) else {
            panic!("patterns compile")
        };
        let a = Activity::new(d);
        a.observe("job start 17");
        assert!(a.is_busy());
        a.observe("job failed 17");
        assert!(!a.is_busy());
        let bad = IdleDetection::Regex {
            busy: "(".into(),
            idle: "x".into(),
        };
        assert!(BusyDetector::new(&bad).is_none());
    }
}
