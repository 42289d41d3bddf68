//! SPEC §8: shutdown on SIGTERM/SIGINT/SIGQUIT in reverse dependency order,
//! per-process signal and timeout, SIGKILL after it, exit codes, a second
//! signal, forwarded SIGUSR1/SIGUSR2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use common::*;
use nix::sys::signal::Signal;

/// A worker that records the signals it gets in `$DIR/<name>.log` and exits
/// cleanly on TERM.
fn trapping_worker(name: &str) -> String {
    format!(
        r#"["sh", "-c", "trap 'echo term >> $DIR/{name}.log; exit 0' TERM; trap 'echo usr1 >> $DIR/{name}.log' USR1; trap 'echo usr2 >> $DIR/{name}.log' USR2; echo up >> $DIR/{name}.log; while true; do sleep 0.2; done"]"#
    )
}

#[test]
fn sigterm_stops_everything_and_exits_zero() {
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT] {
        let yaml = format!(
            "{TEST_GLOBALS}processes:\n  w:\n    command: {}\n    scale: 3\n",
            trapping_worker("w")
        );
        let mut m = Manager::start(&yaml);
        let pids = m.wait_running("w", 3);
        wait_for("all workers up", DEADLINE, || {
            (read(&m.path("w.log")).matches("up").count() == 3).then_some(())
        });
        m.signal(sig);
        let code = m.wait_exit(DEADLINE);
        assert_eq!(code, 0, "exit code after {sig}; stderr:\n{}", m.stderr());
        assert_eq!(read(&m.path("w.log")).matches("term").count(), 3);
        for (_, pid) in pids {
            assert!(!alive(pid), "instance {pid} survived the shutdown");
        }
    }
}

#[test]
fn shutdown_stops_dependents_before_their_dependencies() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  db:
    command: ["sh", "-c", "trap 'echo db-term >> $DIR/order.log; sleep 0.3; echo db-gone >> $DIR/order.log; exit 0' TERM; while true; do sleep 0.1; done"]
  web:
    depends_on: [db]
    scale: 2
    command: ["sh", "-c", "trap 'echo web-term >> $DIR/order.log; sleep 0.3; echo web-gone >> $DIR/order.log; exit 0' TERM; while true; do sleep 0.1; done"]
"#
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("db", 1);
    m.wait_running("web", 2);
    m.signal(Signal::SIGTERM);
    assert_eq!(m.wait_exit(DEADLINE), 0, "{}", m.stderr());
    let log = read(&m.path("order.log"));
    let lines: Vec<&str> = log.lines().collect();
    let first_db = lines
        .iter()
        .position(|l| *l == "db-term")
        .expect("db got TERM");
    let last_web = lines
        .iter()
        .rposition(|l| *l == "web-gone")
        .expect("web ended");
    assert!(
        last_web < first_db,
        "db was signalled before web had stopped: {lines:?}"
    );
    assert_eq!(lines.iter().filter(|l| **l == "web-term").count(), 2);
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_its_timeout_and_not_before() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  stubborn:
    command: ["sh", "-c", "trap 'echo got-term >> $DIR/s.log' TERM; while true; do sleep 0.1; done"]
    shutdown:
      timeout: 4
"#
    );
    let mut m = Manager::start(&yaml);
    let pid = m.wait_running("stubborn", 1)[0].1;
    m.signal(Signal::SIGTERM);
    wait_for("the child to see SIGTERM", DEADLINE, || {
        read(&m.path("s.log")).contains("got-term").then_some(())
    });
    // The grace period has only just begun: the child must still be there.
    assert!(alive(pid), "killed before its shutdown timeout");
    let code = m.wait_exit(DEADLINE);
    assert_eq!(code, 1, "a forced kill must make the exit code 1");
    assert!(!alive(pid));
    assert!(m.stderr().contains("SIGKILL"), "{}", m.stderr());
}

#[test]
fn a_per_process_stop_signal_is_used() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  quitter:
    command: ["sh", "-c", "trap 'echo got-quit >> $DIR/q.log; exit 0' QUIT; trap 'echo got-term >> $DIR/q.log; exit 0' TERM; while true; do sleep 0.1; done"]
    shutdown:
      signal: SIGQUIT
"#
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("quitter", 1);
    m.signal(Signal::SIGTERM);
    assert_eq!(m.wait_exit(DEADLINE), 0);
    assert_eq!(read(&m.path("q.log")).trim(), "got-quit");
}

#[test]
fn a_second_signal_kills_at_once() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  stubborn:
    command: ["sh", "-c", "trap 'echo got-term >> $DIR/s.log' TERM; while true; do sleep 0.1; done"]
    shutdown:
      timeout: 600
"#
    );
    let mut m = Manager::start(&yaml);
    let pid = m.wait_running("stubborn", 1)[0].1;
    m.signal(Signal::SIGTERM);
    wait_for("the child to see SIGTERM", DEADLINE, || {
        read(&m.path("s.log")).contains("got-term").then_some(())
    });
    m.signal(Signal::SIGINT);
    // Far less than the 600 s grace period.
    assert_eq!(m.wait_exit(DEADLINE), 1);
    assert!(!alive(pid));
}

#[test]
fn sigusr1_and_sigusr2_are_forwarded_to_every_instance() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:\n  fpm:\n    command: {}\n    scale: 2\n",
        trapping_worker("fpm")
    );
    let mut m = Manager::start(&yaml);
    let pids = m.wait_running("fpm", 2);
    wait_for("workers up", DEADLINE, || {
        (read(&m.path("fpm.log")).matches("up").count() == 2).then_some(())
    });
    m.signal(Signal::SIGUSR1);
    wait_for("USR1 at both instances", DEADLINE, || {
        (read(&m.path("fpm.log")).matches("usr1").count() == 2).then_some(())
    });
    m.signal(Signal::SIGUSR2);
    wait_for("USR2 at both instances", DEADLINE, || {
        (read(&m.path("fpm.log")).matches("usr2").count() == 2).then_some(())
    });
    // Forwarding is not a stop: the same instances keep running.
    assert_eq!(m.wait_running("fpm", 2), pids);
}

#[test]
fn forward_signals_picks_which_user_signals_a_process_gets() {
    // `plain` would die of USR1/USR2 (a shell without traps, as php -S or
    // redis-server do); `reopen` takes only USR1; `fpm` takes both.
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  fpm:
    command: {}
  reopen:
    command: {}
    forward_signals: [SIGUSR1]
  plain:
    command: ["sh", "-c", "echo up >> $DIR/plain.log; while true; do sleep 0.2; done"]
    forward_signals: []
"#,
        trapping_worker("fpm"),
        trapping_worker("reopen")
    );
    let mut m = Manager::start(&yaml);
    let plain = m.wait_running("plain", 1)[0].1;
    wait_for("all up", DEADLINE, || {
        (read(&m.path("fpm.log")).contains("up")
            && read(&m.path("reopen.log")).contains("up")
            && read(&m.path("plain.log")).contains("up"))
        .then_some(())
    });
    m.signal(Signal::SIGUSR1);
    m.signal(Signal::SIGUSR2);
    wait_for("USR1 and USR2 at fpm", DEADLINE, || {
        let log = read(&m.path("fpm.log"));
        (log.contains("usr1") && log.contains("usr2")).then_some(())
    });
    wait_for("USR1 at reopen", DEADLINE, || {
        read(&m.path("reopen.log")).contains("usr1").then_some(())
    });
    // A marker sent after both: once fpm logged it, the manager had long
    // passed on USR2 wherever it was going to (`plain` would be dead:
    // the default action ends it at delivery).
    m.signal(Signal::SIGUSR1);
    wait_for("the marker USR1 at fpm", DEADLINE, || {
        (read(&m.path("fpm.log")).matches("usr1").count() == 2).then_some(())
    });
    assert!(
        !read(&m.path("reopen.log")).contains("usr2"),
        "reopen takes USR1 only"
    );
    assert!(alive(plain), "plain got a signal it would die of");
    assert_eq!(m.process("plain").instances[0].pid, Some(plain));
    assert_eq!(m.process("plain").instances[0].restarts, 0);
}

#[test]
fn the_manager_exits_by_itself_when_nothing_is_left_to_run() {
    let ok = format!(
        "{TEST_GLOBALS}processes:\n  once:\n    command: [\"sh\", \"-c\", \"echo done\"]\n    restart: never\n    scale: 2\n"
    );
    let mut m = Manager::start(&ok);
    assert_eq!(m.wait_exit(DEADLINE), 0, "{}", m.stderr());

    let failing = format!(
        "{TEST_GLOBALS}processes:\n  good:\n    command: [\"true\"]\n    restart: never\n  bad:\n    command: [\"sh\", \"-c\", \"exit 3\"]\n    restart: never\n"
    );
    let mut m = Manager::start(&failing);
    assert_eq!(m.wait_exit(DEADLINE), 1, "{}", m.stderr());
}

#[test]
fn instances_die_with_a_killed_manager_also_after_a_user_switch() {
    let root = nix::unistd::Uid::effective().is_root();
    let user_line = if root { "    user: nobody\n" } else { "" };
    let yaml = format!(
        "{TEST_GLOBALS}processes:\n  plain:\n    command: [\"sleep\", \"1000\"]\n  switched:\n    command: [\"sleep\", \"1001\"]\n{user_line}"
    );
    let mut m = Manager::start(&yaml);
    let plain = m.wait_running("plain", 1)[0].1;
    let switched = m.wait_running("switched", 1)[0].1;
    // An abrupt end: no chance to stop anything.
    m.signal(Signal::SIGKILL);
    m.wait_exit(DEADLINE);
    wait_for("both instances gone", DEADLINE, || {
        (!alive(plain) && !alive(switched)).then_some(())
    });
}
