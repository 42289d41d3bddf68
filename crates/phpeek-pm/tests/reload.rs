//! SPEC §4: hot reload through the API and SIGHUP: only what changed is
//! touched, and a file that does not load changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use common::*;

fn reload_config(extra: &str, worker_scale: u32, worker_cmd: &str) -> String {
    format!(
        r#"{TEST_GLOBALS}processes:
  keep:
    command: ["sleep", "300"]
    scale: 2
  worker:
    command: ["sh", "-c", "{worker_cmd}"]
    scale: {worker_scale}
{extra}"#
    )
}

#[test]
fn reload_adds_removes_rescales_and_rolls_only_what_changed() {
    let v1 = reload_config(
        "  old:\n    command: [\"sleep\", \"300\"]\n",
        2,
        "exec sleep 301",
    );
    let mut m = Manager::start(&v1);
    let keep = m.wait_running("keep", 2);
    m.wait_running("worker", 2);
    m.wait_running("old", 1);
    let old_pid = m.pids("old")["old-1"];

    // Rescale keep, change worker's command, drop old, add new.
    let v2 = reload_config(
        "  new:\n    command: [\"sleep\", \"300\"]\n",
        2,
        "exec sleep 302",
    )
    .replace("    scale: 2\n  worker", "    scale: 3\n  worker");
    std::fs::write(&m.config, &v2).unwrap();
    let (status, body) = m.post("/api/v1/reload", "");
    assert_eq!(status, 202, "{body}");
    let r: ReloadResponse = decode(&body);
    assert_eq!(r.added, ["new"]);
    assert_eq!(r.removed, ["old"]);
    assert_eq!(r.rescaled, ["keep"]);
    assert_eq!(r.restarted, ["worker"]);

    m.wait_running("new", 1);
    let keep3 = m.wait_running("keep", 3);
    for (name, pid) in &keep {
        assert!(keep3.contains(&(name.clone(), *pid)), "{name} was touched");
    }
    wait_for("old removed", DEADLINE, || {
        (m.get("/api/v1/processes/old").0 == 404).then_some(())
    });
    assert!(!alive(old_pid));
    wait_for("worker rolled onto the new command", DEADLINE, || {
        let w = m.pids("worker");
        let all_new = w.len() == 2
            && w.values().all(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .unwrap_or_default()
                    .contains("302")
            });
        all_new.then_some(())
    });
}

#[test]
fn a_broken_file_is_rejected_and_nothing_changes() {
    let v1 = reload_config("", 2, "exec sleep 301");
    let mut m = Manager::start(&v1);
    let keep = m.wait_running("keep", 2);
    let worker = m.wait_running("worker", 2);
    std::fs::write(
        &m.config,
        v1.replace("scale: 2", "scael: 2")
            .replace("sleep 301", "sleep 309")
            + "  bad name:\n    command: []\n",
    )
    .unwrap();
    let (status, body) = m.post("/api/v1/reload", "");
    assert_eq!(status, 400, "{body}");
    let v: ErrorResponse = decode(&body);
    assert_eq!(v.error, "config rejected");
    assert!(v.errors.len() >= 2, "{v:?}");
    assert!(v.errors.iter().any(|e| e.contains("scael")), "{v:?}");
    assert_eq!(m.wait_running("keep", 2), keep);
    assert_eq!(m.wait_running("worker", 2), worker);
    m.wait_stderr("reload rejected");

    // The same through SIGHUP: rejected, logged, nothing changes.
    m.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for("second rejection logged", DEADLINE, || {
        (m.stderr().matches("reload rejected").count() >= 2).then_some(())
    });
    assert_eq!(m.wait_running("worker", 2), worker);
}

#[test]
fn sighup_applies_a_good_file() {
    let v1 = reload_config("", 2, "exec sleep 301");
    let mut m = Manager::start(&v1);
    let keep = m.wait_running("keep", 2);
    std::fs::write(&m.config, reload_config("", 4, "exec sleep 301")).unwrap();
    m.signal(nix::sys::signal::Signal::SIGHUP);
    m.wait_running("worker", 4);
    assert_eq!(m.wait_running("keep", 2), keep);
}

#[test]
fn an_empty_file_does_not_stop_everything() {
    let v1 = reload_config("", 2, "exec sleep 301");
    let mut m = Manager::start(&v1);
    let keep = m.wait_running("keep", 2);
    for text in ["", "# only a comment\n"] {
        std::fs::write(&m.config, text).unwrap();
        let (status, body) = m.post("/api/v1/reload", "");
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("no processes"), "{body}");
    }
    assert_eq!(m.wait_running("keep", 2), keep);
}
