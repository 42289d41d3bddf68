//! A real Prometheus (Debian's `prometheus`) scraping a live manager on
//! loopback: the seed's PromQL and every query of the Grafana dashboard
//! (deploy/grafana/phpeek-pm.json) are evaluated by Prometheus itself and
//! checked against the manager's own API; `promtool check metrics` lints a
//! scrape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

const TEST: &str = "prometheus";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A Prometheus on a free loopback port with its own config and TSDB in a
/// temp dir, scraping one target every second; ended by its pid on drop.
struct Prometheus {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str, metrics_path: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: phpeek-pm\n    metrics_path: {metrics_path}\n\
                 \x20   static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        // Ready, and the target scraped and up.
        wait_for("prometheus to scrape the manager", DEADLINE, || {
            let v = p.try_query("up{job=\"phpeek-pm\"}").ok()?;
            (scalar_of(&v)? == 1.0).then_some(())
        });
        p
    }

    fn log(&self) -> String {
        read(&self.dir.path().join("prometheus.log"))
    }

    /// `GET /api/v1/query`: the result array, or Prometheus's error.
    fn try_query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let url = format!("{}/api/v1/query?query={}", self.base, encode(expr));
        let r = try_send("GET", &url, None, &[]).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&r.body).map_err(|e| format!("{e}: {}", r.body))?;
        if v["status"] != "success" {
            return Err(format!("{expr}: {}", r.body));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// Like [`Prometheus::try_query`]; an error (bad PromQL) fails the test.
    fn query(&self, expr: &str) -> Vec<Value> {
        self.try_query(expr)
            .unwrap_or_else(|e| panic!("query failed: {e}\n{}", self.log()))
    }

    /// Polls `expr` until its single value is `want`.
    fn wait_value(&self, expr: &str, want: f64) {
        let mut last = Vec::new();
        let ok = poll(DEADLINE, || {
            last = self.query(expr);
            (scalar_of(&last) == Some(want)).then_some(())
        });
        assert!(ok.is_some(), "{expr}: want {want}, last answer {last:?}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encoding of a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of a one-element instant vector.
fn scalar_of(result: &[Value]) -> Option<f64> {
    match result {
        [one] => one["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

/// Every `expr` of the dashboard's panels (rows included), and the queries
/// of its template variables.
fn dashboard_queries(dash: &Value) -> (Vec<String>, Vec<String>) {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push(e.to_string());
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut exprs = Vec::new();
    walk(&dash["panels"], &mut exprs);
    let vars = dash["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["query"]["query"].as_str().map(str::to_string))
        .collect();
    (exprs, vars)
}

/// Grafana's variables as a Prometheus query sees them with "All" chosen.
fn grafana_to_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$name", ".*")
}

/// `promtool check metrics` on `text`: (passed, its output).
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), msg)
}

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/phpeek-pm.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Data for every panel: the seed's queue workers, a probed web server, an
/// autoscaled process whose metric asks for more than its max, a schedule
/// every second, and a global hook.
fn config(web_port: u16) -> String {
    format!(
        r#"{TEST_GLOBALS}  hooks:
    pre_start:
      - command: ["sh", "-c", "true"]
processes:
  queue-default:
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    scale: 3
    restart: always
  queue-defaults-other:
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
  web:
    command: ["python3", "-m", "http.server", "--bind", "127.0.0.1", "{web_port}"]
    health_check: {{ type: http, url: "http://127.0.0.1:{web_port}/", period: 1s }}
  auto:
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    scale: 1
    autoscale:
      min: 1
      max: 3
      interval: 1s
      metrics:
        - command: ["sh", "-c", "echo 450"]
          per_instance: 100
  tick:
    command: ["sh", "-c", "echo tick"]
    schedule: "* * * * * *"
"#
    )
}

#[test]
fn promtool_accepts_a_scrape() {
    if !require(TEST, &["promtool", "python3"]) {
        return;
    }
    let mut m = Manager::start(&config(free_port()));
    m.wait_running("queue-default", 3);
    let url = m.metrics_url();
    // Every family has samples once the schedule and the probes have run.
    let text = wait_for("schedule and probe series", DEADLINE, || {
        let r = send("GET", &url, None, &[]);
        (r.body
            .contains("phpeek_pm_schedule_run_duration_seconds_count")
            && r.body.contains("phpeek_pm_health_checks_total{"))
        .then_some(r)
    });
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let (ok, msg) = promtool_check(&text.body);
    assert!(ok, "promtool check metrics: {msg}\n{}", text.body);
    // Prometheus asks for OpenMetrics and gets it.
    let om = send(
        "GET",
        &url,
        None,
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
    );
    assert!(
        om.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{}",
        om.head
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
}

#[test]
fn seed_promql_and_dashboard_queries_match_the_api() {
    if !require(TEST, &["prometheus", "python3"]) {
        return;
    }
    let mut m = Manager::start(&config(free_port()));
    m.wait_running("queue-default", 3);
    let metrics = m.metrics_url();
    let rest = metrics.strip_prefix("http://").unwrap();
    let (target, path) = rest.split_at(rest.find('/').unwrap());
    let prom = Prometheus::start(target, path);

    // The seed, as written: three workers, each up, no restarts yet.
    let api_count = m.instances_of("queue-default").len() as f64;
    assert_eq!(api_count, 3.0);
    prom.wait_value(
        r#"count(phpeek_pm_process_up{process=~"queue-default-.*"})"#,
        api_count,
    );
    for n in 1..=3 {
        let name = format!("queue-default-{n}");
        let want = if m.instance(&name).state == InstanceState::Running {
            1.0
        } else {
            0.0
        };
        prom.wait_value(
            &format!(r#"phpeek_pm_process_up{{process="{name}"}}"#),
            want,
        );
    }
    let restarts = r#"sum(phpeek_pm_process_restarts_total{process=~"queue-default-.*"})"#;
    prom.wait_value(restarts, 0.0);

    // Kill two workers by pid: the manager restarts them (reason crash),
    // and Prometheus's sum is the API's.
    let pids = m.pids("queue-default");
    for name in ["queue-default-1", "queue-default-2"] {
        let pid = nix::unistd::Pid::from_raw(pids[name]);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    }
    let api_restarts = wait_for("two restarts in the API", DEADLINE, || {
        let sum: u64 = m
            .instances_of("queue-default")
            .iter()
            .map(|i| i.restarts)
            .sum();
        (sum == 2).then_some(sum)
    });
    m.wait_running("queue-default", 3);
    prom.wait_value(restarts, api_restarts as f64);
    prom.wait_value(
        r#"sum(phpeek_pm_process_restarts_total{process=~"queue-default-.*",reason="crash"})"#,
        2.0,
    );

    // Scale up and down through the API: the count follows, and the series
    // of removed instances go stale at once.
    let (status, body) = m.post("/api/v1/processes/queue-default/scale", r#"{"desired": 5}"#);
    assert!((200..300).contains(&status), "{status} {body}");
    m.wait_running("queue-default", 5);
    prom.wait_value(
        r#"count(phpeek_pm_process_up{process=~"queue-default-.*"})"#,
        5.0,
    );
    prom.wait_value(
        r#"phpeek_pm_process_desired_scale{name="queue-default"}"#,
        5.0,
    );
    m.post("/api/v1/processes/queue-default/scale", r#"{"desired": 2}"#);
    m.wait_running("queue-default", 2);
    prom.wait_value(
        r#"count(phpeek_pm_process_up{process=~"queue-default-.*"})"#,
        2.0,
    );
    prom.wait_value(
        r#"phpeek_pm_process_current_scale{name="queue-default"}"#,
        2.0,
    );
    for dir in ["up", "down"] {
        prom.wait_value(
            &format!(r#"phpeek_pm_scale_events_total{{name="queue-default",direction="{dir}"}}"#),
            1.0,
        );
    }
    // Resource metrics from /proc, one per running instance.
    prom.wait_value(
        r#"count(phpeek_pm_process_memory_bytes{name="queue-default"} > 0)"#,
        2.0,
    );
    // No label of ours collides with the target's `instance`.
    let clash = prom.query(r#"{__name__=~"phpeek_pm_.+", exported_instance!=""}"#);
    assert!(clash.is_empty(), "{clash:?}");

    // The autoscaler's recommendation, before the max clamp, as the API
    // reports it; desired is clamped to max.
    let auto = m.wait_process("auto", |p| {
        p.autoscale
            .as_ref()
            .is_some_and(|a| a.recommended.is_some())
    });
    let rec = auto.autoscale.unwrap().recommended.unwrap();
    assert_eq!(rec, 5);
    prom.wait_value(
        r#"max(phpeek_pm_autoscale_recommended_instances{name="auto"})"#,
        rec as f64,
    );
    m.wait_process("auto", |p| p.desired == 3);
    prom.wait_value(r#"phpeek_pm_process_desired_scale{name="auto"}"#, 3.0);

    // Every dashboard query is valid PromQL and, with this manager's data,
    // returns something (rates need a few scrapes: poll).
    let dash = dashboard();
    let (exprs, vars) = dashboard_queries(&dash);
    assert!(exprs.len() >= 20, "{exprs:?}");
    for raw in &exprs {
        let expr = grafana_to_promql(raw);
        let mut last = Vec::new();
        let found = poll(DEADLINE, || {
            last = prom.query(&expr);
            (!last.is_empty()).then_some(())
        });
        assert!(found.is_some(), "dashboard query returned nothing: {expr}");
    }
    // The variable: label_values(METRIC, LABEL) lists every process.
    for v in vars {
        let inner = v
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("unexpected variable query {v}"));
        let (metric, label) = inner.split_once(',').unwrap();
        let url = format!(
            "{}/api/v1/label/{}/values?match[]={}",
            prom.base,
            label.trim(),
            encode(metric.trim())
        );
        let values: Value = decode(&http("GET", &url, None, None).1);
        let listed: Vec<&str> = values["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for p in ["queue-default", "web", "auto", "tick"] {
            assert!(listed.contains(&p), "{v}: {listed:?}");
        }
    }
    // Spot checks of dashboard panels against the API.
    let per_process = grafana_to_promql(r#"sum by (name) (phpeek_pm_process_up{name=~"$name"})"#);
    assert!(exprs.iter().any(|e| grafana_to_promql(e) == per_process));
    let web_up = prom
        .query(&per_process)
        .into_iter()
        .find(|r| r["metric"]["name"] == "web")
        .unwrap();
    assert_eq!(web_up["value"][1], "1");
    let web = m.wait_healthy("web", 1);
    assert_eq!(web.len(), 1);
    prom.wait_value(
        r#"phpeek_pm_health_check_status{name="web",type="http"}"#,
        1.0,
    );
    let tick = m.process("tick");
    assert!(tick.schedule.is_some());
    let runs = prom.query(r#"sum(phpeek_pm_schedule_runs_total{name="tick",result="success"})"#);
    assert!(scalar_of(&runs).is_some_and(|v| v >= 1.0), "{runs:?}");

    m.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(m.wait_exit(DEADLINE), 0, "{}", m.stderr());
    drop(prom);
}
