//! Tests that need a real component (curl, redis-server, prometheus, a PHP
//! binary, ...) call [`require`] first. Where the component is missing the
//! test reports itself skipped, with the reason, and returns early; under CI
//! (`CI` set to anything but `false`/`0`) a missing component is a failure,
//! because nothing may be skipped there (`.ci/run` installs them all).

use std::path::{Path, PathBuf};

/// True when running under CI, where skipping is not allowed.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI"), Ok(v) if !v.is_empty() && v != "false" && v != "0")
}

/// The full path of `program` on `PATH`, if any.
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Returns true when every program in `programs` is on `PATH`. Otherwise
/// prints `skipped: <test>: <program> is not installed` and returns false, or
/// panics under CI.
pub fn require(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| which(p).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!("{} not installed", missing.join(", "));
    skip(test, &reason)
}

/// Reports `test` skipped for `reason` (returns false), or panics under CI.
pub fn skip(test: &str, reason: &str) -> bool {
    if in_ci() {
        panic!("{test}: {reason}, and CI may not skip (.ci/run should have installed it)");
    }
    eprintln!("skipped: {test}: {reason}");
    false
}
