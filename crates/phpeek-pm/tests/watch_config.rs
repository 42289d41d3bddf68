//! SPEC §14: `global.watch_config: true` / `serve --watch` reload the file
//! when it changes: an editor's rename-over write, a Kubernetes ConfigMap's
//! `..data` symlink swap, and a broken write (rejected as `POST
//! /api/v1/reload` rejects it; the old config keeps running).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;

fn config(watch_key: bool, scale: u32) -> String {
    let globals = if watch_key {
        format!("{TEST_GLOBALS}  watch_config: true\n")
    } else {
        TEST_GLOBALS.to_string()
    };
    format!(
        "{globals}processes:\n  keep:\n    command: [\"sleep\", \"300\"]\n  worker:\n    command: [\"sleep\", \"301\"]\n    scale: {scale}\n"
    )
}

/// Writes `text` beside `target` and renames it over `target`, as vim,
/// many editors and `kubectl cp`-style tools do.
fn rename_over(target: &Path, text: &str) {
    let tmp = target.with_extension("yaml.tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

fn reloads(m: &Manager) -> usize {
    m.stderr().matches("configuration reloaded:").count()
}

#[test]
fn a_rename_over_write_is_reloaded_and_a_same_content_write_is_not() {
    let mut m = Manager::start(&config(true, 1));
    m.wait_stderr("watching ");
    let keep = m.wait_running("keep", 1);
    m.wait_running("worker", 1);

    // The same bytes again: seen, and not a reload.
    rename_over(&m.config, &config(true, 1));
    rename_over(&m.config, &config(true, 3));
    m.wait_running("worker", 3);
    wait_for("the reload to be logged", DEADLINE, || {
        (reloads(&m) == 1).then_some(())
    });
    assert_eq!(m.wait_running("keep", 1), keep, "keep was touched");

    // The watch survives the replaced inode: a second rename-over counts.
    rename_over(&m.config, &config(true, 2));
    m.wait_running("worker", 2);
    assert_eq!(reloads(&m), 2, "{}", m.stderr());
}

/// Lays the directory out as the kubelet does for a mounted ConfigMap:
/// `phpeek-pm.yaml -> ..data/phpeek-pm.yaml`, `..data -> ..v1`.
fn configmap_layout(dir: &Path) {
    std::fs::create_dir(dir.join("..v1")).unwrap();
    symlink("..v1", dir.join("..data")).unwrap();
    symlink("..data/phpeek-pm.yaml", dir.join("phpeek-pm.yaml")).unwrap();
}

/// The kubelet's update: a new timestamped directory, a `..data_tmp`
/// symlink to it renamed over `..data`, the old directory removed.
fn configmap_update(dir: &Path, version: &str, text: &str) {
    let new = dir.join(version);
    std::fs::create_dir(&new).unwrap();
    std::fs::write(new.join("phpeek-pm.yaml"), text).unwrap();
    let old = std::fs::read_link(dir.join("..data")).unwrap();
    symlink(version, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join(old)).unwrap();
}

#[test]
fn a_configmap_data_swap_is_reloaded_under_serve_watch() {
    // `serve --watch` without the config key; the harness's `-c CONFIG`
    // follows the subcommand (a global flag).
    let wrapper = ["sh", "-c", r#"exec "$0" serve --watch "$@""#];
    let mut m = Manager::start_wrapped(&config(false, 1), &wrapper, configmap_layout);
    assert!(
        m.path("..v1/phpeek-pm.yaml").is_file(),
        "the harness wrote through the symlinks"
    );
    m.wait_stderr("watching ");
    m.wait_running("worker", 1);
    let keep = m.wait_running("keep", 1);

    configmap_update(m.dir.path(), "..v2", &config(false, 3));
    m.wait_running("worker", 3);

    // A second swap: the watch is on the directory, so it still sees it.
    configmap_update(m.dir.path(), "..v3", &config(false, 2));
    m.wait_running("worker", 2);
    assert_eq!(m.wait_running("keep", 1), keep, "keep was touched");
}

#[test]
fn a_broken_write_is_rejected_as_the_api_rejects_it_and_the_old_config_keeps_running() {
    let mut m = Manager::start(&config(true, 2));
    m.wait_stderr("watching ");
    let keep = m.wait_running("keep", 1);
    let workers = m.wait_running("worker", 2);

    let broken = config(true, 5).replace("    scale: 5", "    scael: 5");
    std::fs::write(&m.config, &broken).unwrap();
    let err = m.wait_stderr("reload rejected");

    // The API's answer for the same file: every error it lists was logged
    // by the watcher's rejection.
    let (status, body) = m.post("/api/v1/reload", "");
    assert_eq!(status, 400, "{body}");
    let api: ErrorResponse = decode(&body);
    assert_eq!(api.error, "config rejected");
    assert!(!api.errors.is_empty(), "{body}");
    for line in &api.errors {
        assert!(line.contains("scael"), "{line}");
        assert!(err.contains(line.as_str()), "`{line}` not logged:\n{err}");
    }
    assert_eq!(m.wait_running("worker", 2), workers, "workers were touched");
    assert_eq!(m.wait_running("keep", 1), keep);

    // Fixing the file is picked up: the watch goes on after a rejection.
    std::fs::write(&m.config, config(true, 3)).unwrap();
    m.wait_running("worker", 3);
    assert_eq!(reloads(&m), 1, "{}", m.stderr());
}
