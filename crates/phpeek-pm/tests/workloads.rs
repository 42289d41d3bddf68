//! One-shot tasks, schedules and hooks (SPEC 11), run by the real binary
//! with real children: what the children write, what /proc shows, and what
//! the API and CLI answer.

mod common;

use std::path::Path;

use common::*;
use phpeek_wire::{RunInfo, RunResult, RunTrigger};

/// Nanoseconds since the epoch, as `date +%s%N` writes them.
fn stamps(path: &Path) -> Vec<u128> {
    read(path)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn runs(m: &mut Manager, name: &str) -> Vec<RunInfo> {
    m.get_as(&format!("/api/v1/processes/{name}/runs"))
}

#[test]
fn a_oneshot_gates_a_longrun_until_it_completed() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  migrate:
    type: oneshot
    command: ["sh", "-c", "sleep 0.5; date +%s%N > $DIR/migrate.end"]
  app:
    depends_on: [migrate]
    command: ["sh", "-c", "date +%s%N > $DIR/app.start; exec sleep 300"]
"#
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("app", 1);
    // Running means spawned: the shell writes its stamp a moment later.
    let start = wait_for("app wrote its start", DEADLINE, || {
        let s = stamps(&m.path("app.start"));
        (!s.is_empty()).then_some(s)
    });
    let end = stamps(&m.path("migrate.end"));
    assert_eq!((end.len(), start.len()), (1, 1));
    assert!(
        start[0] > end[0],
        "app started at {} before migrate ended at {}",
        start[0],
        end[0]
    );
    let migrate = m.process("migrate");
    assert_eq!(migrate.state, ProcessState::Completed);
    assert_eq!(migrate.kind, "oneshot");
    assert_eq!(migrate.instances[0].state, InstanceState::Completed);
    assert_eq!(migrate.instances[0].last_exit_code, Some(0));
    // Ready: a completed one-shot is fine.
    let (status, body) = m.get("/api/v1/ready");
    assert_eq!(status, 200, "{body}");
    let r = runs(&mut m, "migrate");
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].result, r[0].trigger),
        (RunResult::Success, RunTrigger::Start)
    );
}

#[test]
fn a_failing_oneshot_retries_then_fails_its_dependents_at_once() {
    let yaml = format!(
        r#"{TEST_GLOBALS}  dependency_timeout: 300s
processes:
  migrate:
    type: oneshot
    restart: on-failure
    max_restart_attempts: 2
    command: ["sh", "-c", "echo try >> $DIR/tries; exit 3"]
  app:
    depends_on: [migrate]
    command: ["sh", "-c", "touch $DIR/app.ran; exec sleep 300"]
"#
    );
    let mut m = Manager::start(&yaml);
    let app = m.wait_process("app", |p| p.state == ProcessState::Failed);
    let why = app.reason.unwrap_or_default();
    assert!(why.contains("migrate-1"), "{why}");
    assert_eq!(
        read(&m.path("tries")).lines().count(),
        3,
        "the run and 2 retries"
    );
    assert!(!m.path("app.ran").exists());
    let migrate = m.process("migrate");
    assert_eq!(migrate.instances[0].state, InstanceState::Failed);
    assert_eq!(runs(&mut m, "migrate").len(), 3);
    let (status, body) = m.get("/api/v1/ready");
    assert_eq!(status, 503, "{body}");
}

#[test]
fn on_failure_shutdown_exits_with_the_task_code() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  web:
    command: ["sleep", "300"]
  check:
    type: oneshot
    on_failure: shutdown
    command: ["sh", "-c", "sleep 0.5; exit 7"]
"#
    );
    let mut m = Manager::start(&yaml);
    assert_eq!(m.wait_exit(DEADLINE), 7);
    m.wait_stderr("on_failure: shutdown");
}

#[test]
fn a_config_of_only_oneshots_exits_0_when_they_end() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  a:
    type: oneshot
    scale: 2
    command: ["sh", "-c", "echo $PHPEEK_PM_INSTANCE_ID >> $DIR/done"]
"#
    );
    let mut m = Manager::start(&yaml);
    assert_eq!(m.wait_exit(DEADLINE), 0);
    let mut done: Vec<String> = read(&m.path("done")).lines().map(str::to_string).collect();
    done.sort();
    assert_eq!(done, ["a-1", "a-2"]);
}

#[test]
fn a_per_second_schedule_runs_once_per_tick() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  tick:
    command: ["sh", "-c", "date +%s%N >> $DIR/runs"]
    schedule: "*/1 * * * * *"
"#
    );
    let mut m = Manager::start(&yaml);
    let p = m.process("tick");
    assert_eq!(p.state, ProcessState::Scheduled);
    let sched = p.schedule.expect("a schedule object");
    assert_eq!(
        (sched.cron.as_str(), sched.timezone.as_str()),
        ("*/1 * * * * *", "UTC")
    );
    assert!(sched.next_run.is_some());
    let path = m.path("runs");
    wait_for("6 runs", DEADLINE, || {
        (stamps(&path).len() >= 6).then_some(())
    });
    let s = stamps(&path);
    // Once per tick: every run in a second of its own, none doubled.
    let seconds: Vec<u128> = s.iter().map(|t| t / 1_000_000_000).collect();
    for w in seconds.windows(2) {
        assert!(w[1] > w[0], "two runs in one second: {s:?}");
    }
    let span = seconds[5] - seconds[0];
    assert!((5..=6).contains(&span), "6 runs over {span} s: {s:?}");
    let r = wait_for("finished runs", DEADLINE, || {
        let r = runs(&mut m, "tick");
        (r.iter().filter(|r| r.result == RunResult::Success).count() >= 5).then_some(r)
    });
    assert!(r.iter().all(|r| r.trigger == RunTrigger::Schedule), "{r:?}");
    assert!(r.len() <= 10, "history keeps 10 by default");
    // Newest first.
    for w in r.windows(2) {
        assert!(w[0].started_at >= w[1].started_at, "{r:?}");
    }
}

#[test]
fn forbid_skips_ticks_while_a_run_is_going() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  slow:
    command: ["sh", "-c", "echo start >> $DIR/log; sleep 2.5; echo end >> $DIR/log"]
    schedule: "* * * * * *"
"#
    );
    let mut m = Manager::start(&yaml);
    let p = m.wait_process("slow", |p| {
        p.schedule.as_ref().is_some_and(|s| s.missed >= 2)
    });
    assert!(p.instances.len() <= 1, "{p:?}");
    // Never two runs at once: starts and ends alternate.
    let log = read(&m.path("log"));
    let mut open = 0;
    for l in log.lines() {
        open += if l == "start" { 1 } else { -1 };
        assert!((0..=1).contains(&open), "overlapping runs: {log}");
    }
    // A manual run is refused while one is going (or, between runs, starts).
    let (status, body) = m.post("/api/v1/processes/slow/run", "");
    assert!(status == 409 || status == 202, "{status} {body}");
}

#[test]
fn allow_runs_up_to_max_concurrent() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  par:
    command: ["sh", "-c", "echo $PHPEEK_PM_INSTANCE_ID >> $DIR/ids; exec sleep 3"]
    schedule:
      cron: "* * * * * *"
      concurrency: allow
      max_concurrent: 2
"#
    );
    let mut m = Manager::start(&yaml);
    let p = m.wait_process("par", |p| p.instances.len() == 2);
    let mut names: Vec<&str> = p.instances.iter().map(|i| i.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["par-1", "par-2"]);
    m.wait_process("par", |p| {
        p.schedule.as_ref().is_some_and(|s| s.missed >= 1)
    });
    for _ in 0..5 {
        let p = m.process("par");
        assert!(p.instances.len() <= 2, "{p:?}");
    }
}

#[test]
fn replace_stops_the_running_one_before_the_new_one_starts() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  rep:
    command: ["sh", "-c", "echo start >> $DIR/log; trap 'echo term >> $DIR/log; exit 0' TERM; while true; do sleep 0.1; done"]
    schedule:
      cron: "* * * * * *"
      concurrency: replace
"#
    );
    let m = Manager::start(&yaml);
    let path = m.path("log");
    wait_for("two replacements", DEADLINE, || {
        (read(&path).lines().filter(|l| *l == "term").count() >= 2).then_some(())
    });
    let log = read(&path);
    let lines: Vec<&str> = log.lines().collect();
    // start, term, start, term, start…: a new run only after the old ended.
    for (i, l) in lines.iter().enumerate() {
        let want = if i % 2 == 0 { "start" } else { "term" };
        assert_eq!(*l, want, "{log}");
    }
}

#[test]
fn a_run_past_its_timeout_is_stopped_with_its_group() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  hang:
    command: ["sh", "-c", "sleep 300 & echo $! > $DIR/child; sleep 300"]
    schedule:
      cron: "* * * * * *"
      timeout: 1s
      suspended: true
"#
    );
    let mut m = Manager::start(&yaml);
    let (status, body) = m.post("/api/v1/processes/hang/run", "");
    assert_eq!(status, 202, "{body}");
    let child_file = m.path("child");
    let child: i32 = wait_for("the grandchild's pid", DEADLINE, || {
        read(&child_file).trim().parse().ok()
    });
    let r = wait_for("a timed-out run", DEADLINE, || {
        runs(&mut m, "hang")
            .into_iter()
            .find(|r| r.result == RunResult::Timeout)
    });
    assert_eq!(r.trigger, RunTrigger::Manual);
    wait_for("the grandchild gone", DEADLINE, || {
        (!alive(child)).then_some(())
    });
}

#[test]
fn run_and_runs_by_cli_and_suspend_resume_by_api() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  job:
    command: ["sh", "-c", "echo hello from $PHPEEK_PM_INSTANCE_ID"]
    schedule:
      cron: "0 0 1 1 *"
      timezone: Europe/Amsterdam
      history: 2
"#
    );
    let mut m = Manager::start(&yaml);
    let api = m.api();
    let env = [("PHPEEK_PM_API_URL", api.as_str())];
    let dir = m.dir.path().to_path_buf();
    for i in 1..=3 {
        let out = run_cli(&["run", "job"], &dir, &env, &[]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("run initiated"), "{}", out.stdout);
        wait_for("the run to finish", DEADLINE, || {
            let r = runs(&mut m, "job");
            (r.iter().filter(|r| r.result == RunResult::Success).count() >= i.min(2)
                && r.iter().all(|r| r.result != RunResult::Running))
            .then_some(())
        });
    }
    let r = runs(&mut m, "job");
    assert_eq!(r.len(), 2, "history: 2 keeps two: {r:?}");
    assert_eq!(r[0].lines, ["hello from job-1"], "{r:?}");
    let table = run_cli(&["runs", "job"], &dir, &env, &[]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.starts_with("INSTANCE"), "{}", table.stdout);
    assert!(
        table.stdout.contains("success") && table.stdout.contains("manual"),
        "{}",
        table.stdout
    );
    let json = run_cli(&["runs", "job", "--json"], &dir, &env, &[]);
    let list: Vec<RunInfo> = decode(&json.stdout);
    assert_eq!(list.len(), 2);
    let status = run_cli(&["status"], &dir, &env, &[]);
    assert!(
        status.stdout.contains("SCHEDULE") && status.stdout.contains("Europe/Amsterdam"),
        "{}",
        status.stdout
    );
    // stop suspends, start resumes.
    let (code, body) = m.post("/api/v1/processes/job/stop", "");
    assert_eq!(code, 202, "{body}");
    let s = m.process("job").schedule.unwrap();
    assert!(s.suspended && s.next_run.is_none(), "{s:?}");
    m.post("/api/v1/processes/job/start", "");
    let s = m.process("job").schedule.unwrap();
    assert!(!s.suspended && s.next_run.is_some(), "{s:?}");
    // A longrun has no runs.
    let (code, _) = m.get("/api/v1/processes/nope/runs");
    assert_eq!(code, 404);
}

#[test]
fn schedule_metrics_are_exported() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  tick:
    command: ["true"]
    schedule: "* * * * * *"
"#
    );
    let mut m = Manager::start(&yaml);
    wait_for("a finished run", DEADLINE, || {
        runs(&mut m, "tick")
            .iter()
            .any(|r| r.result == RunResult::Success)
            .then_some(())
    });
    let url = m.metrics_url();
    let text = wait_for("schedule metrics", DEADLINE, || {
        let r = try_send("GET", &url, None, &[]).ok()?;
        r.body
            .contains("phpeek_pm_schedule_runs_total{name=\"tick\",result=\"success\"}")
            .then_some(r.body)
    });
    for metric in [
        "phpeek_pm_schedule_missed_total{name=\"tick\"}",
        "phpeek_pm_schedule_running{name=\"tick\"}",
        "phpeek_pm_schedule_last_run_timestamp_seconds{name=\"tick\"}",
        "phpeek_pm_schedule_last_success_timestamp_seconds{name=\"tick\"}",
        "phpeek_pm_schedule_next_run_timestamp_seconds{name=\"tick\"}",
        "phpeek_pm_schedule_run_duration_seconds_bucket{le=\"0.01\",name=\"tick\"}",
        "phpeek_pm_schedule_run_duration_seconds_count{name=\"tick\"}",
    ] {
        assert!(text.contains(metric), "{metric} missing:\n{text}");
    }
}

#[test]
fn hooks_run_in_order_around_starts_and_stops() {
    let yaml = format!(
        r#"{TEST_GLOBALS}  hooks:
    pre_start: [{{ command: ["sh", "-c", "echo global-pre-start >> $DIR/order; echo warming"] }}]
    post_stop: [{{ command: ["sh", "-c", "echo global-post-stop >> $DIR/order"] }}]
processes:
  web:
    command: ["sh", "-c", "echo web-start >> $DIR/order; trap 'echo web-term >> $DIR/order; exit 0' TERM; while true; do sleep 0.1; done"]
    hooks:
      pre_start: [{{ command: ["sh", "-c", "echo pre-start-$PHPEEK_PM_INSTANCE_ID >> $DIR/order"] }}]
      pre_stop: [{{ command: ["sh", "-c", "echo pre-stop-$PHPEEK_PM_INSTANCE_ID >> $DIR/order; echo draining"] }}]
      post_stop: [{{ command: ["sh", "-c", "echo post-stop-$PHPEEK_PM_INSTANCE_ID >> $DIR/order"] }}]
"#
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("web", 1);
    let order = m.path("order");
    wait_for("web started", DEADLINE, || {
        read(&order).contains("web-start").then_some(())
    });
    m.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(m.wait_exit(DEADLINE), 0);
    let got: Vec<String> = read(&order).lines().map(str::to_string).collect();
    assert_eq!(
        got,
        [
            "global-pre-start",
            "pre-start-web-1",
            "web-start",
            "pre-stop-web-1",
            "web-term",
            "post-stop-web-1",
            "global-post-stop"
        ]
    );
    let out = m.stdout();
    assert!(out.contains("[global:pre_start] warming"), "{out}");
    assert!(out.contains("[web-1:pre_stop] draining"), "{out}");
}

#[test]
fn a_failing_global_pre_start_exits_1_before_anything_starts() {
    let yaml = format!(
        r#"{TEST_GLOBALS}  hooks:
    pre_start: [{{ command: ["sh", "-c", "echo nope >&2; exit 4"], retries: 1 }}]
processes:
  web:
    command: ["sh", "-c", "touch $DIR/web.ran; exec sleep 300"]
"#
    );
    let mut m = Manager::start(&yaml);
    assert_eq!(m.wait_exit(DEADLINE), 1);
    assert!(!m.path("web.ran").exists(), "web must not start");
    let err = m.stderr();
    assert!(err.contains("pre_start"), "{err}");
    assert_eq!(
        err.matches("[global:pre_start] nope").count(),
        2,
        "tried twice:\n{err}"
    );
}

#[test]
fn a_pre_start_hook_past_its_timeout_is_a_start_failure() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  web:
    command: ["sh", "-c", "touch $DIR/web.ran; exec sleep 300"]
    hooks:
      pre_start: [{{ command: ["sleep", "30"], timeout: 300ms }}]
"#
    );
    let mut m = Manager::start(&yaml);
    let i = m.wait_instance("web-1", |i| {
        i.reason.as_deref().unwrap_or("").contains("did not finish")
    });
    assert_ne!(i.state, InstanceState::Running);
    assert!(!m.path("web.ran").exists());
    let url = m.metrics_url();
    let text = wait_for("hook metrics", DEADLINE, || {
        let r = try_send("GET", &url, None, &[]).ok()?;
        r.body
            .contains(
                "phpeek_pm_hook_runs_total{name=\"web\",hook=\"pre_start\",result=\"timeout\"}",
            )
            .then_some(r.body)
    });
    assert!(text.contains("phpeek_pm_hook_runs_total"), "{text}");
}

#[test]
fn initial_state_stopped_waits_for_a_start() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  web:
    command: ["sleep", "300"]
  extra:
    command: ["sleep", "300"]
    scale: 2
    initial_state: stopped
"#
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("web", 1);
    assert_eq!(m.process("extra").instances.len(), 0);
    let (code, body) = m.post("/api/v1/processes/extra/start", "");
    assert_eq!(code, 202, "{body}");
    m.wait_running("extra", 2);
}

#[test]
fn a_running_oneshot_makes_the_manager_not_ready() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  warm:
    type: oneshot
    command: ["sleep", "300"]
"#
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("warm", 1);
    let (status, body) = m.get("/api/v1/ready");
    assert_eq!(status, 503);
    assert!(body.contains("warm-1 is running (one-shot)"), "{body}");
}

#[test]
fn the_laravel_example_loads() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/laravel.yaml");
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(
        &["-c", example.to_str().unwrap(), "check-config"],
        dir.path(),
        &[],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}
