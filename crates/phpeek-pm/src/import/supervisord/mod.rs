//! supervisord's `[program:x]` sections → phpeek-pm processes.
//!
//! Mapped: `command` (split as supervisord's shlex does, no shell),
//! `numprocs` → `scale`, `directory`, `user`, `environment` (the
//! `[supervisord]` one too, under the program's own), `autostart`
//! (`false` → `scale: 0`), `autorestart` (`true`/`false`/`unexpected` →
//! `always`/`never`/`on-failure`), `startretries` →
//! `global.max_restart_attempts`, `stopsignal`, `stopwaitsecs`, `priority`
//! → `depends_on` on the next lower priority, and the expansions
//! `%(ENV_X)s` → `${X}`, `%(process_num)d` → `${PHPEEK_PM_INSTANCE_NUMBER}`,
//! `%(program_name)s`, `%(group_name)s`, `%(numprocs)d`, `%(here)s` (the
//! file's directory, resolved at import). Everything else becomes a
//! `# warning:` comment naming its line.

mod expand;
mod notes;
mod words;

use super::ini::{parse_ini, shorten, Entry, Section};
use super::{process_name, Draft, DraftProcess};
use expand::{Expand, ProgramVars};
use notes::{section_note, supervisord_key_note};
pub use words::{parse_environment, split_words};

/// An error: the line, and a message.
pub type LineError = (usize, String);

/// supervisord's default `stopwaitsecs`.
const STOPWAITSECS: u64 = 10;
/// supervisord's default `startretries`.
const STARTRETRIES: u32 = 3;
/// supervisord's default `priority`.
const PRIORITY: i64 = 999;

/// Converts the text of a supervisord config; `here` is its directory.
pub fn convert(text: &str, here: &str) -> Result<Draft, LineError> {
    let sections = parse_ini(text).map_err(|e| (e.line, e.message))?;
    let mut draft = Draft::default();
    let groups = collect_groups(&sections);
    let mut base_env: Vec<(String, String)> = Vec::new();
    let mut programs: Vec<Program> = Vec::new();
    for s in &sections {
        let (kind, rest) = s.name.split_once(':').unwrap_or((s.name.as_str(), ""));
        match kind {
            "supervisord" => {
                for e in &s.entries {
                    if e.key == "environment" {
                        let ctx = Expand::global(here);
                        for (k, v) in parse_environment(&e.value, e.line)? {
                            let v = ctx.expand(&v, e.line, &mut draft.header)?;
                            set_pair(&mut base_env, k, v);
                        }
                        draft.header.push(format!(
                            "note: line {}: [supervisord] environment is added to every process's env",
                            e.line
                        ));
                    } else {
                        draft.header.push(supervisord_key_note(e));
                    }
                }
            }
            "program" => {
                let group = groups
                    .iter()
                    .find(|(_, members, _)| members.iter().any(|m| m == rest))
                    .map(|(g, _, _)| g.clone())
                    .unwrap_or_else(|| rest.to_string());
                programs.push(convert_program(s, rest, &group, here)?);
            }
            "group" => {
                let members = s.get("programs").map(|e| e.value.as_str()).unwrap_or("");
                draft.header.push(format!(
                    "warning: line {}: [group:{rest}] (programs {}) is not mapped: phpeek-pm has no groups; \
                     address each process by its name",
                    s.line,
                    members.split(',').map(str::trim).collect::<Vec<_>>().join(", ")
                ));
                for e in s.entries.iter().filter(|e| e.key != "programs") {
                    draft.header.push(format!(
                        "warning: line {}: [group:{rest}] {} = {}: not mapped",
                        e.line,
                        e.key,
                        shorten(&e.value)
                    ));
                }
            }
            _ => draft.header.push(section_note(s, kind)),
        }
    }
    if programs.is_empty() {
        draft
            .header
            .push("warning: the file has no [program:x] section".to_string());
    }
    for p in &mut programs {
        let mut env = base_env.clone();
        for (k, v) in std::mem::take(&mut p.draft.env) {
            set_pair(&mut env, k, v);
        }
        p.draft.env = env;
    }
    order_by_priority(&mut programs);
    add_globals(&mut draft, &mut programs);
    draft.processes = programs.into_iter().map(|p| p.draft).collect();
    Ok(draft)
}

/// One converted program, with what ordering and globals still need.
struct Program {
    draft: DraftProcess,
    priority: i64,
    startretries: u32,
    starts: bool,
}

/// `[group:g] programs=a,b`: (g, [a, b], line).
fn collect_groups(sections: &[Section]) -> Vec<(String, Vec<String>, usize)> {
    sections
        .iter()
        .filter_map(|s| {
            let name = s.name.strip_prefix("group:")?;
            let members = s
                .get("programs")
                .map(|e| {
                    e.value
                        .split(',')
                        .map(|m| m.trim().to_string())
                        .filter(|m| !m.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            Some((name.to_string(), members, s.line))
        })
        .collect()
}

fn convert_program(
    s: &Section,
    source_name: &str,
    group: &str,
    here: &str,
) -> Result<Program, LineError> {
    let name = process_name(source_name).ok_or_else(|| {
        (
            s.line,
            format!("[program:{source_name}] has no name phpeek-pm can use"),
        )
    })?;
    let mut p = DraftProcess {
        name: name.clone(),
        ..DraftProcess::default()
    };
    if name != source_name {
        p.notes.push(format!(
            "warning: line {}: program `{source_name}` is named `{name}` (phpeek-pm names are [a-z0-9][a-z0-9_-]*)",
            s.line
        ));
    }
    let numprocs = match s.get("numprocs") {
        Some(e) => match e.value.parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err((
                    e.line,
                    format!(
                        "numprocs `{}` is not a whole number of at least 1",
                        shorten(&e.value)
                    ),
                ))
            }
        },
        None => 1,
    };
    let numprocs_start = match s.get("numprocs_start") {
        Some(e) => e.value.parse::<u32>().map_err(|_| {
            (
                e.line,
                format!(
                    "numprocs_start `{}` is not a whole number",
                    shorten(&e.value)
                ),
            )
        })?,
        None => 0,
    };
    let ctx = Expand {
        here: here.to_string(),
        program: Some(ProgramVars {
            program_name: source_name.to_string(),
            group_name: group.to_string(),
            numprocs,
            numprocs_start,
        }),
    };
    let mut starts = true;
    let mut priority = PRIORITY;
    let mut startretries = STARTRETRIES;
    p.scale = Some(numprocs);
    p.restart = Some("on-failure");
    if s.get("command").is_none() {
        return Err((s.line, format!("[program:{source_name}] has no command")));
    }
    for e in &s.entries {
        let line = e.line;
        match e.key.as_str() {
            "command" => {
                let words = split_words(&e.value).map_err(|m| (line, format!("command: {m}")))?;
                if words.is_empty() {
                    return Err((line, "command is empty".to_string()));
                }
                for w in words {
                    let w = ctx.expand(&w, line, &mut p.notes)?;
                    p.command.push(w);
                }
            }
            "numprocs" | "numprocs_start" => {}
            "process_name" => {
                if e.value != "%(program_name)s" {
                    p.notes.push(format!(
                        "warning: line {line}: process_name = {}: phpeek-pm names the instances {name}-1 … {name}-{numprocs}",
                        e.value
                    ));
                }
            }
            "directory" => p.working_dir = Some(ctx.expand(&e.value, line, &mut p.notes)?),
            "user" => p.user = Some(ctx.expand(&e.value, line, &mut p.notes)?),
            "environment" => {
                for (k, v) in parse_environment(&e.value, line)? {
                    let v = ctx.expand(&v, line, &mut p.notes)?;
                    set_pair(&mut p.env, k, v);
                }
            }
            "autostart" => {
                if !parse_bool(e)? {
                    starts = false;
                    p.scale = Some(0);
                    p.notes.push(format!(
                        "note: line {line}: autostart = false: scale 0 (`phpeek-pm scale {name} {numprocs}` starts it)"
                    ));
                }
            }
            "autorestart" => {
                p.restart = Some(match e.value.to_ascii_lowercase().as_str() {
                    "unexpected" => "on-failure",
                    v if bool_word(v) == Some(true) => "always",
                    v if bool_word(v) == Some(false) => "never",
                    _ => {
                        return Err((
                            line,
                            format!("autorestart `{}` is not true, false or unexpected", shorten(&e.value)),
                        ))
                    }
                })
            }
            "exitcodes" => {
                let codes: Vec<&str> = e.value.split(',').map(str::trim).collect();
                if codes != ["0"] {
                    p.notes.push(format!(
                        "warning: line {line}: exitcodes = {}: not mapped (phpeek-pm's on-failure expects exit code 0 only)",
                        e.value
                    ));
                }
            }
            "startretries" => {
                startretries = e.value.parse::<u32>().map_err(|_| {
                    (line, format!("startretries `{}` is not a whole number", shorten(&e.value)))
                })?;
            }
            "stopsignal" => {
                let upper = e.value.trim().to_ascii_uppercase();
                let sig = if upper.starts_with("SIG") {
                    upper
                } else {
                    format!("SIG{upper}")
                };
                phpeek_config::parse_signal(&sig)
                    .map_err(|m| (line, format!("stopsignal: {m}")))?;
                p.shutdown_signal = Some(sig);
            }
            "stopwaitsecs" => {
                p.shutdown_timeout = Some(e.value.parse::<u64>().map_err(|_| {
                    (line, format!("stopwaitsecs `{}` is not a whole number of seconds", shorten(&e.value)))
                })?);
            }
            "priority" => {
                priority = e.value.parse::<i64>().map_err(|_| {
                    (line, format!("priority `{}` is not a whole number", shorten(&e.value)))
                })?;
            }
            "stopasgroup" | "killasgroup" => {
                let kind = if parse_bool(e)? { "note" } else { "warning" };
                p.notes.push(format!(
                    "{kind}: line {line}: {} = {}: phpeek-pm always signals the instance's whole process group",
                    e.key, e.value
                ));
            }
            "redirect_stderr" => {
                if parse_bool(e)? {
                    p.notes.push(format!(
                        "warning: line {line}: redirect_stderr = true: not mapped (phpeek-pm keeps stderr on its own stderr)"
                    ));
                }
            }
            key if key.starts_with("stdout_") || key.starts_with("stderr_") => {
                p.notes.push(format!(
                    "warning: line {line}: {key} = {}: not mapped (phpeek-pm writes output to its own stdout/stderr \
                     and keeps recent lines for `phpeek-pm logs`)",
                    shorten(&e.value)
                ));
            }
            "startsecs" => p.notes.push(format!(
                "warning: line {line}: startsecs = {}: not mapped (an instance is running once spawned; \
                 add a health_check to wait for readiness)",
                e.value
            )),
            "umask" | "serverurl" | "stdin" => p.notes.push(format!(
                "warning: line {line}: {} = {}: not mapped (no phpeek-pm equivalent)",
                e.key,
                shorten(&e.value)
            )),
            _ => p.notes.push(format!(
                "warning: line {line}: {} = {}: not mapped (not a supervisord program key phpeek-pm knows)",
                e.key,
                shorten(&e.value)
            )),
        }
    }
    Ok(Program {
        draft: p,
        priority,
        startretries,
        starts,
    })
}

/// supervisord starts lower priorities first: each program depends on
/// every starting program of the next lower priority (phpeek-pm also waits
/// until those run).
fn order_by_priority(programs: &mut [Program]) {
    let mut levels: Vec<i64> = programs
        .iter()
        .filter(|p| p.starts)
        .map(|p| p.priority)
        .collect();
    levels.sort_unstable();
    levels.dedup();
    if levels.len() < 2 {
        return;
    }
    let names_at = |programs: &[Program], level: i64| -> Vec<String> {
        programs
            .iter()
            .filter(|p| p.starts && p.priority == level)
            .map(|p| p.draft.name.clone())
            .collect()
    };
    let mut deps_by_program: Vec<(usize, i64, Vec<String>)> = Vec::new();
    for (i, p) in programs.iter().enumerate() {
        let Some(lower) = levels.iter().rev().find(|l| **l < p.priority) else {
            continue;
        };
        deps_by_program.push((i, *lower, names_at(programs, *lower)));
    }
    for (i, lower, deps) in deps_by_program {
        let p = &mut programs[i];
        p.draft.notes.push(format!(
            "note: priority {} starts after priority {lower}: depends_on {} (phpeek-pm waits until they run)",
            p.priority,
            deps.join(", ")
        ));
        p.draft.depends_on = deps;
    }
}

/// `global:` keys from supervisord's defaults and `startretries`.
fn add_globals(draft: &mut Draft, programs: &mut [Program]) {
    if programs.is_empty() {
        return;
    }
    draft
        .global
        .push(("shutdown_timeout".into(), STOPWAITSECS.to_string()));
    draft.header.push(format!(
        "note: global.shutdown_timeout {STOPWAITSECS} is supervisord's default stopwaitsecs"
    ));
    let most = programs
        .iter()
        .map(|p| p.startretries)
        .max()
        .unwrap_or(STARTRETRIES);
    draft
        .global
        .push(("max_restart_attempts".into(), most.to_string()));
    draft.header.push(format!(
        "note: global.max_restart_attempts {most} is startretries (phpeek-pm counts restarts in a row, \
         reset once an instance stays up 10 s)"
    ));
    for p in programs.iter_mut().filter(|p| p.startretries != most) {
        p.draft.notes.push(format!(
            "warning: startretries = {}: phpeek-pm has one limit for all processes ({most})",
            p.startretries
        ));
    }
}

fn set_pair(pairs: &mut Vec<(String, String)>, k: String, v: String) {
    match pairs.iter_mut().find(|(key, _)| *key == k) {
        Some(slot) => slot.1 = v,
        None => pairs.push((k, v)),
    }
}

fn bool_word(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_bool(e: &Entry) -> Result<bool, LineError> {
    bool_word(&e.value).ok_or_else(|| {
        (
            e.line,
            format!("{} `{}` is not true or false", e.key, shorten(&e.value)),
        )
    })
}
