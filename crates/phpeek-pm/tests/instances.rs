#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! SPEC §2: instance names, listing, per-instance environment and the
//! process setup every child gets (session, descriptors, stdin, directory,
//! user).

mod common;
use common::*;

use std::time::{SystemTime, UNIX_EPOCH};

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn cmdline(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).to_string())
        .collect()
}

#[test]
fn instances_are_named_numbered_and_listed_in_order() {
    let before = now_secs();
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  worker:
    command: [\"sleep\", \"1000\"]
    scale: 11
  alpha:
    command: [\"sleep\", \"1001\"]
"
    );
    let mut m = Manager::start(&yaml);
    let workers = m.wait_running("worker", 11);
    let alpha = m.wait_running("alpha", 1);
    // scale 1 still carries the suffix
    assert_eq!(alpha[0].0, "alpha-1");

    // Raw JSON for the document's shape (types, key presence), the wire
    // type for the values.
    let list: Vec<serde_json::Value> = m.get_as("/api/v1/processes");
    let typed: Vec<InstanceInfo> = serde_json::from_value(list.clone().into()).unwrap();
    let names: Vec<&str> = typed.iter().map(|i| i.name.as_str()).collect();
    let mut expected = vec!["alpha-1".to_string()];
    expected.extend((1..=11).map(|n| format!("worker-{n}")));
    assert_eq!(
        names, expected,
        "ordered by process name, then number (numerically)"
    );

    for (inst, i) in list.iter().zip(&typed) {
        let name = i.name.as_str();
        let (process, number) = name.rsplit_once('-').unwrap();
        assert_eq!(i.process, process, "{inst}");
        assert_eq!(i.number, number.parse::<u32>().unwrap(), "{inst}");
        assert_eq!(i.state, InstanceState::Running, "{inst}");
        let pid = i.pid.expect("pid is a number");
        assert!(alive(pid), "{name}: pid {pid} is not a live process");
        let want = if process == "worker" { "1000" } else { "1001" };
        assert_eq!(cmdline(pid), vec!["sleep", want], "{name} runs its command");
        assert!(inst["uptime"].is_u64(), "uptime is whole seconds: {inst}");
        let started = i.started_at.expect("started_at is an integer");
        assert!(
            started >= before - 1 && started <= now_secs() + 1,
            "started_at {started} is unix seconds of this run: {inst}"
        );
        assert_eq!(i.restarts, 0, "{inst}");
        assert!(
            inst.get("last_exit_code").is_some(),
            "last_exit_code present: {inst}"
        );
        assert_eq!(i.last_exit_code, None, "never exited: {inst}");
        let health = inst["health"].as_str().expect("health is a string");
        assert!(
            ["healthy", "unhealthy", "unknown"].contains(&health),
            "{inst}"
        );
    }
    // the pids of wait_running match the listing and are distinct
    let mut pids: Vec<i32> = workers.iter().map(|(_, p)| *p).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 11, "every instance is its own process");
}

#[test]
fn each_instance_gets_its_variables_in_env_and_command() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  worker:
    command: [\"$DIR/w.sh\", \"--id=${{PHPEEK_PM_INSTANCE_NUMBER}}\", \"${{PHPEEK_PM_INSTANCE_ID}}\", \"port:${{PHPEEK_PM_INSTANCE_PORT}}\", \"${{PHPEEK_PM_PROCESS_NAME}}\"]
    scale: 3
    port_base: 8080
    env:
      WORKER_TYPE: data_processor
      MY_PORT: \"p${{PHPEEK_PM_INSTANCE_PORT}}\"
      LABEL: \"${{PHPEEK_PM_PROCESS_NAME}}/${{PHPEEK_PM_INSTANCE_NUMBER}}/${{PHPEEK_PM_INSTANCE_ID}}\"
"
    );
    let body = r#"
out="$(dirname "$0")/args-$PHPEEK_PM_INSTANCE_NUMBER"
for a in "$@"; do printf '%s\n' "$a"; done > "$out.tmp"
mv "$out.tmp" "$out"
exec sleep 1000
"#;
    let mut m = Manager::start_with(&yaml, &[("PHPEEK_TEST_INHERITED", "from-manager")], |d| {
        script(d, "w.sh", body);
    });
    let running = m.wait_running("worker", 3);
    for (name, pid) in running {
        // Read the environment once the script has exec'd its last
        // program: during an exec, /proc/PID/environ can read empty.
        wait_for("the worker to exec sleep", DEADLINE, || {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "sleep").then_some(())
        });
        let n: u32 = name.strip_prefix("worker-").unwrap().parse().unwrap();
        let port = 8080 + n;
        let env = |k: &str| env_var(pid, k);
        assert_eq!(
            env("PHPEEK_PM_PROCESS_NAME").as_deref(),
            Some("worker"),
            "{name}"
        );
        assert_eq!(env("PHPEEK_PM_INSTANCE_ID"), Some(name.clone()), "{name}");
        assert_eq!(
            env("PHPEEK_PM_INSTANCE_NUMBER"),
            Some(n.to_string()),
            "{name}"
        );
        assert_eq!(
            env("PHPEEK_PM_INSTANCE_PORT"),
            Some(port.to_string()),
            "{name}: port_base + N"
        );
        assert_eq!(
            env("WORKER_TYPE").as_deref(),
            Some("data_processor"),
            "{name}: process env"
        );
        assert_eq!(
            env("MY_PORT"),
            Some(format!("p{port}")),
            "{name}: expanded in env"
        );
        assert_eq!(
            env("LABEL"),
            Some(format!("worker/{n}/{name}")),
            "{name}: expanded in env"
        );
        assert_eq!(
            env("PHPEEK_TEST_INHERITED").as_deref(),
            Some("from-manager"),
            "{name}: the manager's environment is passed on"
        );
        let args = wait_file(&m.path(&format!("args-{n}")), |_| true);
        let args: Vec<&str> = args.lines().collect();
        assert_eq!(
            args,
            vec![
                format!("--id={n}"),
                name.clone(),
                format!("port:{port}"),
                "worker".to_string()
            ],
            "{name}: per-instance variables expanded in the command"
        );
    }
}

#[test]
fn no_port_variable_without_port_base() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  plain:
    command: [\"sleep\", \"1000\"]
    scale: 2
"
    );
    let mut m = Manager::start(&yaml);
    for (name, pid) in m.wait_running("plain", 2) {
        assert_eq!(env_var(pid, "PHPEEK_PM_INSTANCE_ID"), Some(name.clone()));
        assert_eq!(env_var(pid, "PHPEEK_PM_INSTANCE_PORT"), None, "{name}");
    }
}

#[test]
fn each_instance_leads_its_own_session_with_only_stdio_and_null_stdin() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  iso:
    command: [\"sleep\", \"1000\"]
    scale: 3
  chatty:
    command: [\"$DIR/chatty.sh\"]
"
    );
    let mut m = Manager::start_with(&yaml, &[], |d| {
        // a second process with live log pipes, so there is something to leak
        script(d, "chatty.sh", "while true; do echo tick; sleep 1; done");
    });
    m.wait_running("chatty", 1);
    let manager = m.pid();
    for (name, pid) in m.wait_running("iso", 3) {
        let st = proc_stat(pid).unwrap();
        assert_eq!(st.ppid, manager, "{name} is the manager's child");
        assert_eq!(st.pgrp, pid, "{name} leads its own process group: {st:?}");
        assert_eq!(st.session, pid, "{name} leads its own session: {st:?}");
        let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
            .collect();
        fds.sort_unstable();
        let links: Vec<String> = fds
            .iter()
            .map(|fd| {
                let l = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap_or_default();
                format!("{fd} -> {}", l.display())
            })
            .collect();
        assert_eq!(
            fds,
            vec![0, 1, 2],
            "{name} inherited descriptors: {links:?}"
        );
        let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
        assert_eq!(stdin.to_str(), Some("/dev/null"), "{name}: stdin");
    }
}

#[test]
fn a_child_shell_sees_only_stdio() {
    // The child's own view: python lists /proc/self/fd minus the descriptor
    // it opened for the listing itself.
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  looker:
    command: [\"python3\", \"-c\", \"import os; fds=sorted(int(f) for f in os.listdir('/proc/self/fd')); d=os.environ['OUT']; open(d + '.tmp','w').write(' '.join(map(str,fds))); os.rename(d + '.tmp', d); os.execvp('sleep', ['sleep','1000'])\"]
    scale: 2
    env:
      OUT: \"$DIR/fds-${{PHPEEK_PM_INSTANCE_NUMBER}}\"
"
    );
    let mut m = Manager::start(&yaml);
    m.wait_running("looker", 2);
    for n in 1..=2 {
        let fds = wait_file(&m.path(&format!("fds-{n}")), |_| true);
        let fds: Vec<u32> = fds.split_whitespace().map(|s| s.parse().unwrap()).collect();
        // listdir opens exactly one descriptor (>= 3) while it reads
        let extra: Vec<u32> = fds.iter().copied().filter(|fd| *fd > 2).collect();
        assert!(fds.starts_with(&[0, 1, 2]), "looker-{n}: {fds:?}");
        assert!(
            extra.len() <= 1,
            "looker-{n} inherited descriptors: {fds:?}"
        );
    }
}

#[test]
fn working_dir_is_respected() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  wd:
    command: [\"$DIR/pwd.sh\"]
    working_dir: $DIR/work
"
    );
    let mut m = Manager::start_with(&yaml, &[], |d| {
        std::fs::create_dir(d.join("work")).unwrap();
        script(
            d,
            "pwd.sh",
            "pwd > where.tmp && mv where.tmp where\nexec sleep 1000",
        );
    });
    let (_, pid) = m.wait_running("wd", 1).remove(0);
    let work = m.path("work").canonicalize().unwrap();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, work);
    let written = wait_file(&work.join("where"), |_| true);
    assert_eq!(written.trim(), work.to_str().unwrap());
}

fn passwd_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&user)).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
    })
}

fn status_ids(pid: i32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn user_nobody_drops_privileges() {
    if !is_root() {
        println!("skipped: needs root to switch users");
        return;
    }
    let Some((uid, gid)) = passwd_ids("nobody") else {
        println!("skipped: no user `nobody` in /etc/passwd");
        return;
    };
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  low:
    command: [\"sleep\", \"1000\"]
    user: nobody
  high:
    command: [\"sleep\", \"1000\"]
"
    );
    let mut m = Manager::start(&yaml);
    let (_, pid) = m.wait_running("low", 1).remove(0);
    assert_eq!(
        status_ids(pid, "Uid:"),
        vec![uid; 4],
        "real, effective, saved, fs uid"
    );
    assert_eq!(
        status_ids(pid, "Gid:"),
        vec![gid; 4],
        "group defaults to the user's"
    );
    assert!(
        !status_ids(pid, "Groups:").contains(&0),
        "supplementary group root must be dropped"
    );
    let (_, root_pid) = m.wait_running("high", 1).remove(0);
    assert_eq!(
        status_ids(root_pid, "Uid:")[0],
        0,
        "without user: runs as the manager's user"
    );
}

#[test]
fn disabled_process_is_listed_but_never_started() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  off:
    enabled: false
    command: [\"$DIR/mark.sh\", \"off\"]
    scale: 2
  on:
    command: [\"$DIR/mark.sh\", \"on\"]
"
    );
    let mut m = Manager::start_with(&yaml, &[], |d| {
        script(
            d,
            "mark.sh",
            "touch \"$(dirname \"$0\")/started-$1\"\nexec sleep 1000",
        );
    });
    m.wait_running("on", 1);
    wait_file(&m.path("started-on"), |_| true);
    let off = m.process("off");
    assert_eq!(off.name, "off");
    assert_eq!(off.state, ProcessState::Disabled, "{off:?}");
    assert_eq!(off.current, 0, "{off:?}");
    for inst in &off.instances {
        assert!(
            inst.pid.is_none(),
            "a disabled process has no running instance: {off:?}"
        );
        assert_ne!(inst.state, InstanceState::Running, "{off:?}");
    }
    for inst in m.instances() {
        if inst.process == "off" {
            assert!(inst.pid.is_none(), "{inst:?}");
        }
    }
    assert!(
        !m.path("started-off").exists(),
        "a disabled process was started"
    );
}

#[test]
fn process_and_instance_endpoints() {
    let yaml = format!(
        "{TEST_GLOBALS}processes:
  worker:
    command: [\"sleep\", \"1000\"]
    scale: 3
"
    );
    let mut m = Manager::start(&yaml);
    let running = m.wait_running("worker", 3);

    let p = m.process("worker");
    assert_eq!(p.name, "worker");
    assert_eq!(p.scale, 3, "{p:?}");
    assert_eq!(p.desired, 3, "{p:?}");
    assert_eq!(p.current, 3, "{p:?}");
    assert_eq!(p.state, ProcessState::Running, "{p:?}");
    assert_eq!(p.restart, "always", "default policy: {p:?}");
    let names: Vec<&str> = p.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["worker-1", "worker-2", "worker-3"]);

    let (_, pid2) = running
        .iter()
        .find(|(n, _)| n == "worker-2")
        .unwrap()
        .clone();
    let i = m.instance("worker-2");
    assert_eq!(i.name, "worker-2", "{i:?}");
    assert_eq!(i.process, "worker", "{i:?}");
    assert_eq!(i.number, 2, "{i:?}");
    assert_eq!(i.state, InstanceState::Running, "{i:?}");
    assert_eq!(i.pid, Some(pid2), "{i:?}");
    // The raw document, for the key that tells the two kinds apart.
    let raw = m.get_json("/api/v1/processes/worker-2");
    assert!(
        raw.get("instances").is_none(),
        "an instance, not a process: {raw}"
    );

    for missing in ["nope", "worker-4", "worker-0"] {
        let (status, body) = m.get(&format!("/api/v1/processes/{missing}"));
        assert_eq!(status, 404, "{missing}: {body}");
        let e: ErrorResponse = decode(&body);
        assert!(!e.error.is_empty(), "{missing}: {body}");
    }
}
