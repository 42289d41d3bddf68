//! SPEC §4: rolling restarts replace one instance at a time, gated on
//! health, and halt when a new instance does not come back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;

use common::*;

#[test]
fn a_new_version_failing_its_health_check_halts_the_roll() {
    let yaml = |version: &str| {
        format!(
            r#"{TEST_GLOBALS}processes:
  app:
    command: ["sleep", "300"]
    scale: 3
    env:
      VERSION: {version}
    health_check:
      type: exec
      command: ["sh", "-c", "test \"$VERSION\" = good"]
      period: 100ms
      timeout: 1s
      failure_threshold: 2
"#
        )
    };
    let mut m = Manager::start(&yaml("good"));
    let before = m.wait_healthy("app", 3);
    std::fs::write(&m.config, yaml("bad")).unwrap();
    let (status, body) = m.post("/api/v1/reload", "");
    assert_eq!(status, 202, "{body}");
    let p = m.wait_process("app", |p| {
        p.rollout
            .as_ref()
            .is_some_and(|r| r.state == RolloutPhase::Halted)
    });
    let rollout = p.rollout.as_ref().unwrap();
    assert!(
        rollout.reason.as_deref().unwrap().contains("health"),
        "{p:?}"
    );
    // Only the first instance was replaced; the others still run the old
    // version with their old pids.
    let now = m.pids("app");
    assert_eq!(now["app-2"], before["app-2"]);
    assert_eq!(now["app-3"], before["app-3"]);
    let running = m
        .instances()
        .into_iter()
        .filter(|i| i.process == "app" && i.state == InstanceState::Running)
        .count();
    assert!(running >= 2);
    // An old instance that crashes comes back on the old definition.
    let old_pid = now["app-3"];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Back (a new pid) and healthy.
    let back = m.wait_instance("app-3", |i| {
        i.pid.is_some_and(|pid| pid != old_pid) && i.health == Health::Healthy
    });
    assert_eq!(
        env_var(back.pid.unwrap(), "VERSION").as_deref(),
        Some("good")
    );
}

#[test]
fn a_rolling_restart_never_drops_more_than_one_instance() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  web:
    command: ["sh", "-c", "trap 'sleep 0.3; exit 0' TERM; while true; do sleep 0.1; done"]
    scale: 4
"#
    );
    let mut m = Manager::start(&yaml);
    let before: BTreeMap<String, i32> = m.wait_running("web", 4).into_iter().collect();
    let (status, body) = m.post("/api/v1/processes/web/restart", "");
    assert_eq!(status, 202, "{body}");
    let mut min_running = usize::MAX;
    let after = wait_for("every instance replaced", DEADLINE, || {
        let p = m.process("web");
        let running: BTreeMap<String, i32> = p
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .filter_map(|i| Some((i.name.clone(), i.pid?)))
            .collect();
        min_running = min_running.min(running.len());
        let all_new =
            running.len() == 4 && running.iter().all(|(n, pid)| before.get(n) != Some(pid));
        let done = p.rollout.is_some_and(|r| r.state == RolloutPhase::Done);
        (all_new && done).then_some(running)
    });
    assert!(min_running >= 3, "capacity dropped to {min_running}");
    for pid in before.values() {
        assert!(!alive(*pid));
    }
    assert_eq!(after.len(), 4);
    let restarts: Vec<u64> = m
        .process("web")
        .instances
        .iter()
        .map(|i| i.restarts)
        .collect();
    assert_eq!(restarts, vec![1, 1, 1, 1]);
}

/// Start times (ns since the epoch) that the instances of `web` wrote
/// into `$DIR/starts.log`, in the order they started: (number, time).
fn starts(m: &Manager) -> Vec<(u32, u128)> {
    std::fs::read_to_string(m.path("starts.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (n, t) = l.split_once(' ')?;
            Some((n.parse().ok()?, t.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn min_ready_holds_each_step_of_a_roll() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  web:
    command: ["sh", "-c", "echo \"$PHPEEK_PM_INSTANCE_NUMBER $(date +%s%N)\" >> $DIR/starts.log; exec sleep 300"]
    scale: 3
    rollout: {{ min_ready: 2s }}
"#
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("web", 3);
    wait_for("three starts written", DEADLINE, || {
        (starts(&m).len() == 3).then_some(())
    });
    let (status, body) = m.post("/api/v1/processes/web/restart", "");
    assert_eq!(status, 202, "{body}");
    // While it waits, the process object says for what.
    let p = m.wait_process("web", |p| {
        p.rollout
            .as_ref()
            .is_some_and(|r| r.current.as_deref() == Some("web-1"))
    });
    let roll = p.rollout.unwrap();
    assert_eq!(roll.state, RolloutPhase::Running);
    assert_eq!(roll.min_ready.as_deref(), Some("2s"));
    assert_eq!(roll.remaining, 2);
    m.wait_process("web", |p| {
        p.rollout
            .as_ref()
            .is_some_and(|r| r.state == RolloutPhase::Done)
    });
    let all = starts(&m);
    assert_eq!(all.len(), 6, "{all:?}");
    let rolled: Vec<u32> = all[3..].iter().map(|(n, _)| *n).collect();
    assert_eq!(rolled, [1, 2, 3], "one at a time, in order");
    // Each next instance was stopped only after the one before had run
    // for min_ready (2 s): its own start came later still. The margin
    // covers the shell's start-up after the manager counted it running.
    for w in all[3..].windows(2) {
        let gap_ms = (w[1].1 - w[0].1) / 1_000_000;
        assert!(
            gap_ms >= 1_500,
            "{} started {gap_ms} ms after {}",
            w[1].0,
            w[0].0
        );
    }
}

/// `check-config` on the seed's api-worker with `extra` keys.
fn check_api_worker(extra: &str) -> CliRun {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("processes:\n  api-worker:\n    command: [\"./api-server\", \"--port\", \"${{PHPEEK_PM_INSTANCE_PORT}}\"]\n    scale: 3\n    port_base: 8080\n{extra}"),
    )
    .unwrap();
    run_cli(
        &["check-config", "-c", cfg.to_str().unwrap()],
        dir.path(),
        &[],
        &[],
    )
}

#[test]
fn check_config_advises_min_ready_for_per_instance_ports() {
    let run = check_api_worker("");
    assert_eq!(run.code, 0, "a warning is not an error: {}", run.stderr);
    assert!(
        run.stderr.contains("warning: processes.api-worker: port_base with up to 3 instances and no rollout.min_ready"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("warning"), "stdout stays YAML");
    let run = check_api_worker("    rollout: { min_ready: 11s }\n");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    assert!(run.stdout.contains("min_ready: 11s"), "{}", run.stdout);
}
