#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! The manager as PID 1 (in a fresh pid namespace) and as a child
//! subreaper: orphans are adopted and reaped, no zombie lingers.

mod common;
use common::*;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A child that keeps making orphans: each `(sleep 0.3 &)` subshell exits at
/// once and leaves its sleep behind, which the kernel hands to the nearest
/// subreaper (or the namespace's init). Writes `burst-done` when finished.
const ORPHANER: &str = r#"
d="$(dirname "$0")"
i=0
while [ $i -lt 30 ]; do
  (sleep 0.3 &)
  sleep 0.1
  i=$((i + 1))
done
touch "$d/burst-done"
exec sleep 1000
"#;

/// The innermost pid of a process (its pid in its own pid namespace).
fn inner_pid(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

fn unshare_path() -> Option<&'static str> {
    ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Watches the manager's children while the orphaner runs: returns whether
/// a process other than the instances was seen as the manager's child.
/// Then waits until the manager's only children are its instances (every
/// orphan exited and was reaped; no zombie left).
fn orphans_adopted_and_reaped(m: &mut Manager, manager: i32) -> bool {
    // The API reports pids as the manager sees them (inside its namespace);
    // map them to host pids through NSpid.
    let api_pid = m.wait_running("orphaner", 1)[0].1;
    let instance_pid = wait_for(
        "the instance among the manager's children",
        DEADLINE,
        || {
            children_of(manager)
                .into_iter()
                .map(|k| k.pid)
                .find(|&p| inner_pid(p) == Some(api_pid))
        },
    );
    let instances: HashSet<i32> = [instance_pid].into();
    let done = m.path("burst-done");
    let mut adopted = HashSet::new();
    let mut max_zombies = 0;
    wait_for(
        "the orphan burst to finish",
        Duration::from_secs(120),
        || {
            let kids = children_of(manager);
            max_zombies = max_zombies.max(kids.iter().filter(|k| k.state == 'Z').count());
            for k in kids {
                if !instances.contains(&k.pid) {
                    adopted.insert(k.pid);
                }
            }
            done.exists().then_some(())
        },
    );
    println!(
        "adopted orphans seen: {}, most zombies at once: {max_zombies}",
        adopted.len()
    );
    let mut last = Vec::new();
    let end = std::time::Instant::now() + DEADLINE;
    let leftover = loop {
        let kids = children_of(manager);
        if kids.iter().all(|k| k.pid == instance_pid) {
            break kids;
        }
        assert!(
            std::time::Instant::now() < end,
            "orphans not reaped within {DEADLINE:?}: children of the manager {manager}: {last:?} (instance {instance_pid})"
        );
        last = kids;
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        leftover.iter().all(|k| k.state != 'Z'),
        "zombies: {leftover:?}"
    );
    !adopted.is_empty()
}

#[test]
fn as_pid1_in_a_pid_namespace_reaps_orphans_and_exits_cleanly_on_sigterm() {
    if !is_root() {
        skip("pid1::as_pid1", "needs root for a pid namespace");
        return;
    }
    let Some(unshare) = unshare_path() else {
        skip("pid1::as_pid1", "no unshare binary");
        return;
    };
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  orphaner:
    command: [\"$DIR/orphaner.sh\"]
"
    );
    let mut m = Manager::start_wrapped(
        &yaml,
        &[unshare, "--fork", "--kill-child", "--pid", "--mount-proc"],
        |d| {
            script(d, "orphaner.sh", ORPHANER);
        },
    );
    let unshare_pid = m.pid();
    let manager = wait_for("the manager under unshare", DEADLINE, || {
        children_of(unshare_pid).first().map(|s| s.pid)
    });
    assert_eq!(inner_pid(manager), Some(1), "the manager is PID 1 inside");

    let adopted = orphans_adopted_and_reaped(&mut m, manager);
    assert!(adopted, "no orphan was ever re-parented to the manager");

    kill(Pid::from_raw(manager), Signal::SIGTERM).unwrap();
    let code = m.wait_exit(DEADLINE);
    assert_eq!(
        code,
        0,
        "manager as PID 1 exits 0 on SIGTERM\nstderr:\n{}",
        m.stderr()
    );
}

#[test]
fn as_a_subreaper_adopts_and_reaps_grandchildren() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  orphaner:
    command: [\"$DIR/orphaner.sh\"]
"
    );
    let mut m = Manager::start_with(&yaml, &[], |d| {
        script(d, "orphaner.sh", ORPHANER);
    });
    let manager = m.pid();
    let adopted = orphans_adopted_and_reaped(&mut m, manager);
    assert!(
        adopted,
        "orphans were not re-parented to the manager (not a child subreaper?)"
    );
    assert!(m.running(), "the manager keeps running");
}

/// SIGCHLD and the manager's own signals reach it only through its reaper
/// thread's `sigwait`: every other thread blocks them, including threads
/// that libraries start on their own (the allocator's background thread).
/// A thread that left SIGCHLD open could take it and leave exits unreaped
/// until the next one; one that left SIGTERM open would die of it.
#[test]
fn only_the_reaper_thread_accepts_sigchld() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:\n  w:\n    command: [\"sleep\", \"3600\"]\n    scale: 2\n"
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("w", 2);
    let task_dir = format!("/proc/{}/task", m.pid());
    let threads: Vec<(String, u64)> = std::fs::read_dir(&task_dir)
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let dir = t.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let blocked = status
                .lines()
                .find_map(|l| l.strip_prefix("SigBlk:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())?;
            Some((comm.trim().to_string(), blocked))
        })
        .collect();
    assert!(threads.len() > 2, "threads of the manager: {threads:?}");
    let taken = [
        libc::SIGCHLD,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ]
    .iter()
    .fold(0u64, |bits, s| bits | 1u64 << (s - 1));
    let open: Vec<&str> = threads
        .iter()
        .filter(|(_, blocked)| blocked & taken != taken)
        .map(|(comm, _)| comm.as_str())
        .collect();
    // The reaper shows them open only while it waits in sigwait, which is
    // all the time it is not reaping; it may be between waits.
    assert!(
        open.iter().all(|c| *c == "reaper"),
        "threads that accept SIGCHLD or a manager signal: {open:?} (all: {threads:?})"
    );
    assert!(
        threads.iter().any(|(c, _)| c == "jemalloc_bg_thd"),
        "the allocator's background thread is running: {threads:?}"
    );
    m.signal(Signal::SIGTERM);
    assert_eq!(m.wait_exit(DEADLINE), 0, "stderr:\n{}", m.stderr());
}
