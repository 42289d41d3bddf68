//! Black-box harness: runs the real `phpeek-pm` binary on a temp config,
//! with its stdout and stderr captured to files, and talks HTTP to it over
//! loopback. Every wait polls a condition with a generous deadline.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: tests must pass on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

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

/// Polls `cond` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, deadline: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Manager {
    pub dir: tempfile::TempDir,
    pub child: Child,
    pub config: PathBuf,
    api: Option<String>,
    metrics: Option<String>,
    pub exit: Option<std::process::ExitStatus>,
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
        let dir = tempfile::tempdir().expect("tempdir");
        prepare(dir.path());
        let yaml = yaml.replace("$DIR", dir.path().to_str().unwrap());
        let config = dir.path().join("phpeek-pm.yaml");
        std::fs::write(&config, yaml).unwrap();
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("-c")
            .arg(&config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn phpeek-pm");
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

    pub fn get(&mut self, path: &str) -> (u16, String) {
        let url = format!("{}{path}", self.api());
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        http("GET", &url, None, Some(&headers))
    }

    pub fn get_json(&mut self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    pub fn post(&mut self, path: &str, body: &str) -> (u16, String) {
        let url = format!("{}{path}", self.api());
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        http("POST", &url, Some(body), Some(&headers))
    }

    /// The instances array of `GET /api/v1/processes`.
    pub fn instances(&mut self) -> Vec<serde_json::Value> {
        self.get_json("/api/v1/processes")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `name` has exactly `n` instances in state running and
    /// returns their pids by instance name.
    pub fn wait_running(&mut self, process: &str, n: usize) -> Vec<(String, i32)> {
        let prefix = format!("{process}-");
        wait_for(
            &format!("{n} running instances of {process}"),
            DEADLINE,
            || {
                let list: Vec<(String, i32)> = self
                    .instances()
                    .into_iter()
                    .filter(|i| {
                        i["process"] == process
                            && i["name"].as_str().is_some_and(|s| s.starts_with(&prefix))
                    })
                    .filter(|i| i["state"] == "running")
                    .filter_map(|i| {
                        Some((i["name"].as_str()?.to_string(), i["pid"].as_i64()? as i32))
                    })
                    .collect();
                let total = self
                    .instances()
                    .into_iter()
                    .filter(|i| i["process"] == process)
                    .count();
                (list.len() == n && total == n).then_some(list)
            },
        )
    }

    /// Sends a signal to the manager.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
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
        if self.exit.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            // Children carry a parent-death signal and die with us.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The environment of a live process.
pub fn environ(pid: i32) -> Vec<(String, String)> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let s = String::from_utf8_lossy(kv);
            let (k, v) = s.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

pub fn env_var(pid: i32, key: &str) -> Option<String> {
    environ(pid)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// A minimal HTTP/1.1 client for loopback tests: returns (status, body).
pub fn http(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: Option<&[(&str, &str)]>,
) -> (u16, String) {
    let (head, body) = http_full(method, url, body, headers.unwrap_or(&[]));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    (status, body)
}

/// The raw response head (status line and headers) and body.
pub fn http_full(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Writes an executable shell script into `dir`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

// ----- helpers added for the instances/logs/pid1/api/config tests ----------

/// The outcome of one run of the binary as a command-line tool.
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `phpeek-pm ARGS` in `dir` with `env` added and `env_remove` removed
/// from the inherited environment; waits (with a deadline) for it to exit.
pub fn run_cli(args: &[&str], dir: &Path, env: &[(&str, &str)], env_remove: &[&str]) -> CliRun {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out_path = out_dir.path().join("out");
    let err_path = out_dir.path().join("err");
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for k in env_remove {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn phpeek-pm");
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("phpeek-pm {args:?} did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    CliRun {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// Fields of `/proc/PID/stat` after the command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(')')?;
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    let pgrp = it.next()?.parse().ok()?;
    let session = it.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        state,
        ppid,
        pgrp,
        session,
    })
}

/// Every process visible in /proc whose parent is `ppid`.
pub fn children_of(ppid: i32) -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(proc_stat)
        .filter(|s| s.ppid == ppid)
        .collect()
}

/// A file's text, or "" while it does not exist.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Waits until the file exists and `pred` accepts its content.
pub fn wait_file(path: &Path, pred: impl Fn(&str) -> bool) -> String {
    wait_for(
        &format!("{} to be written", path.display()),
        DEADLINE,
        || {
            let s = std::fs::read_to_string(path).ok()?;
            pred(&s).then_some(s)
        },
    )
}

impl Manager {
    /// Starts `WRAPPER… phpeek-pm -c CONFIG` (e.g. under `unshare`).
    pub fn start_wrapped(yaml: &str, wrapper: &[&str], prepare: impl FnOnce(&Path)) -> Manager {
        let dir = tempfile::tempdir().expect("tempdir");
        prepare(dir.path());
        let yaml = yaml.replace("$DIR", dir.path().to_str().unwrap());
        let config = dir.path().join("phpeek-pm.yaml");
        std::fs::write(&config, yaml).unwrap();
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let (program, pre) = wrapper.split_first().expect("a wrapper command");
        let mut cmd = Command::new(program);
        cmd.args(pre)
            .arg(bin())
            .arg("-c")
            .arg(&config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd.spawn().expect("spawn wrapped phpeek-pm");
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

    /// `GET /api/v1/processes/{name}` as JSON (status must be 200).
    pub fn process(&mut self, name: &str) -> serde_json::Value {
        self.get_json(&format!("/api/v1/processes/{name}"))
    }

    /// True while the manager has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A request with extra headers; returns (head, body).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (String, String) {
        let url = format!("{}{path}", self.api());
        let (head, body) = http_full(method, &url, None, headers);
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            let body = dechunk(&body);
            return (head, body);
        }
        (head, body)
    }
}

/// The status code of a raw response head.
pub fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
