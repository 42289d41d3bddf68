#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! `global.log_buffer`: the output the manager holds is bounded in bytes;
//! a slow reader of its stdout slows the children down, and nothing is
//! lost, cut, reordered or interleaved.

mod common;
use common::*;

use std::io::Read;
use std::time::{Duration, Instant};

const WRITERS: u32 = 8;
const LINES: u32 = 40_000;
/// Each line: `w-N-I-` then padding, about 200 bytes.
const PAD: usize = 180;
const BUFFER: u64 = 4 << 20;
/// The reader takes this much, then pauses (a log shipper that lags).
const CHUNK: usize = 1 << 20;
const PAUSE: Duration = Duration::from_millis(100);

fn vm_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_slow_reader_bounds_manager_memory_and_slows_the_children_without_losing_a_line() {
    let pad = "x".repeat(PAD);
    let yaml = format!(
        "{TEST_GLOBALS}  log_buffer: 4MiB
processes:
  w:
    command: [\"sh\", \"-c\", \"while [ ! -e $DIR/go ]; do sleep 0.05; done; date +%s.%N > $DIR/start-$PHPEEK_PM_INSTANCE_NUMBER; awk -v id=$PHPEEK_PM_INSTANCE_ID 'BEGIN {{ for (i = 0; i < {LINES}; i++) printf \\\"%s-%d-{pad}\\\\n\\\", id, i }}'; date +%s.%N > $DIR/end-$PHPEEK_PM_INSTANCE_NUMBER\"]
    scale: {WRITERS}
    restart: never
"
    );
    // The wrapper runs in the test's dir: stdout becomes the FIFO, opened
    // once the reader below opens its end.
    let mut m = Manager::start_wrapped(
        &yaml,
        &["sh", "-c", "exec \"$@\" > out.fifo", "sh"],
        |dir| {
            nix::unistd::mkfifo(
                &dir.join("out.fifo"),
                nix::sys::stat::Mode::from_bits_truncate(0o600),
            )
            .unwrap();
        },
    );
    let fifo = m.path("out.fifo");
    let dir = m.dir.path().to_path_buf();
    let pid = m.pid();

    // The slow reader: 1 MiB, then a pause, until end of file.
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::open(&fifo).unwrap();
        let mut all = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let mut got = 0;
            while got < CHUNK {
                match f.read(&mut buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
            all.extend_from_slice(&buf[..got]);
            if got < CHUNK {
                return all;
            }
            std::thread::sleep(PAUSE);
        }
    });

    m.wait_process("w", |p: &ProcessInfo| p.current == WRITERS);
    let idle = vm_rss_kib(pid);
    std::fs::write(dir.join("go"), "").unwrap();
    let mut peak = idle;
    let t0 = Instant::now();
    while m.running() && t0.elapsed() < Duration::from_secs(300) {
        peak = peak.max(vm_rss_kib(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(m.wait_exit(Duration::from_secs(60)), 0, "{}", m.stderr());
    let out = reader.join().unwrap();

    // Every line exactly once, whole, in order per instance.
    let text = String::from_utf8(out).unwrap();
    let mut next = vec![0u32; WRITERS as usize + 1];
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("[w-") else {
            continue;
        };
        let (n, body) = rest
            .split_once("] ")
            .unwrap_or_else(|| panic!("cut line: {line:.80}"));
        let n: usize = n.parse().unwrap();
        let expect = format!("w-{n}-{}-{pad}", next[n]);
        assert_eq!(
            body, expect,
            "line of w-{n} out of order, cut or interleaved"
        );
        next[n] += 1;
    }
    assert!(
        next[1..].iter().all(|&c| c == LINES),
        "lines per instance: {next:?}"
    );

    // Memory: the held output is bounded.
    let limit = idle + BUFFER / 1024 + 16 * 1024;
    eprintln!("manager RSS: idle {idle} KiB, peak {peak} KiB, limit {limit} KiB");
    assert!(peak < limit, "peak RSS {peak} KiB over {limit} KiB");

    // Backpressure: the children could not write faster than the reader
    // read, minus what the buffers hold.
    let stamp = |name: String| -> f64 { read(&dir.join(name)).trim().parse().unwrap() };
    let first_start = (1..=WRITERS)
        .map(|n| stamp(format!("start-{n}")))
        .fold(f64::MAX, f64::min);
    let last_end = (1..=WRITERS)
        .map(|n| stamp(format!("end-{n}")))
        .fold(0.0, f64::max);
    let total = f64::from(WRITERS * LINES) * (PAD + 12) as f64;
    let held = (BUFFER + 16 * 1024 * 1024) as f64;
    let pace = CHUNK as f64 / PAUSE.as_secs_f64();
    let floor = (total - held) / pace * 0.8;
    eprintln!(
        "writers took {:.2} s; the reader's pace forces at least {floor:.2} s",
        last_end - first_start
    );
    assert!(
        last_end - first_start >= floor,
        "the children were not slowed down"
    );
}
