//! The instance listing (`GET /api/v1/processes`), rendered to JSON once
//! per published snapshot instead of once per request.
//!
//! Each instance's object is kept as the bytes before and after its
//! `uptime` value, the one field that changes with the clock and not with
//! the snapshot; a request writes the pieces with the uptime of its own
//! `now` in between. The body is byte for byte what serializing
//! `Snapshot::instance_infos(now)` gives (a test holds it to that). While
//! a scale loop republishes every few milliseconds, most requests still
//! find the listing rendered; JSON rendering of the instances was what the
//! API workers spent their time on (issue 13: the API under a scale loop).

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;

use phpeek_core::snapshot::InstanceSnap;
use phpeek_core::Snapshot;
use phpeek_wire::InstanceInfo;

/// Written in place of the uptime while rendering, then cut out. No other
/// field can hold it (pid, number and restarts are narrower, started_at
/// is signed), and a string value cannot hold the unescaped quotes of
/// `"uptime":` before it.
const SENTINEL: u64 = u64::MAX;

/// The field as the sentinel renders it, and its key's length.
const MARKER: &[u8] = b"\"uptime\":18446744073709551615";
const KEY_LEN: usize = "\"uptime\":".len();

/// One instance's object: `head` ends with `"uptime":`, `tail` starts
/// right after the number.
#[derive(Debug)]
struct Piece {
    head: Vec<u8>,
    tail: Vec<u8>,
    since: Option<SystemTime>,
}

impl Piece {
    /// `info`'s object, split at its uptime. `None` if the marker is not
    /// found (it always is; the caller then renders without the cache).
    fn new(mut info: InstanceInfo, since: Option<SystemTime>) -> Option<Piece> {
        info.uptime = SENTINEL;
        let bytes = serde_json::to_vec(&info).ok()?;
        let at = memchr::memmem::find(&bytes, MARKER)?;
        Some(Piece {
            head: bytes[..at + KEY_LEN].to_vec(),
            tail: bytes[at + MARKER.len()..].to_vec(),
            since,
        })
    }
}

#[derive(Debug)]
struct Rendered {
    /// Weak, so that the cache neither keeps an old snapshot's instances
    /// alive nor sees a new snapshot at a freed one's address.
    snap: Weak<Snapshot>,
    pieces: Vec<Piece>,
    bytes: usize,
    /// The last body spliced, and the span of clock time it holds for.
    last: Mutex<Option<Spliced>>,
}

/// A body and the times `[from, until)` in which every uptime in it stays
/// what it is: requests in that span share its bytes (while a scale loop
/// republishes every few milliseconds, and at rest, building each body
/// again was a copy of the whole listing per request).
#[derive(Debug)]
struct Spliced {
    from: SystemTime,
    until: Option<SystemTime>,
    body: Bytes,
}

impl Spliced {
    fn holds_at(&self, now: SystemTime) -> bool {
        now >= self.from && self.until.is_none_or(|u| now < u)
    }
}

impl Rendered {
    fn of(snap: &Arc<Snapshot>) -> Option<Rendered> {
        let mut pieces = Vec::new();
        for p in &snap.processes {
            for i in &p.instances {
                pieces.push(Piece::new(
                    i.to_info(&p.name, SystemTime::UNIX_EPOCH),
                    i.running_since(),
                )?);
            }
        }
        let bytes = pieces.iter().map(|p| p.head.len() + p.tail.len()).sum();
        Some(Rendered {
            snap: Arc::downgrade(snap),
            pieces,
            bytes,
            last: Mutex::new(None),
        })
    }

    /// The body at `now`: the last one spliced while it holds, else spliced
    /// again.
    fn body(&self, now: SystemTime) -> Bytes {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = last.as_ref().filter(|l| l.holds_at(now)) {
            return l.body.clone();
        }
        let (body, until) = self.splice(now);
        let body = Bytes::from(body);
        *last = Some(Spliced {
            from: now,
            until,
            body: body.clone(),
        });
        body
    }

    /// The pieces with each uptime at `now`, and the first time after
    /// `now` at which one of those uptimes changes (`None`: none ever
    /// does). An uptime is whole seconds since a start `since`, so it
    /// holds until `since + uptime + 1 s`; a start in the future counts
    /// as 0 until one second after it.
    fn splice(&self, now: SystemTime) -> (Vec<u8>, Option<SystemTime>) {
        // 20 digits for the largest u64 and a comma, per instance.
        let mut out = Vec::with_capacity(self.bytes + self.pieces.len() * 21 + 2);
        out.push(b'[');
        let mut until: Option<SystemTime> = None;
        let mut digits = itoa::Buffer::new();
        for (k, p) in self.pieces.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            let uptime = InstanceSnap::uptime_at(p.since, now);
            if let Some(since) = p.since {
                let next = since.checked_add(Duration::from_secs(uptime.saturating_add(1)));
                until = match (until, next) {
                    (Some(u), Some(n)) => Some(u.min(n)),
                    (u, n) => u.or(n),
                };
            }
            out.extend_from_slice(&p.head);
            out.extend_from_slice(digits.format(uptime).as_bytes());
            out.extend_from_slice(&p.tail);
        }
        out.push(b']');
        (out, until)
    }
}

/// The last rendered listing, shared by the API's handlers.
#[derive(Debug, Default)]
pub struct ListingCache {
    slot: Mutex<Option<Arc<Rendered>>>,
}

impl ListingCache {
    /// The JSON body of every instance of `snap` at `now`, rendered again
    /// only when `snap` is not the snapshot rendered last.
    pub fn body(&self, snap: &Arc<Snapshot>, now: SystemTime) -> Bytes {
        let cached = {
            let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
            slot.as_ref()
                .filter(|r| std::ptr::eq(r.snap.as_ptr(), Arc::as_ptr(snap)))
                .cloned()
        };
        let rendered = match cached {
            Some(r) => r,
            None => match Rendered::of(snap) {
                Some(r) => {
                    let r = Arc::new(r);
                    *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&r));
                    r
                }
                None => return Bytes::from(plain(snap, now)),
            },
        };
        rendered.body(now)
    }
}

/// The listing serialized directly (what the cache must equal).
fn plain(snap: &Snapshot, now: SystemTime) -> Vec<u8> {
    serde_json::to_vec(&snap.instance_infos(now)).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use phpeek_wire::{Health, InstanceState};
    use std::time::Duration;

    fn info(name: &str, reason: Option<&str>, pid: Option<i32>) -> InstanceInfo {
        InstanceInfo {
            name: name.to_string(),
            process: "web".to_string(),
            number: 3,
            state: InstanceState::Running,
            pid,
            uptime: 0,
            started_at: Some(1_796_000_000),
            restarts: 4,
            last_exit_code: Some(-9),
            health: Health::Healthy,
            reason: reason.map(str::to_string),
            cpu_seconds: None,
            memory_bytes: None,
        }
    }

    /// A rendering of `pieces` that belongs to no snapshot.
    fn rendered_of(pieces: Vec<Piece>) -> Rendered {
        let bytes = pieces.iter().map(|p| p.head.len() + p.tail.len()).sum();
        Rendered {
            snap: Weak::new(),
            pieces,
            bytes,
            last: Mutex::new(None),
        }
    }

    /// Pieces spliced with `now` give what serde_json gives for the same
    /// infos with their uptime filled in, whatever the strings hold.
    #[test]
    fn spliced_pieces_equal_direct_serialization() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let tricky = [
            None,
            Some("plain"),
            Some("\"uptime\":18446744073709551615"),
            Some("18446744073709551615"),
            Some("quote \" backslash \\ newline \n tab \t ünïcode \u{1}"),
            Some(""),
        ];
        for now_secs in [0u64, 1, 59, 3_600, 1_000_000] {
            let now = start + Duration::from_secs(now_secs) + Duration::from_millis(999);
            let mut infos = Vec::new();
            let mut pieces = Vec::new();
            for (k, r) in tricky.iter().enumerate() {
                let pid = if k % 2 == 0 {
                    Some(100 + k as i32)
                } else {
                    None
                };
                let since = pid.map(|_| start);
                let i = info(&format!("web-{k}"), *r, pid);
                pieces.push(Piece::new(i.clone(), since).expect("marker found"));
                let mut want = i;
                want.uptime = InstanceSnap::uptime_at(since, now);
                infos.push(want);
            }
            let rendered = rendered_of(pieces);
            let want = serde_json::to_vec(&infos).expect("serializes");
            assert_eq!(
                String::from_utf8_lossy(&rendered.body(now)),
                String::from_utf8_lossy(&want),
                "now + {now_secs}s"
            );
        }
    }

    /// A body is shared only while every uptime in it holds: instances
    /// that started at different fractions of a second, one in the future
    /// and one not running, queried at steps that cross their ticks, with
    /// the clock set back once. Each answer equals a fresh splice.
    #[test]
    fn a_shared_body_holds_only_while_no_uptime_changes() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let starts = [
            Some(start),
            Some(start + Duration::from_millis(330)),
            Some(start + Duration::from_millis(999)),
            Some(start + Duration::from_millis(2_500)),
            None,
        ];
        let pieces: Vec<Piece> = starts
            .iter()
            .enumerate()
            .map(|(k, since)| {
                let pid = since.map(|_| 100 + k as i32);
                Piece::new(info(&format!("web-{k}"), None, pid), *since).expect("marker found")
            })
            .collect();
        let rendered = rendered_of(pieces);
        let mut nows: Vec<SystemTime> = (0..120)
            .map(|i| start + Duration::from_millis(37 * i))
            .collect();
        nows.push(start + Duration::from_millis(1_200));
        nows.extend((0..30).map(|i| start + Duration::from_millis(1_200 + 41 * i)));
        let (mut shared, mut previous): (usize, Option<Bytes>) = (0, None);
        for now in nows {
            let got = rendered.body(now);
            let want = rendered.splice(now).0;
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "at {:?}",
                now.duration_since(start)
            );
            if previous
                .as_ref()
                .is_some_and(|p| p.as_ptr() == got.as_ptr())
            {
                shared += 1;
            }
            previous = Some(got);
        }
        assert!(shared > 50, "bodies shared between steps: {shared}");
    }

    #[test]
    fn the_marker_is_the_sentinel_as_serde_json_writes_it() {
        assert_eq!(MARKER, format!("\"uptime\":{SENTINEL}").as_bytes());
    }

    #[test]
    fn an_empty_listing_is_an_empty_array() {
        let r = rendered_of(Vec::new());
        assert_eq!(&r.body(SystemTime::now())[..], b"[]");
    }

    /// The cache renders again for a new snapshot and reuses the pieces
    /// for the same one; a start in the future counts as uptime 0.
    #[test]
    fn a_new_snapshot_is_rendered_again() {
        let cache = ListingCache::default();
        let a = Arc::new(Snapshot::default());
        assert_eq!(&cache.body(&a, SystemTime::now())[..], b"[]");
        let first = cache.slot.lock().expect("lock").clone().expect("stored");
        let _ = cache.body(&a, SystemTime::now());
        let again = cache.slot.lock().expect("lock").clone().expect("stored");
        assert!(Arc::ptr_eq(&first, &again), "same snapshot, same rendering");
        let b = Arc::new(Snapshot::default());
        let _ = cache.body(&b, SystemTime::now());
        let other = cache.slot.lock().expect("lock").clone().expect("stored");
        assert!(
            !Arc::ptr_eq(&first, &other),
            "a new snapshot is rendered again"
        );
        let future = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(InstanceSnap::uptime_at(Some(future), SystemTime::now()), 0);
    }
}
