//! A process's `health_check:` block.
//!
//! Invariants: a check is returned only when every key was accepted; a key
//! of another check type is an error, not ignored; a missing target
//! (`address`, `url`, `command`) is reported only when no given target was
//! already rejected.

use std::time::Duration;

use super::reader::{join, set, shorten, Ctx, Got};
use super::ProcMeta;
use crate::substitute::uses_port_without_default;
use crate::text::is_null_literal;
use crate::tree::{Entry, Node, Style, Value};
use crate::{HealthCheck, HealthCheckKind, HealthCheckType};

const HC_COMMON: &[&str] = &[
    "type",
    "initial_delay",
    "period",
    "timeout",
    "failure_threshold",
    "success_threshold",
];

/// The target keys of each check type.
fn keys_of(t: HealthCheckType) -> &'static [&'static str] {
    match t {
        HealthCheckType::Tcp => &["address"],
        HealthCheckType::Http => &["url", "expected_status"],
        HealthCheckType::Exec => &["command"],
    }
}

/// The check type a target key belongs to.
fn type_of_key(key: &str) -> Option<HealthCheckType> {
    HealthCheckType::NAMES
        .iter()
        .map(|&(_, t)| t)
        .find(|&t| keys_of(t).contains(&key))
}

/// An error was pushed to [`Ctx::errors`]; nothing more to report.
struct Reported;

/// The timing keys every check type shares, with their defaults.
struct Timing {
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    failure_threshold: u32,
    success_threshold: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            failure_threshold: 3,
            success_threshold: 1,
        }
    }
}

/// Where a target kind's readers report.
struct Section<'a> {
    node: &'a Node,
    entries: &'a [Entry],
    path: &'a str,
}

impl Section<'_> {
    /// The entries for `key` (more than one after a duplicate key, already
    /// reported; the last one wins).
    fn each<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s Entry> + 's {
        self.entries.iter().filter(move |e| e.key == key)
    }
}

pub(super) fn parse_health_check(
    node: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
    meta: &mut ProcMeta,
) -> Option<HealthCheck> {
    if let Value::Scalar {
        text,
        style: Style::Plain,
    } = &node.value
    {
        if is_null_literal(text) {
            return None;
        }
    }
    let entries = ctx.map(node, path)?;
    let section = Section {
        node,
        entries,
        path,
    };
    let kind = read_type(&section, ctx);
    let keys = check_keys(&section, kind, ctx);
    let timing = read_timing(&section, ctx);
    let target = match kind {
        Some(HealthCheckType::Tcp) => tcp_check(&section, ctx, meta),
        Some(HealthCheckType::Http) => http_check(&section, ctx, meta),
        Some(HealthCheckType::Exec) => exec_check(&section, ctx, meta),
        None => {
            // Still report what is wrong with the targets that were given.
            let _ = read_address(&section, ctx, meta);
            let _ = read_url(&section, ctx, meta);
            let _ = read_status(&section, ctx);
            let _ = read_command(&section, ctx, meta);
            Err(Reported)
        }
    };
    let (Ok(()), Ok(t), Ok(kind)) = (keys, timing, target) else {
        return None;
    };
    Some(HealthCheck {
        kind,
        initial_delay: t.initial_delay,
        period: t.period,
        timeout: t.timeout,
        failure_threshold: t.failure_threshold,
        success_threshold: t.success_threshold,
    })
}

/// `tcp, http or exec`.
fn type_choices() -> String {
    let names: Vec<&str> = HealthCheckType::NAMES.iter().map(|(n, _)| *n).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// `type:`; `None` when missing or unknown (reported).
fn read_type(s: &Section<'_>, ctx: &mut Ctx<'_>) -> Option<HealthCheckType> {
    let tpath = join(s.path, "type");
    match s.entries.iter().find(|e| e.key == "type") {
        None => {
            ctx.err(
                &s.node.origin,
                &tpath,
                format!("missing `type`: expected {}", type_choices()),
            );
            None
        }
        Some(e) => ctx.choice(&e.value, &tpath, HealthCheckType::NAMES).val(),
    }
}

/// Unknown keys, and keys of another check type than `kind`.
fn check_keys(
    s: &Section<'_>,
    kind: Option<HealthCheckType>,
    ctx: &mut Ctx<'_>,
) -> Result<(), Reported> {
    let mut outcome = Ok(());
    for e in s.entries {
        let key = e.key.as_str();
        if HC_COMMON.contains(&key) {
            continue;
        }
        match (kind, type_of_key(key)) {
            (Some(t), Some(owner)) if !keys_of(t).contains(&key) => {
                ctx.err(
                    &e.key_origin,
                    &join(s.path, key),
                    format!("`{key}` is only used by `type: {owner}` checks"),
                );
                outcome = Err(Reported);
            }
            (_, Some(_)) => {}
            (_, None) => {
                let mut known: Vec<&str> = HC_COMMON.to_vec();
                match kind {
                    Some(t) => known.extend_from_slice(keys_of(t)),
                    None => {
                        for &(_, t) in HealthCheckType::NAMES {
                            known.extend_from_slice(keys_of(t));
                        }
                    }
                }
                ctx.unknown_key(e, s.path, &known, "");
                outcome = Err(Reported);
            }
        }
    }
    outcome
}

fn read_timing(s: &Section<'_>, ctx: &mut Ctx<'_>) -> Result<Timing, Reported> {
    let mut t = Timing::default();
    let mut outcome = Ok(());
    for e in s.entries {
        let kpath = join(s.path, &e.key);
        let n = &e.value;
        let key = e.key.as_str();
        match key {
            "initial_delay" => set(&mut t.initial_delay, ctx.duration(n, &kpath)),
            "period" | "timeout" => match ctx.duration(n, &kpath) {
                Got::Val(d) if d.is_zero() => {
                    ctx.err(&n.origin, &kpath, "must be more than 0");
                    outcome = Err(Reported);
                }
                Got::Val(d) if key == "period" => t.period = d,
                Got::Val(d) => t.timeout = d,
                Got::Bad => outcome = Err(Reported),
                Got::Null => {}
            },
            "failure_threshold" | "success_threshold" => match ctx.u32(n, &kpath, 1_000_000) {
                Got::Val(0) => {
                    ctx.err(&n.origin, &kpath, "must be at least 1");
                    outcome = Err(Reported);
                }
                Got::Val(v) if key == "failure_threshold" => t.failure_threshold = v,
                Got::Val(v) => t.success_threshold = v,
                Got::Bad => outcome = Err(Reported),
                Got::Null => {}
            },
            _ => {}
        }
    }
    outcome.map(|()| t)
}

/// "missing `key` for a … check"; always `Err`.
fn missing<T>(
    s: &Section<'_>,
    ctx: &mut Ctx<'_>,
    kind: HealthCheckType,
    key: &str,
    example: &str,
) -> Result<T, Reported> {
    ctx.err(
        &s.node.origin,
        &join(s.path, key),
        format!("missing `{key}` for a {kind} check, e.g. {example}"),
    );
    Err(Reported)
}

fn tcp_check(
    s: &Section<'_>,
    ctx: &mut Ctx<'_>,
    meta: &mut ProcMeta,
) -> Result<HealthCheckKind, Reported> {
    match read_address(s, ctx, meta)? {
        Some(address) => Ok(HealthCheckKind::Tcp { address }),
        None => missing(
            s,
            ctx,
            HealthCheckType::Tcp,
            "address",
            "address: \"127.0.0.1:8080\"",
        ),
    }
}

fn http_check(
    s: &Section<'_>,
    ctx: &mut Ctx<'_>,
    meta: &mut ProcMeta,
) -> Result<HealthCheckKind, Reported> {
    let url = read_url(s, ctx, meta);
    let status = read_status(s, ctx);
    match (url?, status) {
        (Some(url), Ok(expected_status)) => Ok(HealthCheckKind::Http {
            url,
            expected_status,
        }),
        (Some(_), Err(r)) => Err(r),
        (None, _) => missing(
            s,
            ctx,
            HealthCheckType::Http,
            "url",
            "url: \"http://127.0.0.1:8080/health\"",
        ),
    }
}

fn exec_check(
    s: &Section<'_>,
    ctx: &mut Ctx<'_>,
    meta: &mut ProcMeta,
) -> Result<HealthCheckKind, Reported> {
    match read_command(s, ctx, meta)? {
        Some(command) => Ok(HealthCheckKind::Exec { command }),
        None => missing(
            s,
            ctx,
            HealthCheckType::Exec,
            "command",
            "command: [\"php-fpm-healthcheck\"]",
        ),
    }
}

/// `address:`: `Ok(None)` when absent or null.
fn read_address(
    s: &Section<'_>,
    ctx: &mut Ctx<'_>,
    meta: &mut ProcMeta,
) -> Result<Option<String>, Reported> {
    let mut out = Ok(None);
    for e in s.each("address") {
        let kpath = join(s.path, &e.key);
        let n = &e.value;
        match ctx.string(n, &kpath) {
            Got::Val(a) if valid_address(&a) => {
                if uses_port_without_default(&a) {
                    meta.port_users.push((kpath.clone(), n.origin.clone()));
                }
                out = out.map(|_| Some(a));
            }
            Got::Val(a) => {
                ctx.err(
                    &n.origin,
                    &kpath,
                    format!(
                        "`{}` is not `host:port`, e.g. 127.0.0.1:${{PHPEEK_PM_INSTANCE_PORT}}",
                        shorten(&a)
                    ),
                );
                out = Err(Reported);
            }
            Got::Bad => out = Err(Reported),
            Got::Null => {}
        }
    }
    out
}

/// `url:`: `Ok(None)` when absent or null.
fn read_url(
    s: &Section<'_>,
    ctx: &mut Ctx<'_>,
    meta: &mut ProcMeta,
) -> Result<Option<String>, Reported> {
    let mut out = Ok(None);
    for e in s.each("url") {
        let kpath = join(s.path, &e.key);
        let n = &e.value;
        match ctx.string(n, &kpath) {
            Got::Val(u) => match check_url(&u) {
                Ok(()) => {
                    if uses_port_without_default(&u) {
                        meta.port_users.push((kpath.clone(), n.origin.clone()));
                    }
                    out = out.map(|_| Some(u));
                }
                Err(m) => {
                    ctx.err(&n.origin, &kpath, m);
                    out = Err(Reported);
                }
            },
            Got::Bad => out = Err(Reported),
            Got::Null => {}
        }
    }
    out
}

/// `expected_status:`: `Ok(None)` (any 2xx) when absent or null.
fn read_status(s: &Section<'_>, ctx: &mut Ctx<'_>) -> Result<Option<u16>, Reported> {
    let mut out = Ok(None);
    for e in s.each("expected_status") {
        let kpath = join(s.path, &e.key);
        let n = &e.value;
        match ctx.uint(n, &kpath, 999) {
            Got::Val(v) if (100..=599).contains(&v) => {
                out = out.map(|_| u16::try_from(v).ok());
            }
            Got::Val(v) => {
                ctx.err(
                    &n.origin,
                    &kpath,
                    format!("{v} is not an HTTP status (100 to 599)"),
                );
                out = Err(Reported);
            }
            Got::Bad => out = Err(Reported),
            Got::Null => {}
        }
    }
    out
}

/// The exec check's `command:`: `Ok(None)` when absent or null.
fn read_command(
    s: &Section<'_>,
    ctx: &mut Ctx<'_>,
    meta: &mut ProcMeta,
) -> Result<Option<Vec<String>>, Reported> {
    let mut out = Ok(None);
    for e in s.each("command") {
        let kpath = join(s.path, &e.key);
        let n = &e.value;
        match ctx.string_list(n, &kpath, "[\"php-fpm-healthcheck\"]") {
            Got::Val(c) if c.first().is_none_or(|a| a.trim().is_empty()) => {
                ctx.err(
                    &n.origin,
                    &kpath,
                    "is empty: give the program and its arguments",
                );
                out = Err(Reported);
            }
            Got::Val(c) => {
                if c.iter().any(|a| uses_port_without_default(a)) {
                    meta.port_users.push((kpath.clone(), n.origin.clone()));
                }
                out = out.map(|_| Some(c));
            }
            Got::Bad => out = Err(Reported),
            Got::Null => {}
        }
    }
    out
}

/// A port as written in a target: 1..=65535, or a `${…}` reference
/// (expanded per instance; the port_base cross check bounds it).
fn valid_port(port: &str) -> bool {
    port.contains("${")
        || (!port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0))
}

/// A host: no spaces; an IPv6 address only in brackets (`[::1]`).
fn valid_host(host: &str) -> bool {
    if host.is_empty() || host.contains(char::is_whitespace) {
        return false;
    }
    match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').is_some_and(|v6| {
            !v6.is_empty()
                && v6
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        }),
        None => !host.contains(':') || host.contains("${"),
    }
}

fn valid_address(a: &str) -> bool {
    let Some((host, port)) = a.rsplit_once(':') else {
        return false;
    };
    valid_host(host) && valid_port(port)
}

fn check_url(u: &str) -> Result<(), String> {
    if u.to_ascii_lowercase().starts_with("https://") {
        return Err(format!(
            "`{}`: https is not supported for health checks; use http://",
            shorten(u)
        ));
    }
    check_web_url(u, false, "http://127.0.0.1:8080/health")
}

/// An `http://` URL (and `https://` when `https`) with a valid host and,
/// if given, a valid port; `example` is shown in the errors.
pub(super) fn check_web_url(u: &str, https: bool, example: &str) -> Result<(), String> {
    let lower = u.to_ascii_lowercase();
    let scheme_len = if lower.starts_with("http://") {
        7
    } else if https && lower.starts_with("https://") {
        8
    } else {
        let what = if https { "an http(s)://" } else { "an http://" };
        return Err(format!(
            "`{}` is not {what} URL, e.g. {example}",
            shorten(u)
        ));
    };
    let rest = u.get(scheme_len..).unwrap_or("");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    check_authority(u, authority, example)
}

/// `[user[:password]@]host[:port]` of a URL `u` (for the messages).
pub(super) fn check_authority(u: &str, authority: &str, example: &str) -> Result<(), String> {
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((inner, tail)) => (format!("[{inner}]"), tail.strip_prefix(':')),
            None => (host_port.to_string(), None),
        },
        None => match host_port.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (host_port.to_string(), None),
        },
    };
    if host.is_empty() || authority.contains(char::is_whitespace) || !valid_host(&host) {
        return Err(format!(
            "`{}` has no valid host, e.g. {example}",
            shorten(u)
        ));
    }
    if let Some(port) = port {
        if !valid_port(port) {
            return Err(format!(
                "`{}` has port `{}`; a port is 1 to 65535",
                shorten(u),
                shorten(port)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_addresses() {
        assert!(check_url("http://127.0.0.1:8080/health").is_ok());
        assert!(check_url("HTTP://localhost").is_ok());
        assert!(check_url("http://[::1]:80/").is_ok());
        assert!(check_url("http://127.0.0.1:${PHPEEK_PM_INSTANCE_PORT}/h").is_ok());
        assert!(check_url("https://x").is_err());
        assert!(check_url("http:///path").is_err());
        assert!(check_url("http://").is_err());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("localhost:80").is_err());
        assert!(valid_address("127.0.0.1:80"));
        assert!(valid_address("[::1]:80"));
        assert!(valid_address("127.0.0.1:${PHPEEK_PM_INSTANCE_PORT}"));
        assert!(!valid_address("127.0.0.1"));
        assert!(!valid_address(":80"));
        assert!(!valid_address("host:99999"));
        assert!(!valid_address("host:http"));
        assert!(!valid_address("host:0"));
        assert!(!valid_address("::1:80"), "IPv6 needs brackets");
        assert!(!valid_address("[::1:80"));
        assert!(check_url("http://127.0.0.1:99999/").is_err());
        assert!(check_url("http://127.0.0.1:0/").is_err());
        assert!(check_url("http://127.0.0.1:/").is_err());
        assert!(check_url("http://[::1]:70000/").is_err());
        assert!(check_url("http://user:pw@host:8080/").is_ok());
        assert!(check_web_url("https://x:443/m", true, "").is_ok());
        assert!(check_web_url("HTTPS://x", true, "").is_ok());
        assert!(check_web_url("https://x:0/", true, "").is_err());
        assert!(check_web_url("ftp://x", true, "").is_err());
    }
}
