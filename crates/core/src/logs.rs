//! Child output to the manager's stdout/stderr.
//!
//! One reader task per pipe frames whole lines (a line longer than
//! [`MAX_LINE`] is cut into chunks, each marked as continued) and hands
//! formatted batches to one writer thread. The writer owns the manager's
//! stdout and stderr through std's locks, which the manager's own tracing
//! output also takes, so lines from different sources never interleave.
//!
//! Invariant: the bytes read from children and not yet written are bounded
//! by the hub's budget (`global.log_buffer`), across every instance and
//! both streams. A reader takes budget for a batch before handing it on and
//! the writer gives it back once the batch was written; a reader that
//! finds the budget spent waits before it reads again, so the pipes fill
//! and the children block. Nothing is dropped, cut or reordered.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use phpeek_config::LogFormat;
use tokio::sync::{mpsc, Semaphore};

/// Longest line passed on in one piece.
pub const MAX_LINE: usize = 64 * 1024;
/// Bytes read from a pipe at once, into a per-thread scratch buffer.
const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; READ_CHUNK]);
}

enum ReadStep {
    Data((Vec<u8>, Vec<RingLine>)),
    Again,
    Eof,
}
/// Lines remembered per instance for the API.
pub const RING_LINES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A remembered line.
#[derive(Debug, Clone)]
pub struct RingLine {
    pub ts: SystemTime,
    pub stream: Stream,
    pub msg: String,
}

/// The recent lines of one instance; survives its restarts.
#[derive(Debug, Default)]
pub struct LogRing {
    lines: Mutex<VecDeque<RingLine>>,
    /// Busy/idle read from the lines (`scale_down.idle`), when set.
    activity: std::sync::OnceLock<crate::autoscale::idle::Activity>,
}

impl LogRing {
    /// A ring that also tracks busy/idle from the lines it gets.
    pub fn with_activity(activity: crate::autoscale::idle::Activity) -> LogRing {
        let ring = LogRing::default();
        let _ = ring.activity.set(activity);
        ring
    }

    /// Busy by the instance's own output (false without detection).
    pub fn is_busy(&self) -> bool {
        self.activity.get().is_some_and(|a| a.is_busy())
    }

    fn push_many(&self, new: Vec<RingLine>) {
        if let Some(a) = self.activity.get() {
            for l in &new {
                a.observe(&l.msg);
            }
        }
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        for l in new {
            if lines.len() == RING_LINES {
                lines.pop_front();
            }
            lines.push_back(l);
        }
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<RingLine> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let skip = lines.len().saturating_sub(n);
        lines.iter().skip(skip).cloned().collect()
    }
}

struct Batch {
    stream: Stream,
    bytes: Vec<u8>,
    /// Budget held by this batch, returned once it was written.
    held: u32,
}

/// Entry point for child output; cheap to clone.
#[derive(Clone)]
pub struct LogHub {
    tx: mpsc::UnboundedSender<Batch>,
    format: LogFormat,
    budget: Arc<Semaphore>,
    /// The whole budget in bytes (a batch never holds more).
    budget_bytes: u32,
}

/// Formats a timestamp as RFC 3339 UTC with milliseconds.
pub fn rfc3339_millis(ts: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = ts.into();
    dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl LogHub {
    /// Starts the writer thread. Returns the hub and a handle that finishes
    /// once every hub clone is dropped and all output was written.
    /// `budget` bounds the bytes waiting to be written (at least one
    /// formatted line's worth is always allowed).
    pub fn start(
        format: LogFormat,
        budget: usize,
    ) -> std::io::Result<(LogHub, std::thread::JoinHandle<()>)> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Batch>();
        let budget_bytes = u32::try_from(budget.max(1)).unwrap_or(u32::MAX);
        let sem = Arc::new(Semaphore::new(budget_bytes as usize));
        let writer_sem = Arc::clone(&sem);
        let handle = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut out = Vec::with_capacity(first.bytes.len());
                    let mut err = Vec::new();
                    let mut held = 0usize;
                    let mut add = |b: Batch, out: &mut Vec<u8>, err: &mut Vec<u8>| {
                        held += b.held as usize;
                        match b.stream {
                            Stream::Stdout => out.extend_from_slice(&b.bytes),
                            Stream::Stderr => err.extend_from_slice(&b.bytes),
                        }
                    };
                    add(first, &mut out, &mut err);
                    while out.len() + err.len() < (1 << 20) {
                        match rx.try_recv() {
                            Ok(b) => add(b, &mut out, &mut err),
                            Err(_) => break,
                        }
                    }
                    // A closed or broken output must not stop the draining.
                    if !out.is_empty() {
                        let mut o = std::io::stdout().lock();
                        let _ = o.write_all(&out);
                        let _ = o.flush();
                    }
                    if !err.is_empty() {
                        let _ = std::io::stderr().lock().write_all(&err);
                    }
                    drop((out, err));
                    writer_sem.add_permits(held);
                }
            })?;
        Ok((
            LogHub {
                tx,
                format,
                budget: sem,
                budget_bytes,
            },
            handle,
        ))
    }

    /// Hands a formatted batch to the writer once the budget allows it;
    /// false when the writer is gone.
    async fn send(&self, stream: Stream, bytes: Vec<u8>) -> bool {
        let want = u32::try_from(bytes.len())
            .unwrap_or(u32::MAX)
            .min(self.budget_bytes);
        match self.budget.acquire_many(want).await {
            Ok(permit) => permit.forget(),
            Err(_) => return false,
        }
        if self
            .tx
            .send(Batch {
                stream,
                bytes,
                held: want,
            })
            .is_err()
        {
            self.budget.add_permits(want as usize);
            return false;
        }
        true
    }

    /// Starts a reader task for one pipe. The task ends at end of file, after
    /// flushing a last line without newline.
    pub fn attach(
        &self,
        fd: OwnedFd,
        stream: Stream,
        process: Arc<str>,
        instance: Arc<str>,
        ring: Arc<LogRing>,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
        let hub = self.clone();
        Ok(tokio::spawn(async move {
            let mut framer = Framer::new(&hub, stream, &process, &instance);
            loop {
                if pipe.readable().await.is_err() {
                    break;
                }
                // Read into the worker thread's scratch buffer: an idle
                // instance then holds no read buffer at all.
                let step = SCRATCH.with(|cell| {
                    let mut scratch = cell.borrow_mut();
                    match pipe.try_read(&mut scratch[..]) {
                        Ok(0) => ReadStep::Eof,
                        Ok(n) => match scratch.get(..n) {
                            Some(chunk) => ReadStep::Data(framer.feed(chunk, SystemTime::now())),
                            None => ReadStep::Eof,
                        },
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                            ) =>
                        {
                            ReadStep::Again
                        }
                        Err(_) => ReadStep::Eof,
                    }
                });
                match step {
                    ReadStep::Eof => break,
                    ReadStep::Again => continue,
                    ReadStep::Data((bytes, lines)) => {
                        if !lines.is_empty() {
                            ring.push_many(lines);
                        }
                        if !bytes.is_empty() && !hub.send(stream, bytes).await {
                            break;
                        }
                    }
                }
            }
            let (bytes, lines) = framer.finish(SystemTime::now());
            if !lines.is_empty() {
                ring.push_many(lines);
            }
            if !bytes.is_empty() {
                let _ = hub.send(stream, bytes).await;
            }
        }))
    }
}

/// Splits a byte stream into lines and formats them.
struct Framer<'a> {
    format: LogFormat,
    stream: Stream,
    process: &'a str,
    instance: &'a str,
    prefix: Vec<u8>,
    pending: Vec<u8>,
}

impl<'a> Framer<'a> {
    fn new(hub: &LogHub, stream: Stream, process: &'a str, instance: &'a str) -> Self {
        Framer {
            format: hub.format,
            stream,
            process,
            instance,
            prefix: format!("[{instance}] ").into_bytes(),
            pending: Vec::new(),
        }
    }

    /// Takes new bytes; returns the formatted output and the ring lines for
    /// every line completed by them.
    fn feed(&mut self, data: &[u8], ts: SystemTime) -> (Vec<u8>, Vec<RingLine>) {
        let mut out = Vec::with_capacity(data.len() + 64);
        let mut ring = Vec::new();
        let mut rest = data;
        let mut ts_text = None;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(pos);
            rest = tail.get(1..).unwrap_or_default();
            if self.pending.is_empty() {
                self.emit_long(line, ts, &mut ts_text, &mut out, &mut ring);
            } else {
                let mut whole = std::mem::take(&mut self.pending);
                whole.extend_from_slice(line);
                self.emit_long(&whole, ts, &mut ts_text, &mut out, &mut ring);
            }
        }
        self.pending.extend_from_slice(rest);
        while self.pending.len() > MAX_LINE {
            let cut = utf8_cut(&self.pending, MAX_LINE);
            let head: Vec<u8> = self.pending.drain(..cut).collect();
            self.emit(&head, true, ts, &mut ts_text, &mut out, &mut ring);
        }
        (out, ring)
    }

    /// Flushes a last line that had no newline.
    fn finish(&mut self, ts: SystemTime) -> (Vec<u8>, Vec<RingLine>) {
        let mut out = Vec::new();
        let mut ring = Vec::new();
        if !self.pending.is_empty() {
            let last = std::mem::take(&mut self.pending);
            let mut ts_text = None;
            self.emit_long(&last, ts, &mut ts_text, &mut out, &mut ring);
        }
        (out, ring)
    }

    fn emit_long(
        &self,
        mut line: &[u8],
        ts: SystemTime,
        ts_text: &mut Option<String>,
        out: &mut Vec<u8>,
        ring: &mut Vec<RingLine>,
    ) {
        while line.len() > MAX_LINE {
            let cut = utf8_cut(line, MAX_LINE);
            let (head, tail) = line.split_at(cut);
            self.emit(head, true, ts, ts_text, out, ring);
            line = tail;
        }
        self.emit(line, false, ts, ts_text, out, ring);
    }

    fn emit(
        &self,
        line: &[u8],
        continued: bool,
        ts: SystemTime,
        ts_text: &mut Option<String>,
        out: &mut Vec<u8>,
        ring: &mut Vec<RingLine>,
    ) {
        // A `\r` ending a continued chunk is not before a `\n`: keep it.
        let line = if continued {
            line
        } else {
            line.strip_suffix(b"\r").unwrap_or(line)
        };
        let msg = String::from_utf8_lossy(line);
        match self.format {
            LogFormat::Text => {
                out.extend_from_slice(&self.prefix);
                out.extend_from_slice(line);
                if continued {
                    out.extend_from_slice(b" [continued]");
                }
                out.push(b'\n');
            }
            LogFormat::Json => {
                let ts = ts_text.get_or_insert_with(|| rfc3339_millis(ts));
                let level = match self.stream {
                    Stream::Stdout => "info",
                    Stream::Stderr => "warn",
                };
                let mut obj = serde_json::json!({
                    "ts": ts,
                    "level": level,
                    "process": self.process,
                    "instance": self.instance,
                    "stream": self.stream.as_str(),
                    "msg": msg,
                });
                if continued {
                    obj["continued"] = serde_json::Value::Bool(true);
                }
                if serde_json::to_writer(&mut *out, &obj).is_ok() {
                    out.push(b'\n');
                }
            }
        }
        ring.push(RingLine {
            ts,
            stream: self.stream,
            msg: msg.into_owned(),
        });
    }
}

/// Feeds `chunks` to a line framer of instance `w-1` (JSON format when
/// `json`), then finishes it; returns every output byte. For the fuzz
/// targets only.
#[doc(hidden)]
pub fn frame_for_fuzzing(chunks: &[&[u8]], json: bool) -> Vec<u8> {
    let (tx, _rx) = mpsc::unbounded_channel();
    let hub = LogHub {
        tx,
        format: if json {
            LogFormat::Json
        } else {
            LogFormat::Text
        },
        budget: Arc::new(Semaphore::new(1)),
        budget_bytes: 1,
    };
    let mut framer = Framer::new(&hub, Stream::Stdout, "w", "w-1");
    let ts = SystemTime::UNIX_EPOCH;
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(framer.feed(chunk, ts).0);
    }
    out.extend(framer.finish(ts).0);
    out
}

/// The largest cut point `<= max` that does not split a UTF-8 sequence
/// (falls back to `max` for bytes that are not UTF-8 at all).
fn utf8_cut(bytes: &[u8], max: usize) -> usize {
    let max = max.min(bytes.len());
    let mut cut = max;
    while cut > 0 && cut + 4 > max {
        match bytes.get(cut) {
            Some(b) if (b & 0xC0) == 0x80 => cut -= 1,
            _ => return cut,
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer_text() -> (LogHub, String, String) {
        let (tx, _rx) = mpsc::unbounded_channel();
        (
            LogHub {
                tx,
                format: LogFormat::Text,
                budget: Arc::new(Semaphore::new(1)),
                budget_bytes: 1,
            },
            "w".to_string(),
            "w-1".to_string(),
        )
    }

    #[test]
    fn splits_lines_across_reads() {
        let (hub, p, i) = framer_text();
        let mut f = Framer::new(&hub, Stream::Stdout, &p, &i);
        let now = SystemTime::now();
        let (a, _) = f.feed(b"hel", now);
        assert!(a.is_empty());
        let (b, ring) = f.feed(b"lo\nwor", now);
        assert_eq!(b, b"[w-1] hello\n");
        assert_eq!(ring.len(), 1);
        let (c, _) = f.finish(now);
        assert_eq!(c, b"[w-1] wor\n");
    }

    #[test]
    fn long_lines_are_chunked_and_marked() {
        let (hub, p, i) = framer_text();
        let mut f = Framer::new(&hub, Stream::Stdout, &p, &i);
        let now = SystemTime::now();
        let mut data = vec![b'x'; MAX_LINE + 10];
        data.push(b'\n');
        let (out, ring) = f.feed(&data, now);
        assert_eq!(ring.len(), 2);
        let text = String::from_utf8_lossy(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" [continued]"));
        assert_eq!(lines[1], format!("[w-1] {}", "x".repeat(10)));
    }

    /// Fuzz finding (log_framer): a `\r` that ended a continued chunk was
    /// dropped although no `\n` followed it.
    #[test]
    fn carriage_return_ending_a_continued_chunk_is_kept() {
        let mut data = b"2%\x01\n".to_vec();
        data.extend(std::iter::repeat_n(0u8, 28417));
        data.extend(std::iter::repeat_n(b'\r', 38925));
        let out = frame_for_fuzzing(&[&data], false);
        let mut first = b"[w-1] 2%\x01\n[w-1] ".to_vec();
        first.extend(std::iter::repeat_n(0u8, 28417));
        first.extend(std::iter::repeat_n(b'\r', MAX_LINE - 28417));
        first.extend_from_slice(b" [continued]\n");
        assert!(out.starts_with(&first));
        // The rest: the remaining `\r`s, the last one (ending the stream)
        // trimmed like a line ending.
        let mut rest = b"[w-1] ".to_vec();
        rest.extend(std::iter::repeat_n(b'\r', 38925 - (MAX_LINE - 28417) - 1));
        rest.push(b'\n');
        assert_eq!(&out[first.len()..], &rest[..]);
    }

    #[test]
    fn cut_respects_utf8() {
        let s = "é".repeat(10);
        let cut = utf8_cut(s.as_bytes(), 5);
        assert!(s.is_char_boundary(cut));
        assert_eq!(cut, 4);
    }
}
