//! What an ended one-shot run becomes: `completed`, a retry after backoff,
//! or `failed` for good.
//!
//! Invariants:
//! - Exit code 0 always completes, whatever the policy.
//! - A run cut by its `timeout` fails for good (as a Kubernetes Job past
//!   its deadline): retrying a task that hangs would hang again.
//! - Unlike a longrun, a long run does not forget earlier failures: a
//!   one-shot's attempts only grow until it completes or gives up.

use std::time::Duration;

use phpeek_config::RestartPolicy;

use crate::backoff::Backoff;

/// How one run of a one-shot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OneshotEnd {
    /// Exited with this code (`None`: killed by a signal).
    Exited(Option<i32>),
    /// Could not be started (or its `pre_start` hook failed).
    SpawnFailed,
    /// Stopped for running past `timeout`.
    TimedOut,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct OneshotOutcome {
    pub end: OneshotEnd,
    pub policy: RestartPolicy,
    /// Retries made so far.
    pub attempts: u32,
    /// 0 = unlimited.
    pub max_attempts: u32,
    pub backoff: Backoff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OneshotDecision {
    Completed,
    /// Run again after `delay`, as retry number `attempts`.
    Retry {
        attempts: u32,
        delay: Duration,
    },
    /// Over for good; `gave_up` when retries ran out.
    Failed {
        gave_up: bool,
    },
}

pub(crate) fn decide_oneshot_end(o: OneshotOutcome) -> OneshotDecision {
    if o.end == OneshotEnd::Exited(Some(0)) {
        return OneshotDecision::Completed;
    }
    if o.end == OneshotEnd::TimedOut || o.policy != RestartPolicy::OnFailure {
        return OneshotDecision::Failed { gave_up: false };
    }
    if o.max_attempts > 0 && o.attempts >= o.max_attempts {
        return OneshotDecision::Failed { gave_up: true };
    }
    let attempts = o.attempts + 1;
    let mut delay = o.backoff.delay(attempts);
    if o.end == OneshotEnd::SpawnFailed {
        delay = delay.max(Duration::from_secs(1));
    }
    OneshotDecision::Retry { attempts, delay }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(end: OneshotEnd, policy: RestartPolicy, attempts: u32, max: u32) -> OneshotOutcome {
        OneshotOutcome {
            end,
            policy,
            attempts,
            max_attempts: max,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        }
    }

    #[test]
    fn exit_zero_completes_under_every_policy() {
        for policy in [RestartPolicy::Never, RestartPolicy::OnFailure] {
            let d = decide_oneshot_end(outcome(OneshotEnd::Exited(Some(0)), policy, 5, 1));
            assert_eq!(d, OneshotDecision::Completed);
        }
    }

    #[test]
    fn never_fails_at_the_first_error() {
        let d = decide_oneshot_end(outcome(
            OneshotEnd::Exited(Some(3)),
            RestartPolicy::Never,
            0,
            3,
        ));
        assert_eq!(d, OneshotDecision::Failed { gave_up: false });
    }

    #[test]
    fn on_failure_retries_until_max_then_gives_up() {
        let mut attempts = 0;
        loop {
            match decide_oneshot_end(outcome(
                OneshotEnd::Exited(Some(1)),
                RestartPolicy::OnFailure,
                attempts,
                3,
            )) {
                OneshotDecision::Retry { attempts: a, delay } => {
                    assert_eq!(a, attempts + 1);
                    assert!(delay >= Duration::from_secs(1));
                    attempts = a;
                }
                OneshotDecision::Failed { gave_up } => {
                    assert!(gave_up);
                    break;
                }
                OneshotDecision::Completed => panic!("a failing run never completes"),
            }
        }
        assert_eq!(attempts, 3);
    }

    #[test]
    fn a_timeout_is_not_retried() {
        let d = decide_oneshot_end(outcome(
            OneshotEnd::TimedOut,
            RestartPolicy::OnFailure,
            0,
            0,
        ));
        assert_eq!(d, OneshotDecision::Failed { gave_up: false });
    }

    #[test]
    fn a_spawn_failure_waits_at_least_a_second() {
        let d = decide_oneshot_end(outcome(
            OneshotEnd::SpawnFailed,
            RestartPolicy::OnFailure,
            0,
            0,
        ));
        assert!(
            matches!(d, OneshotDecision::Retry { delay, .. } if delay >= Duration::from_secs(1))
        );
    }
}
