//! The policy under random inputs: strategies for configs, samples and
//! ticks, and the properties every run must keep.

use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn sample() -> impl Strategy<Value = Sample> {
    prop_oneof![
        6 => (0.0..5000.0f64).prop_map(Ok),
        2 => Just(Err(SampleError)),
        1 => prop_oneof![
            Just(Ok(f64::NAN)),
            Just(Ok(f64::INFINITY)),
            Just(Ok(f64::NEG_INFINITY)),
            Just(Ok(-1.0)),
            Just(Ok(0.0)),
            Just(Ok(1e300)),
        ],
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        prop_oneof![
            4 => 1.0..500.0f64,
            1 => Just(0.0),
            1 => Just(-1.0),
            1 => Just(f64::NAN),
            1 => Just(1e-300),
        ]
        .prop_map(Target::PerInstance),
        proptest::collection::vec(
            (0.0..3000.0f64, 0u32..40).prop_map(|(above, instances)| StepRow { above, instances }),
            0..5
        )
        .prop_map(Target::Steps),
        prop_oneof![4 => 10.0..100.0f64, 1 => Just(0.0)].prop_map(Target::CpuUtilization),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u32..10).prop_map(Step::Instances),
        (0u32..300).prop_map(Step::Percent),
    ]
}

fn behavior() -> impl Strategy<Value = Behavior> {
    (0u64..400, step(), 0u64..120).prop_map(|(stab, max_step, period)| Behavior {
        stabilization: secs(stab),
        max_step,
        period: secs(period),
    })
}

fn config(metrics: impl Strategy<Value = Vec<Target>>) -> impl Strategy<Value = PolicyConfig> {
    (
        0u32..10,
        0u32..40,
        prop_oneof![
            6 => 0.0..0.5f64,
            1 => Just(f64::NAN),
            1 => Just(-1.0),
            1 => Just(f64::INFINITY),
        ],
        metrics,
        behavior(),
        behavior(),
        proptest::option::of(0u32..50),
    )
        .prop_map(
            |(min, max, tolerance, metrics, scale_up, scale_down, fallback)| PolicyConfig {
                min,
                max,
                tolerance,
                metrics,
                scale_up,
                scale_down,
                fallback,
            },
        )
}

/// One interval of a random run: how long after the previous one, the
/// samples, and the window bounds.
fn tick() -> impl Strategy<Value = (u64, Vec<Sample>, (u32, u32))> {
    (
        0u64..60,
        proptest::collection::vec(sample(), 0..5),
        (0u32..40, 0u32..40),
    )
}

/// At each change, the changes in its direction within the period that
/// ends there never exceed the step allowed from the count at that
/// period's start (the HPA's `periodStartReplicas`). A period that ends
/// elsewhere is not bounded: after a fall from 11 to 6, a rise to 8 is
/// within 10 % of the 11 its period began with, though a later period
/// that begins at 6 sees it too.
fn check_rate(changes: &[(Duration, u32, u32)], up: Behavior, down: Behavior) {
    for (k, &(t, from, to)) in changes.iter().enumerate() {
        for (behavior, rising) in [(up, true), (down, false)] {
            if (to > from) != rising {
                continue;
            }
            let window: Vec<_> = changes[..=k]
                .iter()
                .filter(|(at, _, _)| t - *at < behavior.period)
                .collect();
            let Some(&&(_, start, _)) = window.first() else {
                continue;
            };
            let moved: u32 = window
                .iter()
                .map(|&&(_, from, to)| match (rising, to > from) {
                    (true, true) => to - from,
                    (false, false) => from - to,
                    _ => 0,
                })
                .sum();
            let allowed = match behavior.max_step {
                Step::Instances(n) => n,
                Step::Percent(0) => 0,
                Step::Percent(p) => (u64::from(start) * u64::from(p)).div_ceil(100).max(1) as u32,
            };
            assert!(
                moved <= allowed,
                "{} by {moved} within {:?} up to {t:?} (allowed {allowed}): {changes:?}",
                if rising { "up" } else { "down" },
                behavior.period
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any config, any samples, moving windows: the count stays within the
    /// effective bounds, and a failed sample never lowers it (except the
    /// fallback).
    #[test]
    fn bounds_hold_and_failures_never_scale_down(
        cfg in config(proptest::collection::vec(target(), 0..4)),
        current in 0u32..45,
        ticks in proptest::collection::vec(tick(), 1..40),
    ) {
        let mut sim = Sim::new(cfg.clone(), current);
        for (gap, samples, (a, b)) in ticks {
            sim.advance(secs(gap));
            sim.bounds = bounds(a, b);
            let before = sim.current;
            let d = sim.tick(&samples);
            prop_assert!(d.desired <= b, "{} > max {b}: {}", d.desired, d.reason);
            prop_assert!(d.desired >= a.min(b), "{} < min {a}: {}", d.desired, d.reason);
            prop_assert_eq!(d.per_metric.len(), cfg.metrics.len());
            let any_failed = d.per_metric.iter().any(|m| m.error);
            let all_failed = d.per_metric.iter().all(|m| m.error);
            let fallback = all_failed
                && cfg.fallback.is_some()
                && sim.state.failed_streak() >= FALLBACK_AFTER;
            if any_failed && !fallback {
                prop_assert!(
                    d.desired >= before.min(b),
                    "{before} -> {} with a failed sample: {}", d.desired, d.reason
                );
            }
        }
    }

    /// Fixed bounds, the count starting within them: no period ever sees
    /// more change in one direction than `max_step` allows.
    #[test]
    fn the_rate_limit_is_never_exceeded(
        cfg in config(proptest::collection::vec(target(), 1..3)),
        start in 0u32..40,
        ticks in proptest::collection::vec(tick(), 1..60),
    ) {
        let mut cfg = cfg;
        if cfg.min > cfg.max {
            std::mem::swap(&mut cfg.min, &mut cfg.max);
        }
        let (up, down) = (cfg.scale_up, cfg.scale_down);
        let mut sim = Sim::new(cfg.clone(), start.clamp(cfg.min, cfg.max));
        for (gap, samples, _) in ticks {
            sim.advance(secs(gap));
            sim.tick(&samples);
        }
        check_rate(&sim.changes, up, down);
    }

    /// A constant metric: the count moves one way only, settles within the
    /// time its stabilization and rate allow, and then never changes.
    #[test]
    fn a_constant_metric_settles_without_oscillating(
        min in 0u32..6,
        span in 0u32..25,
        tolerance in 0.0..0.3f64,
        up_stab in 0u64..5,
        down_stab in 0u64..21,
        up_step in step().prop_filter("moves", |s| !matches!(s, Step::Instances(0) | Step::Percent(0))),
        down_step in step().prop_filter("moves", |s| !matches!(s, Step::Instances(0) | Step::Percent(0))),
        up_period in 1u64..3,
        down_period in 1u64..3,
        kind in 0u8..3,
        value in 0.0..5000.0f64,
        per in 1.0..300.0f64,
        start in 0u32..40,
    ) {
        const INTERVAL: Duration = Duration::from_secs(15);
        let max = min + span;
        let target = match kind {
            0 => Target::PerInstance(per),
            1 => seed_steps(),
            // `value` is the total CPU load: the average over the
            // instances falls as they are added.
            _ => Target::CpuUtilization(per.min(100.0)),
        };
        let mut cfg = PolicyConfig::new(min, max, vec![target]);
        cfg.tolerance = tolerance;
        cfg.scale_up = Behavior {
            stabilization: INTERVAL * up_stab as u32,
            max_step: up_step,
            period: INTERVAL * up_period as u32,
        };
        cfg.scale_down = Behavior {
            stabilization: INTERVAL * down_stab as u32,
            max_step: down_step,
            period: INTERVAL * down_period as u32,
        };
        // Windows to wait out, then one step per period over the range.
        let settle = up_stab.max(down_stab) + 1 + u64::from(max + 1) * up_period.max(down_period) + 1;
        let n = settle.max(30) + 20;
        let mut sim = Sim::new(cfg, start.clamp(min, max));
        let mut last_change = 0;
        for i in 0..n {
            let sample = if kind == 2 {
                if sim.current == 0 { 0.0 } else { value / f64::from(sim.current) }
            } else {
                value
            };
            let before = sim.current;
            sim.tick(&[Ok(sample)]);
            if sim.current != before {
                last_change = i;
            }
            sim.advance(INTERVAL);
        }
        prop_assert!(last_change < settle, "changed at interval {last_change} (settle by {settle}): {:?}", sim.changes);
        let rising: Vec<bool> = sim.changes.iter().map(|&(_, from, to)| to > from).collect();
        prop_assert!(rising.windows(2).all(|w| w[0] == w[1]), "changed direction: {:?}", sim.changes);
    }

    /// HPA stabilization: after high demand, the count falls only once the
    /// last high recommendation is `stabilization` old, and then at once.
    #[test]
    fn scale_down_waits_exactly_for_the_down_window(
        interval in 1u64..40,
        window in 0u64..400,
        highs in 1usize..6,
        low in 0.0..400.0f64,
    ) {
        let mut cfg = PolicyConfig::new(1, 50, vec![Target::PerInstance(100.0)]);
        cfg.tolerance = 0.0;
        cfg.scale_up = unlimited();
        cfg.scale_down = Behavior { stabilization: secs(window), ..unlimited() };
        let mut sim = Sim::new(cfg, 1);
        for _ in 0..highs {
            sim.tick(&[Ok(4000.0)]);
            sim.advance(secs(interval));
        }
        prop_assert_eq!(sim.current, 40);
        let last_high = sim.now - secs(interval);
        let want = ((low / 100.0).ceil() as u32).max(1);
        loop {
            sim.tick(&[Ok(low)]);
            if sim.now - last_high < secs(window) {
                prop_assert_eq!(sim.current, 40, "fell at {:?}, window {}s", sim.now - last_high, window);
            } else {
                prop_assert_eq!(sim.current, want);
                break;
            }
            sim.advance(secs(interval));
        }
    }

    /// And the mirror: a blip shorter than the up window does not scale up;
    /// demand that lasts does, once the last low recommendation left it.
    #[test]
    fn scale_up_waits_for_the_up_window(
        interval in 1u64..40,
        window in 0u64..200,
        blip in 1usize..12,
    ) {
        let mut cfg = PolicyConfig::new(1, 50, vec![Target::PerInstance(100.0)]);
        cfg.tolerance = 0.0;
        cfg.scale_up = Behavior { stabilization: secs(window), ..unlimited() };
        cfg.scale_down = unlimited();
        let mut sim = Sim::new(cfg, 2);
        sim.tick(&[Ok(200.0)]);
        let last_low = sim.now;
        for _ in 0..blip {
            sim.advance(secs(interval));
            sim.tick(&[Ok(4000.0)]);
            if sim.now - last_low < secs(window) {
                prop_assert_eq!(sim.current, 2, "rose at {:?}, window {}s", sim.now - last_low, window);
            } else {
                prop_assert_eq!(sim.current, 40);
            }
        }
    }

    /// The step table reproduces the seed's auto-scale-queues.sh exactly,
    /// from any current count (no tolerance or rate limit, as the script).
    #[test]
    fn steps_reproduce_the_seed_script(depth in 0u64..5000, current in 2u32..=20) {
        let mut cfg = PolicyConfig::new(2, 20, vec![seed_steps()]);
        cfg.tolerance = 0.0;
        cfg.scale_up = unlimited();
        cfg.scale_down = unlimited();
        let d = decide(
            &Input {
                config: &cfg,
                current,
                samples: &[Ok(depth as f64)],
                bounds: bounds(2, 20),
                now: Instant::now(),
            },
            &mut PolicyState::new(),
        );
        prop_assert_eq!(d.desired, seed_script(depth));
        prop_assert_eq!(d.per_metric[0].desired, Some(seed_script(depth)));
    }
}
