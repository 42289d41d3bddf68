#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! The real PHP stack (examples/php-stack: Debian's php-fpm 8.2, nginx
//! 1.22, php-cli with phpredis and sqlite3, redis-server) with the manager
//! as PID 1 of a pid namespace, as in a container. Each test runs its own
//! copy on its own free loopback ports, so the harness runs them in
//! parallel. Without the packages (or without root, for the namespace) the
//! tests report themselves skipped; under CI they fail.
//!
//! The numbers each test prints (requests served and failed, scale-up
//! time, shutdown time) are the ones in docs/benchmarks.md.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;

/// Generous for waits that span a rolling restart with `min_ready: 11s`
/// per step on a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(180);

/// Waits until a rolling restart of `process` replaced every instance in
/// `before` (new pids, all running and healthy) and its rollout says done.
fn wait_rolled(s: &mut Stack, process: &str, before: &BTreeMap<String, i32>) {
    let path = format!("/api/v1/processes/{process}");
    let mut last = String::new();
    let done = poll(LONG, || {
        let (status, body) = s.m.get(&path);
        if status != 200 {
            last = body;
            return None;
        }
        let p: ProcessInfo = decode(&body);
        let replaced = p.instances.len() == before.len()
            && p.instances.iter().all(|i| {
                i.state == InstanceState::Running
                    && i.health == Health::Healthy
                    && i.pid.is_some()
                    && before.get(&i.name) != i.pid.as_ref()
            });
        let finished = p
            .rollout
            .as_ref()
            .is_some_and(|r| r.state == RolloutPhase::Done);
        last = body;
        (replaced && finished).then_some(())
    });
    assert!(
        done.is_some(),
        "rolling restart of {process} did not finish within {LONG:?}; last: {last}"
    );
}

fn assert_no_failures(what: &str, report: &LoadReport, s: &Stack) {
    println!("zero-downtime {what}: {report}");
    if report.rate() < 200.0 {
        println!(
            "note: {what}: the client reached {:.0}/s (target 200/s) on this machine",
            report.rate()
        );
    }
    assert!(report.sent > 0, "{what}: no request was sent");
    assert_eq!(
        report.failed,
        0,
        "{what}: {report}\nmanager stderr tail:\n{}",
        tail(&s.m.stderr(), 40)
    );
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Index of the first line of `log` containing `needle`.
fn line_of(log: &str, needle: &str) -> usize {
    log.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{log}"))
}

/// A one-off `php` command in the stack's dir (outside the namespace:
/// loopback is shared), e.g. the producer or a query.
fn php(s: &Stack, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new("php")
        .args(args)
        .current_dir(s.m.dir.path())
        .envs(env.iter().copied())
        .output()
        .expect("run php")
}

#[test]
fn the_example_passes_check_config_without_a_warning() {
    // No package needed: the file as shipped, with its defaults.
    let dir = example_dir();
    let run = run_cli(
        &["check-config", "-c", "phpeek-pm.yaml"],
        &dir,
        &[],
        &["PHPEEK_PM_CONFIG"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    for key in [
        "min_ready: 11s",
        "port_base: 8080",
        "signal: SIGQUIT",
        "signal: SIGINT",
    ] {
        assert!(
            run.stdout.contains(key),
            "effective config lacks {key}:\n{}",
            run.stdout
        );
    }
    // The same file without min_ready: check-config warns about the
    // processes with port_base and several instances.
    let tmp = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(dir.join("phpeek-pm.yaml")).unwrap();
    std::fs::write(tmp.path().join("c.yaml"), without_min_ready(&yaml)).unwrap();
    let run = run_cli(
        &["check-config", "-c", "c.yaml"],
        tmp.path(),
        &[],
        &["PHPEEK_PM_CONFIG"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for p in ["processes.api-worker", "processes.php-fpm"] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains("warning") && l.contains(p) && l.contains("min_ready")),
            "{p}: {}",
            run.stderr
        );
    }
}

#[test]
fn boot_order_is_real_and_ready_comes_last() {
    if !stack_available("php_stack::boot_order") {
        return;
    }
    let mut s = Stack::start(StackOptions {
        yaml: None,
        env: &[],
    });
    // From the start, poll nginx: its first answer must already be the
    // page php-fpm rendered from the migration's table (never a 500 "no
    // schema", never a 502 from a php-fpm that is not up).
    let page = format!("{}/", s.nginx());
    let first = wait_for("nginx's first answer", LONG, || {
        try_send("GET", &page, None, &[]).ok()
    });
    assert_eq!(first.status, 200, "nginx's first answer: {first:?}");
    assert!(
        first.body.contains("rendered-by=php-fpm sapi=fpm-fcgi")
            && first
                .body
                .contains("migration=2026_01_01_000000_create_schedule_runs_table"),
        "{}",
        first.body
    );
    let not_ready = s.wait_ready(LONG);
    let log = s.m.stderr();
    // The one-shot ended before php-fpm was started, php-fpm was healthy
    // (its FastCGI ping) before nginx was started.
    let migrated = line_of(&log, "migrate-1 completed");
    let fpm_started = line_of(&log, "dependencies of `php-fpm` are ready");
    let fpm_healthy =
        line_of(&log, "php-fpm-2 is healthy").max(line_of(&log, "php-fpm-1 is healthy"));
    let nginx_started = line_of(&log, "dependencies of `nginx` are ready");
    assert!(migrated < fpm_started, "{log}");
    assert!(
        fpm_started < fpm_healthy && fpm_healthy < nginx_started,
        "{log}"
    );
    // Ready: every process at its scale and healthy, the migration completed.
    for i in s.m.instances() {
        match i.process.as_str() {
            "migrate" => assert_eq!(i.state, InstanceState::Completed, "{i:?}"),
            "scheduler" => {}
            _ => assert_eq!(i.state, InstanceState::Running, "{i:?}"),
        }
    }
    for p in ["php-fpm", "api-worker", "nginx", "redis"] {
        let p = s.m.process(p);
        assert!(
            p.instances.iter().all(|i| i.health == Health::Healthy),
            "{p:?}"
        );
    }
    let api = try_send("GET", &format!("{}/api/hello", s.nginx()), None, &[]).unwrap();
    assert_eq!(api.status, 200, "{api:?}");
    assert!(
        api.body.contains("\"instance\":\"api-worker-"),
        "{}",
        api.body
    );
    println!("boot: {not_ready} not-ready answers from /api/v1/ready before 200");

    // The per-minute task runs and records its run in the migrated schema.
    let runs = wait_for("a run of the scheduler", Duration::from_secs(90), || {
        let v = s.m.get_json("/api/v1/processes/scheduler/runs");
        let runs = v.as_array()?.clone();
        runs.iter()
            .any(|r| r["result"] == "success")
            .then_some(runs)
    });
    let out = php(
        &s,
        &[
            "-r",
            "$db = new SQLite3('var/app.sqlite'); echo $db->querySingle('SELECT COUNT(*) FROM schedule_runs');",
        ],
        &[],
    );
    let recorded: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        recorded >= 1,
        "schedule_runs rows: {recorded}; runs: {runs:?}"
    );
}

#[test]
fn rolling_restarts_scaling_and_stops_behind_nginx_fail_no_request() {
    if !stack_available("php_stack::zero_downtime") {
        return;
    }
    let mut s = Stack::start(StackOptions {
        yaml: None,
        env: &[],
    });
    s.wait_ready(LONG);
    let api_url = format!("{}/api/ping", s.nginx());

    // 1. `phpeek-pm restart api-worker`: rolling, with the seed's upstream
    // block as written (nginx's max_fails=1 fail_timeout=10s) and
    // rollout.min_ready 11s.
    let before = s.m.pids("api-worker");
    let load = Load::start(&api_url, 4, 75);
    let t = Instant::now();
    let run = s.cli(&["restart", "api-worker"]);
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    wait_rolled(&mut s, "api-worker", &before);
    let took = t.elapsed();
    let report = load.finish();
    println!("api-worker rolling restart took {:.1}s", took.as_secs_f64());
    let rollout = s.m.process("api-worker").rollout.expect("a rollout object");
    println!("api-worker rollout object: {rollout:?}");
    assert_eq!(rollout.min_ready.as_deref(), Some("11s"), "{rollout:?}");
    assert_no_failures("api-worker rolling restart", &report, &s);

    // 2. Scale 3 -> 6 -> 3 (the seed's "existing instances continue
    // running").
    let load = Load::start(&api_url, 4, 75);
    let kept = s.m.pids("api-worker");
    let (status, body) =
        s.m.post("/api/v1/processes/api-worker/scale", r#"{"desired": 6}"#);
    assert_eq!(status, 202, "{body}");
    let six = s.m.wait_healthy("api-worker", 6);
    for (name, pid) in &kept {
        assert_eq!(
            six.get(name),
            Some(pid),
            "{name} kept running while scaling up"
        );
    }
    let (status, body) =
        s.m.post("/api/v1/processes/api-worker/scale", r#"{"desired": 3}"#);
    assert_eq!(status, 202, "{body}");
    let three = s.m.wait_healthy("api-worker", 3);
    assert_eq!(three, kept, "scale-down took the highest numbers only");
    let report = load.finish();
    assert_no_failures("api-worker scale 3 -> 6 -> 3", &report, &s);

    // 3. Stop one instance by API (nginx sees it refuse, marks it down and
    // passes the request to the next), then start it again.
    let load = Load::start(&api_url, 4, 75);
    let (status, body) = s.m.post("/api/v1/processes/api-worker-2/stop", "");
    assert_eq!(status, 202, "{body}");
    s.m.wait_instance("api-worker-2", |i| i.state == InstanceState::Stopped);
    // Let the client meet the stopped port (several hundred requests).
    let mark = load.sent();
    wait_for("500 requests with api-worker-2 stopped", DEADLINE, || {
        (load.sent() >= mark + 500).then_some(())
    });
    let (status, body) = s.m.post("/api/v1/processes/api-worker-2/start", "");
    assert_eq!(status, 202, "{body}");
    s.m.wait_healthy("api-worker", 3);
    let report = load.finish();
    assert_no_failures("api-worker-2 stopped and started by API", &report, &s);

    // 4. Rolling restart of php-fpm (SIGQUIT, graceful) behind nginx's
    // `upstream php_fpm`, with slow requests in flight on both masters.
    let page = format!("{}/", s.nginx());
    let before = s.m.pids("php-fpm");
    let load = Load::start(&page, 4, 75);
    let slow: Vec<_> = (0..4)
        .map(|k| {
            let url = format!("{}/slow.php?ms={}", s.nginx(), 3000 + k);
            std::thread::spawn(move || try_send("GET", &url, None, &[]))
        })
        .collect();
    for k in 0..4 {
        wait_file(&s.m.path(&format!("var/slow-{}.started", 3000 + k)), |_| {
            true
        });
    }
    let t = Instant::now();
    let run = s.cli(&["restart", "php-fpm"]);
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    wait_rolled(&mut s, "php-fpm", &before);
    let took = t.elapsed();
    let report = load.finish();
    for h in slow {
        let r = h.join().unwrap();
        let r = r.expect("slow request");
        assert_eq!(
            r.status, 200,
            "a slow request cut by the php-fpm roll: {r:?}"
        );
        assert!(r.body.contains("slow done"), "{}", r.body);
    }
    println!(
        "php-fpm rolling restart took {:.1}s; 4 slow requests in flight all answered 200",
        took.as_secs_f64()
    );
    assert_no_failures("php-fpm rolling restart", &report, &s);
}

/// The control run behind rollout.min_ready (not part of the suite; run
/// with `--ignored`): the same rolling restart without min_ready, against
/// the seed's upstream block. nginx marks each restarted backend failed for
/// its fail_timeout (10s); a roll shorter than that leaves no live
/// upstream and nginx answers 502.
#[test]
#[ignore = "control measurement for docs/php-stack.md, expects failures"]
fn control_rolling_restart_without_min_ready_gets_502s() {
    if !stack_available("php_stack::control") {
        return;
    }
    let yaml = without_min_ready(&example_yaml());
    let mut s = Stack::start(StackOptions {
        yaml: Some(yaml),
        env: &[],
    });
    s.wait_ready(LONG);
    let before = s.m.pids("api-worker");
    let load = Load::start(&format!("{}/api/ping", s.nginx()), 4, 75);
    let t = Instant::now();
    let run = s.cli(&["restart", "api-worker"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    wait_rolled(&mut s, "api-worker", &before);
    let took = t.elapsed();
    // Keep sending through nginx's fail_timeout after the roll.
    let mark = load.sent();
    wait_for("10 s more of requests", LONG, || {
        (load.sent() >= mark + 3000).then_some(())
    });
    let report = load.finish();
    println!(
        "control (no min_ready): roll took {:.1}s; {report}",
        took.as_secs_f64()
    );
}

#[test]
fn a_3000_job_backlog_scales_workers_up_each_job_runs_once_and_the_count_returns_to_min() {
    if !stack_available("php_stack::autoscale") {
        return;
    }
    let mut s = Stack::start(StackOptions {
        yaml: None,
        env: &[
            ("QUEUE_AUTOSCALE_INTERVAL", "2s"),
            ("QUEUE_SCALE_DOWN_STABILIZATION", "10s"),
        ],
    });
    s.wait_ready(LONG);
    assert_eq!(s.m.process("queue-default").desired, 1);
    let redis_port = s.ports.redis.to_string();
    let t = Instant::now();
    let out = php(
        &s,
        &["bin/producer.php", "3000", "job"],
        &[("REDIS_PORT", &redis_port), ("QUEUE_KEY", "queues:default")],
    );
    assert!(
        out.status.success(),
        "producer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed = t.elapsed();
    // The first scale-up: a second worker running.
    wait_for("a second worker running", DEADLINE, || {
        let n =
            s.m.instances_of("queue-default")
                .iter()
                .filter(|i| i.state == InstanceState::Running)
                .count();
        (n > 1).then_some(())
    });
    let scaled_up = t.elapsed();
    println!(
        "autoscale: 3000 jobs pushed in {:.2}s; backlog -> second worker running {:.2}s (interval 2s)",
        pushed.as_secs_f64(),
        scaled_up.as_secs_f64()
    );
    let mut most = 0;
    let log = s.m.path("var/jobs.log");
    wait_for("3000 jobs done", LONG, || {
        most = most.max(s.m.process("queue-default").current);
        (read(&log).lines().count() >= 3000).then_some(())
    });
    let drained = t.elapsed();
    // Back to min after the stabilization window.
    let back = wait_for("queue-default back at min (1)", LONG, || {
        let p = s.m.process("queue-default");
        (p.desired == 1 && p.instances.len() == 1).then_some(p)
    });
    println!(
        "autoscale: drained in {:.1}s with up to {most} workers; back at {} after {:.1}s",
        drained.as_secs_f64(),
        back.desired,
        t.elapsed().as_secs_f64()
    );
    // Exactly once: every id job-1..job-3000 recorded once, by several
    // workers.
    let text = read(&log);
    let mut seen = BTreeSet::new();
    let mut workers = BTreeSet::new();
    for line in text.lines() {
        let (id, worker) = line.split_once(' ').unwrap_or((line, ""));
        assert!(seen.insert(id.to_string()), "{id} processed twice");
        workers.insert(worker.to_string());
    }
    let expected: BTreeSet<String> = (1..=3000).map(|i| format!("job-{i}")).collect();
    assert_eq!(seen, expected, "every job once");
    assert!(workers.len() > 1, "only {workers:?} worked");
    assert!(most > 1, "never scaled up");
    // No job was cut by a scale-down: each stopped worker ended its loop
    // (exit 0, no SIGKILL) and the queue is empty.
    let err = s.m.stderr();
    assert!(
        !err.lines()
            .any(|l| l.contains("queue-default-") && l.contains("killed")),
        "{}",
        tail(&err, 40)
    );
    let stops: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("] queue-default-") && l.contains(" stopped"))
        .collect();
    assert!(!stops.is_empty(), "no scale-down stop logged");
    for l in &stops {
        assert!(l.contains("exited with code 0"), "{l}");
    }
    let left = command(s.ports.redis, &["LLEN", "queues:default"]).unwrap();
    assert_eq!(left, "0");

    // Drain-aware scale-down with jobs in hand: 4 workers, 3 of them busy
    // with 4 s jobs; a scale to 3 stops the idle one (idle_first, whatever
    // its number), and the busy ones keep their pids and finish their jobs.
    let (status, body) =
        s.m.post("/api/v1/processes/queue-default/scale", r#"{"desired": 4}"#);
    assert_eq!(status, 202, "{body}");
    s.m.wait_running("queue-default", 4);
    let ids: Vec<String> = (1..=3).map(|k| format!("long-{k}@4000")).collect();
    let mut push = vec!["RPUSH", "queues:default"];
    push.extend(ids.iter().map(String::as_str));
    command(s.ports.redis, &push).unwrap();
    let busy: BTreeSet<String> = wait_for("3 workers to take the long jobs", DEADLINE, || {
        let out = s.m.stdout();
        let names: BTreeSet<String> = ids
            .iter()
            .filter_map(|id| {
                out.lines()
                    .find(|l| l.contains(&format!("\"id\":\"{id}\"")) && l.contains("\"starting\""))
                    .and_then(|l| l.strip_prefix('[')?.split_once(']'))
                    .map(|(name, _)| name.to_string())
            })
            .collect();
        (names.len() == 3).then_some(names)
    });
    let pids = s.m.pids("queue-default");
    let idle: Vec<&String> = pids.keys().filter(|n| !busy.contains(*n)).collect();
    let (status, body) =
        s.m.post("/api/v1/processes/queue-default/scale", r#"{"desired": 3}"#);
    assert_eq!(status, 202, "{body}");
    let three: BTreeMap<String, i32> = s.m.wait_running("queue-default", 3).into_iter().collect();
    for name in &busy {
        assert_eq!(
            three.get(name),
            pids.get(name),
            "busy {name} was stopped (idle: {idle:?}, left: {three:?})"
        );
    }
    for id in &ids {
        wait_file(&log, |t| {
            t.lines().any(|l| l.starts_with(&format!("{id} ")))
        });
    }
    println!(
        "autoscale: scale 4 -> 3 with {busy:?} busy stopped the idle {idle:?}; the 3 jobs of 4 s completed"
    );
}

#[test]
fn sigterm_to_pid1_stops_nginx_then_php_fpm_gracefully_then_the_rest() {
    if !stack_available("php_stack::shutdown") {
        return;
    }
    let mut s = Stack::start(StackOptions {
        yaml: None,
        env: &[],
    });
    s.wait_ready(LONG);
    // One slow request through nginx, one straight to php-fpm-1 (FastCGI)
    // that outlasts nginx's drain, so php-fpm's own SIGQUIT has a request
    // in flight.
    let through_nginx = {
        let url = format!("{}/slow.php?ms=4000", s.nginx());
        std::thread::spawn(move || try_send("GET", &url, None, &[]))
    };
    let direct = {
        let addr = format!("127.0.0.1:{}", s.ports.fpm_base + 1);
        let script = format!("{}/public/slow.php?ms=8000", s.m.dir.path().display());
        let dir = s.m.dir.path().to_path_buf();
        std::thread::spawn(move || {
            std::process::Command::new("php")
                .args([
                    "bin/fpm-ping.php",
                    &addr,
                    &script,
                    "slow done after 8000 ms",
                ])
                .current_dir(dir)
                .output()
        })
    };
    wait_file(&s.m.path("var/slow-4000.started"), |_| true);
    wait_file(&s.m.path("var/slow-8000.started"), |_| true);
    let pids = s.namespace_pids();
    assert!(pids.len() > 10, "the stack's processes: {pids:?}");
    let t = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.manager_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let code = s.m.wait_exit(Duration::from_secs(90));
    let took = t.elapsed();
    let log = s.m.stderr();
    println!(
        "shutdown of the whole stack: {:.2}s, exit {code}",
        took.as_secs_f64()
    );
    assert_eq!(code, 0, "{}", tail(&log, 40));
    let r = through_nginx
        .join()
        .unwrap()
        .expect("slow request via nginx");
    assert_eq!(r.status, 200, "{r:?}");
    let out = direct.join().unwrap().expect("run php");
    assert!(
        out.status.success(),
        "the request in flight on php-fpm-1 was cut: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Reverse dependency order: nginx, then php-fpm (and the other
    // dependencies of nginx), then what they depend on.
    let nginx = line_of(&log, "nginx-1 stopped");
    let fpm = line_of(&log, "php-fpm-1 stopped").min(line_of(&log, "php-fpm-2 stopped"));
    let queue = line_of(&log, "queue-default-1 stopped");
    let redis = line_of(&log, "redis-1 stopped");
    assert!(nginx < fpm, "{log}");
    assert!(queue < redis, "{log}");
    for l in log.lines().filter(|l| l.contains(" stopped (")) {
        assert!(l.contains("exited with code 0"), "{l}");
    }
    // Nothing is left of the namespace: every process seen in it is gone.
    let left: Vec<i32> = pids.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "left in the namespace: {left:?}");
}

/// The example without its `forward_signals` lines (every process then
/// gets both user signals, as before that key existed).
fn without_forward_signals(yaml: &str) -> String {
    let kept: Vec<&str> = yaml
        .lines()
        .filter(|l| !l.trim_start().starts_with("forward_signals:"))
        .collect();
    kept.join("\n") + "\n"
}

#[test]
fn sigusr2_to_the_manager_reloads_php_fpm_same_master_new_workers() {
    if !stack_available("php_stack::sigusr2") {
        return;
    }
    // The whole example as shipped: php -S and redis-server, which die of
    // SIGUSR2, and nginx, which reads it as a binary upgrade, opt out with
    // `forward_signals`; php-fpm takes it (graceful reload).
    let mut s = Stack::start(StackOptions {
        yaml: None,
        env: &[],
    });
    s.wait_ready(LONG);
    let masters = s.m.pids("php-fpm");
    let others: BTreeMap<String, i32> = ["nginx", "api-worker", "redis", "queue-default"]
        .iter()
        .flat_map(|p| s.m.pids(p))
        .collect();
    let workers = |s: &Stack| -> BTreeMap<i32, BTreeSet<i32>> {
        masters
            .values()
            .map(|&inner| {
                let host = host_pid(s.manager_pid, inner).expect("php-fpm master in the namespace");
                let kids = children_of(host)
                    .into_iter()
                    .filter(|k| k.state != 'Z')
                    .map(|k| k.pid)
                    .collect();
                (inner, kids)
            })
            .collect()
    };
    let before = workers(&s);
    assert!(
        before.values().all(|k| k.len() == 4),
        "pm.max_children 4: {before:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.manager_pid),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .unwrap();
    let after = wait_for("php-fpm workers renewed", DEADLINE, || {
        let now = workers(&s);
        now.iter()
            .all(|(m, kids)| kids.len() == 4 && kids.is_disjoint(&before[m]))
            .then_some(now)
    });
    println!("SIGUSR2: php-fpm masters {masters:?} kept; workers {before:?} -> {after:?}");
    assert_eq!(s.m.pids("php-fpm"), masters, "master pids unchanged");
    let others_now: BTreeMap<String, i32> = ["nginx", "api-worker", "redis", "queue-default"]
        .iter()
        .flat_map(|p| s.m.pids(p))
        .collect();
    assert_eq!(others_now, others, "nothing else was signalled away");
    for p in ["php-fpm", "nginx", "api-worker", "redis", "queue-default"] {
        for i in s.m.process(p).instances {
            assert_eq!(i.restarts, 0, "{i:?}");
            assert_eq!(i.state, InstanceState::Running, "{i:?}");
        }
    }
    let r = try_send("GET", &format!("{}/", s.nginx()), None, &[]).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let r = try_send("GET", &format!("{}/api/health", s.nginx()), None, &[]).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        !s.m.stderr().contains("changing binary signal"),
        "nginx got no SIGUSR2"
    );
}

/// What SIGUSR2 forwarded to every instance (the default, without the
/// example's `forward_signals` lines) does to the whole example stack (not part of the suite; run with `--ignored`): php-fpm
/// reloads, nginx refuses it, `php -S` and redis-server are killed by it and
/// restarted. Prints the instances that died.
#[test]
#[ignore = "observation for docs/php-stack.md: SIGUSR2 kills php -S and redis-server"]
fn observe_sigusr2_forwarded_to_the_whole_stack() {
    if !stack_available("php_stack::observe_sigusr2") {
        return;
    }
    let mut s = Stack::start(StackOptions {
        yaml: Some(without_forward_signals(&example_yaml())),
        env: &[],
    });
    s.wait_ready(LONG);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.manager_pid),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .unwrap();
    s.m.wait_stderr("killed by SIGUSR2");
    s.wait_ready(LONG);
    let err = s.m.stderr();
    let killed: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("killed by SIGUSR2"))
        .collect();
    let restarts: Vec<(String, u64)> =
        s.m.instances()
            .into_iter()
            .filter(|i| i.restarts > 0)
            .map(|i| (i.name, i.restarts))
            .collect();
    println!("SIGUSR2 to the whole stack: {killed:#?}\nrestarted: {restarts:?}");
}
