//! Hot reload: add, remove, rescale, roll, in-place updates.

use super::*;
use phpeek_wire::RolloutPhase;

const BASE: &str = "
processes:
  keep:
    command: [\"keep\"]
  web:
    command: [\"web\", \"--v1\"]
    scale: 2
  old:
    command: [\"old\"]
";

#[tokio::test(start_paused = true)]
async fn an_unchanged_file_changes_nothing() {
    let mut rig = Rig::started(BASE);
    let log_len = rig.fx().log.len();
    let summary = rig.reload(BASE);
    assert_eq!(summary, ReloadSummary::default());
    assert_eq!(rig.fx().log.len(), log_len, "no spawn, no signal");
}

#[tokio::test(start_paused = true)]
async fn an_added_process_starts_and_a_removed_one_stops_and_leaves() {
    let mut rig = Rig::started(BASE);
    let keep = rig.pid("keep-1");
    let next = BASE.replace(
        "  old:\n    command: [\"old\"]\n",
        "  new:\n    command: [\"new\"]\n",
    );
    let summary = rig.reload(&next);
    assert_eq!(summary.added, ["new"]);
    assert_eq!(summary.removed, ["old"]);
    assert_eq!(rig.spawns_of("new").len(), 1);
    assert_eq!(rig.state("old-1"), InstanceState::Stopping);
    rig.converge();
    assert!(!rig.snap().processes.iter().any(|p| &*p.name == "old"));
    assert_eq!(
        rig.pid("keep-1"),
        keep,
        "untouched processes keep their pids"
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_scale_is_applied_as_a_scale_request() {
    let mut rig = Rig::started(BASE);
    let summary = rig.reload(&BASE.replace("scale: 2", "scale: 4"));
    assert_eq!(summary.rescaled, ["web"]);
    assert!(summary.restarted.is_empty() && summary.updated.is_empty());
    rig.spawn_all();
    assert_eq!(rig.running("web").len(), 4);
    assert_eq!(rig.process("web").scale_events.up, 1);
}

#[tokio::test(start_paused = true)]
async fn a_new_command_rolls_the_process_onto_it() {
    let mut rig = Rig::started(BASE);
    let summary = rig.reload(&BASE.replace("--v1", "--v2"));
    assert_eq!(summary.restarted, ["web"]);
    rig.converge();
    let spawns = rig.spawns_of("web");
    let v2: Vec<u32> = spawns
        .iter()
        .filter(|(_, a)| a[1] == "--v2")
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(v2, [1, 2]);
    assert_eq!(
        rig.process("web").rollout.unwrap().state,
        RolloutPhase::Done
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_policy_is_applied_in_place_without_a_restart() {
    let mut rig = Rig::started(BASE);
    let pid = rig.pid("keep-1");
    let summary = rig.reload(&BASE.replace(
        "command: [\"keep\"]",
        "command: [\"keep\"]\n    restart: never",
    ));
    assert_eq!(summary.updated, ["keep"]);
    assert!(summary.restarted.is_empty());
    assert_eq!(rig.pid("keep-1"), pid);
    rig.exit("keep-1", 1);
    assert_eq!(
        rig.state("keep-1"),
        InstanceState::Exited,
        "the new policy holds"
    );
}

#[tokio::test(start_paused = true)]
async fn a_halted_roll_keeps_unrolled_instances_on_the_previous_definition() {
    let three = BASE.replace("scale: 2", "scale: 3\n    restart: on-failure");
    let mut rig = Rig::started(&three);
    rig.reload(&three.replace("--v1", "--v2"));
    rig.obey();
    rig.fail_spawns("No such file or directory"); // the new version cannot start

    assert_eq!(
        rig.process("web").rollout.unwrap().state,
        RolloutPhase::Halted
    );
    rig.exit("web-3", 1); // an old instance crashes and comes back
    rig.advance(secs(2)).await;
    rig.spawn_all();
    let last = rig
        .spawns_of("web")
        .into_iter()
        .rfind(|(n, _)| *n == 3)
        .unwrap();
    assert_eq!(last.1[1], "--v1");
}
