//! Scaling: desired counts, limits, races, and number reuse.

use super::*;

const WEB: &str = "
processes:
  web:
    command: [\"srv\", \"--id=${PHPEEK_PM_INSTANCE_NUMBER}\"]
    scale: 3
    max_scale: 60
";

#[tokio::test(start_paused = true)]
async fn the_configured_scale_is_spawned_with_per_instance_arguments() {
    let mut rig = Rig::new(WEB);
    let spawns = rig.spawns_of("web");
    assert_eq!(spawns.len(), 3);
    assert_eq!(
        spawns[1],
        (2, vec!["srv".to_string(), "--id=2".to_string()])
    );
    let env = &rig.fx().spawns[1].spec.env;
    assert!(env
        .iter()
        .any(|(k, v)| k == "PHPEEK_PM_INSTANCE_ID" && v == "web-2"));
    assert!(rig
        .names("web")
        .iter()
        .all(|n| rig.state(n) == InstanceState::Starting));
    rig.spawn_all();
    assert_eq!(rig.running("web"), ["web-1", "web-2", "web-3"]);
    assert_eq!(rig.process_state("web"), ProcessState::Running);
}

#[tokio::test(start_paused = true)]
async fn scale_up_starts_only_the_missing_numbers() {
    let mut rig = Rig::started(WEB);
    let before: Vec<_> = rig.names("web").iter().map(|n| rig.pid(n)).collect();
    let out = rig.scale("web", 5).unwrap();
    assert_eq!(
        out,
        ScaleOutcome::Scaling {
            process: "web".into(),
            current: 3,
            previous: 3,
            desired: 5
        }
    );
    let new: Vec<u32> = rig.fx().spawns.iter().map(|s| s.at.number).collect();
    assert_eq!(new, [4, 5]);
    rig.spawn_all();
    let after: Vec<_> = rig.names("web")[..3].iter().map(|n| rig.pid(n)).collect();
    assert_eq!(before, after, "existing instances keep their pids");
    assert_eq!(rig.running("web").len(), 5);
}

#[tokio::test(start_paused = true)]
async fn scale_down_stops_the_highest_numbers_gracefully_and_removes_them_on_exit() {
    let mut rig = Rig::started(WEB);
    let pid3 = rig.pid("web-3").unwrap();
    let pid2 = rig.pid("web-2").unwrap();
    rig.scale("web", 1).unwrap();
    assert_eq!(rig.fx().signals_to(pid3), [Signal::SIGTERM]);
    assert_eq!(rig.state("web-3"), InstanceState::Stopping);
    assert_eq!(rig.state("web-1"), InstanceState::Running);
    rig.obey();
    assert!(!rig.has_instance("web-3") && !rig.has_instance("web-2"));
    assert!(!rig.fx().alive.contains(&pid2));
    assert_eq!(rig.names("web"), ["web-1"]);
}

#[tokio::test(start_paused = true)]
async fn racing_scale_requests_converge_to_the_last_one() {
    let mut rig = Rig::started(WEB);
    for n in [50, 1, 20] {
        rig.scale("web", n).unwrap();
    }
    rig.converge();
    assert_eq!(rig.running("web").len(), 20);
    assert_eq!(rig.fx().alive.len(), 20, "no leaked child");
    let names: Vec<String> = (1..=20).map(|n| format!("web-{n}")).collect();
    assert_eq!(rig.names("web"), names);
}

#[tokio::test(start_paused = true)]
async fn a_number_is_reused_only_after_its_predecessor_exited() {
    let mut rig = Rig::started(WEB);
    let old = rig.pid("web-3").unwrap();
    rig.scale("web", 2).unwrap();
    rig.scale("web", 3).unwrap();
    assert!(
        rig.fx().spawns.is_empty(),
        "web-3 is still held by the stopping instance"
    );
    rig.obey();
    assert_eq!(rig.fx().spawns.len(), 1);
    rig.spawn_all();
    assert_ne!(rig.pid("web-3"), Some(old));
    assert_eq!(rig.running("web").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn scaling_to_the_current_count_is_unchanged() {
    let mut rig = Rig::started(WEB);
    let out = rig.scale("web", 3).unwrap();
    assert!(matches!(
        out,
        ScaleOutcome::Unchanged {
            desired: 3,
            current: 3,
            ..
        }
    ));
    assert_eq!(rig.process("web").scale_events, Default::default());
}

#[tokio::test(start_paused = true)]
async fn scale_limits_are_refused_with_their_reason() {
    let mut rig = Rig::started(
        "
global:
  max_process_scale: 40
processes:
  web:
    command: [\"srv\"]
    max_scale: 30
  api:
    command: [\"srv\"]
    port_base: 65530
",
    );
    let e = rig.scale("web", 31).unwrap_err();
    assert_eq!(
        e,
        CommandError::BadRequest("desired 31 is above max_scale 30 of `web`".into())
    );
    let e = rig.scale("api", 41).unwrap_err();
    assert_eq!(
        e,
        CommandError::BadRequest("desired 41 is above max_process_scale 40".into())
    );
    let e = rig.scale("api", 6).unwrap_err();
    assert!(e.to_string().contains("ports past 65535"), "{e}");
    assert!(rig.fx().spawns.is_empty());
}

#[tokio::test(start_paused = true)]
async fn scaling_an_unknown_or_disabled_process_is_refused() {
    let mut rig = Rig::started(
        "
processes:
  off:
    command: [\"srv\"]
    enabled: false
",
    );
    assert!(matches!(
        rig.scale("nope", 2),
        Err(CommandError::NotFound(_))
    ));
    assert!(matches!(
        rig.scale("off", 2),
        Err(CommandError::BadRequest(_))
    ));
    assert_eq!(rig.process_state("off"), ProcessState::Disabled);
}

#[tokio::test(start_paused = true)]
async fn a_spawn_that_finishes_after_its_instance_was_scaled_away_is_killed() {
    let mut rig = Rig::new(WEB);
    rig.scale("web", 0).unwrap();
    let pids = rig.spawn_all();
    assert_eq!(pids.len(), 3);
    for pid in &pids {
        assert_eq!(rig.fx().signals_to(*pid).first(), Some(&Signal::SIGTERM));
    }
    rig.obey();
    assert!(rig.names("web").is_empty());
    assert!(rig.fx().alive.is_empty());
}

#[tokio::test(start_paused = true)]
async fn scale_events_count_each_direction() {
    let mut rig = Rig::started(WEB);
    rig.scale("web", 5).unwrap();
    rig.scale("web", 2).unwrap();
    rig.scale("web", 4).unwrap();
    let ev = rig.process("web").scale_events;
    assert_eq!((ev.up, ev.down), (2, 1));
}
