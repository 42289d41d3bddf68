//! Autoscaling (SPEC 12): the policy as pure functions.
//!
//! Each `interval` the owner of a process's autoscaler samples its
//! metrics, then calls, with no I/O and no clock read in here:
//!
//! 1. [`effective_bounds`]`(min, max, &windows, wall_now)`: the min and max
//!    the active time windows allow now;
//! 2. [`decide`]`(&Input { config, current, samples, bounds, now }, &mut
//!    state)`: the [`Decision`] (desired count, recommendation, per-metric
//!    counts, what limited it, a log line);
//! 3. if it acts (not `dry_run`) and `desired != current`: scale, then
//!    [`PolicyState::record_change`]`(now, current, desired)` so the rate
//!    limits see it.
//!
//! The types here are plain (no config-crate types): the config layer maps
//! its YAML onto [`PolicyConfig`] and [`WindowConfig`].
//!
//! Invariants (see each file for the details):
//! - The desired count is always within the effective bounds, and those
//!   within the process's own `[min, max]`, with `min <= max`.
//! - A failed metric never causes a scale-down; an interval where every
//!   metric failed holds the count, and after [`FALLBACK_AFTER`] such
//!   intervals in a row the configured fallback applies.
//! - With no metrics the desired count is the effective min (pure
//!   time-based scaling), at once: no stabilization or rate limit.
//! - Stabilization and rate limits follow the Kubernetes HPA; bounds are
//!   applied last, so a window's min or max takes effect at once.
//! - Nothing panics, whatever the samples (NaN, infinities, negatives are
//!   failed samples) or the numbers in the config.

pub mod idle;
mod policy;
pub mod sources;
mod windows;

#[cfg(test)]
mod tests;

pub use policy::{
    decide, Behavior, Decision, Input, LimitedBy, MetricDesire, PolicyConfig, PolicyState, Sample,
    SampleError, Step, StepRow, Target, DEFAULT_TOLERANCE, FALLBACK_AFTER,
};
pub use sources::{sample, CpuTracker, SampleContext, SampleFailure, SourceKit};
pub use windows::{active, effective_bounds, Bounds, Window, WindowConfig, WindowError};
