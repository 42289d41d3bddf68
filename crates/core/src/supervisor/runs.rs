//! One-shot tasks and scheduled runs in the supervisor (SPEC 11): what an
//! ended run becomes, the schedule's wakes and ticks, run requests, run
//! timeouts, and suspend/resume. The decisions are in `workloads/`.
//!
//! Invariants:
//! - A scheduled process has no standing instances: each run is an
//!   instance with the lowest free number, removed from the table (and
//!   recorded in the history) when its leader was reaped.
//! - A schedule has at most one pending wake, armed no further than
//!   `MAX_SLEEP` ahead; a suspended schedule has none.
//! - A completed or failed one-shot instance stays listed; it runs again
//!   only by request (start, restart, run) or a reload that changed it.
//! - A one-shot with `on_failure: shutdown` that fails for good shuts the
//!   manager down, which then exits with the task's exit code.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use phpeek_config::{Concurrency, OnFailure};
use phpeek_wire::{RunResult, RunTrigger};

use super::messages::{CommandError, InstanceRef, RunStarted, Timer, TimerKind};
use super::model::{Instance, Intent, Process, RunState};
use super::{Effects, Supervisor};
use crate::registry::ExitStatus;
use crate::snapshot::ScheduleSnap;
use crate::workloads::history::RunRecord;
use crate::workloads::oneshot::{decide_oneshot_end, OneshotDecision, OneshotEnd, OneshotOutcome};
use crate::workloads::schedule::{decide_tick, on_wake, sleep_for, TickAction, Wake};

fn to_utc(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

/// The schedule part of a process's snapshot.
pub(super) fn schedule_snap(p: &Process) -> Option<ScheduleSnap> {
    let (cfg, state) = (p.cfg.schedule.as_ref()?, p.schedule.as_ref()?);
    Some(ScheduleSnap {
        cron: cfg.cron.clone(),
        timezone: cfg.timezone.clone(),
        next_run: if state.suspended {
            None
        } else {
            state.next.map(SystemTime::from)
        },
        suspended: state.suspended,
        missed: state.missed,
    })
}

/// Runs going now, as records (one-shots and schedules).
pub(super) fn runs_going(p: &Process) -> Vec<RunRecord> {
    if !(p.is_scheduled() || p.cfg.is_oneshot()) {
        return Vec::new();
    }
    p.instances
        .values()
        .filter(|i| !i.is_down())
        .filter_map(|i| {
            Some(RunRecord {
                instance: Arc::clone(&i.name),
                started_at: i.started_at?,
                ended_at: None,
                exit_code: None,
                duration: None,
                trigger: i.trigger,
                result: RunResult::Running,
                lines: Vec::new(),
                ring: Some(Arc::clone(&i.ring)),
            })
        })
        .collect()
}

/// The record of a run that just ended.
fn finished_record(
    inst: &Instance,
    result: RunResult,
    code: Option<i32>,
    now: SystemTime,
) -> RunRecord {
    let started = inst.started_at.unwrap_or(now);
    RunRecord {
        instance: Arc::clone(&inst.name),
        started_at: started,
        ended_at: Some(now),
        exit_code: code,
        duration: Some(now.duration_since(started).unwrap_or(Duration::ZERO)),
        trigger: inst.trigger,
        result,
        lines: Vec::new(),
        ring: Some(Arc::clone(&inst.ring)),
    }
}

impl<E: Effects> Supervisor<E> {
    /// Applies the one-shot decision after a run ended on its own.
    pub(super) fn after_oneshot(&mut self, pname: &str, n: u32, end: OneshotEnd, why: String) {
        let backoff = self.backoff;
        let global_max = self.config.global.max_restart_attempts;
        let wall = self.fx.wall_clock();
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let max_attempts = p.cfg.max_restart_attempts.unwrap_or(global_max);
        let (policy, on_failure) = (p.cfg.restart, p.cfg.on_failure);
        let Some(inst) = p.instances.get_mut(&n) else {
            return;
        };
        inst.timer_gen += 1;
        let result = match end {
            OneshotEnd::Exited(Some(0)) => RunResult::Success,
            OneshotEnd::TimedOut => RunResult::Timeout,
            _ => RunResult::Failure,
        };
        if inst.started_at.is_some() && end != OneshotEnd::SpawnFailed {
            let record = finished_record(inst, result, inst.last_exit_code, wall);
            Arc::make_mut(&mut p.history).push(record);
        }
        let Some(inst) = p.instances.get_mut(&n) else {
            return;
        };
        let decision = decide_oneshot_end(OneshotOutcome {
            end,
            policy,
            attempts: inst.attempts,
            max_attempts,
            backoff,
        });
        match decision {
            OneshotDecision::Completed => {
                inst.run = RunState::Completed;
                inst.reason = None;
                tracing::info!(instance = %inst.name, "{} completed", inst.name);
            }
            OneshotDecision::Retry { attempts, delay } => {
                inst.attempts = attempts;
                inst.run = RunState::Backoff {
                    reason: crate::snapshot::RestartReason::Crash,
                };
                inst.reason = Some(format!(
                    "{why}; retrying in {}",
                    phpeek_config::format_duration(delay)
                ));
                let timer = Timer {
                    at: InstanceRef {
                        process: Arc::clone(&p.name),
                        number: n,
                    },
                    gen: inst.timer_gen,
                    kind: TimerKind::BackoffDone,
                };
                self.fx.start_timer(timer, delay);
            }
            OneshotDecision::Failed { gave_up } => {
                let why = match (end, gave_up) {
                    (OneshotEnd::TimedOut, _) => format!("{why}; stopped after its timeout"),
                    (_, true) => format!("{why}; gave up after {max_attempts} retries"),
                    _ => why,
                };
                tracing::error!(instance = %inst.name, "{} failed: {why}", inst.name);
                inst.run = RunState::Failed;
                inst.reason = Some(why);
                if on_failure == OnFailure::Shutdown && !self.shutting_down {
                    let code = match inst.last_exit_code {
                        Some(c) if c != 0 => c,
                        _ => 1,
                    };
                    tracing::error!(
                        "`{pname}` failed and has on_failure: shutdown; stopping everything (exit code {code})"
                    );
                    self.exit_override = Some(code);
                    self.begin_shutdown();
                }
            }
        }
    }

    /// Arms the `timeout` of a one-shot or scheduled run.
    pub(super) fn arm_run_timeout(&mut self, pname: &str, n: u32, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return;
        };
        let Some(p) = self.processes.get(pname) else {
            return;
        };
        let Some(inst) = p.instances.get(&n) else {
            return;
        };
        let timer = Timer {
            at: InstanceRef {
                process: Arc::clone(&p.name),
                number: n,
            },
            gen: inst.timer_gen,
            kind: TimerKind::RunTimeout,
        };
        self.fx.start_timer(timer, timeout);
    }

    /// A run went past its `timeout`: stop it (signal, then SIGKILL).
    pub(super) fn on_run_timeout(&mut self, pname: &str, n: u32) {
        let Some(inst) = self.instance_mut(pname, n) else {
            return;
        };
        if !matches!(inst.run, RunState::Running(_)) {
            return;
        }
        tracing::warn!(instance = %inst.name, "{} ran past its timeout; stopping it", inst.name);
        inst.timed_out = true;
        self.stop_instance(pname, n);
    }

    /// A scheduled run's leader was reaped (or it never started: `None`).
    pub(super) fn end_scheduled_run(
        &mut self,
        pname: &str,
        n: u32,
        status: Option<ExitStatus>,
        why: String,
    ) {
        let wall = self.fx.wall_clock();
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let Some(inst) = p.instances.remove(&n) else {
            return;
        };
        let result = match status {
            _ if inst.timed_out => RunResult::Timeout,
            Some(s) if s.success() => RunResult::Success,
            _ => RunResult::Failure,
        };
        if result != RunResult::Success {
            tracing::warn!(instance = %inst.name, "{} run ended: {why} ({})", inst.name, result.as_str());
        }
        let code = status.map(ExitStatus::as_code);
        Arc::make_mut(&mut p.history).push(finished_record(&inst, result, code, wall));
        self.after_run_ended(pname);
    }

    /// A run ended: a deferred tick (`forbid` + `starting_deadline`) or a
    /// replacing run may start now.
    fn after_run_ended(&mut self, pname: &str) {
        let now = to_utc(self.fx.wall_clock());
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        if p.runs_going() > 0 || self.shutting_down {
            return;
        }
        let Some(state) = p.schedule.as_mut() else {
            return;
        };
        if let Some(trigger) = state.replace_pending.take() {
            self.start_run(pname, trigger);
            return;
        }
        if let Some(until) = state.deferred_until.take() {
            if now <= until {
                self.start_run(pname, RunTrigger::Schedule);
            } else {
                state.missed += 1;
            }
        }
    }

    /// Arms every schedule at the manager's start.
    pub(super) fn arm_schedules(&mut self) {
        let names: Vec<Arc<str>> = self
            .processes
            .values()
            .filter(|p| p.is_scheduled())
            .map(|p| Arc::clone(&p.name))
            .collect();
        for name in names {
            self.rearm_schedule(&name);
        }
    }

    /// Computes the next tick from now and sleeps towards it.
    pub(super) fn rearm_schedule(&mut self, pname: &str) {
        let now = to_utc(self.fx.wall_clock());
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let Some(state) = p.schedule.as_mut() else {
            return;
        };
        state.gen += 1;
        state.last_wake = now;
        state.next = state.spec.as_ref().and_then(|s| s.next_after(now));
        if state.suspended || state.spec.is_none() {
            return;
        }
        let timer = Timer {
            at: InstanceRef {
                process: Arc::clone(&p.name),
                number: 0,
            },
            gen: state.gen,
            kind: TimerKind::ScheduleWake,
        };
        let delay = sleep_for(state.next, now);
        self.fx.start_timer(timer, delay);
    }

    /// `run_on_start` runs, once the gates allow.
    pub(super) fn start_due_runs(&mut self, pname: &str) {
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let gate_open = p.gate == super::model::DepGate::Open;
        let wants = p.cfg.enabled
            && !p.removed
            && gate_open
            && p.cfg.schedule.as_ref().is_some_and(|s| s.run_on_start);
        let Some(state) = p.schedule.as_mut() else {
            return;
        };
        if state.started || !wants || state.suspended {
            return;
        }
        state.started = true;
        self.tick(pname, RunTrigger::Start);
    }

    pub(super) fn on_schedule_wake(&mut self, pname: &str, gen: u64) {
        let now = to_utc(self.fx.wall_clock());
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let Some(state) = p.schedule.as_mut() else {
            return;
        };
        if state.gen != gen || state.suspended {
            return;
        }
        let Some(spec) = state.spec.as_ref() else {
            return;
        };
        let wake = on_wake(spec, state.next, state.last_wake, now);
        state.last_wake = now;
        let fire = match wake {
            Wake::Fire { missed, next } => {
                if missed > 0 {
                    tracing::warn!(
                        process = pname,
                        "`{pname}`: the clock jumped over {missed} ticks; running once"
                    );
                }
                state.missed += missed;
                state.next = next;
                true
            }
            Wake::Wait { next } => {
                state.next = next;
                false
            }
        };
        state.gen += 1;
        let timer = Timer {
            at: InstanceRef {
                process: Arc::clone(&p.name),
                number: 0,
            },
            gen: state.gen,
            kind: TimerKind::ScheduleWake,
        };
        self.fx.start_timer(timer, sleep_for(state.next, now));
        if fire {
            self.tick(pname, RunTrigger::Schedule);
        }
    }

    /// A tick of the schedule (or its `run_on_start`).
    fn tick(&mut self, pname: &str, trigger: RunTrigger) {
        let now = to_utc(self.fx.wall_clock());
        let shutting_down = self.shutting_down;
        let Some(p) = self.processes.get_mut(pname) else {
            return;
        };
        let Some(cfg) = p.cfg.schedule.clone() else {
            return;
        };
        let going = p.runs_going();
        let Some(state) = p.schedule.as_mut() else {
            return;
        };
        if shutting_down || !p.cfg.enabled || p.gate != super::model::DepGate::Open {
            state.missed += 1;
            return;
        }
        match decide_tick(
            cfg.concurrency,
            going,
            cfg.max_concurrent,
            cfg.starting_deadline,
        ) {
            TickAction::Start => {
                self.start_run(pname, trigger);
            }
            TickAction::Skip => {
                state.missed += 1;
                tracing::info!(
                    process = pname,
                    "`{pname}`: a run is still going; tick skipped"
                );
            }
            TickAction::Defer => {
                if state.deferred_until.is_some() {
                    state.missed += 1;
                }
                let deadline =
                    chrono::Duration::from_std(cfg.starting_deadline).unwrap_or_default();
                state.deferred_until = Some(now + deadline);
            }
            TickAction::Replace => {
                state.replace_pending = Some(trigger);
                self.stop_runs(pname);
            }
        }
    }

    /// Starts one run with the lowest free number.
    fn start_run(&mut self, pname: &str, trigger: RunTrigger) -> Option<String> {
        let p = self.processes.get_mut(pname)?;
        let n = p.free_number();
        let mut inst = p.new_instance(n);
        inst.trigger = trigger;
        let name = inst.name.to_string();
        p.instances.insert(n, inst);
        tracing::info!(
            process = pname,
            "`{pname}`: starting run {name} ({})",
            trigger.as_str()
        );
        self.spawn_instance(pname, n);
        Some(name)
    }

    /// Stops every run going (they leave the table when reaped).
    fn stop_runs(&mut self, pname: &str) {
        let numbers: Vec<u32> = self
            .processes
            .get(pname)
            .map(|p| p.instances.keys().copied().collect())
            .unwrap_or_default();
        for n in numbers {
            if let Some(inst) = self.instance_mut(pname, n) {
                inst.intent = Intent::Remove;
            }
            self.stop_instance(pname, n);
        }
    }

    /// `stop` on a scheduled process: suspend and stop the runs.
    pub(super) fn suspend_schedule(&mut self, pname: &str) {
        if let Some(state) = self
            .processes
            .get_mut(pname)
            .and_then(|p| p.schedule.as_mut())
        {
            state.suspended = true;
            state.gen += 1;
            state.deferred_until = None;
            state.replace_pending = None;
            tracing::info!(process = pname, "`{pname}`: schedule suspended");
        }
        self.stop_runs(pname);
    }

    /// `start` on a scheduled process: resume.
    pub(super) fn resume_schedule(&mut self, pname: &str) {
        let Some(state) = self
            .processes
            .get_mut(pname)
            .and_then(|p| p.schedule.as_mut())
        else {
            return;
        };
        if state.suspended {
            state.suspended = false;
            tracing::info!(process = pname, "`{pname}`: schedule resumed");
        }
        self.rearm_schedule(pname);
    }

    /// A reload changed a one-shot's definition: its instance runs again
    /// (after the current run, if one is going).
    pub(super) fn rerun_oneshot(&mut self, pname: &str, n: u32) {
        let Some(inst) = self.instance_mut(pname, n) else {
            return;
        };
        inst.upgrade = true;
        inst.attempts = 0;
        inst.trigger = RunTrigger::Manual;
        if inst.is_down() {
            inst.intent = Intent::Run;
            inst.timer_gen += 1;
            self.spawn_instance(pname, n);
        } else {
            self.restart_instance(pname, n);
        }
    }

    /// `POST …/run`: a scheduled process runs now (within its
    /// concurrency); a one-shot runs every instance again.
    pub(super) fn apply_run(&mut self, name: &str) -> Result<RunStarted, CommandError> {
        let Some(p) = self.processes.get(name) else {
            return Err(CommandError::NotFound(format!("no process named `{name}`")));
        };
        if !p.cfg.enabled {
            return Err(CommandError::BadRequest(format!(
                "process `{name}` is disabled in the config"
            )));
        }
        if let Some(cfg) = p.cfg.schedule.clone() {
            if p.gate != super::model::DepGate::Open {
                return Err(CommandError::Conflict(format!(
                    "`{name}` is waiting for its dependencies"
                )));
            }
            let going = p.runs_going();
            let instances =
                match decide_tick(cfg.concurrency, going, cfg.max_concurrent, Duration::ZERO) {
                    TickAction::Start => self
                        .start_run(name, RunTrigger::Manual)
                        .into_iter()
                        .collect(),
                    TickAction::Replace => {
                        if let Some(state) = self
                            .processes
                            .get_mut(name)
                            .and_then(|p| p.schedule.as_mut())
                        {
                            state.replace_pending = Some(RunTrigger::Manual);
                        }
                        self.stop_runs(name);
                        Vec::new()
                    }
                    TickAction::Skip | TickAction::Defer => {
                        let why = match cfg.concurrency {
                            Concurrency::Allow => format!(
                                "`{name}` already has {going} runs going (max_concurrent: {})",
                                cfg.max_concurrent
                            ),
                            _ => format!("a run of `{name}` is going (concurrency: forbid)"),
                        };
                        return Err(CommandError::Conflict(why));
                    }
                };
            return Ok(RunStarted {
                process: name.to_string(),
                instances,
            });
        }
        if !p.cfg.is_oneshot() {
            return Err(CommandError::BadRequest(format!(
                "`{name}` is a long-running process: use start or restart"
            )));
        }
        if p.runs_going() > 0 {
            return Err(CommandError::Conflict(format!("`{name}` is running")));
        }
        let numbers: Vec<u32> = p.instances.keys().copied().collect();
        let mut instances = Vec::new();
        for n in numbers {
            if let Some(inst) = self.instance_mut(name, n) {
                inst.intent = Intent::Run;
                inst.attempts = 0;
                inst.timer_gen += 1;
                inst.trigger = RunTrigger::Manual;
                inst.upgrade = true;
                instances.push(inst.name.to_string());
            }
            self.spawn_instance(name, n);
        }
        Ok(RunStarted {
            process: name.to_string(),
            instances,
        })
    }
}
