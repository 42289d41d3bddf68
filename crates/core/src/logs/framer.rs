//! The line framer: splits each pipe's bytes into lines (cutting lines
//! longer than `MAX_LINE` into marked chunks without splitting UTF-8) and
//! formats them as text or JSON for the writer and the ring.

use std::time::SystemTime;

use phpeek_config::LogFormat;

use super::{rfc3339_millis, RingChunk, Stream, MAX_LINE};

/// Splits a byte stream into lines and formats them.
pub(super) struct Framer {
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
    pub(super) fn new(format: LogFormat, stream: Stream, process: &str, instance: &str) -> Self {
        let (prefix, prefix_continued, suffix) = match format {
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
            format,
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
    pub(super) fn feed(&mut self, data: &[u8], ts: SystemTime) -> (Vec<u8>, RingChunk) {
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
    pub(super) fn finish(&mut self, ts: SystemTime) -> (Vec<u8>, RingChunk) {
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
    let format = if json {
        LogFormat::Json
    } else {
        LogFormat::Text
    };
    let mut framer = Framer::new(format, Stream::Stdout, "w", "w-1");
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

    fn framer_text() -> (LogFormat, String, String) {
        (LogFormat::Text, "w".to_string(), "w-1".to_string())
    }

    #[test]
    fn splits_lines_across_reads() {
        let (hub, p, i) = framer_text();
        let mut f = Framer::new(hub, Stream::Stdout, &p, &i);
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
        let mut f = Framer::new(hub, Stream::Stdout, &p, &i);
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

    fn json_hub() -> LogFormat {
        LogFormat::Json
    }

    proptest::proptest! {
        #[test]
        fn json_lines_match_serde_json(msg in "[^\n]{0,40}", err in proptest::bool::ANY) {
            let hub = json_hub();
            let stream = if err { Stream::Stderr } else { Stream::Stdout };
            let mut f = Framer::new(hub, stream, "w\"x", "w\\1");
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
        let hub = json_hub();
        let mut f = Framer::new(hub, Stream::Stdout, "w\"x", "w-1");
        let mut data = vec![b'y'; MAX_LINE + 3];
        data.push(b'\n');
        let (out, _) = f.feed(&data, SystemTime::UNIX_EPOCH);
        let mut want = json_by_serde("w-1", &"y".repeat(MAX_LINE), true, Stream::Stdout);
        want.extend(json_by_serde("w-1", "yyy", false, Stream::Stdout));
        assert_eq!(out, want);
    }

    #[test]
    fn cut_respects_utf8() {
        let s = "é".repeat(10);
        let cut = utf8_cut(s.as_bytes(), 5);
        assert!(s.is_char_boundary(cut));
        assert_eq!(cut, 4);
    }
}
