//! SPEC §14: `phpeek-pm import supervisord FILE` / `import procfile FILE`
//! print an equivalent config that phpeek-pm's own loader accepts, name
//! every key they cannot map in a `# warning:` comment, and turn an
//! unreadable source into one error line with its line number. The same
//! supervisord.conf run by the real supervisord and, imported, by
//! phpeek-pm gives the same processes (by /proc).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

const SAMPLE: &str = r#"; a typical Laravel container
[supervisord]
nodaemon=true
logfile=/dev/null
environment=APP_ENV="production"

[program:php-fpm]
command=php-fpm -F --fpm-config %(here)s/fpm.conf
priority=10
autorestart=true
stopsignal=QUIT

[program:queue]
command=php artisan queue:work --id=%(process_num)d --tries='$3'
process_name=%(program_name)s_%(process_num)02d
numprocs=4
numprocs_start=1
directory=/var/www/html
user=www-data
environment=QUEUE="default",
    HOME_DIR="%(ENV_HOME)s"
autorestart=unexpected
stopwaitsecs=60
startsecs=3
stdout_logfile=/dev/stdout
colour=blue

[program:cron]
command=cron -f
autostart=false

[group:app]
programs=queue,cron

[unix_http_server]
file=/run/supervisor.sock
"#;

fn import(kind: &str, dir: &Path, file: &str, text: &str) -> CliRun {
    std::fs::write(dir.join(file), text).unwrap();
    run_cli(&["import", kind, file], dir, &[], &[])
}

fn check_config(dir: &Path, yaml: &str, env: &[(&str, &str)]) -> CliRun {
    std::fs::write(dir.join("imported.yaml"), yaml).unwrap();
    run_cli(&["check-config", "-c", "imported.yaml"], dir, env, &[])
}

#[test]
fn a_supervisord_conf_imports_to_a_config_the_loader_accepts_with_every_unmapped_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let run = import("supervisord", dir.path(), "supervisord.conf", SAMPLE);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let yaml = run.stdout;
    assert!(
        run.stderr
            .contains("not mapped; see the `# warning:` comments"),
        "{}",
        run.stderr
    );

    // Deterministic: the same input gives the same bytes.
    let again = run_cli(
        &["import", "supervisord", "supervisord.conf"],
        dir.path(),
        &[],
        &[],
    );
    assert_eq!(again.stdout, yaml);

    // Loads with phpeek-pm's loader (HOME is the one `${…}` it needs).
    let check = check_config(dir.path(), &yaml, &[("HOME", "/home/test")]);
    assert_eq!(check.code, 0, "{}\n{yaml}", check.stderr);
    let eff = check.stdout;
    let here = dir.path().canonicalize().unwrap();
    for want in [
        "queue:",
        "scale: 4",
        "restart: on-failure",
        "working_dir: /var/www/html",
        "user: www-data",
        "QUEUE: default",
        "HOME_DIR: /home/test",
        "APP_ENV: production",
        "signal: SIGQUIT",
        "timeout: 1m",
    ] {
        assert!(eff.contains(want), "`{want}` missing from:\n{eff}");
    }
    assert!(
        eff.contains(&format!("{}/fpm.conf", here.display())),
        "%(here)s: {eff}"
    );
    // `$3` stays a literal dollar; %(process_num)d is the instance number.
    assert!(
        yaml.contains(r#""--id=${PHPEEK_PM_INSTANCE_NUMBER}", "--tries=$$3""#),
        "{yaml}"
    );
    assert!(
        eff.contains("--tries=$$3") || eff.contains("--tries=$3"),
        "{eff}"
    );
    // priority: the default-priority programs wait for php-fpm (priority 10).
    assert!(yaml.contains("depends_on: [\"php-fpm\"]"), "{yaml}");
    // autostart=false: defined, not started.
    let cron = yaml.split("  cron:").nth(1).unwrap_or_default();
    assert!(cron.contains("scale: 0"), "{yaml}");

    // Every key not mapped is a warning comment with its line.
    for (line, key) in [
        (4, "logfile"),
        (15, "process_name"),
        (24, "startsecs"),
        (25, "stdout_logfile"),
        (26, "colour"),
        (32, "[group:app]"),
        (35, "[unix_http_server]"),
    ] {
        let found = yaml.lines().any(|l| {
            l.contains("# warning:") && l.contains(&format!("line {line}:")) && l.contains(key)
        });
        assert!(found, "no warning for `{key}` (line {line}) in:\n{yaml}");
    }
}

#[test]
fn a_procfile_imports_with_sh_and_foreman_ports() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "# Procfile\nweb: php -S 0.0.0.0:$PORT -t public\nQueue_Worker: php artisan queue:work\n\n";
    let run = import("procfile", dir.path(), "Procfile", text);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let yaml = run.stdout;
    assert!(
        yaml.contains(r#"command: ["sh", "-c", "php -S 0.0.0.0:$$PORT -t public"]"#),
        "{yaml}"
    );
    assert!(yaml.contains("port_base: 4999"), "{yaml}");
    assert!(yaml.contains("queue_worker:"), "{yaml}");
    assert!(
        yaml.lines()
            .any(|l| l.contains("# warning: line 3:") && l.contains("Queue_Worker")),
        "{yaml}"
    );
    let check = check_config(dir.path(), &yaml, &[]);
    assert_eq!(check.code, 0, "{}\n{yaml}", check.stderr);
    assert!(check.stdout.contains("port_base: 5099"), "{}", check.stdout);
}

#[test]
fn an_unreadable_source_is_one_error_line_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, file, text, want) in [
        (
            "supervisord",
            "a.conf",
            "[program:a]\ncommand=sleep 1\nthis is not ini\n",
            "a.conf:3:",
        ),
        (
            "supervisord",
            "b.conf",
            "[program:b]\nnumprocs=lots\ncommand=x\n",
            "b.conf:2:",
        ),
        (
            "supervisord",
            "c.conf",
            "[program:c]\ncommand=echo 'open\n",
            "c.conf:2:",
        ),
        (
            "supervisord",
            "d.conf",
            "[program:d]\nautostart=true\n",
            "d.conf:1:",
        ),
        (
            "supervisord",
            "e.conf",
            "[program:e]\ncommand=x %(nope)s\n",
            "e.conf:2:",
        ),
        (
            "procfile",
            "Procfile",
            "web: ok\nbroken line\n",
            "Procfile:2:",
        ),
    ] {
        let run = import(kind, dir.path(), file, text);
        assert_eq!(run.code, 2, "{file}: {}", run.stdout);
        assert!(run.stdout.is_empty(), "{file}: {}", run.stdout);
        let err = run.stderr.trim_end();
        assert_eq!(err.lines().count(), 1, "{file}: {err}");
        assert!(err.contains(want), "{file}: `{want}` not in `{err}`");
    }
    let missing = run_cli(
        &["import", "supervisord", "nope.conf"],
        dir.path(),
        &[],
        &[],
    );
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("nope.conf: cannot read"),
        "{}",
        missing.stderr
    );
}

/// What /proc says about one process, for comparing two managers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    cmdline: Vec<String>,
    env: BTreeMap<String, String>,
    uid: u32,
    cwd: PathBuf,
}

const COMPARED_ENV: &[&str] = &[
    "IMPORT_BASE",
    "IMPORT_TEST_VAR",
    "WEB_MODE",
    "FROM_ENV",
    "WORKER_NUM",
    "PROGRAM",
];

fn seen(pid: i32) -> Option<Seen> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let env = environ(pid)
        .into_iter()
        .filter(|(k, _)| COMPARED_ENV.contains(&k.as_str()))
        .collect();
    Some(Seen {
        cmdline,
        env,
        uid,
        cwd,
    })
}

/// The children of `pid`, sorted, once there are `n` and all run `sleep`
/// (not a fork that has not exec'd yet).
fn sleep_children(pid: i32, n: usize) -> Option<Vec<Seen>> {
    let mut all: Vec<Seen> = children_of(pid)
        .into_iter()
        .filter_map(|c| seen(c.pid))
        .collect();
    all.sort();
    let ok = all.len() == n
        && all
            .iter()
            .all(|s| s.cmdline.first().is_some_and(|a| a == "sleep"));
    ok.then_some(all)
}

fn supervisord_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PHPEEK_PM_SUPERVISORD") {
        return Some(PathBuf::from(p));
    }
    which("supervisord")
}

#[test]
fn the_same_conf_runs_the_same_processes_under_supervisord_and_phpeek_pm() {
    let test = "the_same_conf_runs_the_same_processes_under_supervisord_and_phpeek_pm";
    let Some(supervisord) = supervisord_path() else {
        skip(
            test,
            "supervisord is not installed (PHPEEK_PM_SUPERVISORD or PATH)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().canonicalize().unwrap();
    std::fs::create_dir(here.join("web")).unwrap();
    // `nobody` must be able to enter the working directories.
    for d in [here.clone(), here.join("web")] {
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    // Running as another user needs root, for both managers alike.
    let user_line = if is_root() { "user=nobody\n" } else { "" };
    let conf = format!(
        r#"[supervisord]
nodaemon=true
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}
environment=IMPORT_BASE="base value"

[program:web]
command=sleep 4399
directory={dir}/web
environment=WEB_MODE="a b,c",FROM_ENV="%(ENV_IMPORT_TEST_VAR)s"
priority=10
autorestart=true

[program:worker]
command=sleep 430%(process_num)d
process_name=%(program_name)s_%(process_num)d
numprocs=3
numprocs_start=1
directory=%(here)s
{user_line}environment=WORKER_NUM="%(process_num)d",PROGRAM="%(program_name)s"
stopsignal=TERM
stopwaitsecs=5
"#,
        dir = here.display()
    );
    let conf_path = here.join("supervisord.conf");
    std::fs::write(&conf_path, &conf).unwrap();
    let env = [("IMPORT_TEST_VAR", "from the environment")];

    // supervisord's processes.
    let mut sup = Command::new(&supervisord)
        .args(["-n", "-c"])
        .arg(&conf_path)
        .current_dir(&here)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(here.join("supervisord.err")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", supervisord.display()));
    let sup_pid = sup.id() as i32;
    let under_supervisord = poll(DEADLINE, || sleep_children(sup_pid, 4));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup_pid),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let ended = poll(DEADLINE, || sup.try_wait().unwrap());
    if ended.is_none() {
        let _ = sup.kill();
        let _ = sup.wait();
    }
    let log = std::fs::read_to_string(here.join("supervisord.log")).unwrap_or_default();
    let under_supervisord =
        under_supervisord.unwrap_or_else(|| panic!("supervisord did not start 4 sleeps:\n{log}"));

    // The same file imported, under phpeek-pm.
    let run = run_cli(
        &["import", "supervisord", "supervisord.conf"],
        &here,
        &[],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut m = Manager::start_with(
        &run.stdout,
        &[
            ("IMPORT_TEST_VAR", "from the environment"),
            ("PHPEEK_PM_GLOBAL_API_PORT", "0"),
            ("PHPEEK_PM_GLOBAL_METRICS_HOST", "127.0.0.1"),
            ("PHPEEK_PM_GLOBAL_METRICS_PORT", "0"),
        ],
        |_| {},
    );
    m.wait_running("worker", 3);
    let under_phpeek = wait_for("4 sleeps under phpeek-pm", DEADLINE, || {
        sleep_children(m.pid(), 4)
    });
    m.signal(nix::sys::signal::SIGTERM);
    assert_eq!(m.wait_exit(DEADLINE), 0, "{}", m.stderr());

    assert_eq!(under_phpeek, under_supervisord, "imported:\n{}", run.stdout);
    // The comparison saw what it was meant to see.
    let workers: Vec<&Seen> = under_phpeek
        .iter()
        .filter(|s| s.env.contains_key("WORKER_NUM"))
        .collect();
    assert_eq!(workers.len(), 3);
    assert!(under_phpeek.iter().any(|s| s.cwd == here.join("web")
        && s.env.get("WEB_MODE").map(String::as_str) == Some("a b,c")
        && s.env.get("FROM_ENV").map(String::as_str) == Some("from the environment")));
    assert!(under_phpeek
        .iter()
        .all(|s| s.env.get("IMPORT_BASE").map(String::as_str) == Some("base value")));
    if is_root() {
        assert!(workers.iter().all(|s| s.uid == 65534), "{workers:?}");
    }
}
