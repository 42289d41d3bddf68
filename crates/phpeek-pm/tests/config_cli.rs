#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! SPEC §1 and the configuration tools: check-config, schema, lookup
//! errors, and what the manager does with commands and users that cannot
//! be started.

mod common;
use common::*;

use std::path::Path;

/// The lines of the block under `key:` (a line `key:` at some indentation,
/// up to the next line indented as much or less).
fn yaml_block<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let mut lines = text.lines();
    let mut indent = None;
    for l in lines.by_ref() {
        if l.trim_end() == format!("{}{key}:", " ".repeat(l.len() - l.trim_start().len())) {
            indent = Some(l.len() - l.trim_start().len());
            break;
        }
    }
    let Some(indent) = indent else {
        panic!("no `{key}:` block in:\n{text}")
    };
    lines
        .take_while(|l| {
            l.trim().is_empty()
                || l.len() - l.trim_start().len() > indent
                || l.trim_start().starts_with("- ")
        })
        .collect()
}

fn has_line(block: &[&str], want: &str) -> bool {
    block.iter().any(|l| l.trim() == want)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

const QUEUES: &str = "processes:
  queue-default:
    command: [\"php\", \"artisan\", \"queue:work\", \"--id=${PHPEEK_PM_INSTANCE_NUMBER}\"]
    scale: ${QUEUE_N}
    env:
      GREETING: \"${GREETING:-hello}\"
  queue-high:
    command: [\"php\", \"artisan\", \"queue:work\", \"--queue=high\"]
    scale: 2
";

#[test]
fn check_config_prints_the_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.yaml", QUEUES);
    let run = run_cli(
        &["check-config", "-c", &cfg],
        dir.path(),
        &[("QUEUE_N", "4")],
        &[
            "PHPEEK_PM_PROCESS_QUEUE_DEFAULT_SCALE",
            "PHPEEK_PM_PROCESS_QUEUE_HIGH_SCALE",
            "GREETING",
        ],
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let qd = yaml_block(&run.stdout, "queue-default");
    assert!(
        has_line(&qd, "scale: 4"),
        "${{QUEUE_N}} substituted:\n{}",
        run.stdout
    );
    assert!(
        qd.iter()
            .any(|l| l.contains("GREETING") && l.contains("hello")),
        "${{GREETING:-hello}} default applied:\n{}",
        run.stdout
    );
    assert!(!run.stdout.contains("${QUEUE_N}"), "{}", run.stdout);
    let qh = yaml_block(&run.stdout, "queue-high");
    assert!(has_line(&qh, "scale: 2"), "{}", run.stdout);

    // environment overrides win over the file and over ${VAR}
    let run = run_cli(
        &["check-config", "-c", &cfg],
        dir.path(),
        &[
            ("QUEUE_N", "4"),
            ("PHPEEK_PM_PROCESS_QUEUE_DEFAULT_SCALE", "10"),
            ("PHPEEK_PM_PROCESS_QUEUE_HIGH_SCALE", "7"),
        ],
        &["GREETING"],
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert!(
        has_line(&yaml_block(&run.stdout, "queue-default"), "scale: 10"),
        "{}",
        run.stdout
    );
    assert!(
        has_line(&yaml_block(&run.stdout, "queue-high"), "scale: 7"),
        "{}",
        run.stdout
    );

    // the printed config is itself a valid config with the same meaning
    let again = write(dir.path(), "again.yaml", &run.stdout);
    let rerun = run_cli(
        &["check-config", "-c", &again],
        dir.path(),
        &[],
        &[
            "PHPEEK_PM_PROCESS_QUEUE_DEFAULT_SCALE",
            "PHPEEK_PM_PROCESS_QUEUE_HIGH_SCALE",
        ],
    );
    assert_eq!(
        rerun.code, 0,
        "check-config output does not load again:\n{}",
        rerun.stderr
    );
    assert!(
        has_line(&yaml_block(&rerun.stdout, "queue-default"), "scale: 10"),
        "{}",
        rerun.stdout
    );
}

#[test]
fn scale_override_from_the_environment_is_applied_at_run_time() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  queue-default:
    command: [\"sleep\", \"1000\"]
    scale: 1
"
    );
    let mut m = Manager::start_with(
        &yaml,
        &[("PHPEEK_PM_PROCESS_QUEUE_DEFAULT_SCALE", "3")],
        |_| {},
    );
    let running = m.wait_running("queue-default", 3);
    assert_eq!(running.len(), 3);
    assert_eq!(m.process("queue-default").desired, 3);
}

#[test]
fn every_mistake_is_reported_on_its_own_line_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    // line numbers matter below
    let text = "global:
  shutdown_timout: 5
processes:
  a:
    comand: [\"sleep\", \"1\"]
  b:
    command: [\"sleep\", \"1\"]
    scale: -1
  c:
    command: [\"sleep\", \"1\"]
    restart: sometimes
  d:
    command: [\"sleep\", \"1\"]
    depends_on: [ghost]
";
    let cfg = write(dir.path(), "bad.yaml", text);
    let run = run_cli(&["check-config", "-c", &cfg], dir.path(), &[], &[]);
    assert_eq!(
        run.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    // (what identifies the error, its line, a hint it must carry)
    let expected = [
        ("shutdown_timout", 2, "shutdown_timeout"),
        ("comand", 5, "command"),
        ("scale", 8, "-1"),
        ("sometimes", 11, "restart"),
        ("ghost", 14, "depends_on"),
    ];
    let lines: Vec<&str> = run.stderr.lines().collect();
    for (what, line, hint) in expected {
        let found: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains(what) && has_line_col(l, line))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "exactly one line about `{what}` with line {line}:column:\n{}",
            run.stderr
        );
        assert!(
            found[0].contains(hint),
            "the line about `{what}` mentions `{hint}`: {}",
            found[0]
        );
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

    // the manager itself refuses the same file the same way, starting nothing
    let serve = run_cli(&["-c", &cfg], dir.path(), &[], &[]);
    assert_eq!(serve.code, 2, "{}", serve.stderr);
    assert!(serve.stderr.contains("ghost"), "{}", serve.stderr);
}

/// True when `l` carries `LINE:COLUMN` (column a positive number).
fn has_line_col(l: &str, line: usize) -> bool {
    let pat = format!("{line}:");
    l.match_indices(&pat).any(|(i, _)| {
        let before_ok = i == 0 || !l.as_bytes()[i - 1].is_ascii_digit();
        let rest = &l[i + pat.len()..];
        let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
        before_ok && col.parse::<usize>().is_ok_and(|c| c > 0)
    })
}

#[test]
fn schema_is_json_describing_processes() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_cli(&["schema"], dir.path(), &[], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    assert!(v.is_object());
    assert!(
        v["properties"]["processes"].is_object(),
        "top-level `processes` property: {v:.300}"
    );
    assert!(
        v["properties"]["global"].is_object(),
        "top-level `global` property"
    );
}

fn run_into_closed_pipe(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let err_path = dir.join("err");
    let mut child = std::process::Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(write_end))
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let status = wait_for("the command to exit", DEADLINE, || {
        child.try_wait().unwrap()
    });
    (status.code(), std::fs::read_to_string(&err_path).unwrap())
}

#[test]
fn output_into_a_closed_pipe_does_not_panic() {
    // `phpeek-pm schema | head -1` closes the pipe early; the program must
    // not panic (SPEC §1: never panics on any input).
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "c.yaml",
        "processes:\n  w:\n    command: [\"sleep\", \"1\"]\n",
    );
    for args in [&["schema"][..], &["check-config", "-c", &cfg][..]] {
        let (code, err) = run_into_closed_pipe(args, dir.path());
        assert!(
            !err.contains("panicked"),
            "{args:?}: panic on a closed stdout:\n{err}"
        );
        assert_ne!(
            code,
            Some(101),
            "{args:?}: exit code of a Rust panic\n{err}"
        );
    }
}

#[test]
fn no_config_file_names_the_places_looked() {
    if Path::new("/etc/phpeek-pm/phpeek-pm.yaml").exists() {
        println!("skipped: /etc/phpeek-pm/phpeek-pm.yaml exists on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for args in [&[][..], &["check-config"][..]] {
        let run = run_cli(args, dir.path(), &[], &["PHPEEK_PM_CONFIG"]);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        for place in [
            "phpeek-pm.yaml",
            "/etc/phpeek-pm/phpeek-pm.yaml",
            "PHPEEK_PM_CONFIG",
        ] {
            assert!(
                run.stderr.contains(place),
                "{args:?}: `{place}` not named:\n{}",
                run.stderr
            );
        }
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    // $PHPEEK_PM_CONFIG and ./phpeek-pm.yaml are found
    let cfg = write(
        dir.path(),
        "elsewhere.yaml",
        "processes:\n  x:\n    command: [\"sleep\", \"1\"]\n    scale: 5\n",
    );
    let run = run_cli(
        &["check-config"],
        dir.path(),
        &[("PHPEEK_PM_CONFIG", &cfg)],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        has_line(&yaml_block(&run.stdout, "x"), "scale: 5"),
        "{}",
        run.stdout
    );
    write(
        dir.path(),
        "phpeek-pm.yaml",
        "processes:\n  yonder:\n    command: [\"sleep\", \"1\"]\n    scale: 6\n",
    );
    let run = run_cli(&["check-config"], dir.path(), &[], &["PHPEEK_PM_CONFIG"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        has_line(&yaml_block(&run.stdout, "yonder"), "scale: 6"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_missing_command_does_not_stop_the_manager() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  bad:
    command: [\"/nonexistent/prog\", \"--flag\"]
  good:
    command: [\"sleep\", \"1000\"]
"
    );
    let mut m = Manager::start(&yaml);
    let (_, good_pid) = m.wait_running("good", 1).remove(0);
    let bad = m.wait_instance("bad-1", |i| {
        let state_ok = matches!(i.state, InstanceState::Backoff | InstanceState::Failed);
        let reason_ok = i
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("/nonexistent/prog"));
        state_ok && reason_ok
    });
    assert!(bad.pid.is_none(), "{bad:?}");
    let err = m.wait_stderr("/nonexistent/prog");
    let about: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("/nonexistent/prog"))
        .collect();
    assert!(
        about[0].contains("bad-1"),
        "the line names the instance: {}",
        about[0]
    );
    assert!(
        about[0].to_lowercase().contains("no such file")
            || about[0].contains("not found")
            || about[0].contains("does not exist"),
        "the line says why: {}",
        about[0]
    );
    assert!(m.running(), "the manager keeps running");
    assert!(alive(good_pid), "the healthy process keeps running");
    assert_eq!(m.process("good").current, 1);
}

#[test]
fn a_missing_command_with_restart_never_is_failed_and_reported_once() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  bad:
    command: [\"/nonexistent/prog\"]
    restart: never
  good:
    command: [\"sleep\", \"1000\"]
"
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("good", 1);
    let bad = m.wait_instance("bad-1", |i| {
        matches!(i.state, InstanceState::Failed | InstanceState::Exited)
    });
    assert!(
        bad.reason
            .as_deref()
            .is_some_and(|r| r.contains("/nonexistent/prog")),
        "{bad:?}"
    );
    let err = m.wait_stderr("/nonexistent/prog");
    let n = err
        .lines()
        .filter(|l| l.contains("/nonexistent/prog"))
        .count();
    assert_eq!(n, 1, "one clear line:\n{err}");
    assert!(m.running());
}

#[test]
fn an_unknown_user_is_not_started_and_the_manager_keeps_running() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  ghost:
    command: [\"$DIR/mark.sh\"]
    user: no-such-user-xyz
  good:
    command: [\"sleep\", \"1000\"]
"
    );
    let mut m = Manager::start_with(&yaml, &[], |d| {
        script(
            d,
            "mark.sh",
            "touch \"$(dirname \"$0\")/ghost-ran\"\nexec sleep 1000",
        );
    });
    let (_, good_pid) = m.wait_running("good", 1).remove(0);
    let ghost = m.wait_instance("ghost-1", |i| {
        let reason_ok = i
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("no-such-user-xyz"));
        reason_ok && i.pid.is_none()
    });
    assert_ne!(ghost.state, InstanceState::Running, "{ghost:?}");
    let err = m.wait_stderr("no-such-user-xyz");
    assert!(
        err.lines()
            .any(|l| l.contains("no-such-user-xyz") && l.contains("ghost-1")),
        "{err}"
    );
    assert!(
        !m.path("ghost-ran").exists(),
        "the command ran without its user"
    );
    assert!(m.running());
    assert!(alive(good_pid));
}
