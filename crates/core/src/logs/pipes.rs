//! Every child pipe, read by one task through an epoll set of its own
//! (issue 13).
//!
//! The runtime's epoll holds one descriptor for all of them: this set's.
//! A pipe used to be a task of its own with its own registration, so the
//! end of each pipe cost a task wake-up, an end-of-file `read`, an
//! `epoll_ctl` removal and the task's teardown; at a shutdown of 100
//! instances that was 200 of each, on the two cores the dying children
//! also need. Here one wake-up takes every pipe that became ready, and a
//! pipe whose writers are gone with nothing left in it (`EPOLLHUP` without
//! `EPOLLIN`, as the kernel reports it at the time of the wait) is closed
//! at once: no read, and no `epoll_ctl`, since closing the last descriptor
//! of a pipe takes it out of the set.
//!
//! Each pipe is registered one-shot: after an event it stays out of the set
//! until it is armed again, which happens when a read finds it empty. A
//! read that filled a large part of the buffer is followed by another at
//! once (a fast writer has more), up to [`BIG_READS`] in a row before the
//! pipe is armed again behind the others; after a small one, the writer is
//! line by line and
//! the pipe is read again after [`COALESCE`] instead, without a wake-up per
//! write in between.
//!
//! Invariant: a pipe is in exactly one of three places: armed in the set,
//! in the pause queue, or being read by the task. Bytes of one pipe are
//! framed and handed on in the order they were read.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use super::framer::Framer;
use super::{LogHub, LogRing, Stream, COALESCE, COALESCE_BELOW, READ_CHUNK};

/// A pipe handed to the set.
pub(super) struct Attach {
    pub(super) fd: OwnedFd,
    pub(super) framer: Framer,
    pub(super) stream: Stream,
    pub(super) ring: Arc<LogRing>,
    /// Dropped once the pipe's last line was handed to the writer.
    pub(super) done: oneshot::Sender<()>,
    pub(super) open: Counted,
}

/// Pipes handed to the set and not yet at their end.
#[derive(Default)]
pub(super) struct Open {
    count: AtomicUsize,
    none: Notify,
}

/// One open pipe in [`Open`]'s count, until dropped (whichever way the
/// pipe goes: read to its end, refused by the set, or its reader gone).
pub(super) struct Counted(Arc<Open>);

impl Drop for Counted {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.none.notify_waiters();
        }
    }
}

impl Open {
    pub(super) fn add(self: &Arc<Self>) -> Counted {
        self.count.fetch_add(1, Ordering::SeqCst);
        Counted(Arc::clone(self))
    }

    /// Returns once no pipe is open.
    pub(super) async fn none_left(&self) {
        loop {
            let told = self.none.notified();
            tokio::pin!(told);
            told.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            told.await;
        }
    }
}

struct Set(Epoll);

impl AsRawFd for Set {
    fn as_raw_fd(&self) -> RawFd {
        self.0 .0.as_raw_fd()
    }
}

/// Large reads of one pipe in a row before the others get their turn.
const BIG_READS: usize = 4;

/// Events taken per `epoll_wait`.
const EVENTS: usize = 64;

fn armed(token: u64) -> EpollEvent {
    EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT, token)
}

/// Starts the set's task on the current runtime, reading the pipes that
/// come through `rx`.
pub(super) fn start(hub: LogHub, rx: mpsc::UnboundedReceiver<Attach>) -> std::io::Result<()> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Err(std::io::Error::other("log pipes need the async runtime"));
    };
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let set = {
        let _in = runtime.enter();
        // SAFETY: `Set` owns the epoll descriptor and never gives it up
        // or replaces it, so it stays open and the same for the life of
        // the `AsyncFd`.
        unsafe { AsyncFd::register_with_interest(Set(epoll), tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?
    };
    let reader = Reader {
        hub,
        pipes: HashMap::new(),
        paused: VecDeque::new(),
        buf: vec![0u8; READ_CHUNK],
    };
    runtime.spawn(reader.run(set, rx));
    Ok(())
}

struct Pipe {
    fd: OwnedFd,
    framer: Framer,
    stream: Stream,
    ring: Arc<LogRing>,
    _done: oneshot::Sender<()>,
    _open: Counted,
}

struct Reader {
    hub: LogHub,
    pipes: HashMap<u64, Pipe>,
    /// Pipes out of the set after a small read, with when to read them
    /// again (in order: every entry is the time of its read plus the same
    /// pause).
    paused: VecDeque<(Instant, u64)>,
    buf: Vec<u8>,
}

impl Reader {
    async fn run(mut self, set: AsyncFd<Set>, mut attach: mpsc::UnboundedReceiver<Attach>) {
        let mut next: u64 = 0;
        let mut events = [EpollEvent::empty(); EVENTS];
        let pause = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(pause);
        let mut attaching = true;
        loop {
            if !attaching && self.pipes.is_empty() {
                return;
            }
            if let Some(&(at, _)) = self.paused.front() {
                if pause.deadline() != at {
                    pause.as_mut().reset(at);
                }
            }
            tokio::select! {
                biased;
                a = attach.recv(), if attaching => match a {
                    Some(a) => {
                        let token = next;
                        next += 1;
                        self.add(&set, token, a);
                    }
                    None => attaching = false,
                },
                () = &mut pause, if !self.paused.is_empty() => {
                    let now = Instant::now();
                    while let Some(&(at, token)) = self.paused.front() {
                        if at > now {
                            break;
                        }
                        self.paused.pop_front();
                        self.read(&set, token).await;
                    }
                }
                ready = set.readable() => {
                    let Ok(mut guard) = ready else {
                        tracing::error!("the log pipes' epoll set failed; child output is no longer read");
                        return;
                    };
                    match set.get_ref().0.wait(&mut events, EpollTimeout::ZERO) {
                        Ok(0) => guard.clear_ready(),
                        Ok(n) => {
                            drop(guard);
                            for ev in events.iter().take(n) {
                                self.on_event(&set, ev.data(), ev.events()).await;
                            }
                        }
                        Err(Errno::EINTR) => {}
                        Err(e) => {
                            tracing::error!("the log pipes' epoll set failed ({e}); child output is no longer read");
                            return;
                        }
                    }
                }
            }
        }
    }

    fn add(&mut self, set: &AsyncFd<Set>, token: u64, a: Attach) {
        if let Err(e) = set.get_ref().0.add(a.fd.as_fd(), armed(token)) {
            tracing::warn!("cannot read the {} of a child: {e}", a.stream.as_str());
            return;
        }
        self.pipes.insert(
            token,
            Pipe {
                fd: a.fd,
                framer: a.framer,
                stream: a.stream,
                ring: a.ring,
                _done: a.done,
                _open: a.open,
            },
        );
    }

    async fn on_event(&mut self, set: &AsyncFd<Set>, token: u64, flags: EpollFlags) {
        if !flags.contains(EpollFlags::EPOLLIN) && flags.contains(EpollFlags::EPOLLHUP) {
            // Empty, and nobody can write to it any more.
            self.close(token).await;
        } else {
            self.read(set, token).await;
        }
    }

    /// One read of a pipe that is out of the set; puts it back in the set,
    /// in the pause queue, or closes it.
    async fn read(&mut self, set: &AsyncFd<Set>, token: u64) {
        for _ in 0..BIG_READS {
            let Some(pipe) = self.pipes.get_mut(&token) else {
                return;
            };
            match nix::unistd::read(pipe.fd.as_fd(), &mut self.buf) {
                Ok(0) => return self.close(token).await,
                Ok(n) => {
                    let chunk = self.buf.get(..n).unwrap_or_default();
                    let (bytes, lines) = pipe.framer.feed(chunk, SystemTime::now());
                    pipe.ring.push_chunk(lines);
                    if !bytes.is_empty() && !self.hub.send(pipe.stream, bytes).await {
                        // The writer is gone: nothing more can be written.
                        return self.close(token).await;
                    }
                    if n < COALESCE_BELOW {
                        self.paused.push_back((Instant::now() + COALESCE, token));
                        return;
                    }
                    // A large read: the writer is fast, read again at once.
                }
                Err(Errno::EAGAIN | Errno::EINTR) => break,
                Err(_) => return self.close(token).await,
            }
        }
        self.arm(set, token).await;
    }

    async fn arm(&mut self, set: &AsyncFd<Set>, token: u64) {
        let Some(pipe) = self.pipes.get(&token) else {
            return;
        };
        if set
            .get_ref()
            .0
            .modify(pipe.fd.as_fd(), &mut armed(token))
            .is_err()
        {
            self.close(token).await;
        }
    }

    /// Flushes a last line without newline, then closes the pipe (which
    /// takes it out of the set) and tells whoever waits for it.
    async fn close(&mut self, token: u64) {
        let Some(mut pipe) = self.pipes.remove(&token) else {
            return;
        };
        let (bytes, lines) = pipe.framer.finish(SystemTime::now());
        pipe.ring.push_chunk(lines);
        if !bytes.is_empty() {
            let _ = self.hub.send(pipe.stream, bytes).await;
        }
        // Closes the pipe, tells its waiter, and takes it off the count.
        drop(pipe);
        if self.pipes.capacity() > 64 && self.pipes.capacity() > 4 * self.pipes.len() {
            // After a scale-down from many instances.
            self.pipes.shrink_to_fit();
            self.paused.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests;
