//! Waiting for conditions: a generic poll with a deadline, and typed
//! predicates over the API's wire types.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::time::{Duration, Instant};

use phpeek_wire::{Health, InstanceInfo, InstanceState, ProcessInfo};
use serde::de::DeserializeOwned;

use super::{decode, pid_map, Manager};

/// Generous: tests must pass on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `cond` until it returns Some, or returns None once the deadline
/// has passed.
pub fn poll<T>(deadline: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` until it returns Some; panics once the deadline passes.
pub fn wait_for<T>(what: &str, deadline: Duration, cond: impl FnMut() -> Option<T>) -> T {
    poll(deadline, cond)
        .unwrap_or_else(|| panic!("timed out after {deadline:?} waiting for {what}"))
}

/// Waits until the file exists and `pred` accepts its content.
pub fn wait_file(path: &Path, pred: impl Fn(&str) -> bool) -> String {
    wait_for(
        &format!("{} to be written", path.display()),
        DEADLINE,
        || {
            let s = std::fs::read_to_string(path).ok()?;
            pred(&s).then_some(s)
        },
    )
}

impl Manager {
    /// Waits until `GET /api/v1/processes/{name}` (a process) satisfies
    /// `pred` and returns that answer.
    pub fn wait_process(
        &mut self,
        name: &str,
        pred: impl FnMut(&ProcessInfo) -> bool,
    ) -> ProcessInfo {
        let path = format!("/api/v1/processes/{name}");
        self.wait_answer(&path, pred)
    }

    /// Waits until `GET /api/v1/processes/{name}` (an instance) satisfies
    /// `pred` and returns that answer.
    pub fn wait_instance(
        &mut self,
        name: &str,
        pred: impl FnMut(&InstanceInfo) -> bool,
    ) -> InstanceInfo {
        let path = format!("/api/v1/processes/{name}");
        self.wait_answer(&path, pred)
    }

    /// Polls `GET path` until its decoded answer satisfies `pred`. A 404
    /// counts as "not there yet" (a loaded manager may answer before it
    /// lists every instance); any other status than 200 fails. The panic on
    /// timeout shows the last answer.
    fn wait_answer<T: DeserializeOwned + Debug>(
        &mut self,
        path: &str,
        mut pred: impl FnMut(&T) -> bool,
    ) -> T {
        let mut last = String::new();
        let found = poll(DEADLINE, || {
            let (status, body) = self.get(path);
            if status == 404 {
                last = format!("404 {body}");
                return None;
            }
            assert_eq!(status, 200, "GET {path}: {body}");
            let v: T = decode(&body);
            if pred(&v) {
                return Some(v);
            }
            last = format!("{v:#?}");
            None
        });
        found.unwrap_or_else(|| {
            panic!("timed out after {DEADLINE:?} waiting on GET {path}; last answer: {last}")
        })
    }

    /// Waits until `process` has exactly `n` instances, all in state
    /// running, and returns their pids by instance name. One listing per
    /// poll, so both counts come from the same snapshot.
    pub fn wait_running(&mut self, process: &str, n: usize) -> Vec<(String, i32)> {
        let prefix = format!("{process}-");
        wait_for(
            &format!("{n} running instances of {process}"),
            DEADLINE,
            || {
                let all = self.instances_of(process);
                let running: Vec<(String, i32)> = all
                    .iter()
                    .filter(|i| i.name.starts_with(&prefix))
                    .filter(|i| i.state == InstanceState::Running)
                    .filter_map(|i| Some((i.name.clone(), i.pid?)))
                    .collect();
                (running.len() == n && all.len() == n).then_some(running)
            },
        )
    }

    /// Waits until `process` has exactly `n` instances, all running and
    /// healthy, and returns their pids by instance name (from the same
    /// listing).
    pub fn wait_healthy(&mut self, process: &str, n: usize) -> BTreeMap<String, i32> {
        wait_for(
            &format!("{n} healthy instances of {process}"),
            DEADLINE,
            || {
                let list = self.instances_of(process);
                (list.len() == n
                    && list
                        .iter()
                        .all(|i| i.state == InstanceState::Running && i.health == Health::Healthy))
                .then(|| pid_map(list))
            },
        )
    }
}
