//! Rolling restarts: one at a time, gated on health, halted on failure.

use super::*;
use phpeek_wire::RolloutPhase;

const THREE: &str = "
processes:
  w:
    command: [\"work\"]
    scale: 3
";

const THREE_CHECKED: &str = "
processes:
  w:
    command: [\"work\"]
    scale: 3
    health_check:
      type: exec
      command: [\"check\"]
";

/// Instances of `w` that are not running right now.
fn down(rig: &Rig) -> usize {
    3 - rig.running("w").len()
}

#[tokio::test(start_paused = true)]
async fn a_rolling_restart_replaces_one_instance_at_a_time() {
    let mut rig = Rig::started(THREE);
    let old: Vec<i32> = rig.names("w").iter().map(|n| rig.pid(n).unwrap()).collect();
    rig.act("w", Action::Restart).unwrap();
    assert_eq!(rig.fx().signals_to(old[0]), [Signal::SIGTERM]);
    assert!(rig.fx().signals_to(old[1]).is_empty(), "only one at a time");
    let mut max_down = 0;
    for _ in 0..3 {
        max_down = max_down.max(down(&rig));
        rig.obey();
        max_down = max_down.max(down(&rig));
        rig.spawn_all();
    }
    rig.converge();
    assert!(max_down <= 1, "never more than one instance away");
    let new: Vec<i32> = rig.names("w").iter().map(|n| rig.pid(n).unwrap()).collect();
    assert!(new.iter().all(|p| !old.contains(p)));
    assert_eq!(rig.process("w").rollout.unwrap().state, RolloutPhase::Done);
}

#[tokio::test(start_paused = true)]
async fn the_next_step_waits_until_the_new_instance_is_healthy() {
    let mut rig = Rig::started(THREE_CHECKED);
    for n in rig.names("w") {
        rig.probe(&n, true);
    }
    let pid2 = rig.pid("w-2").unwrap();
    rig.act("w", Action::Restart).unwrap();
    rig.obey();
    rig.spawn_all();
    assert_eq!(rig.state("w-1"), InstanceState::Running);
    assert!(
        rig.fx().signals_to(pid2).is_empty(),
        "w-1 is not healthy yet"
    );
    rig.probe("w-1", true);
    assert_eq!(rig.fx().signals_to(pid2), [Signal::SIGTERM]);
}

#[tokio::test(start_paused = true)]
async fn a_new_instance_that_does_not_come_back_halts_the_roll() {
    let mut rig = Rig::started(&THREE.replace("scale: 3", "scale: 3\n    restart: never"));
    let pid2 = rig.pid("w-2").unwrap();
    rig.act("w", Action::Restart).unwrap();
    rig.obey();
    rig.fail_spawns("No such file or directory");
    let roll = rig.process("w").rollout.unwrap();
    assert_eq!(roll.state, RolloutPhase::Halted);
    assert!(roll
        .reason
        .unwrap()
        .contains("w-1 did not come back: failed"));
    assert!(
        rig.fx().signals_to(pid2).is_empty(),
        "the rest keep running"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_health_check_of_the_new_instance_halts_the_roll() {
    let mut rig = Rig::started(THREE_CHECKED);
    for n in rig.names("w") {
        rig.probe(&n, true);
    }
    rig.act("w", Action::Restart).unwrap();
    rig.obey();
    rig.spawn_all();
    for _ in 0..3 {
        rig.probe("w-1", false);
    }
    let roll = rig.process("w").rollout.unwrap();
    assert_eq!(roll.state, RolloutPhase::Halted);
    assert!(roll.reason.unwrap().contains("health"));
}

#[tokio::test(start_paused = true)]
async fn a_single_instance_restarts_without_a_roll() {
    let mut rig = Rig::started(&THREE.replace("scale: 3", "scale: 1"));
    rig.act("w", Action::Restart).unwrap();
    assert!(rig.process("w").rollout.is_none());
    rig.converge();
    assert_eq!(rig.instance("w-1").restarts.manual, 1);
}

#[tokio::test(start_paused = true)]
async fn stopping_the_process_cancels_its_roll() {
    let mut rig = Rig::started(THREE);
    rig.act("w", Action::Restart).unwrap();
    rig.act("w", Action::Stop).unwrap();
    assert!(rig.process("w").rollout.is_none());
    rig.converge();
    assert!(rig
        .names("w")
        .iter()
        .all(|n| rig.state(n) == InstanceState::Stopped));
}

/// Three instances with `min_ready: 10s`, restarted: w-1 replaced and
/// running again. Also w-2's pid (the next one to go).
fn rolled_first_with_min_ready_10s() -> (Rig, i32) {
    let mut rig =
        Rig::started(&THREE.replace("scale: 3", "scale: 3\n    rollout: { min_ready: 10s }"));
    let pid2 = rig.pid("w-2").unwrap();
    rig.act("w", Action::Restart).unwrap();
    rig.obey();
    rig.spawn_all();
    (rig, pid2)
}

#[tokio::test(start_paused = true)]
async fn min_ready_holds_each_step_until_the_new_instance_was_ready_that_long() {
    let (mut rig, pid2) = rolled_first_with_min_ready_10s();
    assert_eq!(rig.state("w-1"), InstanceState::Running);
    let roll = rig.process("w").rollout.unwrap();
    assert_eq!(roll.current.as_deref(), Some("w-1"));
    assert_eq!(roll.remaining, 2);
    assert_eq!(roll.min_ready.as_deref(), Some("10s"));
    rig.advance(secs(9)).await;
    assert!(rig.fx().signals_to(pid2).is_empty(), "w-1 ran for 9s only");
    rig.advance(secs(1)).await;
    assert_eq!(rig.fx().signals_to(pid2), [Signal::SIGTERM]);
    assert_eq!(
        rig.process("w").rollout.unwrap().current.as_deref(),
        Some("w-2")
    );
}

#[tokio::test(start_paused = true)]
async fn min_ready_counts_from_the_first_healthy_probe() {
    let yaml = THREE_CHECKED.replace("scale: 3", "scale: 3\n    rollout: { min_ready: 5s }");
    let mut rig = Rig::started(&yaml);
    for n in rig.names("w") {
        rig.probe(&n, true);
    }
    let pid2 = rig.pid("w-2").unwrap();
    rig.act("w", Action::Restart).unwrap();
    rig.obey();
    rig.spawn_all();
    rig.advance(secs(20)).await;
    assert!(
        rig.fx().signals_to(pid2).is_empty(),
        "running but not healthy yet"
    );
    rig.probe("w-1", true);
    rig.advance(secs(4)).await;
    assert!(rig.fx().signals_to(pid2).is_empty(), "healthy for 4s of 5s");
    // More probe reports while waiting arm no second wake.
    rig.probe("w-1", true);
    rig.advance(secs(1)).await;
    assert_eq!(rig.fx().signals_to(pid2), [Signal::SIGTERM]);
}

#[tokio::test(start_paused = true)]
async fn a_crash_while_waiting_for_min_ready_halts_the_roll() {
    let (mut rig, pid2) = rolled_first_with_min_ready_10s();
    rig.advance(secs(6)).await;
    rig.exit("w-1", 1);
    let roll = rig.process("w").rollout.unwrap();
    assert_eq!(roll.state, RolloutPhase::Halted);
    assert!(roll.reason.unwrap().contains("w-1 did not come back"));
    // The wake armed before the crash finds the roll halted.
    rig.advance(secs(10)).await;
    rig.spawn_all();
    assert!(
        rig.fx().signals_to(pid2).is_empty(),
        "the rest keep running"
    );
}
