//! A Procfile (`name: command` per line, as foreman and honcho read it)
//! → phpeek-pm processes.
//!
//! Each command runs under `sh -c`, as foreman runs it, so `$VAR` and
//! shell syntax keep working (every `$` is written `$$` for phpeek-pm's
//! loader, and the shell sees it). foreman gives each process type a
//! `PORT` of 5000 + 100 × its position; here that is `port_base` with
//! `PORT=${PHPEEK_PM_INSTANCE_PORT}`, so instance 1 gets the same port and
//! further instances the next ones.

use super::ini::shorten;
use super::{literal, process_name, Draft, DraftProcess};

/// foreman's first port.
const BASE_PORT: u32 = 5000;
/// The highest first port that leaves room for a few instances.
const MAX_FIRST_PORT: u32 = 65_000;

/// Converts the text of a Procfile.
pub fn convert(text: &str) -> Result<Draft, (usize, String)> {
    let mut draft = Draft::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, command)) = trimmed.split_once(':') else {
            return Err((
                line,
                format!("`{}` is not `name: command`", shorten(trimmed)),
            ));
        };
        let source = name.trim();
        let command = command.trim();
        let well_formed = !source.is_empty()
            && source
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !well_formed {
            return Err((
                line,
                format!(
                    "`{}` is not a process type name (letters, digits, `_`, `-`)",
                    shorten(source)
                ),
            ));
        }
        if command.is_empty() {
            return Err((line, format!("`{source}` has no command")));
        }
        let Some(name) = process_name(source) else {
            return Err((line, format!("`{source}` has no name phpeek-pm can use")));
        };
        let index = u32::try_from(draft.processes.len()).unwrap_or(u32::MAX);
        let port = index
            .checked_mul(100)
            .and_then(|o| o.checked_add(BASE_PORT))
            .filter(|p| *p <= MAX_FIRST_PORT);
        let mut p = DraftProcess {
            name: name.clone(),
            command: vec!["sh".into(), "-c".into(), literal(command)],
            scale: Some(1),
            restart: Some("always"),
            ..DraftProcess::default()
        };
        match port {
            Some(port) => {
                p.env = vec![("PORT".into(), "${PHPEEK_PM_INSTANCE_PORT}".into())];
                p.port_base = Some(port - 1);
            }
            None => p.notes.push(format!(
                "warning: line {line}: foreman's PORT for this process would be above {MAX_FIRST_PORT}: not set"
            )),
        }
        if name != source {
            p.notes.push(format!(
                "warning: line {line}: `{source}` is named `{name}` (phpeek-pm names are [a-z0-9][a-z0-9_-]*)"
            ));
        }
        draft.processes.push(p);
    }
    draft.header.push(
        "note: a Procfile has no counts: each process has scale 1 (`phpeek-pm scale NAME N` for more)"
            .to_string(),
    );
    draft.header.push(
        "note: restart: always keeps each process up (foreman instead stops everything when one exits)"
            .to_string(),
    );
    if draft.processes.is_empty() {
        draft
            .header
            .push("warning: the Procfile defines no process".to_string());
    }
    Ok(draft)
}
