//! Issue 4 / SPEC §3–4: health checks, readiness, dependency order by
//! health, hot reload, rolling restarts gated on health.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;

use common::*;

/// A base port such that base+1..=base+n are free on loopback right now.
fn free_port_base(n: u16) -> u16 {
    for _ in 0..200 {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port().saturating_sub(1);
        drop(probe);
        if !(1024..=65000).contains(&base) {
            continue;
        }
        let held: Vec<_> = (1..=n)
            .filter_map(|i| TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == n as usize {
            return base;
        }
    }
    panic!("no free port range");
}

/// A python HTTP server on $PHPEEK_PM_INSTANCE_PORT answering 200, or 500
/// once `$DIR/sick-<instance>` exists.
const HTTP_SERVER: &str = r#"
import http.server, os, sys
port = int(os.environ["PHPEEK_PM_INSTANCE_PORT"])
sick = os.path.join(sys.argv[1], "sick-" + os.environ["PHPEEK_PM_INSTANCE_ID"])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500 if os.path.exists(sick) else 200)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// Pids by instance name, of the instances that have one.
fn pid_map(list: Vec<InstanceInfo>) -> BTreeMap<String, i32> {
    list.into_iter()
        .filter_map(|i| Some((i.name, i.pid?)))
        .collect()
}

fn pids(m: &mut Manager, process: &str) -> BTreeMap<String, i32> {
    pid_map(m.instances_of(process))
}

fn wait_healthy(m: &mut Manager, process: &str, n: usize) -> BTreeMap<String, i32> {
    wait_for(
        &format!("{n} healthy instances of {process}"),
        DEADLINE,
        || {
            let list = m.instances_of(process);
            (list.len() == n
                && list
                    .iter()
                    .all(|i| i.state == InstanceState::Running && i.health == Health::Healthy))
            .then(|| pid_map(list))
        },
    )
}

#[test]
fn an_http_instance_answering_500_is_restarted_and_its_siblings_are_not() {
    let base = free_port_base(3);
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  api:
    command: ["python3", "$DIR/server.py", "$DIR"]
    scale: 3
    port_base: {base}
    health_check:
      type: http
      url: "http://127.0.0.1:${{PHPEEK_PM_INSTANCE_PORT}}/health"
      initial_delay: 1s
      period: 200ms
      timeout: 1s
      failure_threshold: 2
"#
    );
    let mut m = Manager::start_with(&yaml, &[], |dir| {
        std::fs::write(dir.join("server.py"), HTTP_SERVER).unwrap();
    });
    let before = wait_healthy(&mut m, "api", 3);
    // A slow start on a loaded machine may already have cost a restart.
    let restarts_before = m.instance("api-2").restarts;
    std::fs::write(m.path("sick-api-2"), "").unwrap();
    let i = m.wait_instance("api-2", |i| i.restarts > restarts_before);
    assert_ne!(i.pid, Some(before["api-2"]));
    std::fs::remove_file(m.path("sick-api-2")).unwrap();
    let after = wait_healthy(&mut m, "api", 3);
    assert_eq!(after["api-1"], before["api-1"]);
    assert_eq!(after["api-3"], before["api-3"]);
    assert!(!alive(before["api-2"]));
    let metrics = http("GET", &m.metrics_url(), None, None).1;
    let health_restarts: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("phpeek_pm_process_restarts_total{name=\"api\",process=\"api-2\",reason=\"health_check\"}")
        })
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
        .unwrap_or(0.0);
    assert!(health_restarts >= 1.0, "{metrics}");
    assert!(
        metrics.contains(
            "phpeek_pm_health_check_status{name=\"api\",process=\"api-1\",type=\"http\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "phpeek_pm_health_checks_total{name=\"api\",type=\"http\",result=\"failure\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("phpeek_pm_health_check_duration_seconds_count{name=\"api\",type=\"http\"}"),
        "{metrics}"
    );
}

#[test]
fn a_hung_exec_probe_is_cut_at_its_timeout() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  w:
    command: ["sleep", "300"]
    health_check:
      type: exec
      command: ["sh", "-c", "echo probe >> $DIR/probes; exec sleep 3000"]
      period: 100ms
      timeout: 300ms
      failure_threshold: 2
"#
    );
    let mut m = Manager::start(&yaml);
    let i = m.wait_instance("w-1", |i| i.restarts >= 1);
    assert_eq!(
        i.health,
        Health::Unknown,
        "a restarted instance starts unknown: {i:?}"
    );
    m.wait_stderr("did not finish within");
    // Killed probes were reaped, not left behind: at most the one in flight.
    let pid = m.pid();
    wait_for("no pile of hung probes", DEADLINE, || {
        let probes = children_of(pid)
            .into_iter()
            .filter(|c| {
                c.state != 'Z'
                    && std::fs::read_to_string(format!("/proc/{}/cmdline", c.pid))
                        .unwrap_or_default()
                        .contains("3000")
            })
            .count();
        (probes <= 1).then_some(())
    });
    assert!(alive(m.pid()));
}

#[test]
fn dependents_wait_for_a_healthy_dependency() {
    let port = free_port_base(1) + 1;
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  db:
    command: ["python3", "-c", "import socket, time; time.sleep(1.0); s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); s.listen(); open('$DIR/order', 'a').write('db-listening %f\\n' % time.time()); time.sleep(300)"]
    health_check:
      type: tcp
      address: "127.0.0.1:{port}"
      initial_delay: 2s
      period: 100ms
      timeout: 1s
  app:
    depends_on: [db]
    command: ["python3", "-c", "import time; open('$DIR/order', 'a').write('app-start %f\\n' % time.time()); time.sleep(300)"]
"#
    );
    let mut m = Manager::start(&yaml);
    // Waiting while db is not healthy.
    let p = m.wait_process("app", |p| p.state == ProcessState::Waiting);
    assert!(p.reason.as_deref().unwrap().contains("db"));
    wait_healthy(&mut m, "db", 1);
    m.wait_running("app", 1);
    let order = wait_file(&m.path("order"), |s| s.lines().count() == 2);
    let t: BTreeMap<&str, f64> = order
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k, v.parse().unwrap())
        })
        .collect();
    assert!(t["app-start"] >= t["db-listening"], "{order}");
}

#[test]
fn ready_flips_from_503_to_200() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  web:
    command: ["sleep", "300"]
    scale: 2
    health_check:
      type: exec
      command: ["test", "-f", "$DIR/ready"]
      period: 100ms
      timeout: 1s
"#
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("web", 2);
    let (status, body) = m.get("/api/v1/ready");
    assert_eq!(status, 503, "{body}");
    let v: ReadyResponse = decode(&body);
    assert_eq!(v.status, "not ready");
    assert!(v.reasons.iter().any(|r| r.contains("web-1")), "{v:?}");
    std::fs::write(m.path("ready"), "").unwrap();
    wait_for("ready 200", DEADLINE, || {
        (m.get("/api/v1/ready").0 == 200).then_some(())
    });
    let v: ReadyResponse = m.get_as("/api/v1/ready");
    assert_eq!(v.status, "ready");
    // Liveness never depended on it.
    assert_eq!(m.get("/api/v1/health").0, 200);
}

fn reload_config(extra: &str, worker_scale: u32, worker_cmd: &str) -> String {
    format!(
        r#"{TEST_GLOBALS}processes:
  keep:
    command: ["sleep", "300"]
    scale: 2
  worker:
    command: ["sh", "-c", "{worker_cmd}"]
    scale: {worker_scale}
{extra}"#
    )
}

#[test]
fn reload_adds_removes_rescales_and_rolls_only_what_changed() {
    let v1 = reload_config(
        "  old:\n    command: [\"sleep\", \"300\"]\n",
        2,
        "exec sleep 301",
    );
    let mut m = Manager::start(&v1);
    let keep = m.wait_running("keep", 2);
    m.wait_running("worker", 2);
    m.wait_running("old", 1);
    let old_pid = pids(&mut m, "old")["old-1"];

    // Rescale keep, change worker's command, drop old, add new.
    let v2 = reload_config(
        "  new:\n    command: [\"sleep\", \"300\"]\n",
        2,
        "exec sleep 302",
    )
    .replace("    scale: 2\n  worker", "    scale: 3\n  worker");
    std::fs::write(&m.config, &v2).unwrap();
    let (status, body) = m.post("/api/v1/reload", "");
    assert_eq!(status, 202, "{body}");
    let r: ReloadResponse = decode(&body);
    assert_eq!(r.added, ["new"]);
    assert_eq!(r.removed, ["old"]);
    assert_eq!(r.rescaled, ["keep"]);
    assert_eq!(r.restarted, ["worker"]);

    m.wait_running("new", 1);
    let keep3 = m.wait_running("keep", 3);
    for (name, pid) in &keep {
        assert!(keep3.contains(&(name.clone(), *pid)), "{name} was touched");
    }
    wait_for("old removed", DEADLINE, || {
        (m.get("/api/v1/processes/old").0 == 404).then_some(())
    });
    assert!(!alive(old_pid));
    wait_for("worker rolled onto the new command", DEADLINE, || {
        let w = pids(&mut m, "worker");
        let all_new = w.len() == 2
            && w.values().all(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .unwrap_or_default()
                    .contains("302")
            });
        all_new.then_some(())
    });
}

#[test]
fn a_broken_file_is_rejected_and_nothing_changes() {
    let v1 = reload_config("", 2, "exec sleep 301");
    let mut m = Manager::start(&v1);
    let keep = m.wait_running("keep", 2);
    let worker = m.wait_running("worker", 2);
    std::fs::write(
        &m.config,
        v1.replace("scale: 2", "scael: 2")
            .replace("sleep 301", "sleep 309")
            + "  bad name:\n    command: []\n",
    )
    .unwrap();
    let (status, body) = m.post("/api/v1/reload", "");
    assert_eq!(status, 400, "{body}");
    let v: ErrorResponse = decode(&body);
    assert_eq!(v.error, "config rejected");
    assert!(v.errors.len() >= 2, "{v:?}");
    assert!(v.errors.iter().any(|e| e.contains("scael")), "{v:?}");
    assert_eq!(m.wait_running("keep", 2), keep);
    assert_eq!(m.wait_running("worker", 2), worker);
    m.wait_stderr("reload rejected");

    // The same through SIGHUP: rejected, logged, nothing changes.
    m.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for("second rejection logged", DEADLINE, || {
        (m.stderr().matches("reload rejected").count() >= 2).then_some(())
    });
    assert_eq!(m.wait_running("worker", 2), worker);
}

#[test]
fn sighup_applies_a_good_file() {
    let v1 = reload_config("", 2, "exec sleep 301");
    let mut m = Manager::start(&v1);
    let keep = m.wait_running("keep", 2);
    std::fs::write(&m.config, reload_config("", 4, "exec sleep 301")).unwrap();
    m.signal(nix::sys::signal::Signal::SIGHUP);
    m.wait_running("worker", 4);
    assert_eq!(m.wait_running("keep", 2), keep);
}

#[test]
fn a_new_version_failing_its_health_check_halts_the_roll() {
    let yaml = |version: &str| {
        format!(
            r#"{TEST_GLOBALS}processes:
  app:
    command: ["sleep", "300"]
    scale: 3
    env:
      VERSION: {version}
    health_check:
      type: exec
      command: ["sh", "-c", "test \"$VERSION\" = good"]
      period: 100ms
      timeout: 1s
      failure_threshold: 2
"#
        )
    };
    let mut m = Manager::start(&yaml("good"));
    let before = wait_healthy(&mut m, "app", 3);
    std::fs::write(&m.config, yaml("bad")).unwrap();
    let (status, body) = m.post("/api/v1/reload", "");
    assert_eq!(status, 202, "{body}");
    let p = m.wait_process("app", |p| {
        p.rollout
            .as_ref()
            .is_some_and(|r| r.state == RolloutPhase::Halted)
    });
    let rollout = p.rollout.as_ref().unwrap();
    assert!(
        rollout.reason.as_deref().unwrap().contains("health"),
        "{p:?}"
    );
    // Only the first instance was replaced; the others still run the old
    // version with their old pids.
    let now = pids(&mut m, "app");
    assert_eq!(now["app-2"], before["app-2"]);
    assert_eq!(now["app-3"], before["app-3"]);
    let running = m
        .instances()
        .into_iter()
        .filter(|i| i.process == "app" && i.state == InstanceState::Running)
        .count();
    assert!(running >= 2);
    // An old instance that crashes comes back on the old definition.
    let old_pid = now["app-3"];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Back (a new pid) and healthy.
    let back = m.wait_instance("app-3", |i| {
        i.pid.is_some_and(|pid| pid != old_pid) && i.health == Health::Healthy
    });
    assert_eq!(
        env_var(back.pid.unwrap(), "VERSION").as_deref(),
        Some("good")
    );
}

#[test]
fn an_empty_file_does_not_stop_everything() {
    let v1 = reload_config("", 2, "exec sleep 301");
    let mut m = Manager::start(&v1);
    let keep = m.wait_running("keep", 2);
    for text in ["", "# only a comment\n"] {
        std::fs::write(&m.config, text).unwrap();
        let (status, body) = m.post("/api/v1/reload", "");
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("no processes"), "{body}");
    }
    assert_eq!(m.wait_running("keep", 2), keep);
}
