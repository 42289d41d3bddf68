//! The autoscaler against a real queue (SPEC 12): Debian's `redis-server`
//! on a free loopback port, workers that BLPOP jobs with `redis-cli` and
//! print Laravel-style `--json` status lines, the real binary scaling them.
//! A machine without `redis-server` reports these tests skipped (under CI
//! they fail).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

/// A worker: takes jobs from `jobs` one at a time, says so as Laravel's
/// `queue:work --json` does, records each finished job in `$DIR/done`, and
/// on SIGTERM finishes the job in hand before it exits (as Laravel's worker
/// does). The stop signal goes to the whole group, so its helpers
/// (`redis-cli`, `sleep`) ignore it: a `redis-cli` killed between taking a
/// job and printing it would lose that job.
fn worker(dir: &std::path::Path, port: u16, job_seconds: &str) -> std::path::PathBuf {
    script(
        dir,
        "worker.sh",
        &format!(
            r#"stop=0
trap 'stop=1' TERM
while [ $stop = 0 ]; do
  job=$(trap '' TERM; redis-cli -p {port} --raw BLPOP jobs 1 | tail -n 1)
  [ -z "$job" ] && continue
  echo "{{\"level\":\"info\",\"job\":\"App.Jobs.Work\",\"id\":\"$job\",\"status\":\"starting\"}}"
  echo "$job $PHPEEK_PM_INSTANCE_ID" >> {dir}/started
  (trap '' TERM; exec sleep {job_seconds})
  echo "$job" >> {dir}/done
  echo "{{\"level\":\"info\",\"id\":\"$job\",\"status\":\"success\",\"duration\":{job_seconds}}}"
done"#,
            dir = dir.display()
        ),
    )
}

fn jobs(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("job-{i}")).collect()
}

#[test]
fn a_backlog_scales_workers_up_by_max_step_and_back_to_min_once_drained() {
    let Some(redis) = Redis::start("autoscale::backlog") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), redis.port, "0.05");
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  queue:
    command: ["{w}"]
    scale: 1
    shutdown: {{ timeout: 10s }}
    autoscale:
      min: 1
      max: 8
      interval: 1s
      metrics:
        - redis: {{ url: "{url}", llen: jobs }}
          per_instance: 250
      behavior:
        scale_up: {{ stabilization: 0s, max_step: 4, period: 1s }}
        scale_down: {{ stabilization: 3s, max_step: 100%, period: 1s }}
"#,
        w = w.display(),
        url = redis.url()
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("queue", 1);
    let start = Instant::now();
    redis.rpush("jobs", &jobs(2000));
    // Follow the desired count until the backlog is gone and the count is
    // back at min.
    let mut series: Vec<(u128, u32, u32, i64)> = Vec::new();
    let mut drained_at = None;
    let done = poll(Duration::from_secs(120), || {
        let p = m.process("queue");
        let depth = redis.llen("jobs");
        if series.last().map(|s| (s.1, s.2)) != Some((p.desired, p.current)) {
            series.push((start.elapsed().as_millis(), p.desired, p.current, depth));
        }
        if depth == 0 && drained_at.is_none() {
            drained_at = Some(start.elapsed());
        }
        (drained_at.is_some()
            && p.desired == 1
            && p.current == 1
            && series.iter().any(|s| s.1 == 8))
        .then_some(())
    });
    eprintln!("ms, desired, running, depth:");
    for s in &series {
        eprintln!("{:>6} {:>2} {:>2} {:>5}", s.0, s.1, s.2, s.3);
    }
    assert!(
        done.is_some(),
        "did not scale up to 8 and back to 1: {series:?}"
    );
    // Up in steps of at most max_step, first from min.
    let desired: Vec<u32> = series.iter().map(|s| s.1).collect();
    let mut dedup = desired.clone();
    dedup.dedup();
    assert_eq!(dedup.first(), Some(&1));
    for w in dedup.windows(2) {
        if w[1] > w[0] {
            assert!(w[1] - w[0] <= 4, "a step above max_step: {dedup:?}");
        }
    }
    assert_eq!(dedup.iter().copied().max(), Some(8), "{dedup:?}");
    // Every job once (the last ones may still be in hand).
    let done_path = dir.path().join("done");
    poll(DEADLINE, || {
        (read(&done_path).lines().count() >= 2000).then_some(())
    });
    let done_jobs = read(&done_path);
    let lines: Vec<&str> = done_jobs.lines().collect();
    let unique: BTreeSet<&str> = lines.iter().copied().collect();
    let started = read(&dir.path().join("started"));
    let lost: Vec<&str> = started
        .lines()
        .filter(|l| !unique.contains(l.split_whitespace().next().unwrap_or("")))
        .collect();
    assert_eq!(
        (lines.len(), unique.len()),
        (2000, 2000),
        "started, not done: {lost:?}; {}",
        m.stderr()
    );
    let p = m.wait_process("queue", |p| {
        p.autoscale
            .as_ref()
            .and_then(|a| a.last.as_ref())
            .is_some_and(|l| l.metrics[0].value == Some(0.0))
    });
    let a = p.autoscale.expect("the autoscale object");
    assert_eq!(a.state, "active");
    assert_eq!(a.last.expect("a last decision").metrics[0].name, "redis");
    m.wait_stderr("autoscale `queue`: 1 → 5");
}

#[test]
fn idle_first_stops_only_idle_workers() {
    let Some(redis) = Redis::start("autoscale::idle_first") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), redis.port, "4");
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  queue:
    command: ["{w}"]
    scale: 4
    shutdown: {{ timeout: 20s }}
    scale_down:
      order: idle_first
      idle: {{ laravel_json: true }}
"#,
        w = w.display()
    );
    let mut m = Manager::start(&yaml);
    let before = m.wait_running("queue", 4);
    redis.rpush("jobs", &jobs(2));
    let started = dir.path().join("started");
    let busy: Vec<String> = wait_for("two busy workers", DEADLINE, || {
        let text = read(&started);
        let who: Vec<String> = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect();
        (who.len() == 2).then_some(who)
    });
    // The manager sees them busy through their output (a line or two later).
    wait_for("the busy lines read", DEADLINE, || {
        let logs = m.get_json("/api/v1/processes/queue/logs?lines=50");
        let n = logs["lines"].as_array().map_or(0, |l| {
            l.iter()
                .filter(|x| x["msg"].as_str().unwrap_or("").contains("starting"))
                .count()
        });
        (n >= 2).then_some(())
    });
    let (code, body) = m.post("/api/v1/processes/queue/scale", r#"{"desired": 2}"#);
    assert_eq!(code, 202, "{body}");
    let kept = m.wait_running("queue", 2);
    let kept_names: BTreeSet<String> = kept.iter().map(|(n, _)| n.clone()).collect();
    let busy_names: BTreeSet<String> = busy.iter().cloned().collect();
    assert_eq!(kept_names, busy_names, "the busy ones stay");
    // Same pids: not restarted, not signalled to death.
    for (name, pid) in &kept {
        let was = before.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
        assert_eq!(was, Some(*pid), "{name}");
    }
    wait_for("both jobs done", DEADLINE, || {
        (read(&dir.path().join("done")).lines().count() == 2).then_some(())
    });
    // A scale-up fills the lowest free numbers.
    m.post("/api/v1/processes/queue/scale", r#"{"desired": 3}"#);
    let names: BTreeSet<String> = m
        .wait_running("queue", 3)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let missing: Vec<u32> = (1..=4)
        .filter(|n| !busy_names.contains(&format!("queue-{n}")))
        .collect();
    assert!(
        names.contains(&format!("queue-{}", missing[0])),
        "{names:?} {missing:?}"
    );
}

#[test]
fn a_redis_that_goes_away_never_scales_down_and_the_fallback_applies() {
    let Some(mut redis) = Redis::start("autoscale::redis_down") else {
        return;
    };
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  queue:
    command: ["sleep", "300"]
    scale: 1
    autoscale:
      min: 1
      max: 10
      interval: 1s
      fallback: 6
      metrics:
        - redis: {{ url: "{url}", llen: jobs }}
          per_instance: 250
          timeout: 500ms
      behavior:
        scale_up: {{ stabilization: 0s, max_step: 10, period: 1s }}
        scale_down: {{ stabilization: 2s, max_step: 100%, period: 1s }}
"#,
        url = redis.url()
    );
    let mut m = Manager::start(&yaml);
    redis.rpush("jobs", &jobs(1000));
    m.wait_process("queue", |p| p.desired == 4);
    redis.kill();
    // Errors are counted and shown; after 3 failed rounds the fallback.
    let p = m.wait_process("queue", |p| p.desired == 6);
    let a = p.autoscale.unwrap();
    assert_eq!(a.state, "error");
    let last = a.last.unwrap();
    assert!(last.metrics[0].error.is_some(), "{last:?}");
    let url = m.metrics_url();
    let text = wait_for("error counter", DEADLINE, || {
        let r = try_send("GET", &url, None, &[]).ok()?;
        r.body
            .contains("phpeek_pm_autoscale_errors_total{name=\"queue\",metric=\"redis\"}")
            .then_some(r.body)
    });
    assert!(
        text.contains("phpeek_pm_autoscale_recommended_instances{name=\"queue\"}"),
        "{text}"
    );
    // Redis comes back, empty: the count follows it down to min.
    redis.restart();
    let p = m.wait_process("queue", |p| p.desired == 1);
    assert_eq!(p.autoscale.unwrap().state, "active");
}

#[test]
fn dry_run_and_manual_pause_act_on_nothing() {
    let Some(redis) = Redis::start("autoscale::dry_run") else {
        return;
    };
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  dry:
    command: ["sleep", "300"]
    scale: 1
    autoscale:
      min: 1
      max: 10
      interval: 1s
      dry_run: true
      metrics:
        - redis: {{ url: "{url}", llen: jobs }}
          per_instance: 100
  live:
    command: ["sleep", "300"]
    scale: 1
    autoscale:
      min: 1
      max: 10
      interval: 1s
      metrics:
        - redis: {{ url: "{url}", llen: other }}
          per_instance: 100
"#,
        url = redis.url()
    );
    let mut m = Manager::start(&yaml);
    redis.rpush("jobs", &jobs(500));
    let p = m.wait_process("dry", |p| {
        p.autoscale
            .as_ref()
            .is_some_and(|a| a.recommended == Some(5))
    });
    assert_eq!(
        (p.desired, p.autoscale.unwrap().state.as_str()),
        (1, "dry_run")
    );
    let url = m.metrics_url();
    wait_for("the recommendation exported", DEADLINE, || {
        let r = try_send("GET", &url, None, &[]).ok()?;
        r.body
            .contains("phpeek_pm_autoscale_recommended_instances{name=\"dry\"} 5")
            .then_some(())
    });
    // A manual scale pauses `live`; the CLI re-enables it.
    let (code, body) = m.post("/api/v1/processes/live/scale", r#"{"desired": 3}"#);
    assert_eq!(code, 202, "{body}");
    m.wait_process("live", |p| {
        p.autoscale.as_ref().is_some_and(|a| a.state == "manual")
    });
    redis.rpush("other", &jobs(700));
    let api = m.api();
    let dir = m.dir.path().to_path_buf();
    let env = [("PHPEEK_PM_API_URL", api.as_str())];
    let out = run_cli(&["autoscale", "live"], &dir, &env, &[]);
    assert!(out.stdout.contains("manual"), "{}", out.stdout);
    assert_eq!(m.process("live").desired, 3, "paused");
    let out = run_cli(&["autoscale", "live", "on"], &dir, &env, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("autoscale enabled"), "{}", out.stdout);
    m.wait_process("live", |p| p.desired == 7);
    // Relative scale from the CLI.
    let out = run_cli(&["scale", "dry", "+2"], &dir, &env, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(m.process("dry").desired, 3);
    let status = run_cli(&["status"], &dir, &env, &[]);
    assert!(
        status.stdout.contains("AUTOSCALE") && status.stdout.contains("dry_run"),
        "{}",
        status.stdout
    );
}
