//! The autoscaling decision of one interval (SPEC 12), HPA-like.
//!
//! Pipeline: per-metric desired count → the largest → tolerance →
//! stabilization → rate limit → clamp to the effective bounds.
//!
//! Invariants (hold for every input, checked by the property tests):
//! - `desired` is always within the effective `[min, max]` passed in.
//! - No panic on any input: a non-finite or negative sample, a missing
//!   sample, or a non-positive `per_instance`/`utilization` is a failed
//!   sample of that metric; counts saturate at `u32::MAX`.
//! - A failed sample never causes a scale-down: with any failed metric,
//!   `desired >= min(current, effective max)`. The one exception is the
//!   configured `fallback`, applied after [`FALLBACK_AFTER`] intervals in a
//!   row in which every metric failed. An interval that holds because of a
//!   failure records no recommendation (the HPA skips it too); the fallback
//!   is a recommendation like any other (no tolerance, but stabilization
//!   and rate limits apply).
//! - Stabilization is the HPA's: each direction keeps the recommendations
//!   of its window; the count rises only to the lowest recommendation of the
//!   up window and falls only to the highest of the down window. A
//!   recommendation exactly `stabilization` old has left the window.
//! - At each change, the recorded changes in its direction within the
//!   `period` that ends there add up to at most `max_step` (a percentage is
//!   of the count at that period's start, rounded up, at least 1: the
//!   HPA's `periodStartReplicas`, the count now less what the period added
//!   plus what it removed). Changes count only once the caller
//!   records them with [`PolicyState::record_change`]. The bounds are
//!   applied after the rate limit, so a window that raises the min takes
//!   effect at once (as the HPA's `minReplicas`).
//! - The policy reads no clock and does no I/O: `now` is an argument.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::windows::Bounds;

/// The tolerance when the config gives none (the HPA's).
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// Intervals in a row in which every metric failed before `fallback`.
pub const FALLBACK_AFTER: u32 = 3;
/// Entries kept per history at most; the oldest go first. At one interval
/// per second this covers the HPA's longest window (an hour).
const HISTORY_CAP: usize = 4096;

/// How one metric's value becomes a desired instance count.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `ceil(value / per_instance)`.
    PerInstance(f64),
    /// The first row, in the order given, with `value > above`; else the
    /// process's configured `min`.
    Steps(Vec<StepRow>),
    /// `ceil(current × value / utilization)`, where the value is the
    /// average CPU of the running instances in percent of one core.
    CpuUtilization(f64),
}

/// One row of a step table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRow {
    pub above: f64,
    pub instances: u32,
}

/// The most one direction may move per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This many instances (0 disables the direction).
    Instances(u32),
    /// This percentage of the count at the period's start, rounded up and
    /// at least 1 (0 disables the direction).
    Percent(u32),
}

/// Stabilization and rate limit of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behavior {
    pub stabilization: Duration,
    pub max_step: Step,
    pub period: Duration,
}

impl Behavior {
    /// SPEC 12's scale-up default: no stabilization, 4 per 15 s.
    pub fn scale_up_default() -> Behavior {
        Behavior {
            stabilization: Duration::ZERO,
            max_step: Step::Instances(4),
            period: Duration::from_secs(15),
        }
    }

    /// SPEC 12's scale-down default: 300 s stabilization, 100 % per 15 s.
    pub fn scale_down_default() -> Behavior {
        Behavior {
            stabilization: Duration::from_secs(300),
            max_step: Step::Percent(100),
            period: Duration::from_secs(15),
        }
    }
}

/// The policy's view of a process's `autoscale` block.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// The process's own bounds (the effective ones come with the input).
    pub min: u32,
    pub max: u32,
    /// A NaN tolerance is [`DEFAULT_TOLERANCE`], a negative one 0.
    pub tolerance: f64,
    /// One target per metric, in the order of the samples.
    pub metrics: Vec<Target>,
    pub scale_up: Behavior,
    pub scale_down: Behavior,
    pub fallback: Option<u32>,
}

impl PolicyConfig {
    /// `[min, max]` with these metrics and SPEC 12's defaults otherwise.
    pub fn new(min: u32, max: u32, metrics: Vec<Target>) -> PolicyConfig {
        PolicyConfig {
            min,
            max,
            tolerance: DEFAULT_TOLERANCE,
            metrics,
            scale_up: Behavior::scale_up_default(),
            scale_down: Behavior::scale_down_default(),
            fallback: None,
        }
    }
}

/// A metric that could not be sampled (timeout, parse error, …); the
/// caller logs and counts the cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleError;

/// One metric's value this interval.
pub type Sample = Result<f64, SampleError>;

/// Everything one decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub config: &'a PolicyConfig,
    /// The process's desired count now.
    pub current: u32,
    /// One per metric, in config order; a missing one counts as failed.
    pub samples: &'a [Sample],
    /// From [`super::effective_bounds`].
    pub bounds: Bounds,
    /// Monotonic; only compared with earlier `now`s of the same state.
    pub now: Instant,
}

/// What held the count back from what the metrics asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitedBy {
    Min,
    Max,
    Window,
    Rate,
    Stabilization,
    Tolerance,
    Error,
}

impl LimitedBy {
    /// The API and log spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitedBy::Min => "min",
            LimitedBy::Max => "max",
            LimitedBy::Window => "window",
            LimitedBy::Rate => "rate",
            LimitedBy::Stabilization => "stabilization",
            LimitedBy::Tolerance => "tolerance",
            LimitedBy::Error => "error",
        }
    }
}

impl fmt::Display for LimitedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One metric's part in a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDesire {
    /// `None` when it failed.
    pub desired: Option<u32>,
    pub error: bool,
}

/// The outcome of one interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The count to set, within the effective bounds.
    pub desired: u32,
    /// After tolerance, before stabilization, rate limits and clamps.
    pub recommended: u32,
    /// The metrics' ask before tolerance and every clamp: the gauge for
    /// KEDA (`phpeek_pm_autoscale_recommended_instances`).
    pub recommended_unclamped: u32,
    pub per_metric: Vec<MetricDesire>,
    /// The last step that moved the count away from the metrics' ask.
    pub limited_by: Option<LimitedBy>,
    /// One line for the log.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recommendation {
    at: Instant,
    count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    at: Instant,
    from: u32,
    to: u32,
}

/// What the policy remembers between intervals. The caller keeps one per
/// process and starts a fresh one when the autoscaler is (re)enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyState {
    recommendations: VecDeque<Recommendation>,
    changes: VecDeque<Change>,
    failed_streak: u32,
}

impl PolicyState {
    pub fn new() -> PolicyState {
        PolicyState::default()
    }

    /// Records a scale change the caller applied (not in dry-run), for
    /// the rate limits.
    pub fn record_change(&mut self, at: Instant, from: u32, to: u32) {
        if from != to {
            push_capped(&mut self.changes, Change { at, from, to });
        }
    }

    /// Intervals in a row in which every metric failed.
    pub fn failed_streak(&self) -> u32 {
        self.failed_streak
    }

    fn forget_before(&mut self, now: Instant, config: &PolicyConfig) {
        let keep_recs = config
            .scale_up
            .stabilization
            .max(config.scale_down.stabilization);
        let keep_changes = config.scale_up.period.max(config.scale_down.period);
        self.recommendations
            .retain(|r| within(r.at, now, keep_recs));
        self.changes.retain(|c| within(c.at, now, keep_changes));
    }
}

fn push_capped<T>(queue: &mut VecDeque<T>, item: T) {
    while queue.len() >= HISTORY_CAP {
        queue.pop_front();
    }
    queue.push_back(item);
}

/// Whether `at` lies within the `window` that ends at `now` (a moment
/// exactly `window` old does not; a moment after `now` does).
fn within(at: Instant, now: Instant, window: Duration) -> bool {
    now.saturating_duration_since(at) < window
}

/// `x` rounded up to a count, saturating; a ratio within floating-point
/// noise of a whole number counts as that number.
fn ceil_count(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        return 0;
    }
    let nearest = x.round();
    let c = if (x - nearest).abs() <= 1e-9 * x.max(1.0) {
        nearest
    } else {
        x.ceil()
    };
    if c >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In [0, u32::MAX) and whole: exact.
        c as u32
    }
}

fn metric_desire(target: &Target, sample: Option<&Sample>, current: u32, min: u32) -> MetricDesire {
    const FAILED: MetricDesire = MetricDesire {
        desired: None,
        error: true,
    };
    let value = match sample {
        Some(Ok(v)) if v.is_finite() && *v >= 0.0 => *v,
        _ => return FAILED,
    };
    let desired = match target {
        Target::PerInstance(per) if per.is_finite() && *per > 0.0 => ceil_count(value / per),
        Target::CpuUtilization(util) if util.is_finite() && *util > 0.0 => {
            ceil_count(f64::from(current) * value / util)
        }
        Target::PerInstance(_) | Target::CpuUtilization(_) => return FAILED,
        Target::Steps(rows) => rows
            .iter()
            .find(|r| value > r.above)
            .map_or(min, |r| r.instances),
    };
    MetricDesire {
        desired: Some(desired),
        error: false,
    }
}

/// The HPA's stabilization: from `current`, up only to the lowest
/// recommendation of the up window, down only to the highest of the down
/// window (both include this interval's).
fn stabilize(state: &PolicyState, input: &Input<'_>, recommended: u32) -> u32 {
    let cfg = input.config;
    let mut up = recommended;
    let mut down = recommended;
    for r in &state.recommendations {
        if within(r.at, input.now, cfg.scale_up.stabilization) {
            up = up.min(r.count);
        }
        if within(r.at, input.now, cfg.scale_down.stabilization) {
            down = down.max(r.count);
        }
    }
    let mut result = input.current;
    if result < up {
        result = up;
    }
    if result > down {
        result = down;
    }
    result
}

/// How far one direction may move in a period starting at `base`.
fn step_budget(step: Step, base: u32) -> u32 {
    match step {
        Step::Instances(n) => n,
        Step::Percent(0) => 0,
        Step::Percent(p) => {
            let part = (u64::from(base) * u64::from(p)).div_ceil(100).max(1);
            u32::try_from(part).unwrap_or(u32::MAX)
        }
    }
}

/// Instances added and removed by the recorded changes within `period`.
fn moved_within(state: &PolicyState, now: Instant, period: Duration) -> (u32, u32) {
    let mut added = 0u32;
    let mut removed = 0u32;
    for c in state.changes.iter().filter(|c| within(c.at, now, period)) {
        if c.to > c.from {
            added = added.saturating_add(c.to - c.from);
        } else {
            removed = removed.saturating_add(c.from - c.to);
        }
    }
    (added, removed)
}

fn rate_limit(state: &PolicyState, input: &Input<'_>, target: u32) -> u32 {
    let current = input.current;
    let cfg = input.config;
    if target > current {
        let (added, removed) = moved_within(state, input.now, cfg.scale_up.period);
        let base = current.saturating_sub(added).saturating_add(removed);
        let room = step_budget(cfg.scale_up.max_step, base).saturating_sub(added);
        target.min(current.saturating_add(room))
    } else if target < current {
        let (added, removed) = moved_within(state, input.now, cfg.scale_down.period);
        let base = current.saturating_add(removed).saturating_sub(added);
        let room = step_budget(cfg.scale_down.max_step, base).saturating_sub(removed);
        target.max(current.saturating_sub(room))
    } else {
        target
    }
}

/// Which bound `clamped` hit: a window's, or the process's own.
fn bound_hit(input: &Input<'_>, bounds: Bounds, unclamped: u32, clamped: u32) -> Option<LimitedBy> {
    if clamped == unclamped {
        None
    } else if clamped > unclamped {
        Some(if bounds.min > input.config.min {
            LimitedBy::Window
        } else {
            LimitedBy::Min
        })
    } else {
        Some(if bounds.max < input.config.max {
            LimitedBy::Window
        } else {
            LimitedBy::Max
        })
    }
}

fn describe_move(current: u32, desired: u32, limited_by: Option<LimitedBy>) -> String {
    let moved = if desired == current {
        format!("stays at {current}")
    } else {
        format!("{current} -> {desired}")
    };
    match limited_by {
        Some(l) => format!("{moved}, limited by {l}"),
        None => moved,
    }
}

/// An interval whose failures forbid moving: the count stays, within the
/// bounds.
fn hold(input: &Input<'_>, bounds: Bounds, per_metric: Vec<MetricDesire>, why: String) -> Decision {
    let current = input.current;
    let desired = bounds.clamp(current);
    let limited_by = bound_hit(input, bounds, current, desired).or(Some(LimitedBy::Error));
    Decision {
        desired,
        recommended: current,
        recommended_unclamped: current,
        per_metric,
        limited_by,
        reason: format!("{why}: {}", describe_move(current, desired, limited_by)),
    }
}

/// Decides this interval's count and updates `state` (its histories and
/// the failure streak). Scale changes are recorded by the caller once
/// applied ([`PolicyState::record_change`]).
pub fn decide(input: &Input<'_>, state: &mut PolicyState) -> Decision {
    let cfg = input.config;
    let current = input.current;
    let bounds = Bounds {
        min: input.bounds.min.min(input.bounds.max),
        max: input.bounds.max,
    };
    state.forget_before(input.now, cfg);

    if cfg.metrics.is_empty() {
        state.failed_streak = 0;
        return Decision {
            desired: bounds.min,
            recommended: bounds.min,
            recommended_unclamped: bounds.min,
            per_metric: Vec::new(),
            limited_by: None,
            reason: format!(
                "no metrics, the effective min: {}",
                describe_move(current, bounds.min, None)
            ),
        };
    }

    let per_metric: Vec<MetricDesire> = cfg
        .metrics
        .iter()
        .enumerate()
        .map(|(i, t)| metric_desire(t, input.samples.get(i), current, cfg.min))
        .collect();
    let failed = per_metric.iter().filter(|m| m.error).count();
    let asked = per_metric.iter().filter_map(|m| m.desired).max();

    // The raw ask, and whether tolerance applies to it.
    let (raw, what, tolerant) = match asked {
        None => {
            state.failed_streak = state.failed_streak.saturating_add(1);
            let streak = state.failed_streak;
            match cfg.fallback {
                Some(fallback) if streak >= FALLBACK_AFTER => (
                    fallback,
                    format!("every metric failed {streak} intervals in a row, fallback {fallback}"),
                    false,
                ),
                _ => {
                    let why = format!("every metric failed ({streak} in a row), holding");
                    return hold(input, bounds, per_metric, why);
                }
            }
        }
        Some(raw) => {
            state.failed_streak = 0;
            if failed > 0 && raw < current {
                let why = format!(
                    "metrics ask {raw} but {failed} of {} failed, no scale-down",
                    per_metric.len()
                );
                return hold(input, bounds, per_metric, why);
            }
            let what = if failed > 0 {
                format!("metrics ask {raw} ({failed} failed)")
            } else {
                format!("metrics ask {raw}")
            };
            (raw, what, true)
        }
    };

    let mut limited_by = None;
    let tolerance = if cfg.tolerance.is_nan() {
        DEFAULT_TOLERANCE
    } else {
        cfg.tolerance.max(0.0)
    };
    // |raw/current - 1| <= tolerance, without the division's rounding
    // (10 -> 11 is exactly 10 %).
    let within_tolerance =
        f64::from(raw.abs_diff(current)) <= tolerance * f64::from(current) * (1.0 + 1e-12);
    let recommended = if tolerant && current > 0 && within_tolerance {
        current
    } else {
        raw
    };
    if recommended != raw {
        limited_by = Some(LimitedBy::Tolerance);
    }

    let stabilized = stabilize(state, input, recommended);
    push_capped(
        &mut state.recommendations,
        Recommendation {
            at: input.now,
            count: recommended,
        },
    );
    if stabilized != recommended {
        limited_by = Some(LimitedBy::Stabilization);
    }
    let rated = rate_limit(state, input, stabilized);
    if rated != stabilized {
        limited_by = Some(LimitedBy::Rate);
    }
    let desired = bounds.clamp(rated);
    if let Some(hit) = bound_hit(input, bounds, rated, desired) {
        limited_by = Some(hit);
    }
    if asked.is_none() {
        // The fallback itself is the error's consequence.
        limited_by = limited_by.or(Some(LimitedBy::Error));
    }

    Decision {
        desired,
        recommended,
        recommended_unclamped: raw,
        per_metric,
        limited_by,
        reason: format!("{what}: {}", describe_move(current, desired, limited_by)),
    }
}
