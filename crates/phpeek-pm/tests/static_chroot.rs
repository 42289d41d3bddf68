//! SPEC §14: one static x86_64 binary with no runtime dependency. The
//! binary built with `crt-static` has no ELF interpreter and no DT_NEEDED,
//! and runs in a chroot that holds only it, a static busybox and a few
//! `/etc` files (no libc at all): it starts instances as a user and group
//! named in that chroot's passwd/group files, probes `localhost` from its
//! hosts file and a name only a DNS server knows (a tiny responder this
//! test runs on a loopback address named in the chroot's resolv.conf),
//! scales through the API with busybox `wget`, and shuts down cleanly.
//! Names it cannot resolve (NXDOMAIN, a server that never answers, a
//! missing hosts file) fail with a probe error while numeric addresses
//! keep working; a user the passwd file lacks is a clear start failure.
//!
//! The binary is `$PHPEEK_PM_STATIC_BIN` (`.ci/run` builds the release one
//! with `scripts/build-static`); without it the test builds a static
//! debug binary into `target/static-test/` first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const TEST: &str = "static_chroot";

/// The static binary: given, or built here (debug profile, its own target
/// dir so the outer cargo's lock is not needed).
fn static_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PHPEEK_PM_STATIC_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "PHPEEK_PM_STATIC_BIN={} is not a file",
            p.display()
        );
        return p;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target_dir = root.join("target/static-test");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building a static phpeek-pm into {}", target_dir.display());
    let status = Command::new(cargo)
        .args([
            "build",
            "--locked",
            "-p",
            "phpeek-pm",
            "--bin",
            "phpeek-pm",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(&root)
        .stdin(Stdio::null())
        .status()
        .expect("run cargo");
    assert!(status.success(), "the static build failed");
    target_dir.join("x86_64-unknown-linux-gnu/debug/phpeek-pm")
}

/// What an ELF file asks of the dynamic loader: its interpreter, if any,
/// and how many DT_NEEDED libraries.
#[derive(Debug, PartialEq, Eq)]
struct Dynamic {
    interpreter: bool,
    needed: usize,
}

fn read_dynamic(path: &Path) -> Dynamic {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!(b[4], 2, "64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let phoff = u64_at(0x20) as usize;
    let phentsize = u16_at(0x36);
    let phnum = u16_at(0x38);
    let mut dynamic = Dynamic {
        interpreter: false,
        needed: 0,
    };
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(b[ph..ph + 4].try_into().unwrap());
        const PT_DYNAMIC: u32 = 2;
        const PT_INTERP: u32 = 3;
        match p_type {
            PT_INTERP => dynamic.interpreter = true,
            PT_DYNAMIC => {
                let off = u64_at(ph + 8) as usize;
                let size = u64_at(ph + 32) as usize;
                for e in (off..off + size).step_by(16) {
                    match u64_at(e) {
                        0 => break,
                        1 => dynamic.needed += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    dynamic
}

/// A DNS server for one name, on UDP port 53 of a random 127/8 address:
/// `svc.phpeek.test` is 127.0.0.1 (no AAAA), `silent.phpeek.test` is never
/// answered, every other name is NXDOMAIN.
struct DnsResponder {
    addr: Ipv4Addr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsResponder {
    fn start() -> DnsResponder {
        let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
        let socket = (0..50)
            .find_map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let ip = Ipv4Addr::new(127, 53, (seed >> 8) as u8, (seed as u8).max(2));
                UdpSocket::bind(SocketAddrV4::new(ip, 53)).ok()
            })
            .expect("a free 127.x.y.z:53");
        let addr = match socket.local_addr().unwrap().ip() {
            std::net::IpAddr::V4(a) => a,
            other => panic!("{other}"),
        };
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = dns_answer(&buf[..n]) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        DnsResponder {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reply to one query, or None to stay silent.
fn dns_answer(q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question_end = i + 4;
    let name = labels.join(".");
    if name == "silent.phpeek.test" {
        return None;
    }
    let known = name == "svc.phpeek.test";
    let answer_a = known && qtype == 1;
    let rcode = if known { 0 } else { 3 };
    let mut r = Vec::with_capacity(64);
    r.extend_from_slice(&q[..2]); // id
    r.push(0x84 | (q[2] & 0x01)); // QR, AA, RD copied
    r.push(0x80 | rcode); // RA, rcode
    r.extend_from_slice(&[0, 1, 0, u8::from(answer_a), 0, 0, 0, 0]);
    r.extend_from_slice(q.get(12..question_end)?);
    if answer_a {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    }
    Some(r)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Lays out the chroot in `root`: the binary, busybox and its applets,
/// `/etc` (passwd, group, nsswitch.conf, and hosts/resolv.conf when given),
/// `/dev/null`, `/proc` (mounted by unshare), `/tmp`, `/www`.
fn lay_out_chroot(
    root: &Path,
    bin: &Path,
    busybox: &Path,
    hosts: Option<&str>,
    resolv: Option<&str>,
) {
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["bin", "etc", "dev", "proc", "tmp", "www", "home/app"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy(bin, root.join("phpeek-pm")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "wget", "httpd", "id", "cat"] {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("www/index.html"), "ok\n").unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nappgrp:x:2345:app\nextra:x:3456:\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/nsswitch.conf"),
        "passwd: files\ngroup: files\nhosts: files dns\n",
    )
    .unwrap();
    if let Some(h) = hosts {
        std::fs::write(root.join("etc/hosts"), h).unwrap();
    }
    if let Some(r) = resolv {
        std::fs::write(root.join("etc/resolv.conf"), r).unwrap();
    }
    nix::sys::stat::mknod(
        &root.join("dev/null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
}

/// `sh -c` around the harness's `BIN -c CONFIG`: run the chroot's own copy
/// instead, with a private mount namespace whose /proc goes away with it.
const CHROOT_WRAPPER: &str = r#"d=$(dirname "$2"); exec unshare --mount --mount-proc="$d/proc" chroot "$d" /phpeek-pm -c /phpeek-pm.yaml"#;

fn http_check(url: &str, extra: &str) -> String {
    format!(
        "    health_check:\n      type: http\n      url: \"{url}\"\n      period: 500ms\n      timeout: 3s\n{extra}"
    )
}

fn uid_gid(pid: i32) -> (u32, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u32 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("Uid:"), field("Gid:"))
}

fn preflight() -> Option<(PathBuf, PathBuf)> {
    if !is_root() {
        skip(TEST, "needs root (chroot, mknod, DNS on port 53)");
        return None;
    }
    if !require(TEST, &["busybox", "unshare", "chroot"]) {
        return None;
    }
    let busybox = which("busybox")?;
    if read_dynamic(&busybox)
        != (Dynamic {
            interpreter: false,
            needed: 0,
        })
    {
        skip(
            TEST,
            "busybox is not the static one (apt-get install busybox-static)",
        );
        return None;
    }
    let bin = static_binary();
    assert_eq!(
        read_dynamic(&bin),
        Dynamic {
            interpreter: false,
            needed: 0
        },
        "{} must have no ELF interpreter and no DT_NEEDED",
        bin.display()
    );
    Some((bin, busybox))
}

#[test]
fn the_static_binary_runs_alone_in_a_chroot_with_users_hosts_and_dns_from_its_files() {
    let Some((bin, busybox)) = preflight() else {
        return;
    };
    let dns = DnsResponder::start();
    let port = free_port();
    let resolv = format!("nameserver {}\noptions timeout:1 attempts:1\n", dns.addr);
    let yaml = format!(
        r#"global:
  api_port: 0
  metrics_enabled: false
  restart_backoff_initial: 100ms
  restart_backoff_max: 1s
  shutdown_timeout: 10
processes:
  web:
    command: ["httpd", "-f", "-p", "127.0.0.1:{port}", "-h", "/www"]
    user: app
    group: extra
{web_check}  by-name:
    command: ["sleep", "600"]
{dns_check}  worker:
    command: ["sleep", "600"]
    user: app
  nxname:
    command: ["sleep", "600"]
{nx_check}  silent:
    command: ["sleep", "600"]
{silent_check}  ghost:
    command: ["sleep", "600"]
    user: ghost
    restart: never
"#,
        web_check = http_check(&format!("http://localhost:{port}/"), ""),
        dns_check = http_check(&format!("http://svc.phpeek.test:{port}/"), ""),
        nx_check = http_check(
            &format!("http://missing.phpeek.test:{port}/"),
            "      failure_threshold: 1\n"
        ),
        silent_check = http_check(
            &format!("http://silent.phpeek.test:{port}/"),
            "      failure_threshold: 1\n"
        ),
    );
    let mut m = Manager::start_wrapped(&yaml, &["sh", "-c", CHROOT_WRAPPER], |d| {
        lay_out_chroot(
            d,
            &bin,
            &busybox,
            Some("127.0.0.1 localhost\n"),
            Some(&resolv),
        );
    });

    // Users and groups from the chroot's files.
    let web = m.wait_healthy("web", 1);
    assert_eq!(uid_gid(web["web-1"]), (1234, 3456), "app:extra");
    let worker = m.wait_running("worker", 1);
    assert_eq!(uid_gid(worker[0].1), (1234, 2345), "app's own group");
    // A name only the DNS server knows.
    m.wait_healthy("by-name", 1);

    // Names that cannot be resolved are clear probe failures.
    let err = m.wait_stderr("nxname-1 failed its health check");
    assert!(
        err.lines()
            .any(|l| l.contains("nxname-1 failed its health check")
                && l.contains("missing.phpeek.test")),
        "{err}"
    );
    m.wait_stderr("silent-1 failed its health check");
    // A user the passwd file lacks: the usual start failure.
    m.wait_stderr("unknown user `ghost`");

    // Scale through the API with the chroot's busybox wget.
    let api = m.api();
    let out = Command::new("chroot")
        .arg(m.dir.path())
        .args([
            "/bin/wget",
            "-q",
            "-O",
            "-",
            "--post-data",
            r#"{"desired":3}"#,
        ])
        .arg(format!("{api}/api/v1/processes/worker/scale"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wget: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"desired\":3"));
    for (_, pid) in m.wait_running("worker", 3) {
        assert_eq!(uid_gid(pid).0, 1234);
    }

    m.signal(nix::sys::signal::SIGTERM);
    assert_eq!(m.wait_exit(DEADLINE), 0, "{}", m.stderr());
    drop(dns);
}

#[test]
fn without_hosts_and_resolv_conf_names_fail_and_numbers_work() {
    let Some((bin, busybox)) = preflight() else {
        return;
    };
    let port = free_port();
    let yaml = format!(
        r#"global:
  api_port: 0
  metrics_enabled: false
  restart_backoff_initial: 100ms
processes:
  web:
    command: ["httpd", "-f", "-p", "127.0.0.1:{port}", "-h", "/www"]
{num_check}  by-name:
    command: ["sleep", "600"]
{name_check}"#,
        num_check = http_check(&format!("http://127.0.0.1:{port}/"), ""),
        name_check = http_check(
            &format!("http://localhost:{port}/"),
            "      failure_threshold: 1\n"
        ),
    );
    let mut m = Manager::start_wrapped(&yaml, &["sh", "-c", CHROOT_WRAPPER], |d| {
        lay_out_chroot(d, &bin, &busybox, None, None);
    });
    m.wait_healthy("web", 1);
    let err = m.wait_stderr("by-name-1 failed its health check");
    assert!(
        err.lines()
            .any(|l| l.contains("by-name-1 failed its health check") && l.contains("localhost")),
        "{err}"
    );
    m.signal(nix::sys::signal::SIGTERM);
    assert_eq!(m.wait_exit(DEADLINE), 0, "{}", m.stderr());
}
