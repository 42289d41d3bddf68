//! The pipe set with real pipes: lines reach the ring whole and in order,
//! through every path (end without data, end after data, a last line
//! without newline, large reads, pauses), and the drain waits for pipes
//! still open.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use phpeek_config::LogFormat;

use crate::logs::{LogHub, LogRing, Stream};

fn pipe() -> (std::os::fd::OwnedFd, std::fs::File) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2 in a test");
    (r, std::fs::File::from(w))
}

fn msgs(ring: &LogRing) -> Vec<String> {
    ring.tail(crate::logs::RING_LINES)
        .into_iter()
        .map(|l| l.msg)
        .collect()
}

/// Polls `cond` every 5 ms for up to 20 s.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn hub() -> LogHub {
    LogHub::start(LogFormat::Text, 1 << 20).expect("log hub").0
}

/// Lines per pipe in `many_pipes_deliver_every_line_in_order`.
const LINES: usize = 30_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pipes_deliver_every_line_in_order() {
    let hub = hub();
    let mut ends = Vec::new();
    for i in 0..40 {
        let (r, w) = pipe();
        let ring = Arc::new(LogRing::default());
        let drained = hub
            .attach(r, Stream::Stdout, "w", &format!("w-{i}"), Arc::clone(&ring))
            .expect("attach");
        ends.push((w, ring, drained));
    }
    // Every pipe gets its lines from a thread of its own, in small writes
    // (the paused path) and one large one of about 330 KiB (large reads in
    // a row, then armed again behind the others); odd pipes
    // end with a line without newline, every fourth gets nothing at all.
    let writers: Vec<_> = ends
        .iter_mut()
        .enumerate()
        .map(|(i, (w, _, _))| {
            let mut w = w.try_clone().expect("dup");
            std::thread::spawn(move || {
                if i % 4 == 3 {
                    return;
                }
                for n in 0..200 {
                    writeln!(w, "line {n}").expect("write");
                }
                let big: String = (200..LINES).map(|n| format!("line {n}\n")).collect();
                w.write_all(big.as_bytes()).expect("write");
                if i % 2 == 1 {
                    write!(w, "tail").expect("write");
                }
            })
        })
        .collect();
    for t in writers {
        t.join().expect("writer thread");
    }
    for (i, (w, ring, drained)) in ends.into_iter().enumerate() {
        drop(w);
        tokio::time::timeout(Duration::from_secs(20), drained.wait())
            .await
            .expect("drained");
        let got = msgs(&ring);
        let mut want: Vec<String> = if i % 4 == 3 {
            Vec::new()
        } else {
            (0..LINES).map(|n| format!("line {n}")).collect()
        };
        if i % 4 != 3 && i % 2 == 1 {
            want.push("tail".into());
        }
        // The ring holds the last lines only.
        let want = want.split_off(want.len().saturating_sub(crate::logs::RING_LINES));
        assert_eq!(got, want, "pipe {i}");
    }
    tokio::time::timeout(Duration::from_secs(5), hub.drained())
        .await
        .expect("all drained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_pipe_is_read_again_and_the_drain_waits_for_an_open_one() {
    let hub = hub();
    let (r, mut w) = pipe();
    let ring = Arc::new(LogRing::default());
    let drained = hub
        .attach(r, Stream::Stderr, "w", "w-1", Arc::clone(&ring))
        .expect("attach");
    for n in 0..5 {
        writeln!(w, "again {n}").expect("write");
        until("the line in the ring", || msgs(&ring).len() == n + 1).await;
    }
    // Still open: neither the pipe's drain nor the hub's is done.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), hub.drained())
            .await
            .is_err(),
        "the hub drained with a pipe still open"
    );
    drop(w);
    tokio::time::timeout(Duration::from_secs(20), drained.wait())
        .await
        .expect("drained");
    tokio::time::timeout(Duration::from_secs(5), hub.drained())
        .await
        .expect("hub drained");
    let want: Vec<String> = (0..5).map(|n| format!("again {n}")).collect();
    assert_eq!(msgs(&ring), want);
    assert!(ring.tail(1).iter().all(|l| l.stream == Stream::Stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_whose_writer_is_gone_before_it_is_attached_ends() {
    let hub = hub();
    let (r, mut w) = pipe();
    write!(w, "only line, no newline").expect("write");
    drop(w);
    let ring = Arc::new(LogRing::default());
    let drained = hub
        .attach(r, Stream::Stdout, "w", "w-1", Arc::clone(&ring))
        .expect("attach");
    tokio::time::timeout(Duration::from_secs(20), drained.wait())
        .await
        .expect("drained");
    assert_eq!(msgs(&ring), vec!["only line, no newline".to_string()]);
}
