//! SPEC 4's `rollout: { min_ready }` in the file: parsing, errors (text,
//! line and column), the round trip, and the advice `check-config` gives
//! for per-instance ports without it.

use std::time::Duration;

use phpeek_config::{advisories, parse_str, to_yaml, Config, Env};

fn parse(text: &str) -> Result<Config, Vec<String>> {
    parse_str(text, "phpeek-pm.yaml", &Env::default())
        .map_err(|e| e.to_string().lines().map(str::to_string).collect())
}

fn ok(text: &str) -> Config {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("rejected:\n{}", e.join("\n")),
    }
}

fn errs(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(c) => panic!("accepted: {c:#?}"),
        Err(e) => e,
    }
}

fn web(extra: &str) -> String {
    format!("processes:\n  web:\n    command: [serve]\n    scale: 3\n{extra}")
}

#[test]
fn min_ready_is_read_and_rendered_back() {
    let c = ok(&web("    rollout: { min_ready: 11s }\n"));
    let p = &c.processes["web"];
    assert_eq!(p.rollout.min_ready, Some(Duration::from_secs(11)));
    let yaml = to_yaml(&c);
    assert!(yaml.contains("rollout:\n      min_ready: 11s"), "{yaml}");
    assert_eq!(ok(&yaml).processes["web"].rollout, p.rollout);
}

#[test]
fn zero_null_and_empty_mean_no_wait() {
    for body in [
        "    rollout: { min_ready: 0s }\n",
        "    rollout: { min_ready: null }\n",
        "    rollout: {}\n",
        "    rollout:\n",
    ] {
        let c = ok(&web(body));
        assert!(c.processes["web"].rollout.is_default(), "{body}");
        assert!(!to_yaml(&c).contains("rollout"), "{body}");
    }
}

#[test]
fn bad_values_and_unknown_keys_are_errors_at_their_place() {
    let e = errs(&web("    rollout: { min_ready: soon }\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("phpeek-pm.yaml:5:"), "{e:?}");
    assert!(e[0].contains("processes.web.rollout.min_ready"), "{e:?}");

    let e = errs(&web("    rollout: { min_redy: 10s }\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("processes.web.rollout"), "{e:?}");
    assert!(e[0].contains("min_ready"), "suggests the known key: {e:?}");

    let e = errs(&web("    rollout: 10s\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("processes.web.rollout"), "{e:?}");
}

#[test]
fn a_scheduled_process_has_no_roll() {
    let e = errs(
        "processes:\n  report:\n    command: [report]\n    schedule: \"*/5 * * * *\"\n    rollout: { min_ready: 5s }\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("phpeek-pm.yaml:5:"), "{e:?}");
    assert!(e[0].contains("not with a schedule"), "{e:?}");
}

#[test]
fn per_instance_ports_without_min_ready_get_advice() {
    let c = ok(&web("    port_base: 8080\n"));
    let advice = advisories(&c);
    assert_eq!(advice.len(), 1, "{advice:?}");
    assert!(
        advice[0].starts_with("processes.web: port_base"),
        "{advice:?}"
    );
    assert!(
        advice[0].contains("rollout: { min_ready: 11s }"),
        "{advice:?}"
    );

    // With min_ready, one instance, or no port_base: nothing to say.
    for quiet in [
        web("    port_base: 8080\n    rollout: { min_ready: 11s }\n"),
        "processes:\n  web:\n    command: [serve]\n    port_base: 8080\n".to_string(),
        web(""),
    ] {
        assert!(advisories(&ok(&quiet)).is_empty(), "{quiet}");
    }
    // One instance now but room for more (max_scale): the advice stands.
    let c = ok("processes:\n  web:\n    command: [serve]\n    port_base: 8080\n    max_scale: 4\n");
    assert_eq!(advisories(&c).len(), 1);
}
