//! Client commands for one-shots and schedules (SPEC 11): `run`, `runs`,
//! and the schedule and one-shot lines under `status`.

use std::time::{SystemTime, UNIX_EPOCH};

use phpeek_wire::{ProcessInfo, RunInfo, RunResponse};
use serde_json::Value;

use crate::client::{Client, Failure};

/// `phpeek-pm run NAME`.
pub async fn run(client: &Client, name: &str) -> Result<(), Failure> {
    let answer: RunResponse = client.post(&format!("/processes/{name}/run"), None).await?;
    if answer.instances.is_empty() {
        println!(
            "{}: {} (once the running one stopped)",
            answer.process, answer.message
        );
    } else {
        println!(
            "{}: {} ({})",
            answer.process,
            answer.message,
            answer.instances.join(", ")
        );
    }
    Ok(())
}

/// `phpeek-pm runs NAME [--json]`.
pub async fn runs(client: &Client, name: &str, json: bool) -> Result<(), Failure> {
    if json {
        let list: Value = client.get(&format!("/processes/{name}/runs")).await?;
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return Ok(());
    }
    let list: Vec<RunInfo> = client.get(&format!("/processes/{name}/runs")).await?;
    if list.is_empty() {
        println!("no runs yet");
    } else {
        print!("{}", runs_table(&list, SystemTime::now()));
    }
    Ok(())
}

fn when(unix: i64, now: SystemTime) -> String {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let d = now - unix;
    let (n, future) = if d >= 0 { (d, false) } else { (-d, true) };
    let text = if n < 120 {
        format!("{n}s")
    } else if n < 7200 {
        format!("{}m", n / 60)
    } else if n < 172_800 {
        format!("{}h", n / 3600)
    } else {
        format!("{}d", n / 86_400)
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths.iter())
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

pub fn runs_table(list: &[RunInfo], now: SystemTime) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                r.instance.clone(),
                when(r.started_at, now),
                r.duration_ms
                    .map_or("-".into(), |ms| format!("{:.3}s", ms as f64 / 1000.0)),
                r.exit_code.map_or("-".into(), |c| c.to_string()),
                r.result.as_str().to_string(),
                r.trigger.as_str().to_string(),
                r.lines.last().cloned().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "INSTANCE",
            "STARTED",
            "DURATION",
            "EXIT",
            "RESULT",
            "TRIGGER",
            "LAST LINE",
        ],
        &rows,
    )
}

/// The lines `status` adds under the instance table: schedules (next
/// run, last result) and one-shots (their results).
pub fn summary(processes: &[ProcessInfo], now: SystemTime) -> String {
    let mut out = String::new();
    let schedules: Vec<Vec<String>> = processes
        .iter()
        .filter_map(|p| {
            let s = p.schedule.as_ref()?;
            let next = match (s.suspended, s.next_run) {
                (true, _) => "suspended".to_string(),
                (false, Some(t)) => when(t, now),
                (false, None) => "-".to_string(),
            };
            let last = s.last_run.as_ref().map_or("-".to_string(), |r| {
                let result = match (r.ended_at, r.exit_code) {
                    (None, _) => "running".to_string(),
                    (Some(_), Some(0)) => "ok".to_string(),
                    (Some(_), Some(c)) => format!("exit {c}"),
                    (Some(_), None) => "failed".to_string(),
                };
                format!("{result} ({})", when(r.started_at, now))
            });
            Some(vec![
                p.name.clone(),
                s.cron.clone(),
                s.timezone.clone(),
                next,
                last,
                s.running.to_string(),
                s.missed.to_string(),
            ])
        })
        .collect();
    if !schedules.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &[
                "SCHEDULE", "CRON", "ZONE", "NEXT RUN", "LAST RUN", "RUNNING", "MISSED",
            ],
            &schedules,
        ));
    }
    let oneshots: Vec<Vec<String>> = processes
        .iter()
        .filter(|p| p.kind == "oneshot")
        .map(|p| {
            let codes: Vec<String> = p
                .instances
                .iter()
                .map(|i| {
                    format!(
                        "{}={}",
                        i.name,
                        i.last_exit_code.map_or("-".into(), |c| c.to_string())
                    )
                })
                .collect();
            vec![
                p.name.clone(),
                format!("{:?}", p.state).to_lowercase(),
                codes.join(" "),
                p.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    if !oneshots.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &["ONE-SHOT", "STATE", "EXIT CODES", "REASON"],
            &oneshots,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use phpeek_wire::{LastRun, ProcessState, RunResult, RunTrigger, ScheduleInfo};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(secs)
    }

    #[test]
    fn run_table_lists_each_run() {
        let list = vec![RunInfo {
            instance: "report-1".into(),
            started_at: 1000,
            ended_at: Some(1002),
            exit_code: Some(0),
            duration_ms: Some(2000),
            trigger: RunTrigger::Schedule,
            result: RunResult::Success,
            lines: vec!["done".into()],
        }];
        let t = runs_table(&list, at(1060));
        assert!(t.starts_with("INSTANCE"), "{t}");
        assert!(t.contains("report-1  60s ago"), "{t}");
        assert!(
            t.contains("2.000s") && t.contains("success") && t.contains("done"),
            "{t}"
        );
    }

    #[test]
    fn summary_shows_next_and_last_runs() {
        let p = ProcessInfo {
            name: "scheduler".into(),
            scale: 0,
            desired: 0,
            current: 0,
            state: ProcessState::Scheduled,
            restart: "never".into(),
            enabled: true,
            reason: None,
            rollout: None,
            kind: "longrun".into(),
            schedule: Some(ScheduleInfo {
                cron: "* * * * *".into(),
                timezone: "UTC".into(),
                next_run: Some(1090),
                suspended: false,
                running: 0,
                missed: 2,
                last_run: Some(LastRun {
                    started_at: 1030,
                    ended_at: Some(1031),
                    exit_code: Some(3),
                    duration_ms: Some(1000),
                    trigger: RunTrigger::Schedule,
                }),
            }),
            autoscale: None,
            instances: Vec::new(),
        };
        let s = summary(&[p], at(1060));
        assert!(s.contains("scheduler  * * * * *  UTC   in 30s"), "{s}");
        assert!(s.contains("exit 3 (30s ago)"), "{s}");
    }
}
