//! SPEC §4: runtime scaling through the API converges to the last accepted
//! target, touching no instance it does not have to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;

use common::*;

/// Workers that log the TERM they get (with their instance id) and exit.
fn workers(scale: u32) -> String {
    format!(
        r#"{TEST_GLOBALS}processes:
  queue-default:
    command: ["sh", "-c", "trap 'echo $PHPEEK_PM_INSTANCE_ID >> $DIR/terms; exit 0' TERM; while true; do sleep 0.2; done"]
    scale: {scale}
    max_scale: 60
"#
    )
}

fn scale(m: &mut Manager, n: u32) -> (u16, String) {
    m.post(
        "/api/v1/processes/queue-default/scale",
        &format!("{{\"desired\": {n}}}"),
    )
}

/// Live (non-zombie) processes whose parent is the manager, from /proc.
fn live_children(manager: i32) -> Vec<i32> {
    children_of(manager)
        .into_iter()
        .filter(|c| c.state != 'Z')
        .map(|c| c.pid)
        .collect()
}

fn terms(m: &Manager) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(m.path("terms"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn scale_up_down_to_zero_and_back_touches_only_what_it_must() {
    let mut m = Manager::start(&workers(3));
    let first: BTreeMap<String, i32> = m.wait_running("queue-default", 3).into_iter().collect();

    let (status, body) = scale(&mut m, 10);
    assert_eq!(status, 202);
    let body: ScaleResponse = decode(&body);
    assert_eq!(body.status, "scaling");
    assert_eq!(body.process, "queue-default");
    assert_eq!(body.current, 3);
    assert_eq!(body.desired, 10);
    assert_eq!(body.message, "Scaling from 3 to 10 instances");
    let ten: BTreeMap<String, i32> = m.wait_running("queue-default", 10).into_iter().collect();
    for (name, pid) in &first {
        assert_eq!(ten.get(name), Some(pid), "{name} was touched by scale-up");
    }
    let names: Vec<&String> = ten.keys().collect();
    assert_eq!(names.len(), 10);
    assert!(ten.contains_key("queue-default-10"));

    let (status, _) = scale(&mut m, 2);
    assert_eq!(status, 202);
    let two: BTreeMap<String, i32> = m.wait_running("queue-default", 2).into_iter().collect();
    assert_eq!(
        two.keys().cloned().collect::<Vec<_>>(),
        vec!["queue-default-1", "queue-default-2"]
    );
    assert_eq!(two["queue-default-1"], first["queue-default-1"]);
    // The removed ones got their stop signal and are gone.
    let want: Vec<String> = (3..=10).map(|n| format!("queue-default-{n}")).collect();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    wait_for("8 TERMs", DEADLINE, || {
        (terms(&m) == want_sorted).then_some(())
    });
    for name in &want {
        assert!(!alive(ten[name]), "{name} still alive");
    }

    let (status, _) = scale(&mut m, 0);
    assert_eq!(status, 202);
    wait_for("no instance left", DEADLINE, || {
        m.instances()
            .iter()
            .all(|i| i.process != "queue-default")
            .then_some(())
    });
    let p = m.process("queue-default");
    assert_eq!(p.scale, 0);
    assert_eq!(p.current, 0);

    scale(&mut m, 3);
    let back: BTreeMap<String, i32> = m.wait_running("queue-default", 3).into_iter().collect();
    assert_eq!(
        back.keys().cloned().collect::<Vec<_>>(),
        vec!["queue-default-1", "queue-default-2", "queue-default-3"]
    );
    assert_eq!(live_children(m.pid()).len(), 3);
}

#[test]
fn the_same_scale_answers_unchanged() {
    let mut m = Manager::start(&workers(2));
    m.wait_running("queue-default", 2);
    let (status, body) = scale(&mut m, 2);
    assert_eq!(status, 200);
    let body: ScaleResponse = decode(&body);
    assert_eq!(body.status, "unchanged");
    assert_eq!(body.desired, 2);
}

#[test]
fn a_rapid_sequence_ends_with_exactly_the_last_target() {
    let mut m = Manager::start(&workers(3));
    m.wait_running("queue-default", 3);
    for n in [50, 1, 20] {
        let (status, _) = scale(&mut m, n);
        assert_eq!(status, 202);
    }
    m.wait_running("queue-default", 20);
    let pid = m.pid();
    wait_for("exactly 20 live children in /proc", DEADLINE, || {
        (live_children(pid).len() == 20).then_some(())
    });
}

#[test]
fn concurrent_requests_converge_to_the_final_one() {
    let mut m = Manager::start(&workers(1));
    m.wait_running("queue-default", 1);
    let api = m.api();
    let threads: Vec<_> = (0..30)
        .map(|i| {
            let url = format!("{api}/api/v1/processes/queue-default/scale");
            std::thread::spawn(move || {
                let n = (i * 7) % 40;
                http("POST", &url, Some(&format!("{{\"desired\": {n}}}")), None).0
            })
        })
        .collect();
    for t in threads {
        let status = t.join().unwrap();
        assert!(status == 200 || status == 202, "status {status}");
    }
    scale(&mut m, 7);
    m.wait_running("queue-default", 7);
    let pid = m.pid();
    wait_for("exactly 7 live children", DEADLINE, || {
        (live_children(pid).len() == 7).then_some(())
    });
}

#[test]
fn limits_are_enforced_and_nothing_changes() {
    let yaml = format!(
        "{TEST_GLOBALS}  max_process_scale: 30\nprocesses:\n  capped:\n    command: [\"sleep\", \"300\"]\n    scale: 2\n    max_scale: 5\n  free:\n    command: [\"sleep\", \"300\"]\n"
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("capped", 2);
    let (status, body) = m.post("/api/v1/processes/capped/scale", r#"{"desired": 6}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("max_scale"), "{body}");
    let (status, body) = m.post("/api/v1/processes/free/scale", r#"{"desired": 31}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("max_process_scale"), "{body}");
    assert_eq!(m.process("capped").desired, 2);
    assert_eq!(m.process("free").desired, 1);
}

#[test]
fn a_stopped_instance_stays_stopped_until_started() {
    let mut m = Manager::start(&workers(5));
    let before: BTreeMap<String, i32> = m.wait_running("queue-default", 5).into_iter().collect();
    let (status, body) = m.post("/api/v1/processes/queue-default-5/stop", "");
    assert_eq!(status, 202, "{body}");
    let v: ActionResponse = decode(&body);
    assert_eq!(v.process, "queue-default-5");
    let i = m.wait_instance("queue-default-5", |i| i.state == InstanceState::Stopped);
    assert_eq!(i.pid, None);
    assert!(!alive(before["queue-default-5"]));
    let p = m.process("queue-default");
    assert_eq!(p.desired, 5);
    assert_eq!(p.current, 4);
    // The policy (always) does not bring it back.
    assert_eq!(terms(&m), vec!["queue-default-5"]);
    assert_eq!(m.instance("queue-default-5").state, InstanceState::Stopped);

    let (status, _) = m.post("/api/v1/processes/queue-default-5/start", "");
    assert_eq!(status, 202);
    let after: BTreeMap<String, i32> = m.wait_running("queue-default", 5).into_iter().collect();
    assert_ne!(after["queue-default-5"], before["queue-default-5"]);
    assert_eq!(after["queue-default-1"], before["queue-default-1"]);
}

#[test]
fn a_whole_process_stops_and_starts() {
    let mut m = Manager::start(&workers(3));
    m.wait_running("queue-default", 3);
    assert_eq!(m.post("/api/v1/processes/queue-default/stop", "").0, 202);
    m.wait_process("queue-default", |p| {
        p.state == ProcessState::Stopped && p.current == 0
    });
    assert_eq!(m.post("/api/v1/processes/queue-default/start", "").0, 202);
    m.wait_running("queue-default", 3);
}

#[test]
fn scale_requests_during_shutdown_get_409() {
    let yaml = format!(
        r#"{TEST_GLOBALS}processes:
  slow:
    command: ["sh", "-c", "trap 'echo term >> $DIR/t' TERM; while true; do sleep 0.1; done"]
    shutdown:
      timeout: 600
"#
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("slow", 1);
    m.signal(nix::sys::signal::Signal::SIGTERM);
    wait_for("TERM seen", DEADLINE, || m.path("t").exists().then_some(()));
    let (status, body) = m.post("/api/v1/processes/slow/scale", r#"{"desired": 3}"#);
    assert_eq!(status, 409, "{body}");
    // The refusal is a JSON error.
    decode::<ErrorResponse>(&body);
    // Reads still work while shutting down.
    assert_eq!(m.get("/api/v1/processes").0, 200);
    m.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(m.wait_exit(DEADLINE), 1);
}

#[test]
fn scaling_past_the_port_range_is_refused() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:\n  p:\n    command: [\"sleep\", \"300\"]\n    port_base: 65533\n"
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("p", 1);
    assert_eq!(
        m.post("/api/v1/processes/p/scale", r#"{"desired": 2}"#).0,
        202
    );
    let (status, body) = m.post("/api/v1/processes/p/scale", r#"{"desired": 3}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("65535"), "{body}");
    m.wait_running("p", 2);
}
