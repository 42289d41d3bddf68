//! `phpeek-pm import supervisord FILE` / `import procfile FILE`: another
//! manager's config, printed as an equivalent phpeek-pm YAML.
//!
//! Invariants:
//! - Every key of the source is either mapped or named in a `# warning:`
//!   comment (with its line); nothing is dropped silently.
//! - The output loads with phpeek-pm's own loader, and is deterministic:
//!   processes in source order, keys in a fixed order, every string quoted.
//! - A literal `$` of the source is written `$$`, so phpeek-pm's `${VAR}`
//!   substitution never changes what the source meant; only the source's
//!   own expansions (`%(ENV_X)s`, `%(process_num)d`) become `${…}`.
//! - A file that cannot be read is one error line naming the line.

mod ini;
pub mod procfile;
pub mod supervisord;

use std::fmt::Write as _;
use std::path::Path;

/// Why a source file could not be imported: `FILE:LINE: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ImportError {}

/// A phpeek-pm config under construction, with its warnings.
#[derive(Debug, Default)]
pub struct Draft {
    /// `# …` lines printed before `version:` (source, file-wide warnings).
    pub header: Vec<String>,
    /// `global:` keys and their already rendered values, in order.
    pub global: Vec<(String, String)>,
    pub processes: Vec<DraftProcess>,
}

/// One process of the output.
#[derive(Debug, Default)]
pub struct DraftProcess {
    pub name: String,
    /// `# …` lines at the top of the process.
    pub notes: Vec<String>,
    pub command: Vec<String>,
    pub scale: Option<u32>,
    pub restart: Option<&'static str>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub depends_on: Vec<String>,
    pub port_base: Option<u32>,
    pub shutdown_signal: Option<String>,
    pub shutdown_timeout: Option<u64>,
}

impl Draft {
    /// The YAML text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            let _ = writeln!(out, "# {}", one_line(line));
        }
        out.push_str("version: \"1.0\"\n");
        if !self.global.is_empty() {
            out.push_str("global:\n");
            for (k, v) in &self.global {
                let _ = writeln!(out, "  {k}: {v}");
            }
        }
        out.push_str("processes:");
        if self.processes.is_empty() {
            out.push_str(" {}");
        }
        out.push('\n');
        for p in &self.processes {
            let _ = writeln!(out, "  {}:", p.name);
            for line in &p.notes {
                let _ = writeln!(out, "    # {}", one_line(line));
            }
            let argv: Vec<String> = p.command.iter().map(|a| quote(a)).collect();
            let _ = writeln!(out, "    command: [{}]", argv.join(", "));
            if let Some(n) = p.scale {
                let _ = writeln!(out, "    scale: {n}");
            }
            if let Some(r) = p.restart {
                let _ = writeln!(out, "    restart: {r}");
            }
            if !p.env.is_empty() {
                out.push_str("    env:\n");
                for (k, v) in &p.env {
                    let _ = writeln!(out, "      {}: {}", quote(k), quote(v));
                }
            }
            if let Some(d) = &p.working_dir {
                let _ = writeln!(out, "    working_dir: {}", quote(d));
            }
            if let Some(u) = &p.user {
                let _ = writeln!(out, "    user: {}", quote(u));
            }
            if !p.depends_on.is_empty() {
                let deps: Vec<String> = p.depends_on.iter().map(|d| quote(d)).collect();
                let _ = writeln!(out, "    depends_on: [{}]", deps.join(", "));
            }
            if let Some(b) = p.port_base {
                let _ = writeln!(out, "    port_base: {b}");
            }
            if p.shutdown_signal.is_some() || p.shutdown_timeout.is_some() {
                out.push_str("    shutdown:\n");
                if let Some(s) = &p.shutdown_signal {
                    let _ = writeln!(out, "      signal: {s}");
                }
                if let Some(t) = p.shutdown_timeout {
                    let _ = writeln!(out, "      timeout: {t}");
                }
            }
        }
        out
    }

    /// How many `warning:` comments the output carries.
    pub fn warnings(&self) -> usize {
        self.header
            .iter()
            .chain(self.processes.iter().flat_map(|p| p.notes.iter()))
            .filter(|l| l.starts_with("warning:"))
            .count()
    }
}

/// A YAML double-quoted scalar (JSON's escapes are YAML's).
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// Comments cannot span lines.
fn one_line(s: &str) -> String {
    s.replace('\r', "").replace('\n', "\\n")
}

/// A literal text for phpeek-pm: every `$` doubled.
pub fn literal(s: &str) -> String {
    s.replace('$', "$$")
}

/// `Web.App` → `web-app`: a valid phpeek-pm process name, or None when
/// nothing of the name is left.
pub fn process_name(source: &str) -> Option<String> {
    let mut name: String = source
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while name.starts_with(['-', '_']) {
        name.remove(0);
    }
    (!name.is_empty()).then_some(name)
}

/// Gives each process a name no other process (or instance name) takes.
fn dedupe_names(processes: &mut [DraftProcess]) {
    let mut taken: Vec<String> = Vec::new();
    for p in processes.iter_mut() {
        if taken.contains(&p.name) {
            let base = p.name.clone();
            let mut n = 2;
            while taken.contains(&format!("{base}_{n}")) {
                n += 1;
            }
            p.name = format!("{base}_{n}");
            p.notes.push(format!(
                "warning: the name `{base}` is taken by an earlier process: renamed `{}`",
                p.name
            ));
        }
        taken.push(p.name.clone());
    }
}

/// Reads `path` (with its name for messages).
fn read_source(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|e| ImportError {
        file: path.display().to_string(),
        line: None,
        message: format!("cannot read: {e}"),
    })
}

/// Imports a supervisord config file.
pub fn import_supervisord(path: &Path) -> Result<Draft, ImportError> {
    let text = read_source(path)?;
    let here = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(".").to_path_buf());
    let mut draft =
        supervisord::convert(&text, &here.to_string_lossy()).map_err(|(line, message)| {
            ImportError {
                file: path.display().to_string(),
                line: Some(line),
                message,
            }
        })?;
    draft.header.insert(
        0,
        format!(
            "Imported from {} by `phpeek-pm import supervisord`.",
            file_name(path)
        ),
    );
    dedupe_names(&mut draft.processes);
    Ok(draft)
}

/// Imports a Procfile.
pub fn import_procfile(path: &Path) -> Result<Draft, ImportError> {
    let text = read_source(path)?;
    let mut draft = procfile::convert(&text).map_err(|(line, message)| ImportError {
        file: path.display().to_string(),
        line: Some(line),
        message,
    })?;
    draft.header.insert(
        0,
        format!(
            "Imported from {} by `phpeek-pm import procfile`.",
            file_name(path)
        ),
    );
    dedupe_names(&mut draft.processes);
    Ok(draft)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
