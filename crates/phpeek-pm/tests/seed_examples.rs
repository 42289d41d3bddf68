//! The user's document (shared/seed/process-scaling.md), run as written:
//! its curl calls, jq filters, shell scripts and PromQL, against a live
//! manager. Only the host:port is pointed at the test's manager, and the
//! scripts' sleeps are shortened where the script itself says how long.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

const TOKEN: &str = "your-api-token";

/// Starts a manager whose API requires the seed's token.
fn start_with_token(yaml: &str) -> Manager {
    let mut m = Manager::start(yaml);
    m.token = Some(TOKEN.to_string());
    m
}

fn queue_config(auth: bool) -> String {
    let auth = if auth {
        format!("  api_auth: \"{TOKEN}\"\n")
    } else {
        String::new()
    };
    format!(
        r#"{TEST_GLOBALS}{auth}processes:
  queue-default:
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    scale: 3
    restart: always
  queue-high:
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    scale: 2
"#
    )
}

/// Runs a bash script (seed text with the API address swapped) to the end;
/// returns its exit code and stdout.
fn run_bash(script: &str, path_prefix: Option<&std::path::Path>) -> (i32, String) {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).stdin(Stdio::null());
    if let Some(dir) = path_prefix {
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path);
    }
    let out = cmd.output().unwrap();
    // stdout only: curl's progress meter goes to stderr.
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn curl_scale_call_and_answer_match_the_seed() {
    if !require(module_path!(), &["curl"]) {
        return;
    }
    let mut m = start_with_token(&queue_config(true));
    m.wait_running("queue-default", 3);
    let base = m.api();
    let script = format!(
        r#"TOKEN="{TOKEN}"
curl -X POST \
  -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" \
  -d '{{"desired": 10}}' \
  {base}/api/v1/processes/queue-default/scale"#
    );
    let (code, out) = run_bash(&script, None);
    assert_eq!(code, 0, "{out}");
    let body: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "status": "scaling",
            "process": "queue-default",
            "current": 3,
            "desired": 10,
            "message": "Scaling from 3 to 10 instances"
        })
    );
    m.wait_running("queue-default", 10);
}

#[test]
fn jq_instance_listing_works_as_written() {
    if !require(module_path!(), &["curl", "jq"]) {
        return;
    }
    let mut m = start_with_token(&queue_config(true));
    m.wait_running("queue-default", 3);
    m.wait_running("queue-high", 2);
    let base = m.api();
    let script = format!(
        r#"TOKEN="{TOKEN}"
curl -H "Authorization: Bearer $TOKEN" \
  {base}/api/v1/processes | \
  jq '.[] | select(.name | startswith("queue-default-"))' | jq -s -c 'map({{name, state, pid, uptime}})'"#
    );
    let (code, out) = run_bash(&script, None);
    assert_eq!(code, 0, "{out}");
    let list: Vec<Value> = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let names: Vec<&str> = list.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["queue-default-1", "queue-default-2", "queue-default-3"]
    );
    for i in &list {
        assert_eq!(i["state"], "running");
        assert!(i["pid"].as_i64().unwrap() > 0);
        assert!(i["uptime"].is_u64());
    }
}

#[test]
fn auto_scale_script_scales_by_queue_depth() {
    if !require(module_path!(), &["curl", "jq"]) {
        return;
    }
    let mut m = start_with_token(&queue_config(true));
    m.wait_running("queue-default", 3);
    let base = m.api();
    // A fake `php artisan queue:size default` reporting 600 jobs: the script
    // must pick 10 workers.
    let bin = m.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    script(&bin, "php", "echo 600");
    let seed = format!(
        r#"API_URL="{base}/api/v1"
TOKEN="{TOKEN}"

while true; do
    # Get queue depth
    QUEUE_DEPTH=$(php artisan queue:size default)

    # Calculate desired workers
    if [ "$QUEUE_DEPTH" -gt 1000 ]; then
        DESIRED=20
    elif [ "$QUEUE_DEPTH" -gt 500 ]; then
        DESIRED=10
    elif [ "$QUEUE_DEPTH" -gt 100 ]; then
        DESIRED=5
    else
        DESIRED=2
    fi

    # Scale if needed
    CURRENT=$(curl -s -H "Authorization: Bearer $TOKEN" "$API_URL/processes/queue-default" | jq '.scale')

    if [ "$CURRENT" != "$DESIRED" ]; then
        echo "Scaling from $CURRENT to $DESIRED workers (queue depth: $QUEUE_DEPTH)"
        curl -X POST \
          -H "Authorization: Bearer $TOKEN" \
          -H "Content-Type: application/json" \
          -d "{{\"desired\": $DESIRED}}" \
          "$API_URL/processes/queue-default/scale"
    fi

    # one pass is enough for the test (the seed sleeps 60 s and loops)
    break
done"#
    );
    let (code, out) = run_bash(&seed, Some(&bin));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Scaling from 3 to 10 workers (queue depth: 600)"),
        "{out}"
    );
    m.wait_running("queue-default", 10);
    // A second pass sees `.scale == 10` and does nothing.
    let (_, out) = run_bash(&seed, Some(&bin));
    assert!(!out.contains("Scaling from"), "{out}");
}

#[test]
fn gradual_scale_up_script_reaches_its_target() {
    if !require(module_path!(), &["curl"]) {
        return;
    }
    let mut m =
        start_with_token(&queue_config(true).replace("scale: 3", "scale: 2\n    max_scale: 20"));
    m.wait_running("queue-default", 2);
    let base = m.api();
    let seed = format!(
        r#"API_URL="{base}/api/v1"
TOKEN="{TOKEN}"

CURRENT=2
TARGET=20
STEP=2
DELAY=0

while [ $CURRENT -lt $TARGET ]; do
    CURRENT=$((CURRENT + STEP))
    echo "Scaling to $CURRENT workers..."

    curl -X POST \
      -H "Authorization: Bearer $TOKEN" \
      -H "Content-Type: application/json" \
      -d "{{\"desired\": $CURRENT}}" \
      "$API_URL/processes/queue-default/scale"

    echo "Waiting ${{DELAY}}s before next increment..."
    sleep $DELAY
done

echo "Reached target: $TARGET workers""#
    );
    let (code, out) = run_bash(&seed, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Reached target: 20 workers"));
    assert_eq!(out.matches("\"status\":\"scaling\"").count(), 9, "{out}");
    m.wait_running("queue-default", 20);
}

#[test]
fn canary_promotion_without_a_token() {
    if !require(module_path!(), &["curl"]) {
        return;
    }
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  app-stable:
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    scale: 9
  app-canary:
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    scale: 1
"#
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("app-stable", 9);
    let base = m.api();
    let seed = format!(
        r#"API_URL="{base}/api/v1"
curl -X POST -d '{{"desired": 10}}' "$API_URL/processes/app-canary/scale"
curl -X POST -d '{{"desired": 0}}' "$API_URL/processes/app-stable/scale""#
    );
    let (code, out) = run_bash(&seed, None);
    assert_eq!(code, 0, "{out}");
    m.wait_running("app-canary", 10);
    wait_for("stable gone", DEADLINE, || {
        m.instances()
            .iter()
            .all(|i| i.process != "app-stable")
            .then_some(())
    });
    assert_eq!(m.process("app-stable").scale, 0);
    // The metrics endpoint answers the seed's curl | grep.
    let metrics = m.metrics_url();
    let (code, out) = run_bash(
        &format!("curl -s {metrics} | grep 'phpeek_pm_process_up'"),
        None,
    );
    assert_eq!(code, 0, "{out}");
}

// The seed's PromQL is evaluated by a real Prometheus in tests/prometheus.rs.
