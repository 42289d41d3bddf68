//! Built-in variables `CPU_COUNT` and `MEMORY_LIMIT_MB`.
//!
//! * `CPU_COUNT`: ceil(cgroup CPU quota / period) (cgroup v2 `cpu.max`, else
//!   v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), at least 1 and at most the
//!   number of CPUs this process may run on (a quota of 8 CPUs on a 2-CPU
//!   machine still gives 2 CPUs of run time). Without a quota: the CPUs of
//!   the scheduler affinity mask (`std::thread::available_parallelism`).
//! * `MEMORY_LIMIT_MB`: the cgroup memory limit (v2 `memory.max`, else v1
//!   `memory.limit_in_bytes`) in MiB, rounded down; `max`, zero and values
//!   of 1 PiB or more (v1 reports "no limit" as a huge number) count as no
//!   limit. A limit above physical memory is capped to physical memory.
//!   Without a limit: physical memory (`sysconf`) in MiB.
//!
//! The file parsers are pure functions, tested below.

use std::collections::HashMap;
use std::path::Path;

const MIB: u64 = 1024 * 1024;
/// Limits at or above this are treated as "no limit" (1 PiB).
const NO_LIMIT_ABOVE: u64 = 1 << 50;

/// CPUs from a cgroup v2 `cpu.max` line (`"200000 100000"`, `"max 100000"`).
pub(crate) fn cpus_from_cpu_max(content: &str) -> Option<u64> {
    let mut parts = content.split_whitespace();
    let quota = parts.next()?;
    let period = parts.next().unwrap_or("100000");
    if quota == "max" {
        return None;
    }
    cpus_from_quota(quota.parse().ok()?, period.parse().ok()?)
}

/// CPUs from cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` contents.
pub(crate) fn cpus_from_cfs(quota: &str, period: &str) -> Option<u64> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: i64 = period.trim().parse().ok()?;
    if quota <= 0 || period <= 0 {
        return None;
    }
    cpus_from_quota(quota as u64, period as u64)
}

fn cpus_from_quota(quota: u64, period: u64) -> Option<u64> {
    if quota == 0 || period == 0 {
        return None;
    }
    Some(quota.div_ceil(period).max(1))
}

/// Bytes from cgroup v2 `memory.max` or v1 `memory.limit_in_bytes`.
pub(crate) fn memory_limit_bytes(content: &str) -> Option<u64> {
    let s = content.trim();
    if s == "max" {
        return None;
    }
    let bytes: u64 = s.parse().ok()?;
    (bytes > 0 && bytes < NO_LIMIT_ABOVE).then_some(bytes)
}

/// The effective CPU count from an optional quota and the affinity count.
pub(crate) fn cpu_count(quota_cpus: Option<u64>, affinity: u64) -> u64 {
    let affinity = affinity.max(1);
    match quota_cpus {
        Some(q) => q.clamp(1, affinity),
        None => affinity,
    }
}

/// The effective memory in MiB from an optional cgroup limit and physical memory.
pub(crate) fn memory_mb(limit: Option<u64>, physical: Option<u64>) -> Option<u64> {
    let bytes = match (limit, physical) {
        (Some(l), Some(p)) => l.min(p),
        (Some(l), None) => l,
        (None, Some(p)) => p,
        (None, None) => return None,
    };
    Some(bytes / MIB)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(Path::new(path)).ok()
}

fn cgroup_cpus() -> Option<u64> {
    if let Some(c) = read("/sys/fs/cgroup/cpu.max") {
        return cpus_from_cpu_max(&c);
    }
    for dir in ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] {
        if let (Some(q), Some(p)) = (
            read(&format!("{dir}/cpu.cfs_quota_us")),
            read(&format!("{dir}/cpu.cfs_period_us")),
        ) {
            return cpus_from_cfs(&q, &p);
        }
    }
    None
}

fn cgroup_memory() -> Option<u64> {
    if let Some(c) = read("/sys/fs/cgroup/memory.max") {
        return memory_limit_bytes(&c);
    }
    read("/sys/fs/cgroup/memory/memory.limit_in_bytes").and_then(|c| memory_limit_bytes(&c))
}

fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf only reads system configuration; no pointers involved.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    // SAFETY: as above.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if pages <= 0 || page_size <= 0 {
        return None;
    }
    (pages as u64).checked_mul(page_size as u64)
}

fn affinity_cpus() -> u64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
}

/// Adds `CPU_COUNT` and `MEMORY_LIMIT_MB` to `vars` when absent.
pub(crate) fn add_builtins(vars: &mut HashMap<String, String>) {
    if !vars.contains_key("CPU_COUNT") {
        let n = cpu_count(cgroup_cpus(), affinity_cpus());
        vars.insert("CPU_COUNT".to_string(), n.to_string());
    }
    if !vars.contains_key("MEMORY_LIMIT_MB") {
        if let Some(mb) = memory_mb(cgroup_memory(), physical_memory()) {
            vars.insert("MEMORY_LIMIT_MB".to_string(), mb.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_v2_cpu() {
        assert_eq!(cpus_from_cpu_max("max 100000\n"), None);
        assert_eq!(cpus_from_cpu_max("200000 100000\n"), Some(2));
        assert_eq!(cpus_from_cpu_max("150000 100000"), Some(2));
        assert_eq!(cpus_from_cpu_max("50000 100000"), Some(1));
        assert_eq!(cpus_from_cpu_max("1000 100000"), Some(1));
        assert_eq!(cpus_from_cpu_max("400000"), Some(4));
        assert_eq!(cpus_from_cpu_max(""), None);
        assert_eq!(cpus_from_cpu_max("x 100000"), None);
        assert_eq!(cpus_from_cpu_max("100000 0"), None);
    }

    #[test]
    fn cgroup_v1_cpu() {
        assert_eq!(cpus_from_cfs("-1\n", "100000\n"), None);
        assert_eq!(cpus_from_cfs("300000", "100000"), Some(3));
        assert_eq!(cpus_from_cfs("250000", "100000"), Some(3));
        assert_eq!(cpus_from_cfs("garbage", "100000"), None);
        assert_eq!(cpus_from_cfs("100000", "0"), None);
    }

    #[test]
    fn memory() {
        assert_eq!(memory_limit_bytes("max\n"), None);
        assert_eq!(memory_limit_bytes("536870912\n"), Some(512 * MIB));
        assert_eq!(memory_limit_bytes("9223372036854771712"), None);
        assert_eq!(memory_limit_bytes("0"), None);
        assert_eq!(memory_limit_bytes("nope"), None);
        assert_eq!(memory_mb(Some(512 * MIB), Some(8192 * MIB)), Some(512));
        assert_eq!(memory_mb(Some(16384 * MIB), Some(8192 * MIB)), Some(8192));
        assert_eq!(memory_mb(None, Some(8192 * MIB + 5)), Some(8192));
        assert_eq!(memory_mb(None, None), None);
    }

    #[test]
    fn cpu_count_rules() {
        assert_eq!(cpu_count(Some(2), 8), 2);
        assert_eq!(cpu_count(Some(8), 2), 2);
        assert_eq!(cpu_count(None, 4), 4);
        assert_eq!(cpu_count(Some(0), 4), 1);
        assert_eq!(cpu_count(None, 0), 1);
    }

    #[test]
    fn builtins_are_added_only_when_absent() {
        let mut vars = HashMap::new();
        vars.insert("CPU_COUNT".to_string(), "7".to_string());
        add_builtins(&mut vars);
        assert_eq!(vars.get("CPU_COUNT").map(String::as_str), Some("7"));
        let mb: u64 = vars
            .get("MEMORY_LIMIT_MB")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(mb > 0);
        let mut empty = HashMap::new();
        add_builtins(&mut empty);
        let cpus: u64 = empty
            .get("CPU_COUNT")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(cpus >= 1);
    }
}
