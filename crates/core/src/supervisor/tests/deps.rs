//! Dependency gates: waiting, health, timeouts, re-arming.

use super::*;

const CHAIN: &str = "
global:
  dependency_timeout: 10s
processes:
  db:
    command: [\"db\"]
  app:
    command: [\"app\"]
    depends_on: [db]
";

#[tokio::test(start_paused = true)]
async fn a_dependent_waits_until_its_dependency_runs() {
    let mut rig = Rig::new(CHAIN);
    assert_eq!(rig.spawns_of("app").len(), 0);
    assert_eq!(rig.process_state("app"), ProcessState::Waiting);
    assert!(rig.process("app").reason.unwrap().contains("db"));
    rig.spawn_all();
    assert_eq!(rig.spawns_of("app").len(), 1);
    assert_eq!(rig.state("app-1"), InstanceState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_checked_dependency_must_be_healthy_first() {
    let mut rig = Rig::started(&CHAIN.replace(
        "command: [\"db\"]",
        "command: [\"db\"]\n    health_check:\n      type: tcp\n      address: \"127.0.0.1:5432\"",
    ));
    assert_eq!(rig.spawns_of("app").len(), 0);
    rig.probe("db-1", true);
    assert_eq!(rig.spawns_of("app").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dependency_never_ready_fails_the_dependent_after_the_timeout() {
    let mut rig = Rig::new(CHAIN);
    rig.fail_spawns("No such file or directory");
    rig.advance(secs(9)).await;
    assert_eq!(rig.process_state("app"), ProcessState::Waiting);
    rig.advance(secs(1)).await;
    let app = rig.process("app");
    assert_eq!(app.state, ProcessState::Failed);
    assert!(app
        .reason
        .unwrap()
        .contains("dependency db not ready after 10s"));
}

#[tokio::test(start_paused = true)]
async fn starting_the_dependency_rearms_a_failed_dependent() {
    let mut rig = Rig::new(CHAIN);
    rig.fail_spawns("No such file or directory");
    rig.advance(secs(10)).await;
    assert_eq!(rig.process_state("app"), ProcessState::Failed);
    rig.act("db", Action::Stop).unwrap();
    rig.act("db", Action::Start).unwrap();
    assert_eq!(rig.process_state("app"), ProcessState::Waiting);
    rig.spawn_all();
    assert_eq!(rig.state("app-1"), InstanceState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_disabled_dependency_does_not_hold_anything_back() {
    let rig =
        Rig::new(&CHAIN.replace("command: [\"db\"]", "command: [\"db\"]\n    enabled: false"));
    assert_eq!(rig.spawns_of("app").len(), 1);
    assert_eq!(rig.spawns_of("db").len(), 0);
}
