#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! SPEC §7: child output through the manager's stdout/stderr.

mod common;
use common::*;

use std::collections::HashMap;
use std::time::Duration;

/// Waits (with a long deadline, the volume test moves megabytes) until
/// `cond` holds for the manager's stdout.
fn wait_stdout_long(m: &Manager, what: &str, cond: impl Fn(&str) -> bool) -> String {
    wait_for(what, Duration::from_secs(180), || {
        let out = m.stdout();
        cond(&out).then_some(out)
    })
}

fn is_rfc3339_utc_millis(ts: &str) -> bool {
    // 2024-01-02T03:04:05.678Z
    let b = ts.as_bytes();
    if b.len() != 24 {
        return false;
    }
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    digits.iter().all(|&i| b[i].is_ascii_digit())
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
}

#[test]
fn text_lines_keep_their_stream_and_carry_the_instance_name() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  talker:
    command: [\"$DIR/talk.sh\"]
    scale: 2
"
    );
    let m = Manager::start_with(&yaml, &[], |d| {
        script(
            d,
            "talk.sh",
            "echo \"out-line $PHPEEK_PM_INSTANCE_NUMBER\"\necho \"err-line $PHPEEK_PM_INSTANCE_NUMBER\" >&2\nexec sleep 1000",
        );
    });
    for n in 1..=2 {
        let want_out = format!("[talker-{n}] out-line {n}");
        let want_err = format!("[talker-{n}] err-line {n}");
        let out = wait_for(&want_out, DEADLINE, || {
            let out = m.stdout();
            out.lines().any(|l| l == want_out).then_some(out)
        });
        let err = wait_for(&want_err, DEADLINE, || {
            let err = m.stderr();
            err.lines().any(|l| l == want_err).then_some(err)
        });
        assert!(
            !out.contains("err-line"),
            "child stderr leaked to stdout:\n{out}"
        );
        assert!(
            !err.contains("out-line"),
            "child stdout leaked to stderr:\n{err}"
        );
    }
    // the manager's own messages: stderr, prefixed
    let err = m.stderr();
    let api_line = err
        .lines()
        .find(|l| l.contains("API listening on"))
        .unwrap();
    assert!(api_line.starts_with("[phpeek-pm] "), "{api_line}");
    assert!(
        !m.stdout().contains("API listening"),
        "manager messages belong on stderr"
    );
}

#[test]
fn json_format_one_object_per_line() {
    let yaml = format!(
        "{TEST_GLOBALS}  log_format: json
processes:
  talker:
    command: [\"$DIR/talk.sh\"]
"
    );
    let m = Manager::start_with(&yaml, &[], |d| {
        script(
            d,
            "talk.sh",
            "printf '%s\\n' 'hello \"quoted\" \\ out'\necho 'err text' >&2\nexec sleep 1000",
        );
    });
    let parse = |l: &str| -> serde_json::Value {
        serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"))
    };
    let out = wait_for("json stdout line", DEADLINE, || {
        let out = m.stdout();
        out.lines().any(|l| l.contains("quoted")).then_some(out)
    });
    let err = wait_for("json stderr line", DEADLINE, || {
        let err = m.stderr();
        err.lines().any(|l| l.contains("err text")).then_some(err)
    });
    let o = parse(out.lines().find(|l| l.contains("quoted")).unwrap());
    assert_eq!(o["msg"], "hello \"quoted\" \\ out", "{o}");
    assert_eq!(o["process"], "talker", "{o}");
    assert_eq!(o["instance"], "talker-1", "{o}");
    assert_eq!(o["stream"], "stdout", "{o}");
    assert!(o["level"].is_string(), "{o}");
    assert!(is_rfc3339_utc_millis(o["ts"].as_str().unwrap()), "{o}");

    let e = parse(err.lines().find(|l| l.contains("err text")).unwrap());
    assert_eq!(e["msg"], "err text", "{e}");
    assert_eq!(e["instance"], "talker-1", "{e}");
    assert_eq!(e["stream"], "stderr", "{e}");
    assert!(is_rfc3339_utc_millis(e["ts"].as_str().unwrap()), "{e}");

    // every line of both streams is a JSON object; the manager's own
    // messages say "process":"phpeek-pm"
    for l in out.lines() {
        assert!(parse(l).is_object(), "{l}");
    }
    let mut own = 0;
    for l in m.stderr().lines() {
        let v = parse(l);
        assert!(v.is_object(), "{l}");
        if v["process"] == "phpeek-pm" {
            own += 1;
            assert!(v["msg"].is_string(), "{l}");
            assert!(v["level"].is_string(), "{l}");
            assert!(is_rfc3339_utc_millis(v["ts"].as_str().unwrap_or("")), "{l}");
        }
    }
    assert!(own > 0, "no manager message in json on stderr");
    let api = m
        .stderr()
        .lines()
        .map(parse)
        .find(|v| {
            v["msg"]
                .as_str()
                .is_some_and(|s| s.contains("API listening on"))
        })
        .expect("API line");
    assert_eq!(api["process"], "phpeek-pm", "{api}");
}

#[test]
fn heavy_output_from_four_children_loses_and_mixes_nothing() {
    const LINES: usize = 50_000;
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  vol:
    command: [\"$DIR/vol.sh\"]
    scale: 4
    restart: never
  keeper:
    command: [\"sleep\", \"1000\"]
"
    );
    // awk buffers its output, so pipe writes end mid-line; line i carries
    // i % 50 filler characters so cut or merged lines cannot parse.
    let body = format!(
        "awk -v n=\"$PHPEEK_PM_INSTANCE_NUMBER\" 'BEGIN {{ for (i = 1; i <= {LINES}; i++) {{ s = sprintf(\"w%s %06d \", n, i); for (j = 0; j < i % 50; j++) s = s \"x\"; print s }}; print \"DONE w\" n }}'"
    );
    let m = Manager::start_with(&yaml, &[], |d| {
        script(d, "vol.sh", &body);
    });
    let out = wait_stdout_long(&m, "all four children to finish writing", |out| {
        (1..=4).all(|n| out.contains(&format!("[vol-{n}] DONE w{n}\n")))
    });
    let mut next: HashMap<u32, usize> = (1..=4).map(|n| (n, 1)).collect();
    let mut bad = Vec::new();
    for line in out.lines() {
        let Some(rest) = line.strip_prefix("[vol-") else {
            bad.push(line.to_string());
            continue;
        };
        let Some((n, msg)) = rest.split_once("] ") else {
            bad.push(line.to_string());
            continue;
        };
        let Ok(n) = n.parse::<u32>() else {
            bad.push(line.to_string());
            continue;
        };
        if msg == format!("DONE w{n}") {
            continue;
        }
        let expect = next.get(&n).copied().unwrap_or(0);
        let want = format!("w{n} {expect:06} {}", "x".repeat(expect % 50));
        if msg != want {
            bad.push(line.to_string());
            if bad.len() > 20 {
                break;
            }
            continue;
        }
        *next.get_mut(&n).unwrap() += 1;
    }
    assert!(
        bad.is_empty(),
        "lines cut, mixed, reordered or foreign: {:?}",
        &bad[..bad.len().min(20)]
    );
    for n in 1..=4 {
        assert_eq!(
            next[&n],
            LINES + 1,
            "vol-{n}: every line exactly once, in order"
        );
    }
    let total = out.lines().count();
    assert_eq!(total, 4 * (LINES + 1), "nothing duplicated");
}

#[test]
fn lines_after_a_burst_and_a_pause_arrive_while_the_child_lives() {
    // The reader takes a pipe out of epoll while its writer writes line by
    // line and reads it after short pauses; once a read finds it empty it
    // waits on epoll again. Each burst here is 3000 separate writes (the
    // shell's echo), then silence: the line after each silence must come
    // through while the child is still running (no end of file flushes it),
    // and every line in order.
    const BURST: usize = 3000;
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  bursty:
    command: [\"$DIR/bursty.sh\"]
    restart: never
"
    );
    let body = format!(
        "for k in 1 2 3; do i=0; while [ $i -lt {BURST} ]; do echo \"b$k $i\"; i=$((i+1)); done; sleep 0.3; echo \"after pause $k\"; sleep 0.3; done; exec sleep 1000"
    );
    let mut m = Manager::start_with(&yaml, &[], |d| {
        script(d, "bursty.sh", &body);
    });
    let out = wait_for("the line after the third pause", DEADLINE, || {
        let out = m.stdout();
        out.contains("[bursty-1] after pause 3\n").then_some(out)
    });
    let want: Vec<String> = (1..=3)
        .flat_map(|k| {
            (0..BURST)
                .map(move |i| format!("[bursty-1] b{k} {i}"))
                .chain(std::iter::once(format!("[bursty-1] after pause {k}")))
        })
        .collect();
    let got: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("[bursty-1] "))
        .collect();
    assert_eq!(got.len(), want.len(), "every line exactly once");
    let first_bad = got.iter().zip(&want).position(|(g, w)| g != w);
    assert_eq!(first_bad, None, "lines in order, whole");
    // Still running: the pause lines came through epoll, not end of file.
    let (status, body) = m.get("/api/v1/processes/bursty");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"running\""), "{body}");
}

#[test]
fn long_lines_are_split_into_marked_chunks() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  long:
    command: [\"$DIR/long.sh\"]
"
    );
    let m = Manager::start_with(&yaml, &[], |d| {
        // one line "1,2,3,…,40000," of ~229 kB, then a normal line
        script(
            d,
            "long.sh",
            "seq 1 40000 | tr '\\n' ','\necho\necho after-long\nexec sleep 1000",
        );
    });
    let expected: String = (1..=40000).map(|i| format!("{i},")).collect();
    assert!(expected.len() > 3 * 64 * 1024);
    let out = wait_for("the line after the long one", DEADLINE, || {
        let out = m.stdout();
        out.lines()
            .any(|l| l == "[long-1] after-long")
            .then_some(out)
    });
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| *l != "[long-1] after-long")
        .collect();
    assert!(
        lines.len() >= 4,
        "a {} byte line must come in several chunks, got {}",
        expected.len(),
        lines.len()
    );
    let mut whole = String::new();
    for (i, l) in lines.iter().enumerate() {
        let body = l
            .strip_prefix("[long-1] ")
            .unwrap_or_else(|| panic!("chunk {i} lacks the prefix"));
        let last = i + 1 == lines.len();
        let body = if last {
            assert!(
                !body.ends_with(" [continued]"),
                "the last chunk is not marked"
            );
            body
        } else {
            body.strip_suffix(" [continued]")
                .unwrap_or_else(|| panic!("chunk {i} of {} is not marked continued", lines.len()))
        };
        assert!(
            body.len() <= 64 * 1024,
            "chunk {i} has {} bytes",
            body.len()
        );
        whole.push_str(body);
    }
    assert_eq!(whole.len(), expected.len());
    assert!(
        whole == expected,
        "the chunks do not reassemble to the original line"
    );
}

#[test]
fn long_lines_in_json_reassemble() {
    let yaml = format!(
        "{TEST_GLOBALS}  log_format: json
processes:
  long:
    command: [\"$DIR/long.sh\"]
"
    );
    let m = Manager::start_with(&yaml, &[], |d| {
        script(
            d,
            "long.sh",
            "seq 1 40000 | tr '\\n' ','\necho\necho after-long\nexec sleep 1000",
        );
    });
    let expected: String = (1..=40000).map(|i| format!("{i},")).collect();
    let out = wait_for("the line after the long one", DEADLINE, || {
        let out = m.stdout();
        out.contains("after-long").then_some(out)
    });
    let objs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:.200}")))
        .filter(|v: &serde_json::Value| v["msg"] != "after-long")
        .collect();
    assert!(objs.len() >= 4, "{} chunks", objs.len());
    let whole: String = objs.iter().map(|v| v["msg"].as_str().unwrap()).collect();
    assert!(whole == expected, "json chunks do not reassemble");
    for v in &objs {
        assert_eq!(v["instance"], "long-1");
        assert!(v["msg"].as_str().unwrap().len() <= 64 * 1024);
    }
}

#[test]
fn a_last_line_without_newline_is_flushed_at_exit() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  partial:
    command: [\"sh\", \"-c\", \"printf 'first\\\\nlast-words-no-newline'; printf 'err-no-newline' >&2\"]
    restart: never
  keeper:
    command: [\"sleep\", \"1000\"]
"
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("keeper", 1);
    m.wait_instance("partial-1", |i| i.state == InstanceState::Exited);
    let out = wait_for("the unterminated stdout line", DEADLINE, || {
        let out = m.stdout();
        out.lines()
            .any(|l| l == "[partial-1] last-words-no-newline")
            .then_some(out)
    });
    assert!(out.lines().any(|l| l == "[partial-1] first"), "{out}");
    assert!(out.ends_with('\n'), "the flushed line is terminated");
    wait_for("the unterminated stderr line", DEADLINE, || {
        m.stderr()
            .lines()
            .any(|l| l == "[partial-1] err-no-newline")
            .then_some(())
    });
}

#[test]
fn disabled_streams_are_silenced() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  quiet:
    command: [\"$DIR/both.sh\", \"quiet\"]
    stdout: false
  mute:
    command: [\"$DIR/both.sh\", \"mute\"]
    stderr: false
  late:
    command: [\"$DIR/late.sh\"]
"
    );
    let m = Manager::start_with(&yaml, &[], |d| {
        script(
            d,
            "both.sh",
            "echo \"$1-stdout-text\"\necho \"$1-stderr-text\" >&2\ntouch \"$(dirname \"$0\")/done-$1\"\nexec sleep 1000",
        );
        // writes only after both others wrote everything, so its lines
        // arriving means theirs had every chance to arrive too
        script(
            d,
            "late.sh",
            "d=\"$(dirname \"$0\")\"\nwhile [ ! -f \"$d/done-quiet\" ] || [ ! -f \"$d/done-mute\" ]; do sleep 0.05; done\necho late-out\necho late-err >&2\nexec sleep 1000",
        );
    });
    wait_for("the visible streams", DEADLINE, || {
        let out = m.stdout();
        let err = m.stderr();
        (out.lines().any(|l| l == "[mute-1] mute-stdout-text")
            && err.lines().any(|l| l == "[quiet-1] quiet-stderr-text")
            && out.lines().any(|l| l == "[late-1] late-out")
            && err.lines().any(|l| l == "[late-1] late-err"))
        .then_some(())
    });
    let out = m.stdout();
    let err = m.stderr();
    assert!(
        !out.contains("quiet-stdout-text") && !err.contains("quiet-stdout-text"),
        "stdout: false leaked:\n{out}"
    );
    assert!(
        !out.contains("mute-stderr-text") && !err.contains("mute-stderr-text"),
        "stderr: false leaked:\n{err}"
    );
}

#[test]
fn a_line_of_exactly_64_kib_is_not_split() {
    // Only lines *longer* than 64 KiB are split; one of exactly 65 536
    // bytes must come through whole, without a marker or an empty tail.
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  edge:
    command: [\"$DIR/edge.sh\"]
"
    );
    let m = Manager::start_with(&yaml, &[], |d| {
        script(
            d,
            "edge.sh",
            "head -c 65536 /dev/zero | tr '\\0' 'e'\necho\necho after-edge\nexec sleep 1000",
        );
    });
    let out = wait_for("the line after the 64 KiB one", DEADLINE, || {
        let out = m.stdout();
        out.lines()
            .any(|l| l == "[edge-1] after-edge")
            .then_some(out)
    });
    let lines: Vec<&str> = out.lines().collect();
    let shown: Vec<String> = lines
        .iter()
        .map(|l| format!("{:.40}… ({} bytes)", l, l.len()))
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "one line of 64 KiB, then after-edge: {shown:?}"
    );
    assert_eq!(
        lines[0],
        format!("[edge-1] {}", "e".repeat(65536)),
        "{shown:?}"
    );
}

#[test]
fn output_written_while_stopping_is_all_there_when_the_manager_exits() {
    // The manager exits as soon as the last reader has drained its pipe and
    // the writer has written it out (issue 13: no runtime teardown first).
    // Each instance answers SIGTERM with 200 lines and one unterminated
    // line; every one must be in the manager's stdout once it has exited.
    const N: u32 = 20;
    const LINES: u32 = 200;
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  talker:
    command: [\"$DIR/talker.sh\"]
    scale: {N}
"
    );
    let body = format!(
        "trap 'i=1; while [ $i -le {LINES} ]; do echo \"bye $PHPEEK_PM_INSTANCE_NUMBER $i\"; i=$((i+1)); done; printf \"last $PHPEEK_PM_INSTANCE_NUMBER\"; exit 0' TERM\necho up\nwhile :; do sleep 1; done"
    );
    let mut m = Manager::start_with(&yaml, &[], |d| {
        script(d, "talker.sh", &body);
    });
    m.wait_running("talker", N as usize);
    wait_for("every talker to say it is up", DEADLINE, || {
        (m.stdout().matches("] up\n").count() == N as usize).then_some(())
    });
    m.signal(nix::sys::signal::Signal::SIGTERM);
    m.wait_exit(DEADLINE);
    let out = m.stdout();
    for n in 1..=N {
        let prefix = format!("[talker-{n}] ");
        let got: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .filter(|l| l.starts_with("bye "))
            .collect();
        let want: Vec<String> = (1..=LINES).map(|i| format!("bye {n} {i}")).collect();
        assert_eq!(got, want, "talker-{n}: every line once, in order");
        assert!(
            out.lines().any(|l| l == format!("{prefix}last {n}")),
            "talker-{n}: the unterminated last line"
        );
    }
    assert!(out.ends_with('\n'), "the last line is terminated");
}
