//! SPEC §9: the client commands against a live manager.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;

/// `phpeek-pm ARGS` with none of the client's variables inherited:
/// (exit code, stdout, stderr).
fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let run = run_cli(
        args,
        Path::new("."),
        env,
        &[
            "PHPEEK_PM_API_URL",
            "PHPEEK_PM_API_TOKEN",
            "PHPEEK_PM_CONFIG",
        ],
    );
    (run.code, run.stdout, run.stderr)
}

fn config() -> String {
    format!(
        r#"{TEST_GLOBALS}  api_auth: "tok"
processes:
  w:
    command: ["sh", "-c", "echo hello $PHPEEK_PM_INSTANCE_ID; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    scale: 2
"#
    )
}

#[test]
fn status_scale_stop_start_restart_logs_reload() {
    let mut m = Manager::start(&config());
    m.token = Some("tok".into());
    m.wait_running("w", 2);
    let api = m.api();
    let auth = ["--api", api.as_str(), "--token", "tok"];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend_from_slice(&auth);
        cli(&args, &[])
    };

    let (code, out, err) = run(&["status"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("INSTANCE"), "{out}");
    assert!(
        lines[1].starts_with("w-1") && lines[1].contains("running"),
        "{out}"
    );
    assert!(lines[2].starts_with("w-2"), "{out}");

    let (code, out, _) = run(&["status", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);

    let (code, out, err) = run(&["scale", "w", "4", "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Scaling from 2 to 4 instances"), "{out}");
    // --wait returned only once four run.
    assert_eq!(m.process("w").current, 4);

    let (code, out, _) = run(&["stop", "w-4"]);
    assert_eq!(code, 0);
    assert!(out.contains("stop initiated"), "{out}");
    m.wait_instance("w-4", |i| i.state == InstanceState::Stopped);
    assert_eq!(run(&["start", "w-4"]).0, 0);
    m.wait_running("w", 4);
    let before = m.instance("w-1").pid;
    assert_eq!(run(&["restart", "w-1"]).0, 0);
    m.wait_instance("w-1", |i| {
        i.pid != before && i.state == InstanceState::Running
    });

    let (code, out, _) = run(&["logs", "w-2", "-n", "5"]);
    assert_eq!(code, 0);
    assert!(out.contains("[w-2] hello w-2"), "{out}");

    std::fs::write(&m.config, config().replace("scale: 2", "scale: 3")).unwrap();
    let (code, out, err) = run(&["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rescaled  w"), "{out}");
    m.wait_running("w", 3);

    // Refusals are exit 1 with the API's message.
    let (code, _, err) = run(&["scale", "nope", "3"]);
    assert_eq!(code, 1);
    assert!(err.contains("no process named"), "{err}");
}

#[test]
fn address_and_token_come_from_the_environment_and_a_trailing_api_path_is_accepted() {
    let mut m = Manager::start(&config());
    m.token = Some("tok".into());
    m.wait_running("w", 2);
    let url = format!("{}/api/v1", m.api());
    let (code, out, err) = cli(
        &["status"],
        &[("PHPEEK_PM_API_URL", &url), ("PHPEEK_PM_API_TOKEN", "tok")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("w-2"));
    let (code, _, err) = cli(
        &["status"],
        &[("PHPEEK_PM_API_URL", &url), ("PHPEEK_PM_API_TOKEN", "bad")],
    );
    assert_eq!(code, 1);
    assert!(err.contains("unauthorized"), "{err}");
}

#[test]
fn address_and_token_come_from_the_config_file() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let yaml = config().replace("api_port: 0", &format!("api_port: {port}"));
    let mut m = Manager::start(&yaml);
    m.token = Some("tok".into());
    m.wait_running("w", 2);
    let cfg = m.config.to_str().unwrap().to_string();
    let (code, out, err) = cli(&["status", "-c", &cfg], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("w-1"));
}

#[test]
fn exit_codes_for_unreachable_managers_and_bad_usage() {
    let (code, _, err) = cli(&["status", "--api", "http://127.0.0.1:1"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot reach"), "{err}");
    let (code, _, _) = cli(
        &["scale", "w", "minus-one", "--api", "http://127.0.0.1:1"],
        &[],
    );
    assert_eq!(code, 2);
    let (code, _, _) = cli(&["frobnicate"], &[]);
    assert_eq!(code, 2);
    let (code, out, _) = cli(&["completions", "bash"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("phpeek-pm"));
    let (code, out, _) = cli(&["version"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("phpeek-pm "));
}
