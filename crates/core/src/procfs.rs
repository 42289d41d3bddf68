//! CPU and memory of instances, read from /proc at scrape time.
//!
//! Every instance leads its own session, so its process tree is the set of
//! processes whose session id is the instance's pid (descendants that start
//! a session of their own are not counted).

use std::collections::HashMap;

/// Usage of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User + system CPU time in seconds.
    pub cpu_seconds: f64,
    /// Resident memory in bytes.
    pub rss_bytes: u64,
}

/// Usage summed per session id, for every process visible in /proc.
pub fn usage_by_session() -> HashMap<i32, Usage> {
    let mut out: HashMap<i32, Usage> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue;
        };
        if let Some((sid, cpu_ticks, rss_pages)) = parse_stat(&stat) {
            let u = out.entry(sid).or_default();
            u.cpu_seconds += cpu_ticks as f64 / ticks;
            u.rss_bytes += rss_pages.saturating_mul(page);
        }
    }
    out
}

/// (session id, utime + stime in ticks, rss in pages) from a
/// `/proc/<pid>/stat` line. The command name may contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<(i32, u64, u64)> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) pgrp(2) session(3) ... utime(11)
    // stime(12) ... rss(21).
    let sid = fields.get(3)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let rss: i64 = fields.get(21)?.parse().ok()?;
    Some((sid, utime + stime, u64::try_from(rss).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parens() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 12345 1000000 250 18446744073709551615";
        assert_eq!(parse_stat(line), Some((1234, 10, 250)));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_stat("nonsense"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn sees_this_process() {
        let me = nix::unistd::getsid(None).map(|s| s.as_raw()).unwrap_or(-1);
        let usage = usage_by_session();
        assert!(usage.get(&me).is_some_and(|u| u.rss_bytes > 0));
    }
}
