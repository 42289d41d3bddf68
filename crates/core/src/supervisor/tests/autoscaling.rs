//! The autoscaler in the supervisor (SPEC 12), through the fake effects:
//! rounds, decisions applied to the desired count, manual pause,
//! re-enable, dry run, failures.

use super::*;

const QUEUE: &str = "
processes:
  q:
    command: [\"work\"]
    scale: 2
    autoscale:
      min: 2
      max: 10
      interval: 15s
      metrics:
        - command: [\"depth\"]
          per_instance: 100
      behavior:
        scale_up: { stabilization: 0s, max_step: 4, period: 15s }
        scale_down: { stabilization: 60s, max_step: 100%, period: 15s }
";

#[tokio::test(start_paused = true)]
async fn the_first_round_samples_at_once_and_scales_up_by_at_most_max_step() {
    let mut rig = Rig::started(QUEUE);
    rig.advance(ms(0)).await;
    assert_eq!(rig.answer_samples("q", &[Ok(2000.0)]), 1, "a round at boot");
    let p = rig.process("q");
    assert_eq!(
        p.desired, 6,
        "2 + max_step 4 toward ceil(2000/100) = 20, max 10"
    );
    rig.spawn_all();
    assert_eq!(rig.running("q").len(), 6);
    let a = p.autoscale.unwrap();
    assert_eq!((a.state, a.recommended_unclamped), ("active", Some(20)));
    assert_eq!(a.limited_by, Some("rate"));
    // The next interval: the rest, up to max.
    rig.advance(secs(15)).await;
    rig.answer_samples("q", &[Ok(2000.0)]);
    assert_eq!(rig.process("q").desired, 10);
    let a = rig.process("q").autoscale.unwrap();
    assert_eq!(
        a.recommended_unclamped,
        Some(20),
        "KEDA sees the unclamped ask"
    );
}

#[tokio::test(start_paused = true)]
async fn scale_down_waits_for_the_stabilization_window() {
    let mut rig = Rig::started(QUEUE);
    rig.advance(ms(0)).await;
    rig.answer_samples("q", &[Ok(800.0)]);
    assert_eq!(rig.process("q").desired, 6);
    rig.spawn_all();
    // The queue drains: the count holds for the 60 s down window.
    for _ in 0..3 {
        rig.advance(secs(15)).await;
        rig.answer_samples("q", &[Ok(0.0)]);
        assert_eq!(rig.process("q").desired, 6);
    }
    rig.advance(secs(15)).await;
    rig.answer_samples("q", &[Ok(0.0)]);
    rig.advance(secs(15)).await;
    rig.answer_samples("q", &[Ok(0.0)]);
    assert_eq!(rig.process("q").desired, 2, "back to min after the window");
}

#[tokio::test(start_paused = true)]
async fn a_failed_sample_never_scales_down() {
    let mut rig = Rig::started(QUEUE);
    rig.advance(ms(0)).await;
    rig.answer_samples("q", &[Ok(500.0)]);
    assert_eq!(rig.process("q").desired, 5);
    for _ in 0..10 {
        rig.advance(secs(15)).await;
        rig.answer_samples("q", &[Err("connection refused")]);
        assert_eq!(rig.process("q").desired, 5);
    }
    let a = rig.process("q").autoscale.unwrap();
    assert_eq!(a.state, "error");
    assert_eq!(a.errors, vec![("command".to_string(), 10)]);
    assert_eq!(a.metrics[0].error.as_deref(), Some("connection refused"));
}

#[tokio::test(start_paused = true)]
async fn a_manual_scale_pauses_it_and_enabling_resumes() {
    let mut rig = Rig::started(QUEUE);
    rig.advance(ms(0)).await;
    rig.answer_samples("q", &[Ok(0.0)]);
    rig.scale("q", 7).unwrap();
    assert_eq!(rig.process("q").autoscale.unwrap().state, "manual");
    rig.advance(secs(15)).await;
    rig.answer_samples("q", &[Ok(0.0)]);
    rig.advance(secs(120)).await;
    rig.answer_samples("q", &[Ok(0.0)]);
    assert_eq!(
        rig.process("q").desired,
        7,
        "paused: the decision is shown, not applied"
    );
    let changed = rig
        .ask_autoscale("q", true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(changed.state, "active");
    rig.advance(ms(0)).await;
    assert_eq!(rig.answer_samples("q", &[Ok(900.0)]), 1, "a round at once");
    assert_eq!(rig.process("q").desired, 9);
    assert!(matches!(
        rig.ask_autoscale("nope", true),
        Err(CommandError::NotFound(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn dry_run_decides_and_shows_but_does_not_act() {
    let yaml = QUEUE.replace(
        "      interval: 15s\n",
        "      interval: 15s\n      dry_run: true\n",
    );
    let mut rig = Rig::started(&yaml);
    rig.advance(ms(0)).await;
    rig.answer_samples("q", &[Ok(2000.0)]);
    let p = rig.process("q");
    assert_eq!(p.desired, 2);
    let a = p.autoscale.unwrap();
    assert_eq!((a.state, a.recommended_unclamped), ("dry_run", Some(20)));
    assert_eq!(a.metrics[0].value, Some(2000.0));
}

#[tokio::test(start_paused = true)]
async fn a_reload_starts_the_autoscaler_over() {
    let mut rig = Rig::started(QUEUE);
    rig.advance(ms(0)).await;
    rig.answer_samples("q", &[Ok(0.0)]);
    rig.scale("q", 3).unwrap();
    assert_eq!(rig.process("q").autoscale.unwrap().state, "manual");
    rig.reload(QUEUE);
    assert_eq!(rig.process("q").autoscale.unwrap().state, "active");
    // The round of the old generation is stale; the new one answers.
    rig.advance(ms(0)).await;
    assert!(rig.answer_samples("q", &[Ok(400.0)]) >= 1);
    assert_eq!(rig.process("q").desired, 4);
}

#[tokio::test(start_paused = true)]
async fn a_process_without_autoscale_refuses_the_request() {
    let mut rig = Rig::started("processes:\n  w:\n    command: [\"w\"]\n");
    assert!(matches!(
        rig.ask_autoscale("w", true),
        Err(CommandError::BadRequest(_))
    ));
}
