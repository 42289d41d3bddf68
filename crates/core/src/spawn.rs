//! The only way phpeek-pm makes processes.
//!
//! Spawns run on a few dedicated threads that live as long as the manager:
//! the parent-death signal of a child fires when the *thread* that created
//! it ends, so a short-lived blocking thread would kill its children with it.
//! Every child leads its own session (so a signal to its group reaches its
//! whole tree), has stdin on /dev/null, inherits no descriptor of ours, gets
//! the manager's original file-descriptor limit back, and drops privileges
//! before `exec` when a user is configured.
//!
//! Children are created the way `posix_spawn` does it: `clone` with
//! `CLONE_VM | CLONE_VFORK`, so the manager's memory is shared, not copied,
//! until the child calls `exec`. A `fork` of a manager with a thousand
//! instances would copy its page tables every time and make every thread of
//! the manager fault on its next writes; this keeps a spawn as cheap as for
//! a tiny process. The price is discipline in the child: it runs on its own
//! small stack, with every signal blocked, and only makes raw system calls.
//! Everything that allocates (argv, envp, the program's path, user ids) is
//! prepared by the parent first.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
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

/// Which step of the child's preparation failed (reported with the errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
enum Step {
    None = 0,
    Session = 1,
    ParentDeath = 2,
    ParentGone = 3,
    Stdio = 4,
    WorkingDir = 5,
    Groups = 6,
    Gid = 7,
    Uid = 8,
    Exec = 9,
}

impl Step {
    fn from_i32(v: i32) -> Step {
        match v {
            1 => Step::Session,
            2 => Step::ParentDeath,
            3 => Step::ParentGone,
            4 => Step::Stdio,
            5 => Step::WorkingDir,
            6 => Step::Groups,
            7 => Step::Gid,
            8 => Step::Uid,
            9 => Step::Exec,
            _ => Step::None,
        }
    }
}

/// What the child reads: raw pointers into memory the parent keeps alive
/// (the parent is suspended until the child has called `exec` or exited).
struct ChildArgs {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdio: [libc::c_int; 3],
    nofile: Option<(libc::rlim_t, libc::rlim_t)>,
    parent: libc::pid_t,
    parent_death: bool,
    ids: Option<(libc::uid_t, libc::gid_t)>,
    failed_step: AtomicI32,
    failed_errno: AtomicI32,
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// Runs in the child, on its own stack, sharing the parent's memory. Only
/// raw system calls: no allocation, no locks, no panics.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` the suspended parent keeps alive.
    let a = unsafe { &*(arg as *const ChildArgs) };
    let fail = |step: Step| -> libc::c_int {
        a.failed_errno.store(errno(), Ordering::SeqCst);
        a.failed_step.store(step as i32, Ordering::SeqCst);
        // SAFETY: leaving the child without running any parent code.
        unsafe { libc::_exit(127) }
    };
    // SAFETY: plain system calls on values prepared by the parent.
    unsafe {
        // Handlers installed by the manager must not run here, nor be
        // inherited; every signal starts at its default action.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        if libc::setsid() < 0 {
            return fail(Step::Session);
        }
        // The parent keeps all three descriptors above 2, so no dup2 here
        // can overwrite a source still to be copied.
        for (target, &fd) in a.stdio.iter().enumerate() {
            if libc::dup2(fd, target as libc::c_int) < 0 {
                return fail(Step::Stdio);
            }
        }
        if let Some((soft, hard)) = a.nofile {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        // Descriptors the manager inherited without close-on-exec must not
        // leak into the program (kernels before 5.11 lack close_range).
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        // Raw system calls: glibc's wrappers would synchronise the ids of
        // every thread of the (shared) manager process.
        if let Some((uid, gid)) = a.ids {
            if libc::syscall(
                libc::SYS_setgroups,
                1 as libc::c_long,
                &gid as *const libc::gid_t,
            ) < 0
            {
                return fail(Step::Groups);
            }
            if libc::syscall(libc::SYS_setresgid, gid, gid, gid) < 0 {
                return fail(Step::Gid);
            }
            if libc::syscall(libc::SYS_setresuid, uid, uid, uid) < 0 {
                return fail(Step::Uid);
            }
        }
        // After the switch, so a directory the user may not enter fails.
        if !a.cwd.is_null() && libc::chdir(a.cwd) < 0 {
            return fail(Step::WorkingDir);
        }
        // Last: changing ids clears the parent-death signal.
        if a.parent_death {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) < 0
            {
                return fail(Step::ParentDeath);
            }
            if libc::getppid() != a.parent {
                return fail(Step::ParentGone);
            }
        }
        let empty: libc::sigset_t = {
            let mut set = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            set
        };
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(a.path, a.argv, a.envp);
        fail(Step::Exec)
    }
}

/// Size of the stack the child runs on before `exec`.
const CHILD_STACK: usize = 64 * 1024;

thread_local! {
    static CHILD_STACK_MEM: std::cell::RefCell<Vec<u128>> =
        std::cell::RefCell::new(vec![0u128; CHILD_STACK / 16]);
}

fn cstring(what: &str, s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
        && nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// Finds the program like `execvp` would, with the child's `PATH`.
fn resolve_program(
    program: &str,
    env: &[(OsString, OsString)],
    cwd: Option<&Path>,
) -> io::Result<PathBuf> {
    if program.contains('/') {
        let path = match (Path::new(program).is_relative(), cwd) {
            (true, Some(dir)) => dir.join(program),
            _ => PathBuf::from(program),
        };
        if !path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("`{program}` does not exist"),
            ));
        }
        if !is_executable(&path) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("`{program}` is not an executable file"),
            ));
        }
        return Ok(PathBuf::from(program));
    }
    let search: OsString = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| {
            OsString::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        });
    for dir in std::env::split_paths(&search) {
        let candidate = dir.join(program);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "`{program}` not found in PATH ({})",
            search.to_string_lossy()
        ),
    ))
}

/// Moves a descriptor above 2 (when the manager was started with a closed
/// stdin/stdout/stderr, a new descriptor can land on 0..=2).
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: duplicating a descriptor we own.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just created and own.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

fn open_null(write: bool) -> io::Result<OwnedFd> {
    let flags = if write {
        libc::O_WRONLY
    } else {
        libc::O_RDONLY
    } | libc::O_CLOEXEC;
    // SAFETY: a constant, NUL-terminated path.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just opened and own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    Ok((r, w))
}

/// Starts one child. The caller must hold [`ChildRegistry::spawn_gate`]:
/// a child that fails before `exec` is reaped here, and nothing else may
/// reap it first.
pub fn spawn_child(spec: &SpawnSpec, limits: Limits) -> io::Result<Spawned> {
    let Some((program, _)) = spec.argv.split_first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    };
    if program.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty program name",
        ));
    }
    if let Some(dir) = &spec.working_dir {
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("working_dir `{}` is not a directory", dir.display()),
            ));
        }
    }
    let path = resolve_program(program, &spec.env, spec.working_dir.as_deref())?;
    let path_c = cstring("the program path", path.as_os_str().as_bytes())?;
    let argv_c = spec
        .argv
        .iter()
        .map(|a| cstring("an argument", a.as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let env_c = spec
        .env
        .iter()
        .map(|(k, v)| {
            let mut kv = Vec::with_capacity(k.len() + v.len() + 1);
            kv.extend_from_slice(k.as_bytes());
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring("an environment variable", &kv)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let cwd_c = match &spec.working_dir {
        Some(d) => Some(cstring("working_dir", d.as_os_str().as_bytes())?),
        None => None,
    };
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let ids = resolve_ids(spec.user.as_deref(), spec.group.as_deref())?;

    let stdin = above_stdio(open_null(false)?)?;
    let (out_r, out_w) = if spec.capture_stdout {
        let (r, w) = pipe()?;
        (Some(r), w)
    } else {
        (None, open_null(true)?)
    };
    let (err_r, err_w) = if spec.capture_stderr {
        let (r, w) = pipe()?;
        (Some(r), w)
    } else {
        (None, open_null(true)?)
    };
    let out_w = above_stdio(out_w)?;
    let err_w = above_stdio(err_w)?;
    let me = std::process::id() as libc::pid_t;
    let args = ChildArgs {
        path: path_c.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: cwd_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
        stdio: [stdin.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
        nofile: limits.nofile,
        parent: me,
        parent_death: me != 1,
        ids: ids.map(|(u, g)| (u.as_raw(), g.as_raw())),
        failed_step: AtomicI32::new(0),
        failed_errno: AtomicI32::new(0),
    };

    let pid = CHILD_STACK_MEM.with(|cell| {
        let mut stack = cell.borrow_mut();
        let top = stack.as_mut_ptr_range().end as *mut libc::c_void;
        // SAFETY: signals are blocked around the clone so no handler runs
        // in the child on the shared memory; the child only reads `args`
        // and runs on `stack`, both alive until it has exec'd or exited,
        // which CLONE_VFORK waits for.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let pid = libc::clone(
                child_main,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                &args as *const ChildArgs as *mut libc::c_void,
            );
            let clone_errno = errno();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            if pid < 0 {
                Err(io::Error::from_raw_os_error(clone_errno))
            } else {
                Ok(pid)
            }
        }
    })?;
    drop((stdin, out_w, err_w));

    let step = Step::from_i32(args.failed_step.load(Ordering::SeqCst));
    if step != Step::None {
        // The child exited before exec; collect it (the gate keeps the
        // reaper away from this pid).
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        let cause = io::Error::from_raw_os_error(args.failed_errno.load(Ordering::SeqCst));
        let what = match step {
            Step::Session => "cannot start a session".to_string(),
            Step::ParentDeath | Step::ParentGone => {
                "cannot tie the child to the manager".to_string()
            }
            Step::Stdio => "cannot set up stdin/stdout/stderr".to_string(),
            Step::WorkingDir => format!(
                "cannot enter working_dir `{}`",
                spec.working_dir
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
            ),
            Step::Groups | Step::Gid => format!(
                "cannot switch to group `{}`",
                spec.group
                    .as_deref()
                    .or(spec.user.as_deref())
                    .unwrap_or("?")
            ),
            Step::Uid => format!(
                "cannot switch to user `{}`",
                spec.user.as_deref().unwrap_or("?")
            ),
            Step::Exec => format!("cannot execute `{}`", path.display()),
            Step::None => "cannot start".to_string(),
        };
        return Err(io::Error::new(cause.kind(), format!("{what}: {cause}")));
    }
    Ok(Spawned {
        pid,
        stdout: out_r,
        stderr: err_r,
    })
}

/// A job for the spawner threads: spawn, then report through `done` while
/// still holding the gate.
pub struct SpawnJob {
    pub spec: SpawnSpec,
    pub done: Box<dyn FnOnce(io::Result<Spawned>) + Send>,
}

/// Dedicated long-lived spawner threads fed by a queue. They never end
/// while the manager runs: the parent-death signal a child may ask for
/// (`parent_death`) fires when the *thread* that created it ends, so a
/// pool that let idle threads go would SIGKILL their children (tried for
/// issue 13, to have fewer threads to stop on the way out).
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
