//! The real PHP stack of `examples/php-stack/` (Debian's php-fpm, nginx,
//! php-cli with phpredis and sqlite3, redis-server), copied into a temp dir
//! and run with the manager as PID 1 of a fresh pid namespace
//! (`unshare --fork --pid --mount-proc`), on free loopback ports; and a
//! load client that counts every answer that is not a 200.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{children_of, is_root, poll, skip, try_send, wait_for, which, Manager, DEADLINE};

/// Where the example lives.
pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/php-stack")
}

/// The programs the stack runs (the Debian packages php-fpm, php-cli,
/// php-redis, php-sqlite3, nginx, redis-server) and `unshare`.
const PROGRAMS: &[&str] = &["php", "php-fpm8.2", "nginx", "redis-server", "unshare"];

/// True when the stack can run here; otherwise reports `test` skipped (or
/// fails under CI).
pub fn stack_available(test: &str) -> bool {
    if !is_root() {
        return skip(test, "needs root for a pid namespace (unshare --pid)");
    }
    // php-fpm8.2 and nginx live in /usr/sbin, which a non-login PATH may
    // lack (the stack runs with /usr/sbin on its PATH).
    let missing: Vec<&str> = PROGRAMS
        .iter()
        .copied()
        .filter(|p| which(p).is_none() && !Path::new("/usr/sbin").join(p).is_file())
        .collect();
    if !missing.is_empty() {
        return skip(test, &format!("{} not installed", missing.join(", ")));
    }
    let modules = std::process::Command::new("php")
        .arg("-m")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_lowercase())
        .unwrap_or_default();
    for m in ["redis", "sqlite3", "pcntl"] {
        if !modules.lines().any(|l| l.trim() == m) {
            return skip(test, &format!("php extension {m} not installed"));
        }
    }
    true
}

/// Ports of one stack; disjoint between the tests of one run.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: u16,
    pub redis: u16,
    /// php-fpm's port_base: php-fpm-N listens on fpm_base + N (N = 1, 2).
    pub fpm_base: u16,
    /// api-worker's port_base: api-worker-N on api_base + N (N = 1..=6).
    pub api_base: u16,
}

const BLOCK: u16 = 12;
static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);

fn bindable(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

impl Ports {
    /// A block of 12 consecutive free loopback ports between 20000 and
    /// 32000: http, redis, then php-fpm's 2 and api-worker's 6 (scale
    /// 3 -> 6) above their bases.
    pub fn pick() -> Ports {
        // Below Linux's ephemeral range (32768 up), which the load
        // clients' thousands of connections draw from.
        let start = 20000 + (std::process::id() % 900) as u16 * BLOCK;
        loop {
            let n = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
            let base = 20000 + (start - 20000 + n.wrapping_mul(BLOCK)) % 12000;
            if (base..base + BLOCK).all(bindable) {
                return Ports {
                    http: base,
                    redis: base + 1,
                    fpm_base: base + 2,
                    api_base: base + 5,
                };
            }
        }
    }
}

/// Options of one run of the stack.
pub struct StackOptions<'a> {
    /// The config to run; the example's by default. `${APP_DIR:-/app}` is
    /// the temp dir the example is copied into.
    pub yaml: Option<String>,
    pub env: &'a [(&'a str, &'a str)],
}

pub struct Stack {
    pub m: Manager,
    pub ports: Ports,
    /// Host pid of the manager (PID 1 inside its namespace).
    pub manager_pid: i32,
}

/// The example's config as the tests run it: its files under `$DIR` (the
/// manager harness's temp dir), and the php-fpm pool told where the slow
/// page marks its start.
pub fn example_yaml() -> String {
    let yaml = std::fs::read_to_string(example_dir().join("phpeek-pm.yaml"))
        .expect("examples/php-stack/phpeek-pm.yaml");
    yaml.replace("${APP_DIR:-/app}", "$DIR").replace(
        "      FPM_USER: ${FPM_USER:-www-data}\n",
        "      FPM_USER: ${FPM_USER:-www-data}\n      MARK_DIR: $DIR/var\n",
    )
}

/// The example's config without its `rollout: { min_ready }` blocks.
pub fn without_min_ready(yaml: &str) -> String {
    let mut out = Vec::new();
    let mut skip_next = false;
    for line in yaml.lines() {
        if skip_next && line.trim_start().starts_with("min_ready:") {
            skip_next = false;
            continue;
        }
        skip_next = line.trim() == "rollout:";
        if !skip_next {
            out.push(line);
        }
    }
    out.join("\n") + "\n"
}

/// The example's nginx.conf with the test's ports. The upstream block
/// keeps the seed's shape (three `server` lines, nginx's defaults).
fn nginx_conf(ports: Ports) -> String {
    let conf = std::fs::read_to_string(example_dir().join("nginx.conf"))
        .expect("examples/php-stack/nginx.conf");
    let mut conf = conf.replace("listen 80;", &format!("listen 127.0.0.1:{};", ports.http));
    for n in 1..=3u16 {
        conf = conf.replace(
            &format!("server 127.0.0.1:{};", 8080 + n),
            &format!("server 127.0.0.1:{};", ports.api_base + n),
        );
    }
    for n in 1..=2u16 {
        conf = conf.replace(
            &format!("server 127.0.0.1:{};", 9000 + n),
            &format!("server 127.0.0.1:{};", ports.fpm_base + n),
        );
    }
    conf
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Stack {
    /// Copies the example into a fresh temp dir, points it at free ports
    /// and starts the manager on it as PID 1 of a new pid namespace.
    pub fn start(opts: StackOptions) -> Stack {
        let ports = Ports::pick();
        let yaml = opts.yaml.unwrap_or_else(example_yaml);
        let mut env: Vec<String> = vec![
            format!("HTTP_PORT={}", ports.http),
            format!("REDIS_PORT={}", ports.redis),
            "PHPEEK_PM_GLOBAL_API_PORT=0".into(),
            "PHPEEK_PM_GLOBAL_METRICS_PORT=0".into(),
            "PHPEEK_PM_GLOBAL_METRICS_HOST=127.0.0.1".into(),
            "FPM_USER=www-data".into(),
            // php-fpm8.2 is in /usr/sbin.
            format!(
                "PATH=/usr/local/sbin:/usr/sbin:/sbin:{}",
                std::env::var("PATH").unwrap_or_default()
            ),
        ];
        // Overrides may only name processes the file defines.
        if yaml.contains("\n  php-fpm:\n") {
            env.push(format!(
                "PHPEEK_PM_PROCESS_PHP_FPM_PORT_BASE={}",
                ports.fpm_base
            ));
        }
        if yaml.contains("\n  api-worker:\n") {
            env.push(format!(
                "PHPEEK_PM_PROCESS_API_WORKER_PORT_BASE={}",
                ports.api_base
            ));
        }
        env.extend(opts.env.iter().map(|(k, v)| format!("{k}={v}")));
        let mut wrapper: Vec<&str> = vec!["env"];
        wrapper.extend(env.iter().map(String::as_str));
        // --kill-child: should the harness end unshare (a failed test's
        // Drop), unshare SIGKILLs the manager, the namespace's init, and
        // the kernel takes every process in the namespace with it.
        // Without it the manager would live on, re-parented, with its
        // whole stack.
        wrapper.extend(["unshare", "--fork", "--kill-child", "--pid", "--mount-proc"]);
        let mut m = Manager::start_wrapped(&yaml, &wrapper, |d| {
            copy_dir(&example_dir(), d);
            std::fs::write(d.join("nginx.conf"), nginx_conf(ports)).unwrap();
            // nginx's and php-fpm's workers run as www-data: they must reach
            // the temp dir (0700 by default) and php-fpm's may write var/.
            set_mode(d, 0o755);
            set_mode(&d.join("var"), 0o777);
        });
        let started = wait_for("the manager's API, or its exit", DEADLINE, || {
            if m.stderr().contains("API listening on ") {
                Some(true)
            } else {
                (!m.running()).then_some(false)
            }
        });
        assert!(started, "the manager exited at start:\n{}", m.stderr());
        let unshare_pid = m.pid();
        let manager_pid = wait_for("the manager under unshare", DEADLINE, || {
            children_of(unshare_pid).first().map(|s| s.pid)
        });
        assert_eq!(
            inner_pid(manager_pid),
            Some(1),
            "the manager is PID 1 in its namespace"
        );
        m.api();
        Stack {
            m,
            ports,
            manager_pid,
        }
    }

    /// `http://127.0.0.1:PORT` of nginx.
    pub fn nginx(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.http)
    }

    /// Waits until `GET /api/v1/ready` answers 200; returns how many not-ready
    /// answers came before.
    pub fn wait_ready(&mut self, deadline: Duration) -> usize {
        let mut not_ready = 0;
        let api = self.m.api();
        wait_for("/api/v1/ready to answer 200", deadline, || {
            match try_send("GET", &format!("{api}/api/v1/ready"), None, &[]) {
                Ok(r) if r.status == 200 => Some(not_ready),
                _ => {
                    not_ready += 1;
                    None
                }
            }
        })
    }

    /// Runs `phpeek-pm ARGS` against this manager's API.
    pub fn cli(&mut self, args: &[&str]) -> super::CliRun {
        let api = self.m.api();
        let mut full = vec!["--api", api.as_str()];
        full.extend_from_slice(args);
        super::run_cli(&full, self.m.dir.path(), &[], &[])
    }

    /// The host pids of the processes in the manager's pid namespace (the
    /// manager included).
    pub fn namespace_pids(&self) -> Vec<i32> {
        let Some(ns) = pid_ns(self.manager_pid) else {
            return Vec::new();
        };
        all_pids()
            .into_iter()
            .filter(|&p| pid_ns(p).as_deref() == Some(ns.as_str()))
            .collect()
    }
}

impl Drop for Stack {
    /// A stack still running at the end of a test (passed or failed) is
    /// shut down as in production: SIGTERM to PID 1, which stops every
    /// program with its own signal. If that does not end it within a
    /// minute, the Manager's drop ends unshare, whose --kill-child ends the
    /// namespace.
    fn drop(&mut self) {
        if self.m.exit.is_some() || !self.m.running() {
            return;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.manager_pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        let child = &mut self.m.child;
        if let Some(status) = poll(Duration::from_secs(60), || child.try_wait().ok().flatten()) {
            self.m.exit = Some(status);
        }
    }
}

/// The pid namespace of `pid`, as the `pid:[INODE]` link text.
pub fn pid_ns(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|p| p.display().to_string())
}

pub fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The innermost pid of a process (its pid in its own pid namespace).
pub fn inner_pid(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// The host pid of the process whose pid inside the namespace of
/// `ns_member` is `inner`.
pub fn host_pid(ns_member: i32, inner: i32) -> Option<i32> {
    let ns = pid_ns(ns_member)?;
    all_pids()
        .into_iter()
        .find(|&p| pid_ns(p).as_deref() == Some(ns.as_str()) && inner_pid(p) == Some(inner))
}

/// What a load client saw.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub sent: u64,
    pub ok: u64,
    /// Answers other than 200, and requests that failed (refused, reset,
    /// no answer); up to 20 distinct samples.
    pub failed: u64,
    pub samples: Vec<String>,
    pub seconds: f64,
}

impl LoadReport {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.sent as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests in {:.1}s ({:.0}/s), {} ok, {} failed{}",
            self.sent,
            self.seconds,
            self.rate(),
            self.ok,
            self.failed,
            if self.samples.is_empty() {
                String::new()
            } else {
                format!(" e.g. {:?}", self.samples)
            }
        )
    }
}

/// The gist of an error page: its `<title>`, else its first line.
fn title(body: &str) -> String {
    let t = body
        .split_once("<title>")
        .and_then(|(_, r)| r.split_once("</title>"))
        .map(|(t, _)| t)
        .unwrap_or_else(|| body.lines().next().unwrap_or(""));
    t.chars().take(80).collect()
}

/// A client sending `GET url` without pause from `threads` threads, each
/// paced at `per_thread` requests per second, one new connection per
/// request (`Connection: close`: the stricter choice, every request meets
/// nginx's choice of backend anew and a backend going away is seen at
/// once).
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    sent: Arc<AtomicU64>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    samples: Arc<Mutex<Vec<String>>>,
    started: Instant,
}

impl Load {
    pub fn start(url: &str, threads: usize, per_thread: u32) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let gap = Duration::from_secs(1) / per_thread.max(1);
        let handles = (0..threads)
            .map(|_| {
                let (stop, sent, ok, failed, samples) = (
                    stop.clone(),
                    sent.clone(),
                    ok.clone(),
                    failed.clone(),
                    samples.clone(),
                );
                let url = url.to_string();
                std::thread::spawn(move || {
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        let answer = try_send("GET", &url, None, &[]);
                        sent.fetch_add(1, Ordering::Relaxed);
                        match answer {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            other => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                let what = match other {
                                    Ok(r) => format!("{} {}", r.status, title(&r.body)),
                                    Err(e) => format!("error: {e}"),
                                };
                                if let Ok(mut s) = samples.lock() {
                                    if s.len() < 20 && !s.contains(&what) {
                                        s.push(what);
                                    }
                                }
                            }
                        }
                        // Paced, never bursting to catch up after a slow answer.
                        next += gap;
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        } else {
                            next = now;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            threads: handles,
            sent,
            ok,
            failed,
            samples,
            started: Instant::now(),
        }
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        LoadReport {
            sent: self.sent.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            samples: self.samples.lock().map(|s| s.clone()).unwrap_or_default(),
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}
