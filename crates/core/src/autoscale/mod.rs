//! Autoscaling (SPEC 12): the policy as pure functions.
//!
//! `windows`: the time windows that move a process's min and max.

mod windows;

pub use windows::{active, effective_bounds, Bounds, Window, WindowConfig, WindowError};
