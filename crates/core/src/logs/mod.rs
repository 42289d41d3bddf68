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
//!
//! Hot path (issue 13): nothing is allocated per line. A read's lines are
//! formatted into one output buffer and remembered for the ring as one
//! string with line offsets; the writer hands every batch it has to one
//! `writev` per stream instead of copying them together first. A pipe
//! whose writer writes line by line is read about once a millisecond, out
//! of epoll in between (see [`COALESCE`]): per-wake-up costs, not per-line
//! ones, were what was left.

use std::io::{IoSlice, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::SystemTime;

use phpeek_config::LogFormat;
use tokio::sync::{mpsc, Semaphore};

mod ring;

/// Longest line passed on in one piece.
pub const MAX_LINE: usize = 64 * 1024;
/// Bytes read from a pipe at once, into a per-thread scratch buffer.
const READ_CHUNK: usize = 64 * 1024;

/// After a read of fewer than [`COALESCE_BELOW`] bytes a reader waits this
/// long before it reads that pipe again (issue 13). A program that writes
/// one line per `write(2)` otherwise wakes the manager for every line or
/// two: each wake-up is an epoll return, a read, a hand-off to the writer
/// and a write to the manager's stdout, and on a small machine those
/// context switches were most of the manager's CPU (300 ms for 800 000
/// lines, 40 000 switches per second). With the pause, each read carries
/// the lines of about a millisecond, and the pipes that share the runtime's
/// timer tick are read and written out together. A first line after
/// silence is read at once (the pause follows a read, it never precedes
/// one); a pipe that fills a large read is read again at once, so a fast
/// writer is never held to a read per millisecond.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(1);
/// Reads at least this large are followed at once by the next.
const COALESCE_BELOW: usize = READ_CHUNK / 4;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; READ_CHUNK]);
}

enum ReadStep {
    /// The formatted output, the ring's lines, and how many bytes were read.
    Data((Vec<u8>, RingChunk), usize),
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

pub(crate) use ring::RingChunk;
pub use ring::{LogRing, RingLine};

struct Batch {
    stream: Stream,
    bytes: Vec<u8>,
    /// Budget held by this batch, returned once it was written.
    held: u32,
}

/// Bytes the writer gathers before it writes.
const WRITE_MAX: usize = 1 << 20;
/// Batches the writer gathers before it writes (one `iovec` each).
const WRITE_BATCHES: usize = 512;

/// Writes the batches of `stream`, in order, with as few `writev` calls as
/// the output takes. Nothing is copied: each batch is one `iovec`.
fn write_stream(out: &mut impl Write, batches: &[Batch], stream: Stream) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batches
        .iter()
        .filter(|b| b.stream == stream && !b.bytes.is_empty())
        .map(|b| IoSlice::new(&b.bytes))
        .collect();
    if slices.is_empty() {
        return Ok(());
    }
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match out.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.flush()
}

/// The writer thread, finishing once every hub clone is gone and all
/// output was written.
pub struct LogWriter {
    thread: std::thread::JoinHandle<()>,
    done: std::sync::mpsc::Receiver<()>,
}

impl LogWriter {
    /// Waits until the writer has finished, at most `limit`; true when it
    /// did. Woken by the thread's end itself, not by polling (a 5 ms poll
    /// was a third of the shutdown time of 100 instances, issue 13).
    pub fn finish(self, limit: std::time::Duration) -> bool {
        match self.done.recv_timeout(limit) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = self.thread.join();
                true
            }
        }
    }
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
    pub fn start(format: LogFormat, budget: usize) -> std::io::Result<(LogHub, LogWriter)> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Batch>();
        // Dropped when the writer thread ends (or unwinds): wakes `finish`.
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let budget_bytes = u32::try_from(budget.max(1)).unwrap_or(u32::MAX);
        let sem = Arc::new(Semaphore::new(budget_bytes as usize));
        let writer_sem = Arc::clone(&sem);
        let handle = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                let _done = done_tx;
                let mut batches: Vec<Batch> = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    let mut bytes = first.bytes.len();
                    batches.push(first);
                    while bytes < WRITE_MAX && batches.len() < WRITE_BATCHES {
                        match rx.try_recv() {
                            Ok(b) => {
                                bytes += b.bytes.len();
                                batches.push(b);
                            }
                            Err(_) => break,
                        }
                    }
                    // A closed or broken output must not stop the draining.
                    let _ = write_stream(&mut std::io::stdout().lock(), &batches, Stream::Stdout);
                    let _ = write_stream(&mut std::io::stderr().lock(), &batches, Stream::Stderr);
                    let held: usize = batches.iter().map(|b| b.held as usize).sum();
                    batches.clear();
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
            LogWriter {
                thread: handle,
                done,
            },
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
            // Watched: registered with the runtime's epoll, waiting for
            // data. Busy: taken out of epoll while its writer keeps writing
            // (see COALESCE), read after each pause; back to watched once a
            // read finds it empty. Exactly one of the two is set.
            let mut watched = Some(pipe);
            let mut busy: Option<std::fs::File> = None;
            loop {
                let step = if let Some(pipe) = &watched {
                    if pipe.readable().await.is_err() {
                        break;
                    }
                    read_step(&mut framer, |buf| pipe.try_read(buf))
                } else if let Some(file) = &busy {
                    read_step(&mut framer, |buf| std::io::Read::read(&mut &*file, buf))
                } else {
                    break;
                };
                match step {
                    ReadStep::Eof => break,
                    ReadStep::Again => {
                        if let Some(file) = busy.take() {
                            // Drained: wait on epoll again. Registering
                            // reports data that came in meanwhile at once.
                            match tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(
                                OwnedFd::from(file),
                            ) {
                                Ok(pipe) => watched = Some(pipe),
                                Err(_) => break,
                            }
                        }
                    }
                    ReadStep::Data((bytes, lines), n) => {
                        ring.push_chunk(lines);
                        if !bytes.is_empty() && !hub.send(stream, bytes).await {
                            break;
                        }
                        if n < COALESCE_BELOW {
                            // A small read: the writer is line by line.
                            // Out of epoll (whose every write would wake a
                            // worker for nothing), then a pause.
                            if let Some(pipe) = watched.take() {
                                match pipe.into_nonblocking_fd() {
                                    Ok(fd) => busy = Some(std::fs::File::from(fd)),
                                    Err(_) => break,
                                }
                            }
                            tokio::time::sleep(COALESCE).await;
                        }
                    }
                }
            }
            let (bytes, lines) = framer.finish(SystemTime::now());
            ring.push_chunk(lines);
            if !bytes.is_empty() {
                let _ = hub.send(stream, bytes).await;
            }
        }))
    }
}

/// One read into the worker thread's scratch buffer (an idle instance then
/// holds no read buffer at all), framed at once.
fn read_step(
    framer: &mut Framer,
    read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
) -> ReadStep {
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        match read(&mut scratch[..]) {
            Ok(0) => ReadStep::Eof,
            Ok(n) => match scratch.get(..n) {
                Some(chunk) => ReadStep::Data(framer.feed(chunk, SystemTime::now()), n),
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
    })
}

/// Splits a byte stream into lines and formats them.
struct Framer {
    format: LogFormat,
    stream: Stream,
    /// Text: `[instance] `. JSON: the object up to the message, without and
    /// with `"continued":true` (serde_json's key order: sorted).
    prefix: Vec<u8>,
    prefix_continued: Vec<u8>,
    /// JSON: the object from after the message up to the timestamp's value.
    suffix: Vec<u8>,
    pending: Vec<u8>,
}

/// `s` as a JSON string, quoted and escaped the way serde_json does it.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

impl Framer {
    fn new(hub: &LogHub, stream: Stream, process: &str, instance: &str) -> Self {
        let (prefix, prefix_continued, suffix) = match hub.format {
            LogFormat::Text => (
                format!("[{instance}] ").into_bytes(),
                Vec::new(),
                Vec::new(),
            ),
            LogFormat::Json => {
                let level = match stream {
                    Stream::Stdout => "info",
                    Stream::Stderr => "warn",
                };
                let mut head = b"\"instance\":".to_vec();
                json_str(&mut head, instance);
                head.extend_from_slice(b",\"level\":");
                json_str(&mut head, level);
                head.extend_from_slice(b",\"msg\":");
                let mut plain = b"{".to_vec();
                plain.extend_from_slice(&head);
                let mut continued = b"{\"continued\":true,".to_vec();
                continued.extend_from_slice(&head);
                let mut tail = b",\"process\":".to_vec();
                json_str(&mut tail, process);
                tail.extend_from_slice(b",\"stream\":");
                json_str(&mut tail, stream.as_str());
                tail.extend_from_slice(b",\"ts\":");
                (plain, continued, tail)
            }
        };
        Framer {
            format: hub.format,
            stream,
            prefix,
            prefix_continued,
            suffix,
            pending: Vec::new(),
        }
    }

    /// Room the output of `data` needs (so the buffer grows once at most).
    fn out_capacity(&self, data: &[u8]) -> usize {
        let lines = memchr::memchr_iter(b'\n', data).count() + 1;
        let per_line = match self.format {
            LogFormat::Text => self.prefix.len() + 1,
            LogFormat::Json => self.prefix.len() + self.suffix.len() + 32,
        };
        data.len() + self.pending.len() + lines * per_line
    }

    /// Takes new bytes; returns the formatted output and the ring lines for
    /// every line completed by them.
    fn feed(&mut self, data: &[u8], ts: SystemTime) -> (Vec<u8>, RingChunk) {
        let mut out = Vec::with_capacity(self.out_capacity(data));
        let mut ring = RingChunk::new(ts, self.stream);
        ring.text.reserve(data.len() + self.pending.len());
        let mut rest = data;
        let mut ts_text = None;
        while let Some(pos) = memchr::memchr(b'\n', rest) {
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
    fn finish(&mut self, ts: SystemTime) -> (Vec<u8>, RingChunk) {
        let mut out = Vec::new();
        let mut ring = RingChunk::new(ts, self.stream);
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
        ts_text: &mut Option<Vec<u8>>,
        out: &mut Vec<u8>,
        ring: &mut RingChunk,
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
        ts_text: &mut Option<Vec<u8>>,
        out: &mut Vec<u8>,
        ring: &mut RingChunk,
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
                // The end of the object (`"<ts>"}` and the newline) is the
                // same for every line of a read: rendered once.
                let end = ts_text.get_or_insert_with(|| {
                    let mut end = Vec::with_capacity(32);
                    json_str(&mut end, &rfc3339_millis(ts));
                    end.extend_from_slice(b"}\n");
                    end
                });
                out.extend_from_slice(if continued {
                    &self.prefix_continued
                } else {
                    &self.prefix
                });
                if msg.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
                    // Nothing to escape (the common case): no serializer.
                    out.push(b'"');
                    out.extend_from_slice(msg.as_bytes());
                    out.push(b'"');
                } else {
                    json_str(out, &msg);
                }
                out.extend_from_slice(&self.suffix);
                out.extend_from_slice(end);
            }
        }
        ring.push(&msg);
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
        assert_eq!(ring.line(0), "hello");
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

    /// The JSON written by hand is byte for byte what serde_json made of
    /// the same object before (sorted keys, same escaping).
    fn json_by_serde(instance: &str, msg: &str, continued: bool, stream: Stream) -> Vec<u8> {
        let mut obj = serde_json::json!({
            "ts": rfc3339_millis(SystemTime::UNIX_EPOCH),
            "level": match stream { Stream::Stdout => "info", Stream::Stderr => "warn" },
            "process": "w\"x",
            "instance": instance,
            "stream": stream.as_str(),
            "msg": msg,
        });
        if continued {
            obj["continued"] = serde_json::Value::Bool(true);
        }
        let mut out = serde_json::to_vec(&obj).unwrap();
        out.push(b'\n');
        out
    }

    proptest::proptest! {
        #[test]
        fn json_lines_match_serde_json(msg in "[^\n]{0,40}", err in proptest::bool::ANY) {
            let (tx, _rx) = mpsc::unbounded_channel();
            let hub = LogHub {
                tx,
                format: LogFormat::Json,
                budget: Arc::new(Semaphore::new(1)),
                budget_bytes: 1,
            };
            let stream = if err { Stream::Stderr } else { Stream::Stdout };
            let mut f = Framer::new(&hub, stream, "w\"x", "w\\1");
            let mut data = msg.clone().into_bytes();
            data.push(b'\n');
            let (out, ring) = f.feed(&data, SystemTime::UNIX_EPOCH);
            let trimmed = msg.strip_suffix('\r').unwrap_or(&msg);
            let want = json_by_serde("w\\1", trimmed, false, stream);
            proptest::prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));
            proptest::prop_assert_eq!(ring.line(0), trimmed);
        }
    }

    #[test]
    fn continued_json_chunks_match_serde_json() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let hub = LogHub {
            tx,
            format: LogFormat::Json,
            budget: Arc::new(Semaphore::new(1)),
            budget_bytes: 1,
        };
        let mut f = Framer::new(&hub, Stream::Stdout, "w\"x", "w-1");
        let mut data = vec![b'y'; MAX_LINE + 3];
        data.push(b'\n');
        let (out, _) = f.feed(&data, SystemTime::UNIX_EPOCH);
        let mut want = json_by_serde("w-1", &"y".repeat(MAX_LINE), true, Stream::Stdout);
        want.extend(json_by_serde("w-1", "yyy", false, Stream::Stdout));
        assert_eq!(out, want);
    }

    fn chunk_of(lines: std::ops::Range<usize>) -> RingChunk {
        let mut c = RingChunk::new(SystemTime::UNIX_EPOCH, Stream::Stdout);
        for i in lines {
            c.push(&i.to_string());
        }
        c
    }

    #[test]
    fn ring_keeps_the_last_lines_across_chunks() {
        let ring = LogRing::default();
        let mut next = 0;
        for size in [3, 700, 1, 0, 450, 2500, 7, 999] {
            ring.push_chunk(chunk_of(next..next + size));
            next += size;
            let held = next.min(RING_LINES);
            let all = ring.tail(usize::MAX);
            assert_eq!(all.len(), held);
            let want: Vec<String> = (next - held..next).map(|i| i.to_string()).collect();
            let got: Vec<String> = all.into_iter().map(|l| l.msg).collect();
            assert_eq!(got, want);
            let five: Vec<String> = ring.tail(5).into_iter().map(|l| l.msg).collect();
            assert_eq!(five, want[want.len().saturating_sub(5)..].to_vec());
        }
        assert!(ring.lines.lock().unwrap().chunks.len() <= 3);
    }

    #[test]
    fn cut_respects_utf8() {
        let s = "é".repeat(10);
        let cut = utf8_cut(s.as_bytes(), 5);
        assert!(s.is_char_boundary(cut));
        assert_eq!(cut, 4);
    }
}
