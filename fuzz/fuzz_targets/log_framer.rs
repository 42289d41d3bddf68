//! The child-output line framer. Input: a flags byte (bit 0: JSON format),
//! a seed byte for the chunk sizes, then the stream; in the stream,
//! `\0 hi lo b` stands for `hi*256+lo` copies of byte `b`, so short inputs
//! reach lines longer than `MAX_LINE`.
//!
//! Checks: output is whole lines; no line is longer than prefix + MAX_LINE +
//! marker; JSON lines parse; the payloads put together give back the input
//! without its newlines, without a `\r` before each `\n` and without a
//! `\r` ending the stream (a last line without newline is trimmed alike).
#![no_main]

use libfuzzer_sys::fuzz_target;
use phpeek_core::logs::{frame_for_fuzzing, MAX_LINE};

const PREFIX: &[u8] = b"[w-1] ";
const MARKER: &[u8] = b" [continued]";

fn expand(input: &[u8], text: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < input.len() {
        if input[i] == 0 && i + 3 < input.len() {
            let n = usize::from(input[i + 1]) * 256 + usize::from(input[i + 2]);
            out.extend(std::iter::repeat_n(input[i + 3], n));
            i += 4;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    if text {
        // A payload ending in "]" could be mistaken for the marker.
        for b in &mut out {
            if *b == b']' {
                *b = b'}';
            }
        }
    }
    out
}

/// The payload bytes the framer must pass on: no `\n`, no `\r` before one,
/// no `\r` ending the stream.
fn expected(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, &b) in data.iter().enumerate() {
        let next = data.get(i + 1).copied();
        if b == b'\n' || (b == b'\r' && (next == Some(b'\n') || next.is_none())) {
            continue;
        }
        out.push(b);
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let [flags, seed, stream @ ..] = input else {
        return;
    };
    let json = flags & 1 == 1;
    let data = expand(stream, !json);

    // Chunk sizes from a small LCG.
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut state = u32::from(*seed) | 1;
    let mut rest = &data[..];
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let size = match (state >> 16) % 4 {
            0 => 1,
            1 => ((state >> 8) % 16) as usize + 1,
            2 => ((state >> 4) % 4096) as usize + 1,
            _ => ((state >> 2) % (2 * MAX_LINE as u32)) as usize + 1,
        };
        let (head, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(head);
        rest = tail;
    }
    let out = frame_for_fuzzing(&chunks, json);

    assert!(
        out.is_empty() || out.ends_with(b"\n"),
        "output ends mid-line"
    );
    let body = out.strip_suffix(b"\n").unwrap_or(&out);
    let lines: Vec<&[u8]> = if out.is_empty() {
        Vec::new()
    } else {
        body.split(|&b| b == b'\n').collect()
    };
    let mut payload = Vec::new();
    let mut all_text = String::new();
    for line in lines {
        if json {
            let v: serde_json::Value = serde_json::from_slice(line).expect("JSON line");
            let msg = v["msg"].as_str().expect("msg string");
            assert!(msg.len() <= 3 * MAX_LINE, "msg of {} bytes", msg.len());
            all_text.push_str(msg);
        } else {
            assert!(
                line.len() <= PREFIX.len() + MAX_LINE + MARKER.len(),
                "line of {} bytes",
                line.len()
            );
            let rest = line.strip_prefix(PREFIX).expect("prefix");
            let rest = rest.strip_suffix(MARKER).unwrap_or(rest);
            assert!(rest.len() <= MAX_LINE, "payload of {} bytes", rest.len());
            payload.extend_from_slice(rest);
        }
    }
    let want = expected(&data);
    if json {
        if let Ok(s) = std::str::from_utf8(&want) {
            assert_eq!(all_text.as_bytes(), s.as_bytes(), "JSON payloads differ");
        }
    } else {
        assert!(
            payload == want,
            "text payloads differ ({} vs {} bytes)",
            payload.len(),
            want.len()
        );
    }
});
