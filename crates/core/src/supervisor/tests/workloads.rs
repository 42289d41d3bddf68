//! One-shots, schedules, hooks and `initial_state` (SPEC 11) through the
//! fake effects with paused time.

use super::*;
use phpeek_wire::{RunResult, RunTrigger};

fn sig_term() -> Signal {
    Signal::SIGTERM
}

const TASKS: &str = "
global:
  restart_backoff_initial: 1s
  restart_backoff_max: 4s
processes:
  migrate:
    type: oneshot
    command: [\"migrate\"]
  app:
    command: [\"serve\"]
    depends_on: [migrate]
";

#[tokio::test(start_paused = true)]
async fn a_oneshot_gates_its_dependent_until_it_completed() {
    let mut rig = Rig::new(TASKS);
    assert_eq!(rig.spawns_of("app").len(), 0, "app waits for migrate");
    rig.spawn_all();
    assert_eq!(rig.state("migrate-1"), InstanceState::Running);
    assert_eq!(rig.process_state("app"), ProcessState::Waiting);
    rig.exit("migrate-1", 0);
    assert_eq!(rig.state("migrate-1"), InstanceState::Completed);
    assert_eq!(rig.process_state("migrate"), ProcessState::Completed);
    assert_eq!(rig.spawns_of("app").len(), 1);
    rig.spawn_all();
    assert_eq!(rig.state("app-1"), InstanceState::Running);
    // A completed one-shot is never restarted by policy, and it is listed.
    rig.advance(secs(10)).await;
    assert_eq!(rig.spawns_of("migrate").len(), 1);
    let runs = rig.process("migrate").run_infos();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].result, runs[0].exit_code),
        (RunResult::Success, Some(0))
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_oneshot_retries_then_fails_its_dependents_at_once() {
    let yaml = TASKS.replace(
        "    command: [\"migrate\"]\n",
        "    command: [\"migrate\"]\n    restart: on-failure\n    max_restart_attempts: 2\n",
    );
    let mut rig = Rig::started(&yaml);
    rig.exit("migrate-1", 3);
    assert_eq!(rig.state("migrate-1"), InstanceState::Backoff);
    for _ in 0..2 {
        rig.advance(secs(5)).await;
        rig.spawn_all();
        rig.exit("migrate-1", 3);
    }
    assert_eq!(rig.state("migrate-1"), InstanceState::Failed);
    assert_eq!(rig.spawns_of("migrate").len(), 3, "the run and two retries");
    // No waiting for dependency_timeout: app failed, naming migrate.
    let app = rig.process("app");
    assert_eq!(app.state, ProcessState::Failed);
    let why = app.reason.unwrap_or_default();
    assert!(why.contains("migrate-1"), "{why}");
    assert_eq!(rig.spawns_of("app").len(), 0);
    assert_eq!(rig.process("migrate").run_infos().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn on_failure_shutdown_stops_everything_and_exits_with_the_task_code() {
    let yaml = "
processes:
  web:
    command: [\"serve\"]
  check:
    type: oneshot
    command: [\"check\"]
    on_failure: shutdown
";
    let mut rig = Rig::started(yaml);
    rig.exit("check-1", 7);
    assert!(rig.sup.shutting_down);
    let web = rig.pid("web-1").unwrap();
    assert_eq!(rig.fx().signals_to(web), vec![sig_term()]);
    assert_eq!(rig.ready_to_exit(), None, "web is still stopping");
    rig.obey();
    assert_eq!(rig.ready_to_exit(), Some(7));
}

#[tokio::test(start_paused = true)]
async fn a_config_of_only_oneshots_exits_when_they_end() {
    let yaml = "
processes:
  a:
    type: oneshot
    command: [\"a\"]
    scale: 2
  b:
    type: oneshot
    command: [\"b\"]
";
    let mut rig = Rig::started(yaml);
    rig.exit("a-1", 0);
    rig.exit("a-2", 0);
    assert_eq!(rig.ready_to_exit(), None);
    rig.exit("b-1", 0);
    assert_eq!(rig.ready_to_exit(), Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_oneshot_cut_by_its_timeout_fails() {
    let yaml = "
processes:
  slow:
    type: oneshot
    command: [\"slow\"]
    restart: on-failure
    timeout: 5s
";
    let mut rig = Rig::started(yaml);
    let pid = rig.pid("slow-1").unwrap();
    rig.advance(secs(5)).await;
    assert_eq!(rig.fx().signals_to(pid), vec![sig_term()]);
    rig.obey();
    assert_eq!(rig.state("slow-1"), InstanceState::Failed, "not retried");
    let runs = rig.process("slow").run_infos();
    assert_eq!(runs[0].result, RunResult::Timeout);
}

#[tokio::test(start_paused = true)]
async fn start_runs_a_completed_oneshot_again() {
    let mut rig = Rig::started(TASKS);
    rig.exit("migrate-1", 0);
    rig.spawn_all();
    rig.act("migrate", Action::Start).unwrap();
    assert_eq!(rig.spawns_of("migrate").len(), 2);
    rig.spawn_all();
    rig.exit("migrate-1", 0);
    let runs = rig.process("migrate").run_infos();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].trigger, RunTrigger::Manual);
    // `run` does the same.
    rig.run("migrate").unwrap();
    assert_eq!(rig.spawns_of("migrate").len(), 3);
}

fn every_second(extra: &str) -> String {
    format!(
        "
processes:
  tick:
    command: [\"tick\"]
    schedule:
      cron: \"* * * * * *\"
{extra}"
    )
}

#[tokio::test(start_paused = true)]
async fn a_schedule_runs_once_per_tick_and_keeps_a_history() {
    let mut rig = Rig::new(&every_second(""));
    assert_eq!(rig.process_state("tick"), ProcessState::Scheduled);
    assert!(rig.names("tick").is_empty(), "no standing instances");
    for i in 0..3 {
        rig.advance(secs(1)).await;
        assert_eq!(rig.spawns_of("tick").len(), i + 1, "one run per tick");
        rig.spawn_all();
        assert_eq!(rig.names("tick"), ["tick-1"]);
        rig.exit("tick-1", 0);
        assert!(
            rig.names("tick").is_empty(),
            "a finished run leaves the table"
        );
    }
    let p = rig.process("tick");
    assert_eq!(p.history.stats.success, 3);
    let runs = p.run_infos();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r.trigger == RunTrigger::Schedule));
    let sched = p.schedule.unwrap();
    assert_eq!(sched.missed, 0);
    assert!(sched.next_run.is_some());
}

#[tokio::test(start_paused = true)]
async fn forbid_skips_a_tick_while_a_run_is_going() {
    let mut rig = Rig::new(&every_second(""));
    rig.advance(secs(1)).await;
    rig.spawn_all();
    rig.advance(secs(2)).await;
    assert_eq!(rig.spawns_of("tick").len(), 1);
    assert_eq!(rig.process("tick").schedule.unwrap().missed, 2);
    assert!(matches!(rig.run("tick"), Err(CommandError::Conflict(_))));
}

#[tokio::test(start_paused = true)]
async fn forbid_with_a_starting_deadline_starts_late_when_the_run_ends_in_time() {
    let mut rig = Rig::new(&every_second("      starting_deadline: 500ms\n"));
    rig.advance(secs(1)).await;
    rig.spawn_all();
    rig.advance(secs(1)).await;
    assert_eq!(rig.spawns_of("tick").len(), 1, "deferred");
    rig.advance(ms(200)).await;
    rig.exit("tick-1", 0);
    assert_eq!(rig.spawns_of("tick").len(), 2, "started late");
}

#[tokio::test(start_paused = true)]
async fn allow_runs_up_to_max_concurrent_with_the_lowest_free_numbers() {
    let mut rig = Rig::new(&every_second(
        "      concurrency: allow\n      max_concurrent: 2\n",
    ));
    rig.advance(secs(1)).await;
    rig.spawn_all();
    rig.advance(secs(1)).await;
    rig.spawn_all();
    assert_eq!(rig.names("tick"), ["tick-1", "tick-2"]);
    rig.advance(secs(1)).await;
    assert_eq!(rig.spawns_of("tick").len(), 2, "the third tick is skipped");
    rig.exit("tick-1", 0);
    rig.advance(secs(1)).await;
    rig.spawn_all();
    assert_eq!(
        rig.names("tick"),
        ["tick-1", "tick-2"],
        "number 1 is free again"
    );
}

#[tokio::test(start_paused = true)]
async fn replace_stops_the_running_one_then_starts_anew() {
    let mut rig = Rig::new(&every_second("      concurrency: replace\n"));
    rig.advance(secs(1)).await;
    rig.spawn_all();
    let old = rig.pid("tick-1").unwrap();
    rig.advance(secs(1)).await;
    assert_eq!(rig.fx().signals_to(old), vec![sig_term()]);
    assert_eq!(
        rig.spawns_of("tick").len(),
        1,
        "not before the old one is gone"
    );
    rig.obey();
    assert_eq!(rig.spawns_of("tick").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_run_past_its_timeout_is_stopped_and_recorded() {
    let mut rig = Rig::new(&every_second(
        "      timeout: 500ms\n      concurrency: allow\n",
    ));
    rig.advance(secs(1)).await;
    rig.spawn_all();
    let pid = rig.pid("tick-1").unwrap();
    rig.advance(ms(500)).await;
    assert_eq!(rig.fx().signals_to(pid), vec![sig_term()]);
    rig.obey();
    let runs = rig.process("tick").run_infos();
    assert_eq!(runs[0].result, RunResult::Timeout);
    assert_eq!(rig.process("tick").history.stats.timeout, 1);
}

#[tokio::test(start_paused = true)]
async fn stop_suspends_and_start_resumes() {
    let mut rig = Rig::new(&every_second(""));
    rig.advance(secs(1)).await;
    rig.spawn_all();
    let pid = rig.pid("tick-1").unwrap();
    rig.act("tick", Action::Stop).unwrap();
    assert_eq!(rig.fx().signals_to(pid), vec![sig_term()]);
    rig.obey();
    rig.advance(secs(5)).await;
    assert_eq!(rig.spawns_of("tick").len(), 1, "suspended");
    let s = rig.process("tick").schedule.unwrap();
    assert!(s.suspended && s.next_run.is_none());
    rig.act("tick", Action::Start).unwrap();
    rig.advance(secs(1)).await;
    assert_eq!(rig.spawns_of("tick").len(), 2);
    // A manual run is recorded as such.
    rig.spawn_all();
    rig.exit("tick-1", 0);
    rig.run("tick").unwrap();
    rig.spawn_all();
    rig.exit("tick-1", 1);
    let runs = rig.process("tick").run_infos();
    assert_eq!(
        (runs[0].trigger, runs[0].result),
        (RunTrigger::Manual, RunResult::Failure)
    );
}

#[tokio::test(start_paused = true)]
async fn a_forward_clock_jump_runs_once_and_counts_the_rest() {
    let yaml = "
processes:
  report:
    command: [\"report\"]
    schedule: \"* * * * *\"
";
    let mut rig = Rig::new(yaml);
    rig.jump_wall_clock(chrono::Duration::hours(2));
    // The schedule notices within its longest sleep.
    rig.advance(crate::workloads::schedule::MAX_SLEEP).await;
    assert_eq!(rig.spawns_of("report").len(), 1, "one run, not a burst");
    let missed = rig.process("report").schedule.unwrap().missed;
    assert!((119..=120).contains(&missed), "{missed}");
}

#[tokio::test(start_paused = true)]
async fn run_on_start_runs_at_boot() {
    let mut rig = Rig::new(&every_second("      run_on_start: true\n"));
    assert_eq!(rig.spawns_of("tick").len(), 1);
    rig.spawn_all();
    assert_eq!(rig.process("tick").runs_going[0].trigger, RunTrigger::Start);
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_process_keeps_the_manager_alive() {
    let mut rig = Rig::new(&every_second(""));
    rig.advance(secs(1)).await;
    rig.spawn_all();
    rig.exit("tick-1", 0);
    assert_eq!(rig.ready_to_exit(), None);
}

const HOOKED: &str = "
global:
  hooks:
    pre_start: [{ command: [\"warm\", \"cache\"] }]
    post_stop: [{ command: [\"bye\"] }]
processes:
  web:
    command: [\"serve\"]
    hooks:
      pre_stop: [{ command: [\"drain\", \"${PHPEEK_PM_INSTANCE_ID}\"] }]
";

#[tokio::test(start_paused = true)]
async fn nothing_starts_before_the_global_pre_start_hooks() {
    let mut rig = Rig::new(HOOKED);
    assert_eq!(rig.hook_labels(), ["global:pre_start"]);
    assert!(rig.fx().spawns.is_empty());
    assert_eq!(rig.finish_hooks("global:pre_start", true), 1);
    assert_eq!(rig.spawns_of("web").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_global_pre_start_exits_1_with_nothing_started() {
    let mut rig = Rig::new(HOOKED);
    rig.finish_hooks("global:pre_start", false);
    assert!(rig.fx().spawns.is_empty());
    assert_eq!(rig.ready_to_exit(), Some(1));
    assert_eq!(rig.hook_labels(), ["global:pre_start"], "no stop hooks");
}

#[tokio::test(start_paused = true)]
async fn pre_stop_runs_before_the_stop_signal_and_post_stop_before_the_exit() {
    let mut rig = Rig::new(HOOKED);
    rig.finish_hooks("global:pre_start", true);
    rig.spawn_all();
    let pid = rig.pid("web-1").unwrap();
    rig.terminate();
    assert!(rig.hook_labels().contains(&"web-1:pre_stop".to_string()));
    assert!(
        rig.fx().signals_to(pid).is_empty(),
        "the signal waits for pre_stop"
    );
    let drain = rig
        .fx()
        .hooks
        .iter()
        .find(|j| &*j.label == "web-1:pre_stop")
        .cloned();
    assert_eq!(drain.unwrap().commands[0].argv, ["drain", "web-1"]);
    rig.finish_hooks("web-1:pre_stop", true);
    assert_eq!(rig.fx().signals_to(pid), vec![sig_term()]);
    rig.obey();
    assert_eq!(rig.ready_to_exit(), None, "global post_stop runs first");
    assert_eq!(
        rig.hook_labels().last().map(String::as_str),
        Some("global:post_stop")
    );
    rig.finish_hooks("global:post_stop", true);
    assert_eq!(rig.ready_to_exit(), Some(0));
    assert_eq!(
        rig.sup.hook_count(
            "",
            crate::workloads::hooks::HookPoint::PreStart,
            RunResult::Success
        ),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn the_stop_deadline_covers_a_hanging_pre_stop_hook() {
    let yaml = HOOKED.replace(
        "    command: [\"serve\"]\n",
        "    command: [\"serve\"]\n    shutdown: { timeout: 3s }\n",
    );
    let mut rig = Rig::new(&yaml);
    rig.finish_hooks("global:pre_start", true);
    rig.spawn_all();
    let pid = rig.pid("web-1").unwrap();
    rig.terminate();
    rig.advance(secs(3)).await;
    assert_eq!(rig.fx().signals_to(pid), vec![Signal::SIGKILL]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_pre_start_hook_is_a_start_failure() {
    let yaml = "
global:
  restart_backoff_initial: 1s
processes:
  web:
    command: [\"serve\"]
    hooks:
      pre_start: [{ command: [\"prepare\"] }]
";
    let mut rig = Rig::new(yaml);
    assert!(rig.fx().spawns.is_empty());
    rig.finish_hooks("web-1:pre_start", false);
    assert_eq!(rig.state("web-1"), InstanceState::Backoff);
    let why = rig.instance("web-1").reason.unwrap_or_default();
    assert!(why.contains("pre_start"), "{why}");
    rig.advance(secs(1)).await;
    rig.finish_hooks("web-1:pre_start", true);
    assert_eq!(rig.fx().spawns.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn initial_state_stopped_waits_for_a_start() {
    let yaml = "
processes:
  extra:
    command: [\"work\"]
    scale: 2
    initial_state: stopped
";
    let mut rig = Rig::new(yaml);
    assert!(rig.fx().spawns.is_empty());
    assert_eq!(rig.process_state("extra"), ProcessState::Stopped);
    rig.act("extra", Action::Start).unwrap();
    assert_eq!(rig.spawns_of("extra").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn conditions_started_and_completed() {
    let yaml = "
processes:
  db:
    command: [\"db\"]
  seed:
    type: oneshot
    command: [\"seed\"]
  app:
    command: [\"app\"]
    depends_on:
      db: started
      seed: completed
";
    let mut rig = Rig::new(yaml);
    rig.spawn_all();
    assert_eq!(rig.spawns_of("app").len(), 0);
    rig.exit("seed-1", 4);
    // `completed` takes any exit code.
    assert_eq!(rig.state("seed-1"), InstanceState::Failed);
    assert_eq!(rig.spawns_of("app").len(), 1);
}
