//! The policy under named scenarios and random inputs.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const S: Duration = Duration::from_secs(1);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn bounds(min: u32, max: u32) -> Bounds {
    Bounds { min, max }
}

/// A process's autoscaler driven interval by interval, applying and
/// recording every decision as the supervisor would.
struct Sim {
    cfg: PolicyConfig,
    state: PolicyState,
    current: u32,
    t0: Instant,
    now: Duration,
    bounds: Bounds,
    /// (when, from, to) of every applied change.
    changes: Vec<(Duration, u32, u32)>,
}

impl Sim {
    fn new(cfg: PolicyConfig, current: u32) -> Sim {
        let bounds = bounds(cfg.min, cfg.max);
        Sim {
            cfg,
            state: PolicyState::new(),
            current,
            t0: Instant::now(),
            now: Duration::ZERO,
            bounds,
            changes: Vec::new(),
        }
    }

    fn tick(&mut self, samples: &[Sample]) -> Decision {
        let now = self.t0 + self.now;
        let d = decide(
            &Input {
                config: &self.cfg,
                current: self.current,
                samples,
                bounds: self.bounds,
                now,
            },
            &mut self.state,
        );
        if d.desired != self.current {
            self.state.record_change(now, self.current, d.desired);
            self.changes.push((self.now, self.current, d.desired));
            self.current = d.desired;
        }
        d
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }
}

fn unlimited() -> Behavior {
    Behavior {
        stabilization: Duration::ZERO,
        max_step: Step::Percent(100_000),
        period: 15 * S,
    }
}

/// The seed's auto-scale-queues.sh as a step table, in its order.
fn seed_steps() -> Target {
    Target::Steps(vec![
        StepRow {
            above: 1000.0,
            instances: 20,
        },
        StepRow {
            above: 500.0,
            instances: 10,
        },
        StepRow {
            above: 100.0,
            instances: 5,
        },
    ])
}

/// The seed script itself.
fn seed_script(queue_depth: u64) -> u32 {
    if queue_depth > 1000 {
        20
    } else if queue_depth > 500 {
        10
    } else if queue_depth > 100 {
        5
    } else {
        2
    }
}

// ---------------------------------------------------------------- scenarios
struct Scenario {
    name: &'static str,
    metrics: Vec<Target>,
    tweak: fn(&mut PolicyConfig),
    current: u32,
    samples: Vec<Sample>,
    bounds: Bounds,
    /// desired, recommended, limited_by
    want: (u32, u32, Option<LimitedBy>),
}

fn case(
    name: &'static str,
    metrics: Vec<Target>,
    current: u32,
    samples: Vec<Sample>,
    (min, max): (u32, u32),
    want: (u32, u32, Option<LimitedBy>),
) -> Scenario {
    Scenario {
        name,
        metrics,
        tweak: |_| {},
        current,
        samples,
        bounds: bounds(min, max),
        want,
    }
}

impl Scenario {
    fn with(self, tweak: fn(&mut PolicyConfig)) -> Scenario {
        Scenario { tweak, ..self }
    }
}

#[test]
fn named_scenarios() {
    use LimitedBy::*;
    let per100 = || vec![Target::PerInstance(100.0)];
    let per10 = || vec![Target::PerInstance(10.0)];
    let two = || vec![Target::PerInstance(100.0), Target::PerInstance(10.0)];
    let cpu = || vec![Target::CpuUtilization(75.0)];
    let e = Err(SampleError);
    #[rustfmt::skip]
    let table = [
        case("per_instance: 450 jobs at 100 each is 5",
            per100(), 2, vec![Ok(450.0)], (2, 20), (5, 5, None)),
        case("scale-up rate: at most 4 per period by default",
            per100(), 2, vec![Ok(2000.0)], (2, 20), (6, 20, Some(Rate))),
        case("the process max clamps",
            per100(), 18, vec![Ok(5000.0)], (2, 20), (20, 50, Some(Max))),
        case("10 -> 11 is within a 10 % tolerance",
            per10(), 10, vec![Ok(105.0)], (2, 20), (10, 10, Some(Tolerance))),
        case("10 -> 12 is not",
            per10(), 10, vec![Ok(115.0)], (2, 20), (12, 12, None)),
        case("an empty queue goes to the min",
            per100(), 6, vec![Ok(0.0)], (1, 20), (1, 0, Some(Min))),
        case("a window raises the min",
            per100(), 2, vec![Ok(300.0)], (10, 20), (10, 3, Some(Window))),
        case("a window caps the max",
            per100(), 4, vec![Ok(1000.0)], (2, 4), (4, 10, Some(Window))),
        case("the largest metric wins",
            two(), 4, vec![Ok(200.0), Ok(70.0)], (1, 20), (7, 7, None)),
        case("a failed metric holds a scale-down",
            two(), 5, vec![Ok(200.0), e], (1, 20), (5, 5, Some(Error))),
        case("a failed metric does not hold a scale-up",
            two(), 5, vec![Ok(800.0), e], (1, 20), (8, 8, None)),
        case("every metric failed: hold",
            per100(), 5, vec![e], (1, 20), (5, 5, Some(Error))),
        case("a missing sample is a failed one",
            per100(), 5, vec![], (1, 20), (5, 5, Some(Error))),
        case("NaN, infinite and negative values are failed samples",
            vec![Target::PerInstance(100.0); 3], 5,
            vec![Ok(f64::NAN), Ok(f64::INFINITY), Ok(-3.0)], (1, 20), (5, 5, Some(Error))),
        case("a zero per_instance is a failed metric, not a panic",
            vec![Target::PerInstance(0.0), Target::CpuUtilization(-5.0)], 3,
            vec![Ok(10.0), Ok(10.0)], (1, 20), (3, 3, Some(Error))),
        case("a huge value saturates",
            vec![Target::PerInstance(1e-300)], 3, vec![Ok(1e300)], (1, 20),
            (7, u32::MAX, Some(Rate))),
        case("cpu: 4 instances at 150 % for a 75 % target is 8",
            cpu(), 4, vec![Ok(150.0)], (1, 20), (8, 8, None)),
        case("cpu: with no instance there is nothing to measure; the min decides",
            cpu(), 0, vec![Ok(0.0)], (1, 20), (1, 0, Some(Min))),
        case("steps: 750 jobs is 10",
            vec![seed_steps()], 5, vec![Ok(750.0)], (2, 20), (9, 10, Some(Rate))),
        case("steps: at most 100 is the process min",
            vec![seed_steps()], 2, vec![Ok(100.0)], (2, 20), (2, 2, None))
            .with(|c| c.min = 2),
        case("no metrics: the effective min",
            vec![], 2, vec![], (10, 20), (10, 10, None)),
        case("percent step: 50 % of 3 is 2, rounded up",
            per100(), 3, vec![Ok(2000.0)], (1, 20), (5, 20, Some(Rate)))
            .with(|c| c.scale_up.max_step = Step::Percent(50)),
        case("percent step: at least 1, even from 0",
            per100(), 0, vec![Ok(2000.0)], (0, 20), (1, 20, Some(Rate)))
            .with(|c| c.scale_up.max_step = Step::Percent(10)),
        case("a zero step disables the direction",
            per100(), 8, vec![Ok(100.0)], (1, 20), (8, 1, Some(Rate)))
            .with(|c| c.scale_down.max_step = Step::Instances(0)),
        case("scale-down rate: 25 % of 8",
            per100(), 8, vec![Ok(100.0)], (1, 20), (6, 1, Some(Rate)))
            .with(|c| c.scale_down.max_step = Step::Percent(25)),
        case("a NaN tolerance is the default one",
            per10(), 10, vec![Ok(105.0)], (1, 20), (10, 10, Some(Tolerance)))
            .with(|c| c.tolerance = f64::NAN),
        case("crossed bounds: the max wins",
            per100(), 5, vec![Ok(500.0)], (9, 3), (3, 5, Some(Window))),
    ];
    for s in table {
        let mut cfg = PolicyConfig::new(1, 20, s.metrics);
        (s.tweak)(&mut cfg);
        let d = decide(
            &Input {
                config: &cfg,
                current: s.current,
                samples: &s.samples,
                bounds: s.bounds,
                now: Instant::now(),
            },
            &mut PolicyState::new(),
        );
        let (desired, recommended, limited_by) = s.want;
        assert_eq!(d.desired, desired, "{}: desired ({})", s.name, d.reason);
        assert_eq!(d.recommended, recommended, "{}: recommended", s.name);
        assert_eq!(
            d.limited_by, limited_by,
            "{}: limited_by ({})",
            s.name, d.reason
        );
        assert!(!d.reason.is_empty());
    }
}

#[test]
fn fallback_after_three_failed_intervals() {
    let mut cfg = PolicyConfig::new(1, 20, vec![Target::PerInstance(100.0)]);
    cfg.fallback = Some(4);
    cfg.scale_down.stabilization = Duration::ZERO;
    let mut sim = Sim::new(cfg.clone(), 10);
    let e = [Err(SampleError)];
    for streak in 1..=2 {
        let d = sim.tick(&e);
        assert_eq!((d.desired, d.limited_by), (10, Some(LimitedBy::Error)));
        assert_eq!(sim.state.failed_streak(), streak);
        sim.advance(15 * S);
    }
    let d = sim.tick(&e);
    assert_eq!(d.desired, 4, "{}", d.reason);
    assert_eq!(d.limited_by, Some(LimitedBy::Error));
    assert!(d.reason.contains("fallback 4"), "{}", d.reason);
    // A good sample ends the streak.
    sim.advance(15 * S);
    let d = sim.tick(&[Ok(700.0)]);
    assert_eq!(d.desired, 7);
    assert_eq!(sim.state.failed_streak(), 0);

    // With no fallback, the count holds however long it fails.
    cfg.fallback = None;
    let mut sim = Sim::new(cfg, 10);
    for _ in 0..10 {
        assert_eq!(sim.tick(&e).desired, 10);
        sim.advance(15 * S);
    }
}

#[test]
fn a_spike_then_a_drop_waits_for_the_down_window() {
    // SPEC 12 defaults: 300 s down stabilization, 15 s interval.
    let cfg = PolicyConfig::new(2, 20, vec![Target::PerInstance(100.0)]);
    let mut sim = Sim::new(cfg, 2);
    sim.tick(&[Ok(1000.0)]);
    assert_eq!(sim.current, 6, "rate: 4 up per 15 s");
    sim.advance(15 * S);
    sim.tick(&[Ok(1000.0)]);
    assert_eq!(sim.current, 10);
    let last_high = sim.now;
    loop {
        sim.advance(15 * S);
        let d = sim.tick(&[Ok(200.0)]);
        if sim.now - last_high < 300 * S {
            assert_eq!(sim.current, 10, "at {:?}", sim.now);
            assert_eq!(d.limited_by, Some(LimitedBy::Stabilization));
            assert_eq!(d.recommended, 2);
        } else {
            assert_eq!(sim.current, 2, "at {:?}: {}", sim.now, d.reason);
            break;
        }
    }
    assert_eq!(sim.now - last_high, 300 * S);
}

#[test]
fn no_metrics_follow_the_windows_at_once() {
    let w = Window::parse(&WindowConfig {
        start: "0 9 * * *".into(),
        end: "0 18 * * *".into(),
        timezone: None,
        min: Some(10),
        max: None,
    })
    .unwrap();
    let cfg = PolicyConfig::new(2, 20, vec![]);
    let mut state = PolicyState::new();
    let day = chrono::DateTime::parse_from_rfc3339("2026-04-15T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let t0 = Instant::now();
    let mut current = 2;
    for hour in 0..24u32 {
        let wall = day + chrono::Duration::hours(i64::from(hour));
        let d = decide(
            &Input {
                config: &cfg,
                current,
                samples: &[],
                bounds: effective_bounds(2, 20, std::slice::from_ref(&w), wall),
                now: t0 + Duration::from_secs(u64::from(hour) * 3600),
            },
            &mut state,
        );
        let script = if (9..=17).contains(&hour) { 10 } else { 2 };
        assert_eq!(d.desired, script, "hour {hour}");
        current = d.desired;
    }
}

#[test]
fn the_seed_cpu_strategy_is_a_fixed_count() {
    // `scale: ${CPU_COUNT}`: one worker per core, whatever the load.
    let cfg = PolicyConfig::new(4, 4, vec![Target::CpuUtilization(75.0)]);
    let mut sim = Sim::new(cfg, 4);
    for load in [0.0, 10.0, 99.0, 400.0, 0.0] {
        assert_eq!(sim.tick(&[Ok(load)]).desired, 4);
        sim.advance(15 * S);
    }
}

// --------------------------------------------------------------- properties

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

#[test]
fn steps_at_the_seed_scripts_edges() {
    for (depth, want) in [
        (0, 2),
        (100, 2),
        (101, 5),
        (500, 5),
        (501, 10),
        (1000, 10),
        (1001, 20),
    ] {
        assert_eq!(seed_script(depth), want);
        let cfg = PolicyConfig::new(2, 20, vec![seed_steps()]);
        let d = decide(
            &Input {
                config: &cfg,
                current: want,
                samples: &[Ok(depth as f64)],
                bounds: bounds(2, 20),
                now: Instant::now(),
            },
            &mut PolicyState::new(),
        );
        assert_eq!(d.per_metric[0].desired, Some(want), "{depth}");
        assert_eq!(d.desired, want, "{depth}");
    }
}
