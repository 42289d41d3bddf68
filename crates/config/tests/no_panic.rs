//! The loader never panics: random bytes, random text, and valid configs
//! mutated by inserting, deleting and replacing characters all come back
//! as `Ok` or `Err`. Case count: `PROPTEST_CASES` (default 256).

use phpeek_config::{parse_str, to_yaml, Env};
use proptest::prelude::*;

const VALID: &str = r#"version: "1.0"
global:
  shutdown_timeout: 30
  api_host: 127.0.0.1
  api_port: 9180
  api_auth: "token"
  metrics_path: /metrics
  restart_backoff_initial: 250ms
  hooks:
    pre_start: [{ command: ["php", "artisan", "config:cache"], timeout: 60s }]
    post_stop: { command: ["sh", "-c", "echo $$bye"], retries: 1, continue_on_error: true }
x-base: &base
  restart: always
  env: { A: "${A:-x}", B: $$ }
processes:
  php-fpm:
    command: ["php-fpm", "-F"]
    health_check: { type: tcp, address: "127.0.0.1:9000", period: 5s }
  queue-default:
    <<: *base
    command: ["php", "artisan", "queue:work", "--id=${PHPEEK_PM_INSTANCE_NUMBER}"]
    scale: ${CPU_COUNT}
    max_scale: 20
    depends_on: [php-fpm]
    port_base: 8080
    shutdown: { signal: SIGTERM, timeout: 60 }
    health_check:
      type: http
      url: "http://127.0.0.1:${PHPEEK_PM_INSTANCE_PORT}/health"
      expected_status: 200
    hooks:
      pre_stop: [{ command: ["php", "artisan", "queue:restart", "${PHPEEK_PM_INSTANCE_PORT}"], timeout: 5s }]
  migrate:
    type: oneshot
    command: ["php", "artisan", "migrate", "--force"]
    restart: on-failure
    max_restart_attempts: 3
    timeout: 10m
    on_failure: shutdown
  web:
    command: ["nginx"]
    initial_state: stopped
    depends_on: { migrate: completed_successfully, php-fpm: healthy }
  scheduler:
    command: ["php", "artisan", "schedule:run"]
    schedule: "* * * * *"
  report:
    command: ["php", "artisan", "report:daily"]
    schedule:
      cron: "30 6 * * 1-5"
      timezone: Europe/Amsterdam
      concurrency: allow
      max_concurrent: 3
      timeout: 5m
      run_on_start: false
      history: 10
      suspended: false
  queue-auto:
    command: ["php", "artisan", "queue:work", "--json"]
    port_base: 7000
    autoscale:
      min: 1
      max: 10
      interval: 15s
      metrics:
        - redis: { url: "redis://:pw@127.0.0.1:6379/0", llen: "queues:default" }
          per_instance: 100
        - command: ["php", "artisan", "queue:size"]
          steps: [{ above: 500, instances: 10 }, { above: 100, instances: 5 }]
        - http: { url: "https://127.0.0.1:8080/stats", json: "queues.0.pending" }
          per_instance: 2.5
          timeout: 2s
        - prometheus: { url: "http://127.0.0.1:9090/metrics", metric: "jobs:pending", labels: { queue: default } }
          per_instance: 50
        - cpu: { utilization: 75 }
      windows:
        - { start: "0 9 * * 1-5", end: "0 18 * * 1-5", timezone: Europe/Amsterdam, min: 2 }
        - { start: "@daily", end: "0 6 * * *", max: 4 }
      behavior:
        tolerance: 0.1
        scale_up: { stabilization: 0s, max_step: 4, period: 15s }
        scale_down: { stabilization: 300s, max_step: 100%, period: 15s }
      fallback: 4
      dry_run: false
    scale_down: { order: idle_first, idle: { busy: "^Processing", idle: "^(Processed|Failed)$$" } }
"#;

/// Characters that matter to YAML, substitution and the validator.
const INTERESTING: &[char] = &[
    ':', '-', ' ', '\n', '\t', '{', '}', '[', ']', ',', '#', '&', '*', '!', '|', '>', '\'', '"',
    '%', '@', '`', '$', '?', '<', '\\', '0', '9', 'a', 'Z', '\u{E000}', '\u{E801}', '\u{FEFF}',
    'é', '\0', '\r',
];

fn env() -> Env {
    Env::from_pairs([
        ("CPU_COUNT", "2"),
        ("A", "a: b # c"),
        ("PHPEEK_PM_PROCESS_QUEUE_DEFAULT_SCALE", "3"),
        ("PHPEEK_PM_GLOBAL_LOG_FORMAT", "json"),
        ("TZ", ":Europe/Berlin"),
    ])
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let ch = prop_oneof![proptest::sample::select(INTERESTING), any::<char>(),];
    prop_oneof![
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), ch).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let len = chars.len();
        match *e {
            Edit::Insert(i, c) => chars.insert(i % (len + 1), c),
            Edit::Delete(i) if len > 0 => {
                chars.remove(i % len);
            }
            Edit::Replace(i, c) if len > 0 => chars[i % len] = c,
            Edit::Duplicate(i, n) if len > 0 => {
                let start = i % len;
                let end = (start + n).min(len);
                let piece: Vec<char> = chars[start..end].to_vec();
                chars.splice(start..start, piece);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

#[test]
fn the_valid_base_is_valid() {
    let c = parse_str(VALID, "fuzz.yaml", &env());
    assert!(
        c.is_ok(),
        "{}",
        c.err().map(|e| e.to_string()).unwrap_or_default()
    );
}

/// Cron and zone text as a user might mistype it.
const CRON_CHARS: &[char] = &[
    '0', '1', '2', '5', '9', '*', '/', ',', '-', ' ', '\t', 'L', 'W', '#', '?', '@', 'M', 'o', 'n',
    'J', 'a', 'é', '$', '{', '}',
];

proptest! {
    #[test]
    fn random_schedules_never_panic_and_round_trip(
        cron in proptest::collection::vec(proptest::sample::select(CRON_CHARS), 0..30),
        zone in "[A-Za-z/_]{0,20}",
        concurrency in proptest::sample::select(&["forbid", "allow", "replace", "x"][..]),
        with_max in any::<bool>(),
        with_deadline in any::<bool>(),
    ) {
        let cron: String = cron.into_iter().collect();
        let mut text = format!(
            "processes:\n  s:\n    command: [s]\n    schedule:\n      cron: '{}'\n      timezone: '{zone}'\n      concurrency: {concurrency}\n",
            cron.replace('\'', "''")
        );
        if with_max {
            text.push_str("      max_concurrent: 2\n");
        }
        if with_deadline {
            text.push_str("      starting_deadline: 5s\n");
        }
        for form in [text.clone(), format!("processes:\n  s:\n    command: [s]\n    schedule: '{}'\n", cron.replace('\'', "''"))] {
            match parse_str(&form, "fuzz.yaml", &Env::from_pairs([("TZ", "Asia/Tokyo")])) {
                Ok(c) => {
                    let yaml = to_yaml(&c);
                    let back = parse_str(&yaml, "rendered.yaml", &Env::default());
                    prop_assert_eq!(back.as_ref().ok(), Some(&c), "rendered:\n{}", yaml);
                }
                Err(e) => prop_assert!(!e.errors.is_empty()),
            }
        }
    }

    #[test]
    fn random_autoscale_values_never_panic_and_round_trip(
        url in "(redis|rediss|http|https|ftp)://[a-z:@\\[\\]0-9./]{0,24}",
        path in "[a-z0-9.]{0,16}",
        name in "[a-zA-Z0-9_:-]{0,12}",
        step in "[0-9%. -]{0,6}",
        number in "[0-9e.+-]{0,6}",
        regex in "[a-z()\\[\\]|*+?^$\\\\{}]{0,12}",
        bounds in (0u32..30, 0u32..30, 0u32..30),
    ) {
        let q = |s: &str| s.replace('\'', "''");
        let (min, max, scale) = bounds;
        let text = format!(
            "processes:\n  a:\n    command: [a]\n    scale: {scale}\n    autoscale:\n      min: {min}\n      max: {max}\n      metrics:\n        - redis: {{ url: '{u}', llen: q }}\n          per_instance: '{n}'\n        - http: {{ url: '{u}', json: '{p}' }}\n          steps: [{{ above: '{n}', instances: {min} }}]\n        - prometheus: {{ url: '{u}', metric: '{m}', labels: {{ '{m}': x }} }}\n          per_instance: 1\n        - cpu: {{ utilization: '{n}' }}\n      behavior: {{ tolerance: '{n}', scale_up: {{ max_step: '{s}' }} }}\n    scale_down: {{ order: idle_first, idle: {{ busy: '{r}', idle: '{r}' }} }}\n",
            u = q(&url), p = q(&path), m = q(&name), n = q(&number), s = q(&step), r = q(&regex).replace('$', "$$"),
        );
        match parse_str(&text, "fuzz.yaml", &Env::default()) {
            Ok(c) => {
                let yaml = to_yaml(&c);
                let back = parse_str(&yaml, "rendered.yaml", &Env::default());
                prop_assert_eq!(back.as_ref().ok(), Some(&c), "rendered:\n{}", yaml);
            }
            Err(e) => {
                prop_assert!(!e.errors.is_empty());
                let _ = e.to_string();
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_str(&text, "fuzz.yaml", &env());
    }

    #[test]
    fn random_yaml_ish_text_never_panics(
        chars in proptest::collection::vec(proptest::sample::select(INTERESTING), 0..300)
    ) {
        let text: String = chars.into_iter().collect();
        let _ = parse_str(&text, "fuzz.yaml", &env());
    }

    #[test]
    fn mutated_configs_never_panic(edits in proptest::collection::vec(edit(), 1..12)) {
        let text = apply(VALID, &edits);
        match parse_str(&text, "fuzz.yaml", &env()) {
            Ok(c) => {
                // Whatever loads renders, and the rendering loads back the same.
                let yaml = to_yaml(&c);
                let back = parse_str(&yaml, "rendered.yaml", &Env::default());
                prop_assert_eq!(back.as_ref().ok(), Some(&c), "rendered:\n{}", yaml);
            }
            Err(e) => {
                prop_assert!(!e.errors.is_empty());
                let _ = e.to_string();
            }
        }
    }
}
