//! The `command` source: the first number a command prints on stdout.
//!
//! The command is spawned by the manager's spawner as the process's user,
//! in its directory, with its environment; its exit arrives through the
//! registry's waiter (registered under the spawn gate), never through a
//! `waitpid` of ours. At the timeout its whole process group is killed;
//! after it exits, whatever it left running in its group is killed too, as
//! for a hook. Up to [`MAX_OUTPUT`] bytes of stdout are kept (the rest is
//! read and dropped, so the command never blocks on a full pipe), and the
//! first line of stderr goes into the failure's message.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use super::{SampleFailure, SourceKit, MAX_OUTPUT};
use crate::registry::{ChildRegistry, ExitStatus};
use crate::spawn::{SpawnJob, SpawnSpec, Spawned};

/// The part of stderr kept for the failure's message.
const MAX_STDERR: usize = 4 * 1024;
/// How long the reaper gets to report a command killed at its timeout.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Runs `argv` as `base` would run, within `timeout`.
pub(super) async fn run_command(
    kit: &SourceKit,
    base: &SpawnSpec,
    argv: &[String],
    timeout: Duration,
) -> Result<f64, SampleFailure> {
    if argv.first().is_none_or(|program| program.is_empty()) {
        return Err(SampleFailure::EmptyCommand);
    }
    let command = phpeek_config::shorten(&argv.join(" "), 120);
    let mut spec = base.clone();
    spec.argv = argv.to_vec();
    spec.capture_stdout = true;
    spec.capture_stderr = true;
    let (mut child, running) = start(kit, spec).await.map_err(|e| match e {
        StartError::Spawner => SampleFailure::SpawnerGone,
        StartError::Spawn(reason) => SampleFailure::CommandStart {
            command: command.clone(),
            reason,
        },
    })?;
    let mut running = running;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let registry = Arc::clone(&kit.registry);
    let pid = child.pid;
    let outcome = {
        let reading = async {
            tokio::join!(
                read_capped(stdout, MAX_OUTPUT),
                read_capped(stderr, MAX_STDERR)
            )
        };
        let waiting = async {
            let status = running.wait().await;
            // Its leftovers close their copies of the pipes with them.
            let _ = registry.signal_leftovers(pid, Signal::SIGKILL);
            status
        };
        tokio::time::timeout(timeout, async { tokio::join!(reading, waiting) }).await
    };
    let ((stdout, stderr), status) = match outcome {
        Ok(done) => done,
        Err(_) => {
            let _ = registry.signal_group(pid, Signal::SIGKILL);
            let _ = tokio::time::timeout(KILL_GRACE, running.wait()).await;
            let _ = registry.signal_leftovers(pid, Signal::SIGKILL);
            return Err(SampleFailure::CommandTimeout {
                command,
                after: timeout,
            });
        }
    };
    let stdout = stdout.map_err(|e| SampleFailure::CommandStart {
        command: command.clone(),
        reason: format!("cannot read its stdout: {e}"),
    })?;
    match status {
        Some(s) if s.success() => {}
        other => {
            let stderr = stderr.unwrap_or_default();
            return Err(SampleFailure::CommandFailed {
                command,
                status: other.map_or_else(|| "vanished".to_string(), ExitStatus::describe),
                stderr: first_line(&stderr),
            });
        }
    }
    let text = String::from_utf8_lossy(&stdout);
    first_number(&text).ok_or_else(|| SampleFailure::NoNumber {
        command,
        output: phpeek_config::shorten(text.trim(), 80),
    })
}

enum StartError {
    Spawner,
    Spawn(String),
}

/// Submits the spawn; the exit waiter is registered under the spawn gate.
async fn start(kit: &SourceKit, spec: SpawnSpec) -> Result<(Spawned, Running), StartError> {
    let (started_tx, started_rx) = oneshot::channel();
    let registry = Arc::clone(&kit.registry);
    let job = SpawnJob {
        spec,
        done: Box::new(move |result| {
            let sent = result.map(|child| {
                let exit = registry.watch_exit(child.pid);
                (child, exit)
            });
            let _ = started_tx.send(sent);
        }),
    };
    kit.spawner.submit(job).map_err(|_| StartError::Spawner)?;
    match started_rx.await {
        Ok(Ok((child, exit))) => {
            let running = Running {
                registry: Arc::clone(&kit.registry),
                pid: child.pid,
                exit: Some(exit),
            };
            Ok((child, running))
        }
        Ok(Err(e)) => Err(StartError::Spawn(e.to_string())),
        Err(_) => Err(StartError::Spawner),
    }
}

/// A started command until its exit was seen; dropped before that (the
/// sample was abandoned), it kills the command's group.
struct Running {
    registry: Arc<ChildRegistry>,
    pid: i32,
    exit: Option<oneshot::Receiver<ExitStatus>>,
}

impl Running {
    /// The exit status (`None` if the registry dropped the waiter).
    async fn wait(&mut self) -> Option<ExitStatus> {
        let rx = self.exit.as_mut()?;
        let status = rx.await.ok();
        self.exit = None;
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut rx) = self.exit.take() {
            if matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
                let _ = self.registry.signal_group(self.pid, Signal::SIGKILL);
            }
        }
    }
}

/// Reads a pipe to its end, keeping the first `cap` bytes.
async fn read_capped(fd: Option<OwnedFd>, cap: usize) -> std::io::Result<Vec<u8>> {
    let Some(fd) = fd else {
        return Ok(Vec::new());
    };
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) => return Ok(kept),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    phpeek_config::shorten(&strip_ansi(line), 200)
}

/// The first number in `text`: an optional sign, digits, an optional
/// fraction and exponent (`42`, `-3`, `7.25`, `1.5e3`), that does not start
/// inside a word (`v2`, `queue2` and `1.2` of `v1.2` are skipped; in
/// `queue-5` it is `5`). Terminal colour codes are ignored. `1,234` reads
/// as 1 and `.5` is not a number: write `1234` and `0.5`.
pub fn first_number(text: &str) -> Option<f64> {
    let clean = strip_ansi(text);
    let b = clean.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let signed = i > 0 && matches!(b[i - 1], b'-' | b'+') && starts_word(b, i - 1);
        if !signed && !starts_word(b, i) {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            continue;
        }
        let start = if signed { i - 1 } else { i };
        let end = number_end(b, i);
        if let Some(v) = clean.get(start..end).and_then(|s| s.parse::<f64>().ok()) {
            if v.is_finite() {
                return Some(v);
            }
        }
        i = end.max(i + 1);
    }
    None
}

/// Whether position `at` is not inside a word or a dotted version.
fn starts_word(b: &[u8], at: usize) -> bool {
    match at.checked_sub(1).and_then(|p| b.get(p)) {
        None => true,
        Some(&prev) => !(prev.is_ascii_alphanumeric() || prev == b'_' || prev == b'.'),
    }
}

/// The end of `digits[.digits][(e|E)[sign]digits]` starting at `at`.
fn number_end(b: &[u8], at: usize) -> usize {
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut end = digits(at);
    if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end = digits(end + 1);
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut exp = end + 1;
        if matches!(b.get(exp), Some(b'-' | b'+')) {
            exp += 1;
        }
        if b.get(exp).is_some_and(u8::is_ascii_digit) {
            end = digits(exp);
        }
    }
    end
}

/// `text` without ANSI escape sequences (colours, cursor moves, titles).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters, then one final byte in @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ESC \.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_number() {
        let cases: &[(&str, Option<f64>)] = &[
            ("42", Some(42.0)),
            ("42\n", Some(42.0)),
            ("  -7 jobs", Some(-7.0)),
            ("+3", Some(3.0)),
            ("pending: 12.5 (of 100)", Some(12.5)),
            ("size=1.5e3", Some(1500.0)),
            ("2e-2", Some(0.02)),
            ("3 errors", Some(3.0)),
            ("3e", Some(3.0)),
            ("1.", Some(1.0)),
            ("1,234", Some(1.0)),
            ("queue-5", Some(5.0)),
            ("x=-5", Some(-5.0)),
            ("v2 size 10", Some(10.0)),
            ("php8.3 says 4", Some(4.0)),
            ("version 1.2.3\n9", Some(1.2)),
            ("abc_1 x", None),
            ("\u{1b}[32m17\u{1b}[0m", Some(17.0)),
            ("\u{1b}]0;title 99\u{7}5", Some(5.0)),
            ("ünï 8", Some(8.0)),
            ("", None),
            ("no numbers here", None),
            ("- 4", Some(4.0)),
            ("--5", Some(-5.0)),
            (".5", None),
            ("1e999", None),
        ];
        for (text, want) in cases {
            assert_eq!(first_number(text), *want, "{text:?}");
        }
    }

    #[test]
    fn huge_and_odd_input_does_not_panic() {
        let long = "9".repeat(300);
        assert!(first_number(&long).is_some_and(f64::is_finite));
        assert_eq!(first_number(&"9".repeat(400).replacen('9', "x", 1)), None);
        for text in ["\u{1b}", "\u{1b}[", "\u{1b}]", "-", "+", "e5", "\u{0}1"] {
            let _ = first_number(text);
        }
        assert_eq!(first_number("\u{0}1"), Some(1.0));
    }

    #[test]
    fn keeps_the_first_stderr_line() {
        assert_eq!(
            first_line(b"\n  \nboom: no such queue\nmore"),
            "boom: no such queue"
        );
        assert_eq!(first_line(b""), "");
        assert_eq!(first_line(&[0xff, b'x']), "\u{fffd}x");
    }
}
