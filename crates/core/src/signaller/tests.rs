//! The signaller against real children that block SIGUSR1 and SIGUSR2:
//! a signal sent to their group stays pending, so `ShdPnd` in
//! /proc/PID/status tells exactly what was delivered, with no waiting.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use super::*;

/// A `sleep` leading its own process group, with SIGUSR1 and SIGUSR2
/// blocked (the mask survives `exec`).
fn blocking_child() -> Child {
    let mut cmd = Command::new("sleep");
    cmd.arg("60").process_group(0);
    // SAFETY: sigemptyset, sigaddset and sigprocmask are async-signal-safe
    // and touch only the child's own mask and stack.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot start sleep: {e}"),
    }
}

fn pid_of(child: &Child) -> i32 {
    i32::try_from(child.id()).unwrap_or(i32::MAX)
}

/// A registry, its signaller, and one blocking child with its pid.
fn setup() -> (Arc<ChildRegistry>, Signaller, Child, i32) {
    let registry = Arc::new(ChildRegistry::new());
    let signaller = Signaller::start(Arc::clone(&registry));
    let child = blocking_child();
    let pid = pid_of(&child);
    (registry, signaller, child, pid)
}

/// Signals pending for the whole process (what a group signal becomes).
fn shared_pending(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("ShdPnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

fn bit(sig: Signal) -> u64 {
    1 << (sig as i32 - 1)
}

// No reaper runs in the test harness, so nothing else waits for this child
// of the test; the lint guards the manager's own code.
#[allow(clippy::disallowed_methods)]
fn end(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_queued_burst_runs_before_the_forget_that_follows_it() {
    let (registry, signaller, child, pid) = setup();
    // As if reaped and its exit not yet handled: the pid may be anyone's.
    registry.mark_reaped(pid);
    // Long enough to go to the thread, then the supervisor's forget.
    signaller.burst(vec![(pid, Signal::SIGUSR1); INLINE_BURST + 1]);
    signaller.forget(pid);
    signaller.drain();
    assert!(!registry.is_reaped(pid), "the forget ran");
    assert_eq!(
        shared_pending(pid) & bit(Signal::SIGUSR1),
        0,
        "the burst ran before the forget, and was refused"
    );
    // Forgotten: the next burst reaches it.
    signaller.burst(vec![(pid, Signal::SIGUSR1)]);
    signaller.drain();
    assert_ne!(shared_pending(pid) & bit(Signal::SIGUSR1), 0);
    end(child);
}

#[test]
fn a_send_behind_a_burst_waits_for_it_and_reports_delivery() {
    let (registry, signaller, child, pid) = setup();
    let other = blocking_child();
    let other_pid = pid_of(&other);
    signaller.burst(vec![(pid, Signal::SIGUSR1); INLINE_BURST + 1]);
    assert!(signaller.send(Target::Group, pid, Signal::SIGUSR2));
    // The burst queued before it had gone out when it returned.
    let pending = shared_pending(pid);
    assert_ne!(pending & bit(Signal::SIGUSR1), 0);
    assert_ne!(pending & bit(Signal::SIGUSR2), 0);
    // A pid reaped and not yet forgotten is refused, and says so.
    registry.mark_reaped(other_pid);
    signaller.burst(vec![(pid, Signal::SIGUSR1); INLINE_BURST + 1]);
    assert!(!signaller.send(Target::Group, other_pid, Signal::SIGUSR2));
    assert_eq!(shared_pending(other_pid) & bit(Signal::SIGUSR2), 0);
    registry.forget(other_pid);
    end(child);
    end(other);
}

#[test]
fn a_small_burst_with_nothing_queued_goes_out_before_it_returns() {
    let (_registry, signaller, child, pid) = setup();
    signaller.burst(vec![(pid, Signal::SIGUSR1)]);
    assert_ne!(shared_pending(pid) & bit(Signal::SIGUSR1), 0);
    signaller.send_later(Target::Leftovers, pid, Signal::SIGUSR2);
    assert_ne!(shared_pending(pid) & bit(Signal::SIGUSR2), 0);
    end(child);
}
