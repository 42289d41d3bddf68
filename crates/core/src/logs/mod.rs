//! Child output to the manager's stdout/stderr.
//!
//! One task reads every pipe, through an epoll set of its own
//! (`pipes.rs`), and frames whole lines (a line longer than [`MAX_LINE`]
//! is cut into chunks, each marked as continued); it hands formatted
//! batches to one writer thread. The writer owns the manager's stdout and
//! stderr through std's locks, which the manager's own tracing output also
//! takes, so lines from different sources never interleave.
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
//! ones, were what was left. The end of a pipe costs one `close`.

use std::io::{IoSlice, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::SystemTime;

use phpeek_config::LogFormat;
use tokio::sync::{mpsc, oneshot, Semaphore};

mod framer;
mod pipes;
mod ring;

/// Longest line passed on in one piece.
pub const MAX_LINE: usize = 64 * 1024;
/// Bytes read from a pipe at once, into the reader's one buffer.
const READ_CHUNK: usize = 64 * 1024;

/// Tasks reading the pipes, each with its own epoll set; pipes go to them
/// in turn. One per runtime worker: with one, framing 4 busy writers' lines
/// ran on one core and the log row fell from 6.2 M to 4.9 M lines/s.
const READERS: usize = 2;

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
    /// To the tasks that read the pipes ([`READERS`]).
    pipes: Arc<[mpsc::UnboundedSender<pipes::Attach>]>,
    open: Arc<pipes::Open>,
}

/// Formats a timestamp as RFC 3339 UTC with milliseconds.
pub fn rfc3339_millis(ts: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = ts.into();
    dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl LogHub {
    /// Starts the writer thread, and the pipes' reader on the current
    /// runtime. Returns the hub and a handle that can wait until what is
    /// queued was written.
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
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..READERS).map(|_| mpsc::unbounded_channel()).unzip();
        let hub = LogHub {
            tx,
            format,
            budget: sem,
            budget_bytes,
            pipes: senders.into(),
            open: Arc::default(),
        };
        for rx in receivers {
            pipes::start(hub.clone(), rx)?;
        }
        Ok((
            hub,
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

    /// Hands one pipe to the reader of every pipe (`pipes.rs`). The
    /// returned [`Drained`] resolves once the pipe's last line was handed
    /// to the writer, after a last line without newline was flushed.
    pub fn attach(
        &self,
        fd: OwnedFd,
        stream: Stream,
        process: &str,
        instance: &str,
        ring: Arc<LogRing>,
    ) -> std::io::Result<Drained> {
        nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        let (done, drained) = oneshot::channel();
        let pipe = pipes::Attach {
            fd,
            framer: Framer::new(self.format, stream, process, instance),
            stream,
            ring,
            done,
            open: self.open.add(),
        };
        // Both pipes of an instance go to the same reader, and instances
        // numbered one after another to different ones.
        let turn = instance.bytes().map(usize::from).sum::<usize>();
        let to = self.pipes.get(turn % self.pipes.len().max(1));
        if to.is_none_or(|to| to.send(pipe).is_err()) {
            return Err(std::io::Error::other("the log reader is gone"));
        }
        Ok(Drained(drained))
    }

    /// Waits until every pipe handed to this hub has reached its end and
    /// its lines were handed to the writer.
    pub async fn drained(&self) {
        self.open.none_left().await;
    }
}

/// Resolves once a pipe's output was all handed to the writer.
pub struct Drained(oneshot::Receiver<()>);

impl Drained {
    pub async fn wait(self) {
        // The sender is dropped, never used: an error is the signal.
        let _ = self.0.await;
    }
}
