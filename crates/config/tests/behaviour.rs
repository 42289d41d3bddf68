//! Loader behaviour: error collection and rendering, overrides, defaults,
//! substitution, round trip, schema.

use std::time::Duration;

use phpeek_config::{
    json_schema, parse_str, to_yaml, Config, ConfigErrors, Env, Global, HealthCheckKind, LogFormat,
    RestartPolicy,
};

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs(pairs.iter().copied())
}

fn ok(text: &str, e: &Env) -> Config {
    match parse_str(text, "phpeek-pm.yaml", e) {
        Ok(c) => c,
        Err(err) => panic!("rejected:\n{err}"),
    }
}

fn errs(text: &str, e: &Env) -> ConfigErrors {
    match parse_str(text, "phpeek-pm.yaml", e) {
        Ok(c) => panic!("accepted: {c:#?}"),
        Err(err) => err,
    }
}

const WEB: &str = "processes:\n  web:\n    command: [\"./web\"]\n";

#[test]
fn five_mistakes_five_errors() {
    let text = r#"global:
  api_port: 70000
processes:
  web:
    command: ["./web"]
    scael: 3
    restart: sometimes
  worker:
    command: []
    depends_on: [nope]
"#;
    let e = errs(text, &Env::default());
    let lines: Vec<String> = e.to_string().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 5, "{e}");
    assert!(
        lines[0].starts_with("phpeek-pm.yaml:2:13: global.api_port: "),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "phpeek-pm.yaml:6:5: processes.web.scael: unknown key (did you mean `scale`?)"
    );
    assert!(lines[2]
        .starts_with("phpeek-pm.yaml:7:14: processes.web.restart: unknown value `sometimes`"));
    assert!(lines[3].starts_with("phpeek-pm.yaml:9:14: processes.worker.command: is empty"));
    assert!(lines[4].starts_with(
        "phpeek-pm.yaml:10:18: processes.worker.depends_on[0]: no process named `nope`"
    ));
    let positions: Vec<(Option<usize>, Option<usize>)> =
        e.errors.iter().map(|x| (x.line, x.column)).collect();
    assert_eq!(
        positions,
        [
            (Some(2), Some(13)),
            (Some(6), Some(5)),
            (Some(7), Some(14)),
            (Some(9), Some(14)),
            (Some(10), Some(18))
        ]
    );
    assert_eq!(e.errors[1].key.as_deref(), Some("processes.web.scael"));
}

#[test]
fn defaults() {
    let c = ok(WEB, &Env::default());
    assert_eq!(c.version, "1.0");
    assert_eq!(c.global, Global::default());
    let p = &c.processes["web"];
    assert!(p.enabled && p.stdout && p.stderr);
    assert_eq!(p.scale, 1);
    assert_eq!(p.restart, RestartPolicy::Always);
    assert_eq!(p.shutdown.signal, 15);
    assert_eq!(p.shutdown.timeout, None);
    assert!(p.health_check.is_none() && p.depends_on.is_empty() && p.env.is_empty());
}

#[test]
fn empty_processes_are_allowed() {
    assert!(ok("", &Env::default()).processes.is_empty());
    assert!(ok("processes: {}\n", &Env::default()).processes.is_empty());
    assert!(ok("processes:\n", &Env::default()).processes.is_empty());
    assert!(ok(
        "version: \"1.0\"\nglobal:\n  log_format: json\n",
        &Env::default()
    )
    .processes
    .is_empty());
}

#[test]
fn missing_command_and_scale_limits() {
    let text = "global:\n  max_process_scale: 10\nprocesses:\n  a:\n    scale: 2\n  b:\n    command: [x]\n    scale: 11\n  c:\n    command: [x]\n    scale: 6\n    max_scale: 5\n";
    let e = errs(text, &Env::default()).to_string();
    assert!(
        e.contains("phpeek-pm.yaml:4:3: processes.a.command: missing `command`"),
        "{e}"
    );
    assert!(
        e.contains("8:12: processes.b.scale: scale 11 is above global.max_process_scale 10"),
        "{e}"
    );
    assert!(
        e.contains("11:12: processes.c.scale: scale 6 is above max_scale 5"),
        "{e}"
    );
    let e = errs(
        "processes:\n  a:\n    command: [x]\n    scale: 99999999999\n",
        &Env::default(),
    );
    assert!(e.to_string().contains("too large"), "{e}");
}

#[test]
fn instance_name_collision() {
    let text =
        "processes:\n  worker:\n    command: [x]\n    scale: 3\n  worker-2:\n    command: [x]\n";
    let e = errs(text, &Env::default()).to_string();
    assert!(
        e.contains(
            "5:3: processes.worker-2: process name `worker-2` is also the name of instance 2"
        ),
        "{e}"
    );
    // Beyond max_scale there is no collision; `worker-02` is never an instance name.
    let text = "processes:\n  worker:\n    command: [x]\n    max_scale: 3\n  worker-4:\n    command: [x]\n  worker-02:\n    command: [x]\n";
    ok(text, &Env::default());
}

#[test]
fn dependency_cycle_is_named() {
    let text = "processes:\n  a:\n    command: [x]\n    depends_on: [b]\n  b:\n    command: [x]\n    depends_on: [c]\n  c:\n    command: [x]\n    depends_on: [a]\n";
    let e = errs(text, &Env::default());
    assert_eq!(e.errors.len(), 1, "{e}");
    assert_eq!(
        e.to_string(),
        "phpeek-pm.yaml:4:18: processes.a.depends_on: dependency cycle: a -> b -> c -> a"
    );
}

#[test]
fn health_checks() {
    let text = r#"processes:
  web:
    command: [x]
    port_base: 8000
    health_check: { type: tcp, address: "127.0.0.1:${PHPEEK_PM_INSTANCE_PORT}" }
  api:
    command: [x]
    health_check:
      type: http
      url: "http://localhost:8080/health"
      expected_status: 204
      initial_delay: 2s
      period: 500ms
      timeout: 1
      failure_threshold: 5
      success_threshold: 2
  job:
    command: [x]
    health_check: { type: exec, command: ["true"] }
"#;
    let c = ok(text, &Env::default());
    let web = c.processes["web"].health_check.clone();
    let web = web.map(|h| {
        (
            h.kind,
            h.period,
            h.timeout,
            h.failure_threshold,
            h.success_threshold,
        )
    });
    assert_eq!(
        web,
        Some((
            HealthCheckKind::Tcp {
                address: "127.0.0.1:${PHPEEK_PM_INSTANCE_PORT}".into()
            },
            Duration::from_secs(10),
            Duration::from_secs(5),
            3,
            1
        ))
    );
    let api = c.processes["api"].health_check.clone();
    let api = api.map(|h| {
        (
            h.kind,
            h.initial_delay,
            h.period,
            h.timeout,
            h.failure_threshold,
        )
    });
    assert_eq!(
        api,
        Some((
            HealthCheckKind::Http {
                url: "http://localhost:8080/health".into(),
                expected_status: Some(204)
            },
            Duration::from_secs(2),
            Duration::from_millis(500),
            Duration::from_secs(1),
            5
        ))
    );
    let bad = r#"processes:
  a:
    command: [x]
    health_check: { type: tcp }
  b:
    command: [x]
    health_check: { type: http, url: "https://x/" , period: 0}
  c:
    command: [x]
    health_check: { type: exec, command: [], timeout: 0s }
  d:
    command: [x]
    health_check: { type: grpc }
  e:
    command: [x]
    health_check: { url: "http://x/" }
  f:
    command: [x]
    health_check: { type: http, url: "http://x/", expected_status: 99, adress: "x" }
"#;
    let e = errs(bad, &Env::default()).to_string();
    for needle in [
        "4:19: processes.a.health_check.address: missing `address`",
        "7:38: processes.b.health_check.url: `https://x/`: https is not supported",
        "7:61: processes.b.health_check.period: must be more than 0",
        "10:42: processes.c.health_check.command: is empty",
        "10:55: processes.c.health_check.timeout: must be more than 0",
        "13:27: processes.d.health_check.type: unknown value `grpc`",
        "16:19: processes.e.health_check.type: missing `type`",
        "19:68: processes.f.health_check.expected_status: 99 is not an HTTP status",
        "19:72: processes.f.health_check.adress: unknown key",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in\n{e}");
    }
}

#[test]
fn durations_and_signals_in_file() {
    let text = "global:\n  shutdown_timeout: \"45\"\n  restart_backoff_initial: 250ms\n  restart_backoff_max: 1.5\n  dependency_timeout: 1h\nprocesses:\n  web:\n    command: [x]\n    shutdown: { signal: quit, timeout: 2m }\n";
    let c = ok(text, &Env::default());
    assert_eq!(c.global.shutdown_timeout, Duration::from_secs(45));
    assert_eq!(c.global.restart_backoff_initial, Duration::from_millis(250));
    assert_eq!(c.global.restart_backoff_max, Duration::from_millis(1500));
    assert_eq!(c.global.dependency_timeout, Duration::from_secs(3600));
    assert_eq!(c.processes["web"].shutdown.signal, 3);
    assert_eq!(
        c.processes["web"].shutdown.timeout,
        Some(Duration::from_secs(120))
    );
    let bad = "global:\n  shutdown_timeout: -5\n  restart_backoff_max: 10 parsecs\nprocesses:\n  web:\n    command: [x]\n    shutdown: { signal: SIGNOPE }\n";
    let e = errs(bad, &Env::default());
    assert_eq!(e.errors.len(), 3, "{e}");
    assert_eq!(e.errors[0].line, Some(2));
    assert!(e.errors[0].message.contains("negative"));
    assert_eq!(e.errors[2].line, Some(7));
}

#[test]
fn api_exposure_rule() {
    let open = "global:\n  api_host: 0.0.0.0\n";
    let e = errs(open, &Env::default()).to_string();
    assert!(
        e.contains("2:13: global.api_host: refusing a non-loopback API (`0.0.0.0`) without api_auth; set api_auth, api_tls.client_ca or api_insecure: true"),
        "{e}"
    );
    ok(
        "global:\n  api_host: 0.0.0.0\n  api_auth: s3cret\n",
        &Env::default(),
    );
    ok(
        "global:\n  api_host: 0.0.0.0\n  api_insecure: true\n",
        &Env::default(),
    );
    ok(
        "global:\n  api_host: 0.0.0.0\n  api_enabled: false\n",
        &Env::default(),
    );
    ok("global:\n  api_host: \"::1\"\n", &Env::default());
    ok("global:\n  api_host: localhost\n", &Env::default());
    // Through an override too.
    let e = errs("", &env(&[("PHPEEK_PM_GLOBAL_API_HOST", "0.0.0.0")])).to_string();
    assert!(e.contains("refusing a non-loopback API"), "{e}");
}

#[test]
fn global_checks() {
    let text = "global:\n  metrics_path: metrics\n  metrics_port: -1\n  log_level: loud\n  max_process_scale: 0\n  api_enabled: perhaps\n  restart_backoff_initial: 10s\n  restart_backoff_max: 5s\n";
    let e = errs(text, &Env::default());
    let keys: Vec<&str> = e.errors.iter().filter_map(|x| x.key.as_deref()).collect();
    // Positioned errors in file order; the backoff comparison has the
    // position of the `global:` mapping (line 2).
    assert_eq!(
        keys,
        [
            "global.restart_backoff_max",
            "global.metrics_path",
            "global.metrics_port",
            "global.log_level",
            "global.max_process_scale",
            "global.api_enabled",
        ],
        "{e}"
    );
}

#[test]
fn unknown_keys_everywhere() {
    let text = "verison: \"1.0\"\nglobal:\n  api_prot: 1\n  scale: 2\nprocesses:\n  web:\n    command: [x]\n    api_port: 1\n    shutdown: { sginal: TERM }\nweb2:\n  command: [x]\n";
    let e = errs(text, &Env::default()).to_string();
    for needle in [
        "1:1: verison: unknown key (did you mean `version`?)",
        "3:3: global.api_prot: unknown key (did you mean `api_port`?)",
        "4:3: global.scale: unknown key (this is a process setting: put it under `processes.<name>:`)",
        "8:5: processes.web.api_port: unknown key (this is a global setting: put it under `global:`)",
        "9:17: processes.web.shutdown.sginal: unknown key (did you mean `signal`?)",
        "10:1: web2: unknown key (a process? put it under `processes:`)",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in\n{e}");
    }
}

#[test]
fn duplicate_keys_all_reported() {
    let text = "processes:\n  web:\n    command: [x]\n    scale: 1\n    scale: 2\n  web:\n    command: [y]\n";
    let e = errs(text, &Env::default());
    assert_eq!(e.errors.len(), 2, "{e}");
    assert!(e
        .to_string()
        .contains("5:5: duplicate key `scale` (first defined at line 4)"));
    assert!(e
        .to_string()
        .contains("6:3: duplicate key `web` (first defined at line 2)"));
}

#[test]
fn yaml_syntax_error_is_one_error_with_position() {
    let e = errs(
        "processes:\n  web:\n    command: [x\n  other: 1\n",
        &Env::default(),
    );
    assert_eq!(e.errors.len(), 1, "{e}");
    assert!(e.errors[0].line.is_some());
    assert!(e.to_string().starts_with("phpeek-pm.yaml:"));
}

#[test]
fn process_names() {
    let e = errs(
        "processes:\n  Web:\n    command: [x]\n  my.app:\n    command: [x]\n  -x:\n    command: [x]\n",
        &Env::default(),
    );
    assert_eq!(e.errors.len(), 3, "{e}");
    assert!(e
        .errors
        .iter()
        .all(|x| x.message.contains("invalid process name")));
}

// ---------------------------------------------------------------- substitution

#[test]
fn substitution_before_typing() {
    let e = env(&[("N", "4"), ("T", "a: b # not a comment"), ("EMPTY", "")]);
    let text = r#"global:
  api_auth: ${T}
  api_port: "${PORT:-9181}"
processes:
  web:
    command: [run, ${T}, "$${HOME}", $$]
    scale: ${N}
    max_scale: "${N}"
    env: { A: ${T}, B: ${EMPTY:-dflt}, C: ${EMPTY} }
    user: ${EMPTY}
"#;
    let c = ok(text, &e);
    assert_eq!(c.global.api_auth.as_deref(), Some("a: b # not a comment"));
    assert_eq!(c.global.api_port, 9181);
    let p = &c.processes["web"];
    assert_eq!(p.command, ["run", "a: b # not a comment", "${HOME}", "$"]);
    assert_eq!((p.scale, p.max_scale), (4, Some(4)));
    assert_eq!(p.env["A"], "a: b # not a comment");
    assert_eq!(p.env["B"], "dflt");
    assert_eq!(p.env["C"], "");
    assert_eq!(p.user, None);
}

#[test]
fn unset_variables_are_errors_except_instance_vars() {
    let text = "processes:\n  web:\n    command: [\"${A}\", \"${PHPEEK_PM_INSTANCE_ID}\", \"${PHPEEK_PM_PROCESS_NAME}\"]\n    env:\n      X: ${B}\n";
    let e = errs(text, &Env::default());
    assert_eq!(e.errors.len(), 2, "{e}");
    assert!(e.errors[0].message.contains("`A`"));
    assert_eq!((e.errors[1].line, e.errors[1].column), (Some(5), Some(10)));
    let c = ok(
        text,
        &env(&[("A", "a"), ("B", "b"), ("PHPEEK_PM_INSTANCE_ID", "outer-3")]),
    );
    assert_eq!(
        c.processes["web"].command,
        ["a", "${PHPEEK_PM_INSTANCE_ID}", "${PHPEEK_PM_PROCESS_NAME}"]
    );
}

#[test]
fn typed_by_key() {
    let text = "global:\n  api_auth: 007\n  api_port: \"9000\"\nprocesses:\n  web:\n    command: [x, 1.0, true, 0x1F]\n    user: 1000\n    enabled: \"yes\"\nversion: 1.0\n";
    let c = ok(text, &Env::default());
    assert_eq!(c.global.api_auth.as_deref(), Some("007"));
    assert_eq!(c.global.api_port, 9000);
    assert_eq!(c.processes["web"].command, ["x", "1.0", "true", "0x1F"]);
    assert_eq!(c.processes["web"].user.as_deref(), Some("1000"));
    assert_eq!(c.version, "1.0");
    let e = errs("version: 2\n", &Env::default()).to_string();
    assert!(e.contains("unsupported config version"), "{e}");
}

// ------------------------------------------------------------------ overrides

const TWO: &str = "processes:\n  queue:\n    command: [q]\n  queue-default:\n    command: [qd]\n    max_scale: 20\n";

#[test]
fn process_overrides() {
    let e = env(&[
        ("PHPEEK_PM_PROCESS_QUEUE_DEFAULT_SCALE", "10"),
        ("PHPEEK_PM_PROCESS_QUEUE_SCALE", "2"),
        ("PHPEEK_PM_PROCESS_QUEUE_MAX_SCALE", "7"),
        ("PHPEEK_PM_PROCESS_QUEUE_ENABLED", "no"),
        (
            "PHPEEK_PM_PROCESS_QUEUE_COMMAND",
            r#"["php","artisan","queue:work","--id=${PHPEEK_PM_INSTANCE_NUMBER}"]"#,
        ),
        ("PHPEEK_PM_PROCESS_QUEUE_RESTART", "on-failure"),
        ("PHPEEK_PM_PROCESS_QUEUE_WORKING_DIR", "/srv"),
        ("PHPEEK_PM_PROCESS_QUEUE_USER", "0"),
        ("PHPEEK_PM_PROCESS_QUEUE_GROUP", "007"),
        ("PHPEEK_PM_PROCESS_QUEUE_PORT_BASE", "9000"),
        ("PHPEEK_PM_PROCESS_QUEUE_DEFAULT_ENV_APP_ENV", "prod$x"),
        ("PHPEEK_PM_PROCESS_NAME", "outer"),
        ("PHPEEK_PM_CONFIG", "/nope"),
        ("PHPEEK_PM_API_URL", "http://x"),
        ("PHPEEK_PM_API_TOKEN", "t"),
        ("PHPEEK_PM_INSTANCE_ID", "outer-1"),
    ]);
    let c = ok(TWO, &e);
    let q = &c.processes["queue"];
    let qd = &c.processes["queue-default"];
    assert_eq!((qd.scale, qd.max_scale), (10, Some(20)));
    assert_eq!((q.scale, q.max_scale, q.enabled), (2, Some(7), false));
    assert_eq!(q.command[3], "--id=${PHPEEK_PM_INSTANCE_NUMBER}");
    assert_eq!(q.restart, RestartPolicy::OnFailure);
    assert_eq!(q.working_dir.as_deref(), Some(std::path::Path::new("/srv")));
    assert_eq!(q.user.as_deref(), Some("0"));
    assert_eq!(q.group.as_deref(), Some("007"));
    assert_eq!(q.port_base, Some(9000));
    assert_eq!(qd.env["APP_ENV"], "prod$x");
}

#[test]
fn global_overrides() {
    let e = env(&[
        ("PHPEEK_PM_GLOBAL_API_AUTH", "007"),
        ("PHPEEK_PM_GLOBAL_API_PORT", "9999"),
        ("PHPEEK_PM_GLOBAL_LOG_FORMAT", "json"),
        ("PHPEEK_PM_GLOBAL_SHUTDOWN_TIMEOUT", "90"),
        ("PHPEEK_PM_GLOBAL_MAX_PROCESS_SCALE", "50"),
        ("PHPEEK_PM_GLOBAL_RESTART_BACKOFF_INITIAL", "0"),
        ("PHPEEK_PM_GLOBAL_API_HOST", "0.0.0.0"),
    ]);
    let c = ok("global:\n  api_port: 1\n  log_format: text\n", &e);
    assert_eq!(c.global.api_auth.as_deref(), Some("007"));
    assert_eq!(c.global.api_port, 9999);
    assert_eq!(c.global.log_format, LogFormat::Json);
    assert_eq!(c.global.shutdown_timeout, Duration::from_secs(90));
    assert_eq!(c.global.max_process_scale, 50);
    assert_eq!(c.global.restart_backoff_initial, Duration::ZERO);
}

#[test]
fn override_errors_name_the_variable() {
    let e = env(&[
        ("PHPEEK_PM_PROCESS_QUEUE_SCALE", "abc"),
        ("PHPEEK_PM_PROCESS_QUEUE_DEFAULT_SCALE", "21"),
        ("PHPEEK_PM_PROCESS_QUEUE_COMMAND", "php artisan"),
        ("PHPEEK_PM_PROCESS_QUEUE_ENABLED", "maybe"),
        ("PHPEEK_PM_PROCESS_NOPE_SCALE", "1"),
        ("PHPEEK_PM_PROCESS_QUEUE_SCAEL", "1"),
        ("PHPEEK_PM_GLOBAL_API_PROT", "1"),
        ("PHPEEK_PM_GLOBAL_API_PORT", "http"),
    ]);
    let err = errs(TWO, &e);
    let text = err.to_string();
    assert_eq!(err.errors.len(), 8, "{text}");
    for needle in [
        "global.api_port: expected a whole number, got `http` (set by environment variable PHPEEK_PM_GLOBAL_API_PORT)",
        "PHPEEK_PM_GLOBAL_API_PROT: `API_PROT` is not a global setting (did you mean PHPEEK_PM_GLOBAL_API_PORT?)",
        "PHPEEK_PM_PROCESS_NOPE_SCALE: names no process defined in the file",
        "PHPEEK_PM_PROCESS_QUEUE_COMMAND: must be a JSON array of strings",
        "processes.queue.enabled: expected true or false, got `maybe` (set by environment variable PHPEEK_PM_PROCESS_QUEUE_ENABLED)",
        "PHPEEK_PM_PROCESS_QUEUE_SCAEL: `SCAEL` is not a setting of process `queue`",
        "processes.queue.scale: expected a whole number, got `abc` (set by environment variable PHPEEK_PM_PROCESS_QUEUE_SCALE)",
        "processes.queue-default.scale: scale 21 is above max_scale 20 (set by environment variable PHPEEK_PM_PROCESS_QUEUE_DEFAULT_SCALE)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(err.errors.iter().all(|x| x.line.is_none()));
}

#[test]
fn override_name_matching() {
    // `X_MAX_SCALE` with only `x` defined is x's max_scale.
    let text = "processes:\n  x:\n    command: [x]\n";
    let c = ok(text, &env(&[("PHPEEK_PM_PROCESS_X_MAX_SCALE", "5")]));
    assert_eq!(c.processes["x"].max_scale, Some(5));
    // With `x` and `x-max` both defined, the variable is ambiguous.
    let text = "processes:\n  x:\n    command: [x]\n  x-max:\n    command: [x]\n";
    let e = errs(text, &env(&[("PHPEEK_PM_PROCESS_X_MAX_SCALE", "5")])).to_string();
    assert!(e.contains("ambiguous"), "{e}");
    // `X_MAX_ENABLED` is only valid for `x-max`.
    let c = ok(text, &env(&[("PHPEEK_PM_PROCESS_X_MAX_ENABLED", "false")]));
    assert!(!c.processes["x-max"].enabled && c.processes["x"].enabled);
}

#[test]
fn overrides_on_a_process_without_body_and_env_map() {
    let text = "processes:\n  web:\n";
    let c = ok(
        text,
        &env(&[
            ("PHPEEK_PM_PROCESS_WEB_COMMAND", r#"["./web"]"#),
            ("PHPEEK_PM_PROCESS_WEB_ENV_A", "1"),
        ]),
    );
    assert_eq!(c.processes["web"].command, ["./web"]);
    assert_eq!(c.processes["web"].env["A"], "1");
    let e = errs(text, &env(&[("PHPEEK_PM_PROCESS_WEB_COMMAND", "[]")])).to_string();
    assert!(
        e.contains("is empty") && e.contains("PHPEEK_PM_PROCESS_WEB_COMMAND"),
        "{e}"
    );
}

// --------------------------------------------------------------- round trip

#[test]
fn to_yaml_round_trips() {
    let text = r#"version: "1"
global:
  api_auth: "a$$b ${PHPEEK_PM_INSTANCE_ID} : # x"
  log_format: json
  shutdown_timeout: 1.25
  api_socket: /run/x.sock
processes:
  web:
    command: ["php", "--id=${PHPEEK_PM_INSTANCE_NUMBER}", "007", "true", "", "a: b", "multi\nline", " lead", "$${LITERAL}"]
    env: {X: "", Y: ~, Z: 5, "WITH SPACE": "v\ttab"}
    port_base: 8000
    max_scale: 4
    scale: 0
    user: "1000"
    working_dir: /var/www
    depends_on: [db]
    restart: never
    enabled: false
    stdout: false
    health_check: {type: tcp, address: "127.0.0.1:${PHPEEK_PM_INSTANCE_PORT}"}
    shutdown: {signal: USR2, timeout: 250ms}
  db:
    command: [db]
    health_check: {type: http, url: "http://127.0.0.1:5432/", expected_status: 200, initial_delay: 1m}
  job:
    command: [db]
    health_check: {type: exec, command: ["check", "$$"]}
"#;
    let c = ok(text, &Env::default());
    let yaml = to_yaml(&c);
    let back = ok(&yaml, &Env::default());
    assert_eq!(back, c, "rendered:\n{yaml}");
    assert_eq!(c.processes["web"].command[8], "${LITERAL}");
    // The rendering uses the file's key names.
    assert!(
        yaml.contains("health_check:") && yaml.contains("type: tcp"),
        "{yaml}"
    );
}

// -------------------------------------------------------------------- schema

#[test]
fn json_schema_describes_the_file() {
    let s = json_schema();
    let text = serde_json::to_string(&s).unwrap_or_default();
    assert!(text.contains("\"processes\""));
    assert!(text.contains("\"$schema\""));
    assert!(s.pointer("/properties/processes").is_some());
}

#[test]
fn log_buffer_takes_sizes_and_refuses_zero_garbage_and_huge() {
    let none = env(&[]);
    assert_eq!(ok(WEB, &none).global.log_buffer, 8 << 20);
    for (text, bytes) in [
        ("16MiB", 16u64 << 20),
        ("512k", 512 << 10),
        ("1GiB", 1 << 30),
        ("100000", 100_000),
        ("2MB", 2_000_000),
    ] {
        let c = ok(&format!("global:\n  log_buffer: {text}\n{WEB}"), &none);
        assert_eq!(c.global.log_buffer, bytes, "{text}");
    }
    for (text, want) in [
        ("0", "outside 64KiB..=1GiB"),
        ("lots", "is not a size"),
        ("2GiB", "outside"),
        ("8 parsecs", "unknown unit"),
    ] {
        let e = errs(&format!("global:\n  log_buffer: {text}\n{WEB}"), &none).to_string();
        assert!(
            e.contains("2:15: global.log_buffer:") && e.contains(want),
            "{text}: {e}"
        );
    }
    let over = env(&[("PHPEEK_PM_GLOBAL_LOG_BUFFER", "1MiB")]);
    assert_eq!(ok(WEB, &over).global.log_buffer, 1 << 20);
    let back = ok(
        &to_yaml(&ok(&format!("global:\n  log_buffer: 3MiB\n{WEB}"), &none)),
        &none,
    );
    assert_eq!(back.global.log_buffer, 3 << 20, "round trip");
}

#[test]
fn health_check_targets_need_a_real_port() {
    let none = env(&[]);
    let url = "processes:\n  web:\n    command: [\"./web\"]\n    health_check:\n      type: http\n      url: \"http://127.0.0.1:99999/\"\n";
    let e = errs(url, &none).to_string();
    assert!(
        e.contains("6:12: processes.web.health_check.url:") && e.contains("a port is 1 to 65535"),
        "{e}"
    );
    let tcp = "processes:\n  web:\n    command: [\"./web\"]\n    health_check:\n      type: tcp\n      address: \"::1:80\"\n";
    let e = errs(tcp, &none).to_string();
    assert!(
        e.contains("6:16: processes.web.health_check.address:"),
        "{e}"
    );
    ok(&tcp.replace("::1:80", "[::1]:80"), &none);
}
