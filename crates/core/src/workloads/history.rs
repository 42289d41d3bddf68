//! The runs of a scheduled or one-shot process: what `GET …/runs` lists and
//! what the schedule metrics count.
//!
//! Invariants:
//! - The history keeps at most `capacity` finished runs, newest last;
//!   runs still going are not in it (the snapshot lists them from the
//!   instance table).
//! - Counters and the duration histogram count every finished run, also
//!   those that fell out of the history.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use phpeek_wire::{RunResult, RunTrigger};

/// Output lines kept with each run.
pub(crate) const RUN_LINES: usize = 10;

/// Upper bounds (seconds) of the run-duration histogram.
pub const RUN_DURATION_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

#[derive(Debug, Clone)]
pub struct RunRecord {
    pub instance: Arc<str>,
    pub started_at: SystemTime,
    pub ended_at: Option<SystemTime>,
    pub exit_code: Option<i32>,
    pub duration: Option<Duration>,
    pub trigger: RunTrigger,
    pub result: RunResult,
    /// The last output lines, once [`RunRecord::settle_lines`] ran.
    pub lines: Vec<String>,
    /// The run's own ring while it is the newest record: its pipes may
    /// still be draining when the exit is handled, so its lines are read
    /// late (when the next record arrives, or when asked).
    pub ring: Option<Arc<crate::logs::LogRing>>,
}

impl RunRecord {
    /// Its last output lines, oldest first.
    pub fn output(&self) -> Vec<String> {
        match &self.ring {
            Some(ring) => ring.tail(RUN_LINES).into_iter().map(|l| l.msg).collect(),
            None => self.lines.clone(),
        }
    }

    /// Copies the lines out of the ring and lets the ring go.
    fn settle_lines(&mut self) {
        if self.ring.is_some() {
            self.lines = self.output();
            self.ring = None;
        }
    }
}

/// Finished runs by result, and their durations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    pub success: u64,
    pub failure: u64,
    pub timeout: u64,
    /// Cumulative counts per [`RUN_DURATION_BUCKETS`] bound.
    pub buckets: [u64; RUN_DURATION_BUCKETS.len()],
    pub duration_sum: f64,
    pub last_success: Option<SystemTime>,
}

impl RunStats {
    fn record(&mut self, r: &RunRecord) {
        match r.result {
            RunResult::Success => {
                self.success += 1;
                self.last_success = r.ended_at;
            }
            RunResult::Failure => self.failure += 1,
            RunResult::Timeout => self.timeout += 1,
            RunResult::Running => return,
        }
        let secs = r.duration.unwrap_or_default().as_secs_f64();
        self.duration_sum += secs;
        for (count, bound) in self.buckets.iter_mut().zip(RUN_DURATION_BUCKETS) {
            if secs <= bound {
                *count += 1;
            }
        }
    }

    pub fn finished(&self) -> u64 {
        self.success + self.failure + self.timeout
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunHistory {
    pub runs: VecDeque<RunRecord>,
    pub capacity: usize,
    pub stats: RunStats,
}

impl RunHistory {
    pub(crate) fn new(capacity: u32) -> Self {
        RunHistory {
            runs: VecDeque::new(),
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX).max(1),
            stats: RunStats::default(),
        }
    }

    pub(crate) fn push(&mut self, r: RunRecord) {
        self.stats.record(&r);
        if let Some(prev) = self.runs.back_mut() {
            prev.settle_lines();
        }
        self.runs.push_back(r);
        while self.runs.len() > self.capacity {
            self.runs.pop_front();
        }
    }

    pub(crate) fn set_capacity(&mut self, capacity: u32) {
        self.capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        while self.runs.len() > self.capacity {
            self.runs.pop_front();
        }
    }

    pub fn last(&self) -> Option<&RunRecord> {
        self.runs.back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(result: RunResult, secs: u64) -> RunRecord {
        RunRecord {
            instance: Arc::from("job-1"),
            started_at: SystemTime::UNIX_EPOCH,
            ended_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
            exit_code: Some(0),
            duration: Some(Duration::from_secs(secs)),
            trigger: RunTrigger::Schedule,
            result,
            lines: Vec::new(),
            ring: None,
        }
    }

    #[test]
    fn keeps_the_newest_runs_and_counts_all() {
        let mut h = RunHistory::new(2);
        h.push(run(RunResult::Success, 1));
        h.push(run(RunResult::Failure, 2));
        h.push(run(RunResult::Timeout, 400));
        assert_eq!(h.runs.len(), 2);
        assert_eq!(h.runs[0].result, RunResult::Failure);
        assert_eq!(
            (h.stats.success, h.stats.failure, h.stats.timeout),
            (1, 1, 1)
        );
        // 1 s and 2 s are under the 5 s bound; 400 s is not.
        assert_eq!(h.stats.buckets[5], 2);
        assert_eq!(h.stats.buckets[RUN_DURATION_BUCKETS.len() - 1], 3);
    }
}
