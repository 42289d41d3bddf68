#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! SPEC §5, the reading side of the management API: health, auth, errors,
//! the non-loopback guard and the seed's jq filter.

mod common;
use common::*;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

fn sleeper(name: &str, scale: u32) -> String {
    format!("  {name}:\n    command: [\"sleep\", \"1000\"]\n    scale: {scale}\n")
}

#[test]
fn health_answers_healthy() {
    let yaml = format!("{TEST_GLOBALS}processes:\n{}", sleeper("web", 1));
    let mut m = Manager::start(&yaml);
    let (status, body) = m.get("/api/v1/health");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body), serde_json::json!({"status": "healthy"}));
}

#[test]
fn bearer_token_guards_everything_but_health_and_ready() {
    let yaml = format!(
        "{TEST_GLOBALS}  api_auth: \"s3cret\"\nprocesses:\n{}",
        sleeper("web", 2)
    );
    let mut m = Manager::start(&yaml);

    let r = m.request("GET", "/api/v1/processes", &[]);
    assert_eq!(r.status, 401, "no token: {}\n{}", r.head, r.body);
    assert_eq!(json(&r.body), serde_json::json!({"error": "unauthorized"}));
    let www = r
        .header("WWW-Authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate: {}", r.head));
    assert!(www.starts_with("Bearer"), "{www}");

    for bad in [
        "Bearer wrong",
        "Bearer s3cret2",
        "Bearer s3cre",
        "Basic s3cret",
        "s3cret",
        "Bearer ",
    ] {
        let r = m.request("GET", "/api/v1/processes", &[("Authorization", bad)]);
        assert_eq!(r.status, 401, "{bad:?}: {}\n{}", r.head, r.body);
        assert_eq!(json(&r.body)["error"], "unauthorized", "{bad:?}");
    }
    // other protected routes too
    for path in [
        "/api/v1/processes/web",
        "/api/v1/processes/web-1",
        "/api/v1/processes/web/logs",
    ] {
        let r = m.request("GET", path, &[]);
        assert_eq!(r.status, 401, "{path}: {}", r.head);
    }
    let r = m.request("POST", "/api/v1/processes/web/stop", &[]);
    assert_eq!(r.status, 401, "a write without token: {}", r.head);

    let r = m.request(
        "GET",
        "/api/v1/processes",
        &[("Authorization", "Bearer s3cret")],
    );
    assert_eq!(r.status, 200, "{}\n{}", r.head, r.body);
    assert!(json(&r.body).is_array(), "{}", r.body);

    let r = m.request("GET", "/api/v1/health", &[]);
    assert_eq!(r.status, 200, "health needs no token: {}", r.head);
    assert_eq!(json(&r.body)["status"], "healthy");
    let r = m.request("GET", "/api/v1/ready", &[]);
    assert!(
        r.status == 200 || r.status == 503,
        "ready needs no token: {}",
        r.head
    );

    // the write was refused: both instances still run
    wait_for("both instances running", DEADLINE, || {
        let r = m.request(
            "GET",
            "/api/v1/processes/web",
            &[("Authorization", "Bearer s3cret")],
        );
        (r.status == 200 && decode::<ProcessInfo>(&r.body).current == 2).then_some(())
    });
}

#[test]
fn unknown_routes_and_wrong_methods_answer_json_errors() {
    let yaml = format!("{TEST_GLOBALS}processes:\n{}", sleeper("web", 1));
    let mut m = Manager::start(&yaml);
    for path in [
        "/api/v1/nope",
        "/nope",
        "/api/v2/processes",
        "/api/v1/processes/web-1/bogus",
    ] {
        let r = m.request("GET", path, &[]);
        assert_eq!(r.status, 404, "{path}: {}\n{}", r.head, r.body);
        assert!(json(&r.body)["error"].is_string(), "{path}: {}", r.body);
    }
    for (method, path) in [
        ("DELETE", "/api/v1/processes"),
        ("POST", "/api/v1/processes"),
        ("POST", "/api/v1/health"),
        ("GET", "/api/v1/processes/web/scale"),
        ("PUT", "/api/v1/processes/web"),
    ] {
        let r = m.request(method, path, &[]);
        assert_eq!(r.status, 405, "{method} {path}: {}\n{}", r.head, r.body);
        assert!(
            json(&r.body)["error"].is_string(),
            "{method} {path}: {}",
            r.body
        );
    }
}

#[test]
fn list_query_values_outside_the_document_answer_400_whatever_the_view() {
    // The document types `resources` as a boolean and `view` as an enum; a
    // value outside either is refused, also when the other parameter picks
    // a branch that would not use it (schemathesis found
    // `?resources=-1616&view=processes` answered 200).
    let yaml = format!("{TEST_GLOBALS}processes:\n{}", sleeper("web", 1));
    let mut m = Manager::start(&yaml);
    for query in [
        "resources=-1616&view=processes",
        "resources=yes",
        "resources=",
        "view=",
        "view=bogus&resources=true",
    ] {
        let path = format!("/api/v1/processes?{query}");
        let (status, body) = m.get(&path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(json(&body)["error"].is_string(), "{path}: {body}");
    }
    for query in [
        "resources=true&view=processes",
        "resources=false&view=instances",
        "view=processes",
        "resources=true",
    ] {
        let path = format!("/api/v1/processes?{query}");
        let (status, body) = m.get(&path);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(json(&body).is_array(), "{path}: {body}");
    }
}

#[test]
fn non_loopback_api_without_auth_is_refused() {
    let yaml = "global:
  api_host: 0.0.0.0
  api_port: 0
  metrics_host: 127.0.0.1
  metrics_port: 0
processes:
  marker:
    command: [\"$DIR/mark.sh\"]
";
    let mut m = Manager::start_with(yaml, &[], |d| {
        script(
            d,
            "mark.sh",
            "touch \"$(dirname \"$0\")/started\"\nexec sleep 1000",
        );
    });
    let code = m.wait_exit(DEADLINE);
    let err = m.stderr();
    assert_eq!(
        code, 2,
        "a non-loopback API without api_auth is a config error\nstderr:\n{err}"
    );
    assert!(
        err.contains("api_auth") || err.contains("api_insecure"),
        "the error says what to set:\n{err}"
    );
    assert!(!m.path("started").exists(), "no child may start");
    assert!(!err.contains("API listening"), "{err}");
}

#[test]
fn non_loopback_api_with_insecure_starts() {
    let yaml = format!(
        "global:
  api_host: 0.0.0.0
  api_port: 0
  api_insecure: true
  metrics_host: 127.0.0.1
  metrics_port: 0
processes:
{}",
        sleeper("web", 1)
    );
    let mut m = Manager::start(&yaml);
    let url = m.api();
    // talk to it over loopback
    let url = url.replace("0.0.0.0", "127.0.0.1");
    let (status, body) = http("GET", &format!("{url}/api/v1/health"), None, None);
    assert_eq!(status, 200, "{body}");
    m.wait_running("web", 1);
    assert!(m.running());
}

#[test]
fn the_seed_jq_filter_selects_one_process_in_order() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:\n{}{}{}",
        sleeper("queue-high", 2),
        sleeper("queue-default", 3),
        sleeper("queue", 1)
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("queue-default", 3);
    m.wait_running("queue-high", 2);
    m.wait_running("queue", 1);
    // Raw JSON on purpose: this is what the seed's jq filter sees.
    let all: Vec<serde_json::Value> = m.get_as("/api/v1/processes");
    let names: Vec<&str> = all.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "queue-1",
            "queue-default-1",
            "queue-default-2",
            "queue-default-3",
            "queue-high-1",
            "queue-high-2"
        ]
    );
    // jq '.[] | select(.name | startswith("queue-default-"))'
    let picked: Vec<&serde_json::Value> = all
        .iter()
        .filter(|i| {
            i["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("queue-default-"))
        })
        .collect();
    let picked_names: Vec<&str> = picked.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        picked_names,
        ["queue-default-1", "queue-default-2", "queue-default-3"]
    );
    for i in picked {
        assert_eq!(i["state"], "running", "{i}");
        assert!(i["pid"].as_i64().is_some_and(|p| alive(p as i32)), "{i}");
        assert!(i["uptime"].is_u64(), "{i}");
    }
}
