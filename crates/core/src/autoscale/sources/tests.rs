//! The sources against real components: a Redis server (Debian's
//! `redis-server`, started by the test on a free loopback port) and tiny
//! HTTP servers on 127.0.0.1:0.
//!
//! The `command` source is not run here: its exit comes from the reaper,
//! which calls `waitpid(-1)` and so must never run inside the test
//! harness's process; its parsing is tested in `command.rs`, the whole
//! path by the black-box tests of the binary.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use phpeek_config::MetricSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::registry::ChildRegistry;
use crate::spawn::{Limits, SpawnSpec, Spawner};

fn kit() -> SourceKit {
    let registry = Arc::new(ChildRegistry::new());
    let spawner = Spawner::start(Arc::clone(&registry), Limits::default(), 1).expect("spawner");
    SourceKit::new(spawner, registry, http_client().expect("http client"))
}

fn base() -> SpawnSpec {
    SpawnSpec {
        argv: Vec::new(),
        env: Vec::new(),
        working_dir: None,
        user: None,
        group: None,
        capture_stdout: false,
        capture_stderr: false,
    }
}

async fn sample_with(
    kit: &SourceKit,
    source: &MetricSource,
    timeout: Duration,
) -> Result<f64, SampleFailure> {
    let spec = base();
    let cpu = CpuTracker::new();
    let ctx = SampleContext {
        base: &spec,
        sessions: &[],
        cpu: &cpu,
    };
    sample(kit, source, &ctx, timeout).await
}

fn redis(url: &str, key: &str) -> MetricSource {
    MetricSource::Redis {
        url: url.to_string(),
        llen: key.to_string(),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `redis-server` child of this test, killed by pid when dropped.
struct RedisServer {
    child: Child,
}

impl RedisServer {
    fn start(port: u16, password: &str) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--requirepass", password])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let server = RedisServer { child };
        // Ready when it answers PING.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if resp(port, &[&["AUTH", password], &["PING"]]).is_ok_and(|r| r.contains("+PONG")) {
                return server;
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // No reaper runs in the test harness, so nothing else waits for this
    // child of the test; the lint guards the manager's own code.
    #[allow(clippy::disallowed_methods)]
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends commands as raw RESP and returns the (one-line) replies.
fn resp(port: u16, commands: &[&[&str]]) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut out = Vec::new();
    for args in commands {
        write!(out, "*{}\r\n", args.len())?;
        for a in *args {
            write!(out, "${}\r\n{a}\r\n", a.len())?;
        }
    }
    stream.write_all(&out)?;
    let mut replies = String::new();
    let mut buf = [0u8; 4096];
    while replies.matches("\r\n").count() < commands.len() {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        replies.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    Ok(replies)
}

/// True when the test may go on; prints why not (and fails under CI).
fn have_redis_server() -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
    });
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "redis-server is not installed (apt-get install -y redis-server)"
        );
        println!("skipped: redis-server is not installed");
    }
    found
}

#[tokio::test]
async fn redis_llen_with_password_and_db_recovers_after_a_restart() {
    if !have_redis_server() {
        return;
    }
    let port = free_port();
    let mut server = RedisServer::start(port, "s3cret");
    let replies = resp(
        port,
        &[
            &["AUTH", "s3cret"],
            &["SELECT", "2"],
            &["RPUSH", "queues:default", "a", "b", "c"],
            &["SET", "plain", "x"],
            &["SELECT", "0"],
            &["RPUSH", "queues:default", "z"],
        ],
    )
    .expect("seed");
    assert!(replies.contains(":3"), "{replies}");

    let kit = kit();
    let t = Duration::from_secs(2);
    let url = format!("redis://:s3cret@127.0.0.1:{port}/2");
    assert_eq!(
        sample_with(&kit, &redis(&url, "queues:default"), t).await,
        Ok(3.0)
    );
    let db0 = format!("redis://:s3cret@127.0.0.1:{port}/0");
    assert_eq!(
        sample_with(&kit, &redis(&db0, "queues:default"), t).await,
        Ok(1.0)
    );
    assert_eq!(sample_with(&kit, &redis(&url, "absent"), t).await, Ok(0.0));

    let err = sample_with(&kit, &redis(&url, "plain"), t)
        .await
        .unwrap_err();
    println!("wrong type: {err}");
    assert!(matches!(err, SampleFailure::Redis { .. }), "{err:?}");
    assert!(err.to_string().contains("LLEN plain"), "{err}");
    assert!(kit.redis.cached(&url).is_some(), "an error reply keeps it");
    assert!(!err.to_string().contains("s3cret"), "{err}");

    let wrong = format!("redis://:nope@127.0.0.1:{port}/2");
    let err = sample_with(&kit, &redis(&wrong, "queues:default"), t)
        .await
        .unwrap_err();
    println!("wrong password: {err}");
    assert!(matches!(err, SampleFailure::Redis { .. }), "{err:?}");
    assert!(!err.to_string().contains("nope"), "{err}");

    // Redis goes away under an open connection: a clear failure, within
    // the timeout, every time.
    assert_eq!(
        sample_with(&kit, &redis(&url, "queues:default"), t).await,
        Ok(3.0)
    );
    server.stop();
    for _ in 0..2 {
        let t0 = Instant::now();
        let err = sample_with(&kit, &redis(&url, "queues:default"), t)
            .await
            .unwrap_err();
        println!("redis gone: {err} (after {:?})", t0.elapsed());
        assert!(t0.elapsed() < t + Duration::from_millis(500));
        assert!(matches!(err, SampleFailure::Unreachable { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    assert!(kit.redis.cached(&url).is_none());

    // It comes back on the same port: the next sample connects again.
    let _server = RedisServer::start(port, "s3cret");
    resp(
        port,
        &[
            &["AUTH", "s3cret"],
            &["SELECT", "2"],
            &["RPUSH", "queues:default", "1", "2", "3", "4", "5"],
        ],
    )
    .expect("seed again");
    assert_eq!(
        sample_with(&kit, &redis(&url, "queues:default"), t).await,
        Ok(5.0)
    );
}

#[tokio::test]
async fn a_redis_that_never_answers_is_cut_at_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accepts and keeps every connection open, saying nothing.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let kit = kit();
    let t = Duration::from_millis(300);
    for url in [
        format!("redis://127.0.0.1:{port}/0"),
        format!("redis://:pw@127.0.0.1:{port}/3"),
    ] {
        let t0 = Instant::now();
        let got = sample_with(&kit, &redis(&url, "q"), t).await;
        assert_eq!(got, Err(SampleFailure::Timeout(t)), "{url}");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    }
    silent.abort();
}

#[tokio::test]
async fn redis_urls_that_cannot_work_fail_clearly() {
    let kit = kit();
    let t = Duration::from_secs(1);
    let err = sample_with(&kit, &redis("rediss://:pw@127.0.0.1:1/0", "q"), t)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "TLS to Redis is not built in (rediss://:***@127.0.0.1:1/0)"
    );
    let err = sample_with(&kit, &redis("not a url", "q"), t)
        .await
        .unwrap_err();
    assert!(matches!(err, SampleFailure::BadRedisUrl { .. }), "{err:?}");
    let closed = free_port();
    let err = sample_with(&kit, &redis(&format!("redis://127.0.0.1:{closed}"), "q"), t)
        .await
        .unwrap_err();
    println!("closed port: {err}");
    assert!(matches!(err, SampleFailure::Unreachable { .. }), "{err:?}");
}

/// A tiny HTTP/1.1 server: answers by path from a fixed table, never
/// answers `/slow`, and closes each connection after one answer.
async fn serve(routes: Vec<(&'static str, u16, &'static str, String)>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let routes = Arc::clone(&routes);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                if path == "/slow" {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                let (status, extra, body) = routes
                    .iter()
                    .find(|(p, ..)| *p == path)
                    .map(|(_, s, e, b)| (*s, *e, b.clone()))
                    .unwrap_or((404, "", String::new()));
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}

fn http(url: String, json: &str) -> MetricSource {
    MetricSource::Http {
        url,
        json: json.to_string(),
    }
}

#[tokio::test]
async fn http_reads_a_number_by_json_path() {
    let stats = r#"{"queues":{"default":{"pending":17,"text":"4.5"}},"list":[{"n":2}]}"#;
    let port = serve(vec![
        (
            "/stats",
            200,
            "Content-Type: application/json\r\n",
            stats.to_string(),
        ),
        ("/text", 200, "", "hello".to_string()),
        ("/fail", 500, "", "oops".to_string()),
        ("/moved", 302, "Location: /stats\r\n", String::new()),
    ])
    .await;
    let kit = kit();
    let t = Duration::from_secs(2);
    let at = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let get = |path: &str, json: &str| http(at(path), json);

    assert_eq!(
        sample_with(&kit, &get("/stats", "queues.default.pending"), t).await,
        Ok(17.0)
    );
    assert_eq!(
        sample_with(&kit, &get("/stats", "queues.default.text"), t).await,
        Ok(4.5)
    );
    assert_eq!(
        sample_with(&kit, &get("/stats", "list.0.n"), t).await,
        Ok(2.0)
    );

    let err = sample_with(&kit, &get("/stats", "queues.low.pending"), t)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "JSON path `queues.low.pending`: no key `low` in the object at `queues`"
    );
    let err = sample_with(&kit, &get("/text", "x"), t).await.unwrap_err();
    assert!(matches!(err, SampleFailure::NotJson { .. }), "{err:?}");
    let err = sample_with(&kit, &get("/fail", "x"), t).await.unwrap_err();
    assert_eq!(err.to_string(), format!("GET {} answered 500", at("/fail")));
    // Redirects are not followed.
    let err = sample_with(&kit, &get("/moved", "x"), t).await.unwrap_err();
    assert!(
        matches!(err, SampleFailure::HttpStatus { status: 302, .. }),
        "{err:?}"
    );

    let short = Duration::from_millis(300);
    let t0 = Instant::now();
    let got = sample_with(&kit, &get("/slow", "x"), short).await;
    assert_eq!(got, Err(SampleFailure::Timeout(short)));
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());

    let closed = free_port();
    let err = sample_with(
        &kit,
        &http(format!("http://u:pw@127.0.0.1:{closed}/"), "x"),
        t,
    )
    .await
    .unwrap_err();
    println!("closed port: {err}");
    assert!(matches!(err, SampleFailure::Unreachable { .. }), "{err:?}");
    assert!(!err.to_string().contains("pw"), "{err}");

    let err = sample_with(&kit, &http("not a url".to_string(), "x"), t)
        .await
        .unwrap_err();
    println!("bad url: {err}");
}

#[tokio::test]
async fn prometheus_picks_one_sample_of_an_exposition() {
    let text = "# HELP jobs_pending Pending jobs.\n\
                # TYPE jobs_pending gauge\n\
                jobs_pending{queue=\"default\",host=\"a\"} 12 1712345678000\n\
                jobs_pending{queue=\"low\",host=\"a\"} 3\n\
                jobs_duration_seconds_count{queue=\"default\"} 40\n\
                broken{queue=\"default\"} NaN\n";
    let port = serve(vec![(
        "/metrics",
        200,
        "Content-Type: text/plain; version=0.0.4\r\n",
        text.to_string(),
    )])
    .await;
    let kit = kit();
    let t = Duration::from_secs(2);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let prom = |metric: &str, labels: &[(&str, &str)]| MetricSource::Prometheus {
        url: url.clone(),
        metric: metric.to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    assert_eq!(
        sample_with(&kit, &prom("jobs_pending", &[("queue", "default")]), t).await,
        Ok(12.0)
    );
    assert_eq!(
        sample_with(&kit, &prom("jobs_duration_seconds_count", &[]), t).await,
        Ok(40.0)
    );
    let err = sample_with(&kit, &prom("jobs_pending", &[]), t)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("2 samples match jobs_pending at {url}; add labels to pick one")
    );
    let err = sample_with(&kit, &prom("jobs_pending", &[("queue", "high")]), t)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SampleFailure::MetricNotFound { .. }),
        "{err:?}"
    );
    let err = sample_with(&kit, &prom("broken", &[]), t)
        .await
        .unwrap_err();
    assert!(matches!(err, SampleFailure::NotFinite { .. }), "{err:?}");
}

#[tokio::test]
async fn an_empty_command_fails_without_spawning() {
    let kit = kit();
    let t = Duration::from_secs(1);
    for argv in [vec![], vec![String::new()]] {
        let got = sample_with(&kit, &MetricSource::Command(argv), t).await;
        assert_eq!(got, Err(SampleFailure::EmptyCommand));
    }
}

#[tokio::test]
async fn cpu_without_instances_is_a_failure() {
    let kit = kit();
    let got = sample_with(
        &kit,
        &MetricSource::Cpu { utilization: 75.0 },
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(got, Err(SampleFailure::NoInstances));
}

#[test]
fn passwords_are_redacted_from_urls() {
    let cases = [
        (
            "redis://:secret@127.0.0.1:6380/2",
            "redis://:***@127.0.0.1:6380/2",
        ),
        ("redis://user:secret@h/0", "redis://user:***@h/0"),
        ("redis://secret@h", "redis://***@h"),
        ("http://h/p?q=a@b", "http://h/p?q=a@b"),
        ("http://u:p@w@h:1/x", "http://u:***@h:1/x"),
        ("redis://127.0.0.1", "redis://127.0.0.1"),
        ("no scheme", "no scheme"),
        ("é://ü:ö@ß", "é://ü:***@ß"),
    ];
    for (url, want) in cases {
        assert_eq!(redact_url(url), want, "{url}");
    }
}

#[tokio::test]
async fn a_sample_can_run_in_a_spawned_task() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let kit = kit();
    let spec = base();
    let cpu = CpuTracker::new();
    let ctx = SampleContext {
        base: &spec,
        sessions: &[],
        cpu: &cpu,
    };
    let source = MetricSource::Command(vec!["true".to_string()]);
    // Built, checked for Send, and dropped unpolled: nothing is spawned.
    drop(assert_send(sample(&kit, &source, &ctx, Duration::ZERO)));
}
