//! supervisord's `%(name)s` expansions.

use super::LineError;
use crate::import::ini::shorten;
use crate::import::literal;

/// What `%(name)s` can name in one program.
pub(super) struct ProgramVars {
    pub(super) program_name: String,
    pub(super) group_name: String,
    pub(super) numprocs: u32,
    pub(super) numprocs_start: u32,
}

/// supervisord's `%(…)s` expansions, into phpeek-pm text.
pub(super) struct Expand {
    pub(super) here: String,
    pub(super) program: Option<ProgramVars>,
}

impl Expand {
    pub(super) fn global(here: &str) -> Expand {
        Expand {
            here: here.to_string(),
            program: None,
        }
    }

    /// `s` with every expansion replaced and every literal `$` doubled.
    pub(super) fn expand(
        &self,
        s: &str,
        line: usize,
        notes: &mut Vec<String>,
    ) -> Result<String, LineError> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(at) = rest.find('%') {
            out.push_str(&literal(&rest[..at]));
            let after = &rest[at + 1..];
            if let Some(tail) = after.strip_prefix('%') {
                out.push('%');
                rest = tail;
                continue;
            }
            let Some(inner) = after.strip_prefix('(') else {
                return Err((
                    line,
                    format!("`%` must be written `%%` or start an expansion like `%(ENV_HOME)s` in `{}`", shorten(s)),
                ));
            };
            let Some(close) = inner.find(')') else {
                return Err((
                    line,
                    format!("an expansion is not closed in `{}`", shorten(s)),
                ));
            };
            let name = &inner[..close];
            let spec_and_rest = &inner[close + 1..];
            let spec_len = spec_and_rest
                .find(|c: char| c.is_ascii_alphabetic())
                .ok_or_else(|| {
                    (
                        line,
                        format!("`%({name})` needs a conversion such as `s` or `d`"),
                    )
                })?;
            let flags = &spec_and_rest[..spec_len];
            let conv = spec_and_rest[spec_len..].chars().next().unwrap_or('s');
            if !flags
                .chars()
                .all(|c| c.is_ascii_digit() || "#0- +.".contains(c))
            {
                return Err((
                    line,
                    format!("`%({name}){flags}{conv}` is not a valid expansion"),
                ));
            }
            rest = &spec_and_rest[spec_len + conv.len_utf8()..];
            out.push_str(&self.value_of(name, flags, line, notes)?);
        }
        out.push_str(&literal(rest));
        Ok(out)
    }

    fn value_of(
        &self,
        name: &str,
        flags: &str,
        line: usize,
        notes: &mut Vec<String>,
    ) -> Result<String, LineError> {
        if let Some(var) = name.strip_prefix("ENV_") {
            return Ok(format!("${{{var}}}"));
        }
        if name == "here" {
            return Ok(literal(&self.here));
        }
        let unknown = || (line, format!("`%({name})s` cannot be expanded here"));
        let Some(p) = &self.program else {
            return Err(unknown());
        };
        Ok(match name {
            "program_name" => literal(&p.program_name),
            "group_name" => literal(&p.group_name),
            "numprocs" => p.numprocs.to_string(),
            "process_num" => {
                if !flags.is_empty() {
                    notes.push(format!(
                        "warning: line {line}: %(process_num){flags}d is written without its padding"
                    ));
                }
                if p.numprocs_start != 1 {
                    notes.push(format!(
                        "warning: line {line}: supervisord numbers from numprocs_start = {}, phpeek-pm instances from 1: \
                         ${{PHPEEK_PM_INSTANCE_NUMBER}} differs by {}",
                        p.numprocs_start,
                        1i64 - i64::from(p.numprocs_start)
                    ));
                }
                "${PHPEEK_PM_INSTANCE_NUMBER}".to_string()
            }
            "process_name" => {
                notes.push(format!(
                    "warning: line {line}: %(process_name)s is the instance name ${{PHPEEK_PM_INSTANCE_ID}} ({}-N)",
                    p.program_name
                ));
                "${PHPEEK_PM_INSTANCE_ID}".to_string()
            }
            "host_node_name" => {
                notes.push(format!(
                    "warning: line {line}: %(host_node_name)s is written ${{HOSTNAME}} (set in containers)"
                ));
                "${HOSTNAME}".to_string()
            }
            _ => return Err(unknown()),
        })
    }
}
