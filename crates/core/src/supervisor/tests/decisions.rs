//! The pure decisions, tested directly.

use std::time::Instant;

use super::*;
use crate::backoff::Backoff;
use crate::snapshot::RestartReason;
use crate::supervisor::deps::{evaluate_gate, DepStatus, GateDecision};
use crate::supervisor::reload::classify;
use crate::supervisor::restarts::{decide_restart, RestartDecision, RunEnd, RunOutcome};
use crate::supervisor::rollout::{rollout_step, Replaced, RolloutStep};
use crate::supervisor::shutdown::{exit_code, GateKind, ManagerEnd, ProcessEnd};
use phpeek_config::RestartPolicy;
use proptest::prelude::*;

fn outcome(policy: RestartPolicy, end: RunEnd) -> RunOutcome {
    RunOutcome {
        policy,
        end,
        ran: ms(10),
        attempts: 0,
        max_attempts: 0,
        backoff: Backoff {
            initial: secs(1),
            max: secs(60),
        },
    }
}

#[test]
fn the_policy_table_decides_restarts() {
    use RestartPolicy::*;
    let restarts = |p, e| {
        matches!(
            decide_restart(outcome(p, e)),
            RestartDecision::Restart { .. }
        )
    };
    assert!(restarts(Always, RunEnd::Exited(true)));
    assert!(restarts(Always, RunEnd::Exited(false)));
    assert!(!restarts(OnFailure, RunEnd::Exited(true)));
    assert!(restarts(OnFailure, RunEnd::Exited(false)));
    assert!(!restarts(Never, RunEnd::Exited(false)));
    assert!(
        restarts(Never, RunEnd::HealthFailed),
        "checks restart whatever the policy"
    );
    assert_eq!(
        decide_restart(outcome(Never, RunEnd::SpawnFailed)),
        RestartDecision::Settle { failed: true }
    );
}

#[test]
fn reasons_and_the_spawn_failure_floor() {
    let d = decide_restart(outcome(RestartPolicy::Always, RunEnd::SpawnFailed));
    assert!(
        matches!(d, RestartDecision::Restart { reason: RestartReason::Crash, delay, .. } if delay >= secs(1))
    );
    let mut o = outcome(RestartPolicy::Always, RunEnd::Exited(true));
    o.backoff.initial = Duration::ZERO;
    assert!(
        matches!(decide_restart(o), RestartDecision::Restart { reason: RestartReason::Exit, delay, .. } if delay.is_zero())
    );
}

proptest! {
    #[test]
    fn attempts_reset_after_a_long_run_and_are_capped(attempts in 0u32..20, max in 0u32..10, ran_s in 0u64..30) {
        let mut o = outcome(RestartPolicy::Always, RunEnd::Exited(false));
        o.attempts = attempts;
        o.max_attempts = max;
        o.ran = secs(ran_s);
        let effective = if ran_s >= 10 { 0 } else { attempts };
        match decide_restart(o) {
            RestartDecision::GiveUp { .. } => prop_assert!(max > 0 && effective >= max),
            RestartDecision::Restart { attempts: a, delay, .. } => {
                prop_assert_eq!(a, effective + 1);
                prop_assert!(max == 0 || effective < max);
                prop_assert!(delay <= secs(60));
            }
            RestartDecision::Settle { .. } => prop_assert!(false, "always never settles"),
        }
    }
}

#[test]
fn a_gate_opens_waits_and_fails_on_time() {
    let t0 = Instant::now();
    let timeout = secs(10);
    let ready = [("db", DepStatus::Ready), ("cache", DepStatus::Disabled)];
    assert_eq!(evaluate_gate(&ready, t0, t0, timeout), GateDecision::Open);
    let waiting = [("db", DepStatus::Ready), ("cache", DepStatus::NotReady)];
    assert_eq!(
        evaluate_gate(&waiting, t0, t0 + secs(9), timeout),
        GateDecision::Wait
    );
    let missing = [("db", DepStatus::Missing), ("cache", DepStatus::NotReady)];
    assert_eq!(
        evaluate_gate(&missing, t0, t0 + secs(10), timeout),
        GateDecision::Fail("dependency db, cache not ready after 10s".into())
    );
}

#[test]
fn reload_classification_separates_respawn_rescale_and_in_place() {
    let base = config("processes:\n  w:\n    command: [\"w\"]\n").processes["w"].clone();
    let with = |yaml_tail: &str| {
        config(&format!(
            "processes:\n  w:\n    command: [\"w\"]\n{yaml_tail}"
        ))
        .processes["w"]
            .clone()
    };
    assert!(classify(&base, &base, false).is_none());
    let c = classify(&base, &with("    scale: 3\n"), false);
    assert!(c.rescale && !c.respawn && !c.beyond_scale);
    for spawn_key in [
        "    env: {A: b}\n",
        "    working_dir: /tmp\n",
        "    user: nobody\n",
        "    group: nogroup\n",
        "    port_base: 9000\n",
        "    stdout: false\n",
        "    stderr: false\n",
    ] {
        let c = classify(&base, &with(spawn_key), false);
        assert!(c.respawn, "{spawn_key} changes how instances are spawned");
    }
    for in_place in [
        "    restart: never\n",
        "    max_scale: 9\n",
        "    shutdown: {timeout: 3s}\n",
    ] {
        let c = classify(&base, &with(in_place), false);
        assert!(
            !c.respawn && c.beyond_scale,
            "{in_place} is applied in place"
        );
    }
    assert!(
        classify(&base, &base, true).rescale,
        "a removed process comes back"
    );
}

#[test]
fn rollout_steps() {
    let t0 = Instant::now();
    let back = Replaced::Back { ready_since: t0 };
    let step =
        |s: &Replaced, min_ready: Duration, now: Instant| rollout_step("w-1", s, min_ready, now);
    assert_eq!(step(&back, Duration::ZERO, t0), RolloutStep::Proceed);
    assert_eq!(step(&Replaced::Gone, secs(10), t0), RolloutStep::Proceed);
    assert_eq!(
        step(&Replaced::Pending, Duration::ZERO, t0),
        RolloutStep::Wait
    );
    assert_eq!(
        step(&Replaced::Down(InstanceState::Backoff), secs(10), t0),
        RolloutStep::Halt("w-1 did not come back: backoff".into())
    );
    // min_ready: back for less than it waits until the moment it is over.
    assert_eq!(
        step(&back, secs(10), t0 + secs(3)),
        RolloutStep::WaitUntil(t0 + secs(10))
    );
    assert_eq!(step(&back, secs(10), t0 + secs(10)), RolloutStep::Proceed);
    assert_eq!(step(&back, Duration::MAX, t0), RolloutStep::Wait);
}

proptest! {
    /// A roll never moves on before the replaced instance has been ready
    /// for min_ready, and always does once it has.
    #[test]
    fn min_ready_is_a_lower_bound(ready_ms in 0u64..100_000, min_ms in 0u64..100_000, at_ms in 0u64..200_000) {
        let t0 = Instant::now();
        let since = t0 + ms(ready_ms);
        let now = t0 + ms(at_ms.max(ready_ms));
        let step = rollout_step("w-1", &Replaced::Back { ready_since: since }, ms(min_ms), now);
        if now.duration_since(since) >= ms(min_ms) {
            prop_assert_eq!(step, RolloutStep::Proceed);
        } else {
            prop_assert_eq!(step, RolloutStep::WaitUntil(since + ms(min_ms)));
        }
    }
}

fn ended(states: &[(InstanceState, Option<i32>)]) -> ProcessEnd {
    ProcessEnd {
        enabled: true,
        gate: GateKind::Open,
        desired: u32::try_from(states.len()).unwrap(),
        stop_begun: false,
        scheduled: false,
        instances: states.to_vec(),
    }
}

#[test]
fn exit_codes() {
    let m = ManagerEnd {
        shutting_down: false,
        forced_kills: 0,
        ever_started: true,
    };
    let ok = ended(&[(InstanceState::Exited, Some(0))]);
    let bad = ended(&[(InstanceState::Exited, Some(2))]);
    let live = ended(&[(InstanceState::Running, None)]);
    assert_eq!(exit_code(m, std::slice::from_ref(&ok)), Some(0));
    assert_eq!(exit_code(m, &[ok.clone(), bad]), Some(1));
    assert_eq!(exit_code(m, &[ok.clone(), live.clone()]), None);
    assert_eq!(
        exit_code(m, &[]),
        None,
        "nothing ended: scaled to zero is not the end"
    );
    let mut waiting = ok.clone();
    waiting.gate = GateKind::Waiting;
    assert_eq!(exit_code(m, &[waiting]), None);
    let mut down = m;
    down.shutting_down = true;
    let mut begun = ok.clone();
    begun.stop_begun = true;
    assert_eq!(exit_code(down, &[begun.clone()]), Some(0));
    assert_eq!(
        exit_code(down, &[ok]),
        None,
        "not every process was stopped yet"
    );
    down.forced_kills = 2;
    assert_eq!(exit_code(down, &[begun]), Some(1));
}
