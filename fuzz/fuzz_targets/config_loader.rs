//! Arbitrary bytes as a configuration file. Input: `yaml \0 log_level \0
//! web_scale`; the parts after NUL bytes (if any) become the
//! `PHPEEK_PM_GLOBAL_LOG_LEVEL` / `PHPEEK_PM_PROCESS_WEB_SCALE` overrides.
//! On success, `to_yaml` must re-parse to the same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phpeek_config::{parse_str, to_yaml, Env};

fn base() -> Vec<(String, String)> {
    [
        ("PORT", "8080"),
        ("HOME", "/root"),
        ("APP_ENV", "production"),
        ("CPU_COUNT", "4"),
        ("MEMORY_LIMIT_MB", "2048"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let mut vars = base();
    if let Some(level) = parts.next() {
        vars.push((
            "PHPEEK_PM_GLOBAL_LOG_LEVEL".into(),
            String::from_utf8_lossy(level).into_owned(),
        ));
    }
    if let Some(scale) = parts.next() {
        vars.push((
            "PHPEEK_PM_PROCESS_WEB_SCALE".into(),
            String::from_utf8_lossy(scale).into_owned(),
        ));
    }
    let env = Env::from_pairs(vars);
    if let Ok(config) = parse_str(&text, "fuzz.yaml", &env) {
        let yaml = to_yaml(&config);
        match parse_str(&yaml, "fuzz-rendered.yaml", &Env::from_pairs(base())) {
            Ok(again) => assert_eq!(config, again, "to_yaml round trip differs:\n{yaml}"),
            Err(e) => panic!("to_yaml output does not re-parse: {e:?}\n{yaml}"),
        }
    }
});
