//! Every YAML example of `shared/seed/process-scaling.md`, as written.
//! Examples without `processes:` at the top are fragments of a process
//! entry; they are wrapped (and given a `command` where the fragment shows
//! only the key it is about).

use phpeek_config::{parse_str, Config, Env, RestartPolicy};

fn load(text: &str, env: &Env) -> Config {
    match parse_str(text, "seed.yaml", env) {
        Ok(c) => c,
        Err(e) => panic!("seed example rejected:\n{e}\n---\n{text}"),
    }
}

fn no_env() -> Env {
    Env::default()
}

fn scale_of(c: &Config, name: &str) -> u32 {
    c.processes.get(name).map(|p| p.scale).unwrap_or(u32::MAX)
}

#[test]
fn basic_configuration() {
    let c = load(
        r#"processes:
  queue-default:
    enabled: true
    command: ["php", "artisan", "queue:work"]
    scale: 3  # Run 3 instances
"#,
        &no_env(),
    );
    let p = &c.processes["queue-default"];
    assert!(p.enabled);
    assert_eq!(p.command, ["php", "artisan", "queue:work"]);
    assert_eq!(p.scale, 3);
}

#[test]
fn queue_workers() {
    let c = load(
        r#"processes:
  queue-default:
    command: ["php", "artisan", "queue:work", "--queue=default"]
    scale: 5  # 5 parallel workers
    restart: always

  queue-high:
    command: ["php", "artisan", "queue:work", "--queue=high"]
    scale: 2  # 2 workers for high-priority queue
"#,
        &no_env(),
    );
    assert_eq!(scale_of(&c, "queue-default"), 5);
    assert_eq!(scale_of(&c, "queue-high"), 2);
    assert_eq!(c.processes["queue-high"].restart, RestartPolicy::Always);
}

#[test]
fn background_workers() {
    let c = load(
        r#"processes:
  data-processor:
    command: ["./process-worker"]
    scale: 10  # 10 parallel processors
    env:
      WORKER_TYPE: data_processor
"#,
        &no_env(),
    );
    let p = &c.processes["data-processor"];
    assert_eq!(p.scale, 10);
    assert_eq!(p.env["WORKER_TYPE"], "data_processor");
}

#[test]
fn high_availability() {
    let c = load(
        r#"processes:
  api-server:
    command: ["./api-server"]
    scale: 3  # 3 instances for redundancy
    restart: always
"#,
        &no_env(),
    );
    assert_eq!(scale_of(&c, "api-server"), 3);
}

#[test]
fn automatic_naming() {
    let c = load(
        r#"processes:
  worker:
    command: ["./worker"]
    scale: 3
"#,
        &no_env(),
    );
    assert_eq!(scale_of(&c, "worker"), 3);
}

#[test]
fn scale_from_env_override_as_in_the_seed() {
    let base = r#"processes:
  queue-default:
    command: ["php", "artisan", "queue:work"]
    scale: 3
"#;
    for n in ["3", "10"] {
        let env = Env::from_pairs([("PHPEEK_PM_PROCESS_QUEUE_DEFAULT_SCALE", n)]);
        let c = load(base, &env);
        assert_eq!(scale_of(&c, "queue-default").to_string(), n);
    }
}

#[test]
fn cpu_based_scaling_fragment() {
    // Fragment: `queue-workers: { scale: ${CPU_COUNT} }`, wrapped under
    // `processes:` with a command.
    let text = r#"processes:
  # Scale based on available CPUs
  # 1 worker per CPU core
  queue-workers:
    command: ["php", "artisan", "queue:work"]
    scale: ${CPU_COUNT}  # e.g., 4 CPUs → 4 workers
"#;
    let c = load(text, &Env::from_pairs([("CPU_COUNT", "4")]));
    assert_eq!(scale_of(&c, "queue-workers"), 4);
    // With the real built-in CPU_COUNT.
    let c = load(text, &Env::from_process());
    assert!(scale_of(&c, "queue-workers") >= 1);
    // The Docker Compose example's variables.
    let env = Env::from_pairs([
        ("CPU_COUNT", "4"),
        ("PHPEEK_PM_PROCESS_QUEUE_WORKERS_SCALE", "4"),
    ]);
    assert_eq!(scale_of(&load(text, &env), "queue-workers"), 4);
}

#[test]
fn memory_based_scaling_fragment() {
    let text = r#"processes:
  # Calculate workers from memory
  # Example: 4GB RAM, 400MB per worker = 10 workers
  queue-workers:
    command: ["php", "artisan", "queue:work"]
    scale: ${WORKER_COUNT}  # Calculated externally
"#;
    let c = load(text, &Env::from_pairs([("WORKER_COUNT", "10")]));
    assert_eq!(scale_of(&c, "queue-workers"), 10);
    // `export PHPEEK_PM_PROCESS_QUEUE_WORKERS_SCALE=$WORKER_COUNT`
    let env = Env::from_pairs([
        ("WORKER_COUNT", "10"),
        ("PHPEEK_PM_PROCESS_QUEUE_WORKERS_SCALE", "10"),
    ]);
    assert_eq!(scale_of(&load(text, &env), "queue-workers"), 10);
    // Unset WORKER_COUNT: an error naming it, on the right line.
    let err = parse_str(text, "seed.yaml", &no_env()).err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.contains("seed.yaml:6:12") && text.contains("`WORKER_COUNT`"),
        "{text}"
    );
}

#[test]
fn queue_depth_based_override() {
    let base = r#"processes:
  queue-default:
    command: ["php", "artisan", "queue:work", "--queue=default"]
    scale: 5
"#;
    // `WORKERS=$((QUEUE_DEPTH / 100 + 1))`
    let env = Env::from_pairs([("PHPEEK_PM_PROCESS_QUEUE_DEFAULT_SCALE", "8")]);
    assert_eq!(scale_of(&load(base, &env), "queue-default"), 8);
}

#[test]
fn load_distribution_queue() {
    let c = load(
        r#"processes:
  queue-default:
    command: ["php", "artisan", "queue:work", "--queue=default"]
    scale: 5
"#,
        &no_env(),
    );
    assert_eq!(scale_of(&c, "queue-default"), 5);
}

#[test]
fn http_workers() {
    let c = load(
        r#"processes:
  api-worker:
    command: ["./api-server", "--port=8080"]
    scale: 3
"#,
        &no_env(),
    );
    assert_eq!(c.processes["api-worker"].command[1], "--port=8080");
}

#[test]
fn scaling_down_grace_period() {
    // Fragment showing only `shutdown`; a command is added.
    let c = load(
        r#"processes:
  worker:
    command: ["./worker"]
    shutdown:
      timeout: 60  # Allow workers to finish gracefully
"#,
        &no_env(),
    );
    let s = &c.processes["worker"].shutdown;
    assert_eq!(s.timeout, Some(std::time::Duration::from_secs(60)));
    assert_eq!(s.signal, libc_sigterm());
}

fn libc_sigterm() -> i32 {
    15
}

#[test]
fn uneven_load_fragment() {
    let c = load(
        r#"processes:
  # Reduce max-time so workers restart and rebalance
  queue-default:
    command: ["php", "artisan", "queue:work", "--max-time=1800"]  # 30 min
    scale: 5
"#,
        &no_env(),
    );
    assert_eq!(scale_of(&c, "queue-default"), 5);
}

#[test]
fn per_instance_configuration() {
    let env = Env::from_pairs([("PHPEEK_PM_INSTANCE_NUMBER", "9")]);
    let c = load(
        r#"processes:
  worker:
    command: ["./worker", "--id=${PHPEEK_PM_INSTANCE_NUMBER}"]
    scale: 3
"#,
        &env,
    );
    let p = &c.processes["worker"];
    // Kept for per-instance expansion, even though the manager's own
    // environment has the variable.
    assert_eq!(p.command[1], "--id=${PHPEEK_PM_INSTANCE_NUMBER}");
    let vars = phpeek_config::InstanceVars {
        process: "worker",
        instance: "worker-2",
        number: 2,
        port: None,
    };
    assert_eq!(
        phpeek_config::expand_instance_vars(&p.command[1], &vars),
        "--id=2"
    );
}

#[test]
fn canary_scaling() {
    let c = load(
        r#"processes:
  # Stable version
  app-stable:
    command: ["./app", "--version=stable"]
    scale: 9  # 90% of traffic

  # Canary version
  app-canary:
    command: ["./app", "--version=canary"]
    scale: 1  # 10% of traffic
"#,
        &no_env(),
    );
    assert_eq!(scale_of(&c, "app-stable"), 9);
    assert_eq!(scale_of(&c, "app-canary"), 1);
}

#[test]
fn spec_section_1_example() {
    let text = r#"version: "1.0"
global:
  shutdown_timeout: 30          # seconds; default grace for every process
  log_format: text              # text | json
  log_level: info               # debug | info | warn | error
  api_enabled: true             # default true
  api_host: 127.0.0.1           # default loopback
  api_port: 9180
  api_auth: "token"             # optional Bearer token
  api_socket: /run/phpeek-pm.sock   # optional unix socket for the API
  api_insecure: false           # allow a non-loopback API without api_auth
  metrics_enabled: true         # default true
  metrics_host: 0.0.0.0
  metrics_port: 9090
  metrics_path: /metrics
  max_process_scale: 1000       # hard ceiling for any scale request
  restart_backoff_initial: 1s   # durations: 250ms, 5s, 1m, or a bare number of seconds
  restart_backoff_max: 60s
  max_restart_attempts: 0       # 0 = unlimited
  dependency_timeout: 5m        # a dependent waiting longer is marked failed
processes:
  php-fpm:
    command: ["php-fpm", "-F"]
    health_check: { type: tcp, address: "127.0.0.1:9000" }
  queue-default:
    enabled: true
    command: ["php", "artisan", "queue:work", "--id=${PHPEEK_PM_INSTANCE_NUMBER}"]
    scale: 3
    max_scale: 20               # optional per-process ceiling
    restart: always             # always | on-failure | never
    env: { WORKER_TYPE: data_processor }
    working_dir: /var/www/html
    user: www-data              # name or number; group defaults to the user's
    group: www-data
    depends_on: [php-fpm]
    port_base: 8080             # optional: instance N gets PHPEEK_PM_INSTANCE_PORT=8080+N
    shutdown: { signal: SIGTERM, timeout: 60 }
    health_check: { type: http, url: "http://127.0.0.1:${PHPEEK_PM_INSTANCE_PORT}/health", expected_status: 200 }
    stdout: true
    stderr: true
"#;
    let c = load(text, &no_env());
    assert_eq!(c.global.api_auth.as_deref(), Some("token"));
    assert_eq!(c.global.dependency_timeout.as_secs(), 300);
    let q = &c.processes["queue-default"];
    assert_eq!(q.max_scale, Some(20));
    assert_eq!(q.port_base, Some(8080));
    assert_eq!(q.dependency_names().collect::<Vec<_>>(), ["php-fpm"]);
    assert_eq!(q.user.as_deref(), Some("www-data"));
    let hc = q.health_check.as_ref().map(|h| h.kind.type_name());
    assert_eq!(hc, Some("http"));
}
