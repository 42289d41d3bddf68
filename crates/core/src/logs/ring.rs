//! The ring of recent lines per instance (`GET …/logs`): each read's lines
//! kept as one string with line offsets, whole chunks evicted, exactly the
//! last [`RING_LINES`] lines.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{Stream, RING_LINES};

/// A remembered line.
#[derive(Debug, Clone)]
pub struct RingLine {
    pub ts: SystemTime,
    pub stream: Stream,
    pub msg: String,
}

/// The lines completed by one read, in one allocation: their text one
/// after another and where each ends.
#[derive(Debug)]
pub(crate) struct RingChunk {
    ts: SystemTime,
    stream: Stream,
    pub(super) text: String,
    ends: Vec<u32>,
}

impl RingChunk {
    pub(super) fn new(ts: SystemTime, stream: Stream) -> RingChunk {
        RingChunk {
            ts,
            stream,
            text: String::new(),
            ends: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, msg: &str) {
        self.text.push_str(msg);
        // A chunk is at most a read plus one pending line, far below 4 GiB.
        self.ends
            .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub(super) fn line(&self, i: usize) -> &str {
        let start = match i.checked_sub(1) {
            Some(prev) => self.ends.get(prev).copied().unwrap_or(0) as usize,
            None => 0,
        };
        let end = self.ends.get(i).copied().unwrap_or(0) as usize;
        self.text.get(start..end).unwrap_or_default()
    }
}

#[derive(Debug, Default)]
pub(super) struct RingLines {
    pub(super) chunks: VecDeque<RingChunk>,
    /// Lines at the start of the front chunk that were already evicted.
    skip: usize,
    /// Lines held (not counting `skip`).
    count: usize,
}

/// The recent lines of one instance; survives its restarts.
#[derive(Debug, Default)]
pub struct LogRing {
    pub(super) lines: Mutex<RingLines>,
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

    pub(super) fn push_chunk(&self, chunk: RingChunk) {
        if chunk.is_empty() {
            return;
        }
        if let Some(a) = self.activity.get() {
            for i in 0..chunk.len() {
                a.observe(chunk.line(i));
            }
        }
        let mut r = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        r.count += chunk.len();
        r.chunks.push_back(chunk);
        while r.count > RING_LINES {
            let excess = r.count - RING_LINES;
            let live_front = r.chunks.front().map_or(0, |c| c.len()) - r.skip;
            if excess >= live_front {
                r.chunks.pop_front();
                r.count -= live_front;
                r.skip = 0;
            } else {
                r.skip += excess;
                r.count -= excess;
            }
        }
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<RingLine> {
        let r = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let mut want = n.min(r.count);
        let mut out = Vec::with_capacity(want);
        for (idx, c) in r.chunks.iter().enumerate().rev() {
            if want == 0 {
                break;
            }
            let first = if idx == 0 { r.skip } else { 0 };
            let live = c.len() - first;
            let take = live.min(want);
            for i in (c.len() - take..c.len()).rev() {
                out.push(RingLine {
                    ts: c.ts,
                    stream: c.stream,
                    msg: c.line(i).to_string(),
                });
            }
            want -= take;
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
