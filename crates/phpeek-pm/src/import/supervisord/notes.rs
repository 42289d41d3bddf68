//! The warnings for sections and `[supervisord]` keys that are not mapped.

use crate::import::ini::{shorten, Entry, Section};

pub(super) fn section_note(s: &Section, kind: &str) -> String {
    let why = match kind {
        "unix_http_server" | "inet_http_server" => {
            "phpeek-pm's API is set by global.api_host, api_port, api_socket and api_auth"
        }
        "supervisorctl" => "phpeek-pm's CLI finds the API from --api or the config",
        "rpcinterface" => "phpeek-pm's API is REST (see docs/api.md)",
        "include" => "included files are not followed; import each of them",
        "eventlistener" | "fcgi-program" => "phpeek-pm has no such kind of program",
        _ => "not a supervisord section phpeek-pm knows",
    };
    let keys: Vec<String> = s
        .entries
        .iter()
        .map(|e| format!("{} = {}", e.key, shorten(&e.value)))
        .collect();
    let keys = if keys.is_empty() {
        String::new()
    } else {
        format!(" (keys: {})", keys.join("; "))
    };
    format!(
        "warning: line {}: [{}] is not mapped: {why}{keys}",
        s.line, s.name
    )
}

pub(super) fn supervisord_key_note(e: &Entry) -> String {
    let why = match e.key.as_str() {
        "nodaemon" => {
            return format!(
            "note: line {}: [supervisord] nodaemon = {}: phpeek-pm always runs in the foreground",
            e.line, e.value
        )
        }
        "logfile" | "logfile_maxbytes" | "logfile_backups" | "loglevel" => {
            "phpeek-pm logs to stderr; see global.log_level and log_format"
        }
        "user" => "run phpeek-pm itself as that user, or set `user` per process",
        "pidfile" | "umask" | "minfds" | "minprocs" | "childlogdir" | "directory"
        | "identifier" | "nocleanup" | "strip_ansi" | "silent" => "no phpeek-pm equivalent",
        _ => "not a [supervisord] key phpeek-pm knows",
    };
    format!(
        "warning: line {}: [supervisord] {} = {}: not mapped ({why})",
        e.line,
        e.key,
        shorten(&e.value)
    )
}
