//! Black-box harness: runs the real `phpeek-pm` binary on a temp config,
//! with its stdout and stderr captured to files, and talks HTTP to it over
//! loopback. Every wait polls a condition with a generous deadline.
//!
//! * [`manager`]: start and stop the binary, its files and listeners.
//! * [`http`]: the one HTTP client; the API raw or decoded into wire types.
//! * [`wait`]: `wait_for` and typed wait predicates.
//! * [`cli`]: the binary as a command-line tool, with a deadline.
//! * [`procfs`]: /proc helpers.
//! * [`redis`]: a real Redis on a free port, and a tiny RESP client.
//! * [`php_stack`]: examples/php-stack as PID 1 of a pid namespace, and a
//!   load client.
//! * [`require`]: skip (or, under CI, fail) when a real component is missing.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods
)]

mod cli;
mod http;
mod manager;
mod php_stack;
mod procfs;
mod redis;
mod require;
mod wait;

pub use cli::*;
pub use http::*;
pub use manager::*;
pub use php_stack::*;
pub use procfs::*;
pub use redis::*;
pub use require::*;
pub use wait::*;

pub use phpeek_wire::{
    ActionResponse, ErrorResponse, Health, InstanceInfo, InstanceState, LogLine, LogsResponse,
    ProcessInfo, ProcessState, ReadyResponse, ReloadResponse, RolloutPhase, ScaleResponse,
};
