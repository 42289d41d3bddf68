//! SPEC §3: restart policies, backoff, max_restart_attempts, start order by
//! depends_on, a command that cannot start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use common::*;

/// A child that appends a line per run to `$DIR/<file>` and exits `code`
/// after a short while.
fn runs_then_exits(file: &str, code: i32) -> String {
    format!(r#"["sh", "-c", "echo run >> $DIR/{file}; sleep 0.2; exit {code}"]"#)
}

#[test]
fn always_restarts_on_any_exit_and_counts_restarts() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:\n  w:\n    command: {}\n    restart: always\n",
        runs_then_exits("runs", 0)
    );
    let mut m = Manager::start(&yaml);
    wait_for("three runs", DEADLINE, || {
        (read(&m.path("runs")).lines().count() >= 3).then_some(())
    });
    let i = m.wait_instance("w-1", |i| i.restarts >= 2);
    assert_eq!(i.name, "w-1");
    let metrics = http("GET", &m.metrics_url(), None, None).1;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("phpeek_pm_process_restarts_total{")
                && l.contains("reason=\"exit\"")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[test]
fn on_failure_restarts_only_failures() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:\n  ok:\n    command: {}\n    restart: on-failure\n  bad:\n    command: {}\n    restart: on-failure\n",
        runs_then_exits("ok-runs", 0),
        runs_then_exits("bad-runs", 7)
    );
    let mut m = Manager::start(&yaml);
    wait_for("bad restarted twice", DEADLINE, || {
        (read(&m.path("bad-runs")).lines().count() >= 3).then_some(())
    });
    let ok = m.wait_instance("ok-1", |i| i.state == InstanceState::Exited);
    assert_eq!(ok.last_exit_code, Some(0));
    assert_eq!(ok.pid, None);
    assert_eq!(read(&m.path("ok-runs")).lines().count(), 1);
}

#[test]
fn never_leaves_an_exited_instance_listed() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:\n  once:\n    command: {}\n    restart: never\n  keep:\n    command: [\"sleep\", \"300\"]\n",
        runs_then_exits("runs", 4)
    );
    let mut m = Manager::start(&yaml);
    let i = m.wait_instance("once-1", |i| i.state == InstanceState::Exited);
    assert_eq!(i.last_exit_code, Some(4));
    assert_eq!(i.restarts, 0);
    assert_eq!(read(&m.path("runs")).lines().count(), 1);
    // The other process keeps the manager alive.
    m.wait_running("keep", 1);
}

#[test]
fn max_restart_attempts_ends_in_failed() {
    let yaml = format!(
        "{TEST_GLOBALS}  max_restart_attempts: 2\nprocesses:\n  crashy:\n    command: [\"sh\", \"-c\", \"echo run >> $DIR/runs; exit 1\"]\n  keep:\n    command: [\"sleep\", \"300\"]\n"
    );
    let mut m = Manager::start(&yaml);
    let i = m.wait_instance("crashy-1", |i| i.state == InstanceState::Failed);
    // The first run plus two restarts.
    assert_eq!(read(&m.path("runs")).lines().count(), 3);
    assert_eq!(i.restarts, 2);
    assert!(
        i.reason.as_deref().unwrap_or("").contains("gave up"),
        "{i:?}"
    );
    // Failed stays failed: still three runs after the manager had time to act.
    let p = m.process("crashy");
    assert_eq!(p.state, ProcessState::Failed);
    assert_eq!(read(&m.path("runs")).lines().count(), 3);
    // Until started by request.
    let (status, body) = m.post("/api/v1/processes/crashy-1/start", "");
    assert_eq!(status, 202, "{body}");
    wait_for("a fourth run", DEADLINE, || {
        (read(&m.path("runs")).lines().count() >= 4).then_some(())
    });
}

#[test]
fn crashes_back_off_before_restarting() {
    let yaml =
        format!("{TEST_GLOBALS}processes:\n  crashy:\n    command: [\"sh\", \"-c\", \"exit 1\"]\n")
            .replace(
                "restart_backoff_initial: 100ms",
                "restart_backoff_initial: 2s",
            )
            .replace("restart_backoff_max: 1s", "restart_backoff_max: 30s");
    let mut m = Manager::start(&yaml);
    let i = m.wait_instance("crashy-1", |i| i.state == InstanceState::Backoff);
    assert!(
        i.reason.as_deref().unwrap_or("").contains("restarting in"),
        "{i:?}"
    );
    assert_eq!(i.last_exit_code, Some(1));
}

#[test]
fn a_command_that_cannot_start_does_not_stop_the_others() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:\n  broken:\n    command: [\"/nonexistent/program\"]\n  fine:\n    command: [\"sleep\", \"300\"]\n    scale: 2\n"
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("fine", 2);
    let i = m.wait_instance("broken-1", |i| {
        matches!(i.state, InstanceState::Backoff | InstanceState::Failed)
    });
    assert!(
        i.reason
            .as_deref()
            .unwrap_or("")
            .contains("/nonexistent/program"),
        "{i:?}"
    );
    m.wait_stderr("/nonexistent/program");
    assert!(alive(m.pid()));
}

#[test]
fn dependents_start_after_their_dependencies_run() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  app:
    depends_on: [cache, db]
    command: ["sleep", "300"]
  db:
    command: ["sleep", "300"]
  cache:
    scale: 2
    command: ["sleep", "300"]
"#
    );
    let mut m = Manager::start(&yaml);
    // At no point may app have an instance while a dependency is not fully
    // running.
    let app = wait_for("app running", DEADLINE, || {
        let all = m.instances();
        let app: Vec<&InstanceInfo> = all.iter().filter(|i| i.process == "app").collect();
        if !app.is_empty() {
            let deps: Vec<&InstanceInfo> = all
                .iter()
                .filter(|i| i.process == "db" || i.process == "cache")
                .collect();
            assert_eq!(
                deps.len(),
                3,
                "app started before its dependencies: {all:?}"
            );
            assert!(
                deps.iter().all(|d| d.state == InstanceState::Running),
                "app started while a dependency was not running: {all:?}"
            );
        }
        let a = app.first()?;
        (a.state == InstanceState::Running).then(|| (*a).clone())
    });
    // Spawned strictly after every dependency (pids are handed out in
    // increasing order).
    let app_pid = app.pid.unwrap();
    for i in m.instances() {
        if i.process != "app" {
            assert!(i.pid.unwrap() < app_pid, "{i:?} vs app pid {app_pid}");
        }
    }
}

#[test]
fn a_process_waiting_on_a_dependency_says_so() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  never-up:
    command: ["/nonexistent/db"]
  app:
    depends_on: [never-up]
    command: ["sleep", "300"]
"#
    );
    let mut m = Manager::start(&yaml);
    let p = m.wait_process("app", |p| p.state == ProcessState::Waiting);
    assert!(
        p.reason.as_deref().unwrap_or("").contains("never-up"),
        "{p:?}"
    );
    assert_eq!(p.instances.len(), 0);
}

#[test]
fn a_dependency_that_never_gets_ready_fails_the_dependent_after_the_timeout() {
    let yaml = format!(
        "{TEST_GLOBALS}  dependency_timeout: 1s\nprocesses:\n  never-up:\n    command: [\"/nonexistent/db\"]\n  app:\n    depends_on: [never-up]\n    command: [\"sleep\", \"300\"]\n"
    );
    let mut m = Manager::start(&yaml);
    let p = m.wait_process("app", |p| p.state == ProcessState::Failed);
    assert!(
        p.reason.as_deref().unwrap_or("").contains("never-up"),
        "{p:?}"
    );
}

#[test]
fn a_working_dir_the_user_cannot_enter_is_a_start_failure() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root to switch users");
        return;
    }
    let yaml = format!(
        "{TEST_GLOBALS}processes:\n  keep:\n    command: [\"sleep\", \"300\"]\n  locked:\n    command: [\"sleep\", \"300\"]\n    user: nobody\n    working_dir: $DIR/private\n    restart: never\n"
    );
    let mut m = Manager::start_with(&yaml, &[], |dir| {
        use std::os::unix::fs::PermissionsExt;
        let private = dir.join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        // The temp dir itself must be passable for nobody to reach `private`.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    });
    let i = m.wait_instance("locked-1", |i| i.state == InstanceState::Failed);
    assert!(
        i.reason.as_deref().unwrap_or("").contains("working_dir"),
        "{i:?}"
    );
}
