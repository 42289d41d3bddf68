//! The container's other jobs (SPEC 11): one-shot tasks, cron schedules and
//! hooks. Each file holds the pure decisions of its noun (what an ended
//! one-shot becomes, the next tick of a schedule, what a tick does while a
//! run is going) and the data the supervisor keeps for it; the supervisor
//! applies them (`supervisor/runs.rs`, `supervisor/hooks.rs`).
//!
//! Invariants:
//! - One-shot runs, scheduled runs and hooks are children like any other:
//!   the same spawner, reaper, process groups, user, environment and logs.
//! - Nothing here reads a clock: time comes in as arguments.

pub mod history;
pub mod hooks;
pub(crate) mod oneshot;
pub(crate) mod schedule;
