//! SPEC 11 in the file: one-shots, dependency conditions, schedules,
//! hooks, initial_state; their errors (exact text, line and column),
//! overrides and the round trip.

use std::time::Duration;

use phpeek_config::{
    parse_str, to_yaml, Concurrency, Config, Dependency, DependencyCondition, Env, InitialState,
    OnFailure, ProcessType, RestartPolicy, DEFAULT_HOOK_TIMEOUT, DEFAULT_SCHEDULE_HISTORY,
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

/// Every error line.
fn errs(text: &str, e: &Env) -> Vec<String> {
    match parse_str(text, "phpeek-pm.yaml", e) {
        Ok(c) => panic!("accepted: {c:#?}"),
        Err(err) => err.to_string().lines().map(str::to_string).collect(),
    }
}

/// The one error line.
fn err1(text: &str) -> String {
    let lines = errs(text, &Env::default());
    assert_eq!(lines.len(), 1, "{lines:#?}");
    lines.into_iter().next().unwrap_or_default()
}

fn round_trip(c: &Config) {
    let yaml = to_yaml(c);
    let back = ok(&yaml, &Env::default());
    assert_eq!(&back, c, "rendered:\n{yaml}");
}

// ------------------------------------------------------------------ one-shots

#[test]
fn oneshot_defaults_and_keys() {
    let text = r#"processes:
  migrate:
    command: ["php", "artisan", "migrate", "--force"]
    type: oneshot
  warm:
    restart: on-failure
    max_restart_attempts: 3
    timeout: 10m
    on_failure: shutdown
    type: ONESHOT
    command: [warm]
  web:
    command: [web]
    max_restart_attempts: 5
"#;
    let c = ok(text, &Env::default());
    let m = &c.processes["migrate"];
    assert_eq!(m.kind, ProcessType::Oneshot);
    assert_eq!(m.restart, RestartPolicy::Never, "one-shot default");
    assert_eq!((m.timeout, m.on_failure), (None, OnFailure::Continue));
    let w = &c.processes["warm"];
    assert_eq!(w.restart, RestartPolicy::OnFailure, "key order is free");
    assert_eq!(w.max_restart_attempts, Some(3));
    assert_eq!(w.timeout, Some(Duration::from_secs(600)));
    assert_eq!(w.on_failure, OnFailure::Shutdown);
    let web = &c.processes["web"];
    assert_eq!(web.kind, ProcessType::Longrun);
    assert_eq!(web.restart, RestartPolicy::Always);
    assert_eq!(web.max_restart_attempts, Some(5));
    assert_eq!(web.initial_state, InitialState::Started);
}

#[test]
fn always_on_a_oneshot_is_an_error_at_the_value_in_any_key_order() {
    let text = "processes:\n  migrate:\n    restart: always\n    command: [m]\n    type: oneshot\n";
    assert_eq!(
        err1(text),
        "phpeek-pm.yaml:3:14: processes.migrate.restart: `always` is not allowed for type: oneshot (it runs to its end): use never (the default) or on-failure"
    );
    let e = errs(
        "processes:\n  migrate:\n    command: [m]\n    type: oneshot\n",
        &env(&[("PHPEEK_PM_PROCESS_MIGRATE_RESTART", "always")]),
    );
    assert_eq!(e, ["phpeek-pm.yaml: processes.migrate.restart: `always` is not allowed for type: oneshot (it runs to its end): use never (the default) or on-failure (set by environment variable PHPEEK_PM_PROCESS_MIGRATE_RESTART)"]);
}

#[test]
fn oneshot_only_keys_on_a_longrun() {
    let text = "processes:\n  web:\n    command: [w]\n    timeout: 5s\n    on_failure: shutdown\n";
    let e = errs(text, &Env::default());
    assert_eq!(
        e,
        [
            "phpeek-pm.yaml:4:5: processes.web.timeout: only for type: oneshot (a longrun runs until stopped)",
            "phpeek-pm.yaml:5:5: processes.web.on_failure: only for type: oneshot (a longrun is restarted by its restart policy)",
        ]
    );
}

#[test]
fn oneshot_value_errors() {
    let text = "processes:\n  m:\n    type: onceshot\n    command: [m]\n    timeout: 0\n    on_failure: stop\n    max_restart_attempts: -1\n    health_check: { type: exec, command: [x] }\n";
    let e = errs(text, &Env::default());
    assert_eq!(
        e,
        [
            "phpeek-pm.yaml:3:11: processes.m.type: unknown value `onceshot`: expected one of longrun, oneshot (did you mean `oneshot`?)",
            "phpeek-pm.yaml:5:14: processes.m.timeout: must be more than 0 (leave it out for no limit)",
            "phpeek-pm.yaml:6:17: processes.m.on_failure: unknown value `stop`: expected one of continue, shutdown",
            "phpeek-pm.yaml:7:27: processes.m.max_restart_attempts: `-1` is negative: expected 0 or more",
        ],
        "a rejected type does not cascade into one-shot-only errors"
    );
    let text = "processes:\n  m:\n    type: oneshot\n    command: [m]\n    health_check: { type: exec, command: [x] }\n";
    assert_eq!(
        err1(text),
        "phpeek-pm.yaml:5:5: processes.m.health_check: is only for longrun processes: a one-shot is done when it exits (depend on it with completed_successfully)"
    );
}

#[test]
fn initial_state() {
    let c = ok(
        "processes:\n  w:\n    command: [w]\n    initial_state: stopped\n",
        &Env::default(),
    );
    assert_eq!(c.processes["w"].initial_state, InitialState::Stopped);
    assert_eq!(
        err1("processes:\n  w:\n    command: [w]\n    initial_state: stoped\n"),
        "phpeek-pm.yaml:4:20: processes.w.initial_state: unknown value `stoped`: expected one of started, stopped (did you mean `stopped`?)"
    );
}

// ------------------------------------------------------------- depends_on

const DEPS: &str = r#"processes:
  migrate:
    type: oneshot
    command: [m]
  redis:
    command: [r]
  web:
    command: [w]
    depends_on: [migrate, redis]
  api:
    command: [a]
    depends_on:
      migrate: completed
      redis: started
  worker:
    command: [q]
    depends_on: migrate
"#;

#[test]
fn list_form_resolves_by_the_dependencys_type() {
    let c = ok(DEPS, &Env::default());
    assert_eq!(
        c.processes["web"].depends_on,
        [
            Dependency::new("migrate", DependencyCondition::CompletedSuccessfully),
            Dependency::new("redis", DependencyCondition::Healthy),
        ]
    );
    assert_eq!(
        c.processes["api"].depends_on,
        [
            Dependency::new("migrate", DependencyCondition::Completed),
            Dependency::new("redis", DependencyCondition::Started),
        ]
    );
    assert_eq!(
        c.processes["worker"].depends_on,
        [Dependency::new(
            "migrate",
            DependencyCondition::CompletedSuccessfully
        )]
    );
    round_trip(&c);
}

#[test]
fn long_form_condition_errors() {
    let text = r#"processes:
  migrate:
    type: oneshot
    command: [m]
  db:
    command: [d]
  web:
    command: [w]
    depends_on:
      db: completed_successfully
      migrate: healthy
      redis: started
      db2: complete
"#;
    let e = errs(text, &Env::default());
    assert_eq!(
        e,
        [
            "phpeek-pm.yaml:10:7: processes.web.depends_on.db: `db` is a longrun: it never completes; use started or healthy",
            "phpeek-pm.yaml:11:7: processes.web.depends_on.migrate: `migrate` is a one-shot: it is never healthy, it completes; use completed_successfully (or completed, or started)",
            "phpeek-pm.yaml:12:7: processes.web.depends_on.redis: no process named `redis`",
            "phpeek-pm.yaml:13:7: processes.web.depends_on.db2: no process named `db2` (did you mean `db`?)",
            "phpeek-pm.yaml:13:12: processes.web.depends_on.db2: unknown value `complete`: expected one of started, healthy, completed, completed_successfully (did you mean `completed`?)",
        ]
    );
}

#[test]
fn long_form_cycles_and_no_condition() {
    let text = "processes:\n  a:\n    command: [a]\n    depends_on: { b: started }\n  b:\n    command: [b]\n    depends_on:\n      a:\n";
    assert_eq!(
        err1(text),
        "phpeek-pm.yaml:4:19: processes.a.depends_on: dependency cycle: a -> b -> a"
    );
    let c = ok(
        "processes:\n  m:\n    type: oneshot\n    command: [m]\n  w:\n    command: [w]\n    depends_on: { m: ~ }\n",
        &Env::default(),
    );
    assert_eq!(
        c.processes["w"].depends_on,
        [Dependency::new(
            "m",
            DependencyCondition::CompletedSuccessfully
        )],
        "no condition: as in the list form"
    );
}

#[test]
fn depending_on_a_scheduled_process() {
    let text = "processes:\n  report:\n    command: [r]\n    schedule: \"@daily\"\n  web:\n    command: [w]\n    depends_on: [report]\n";
    assert_eq!(
        err1(text),
        "phpeek-pm.yaml:7:18: processes.web.depends_on[0]: `report` is scheduled: it has no standing instances to wait for (only its runs)"
    );
}

// -------------------------------------------------------------- schedules

#[test]
fn schedule_short_and_long_form() {
    let text = r#"processes:
  scheduler:
    command: ["php", "artisan", "schedule:run"]
    schedule: "* * * * *"
  report:
    command: [r]
    schedule:
      suspended: yes
      cron: "30 6 * * 1-5"
      timezone: Europe/Amsterdam
      concurrency: allow
      max_concurrent: 3
      timeout: 5m
      run_on_start: true
      history: 50
  nightly:
    command: [n]
    scale: 0
    schedule: { cron: "0 0 3 * * *", concurrency: forbid, starting_deadline: 10s }
"#;
    let c = ok(text, &Env::default());
    let s = c.processes["scheduler"].schedule.clone();
    let s = s.map(|s| {
        (
            s.cron,
            s.timezone,
            s.concurrency,
            s.max_concurrent,
            s.timeout,
            s.starting_deadline,
            s.run_on_start,
            s.history,
            s.suspended,
        )
    });
    assert_eq!(
        s,
        Some((
            "* * * * *".to_string(),
            "UTC".to_string(),
            Concurrency::Forbid,
            1,
            None,
            Duration::ZERO,
            false,
            DEFAULT_SCHEDULE_HISTORY,
            false
        ))
    );
    assert_eq!(c.processes["scheduler"].restart, RestartPolicy::Never);
    let r = c.processes["report"].schedule.clone();
    let r = r.map(|s| {
        (
            s.cron,
            s.timezone,
            s.concurrency,
            s.max_concurrent,
            s.timeout,
            s.run_on_start,
            s.history,
            s.suspended,
        )
    });
    assert_eq!(
        r,
        Some((
            "30 6 * * 1-5".to_string(),
            "Europe/Amsterdam".to_string(),
            Concurrency::Allow,
            3,
            Some(Duration::from_secs(300)),
            true,
            50,
            true
        ))
    );
    let n = c.processes["nightly"].schedule.clone();
    assert_eq!(
        n.map(|s| (s.cron, s.starting_deadline)),
        Some(("0 0 3 * * *".to_string(), Duration::from_secs(10)))
    );
    round_trip(&c);
}

#[test]
fn bad_cron_points_at_the_bad_field() {
    let text =
        "processes:\n  report:\n    command: [r]\n    schedule:\n      cron: \"30 25 * * *\"\n";
    assert_eq!(
        err1(text),
        "phpeek-pm.yaml:5:17: processes.report.schedule.cron: field 2 (hour) `25` is out of range 0-23"
    );
    let text = "processes:\n  s:\n    command: [r]\n    schedule: 0 0 * 13 *\n";
    assert_eq!(
        err1(text),
        "phpeek-pm.yaml:4:21: processes.s.schedule: field 4 (month) `13` is out of range 1-12"
    );
    // An escape in the quotes: the columns no longer map; the value's start.
    let text = "processes:\n  s:\n    command: [r]\n    schedule: \"0 0 * \\x2A 8\"\n";
    assert_eq!(
        err1(text),
        "phpeek-pm.yaml:4:15: processes.s.schedule: field 5 (day of week) `8` is out of range 0-7"
    );
    // From the environment: the variable is named.
    let text = "processes:\n  s:\n    command: [r]\n    schedule: ${CRON}\n";
    assert_eq!(
        errs(text, &env(&[("CRON", "* * *")])),
        ["phpeek-pm.yaml:4:15: processes.s.schedule: has 3 fields: expected 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first"]
    );
}

#[test]
fn cron_shapes_and_aliases() {
    let one = |cron: &str| {
        err1(&format!(
            "processes:\n  s:\n    command: [r]\n    schedule: '{cron}'\n"
        ))
    };
    assert_eq!(
        one("0 0 0 1 1 * 2030"),
        "phpeek-pm.yaml:4:16: processes.s.schedule: has 7 fields: a year field is not supported; give 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first"
    );
    assert_eq!(
        one("@reboot"),
        "phpeek-pm.yaml:4:16: processes.s.schedule: `@reboot` is not supported: use run_on_start: true (or a one-shot process)"
    );
    assert_eq!(
        one("@dialy"),
        "phpeek-pm.yaml:4:16: processes.s.schedule: unknown `@dialy`: expected one of @yearly, @annually, @monthly, @weekly, @daily, @hourly (did you mean `@daily`?)"
    );
    assert_eq!(
        one(""),
        "phpeek-pm.yaml:4:16: processes.s.schedule: is empty: expected a cron expression like \"*/5 * * * *\": 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first"
    );
    assert_eq!(
        one("0 0 30 2 *"),
        "phpeek-pm.yaml:4:16: processes.s.schedule: `0 0 30 2 *` matches no date (e.g. day 30 of February): it would never run"
    );
    assert_eq!(
        one("*/15 * * * mon-fry"),
        "phpeek-pm.yaml:4:27: processes.s.schedule: field 5 (day of week) `mon-fry`: `FRY` is not allowed here (this field takes numbers 0-7, SUN-SAT, L, # and ?) (did you mean `FRI`?)"
    );
    for good in [
        "@weekly",
        "0 0 L * *",
        "0 0 * * 5L",
        "0 0 * * 1#2",
        "0 0 15W * *",
        "*/10 * * * * *",
        "0 9-17/2 * jan-mar MON-FRI",
    ] {
        let c = ok(
            &format!("processes:\n  s:\n    command: [r]\n    schedule: '{good}'\n"),
            &Env::default(),
        );
        round_trip(&c);
    }
}

#[test]
fn time_zones() {
    let text = "processes:\n  s:\n    command: [r]\n    schedule: { cron: '@daily', timezone: europe/amsterdam }\n";
    assert_eq!(
        err1(text),
        "phpeek-pm.yaml:4:43: processes.s.schedule.timezone: unknown time zone `europe/amsterdam`: expected an IANA name like Europe/Amsterdam or UTC (did you mean `Europe/Amsterdam`?)"
    );
    let short = "processes:\n  s:\n    command: [r]\n    schedule: '@daily'\n";
    let zone = |e: &Env| {
        ok(short, e).processes["s"]
            .schedule
            .clone()
            .map(|s| s.timezone)
            .unwrap_or_default()
    };
    assert_eq!(zone(&Env::default()), "UTC");
    assert_eq!(zone(&env(&[("TZ", "Asia/Tokyo")])), "Asia/Tokyo");
    assert_eq!(
        zone(&env(&[("TZ", ":America/New_York")])),
        "America/New_York"
    );
    assert_eq!(zone(&env(&[("TZ", ":/etc/localtime")])), "UTC");
    assert_eq!(zone(&env(&[("TZ", "Nowhere/Atlantis")])), "UTC");
    // The rendering names the zone, so it reads back the same elsewhere.
    let c = ok(short, &env(&[("TZ", "Asia/Tokyo")]));
    round_trip(&c);
    assert_eq!(
        c.processes["s"]
            .schedule
            .as_ref()
            .and_then(|s| s.zone().iana_name().map(str::to_string)),
        Some("Asia/Tokyo".into())
    );
}

#[test]
fn concurrency_only_keys() {
    let text = r#"processes:
  a:
    command: [a]
    schedule:
      cron: "* * * * *"
      max_concurrent: 2
  b:
    command: [b]
    schedule:
      starting_deadline: 5s
      concurrency: replace
      cron: "* * * * *"
  c:
    command: [c]
    schedule: { cron: "* * * * *", concurrency: allow, max_concurrent: 0, history: 1001 }
  d:
    command: [d]
    schedule: { concurrency: sometimes, max_concurrent: 4, timezone: UTC, cronn: x }
"#;
    let e = errs(text, &Env::default());
    assert_eq!(
        e,
        [
            "phpeek-pm.yaml:6:7: processes.a.schedule.max_concurrent: only with concurrency: allow (this schedule has forbid: one run at a time)",
            "phpeek-pm.yaml:10:7: processes.b.schedule.starting_deadline: only with concurrency: forbid (with replace a tick never waits for the previous run)",
            "phpeek-pm.yaml:15:72: processes.c.schedule.max_concurrent: must be at least 1",
            "phpeek-pm.yaml:15:84: processes.c.schedule.history: `1001` is too large (at most 1000)",
            "phpeek-pm.yaml:18:15: processes.d.schedule.cron: missing `cron`: e.g. cron: \"30 6 * * 1-5\"",
            "phpeek-pm.yaml:18:30: processes.d.schedule.concurrency: unknown value `sometimes`: expected one of forbid, allow, replace",
            "phpeek-pm.yaml:18:75: processes.d.schedule.cronn: unknown key (did you mean `cron`?)",
        ]
    );
}

#[test]
fn what_a_schedule_excludes() {
    let text = r#"processes:
  a:
    command: [a]
    schedule: "* * * * *"
    scale: 2
    restart: always
    max_scale: 3
    max_restart_attempts: 1
    health_check: { type: exec, command: [x] }
    timeout: 1m
  b:
    command: [b]
    type: oneshot
    schedule: "* * * * *"
  c:
    command: [c]
    scale: 0
    restart: never
    schedule: "* * * * *"
    initial_state: stopped
"#;
    let e = errs(text, &Env::default());
    assert_eq!(
        e,
        [
            "phpeek-pm.yaml:5:12: processes.a.scale: scale 2 with a schedule: each run is one instance; for overlapping runs use schedule.concurrency: allow with max_concurrent",
            "phpeek-pm.yaml:6:14: processes.a.restart: `always` with a schedule: runs are not restarted (the next tick runs again); use never (the default)",
            "phpeek-pm.yaml:7:16: processes.a.max_scale: not with a schedule: a scheduled process has no standing instances (each run is one instance, not probed, scaled or restarted)",
            "phpeek-pm.yaml:8:5: processes.a.max_restart_attempts: not with a schedule: a scheduled process has no standing instances (each run is one instance, not probed, scaled or restarted)",
            "phpeek-pm.yaml:9:5: processes.a.health_check: not with a schedule: a scheduled process has no standing instances (each run is one instance, not probed, scaled or restarted)",
            "phpeek-pm.yaml:10:5: processes.a.timeout: only for type: oneshot (for the runs of a schedule: schedule.timeout)",
            "phpeek-pm.yaml:14:5: processes.b.schedule: a schedule is not for type: oneshot: each run of a scheduled process already runs to its end; drop `type: oneshot`",
        ]
    );
    let e = errs(
        "processes:\n  a:\n    command: [a]\n    schedule: { cron: '* * * * *', concurrency: allow, max_concurrent: 20 }\nglobal:\n  max_process_scale: 10\n",
        &Env::default(),
    );
    assert_eq!(e, ["phpeek-pm.yaml:4:72: processes.a.schedule.max_concurrent: max_concurrent 20 is above global.max_process_scale 10"]);
}

#[test]
fn schedule_shape_errors() {
    assert_eq!(
        err1("processes:\n  a:\n    command: [a]\n    schedule: [\"* * * * *\"]\n"),
        "phpeek-pm.yaml:4:15: processes.a.schedule: expected a cron string (schedule: \"*/5 * * * *\") or a mapping with `cron`, found a list"
    );
    let c = ok(
        "processes:\n  a:\n    command: [a]\n    schedule: ~\n",
        &Env::default(),
    );
    assert!(c.processes["a"].schedule.is_none());
    assert_eq!(c.processes["a"].restart, RestartPolicy::Always);
}

// ------------------------------------------------------------------ hooks

#[test]
fn hooks_global_and_per_process() {
    let text = r#"global:
  hooks:
    pre_start:  [{ command: ["php", "artisan", "config:cache"], timeout: 60s }]
    post_start: { command: [notify, up], retries: 2, continue_on_error: true }
    post_stop:  [{ command: ["sh", "-c", "echo bye $$HOME"] }]
processes:
  horizon:
    command: ["php", "artisan", "horizon"]
    port_base: 9000
    hooks:
      pre_stop: [{ command: ["php", "artisan", "horizon:terminate", "--id=${PHPEEK_PM_INSTANCE_ID}"], timeout: 30s }]
      pre_start:
        - command: [check, "${PHPEEK_PM_INSTANCE_PORT}"]
        - command: [second]
      post_stop: ~
"#;
    let c = ok(text, &Env::default());
    let g = &c.global.hooks;
    assert_eq!(g.pre_start.len(), 1);
    assert_eq!(g.pre_start[0].command, ["php", "artisan", "config:cache"]);
    assert_eq!(g.pre_start[0].timeout, Duration::from_secs(60));
    assert_eq!(
        (
            g.post_start[0].retries,
            g.post_start[0].continue_on_error,
            g.post_start[0].timeout
        ),
        (2, true, DEFAULT_HOOK_TIMEOUT)
    );
    assert!(g.pre_stop.is_empty());
    assert_eq!(g.post_stop[0].command[2], "echo bye $HOME");
    let h = &c.processes["horizon"].hooks;
    assert_eq!(h.pre_stop[0].command[3], "--id=${PHPEEK_PM_INSTANCE_ID}");
    assert_eq!(h.pre_start.len(), 2);
    assert!(h.post_stop.is_empty());
    round_trip(&c);
}

#[test]
fn hook_errors() {
    let text = r#"global:
  hooks:
    pre_start: [{ command: ["./x", "${PHPEEK_PM_INSTANCE_ID}"] }]
    post_strat: []
processes:
  w:
    command: [w]
    hooks:
      post_start: [{ command: [x] }]
      pre_stop:
        - { command: [], timeout: 0 }
        - { timeout: 5s }
        - { command: [x], retries: 101, on_error: true }
        - ["not", "a", "mapping"]
        -
      pre_start: [{ command: [x, "${PHPEEK_PM_INSTANCE_PORT}"] }]
"#;
    let e = errs(text, &Env::default());
    assert_eq!(
        e,
        [
            "phpeek-pm.yaml:3:28: global.hooks.pre_start[0].command: uses ${PHPEEK_PM_INSTANCE_ID}, which only a process's instances have: global hooks run outside any process",
            "phpeek-pm.yaml:4:5: global.hooks.post_strat: unknown key (did you mean `post_start`?)",
            "phpeek-pm.yaml:9:7: processes.w.hooks.post_start: `post_start` is a global hook only (put it under `global.hooks:`); a process has pre_start, pre_stop, post_stop",
            "phpeek-pm.yaml:11:22: processes.w.hooks.pre_stop[0].command: is empty: give the program and its arguments",
            "phpeek-pm.yaml:11:35: processes.w.hooks.pre_stop[0].timeout: must be more than 0",
            "phpeek-pm.yaml:12:11: processes.w.hooks.pre_stop[1].command: missing `command`: e.g. { command: [\"php\", \"artisan\", \"config:cache\"] }",
            "phpeek-pm.yaml:13:36: processes.w.hooks.pre_stop[2].retries: `101` is too large (at most 100)",
            "phpeek-pm.yaml:13:41: processes.w.hooks.pre_stop[2].on_error: unknown key",
            "phpeek-pm.yaml:14:11: processes.w.hooks.pre_stop[3]: expected a hook mapping with `command`, e.g. { command: [\"php\", \"artisan\", \"config:cache\"] }, found a list",
            "phpeek-pm.yaml:15:10: processes.w.hooks.pre_stop[4]: empty entry: expected a hook, e.g. { command: [\"php\", \"artisan\", \"config:cache\"] }",
            "phpeek-pm.yaml:16:30: processes.w.hooks.pre_start[0].command: uses ${PHPEEK_PM_INSTANCE_PORT} but the process has no port_base (set port_base, or give a default: ${PHPEEK_PM_INSTANCE_PORT:-8080})",
        ]
    );
    assert_eq!(
        errs("", &env(&[("PHPEEK_PM_GLOBAL_HOOKS", "[]")])),
        ["phpeek-pm.yaml: PHPEEK_PM_GLOBAL_HOOKS: `HOOKS` holds lists of commands: set it in the file (global.hooks)"]
    );
}

// ---------------------------------------------------------- unknown keys

#[test]
fn unknown_keys_in_new_sections() {
    let text = "processes:\n  a:\n    command: [a]\n    tpye: oneshot\n    intial_state: stopped\n    shedule: '@daily'\n    hook: {}\n";
    let e = errs(text, &Env::default());
    assert_eq!(
        e,
        [
            "phpeek-pm.yaml:4:5: processes.a.tpye: unknown key (did you mean `type`?)",
            "phpeek-pm.yaml:5:5: processes.a.intial_state: unknown key (did you mean `initial_state`?)",
            "phpeek-pm.yaml:6:5: processes.a.shedule: unknown key (did you mean `schedule`?)",
            "phpeek-pm.yaml:7:5: processes.a.hook: unknown key (did you mean `hooks`?)",
        ]
    );
}

// -------------------------------------------------------------- overrides

#[test]
fn type_and_schedule_overrides() {
    let text = "processes:\n  job:\n    command: [j]\n  report:\n    command: [r]\n    schedule: { cron: '@daily', timezone: Europe/Paris, concurrency: allow, max_concurrent: 2 }\n";
    let c = ok(
        text,
        &env(&[
            ("PHPEEK_PM_PROCESS_JOB_TYPE", "oneshot"),
            ("PHPEEK_PM_PROCESS_REPORT_SCHEDULE", "*/5 * * * *"),
        ]),
    );
    assert_eq!(c.processes["job"].kind, ProcessType::Oneshot);
    assert_eq!(c.processes["job"].restart, RestartPolicy::Never);
    let r = c.processes["report"].schedule.clone();
    assert_eq!(
        r.map(|s| (s.cron, s.timezone, s.max_concurrent)),
        Some(("*/5 * * * *".into(), "Europe/Paris".into(), 2)),
        "the long form keeps its other keys"
    );
    let c = ok(text, &env(&[("PHPEEK_PM_PROCESS_JOB_SCHEDULE", "@hourly")]));
    assert_eq!(
        c.processes["job"]
            .schedule
            .as_ref()
            .map(|s| s.cron.as_str()),
        Some("@hourly")
    );
    assert_eq!(c.processes["job"].restart, RestartPolicy::Never);
    let e = errs(
        text,
        &env(&[
            ("PHPEEK_PM_PROCESS_JOB_SCHEDULE", "61 * * * *"),
            ("PHPEEK_PM_PROCESS_JOB_TYPE", "once"),
        ]),
    );
    assert_eq!(
        e,
        [
            "phpeek-pm.yaml: processes.job.schedule: field 1 (minute) `61` is out of range 0-59 (set by environment variable PHPEEK_PM_PROCESS_JOB_SCHEDULE)",
            "phpeek-pm.yaml: processes.job.type: unknown value `once`: expected one of longrun, oneshot (set by environment variable PHPEEK_PM_PROCESS_JOB_TYPE)",
        ]
    );
}

// ------------------------------------------------------------- round trip

#[test]
fn every_new_key_round_trips() {
    let text = r#"global:
  hooks:
    pre_start: [{ command: ["php", "artisan", "config:cache"], timeout: 1m, retries: 2 }]
    post_start: [{ command: [a] }]
    pre_stop: [{ command: [b], continue_on_error: true }]
    post_stop: [{ command: ["sh", "-c", "echo $$1 ${PHPEEK_PM_X:-y}"] }]
processes:
  migrate:
    type: oneshot
    command: ["php", "artisan", "migrate", "--force", "--isolated"]
    restart: on-failure
    max_restart_attempts: 3
    timeout: 10m
    on_failure: shutdown
    scale: 2
  php-fpm:
    command: ["php-fpm", "-F"]
    initial_state: stopped
    max_restart_attempts: 0
    depends_on:
      migrate: completed_successfully
      redis: healthy
      cache: started
    hooks:
      pre_start: [{ command: [pre, "${PHPEEK_PM_INSTANCE_NUMBER}"] }]
      pre_stop: [{ command: [drain], timeout: 250ms }]
      post_stop: [{ command: [done], retries: 100, continue_on_error: yes }]
  redis:
    command: [redis-server]
  cache:
    type: oneshot
    command: [warm]
  worker:
    command: [w]
    depends_on: [migrate, redis]
  scheduler:
    command: ["php", "artisan", "schedule:run", "--no-interaction"]
    schedule: "* * * * *"
  report:
    command: ["php", "artisan", "report:daily"]
    schedule:
      cron: "30 6 * * 1-5"
      timezone: Europe/Amsterdam
      concurrency: allow
      max_concurrent: 3
      timeout: 5m
      run_on_start: true
      history: 20
      suspended: true
  replace:
    command: [r]
    scale: 0
    schedule: { cron: "@monthly", concurrency: replace }
  forbid:
    command: [f]
    schedule: { cron: "0 */2 * * * *", starting_deadline: 1.5 }
"#;
    let c = ok(text, &env(&[("TZ", "Europe/Lisbon")]));
    assert_eq!(
        c.processes["forbid"]
            .schedule
            .as_ref()
            .map(|s| s.timezone.as_str()),
        Some("Europe/Lisbon")
    );
    assert_eq!(
        c.global.hooks.post_stop[0].command[2],
        "echo $1 ${PHPEEK_PM_X:-y}".replace("${PHPEEK_PM_X:-y}", "y")
    );
    round_trip(&c);
    let yaml = to_yaml(&c);
    for needle in [
        "type: oneshot",
        "initial_state: stopped",
        "on_failure: shutdown",
        "migrate: completed_successfully",
        "worker",
        "max_concurrent: 3",
    ] {
        assert!(yaml.contains(needle), "{needle} in\n{yaml}");
    }
    assert!(!yaml.contains("max_concurrent: 1"), "{yaml}");
}
