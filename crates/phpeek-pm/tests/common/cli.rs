//! Running the binary as a command-line tool, bounded by a deadline.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{bin, poll, DEADLINE};

/// The outcome of one run of the binary as a command-line tool.
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `phpeek-pm ARGS` in `dir` with `env` added and `env_remove` removed
/// from the inherited environment; waits (with a deadline) for it to exit
/// and kills it if it does not.
pub fn run_cli(args: &[&str], dir: &Path, env: &[(&str, &str)], env_remove: &[&str]) -> CliRun {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out_path = out_dir.path().join("out");
    let err_path = out_dir.path().join("err");
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for k in env_remove {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("spawn phpeek-pm");
    let Some(status) = poll(DEADLINE, || child.try_wait().unwrap()) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("phpeek-pm {args:?} did not exit within {DEADLINE:?}");
    };
    CliRun {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}
