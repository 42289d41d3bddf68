//! Restarts: policy, backoff, reset, attempts, stops by request, probes.

use super::*;
use crate::snapshot::RestartReason;

fn worker(policy: &str, extra_global: &str) -> String {
    format!(
        "
global:
  restart_backoff_initial: 1s
  restart_backoff_max: 8s
{extra_global}
processes:
  w:
    command: [\"work\"]
    restart: {policy}
"
    )
}

#[tokio::test(start_paused = true)]
async fn a_crash_restarts_after_the_initial_backoff() {
    let mut rig = Rig::started(&worker("always", ""));
    rig.exit("w-1", 3);
    assert_eq!(rig.state("w-1"), InstanceState::Backoff);
    assert!(rig
        .instance("w-1")
        .reason
        .unwrap()
        .contains("restarting in 1s"));
    rig.advance(ms(999)).await;
    assert!(rig.fx().spawns.is_empty(), "not before the delay");
    rig.advance(ms(1)).await;
    assert_eq!(rig.fx().spawns.len(), 1);
    rig.spawn_all();
    let i = rig.instance("w-1");
    assert_eq!(i.state, InstanceState::Running);
    assert_eq!((i.restarts.crash, i.restarts.total()), (1, 1));
    assert_eq!(i.last_exit_code, Some(3));
}

#[tokio::test(start_paused = true)]
async fn consecutive_crashes_double_the_backoff_up_to_the_cap() {
    let mut rig = Rig::started(&worker("always", ""));
    let mut delays = Vec::new();
    for _ in 0..5 {
        rig.exit("w-1", 1);
        let mut waited = 0;
        while rig.fx().spawns.is_empty() {
            rig.advance(ms(250)).await;
            waited += 250;
        }
        delays.push(waited);
        rig.spawn_all();
    }
    assert_eq!(delays, [1000, 2000, 4000, 8000, 8000]);
}

#[tokio::test(start_paused = true)]
async fn a_long_enough_run_forgets_earlier_failures() {
    let mut rig = Rig::started(&worker("always", ""));
    rig.exit("w-1", 1);
    rig.advance(secs(1)).await;
    rig.spawn_all();
    rig.exit("w-1", 1);
    rig.advance(secs(2)).await;
    rig.spawn_all();
    // Ten seconds up (the reset window for a 1 s initial delay).
    rig.advance(secs(10)).await;
    rig.exit("w-1", 1);
    assert!(rig
        .instance("w-1")
        .reason
        .unwrap()
        .contains("restarting in 1s"));
}

#[tokio::test(start_paused = true)]
async fn max_restart_attempts_ends_in_failed() {
    let mut rig = Rig::started(&worker("always", "  max_restart_attempts: 2"));
    for _ in 0..2 {
        rig.exit("w-1", 1);
        rig.advance(secs(8)).await;
        rig.spawn_all();
    }
    rig.exit("w-1", 1);
    let i = rig.instance("w-1");
    assert_eq!(i.state, InstanceState::Failed);
    assert!(i.reason.unwrap().contains("gave up after 2 restarts"));
    rig.advance(secs(60)).await;
    assert!(rig.fx().spawns.is_empty());
    assert_eq!(rig.process_state("w"), ProcessState::Failed);
}

#[tokio::test(start_paused = true)]
async fn on_failure_leaves_a_clean_exit_exited_and_restarts_a_crash() {
    let mut rig = Rig::started(
        &worker("on-failure", "")
            .replace("restart: on-failure", "restart: on-failure\n    scale: 2"),
    );
    rig.exit("w-1", 0);
    assert_eq!(rig.state("w-1"), InstanceState::Exited);
    rig.exit("w-2", 2);
    assert_eq!(rig.state("w-2"), InstanceState::Backoff);
}

#[tokio::test(start_paused = true)]
async fn never_leaves_a_crashed_instance_exited() {
    let mut rig = Rig::started(&worker("never", ""));
    rig.exit("w-1", 9);
    assert_eq!(rig.state("w-1"), InstanceState::Exited);
    rig.advance(secs(30)).await;
    assert!(rig.fx().spawns.is_empty());
}

#[tokio::test(start_paused = true)]
async fn always_restarts_a_clean_exit_counted_as_exit() {
    let mut rig = Rig::started(&worker("always", ""));
    rig.exit("w-1", 0);
    rig.advance(secs(1)).await;
    rig.spawn_all();
    assert_eq!(rig.instance("w-1").restarts.get(RestartReason::Exit), 1);
}

#[tokio::test(start_paused = true)]
async fn a_command_that_cannot_start_backs_off_at_least_a_second_and_says_why() {
    let mut rig = Rig::new(
        "
global:
  restart_backoff_initial: 100ms
processes:
  w:
    command: [\"missing-binary\"]
",
    );
    rig.fail_spawns("No such file or directory");
    let i = rig.instance("w-1");
    assert_eq!(i.state, InstanceState::Backoff);
    assert!(i.reason.unwrap().contains("cannot start `missing-binary`"));
    rig.advance(ms(999)).await;
    assert!(rig.fx().spawns.is_empty());
    rig.advance(ms(1)).await;
    assert_eq!(rig.fx().spawns.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_spawn_with_restart_never_is_failed() {
    let mut rig = Rig::new(&worker("never", ""));
    rig.fail_spawns("Permission denied");
    assert_eq!(rig.state("w-1"), InstanceState::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_stop_by_request_is_never_undone_by_the_policy() {
    let mut rig = Rig::started(&worker("always", ""));
    rig.act("w-1", Action::Stop).unwrap();
    rig.obey();
    assert_eq!(rig.state("w-1"), InstanceState::Stopped);
    rig.advance(secs(120)).await;
    assert!(rig.fx().spawns.is_empty());
    assert_eq!(rig.process_state("w"), ProcessState::Stopped);
    rig.act("w", Action::Start).unwrap();
    rig.spawn_all();
    assert_eq!(rig.state("w-1"), InstanceState::Running);
    assert_eq!(
        rig.instance("w-1").restarts.total(),
        0,
        "a start is not a restart"
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_an_instance_in_backoff_cancels_its_restart() {
    let mut rig = Rig::started(&worker("always", ""));
    rig.exit("w-1", 1);
    rig.act("w-1", Action::Stop).unwrap();
    assert_eq!(rig.state("w-1"), InstanceState::Stopped);
    rig.advance(secs(5)).await;
    assert!(
        rig.fx().spawns.is_empty(),
        "the stale backoff timer is ignored"
    );
}

#[tokio::test(start_paused = true)]
async fn a_start_during_backoff_then_the_old_timer_does_not_spawn_twice() {
    let mut rig = Rig::started(&worker("always", ""));
    rig.exit("w-1", 1);
    rig.act("w-1", Action::Stop).unwrap();
    rig.act("w-1", Action::Start).unwrap();
    assert_eq!(rig.fx().spawns.len(), 1);
    rig.advance(secs(2)).await;
    assert_eq!(rig.fx().spawns.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_manual_restart_stops_then_respawns_counted_as_manual() {
    let mut rig = Rig::started(&worker("never", ""));
    let old = rig.pid("w-1").unwrap();
    rig.act("w-1", Action::Restart).unwrap();
    assert_eq!(rig.fx().signals_to(old), [Signal::SIGTERM]);
    assert!(
        rig.fx().spawns.is_empty(),
        "no second run before the first ended"
    );
    rig.obey();
    rig.spawn_all();
    let i = rig.instance("w-1");
    assert_eq!(i.state, InstanceState::Running);
    assert_ne!(i.pid, Some(old));
    assert_eq!(i.restarts.get(RestartReason::Manual), 1);
}

#[tokio::test(start_paused = true)]
async fn a_process_restart_leaves_instances_stopped_by_request_alone() {
    let mut rig = Rig::started(
        &worker("always", "").replace("restart: always", "restart: always\n    scale: 2"),
    );
    rig.act("w-2", Action::Stop).unwrap();
    rig.obey();
    rig.act("w", Action::Restart).unwrap();
    rig.converge();
    assert_eq!(rig.state("w-2"), InstanceState::Stopped);
    assert_eq!(rig.instance("w-1").restarts.manual, 1);
    rig.act("w-2", Action::Restart).unwrap();
    rig.spawn_all();
    assert_eq!(
        rig.state("w-2"),
        InstanceState::Running,
        "naming a stopped instance starts it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_ignoring_its_stop_signal_is_killed_at_the_deadline() {
    let mut rig = Rig::started(
        "
processes:
  w:
    command: [\"work\"]
    shutdown:
      signal: SIGINT
      timeout: 3s
",
    );
    let pid = rig.pid("w-1").unwrap();
    rig.act("w-1", Action::Stop).unwrap();
    assert_eq!(rig.fx().signals_to(pid), [Signal::SIGINT]);
    rig.advance(ms(2999)).await;
    assert_eq!(rig.fx().signals_to(pid), [Signal::SIGINT]);
    rig.advance(ms(1)).await;
    assert_eq!(rig.fx().signals_to(pid), [Signal::SIGINT, Signal::SIGKILL]);
    rig.obey();
    assert_eq!(rig.state("w-1"), InstanceState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_after_the_child_exited_sends_nothing() {
    let mut rig = Rig::started(&worker("always", ""));
    let pid = rig.pid("w-1").unwrap();
    rig.act("w-1", Action::Stop).unwrap();
    rig.obey();
    rig.advance(secs(60)).await;
    assert_eq!(rig.fx().signals_to(pid), [Signal::SIGTERM]);
}

const CHECKED: &str = "
global:
  restart_backoff_initial: 1s
processes:
  w:
    command: [\"work\"]
    health_check:
      type: tcp
      address: \"127.0.0.1:${PHPEEK_PM_INSTANCE_PORT}\"
      failure_threshold: 3
      success_threshold: 2
    port_base: 7000
";

#[tokio::test(start_paused = true)]
async fn an_instance_turns_healthy_after_the_success_threshold() {
    let mut rig = Rig::started(CHECKED);
    assert!(rig
        .fx()
        .log
        .iter()
        .any(|e| matches!(e, Effect::Probe { .. })));
    rig.probe("w-1", true);
    assert_eq!(rig.health("w-1"), Health::Unknown);
    rig.probe("w-1", true);
    assert_eq!(rig.health("w-1"), Health::Healthy);
}

#[tokio::test(start_paused = true)]
async fn failed_checks_reaching_the_threshold_restart_with_reason_health_check() {
    let mut rig = Rig::started(CHECKED);
    let pid = rig.pid("w-1").unwrap();
    rig.probe("w-1", false);
    rig.probe("w-1", true);
    rig.probe("w-1", false);
    rig.probe("w-1", false);
    assert!(
        rig.fx().signals_to(pid).is_empty(),
        "a success resets the count"
    );
    rig.probe("w-1", false);
    assert_eq!(rig.fx().signals_to(pid), [Signal::SIGTERM]);
    assert_eq!(rig.health("w-1"), Health::Unhealthy);
    rig.obey();
    assert_eq!(
        rig.state("w-1"),
        InstanceState::Backoff,
        "health restarts back off"
    );
    rig.advance(secs(1)).await;
    rig.spawn_all();
    assert_eq!(rig.instance("w-1").restarts.health_check, 1);
    assert_eq!(rig.health("w-1"), Health::Unknown);
}

#[tokio::test(start_paused = true)]
async fn a_probe_result_of_an_earlier_run_is_ignored() {
    let mut rig = Rig::started(CHECKED);
    let first_gen = rig.sup.processes["w"].instances[&1].spawn_gen;
    rig.act("w-1", Action::Restart).unwrap();
    rig.converge();
    for _ in 0..5 {
        rig.probe_gen("w-1", first_gen, false);
    }
    assert_eq!(rig.state("w-1"), InstanceState::Running);
    let pid = rig.pid("w-1").unwrap();
    assert!(rig.fx().signals_to(pid).is_empty());
}
