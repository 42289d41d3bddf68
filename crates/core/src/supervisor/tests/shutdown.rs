//! Ordered shutdown, second signal, exit codes, forwarding.

use super::*;

const STACK: &str = "
global:
  shutdown_timeout: 5s
processes:
  db:
    command: [\"db\"]
  app:
    command: [\"app\"]
    depends_on: [db]
  web:
    command: [\"web\"]
    depends_on: [app]
";

#[tokio::test(start_paused = true)]
async fn dependents_stop_before_what_they_depend_on() {
    let mut rig = Rig::started(STACK);
    let pid = |rig: &Rig, n: &str| rig.pid(n).unwrap();
    let (db, app, web) = (pid(&rig, "db-1"), pid(&rig, "app-1"), pid(&rig, "web-1"));
    rig.terminate();
    assert_eq!(rig.fx().signals_to(web), [Signal::SIGTERM]);
    assert!(rig.fx().signals_to(app).is_empty() && rig.fx().signals_to(db).is_empty());
    rig.reap(
        web,
        ExitStatus {
            code: Some(0),
            signal: None,
        },
    );
    assert_eq!(rig.fx().signals_to(app), [Signal::SIGTERM]);
    assert!(rig.fx().signals_to(db).is_empty());
    rig.reap(
        app,
        ExitStatus {
            code: Some(0),
            signal: None,
        },
    );
    assert_eq!(rig.fx().signals_to(db), [Signal::SIGTERM]);
    assert_eq!(rig.exit_code(), None);
    rig.reap(
        db,
        ExitStatus {
            code: Some(0),
            signal: None,
        },
    );
    assert_eq!(rig.exit_code(), Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_that_had_to_kill_exits_one() {
    let mut rig = Rig::started(&STACK.replace("depends_on: [app]", "depends_on: []"));
    rig.terminate();
    let web = rig.pid("web-1").unwrap();
    rig.advance(secs(5)).await;
    assert_eq!(rig.fx().signals_to(web), [Signal::SIGTERM, Signal::SIGKILL]);
    rig.converge();
    assert_eq!(rig.exit_code(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_second_signal_kills_everything_at_once() {
    let mut rig = Rig::started(STACK);
    let db = rig.pid("db-1").unwrap();
    rig.terminate();
    rig.signal(SignalEvent::Terminate(libc::SIGINT));
    assert_eq!(rig.fx().signals_to(db), [Signal::SIGKILL]);
    rig.converge();
    assert_eq!(rig.exit_code(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn requests_during_shutdown_are_refused() {
    let mut rig = Rig::started(STACK);
    rig.terminate();
    assert!(matches!(
        rig.scale("web", 2),
        Err(CommandError::Conflict(_))
    ));
    assert!(matches!(
        rig.act("web", Action::Restart),
        Err(CommandError::Conflict(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_crash_during_shutdown_is_not_restarted() {
    let mut rig = Rig::started(STACK);
    rig.terminate();
    rig.exit("db-1", 1);
    assert_eq!(rig.state("db-1"), InstanceState::Stopped);
    rig.advance(secs(10)).await;
    assert!(rig.fx().spawns.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_manager_exits_when_everything_ended_on_its_own() {
    let yaml = "
processes:
  a:
    command: [\"a\"]
    restart: never
  b:
    command: [\"b\"]
    restart: never
";
    let mut rig = Rig::started(yaml);
    rig.exit("a-1", 0);
    assert_eq!(rig.exit_code(), None);
    rig.exit("b-1", 0);
    assert_eq!(rig.exit_code(), Some(0));
    let mut rig = Rig::started(yaml);
    rig.exit("a-1", 0);
    rig.exit("b-1", 4);
    assert_eq!(rig.exit_code(), Some(1), "one failed");
}

#[tokio::test(start_paused = true)]
async fn a_process_scaled_to_zero_does_not_end_the_manager() {
    let mut rig = Rig::started("processes:\n  a:\n    command: [\"a\"]\n");
    rig.scale("a", 0).unwrap();
    rig.converge();
    assert!(rig.names("a").is_empty());
    assert_eq!(rig.exit_code(), None);
}

#[tokio::test(start_paused = true)]
async fn usr1_is_forwarded_to_every_leader() {
    let mut rig = Rig::started(STACK);
    let pids: Vec<i32> = ["db-1", "app-1", "web-1"]
        .iter()
        .map(|n| rig.pid(n).unwrap())
        .collect();
    rig.signal(SignalEvent::Forward(libc::SIGUSR1));
    for pid in pids {
        assert_eq!(rig.fx().signals_to(pid), [Signal::SIGUSR1]);
    }
    assert_eq!(rig.running("db").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn forward_signals_limits_which_processes_get_usr1_and_usr2() {
    let mut rig = Rig::started(
        "processes:\n  fpm:\n    command: [\"fpm\"]\n  web:\n    command: [\"web\"]\n    forward_signals: [SIGUSR1]\n  api:\n    command: [\"api\"]\n    forward_signals: []\n",
    );
    let (fpm, web, api) = (
        rig.pid("fpm-1").unwrap(),
        rig.pid("web-1").unwrap(),
        rig.pid("api-1").unwrap(),
    );
    rig.signal(SignalEvent::Forward(libc::SIGUSR1));
    rig.signal(SignalEvent::Forward(libc::SIGUSR2));
    assert_eq!(rig.fx().signals_to(fpm), [Signal::SIGUSR1, Signal::SIGUSR2]);
    assert_eq!(rig.fx().signals_to(web), [Signal::SIGUSR1]);
    assert!(rig.fx().signals_to(api).is_empty());
}

/// How many bursts of group signals went out so far.
fn bursts(rig: &Rig) -> usize {
    rig.fx()
        .log
        .iter()
        .filter(|e| matches!(e, Effect::Burst { .. }))
        .count()
}

/// The effects log from the last `Burst` on: its length and the pids it
/// signalled, in order.
fn last_burst(rig: &Rig) -> (usize, Vec<i32>) {
    let log = &rig.fx().log;
    let Some(at) = log.iter().rposition(|e| matches!(e, Effect::Burst { .. })) else {
        return (0, Vec::new());
    };
    let Effect::Burst { len } = log[at] else {
        unreachable!()
    };
    let pids = log[at + 1..]
        .iter()
        .take(len)
        .filter_map(|e| match e {
            Effect::SignalGroup { pid, .. } => Some(*pid),
            _ => None,
        })
        .collect();
    (len, pids)
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_sends_its_stop_signals_as_one_burst_after_arming_every_deadline() {
    let mut rig = Rig::started(
        "processes:\n  w:\n    command: [\"w\"]\n    scale: 5\n    shutdown:\n      signal: SIGINT\n",
    );
    let mut pids: Vec<i32> = (1..=5)
        .map(|n| rig.pid(&format!("w-{n}")).unwrap())
        .collect();
    let bursts_before = bursts(&rig);
    rig.terminate();
    let (len, mut sent) = last_burst(&rig);
    assert_eq!(len, 5, "one burst for the five stops: {:?}", rig.fx().log);
    sent.sort_unstable();
    pids.sort_unstable();
    assert_eq!(sent, pids);
    for pid in &pids {
        assert_eq!(rig.fx().signals_to(*pid), [Signal::SIGINT]);
    }
    let bursts_after = bursts(&rig);
    assert_eq!(bursts_after, bursts_before + 1, "{:?}", rig.fx().log);
    // Every deadline was armed by the time the burst went out.
    assert_eq!(rig.fx().timers.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_scale_down_sends_its_stop_signals_as_one_burst() {
    let mut rig = Rig::started("processes:\n  w:\n    command: [\"w\"]\n    scale: 4\n");
    let pids: Vec<i32> = (1..=4)
        .map(|n| rig.pid(&format!("w-{n}")).unwrap())
        .collect();
    rig.scale("w", 1).unwrap();
    let (len, sent) = last_burst(&rig);
    assert_eq!(len, 3, "{:?}", rig.fx().log);
    assert!(sent.iter().all(|p| pids.contains(p)), "{sent:?}");
    assert!(rig.fx().signals_to(pids[0]).is_empty(), "w-1 keeps running");
}

/// A stop signal sent outside a reconcile (here: once a `pre_stop` hook is
/// done) goes out at once, not into a burst that nobody would send.
#[tokio::test(start_paused = true)]
async fn a_stop_after_a_pre_stop_hook_is_sent_at_once() {
    let mut rig = Rig::started(
        "processes:\n  w:\n    command: [\"w\"]\n    hooks:\n      pre_stop:\n        - command: [\"drain\"]\n",
    );
    let pid = rig.pid("w-1").unwrap();
    rig.terminate();
    assert!(rig.fx().signals_to(pid).is_empty(), "the hook runs first");
    rig.finish_hooks("w-1:pre_stop", true);
    assert_eq!(rig.fx().signals_to(pid), [Signal::SIGTERM]);
}
