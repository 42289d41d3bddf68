//! Restart delays (SPEC §3): exponential from the initial delay, doubling up
//! to the maximum, forgotten once an instance stayed up long enough.

use std::time::Duration;

/// The restart-delay rule of one manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Delay before the `attempt`-th restart in a row (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        if self.initial.is_zero() || attempt == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max.max(self.initial))
    }

    /// How long a run must last for its failures to be forgotten:
    /// ten times the initial delay, at least ten seconds.
    pub fn reset_after(&self) -> Duration {
        self.initial
            .checked_mul(10)
            .unwrap_or(Duration::MAX)
            .max(Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        let got: Vec<u64> = (1..=8).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.reset_after(), Duration::from_secs(10));
    }

    #[test]
    fn zero_initial_restarts_at_once() {
        let b = Backoff {
            initial: Duration::ZERO,
            max: Duration::from_secs(60),
        };
        assert_eq!(b.delay(1), Duration::ZERO);
        assert_eq!(b.delay(100), Duration::ZERO);
    }

    #[test]
    fn long_initial_resets_later() {
        let b = Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(60),
        };
        assert_eq!(b.reset_after(), Duration::from_secs(50));
    }

    proptest! {
        #[test]
        fn delay_is_bounded_and_monotonic(init_ms in 0u64..100_000, max_ms in 0u64..10_000_000, a in 1u32..10_000) {
            let b = Backoff { initial: Duration::from_millis(init_ms), max: Duration::from_millis(max_ms) };
            let d = b.delay(a);
            prop_assert!(d <= b.max.max(b.initial));
            prop_assert!(b.delay(a + 1) >= d);
            if init_ms > 0 { prop_assert!(d >= b.initial.min(b.max.max(b.initial))); }
        }
    }
}
