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

mod framer;
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

pub use framer::frame_for_fuzzing;
use framer::Framer;
pub(crate) use ring::RingChunk;
pub use ring::{LogRing, RingLine};

struct Batch {
    stream: Stream,
    bytes: Vec<u8>,
    /// Budget held by this batch, returned once it was written.
    held: u32,
    /// Told once this batch and everything queued before it was written
    /// (an empty batch with this set is a flush request).
    ack: Option<std::sync::mpsc::Sender<()>>,
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

/// The writer thread's flush handle. The thread itself runs until the
/// process exits (or every hub clone is gone).
pub struct LogWriter {
    tx: mpsc::UnboundedSender<Batch>,
    /// The hub's budget: every queued batch holds its bytes of it until it
    /// was written, so a whole budget means nothing is left to write.
    budget: Arc<Semaphore>,
    budget_bytes: u32,
}

impl LogWriter {
    /// Waits until everything queued so far was written, at most `limit`;
    /// true when it was. Hub clones may still exist (the manager calls
    /// this on its way out, without tearing the runtime down first).
    pub fn flush(&self, limit: std::time::Duration) -> bool {
        // Nothing queued: no round trip to the writer thread (which would
        // have to be woken, on the way out of every shutdown).
        if self.budget.available_permits() >= self.budget_bytes as usize {
            return true;
        }
        let (ack, written) = std::sync::mpsc::channel();
        let marker = Batch {
            stream: Stream::Stdout,
            bytes: Vec::new(),
            held: 0,
            ack: Some(ack),
        };
        if self.tx.send(marker).is_err() {
            // The writer is gone: nothing is left to write.
            return true;
        }
        written.recv_timeout(limit).is_ok()
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
    /// Starts the writer thread. Returns the hub and a handle that can wait
    /// until what is queued was written.
    /// `budget` bounds the bytes waiting to be written (at least one
    /// formatted line's worth is always allowed).
    pub fn start(format: LogFormat, budget: usize) -> std::io::Result<(LogHub, LogWriter)> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Batch>();
        let writer_tx = tx.clone();
        let budget_bytes = u32::try_from(budget.max(1)).unwrap_or(u32::MAX);
        let sem = Arc::new(Semaphore::new(budget_bytes as usize));
        let writer_sem = Arc::clone(&sem);
        let writer_budget = Arc::clone(&sem);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
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
                    for ack in batches.iter_mut().filter_map(|b| b.ack.take()) {
                        let _ = ack.send(());
                    }
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
                tx: writer_tx,
                budget: writer_budget,
                budget_bytes,
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
                ack: None,
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
