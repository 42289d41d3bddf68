//! Lifecycle of the real binary under test: write a config into a fresh
//! temp dir, start `phpeek-pm -c CONFIG` (optionally under a wrapper such
//! as `unshare`) with stdout and stderr captured to files, find its
//! listeners, signal it, wait for it to exit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::{wait_for, DEADLINE};

/// Globals every test config starts with: ephemeral loopback ports and fast
/// restarts.
pub const TEST_GLOBALS: &str = "global:
  api_port: 0
  metrics_host: 127.0.0.1
  metrics_port: 0
  restart_backoff_initial: 100ms
  restart_backoff_max: 1s
  shutdown_timeout: 10
";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_phpeek-pm")
}

pub struct Manager {
    pub dir: tempfile::TempDir,
    pub child: Child,
    pub config: PathBuf,
    api: Option<String>,
    metrics: Option<String>,
    pub exit: Option<ExitStatus>,
    /// Sent as `Authorization: Bearer …` by `get`/`post` when set.
    pub token: Option<String>,
}

impl Manager {
    /// Writes `yaml` as the config (in a fresh temp dir that tests may use
    /// for scripts and marker files, see [`Manager::path`]) and starts the
    /// manager on it.
    pub fn start(yaml: &str) -> Manager {
        Self::start_with(yaml, &[], |_| {})
    }

    /// Like [`Manager::start`] with extra environment variables and a hook
    /// to prepare files in the directory before the manager starts.
    pub fn start_with(yaml: &str, env: &[(&str, &str)], prepare: impl FnOnce(&Path)) -> Manager {
        Self::launch(yaml, &[], env, prepare)
    }

    /// Starts `WRAPPER… phpeek-pm -c CONFIG` (e.g. under `unshare`).
    pub fn start_wrapped(yaml: &str, wrapper: &[&str], prepare: impl FnOnce(&Path)) -> Manager {
        assert!(!wrapper.is_empty(), "a wrapper command");
        Self::launch(yaml, wrapper, &[], prepare)
    }

    /// The one start path: `$DIR` in `yaml` becomes the temp dir.
    fn launch(
        yaml: &str,
        wrapper: &[&str],
        env: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Manager {
        let dir = tempfile::tempdir().expect("tempdir");
        prepare(dir.path());
        let yaml = yaml.replace("$DIR", dir.path().to_str().unwrap());
        let config = dir.path().join("phpeek-pm.yaml");
        std::fs::write(&config, yaml).unwrap();
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((program, pre)) => {
                let mut cmd = Command::new(program);
                cmd.args(pre).arg(bin());
                cmd
            }
            None => Command::new(bin()),
        };
        cmd.arg("-c")
            .arg(&config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .envs(env.iter().copied());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {wrapper:?} phpeek-pm: {e}"));
        Manager {
            dir,
            child,
            config,
            api: None,
            metrics: None,
            exit: None,
            token: None,
        }
    }

    /// A path inside the test's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.path("stdout.log")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
    }

    fn find_url(&self, marker: &str) -> String {
        wait_for(
            &format!("`{marker}` in the manager's stderr"),
            DEADLINE,
            || {
                let err = self.stderr();
                err.lines().find_map(|l| {
                    let at = l.find(marker)?;
                    let rest = &l[at + marker.len()..];
                    Some(
                        rest.split_whitespace()
                            .next()?
                            .trim_end_matches('"')
                            .to_string(),
                    )
                })
            },
        )
    }

    /// `http://127.0.0.1:PORT` of the API.
    pub fn api(&mut self) -> String {
        if self.api.is_none() {
            self.api = Some(self.find_url("API listening on "));
        }
        self.api.clone().unwrap()
    }

    /// `http://127.0.0.1:PORT/metrics` of the metrics endpoint.
    pub fn metrics_url(&mut self) -> String {
        if self.metrics.is_none() {
            self.metrics = Some(self.find_url("metrics listening on "));
        }
        self.metrics.clone().unwrap()
    }

    /// Sends a signal to the manager.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// True while the manager has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the manager to exit and returns its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> i32 {
        let child = &mut self.child;
        let status = wait_for("the manager to exit", deadline, || {
            child.try_wait().ok().flatten()
        });
        self.exit = Some(status);
        status.code().unwrap_or(-1)
    }

    /// Waits for a line containing `needle` on the manager's stdout.
    pub fn wait_stdout(&self, needle: &str) -> String {
        wait_for(&format!("`{needle}` on stdout"), DEADLINE, || {
            let out = self.stdout();
            out.contains(needle).then_some(out)
        })
    }

    /// Waits for `needle` on the manager's stderr.
    pub fn wait_stderr(&self, needle: &str) -> String {
        wait_for(&format!("`{needle}` on stderr"), DEADLINE, || {
            let err = self.stderr();
            err.contains(needle).then_some(err)
        })
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if self.exit.is_none() && self.running() {
            // Children carry a parent-death signal and die with us.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes an executable shell script into `dir`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A file's text, or "" while it does not exist.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
