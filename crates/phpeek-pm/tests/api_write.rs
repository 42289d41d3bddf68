//! SPEC §5 write side and error paths: every refusal is JSON with its
//! status and changes nothing; the unix socket serves the same API; the
//! OpenAPI document is generated from the handlers and snapshot-checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};

use common::*;

fn config(extra_globals: &str) -> String {
    format!(
        r#"{TEST_GLOBALS}{extra_globals}processes:
  queue-default:
    command: ["sh", "-c", "echo hello from $PHPEEK_PM_INSTANCE_ID; echo oops >&2; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    scale: 2
    max_scale: 10
"#
    )
}

fn error_of(body: &str) -> String {
    decode::<ErrorResponse>(body).error
}

#[test]
fn bad_scale_requests_are_refused_and_change_nothing() {
    let mut m = Manager::start(&config(""));
    let pids = m.wait_running("queue-default", 2);
    let url = format!("{}/api/v1/processes/queue-default/scale", m.api());
    let cases: Vec<(&str, u16)> = vec![
        (r#"{"desired": -1}"#, 400),
        (r#"{"desired": 2.5}"#, 400),
        (r#"{"desired": "3"}"#, 400),
        (r#"{"desired": 99999999999}"#, 400),
        (r#"{"desired": 11}"#, 400),
        (r#"{"wanted": 3}"#, 400),
        (r#"[3]"#, 400),
        ("", 400),
        ("not json", 400),
    ];
    for (body, want) in cases {
        let (status, resp) = http("POST", &url, Some(body), None);
        assert_eq!(status, want, "body {body:?} -> {resp}");
        assert!(!error_of(&resp).is_empty());
    }
    let huge = format!(r#"{{"desired": 3, "pad": "{}"}}"#, "x".repeat(70 * 1024));
    let (status, resp) = http("POST", &url, Some(&huge), None);
    assert_eq!(status, 413, "{resp}");
    error_of(&resp);
    let (status, resp) = m.post("/api/v1/processes/nope/scale", r#"{"desired": 3}"#);
    assert_eq!(status, 404);
    error_of(&resp);
    let (status, resp) = http("GET", &url, None, None);
    assert_eq!(status, 405, "{resp}");
    error_of(&resp);
    for action in ["start", "stop", "restart"] {
        let (status, resp) = m.post(&format!("/api/v1/processes/nope-1/{action}"), "");
        assert_eq!(status, 404, "{action}: {resp}");
    }
    assert_eq!(
        m.wait_running("queue-default", 2),
        pids,
        "a refused request changed something"
    );
    assert!(alive(m.pid()));
}

#[test]
fn form_encoded_curl_bodies_are_read_as_json() {
    let mut m = Manager::start(&config(""));
    m.wait_running("queue-default", 2);
    let url = format!("{}/api/v1/processes/queue-default/scale", m.api());
    let (status, resp) = http(
        "POST",
        &url,
        Some(r#"{"scale": 4}"#),
        Some(&[("Content-Type", "application/x-www-form-urlencoded")]),
    );
    assert_eq!(status, 202, "{resp}");
    m.wait_running("queue-default", 4);
}

#[test]
fn tokens_are_checked_on_every_route_but_health_and_ready() {
    let mut m = Manager::start(&config("  api_auth: \"s3cret\"\n"));
    let api = m.api();
    for (path, method) in [
        ("/api/v1/processes", "GET"),
        ("/api/v1/processes/queue-default", "GET"),
        ("/api/v1/processes/queue-default/scale", "POST"),
        ("/api/v1/processes/queue-default-1/stop", "POST"),
        ("/api/v1/processes/queue-default/logs", "GET"),
        ("/api/v1/openapi.json", "GET"),
    ] {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer"),
            Some("Basic czNjcmV0"),
            Some("Bearer s3cret2"),
        ] {
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
            let Response { head, body, .. } = send(
                method,
                &format!("{api}{path}"),
                Some(r#"{"desired": 3}"#),
                &headers,
            );
            assert!(
                head.starts_with("HTTP/1.1 401"),
                "{method} {path} {auth:?}: {head}"
            );
            assert!(
                head.to_ascii_lowercase()
                    .contains("www-authenticate: bearer"),
                "{head}"
            );
            assert_eq!(error_of(&body), "unauthorized");
        }
    }
    assert_eq!(
        http("GET", &format!("{api}/api/v1/health"), None, None).0,
        200
    );
    let ready = http("GET", &format!("{api}/api/v1/ready"), None, None).0;
    assert!(ready == 200 || ready == 503);
    m.token = Some("s3cret".into());
    m.wait_running("queue-default", 2);
    // Nothing was scaled or stopped by the refused requests.
    assert_eq!(m.process("queue-default").desired, 2);
}

#[test]
fn the_log_ring_returns_the_last_lines() {
    let mut m = Manager::start(&config(""));
    m.wait_running("queue-default", 2);
    let v = wait_for("both instances' lines", DEADLINE, || {
        let v: LogsResponse = m.get_as("/api/v1/processes/queue-default/logs?lines=10");
        (v.lines.len() >= 4).then_some(v)
    });
    assert_eq!(v.process, "queue-default");
    let msgs: Vec<&str> = v.lines.iter().map(|l| l.msg.as_str()).collect();
    assert!(msgs.contains(&"hello from queue-default-1"), "{msgs:?}");
    assert!(msgs.contains(&"hello from queue-default-2"), "{msgs:?}");
    let err = v.lines.iter().find(|l| l.msg == "oops").unwrap();
    assert_eq!(err.stream, "stderr");
    assert!(err.ts.ends_with('Z'));
    let one: LogsResponse = m.get_as("/api/v1/processes/queue-default-2/logs?lines=1");
    assert_eq!(one.lines.len(), 1);
    assert_eq!(one.lines[0].instance, "queue-default-2");
    let (status, body) = m.get("/api/v1/processes/queue-default/logs?lines=abc");
    assert_eq!(status, 400);
    error_of(&body);
    assert_eq!(m.get("/api/v1/processes/nope/logs").0, 404);
}

#[test]
fn the_unix_socket_serves_the_same_api() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("pm.sock");
    let mut m = Manager::start(&config(&format!("  api_socket: {}\n", sock.display())));
    m.wait_running("queue-default", 2);
    wait_for("socket", DEADLINE, || sock.exists().then_some(()));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let ask = |req: &str| {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let out = ask("GET /api/v1/processes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("queue-default-2"));
    let body = r#"{"desired": 3}"#;
    let out = ask(&format!(
        "POST /api/v1/processes/queue-default/scale HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert!(out.starts_with("HTTP/1.1 202"), "{out}");
    m.wait_running("queue-default", 3);
}

#[test]
fn openapi_document_matches_the_snapshot() {
    let mut m = Manager::start(&config(""));
    let doc = m.get_json("/api/v1/openapi.json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/health",
        "/api/v1/ready",
        "/api/v1/processes",
        "/api/v1/processes/{name}",
        "/api/v1/processes/{name}/scale",
        "/api/v1/processes/{name}/start",
        "/api/v1/processes/{name}/stop",
        "/api/v1/processes/{name}/restart",
        "/api/v1/processes/{name}/logs",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    // Every reference resolves (schemathesis skips what does not).
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in &refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "unresolvable reference {r}");
    }
    let snapshot =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json");
    let pretty = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(snapshot.parent().unwrap()).unwrap();
        std::fs::write(&snapshot, &pretty).unwrap();
    }
    let want = std::fs::read_to_string(&snapshot)
        .expect("snapshot missing: run with UPDATE_SNAPSHOTS=1 and review the diff");
    assert_eq!(
        pretty, want,
        "the API changed: review, then UPDATE_SNAPSHOTS=1"
    );
}

#[test]
fn idle_connections_cannot_starve_the_manager() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  crasher:
    command: ["sh", "-c", "echo run >> $DIR/runs; sleep 0.1; exit 1"]
"#
    );
    let mut m = Manager::start(&yaml);
    let api = m.api();
    let host = api.strip_prefix("http://").unwrap().to_string();
    // Far more idle connections than the API serves at once.
    let idle: Vec<std::net::TcpStream> = (0..600)
        .filter_map(|_| std::net::TcpStream::connect(&host).ok())
        .collect();
    assert!(idle.len() > 300);
    let runs = |m: &Manager| {
        std::fs::read_to_string(m.path("runs"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let before = runs(&m);
    wait_for("restarts go on", DEADLINE, || {
        (runs(&m) >= before + 5).then_some(())
    });
    let fds = std::fs::read_dir(format!("/proc/{}/fd", m.pid()))
        .unwrap()
        .count();
    assert!(fds < 400, "the manager holds {fds} descriptors");
    drop(idle);
    wait_for("API answers again", DEADLINE, || {
        // A connection may still be reset while the idle ones are torn down.
        let r = try_send("GET", &format!("{api}/api/v1/health"), None, &[]).ok()?;
        (r.status == 200).then_some(())
    });
}

#[test]
fn without_a_token_unknown_routes_and_methods_reveal_nothing() {
    let mut m = Manager::start(&config("  api_auth: \"s3cret\"\n"));
    let api = m.api();
    for (method, path) in [
        ("GET", "/api/v1/nope"),
        ("GET", "/api/v1/processes/queue-default/scale"),
        ("DELETE", "/api/v1/processes"),
    ] {
        let (status, body) = http(method, &format!("{api}{path}"), None, None);
        assert_eq!(status, 401, "{method} {path}: {body}");
    }
    let auth = [("Authorization", "Bearer s3cret")];
    assert_eq!(
        http("GET", &format!("{api}/api/v1/nope"), None, Some(&auth)).0,
        404
    );
    assert_eq!(
        http(
            "DELETE",
            &format!("{api}/api/v1/processes"),
            None,
            Some(&auth)
        )
        .0,
        405
    );
}

#[test]
fn a_stopped_instance_is_not_reported_healthy() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  w:
    command: ["sleep", "300"]
    scale: 2
    health_check:
      type: exec
      command: ["true"]
      period: 100ms
"#
    );
    let mut m = Manager::start(&yaml);
    m.wait_instance("w-2", |i| i.health == Health::Healthy);
    assert_eq!(m.post("/api/v1/processes/w-2/stop", "").0, 202);
    let i = m.wait_instance("w-2", |i| i.state == InstanceState::Stopped);
    assert_eq!(i.health, Health::Unknown);
    let metrics = http("GET", &m.metrics_url(), None, None).1;
    assert!(
        !metrics.contains("phpeek_pm_health_check_status{name=\"w\",process=\"w-2\""),
        "{metrics}"
    );
}

/// Every `$ref` string in `v`.
fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}
