//! The policy under named scenarios (random inputs: `properties.rs`).

use std::time::{Duration, Instant};

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

mod properties;

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
