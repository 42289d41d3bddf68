//! The only way phpeek-pm makes processes.
//!
//! Spawns run on a few dedicated threads that live as long as the manager:
//! the parent-death signal of a child fires when the *thread* that forked it
//! ends, so a short-lived blocking thread would kill its children with it.
//! Every child leads its own session (so a signal to its group reaches its
//! whole tree), has stdin on /dev/null, inherits no descriptor of ours, gets
//! the manager's original file-descriptor limit back, and drops privileges
//! before `exec` when a user is configured.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::{Gid, Group, Uid, User};

use crate::registry::ChildRegistry;

/// Everything needed to start one child, prepared by the supervisor.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub argv: Vec<String>,
    pub env: Vec<(OsString, OsString)>,
    pub working_dir: Option<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub capture_stdout: bool,
    pub capture_stderr: bool,
}

/// A started child: its pid (also its process group and session id) and the
/// read ends of its output pipes.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// What the parent learnt before `fork` and the child needs after it; only
/// async-signal-safe work happens in the child.
#[derive(Debug, Clone, Copy)]
struct ChildSetup {
    nofile: Option<(u64, u64)>,
    parent: i32,
    parent_death: bool,
    ids: Option<(Uid, Gid)>,
}

/// The file-descriptor limit the manager started with, before it raised its
/// own soft limit (children get the original back).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub nofile: Option<(u64, u64)>,
}

impl Limits {
    /// Raises our soft `RLIMIT_NOFILE` to the hard limit (each instance costs
    /// two pipe descriptors) and remembers the original for children.
    pub fn raise_nofile() -> Limits {
        let original = getrlimit(Resource::RLIMIT_NOFILE).ok();
        if let Some((soft, hard)) = original {
            if soft < hard {
                let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
            }
        }
        Limits { nofile: original }
    }
}

/// Resolves `user`/`group` to ids (NSS lookups must not run after `fork`).
fn resolve_ids(user: Option<&str>, group: Option<&str>) -> io::Result<Option<(Uid, Gid)>> {
    let Some(user) = user else {
        if let Some(group) = group {
            let gid = resolve_group(group)?;
            return Ok(Some((Uid::current(), gid)));
        }
        return Ok(None);
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => {
            let uid = Uid::from_raw(n);
            let primary = User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.gid)
                .unwrap_or_else(|| Gid::from_raw(n));
            (uid, primary)
        }
        Err(_) => match User::from_name(user) {
            Ok(Some(u)) => (u.uid, u.gid),
            Ok(None) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("unknown user `{user}`"),
                ))
            }
            Err(e) => {
                return Err(io::Error::other(format!(
                    "cannot look up user `{user}`: {e}"
                )))
            }
        },
    };
    let gid = match group {
        Some(g) => resolve_group(g)?,
        None => primary,
    };
    Ok(Some((uid, gid)))
}

fn resolve_group(group: &str) -> io::Result<Gid> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    match Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("unknown group `{group}`"),
        )),
        Err(e) => Err(io::Error::other(format!(
            "cannot look up group `{group}`: {e}"
        ))),
    }
}

/// Runs in the child between `fork` and `exec`: async-signal-safe calls only.
fn prepare_child(setup: ChildSetup) -> io::Result<()> {
    nix::unistd::setsid().map_err(io::Error::from)?;
    if setup.parent_death {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .map_err(io::Error::from)?;
        // The manager died between fork and prctl: do not outlive it.
        if nix::unistd::getppid().as_raw() != setup.parent {
            return Err(io::Error::other("manager is gone"));
        }
    }
    if let Some((soft, hard)) = setup.nofile {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, soft, hard);
    }
    // Descriptors the manager inherited without close-on-exec must not leak.
    // SAFETY: close_range only marks descriptors; it touches no memory.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    if let Some((uid, gid)) = setup.ids {
        nix::unistd::setgroups(&[gid]).map_err(io::Error::from)?;
        nix::unistd::setgid(gid).map_err(io::Error::from)?;
        nix::unistd::setuid(uid).map_err(io::Error::from)?;
    }
    Ok(())
}

/// Starts one child. The caller must hold [`ChildRegistry::spawn_gate`].
pub fn spawn_child(spec: &SpawnSpec, limits: Limits) -> io::Result<Spawned> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    };
    if program.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty program name",
        ));
    }
    // A NUL inside an argument would make std fail later with a vaguer text.
    if spec
        .argv
        .iter()
        .any(|a| CString::new(a.as_bytes()).is_err())
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "command contains a NUL byte",
        ));
    }
    let ids = resolve_ids(spec.user.as_deref(), spec.group.as_deref())?;
    let me = std::process::id() as i32;
    let setup = ChildSetup {
        nofile: limits.nofile,
        parent: me,
        parent_death: me != 1,
        ids,
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(if spec.capture_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(if spec.capture_stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    if let Some(dir) = &spec.working_dir {
        cmd.current_dir(dir);
    }
    // SAFETY: prepare_child only makes async-signal-safe system calls and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || prepare_child(setup));
    }
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    // The Child handle is dropped without waiting: the reaper owns the exit.
    drop(child);
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}

/// A job for the spawner threads: spawn, then report through `done` while
/// still holding the gate.
pub struct SpawnJob {
    pub spec: SpawnSpec,
    pub done: Box<dyn FnOnce(io::Result<Spawned>) + Send>,
}

/// Dedicated long-lived spawner threads fed by a queue.
#[derive(Clone)]
pub struct Spawner {
    tx: std::sync::mpsc::Sender<SpawnJob>,
}

impl Spawner {
    pub fn start(
        registry: Arc<ChildRegistry>,
        limits: Limits,
        threads: usize,
    ) -> io::Result<Spawner> {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnJob>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let registry = Arc::clone(&registry);
            std::thread::Builder::new()
                .name(format!("spawner-{i}"))
                .spawn(move || loop {
                    let job = {
                        let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
                        guard.recv()
                    };
                    let Ok(job) = job else { return };
                    let gate = registry.spawn_gate();
                    let result = spawn_child(&job.spec, limits);
                    (job.done)(result);
                    drop(gate);
                })?;
        }
        Ok(Spawner { tx })
    }

    pub fn submit(&self, job: SpawnJob) -> Result<(), Box<SpawnJob>> {
        self.tx.send(job).map_err(|e| Box::new(e.0))
    }
}
