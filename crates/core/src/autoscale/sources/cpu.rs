//! The `cpu` source: the average CPU utilization of the running instances,
//! in % of one core, between this reading and the previous one.
//!
//! An instance's CPU time is that of the live processes of its session
//! ([`crate::procfs`]); time of children that already exited is not seen.
//! Only instances present in both readings count: one started since the
//! previous reading is left out until the next; time that vanished with an
//! exited process never makes a negative share.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::SampleFailure;
use crate::procfs::{usage_by_session, Usage};

#[derive(Debug, Clone)]
struct CpuReading {
    at: Instant,
    /// CPU seconds by session id.
    seconds: HashMap<i32, f64>,
}

/// The previous reading of one `cpu` metric; keep one per metric for as
/// long as its autoscaler lives.
#[derive(Debug, Default)]
pub struct CpuTracker {
    last: Mutex<Option<CpuReading>>,
}

impl CpuTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the previous reading: the next one starts over (e.g. after
    /// the autoscaler was paused).
    pub fn reset(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<CpuReading>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the reading of `sessions` in `usage`, taken at `at`, and
    /// returns the average utilization since the previous reading.
    pub fn observe(
        &self,
        usage: &HashMap<i32, Usage>,
        sessions: &[i32],
        at: Instant,
    ) -> Result<f64, SampleFailure> {
        let seconds: HashMap<i32, f64> = sessions
            .iter()
            .filter_map(|sid| usage.get(sid).map(|u| (*sid, u.cpu_seconds)))
            .collect();
        let mut last = self.lock();
        let elapsed = match last.as_ref() {
            Some(prev) => at
                .checked_duration_since(prev.at)
                .map(|d| d.as_secs_f64())
                .filter(|s| *s > 0.0),
            None => None,
        };
        let Some(elapsed) = elapsed else {
            if last.is_none() {
                *last = Some(CpuReading { at, seconds });
            }
            return Err(SampleFailure::WarmingUp);
        };
        let prev = last.replace(CpuReading {
            at,
            seconds: seconds.clone(),
        });
        if seconds.is_empty() {
            return Err(SampleFailure::NoInstances);
        }
        let mut busy = 0.0;
        let mut counted = 0usize;
        for (sid, now) in &seconds {
            if let Some(before) = prev.as_ref().and_then(|p| p.seconds.get(sid)) {
                busy += (now - before).max(0.0);
                counted += 1;
            }
        }
        if counted == 0 {
            return Err(SampleFailure::WarmingUp);
        }
        let utilization = busy / elapsed / counted as f64 * 100.0;
        if utilization.is_finite() {
            Ok(utilization)
        } else {
            Err(SampleFailure::WarmingUp)
        }
    }
}

/// Reads /proc (off the runtime's threads) and observes it.
pub(super) async fn sample_cpu(
    tracker: &CpuTracker,
    sessions: &[i32],
) -> Result<f64, SampleFailure> {
    if sessions.is_empty() {
        tracker.reset();
        return Err(SampleFailure::NoInstances);
    }
    let read = tokio::task::spawn_blocking(|| {
        let usage = usage_by_session();
        (usage, Instant::now())
    });
    let (usage, at) = read
        .await
        .map_err(|e| SampleFailure::CpuUnreadable(e.to_string()))?;
    tracker.observe(&usage, sessions, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn usage(pairs: &[(i32, f64)]) -> HashMap<i32, Usage> {
        pairs
            .iter()
            .map(|(sid, cpu)| {
                (
                    *sid,
                    Usage {
                        cpu_seconds: *cpu,
                        rss_bytes: 0,
                    },
                )
            })
            .collect()
    }

    fn close(got: Result<f64, SampleFailure>, want: f64) {
        match got {
            Ok(v) => assert!((v - want).abs() < 1e-9, "{v} != {want}"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn averages_over_instances_seen_twice() {
        let t = CpuTracker::new();
        let t0 = Instant::now();
        let s = [10, 20];
        assert_eq!(
            t.observe(&usage(&[(10, 1.0), (20, 5.0)]), &s, t0),
            Err(SampleFailure::WarmingUp)
        );
        // 10 s later: 10 used 5 s (50 %), 20 used 10 s (100 %).
        let t1 = t0 + Duration::from_secs(10);
        close(t.observe(&usage(&[(10, 6.0), (20, 15.0)]), &s, t1), 75.0);
        // A new instance is left out once; one that lost time counts as 0.
        let t2 = t1 + Duration::from_secs(10);
        let s = [10, 20, 30];
        close(
            t.observe(&usage(&[(10, 8.0), (20, 14.0), (30, 9.0)]), &s, t2),
            10.0,
        );
        let t3 = t2 + Duration::from_secs(10);
        close(
            t.observe(&usage(&[(10, 8.0), (20, 14.0), (30, 19.0)]), &s, t3),
            100.0 / 3.0,
        );
    }

    #[test]
    fn instances_that_vanished_or_all_new_are_not_a_number() {
        let t = CpuTracker::new();
        let t0 = Instant::now();
        let _ = t.observe(&usage(&[(1, 1.0)]), &[1], t0);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            t.observe(&usage(&[(1, 2.0)]), &[], t1),
            Err(SampleFailure::NoInstances)
        );
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(
            t.observe(&usage(&[(2, 2.0)]), &[2], t2),
            Err(SampleFailure::WarmingUp)
        );
        let t3 = t2 + Duration::from_secs(2);
        close(t.observe(&usage(&[(2, 3.0)]), &[2], t3), 50.0);
    }

    #[test]
    fn a_reading_at_the_same_instant_or_earlier_waits() {
        let t = CpuTracker::new();
        let t0 = Instant::now() + Duration::from_secs(5);
        let _ = t.observe(&usage(&[(1, 1.0)]), &[1], t0);
        assert_eq!(
            t.observe(&usage(&[(1, 2.0)]), &[1], t0),
            Err(SampleFailure::WarmingUp)
        );
        assert_eq!(
            t.observe(&usage(&[(1, 2.0)]), &[1], t0 - Duration::from_secs(1)),
            Err(SampleFailure::WarmingUp)
        );
        // The first reading was kept.
        close(
            t.observe(&usage(&[(1, 3.0)]), &[1], t0 + Duration::from_secs(4)),
            50.0,
        );
        t.reset();
        assert_eq!(
            t.observe(&usage(&[(1, 9.0)]), &[1], t0 + Duration::from_secs(8)),
            Err(SampleFailure::WarmingUp)
        );
    }

    #[tokio::test]
    async fn reads_this_process_from_proc() {
        let me = nix::unistd::getsid(None).map(|s| s.as_raw()).unwrap_or(-1);
        let t = CpuTracker::new();
        assert_eq!(sample_cpu(&t, &[me]).await, Err(SampleFailure::WarmingUp));
        // Burn a little CPU so the second reading is later and not NaN.
        let deadline = Instant::now() + Duration::from_millis(30);
        let mut x = 0u64;
        while Instant::now() < deadline {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        let v = sample_cpu(&t, &[me]).await;
        assert!(v.as_ref().is_ok_and(|v| *v >= 0.0), "{v:?}");
        assert_eq!(sample_cpu(&t, &[]).await, Err(SampleFailure::NoInstances));
    }
}
