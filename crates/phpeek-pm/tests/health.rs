//! Issue 4 / SPEC §3–4: health checks, readiness, dependency order by
//! health. Reload and rolling restarts are in `reload.rs` and `rollout.rs`.
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
    let before = m.wait_healthy("api", 3);
    // A slow start on a loaded machine may already have cost a restart.
    let restarts_before = m.instance("api-2").restarts;
    std::fs::write(m.path("sick-api-2"), "").unwrap();
    let i = m.wait_instance("api-2", |i| i.restarts > restarts_before);
    assert_ne!(i.pid, Some(before["api-2"]));
    std::fs::remove_file(m.path("sick-api-2")).unwrap();
    let after = m.wait_healthy("api", 3);
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
    m.wait_healthy("db", 1);
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
