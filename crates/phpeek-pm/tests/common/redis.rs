//! A real Redis for the tests: Debian's `redis-server` on a free loopback
//! port, ended (by its pid) when dropped, and a minimal RESP client.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{poll, DEADLINE};

pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Redis {
    /// None (after reporting skipped, or panicking under CI) when
    /// `redis-server` is not installed.
    pub fn start(test: &str) -> Option<Redis> {
        if !super::require(test, &["redis-server"]) {
            return None;
        }
        let mut r = Redis {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        r.restart();
        Some(r)
    }

    /// Starts the server (again) on the same port.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let port = self.port;
        poll(DEADLINE, || {
            command(port, &["PING"])
                .ok()
                .filter(|r| r == "PONG")
                .map(|_| ())
        })
        .expect("redis-server answers PING");
    }

    /// Ends the server (SIGKILL to its pid) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn rpush(&self, key: &str, values: &[String]) {
        for chunk in values.chunks(500) {
            let mut args = vec!["RPUSH", key];
            args.extend(chunk.iter().map(String::as_str));
            command(self.port, &args).expect("RPUSH");
        }
    }

    pub fn llen(&self, key: &str) -> i64 {
        command(self.port, &["LLEN", key])
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(-1)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one command and reads one simple reply (status, error, integer
/// or bulk string) as text.
pub fn command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    match line.chars().next() {
        Some('+') | Some(':') => Ok(line[1..].to_string()),
        Some('-') => Err(std::io::Error::other(line[1..].to_string())),
        Some('$') => {
            let mut v = String::new();
            r.read_line(&mut v)?;
            Ok(v.trim_end().to_string())
        }
        _ => Ok(line),
    }
}
