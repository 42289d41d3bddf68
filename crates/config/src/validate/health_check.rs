//! A process's `health_check:` block.
//!
//! Invariants: a check is returned only when every key was accepted; a key
//! of another check type is an error, not ignored; a missing target
//! (`address`, `url`, `command`) is reported only when no given target was
//! already rejected.

use std::time::Duration;

use super::reader::{is_null, join, set, shorten, Ctx, Got};
use super::ProcMeta;
use crate::substitute::uses_port_without_default;
use crate::tree::{Node, Style, Value};
use crate::{HealthCheck, HealthCheckKind};

const HC_COMMON: &[&str] = &[
    "type",
    "initial_delay",
    "period",
    "timeout",
    "failure_threshold",
    "success_threshold",
];

#[derive(Clone, Copy, PartialEq)]
enum HcType {
    Tcp,
    Http,
    Exec,
}

fn hc_keys_of(t: HcType) -> &'static [&'static str] {
    match t {
        HcType::Tcp => &["address"],
        HcType::Http => &["url", "expected_status"],
        HcType::Exec => &["command"],
    }
}

fn hc_type_of_key(key: &str) -> Option<&'static str> {
    match key {
        "address" => Some("tcp"),
        "url" | "expected_status" => Some("http"),
        "command" => Some("exec"),
        _ => None,
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
        if is_null(text) {
            return None;
        }
    }
    let entries = ctx.map(node, path)?;
    let type_entry = entries.iter().find(|e| e.key == "type");
    let kind = match type_entry {
        None => {
            ctx.err(
                &node.origin,
                &join(path, "type"),
                "missing `type`: expected tcp, http or exec",
            );
            None
        }
        Some(e) => ctx
            .choice(
                &e.value,
                &join(path, "type"),
                &[
                    ("tcp", HcType::Tcp),
                    ("http", HcType::Http),
                    ("exec", HcType::Exec),
                ],
            )
            .val(),
    };
    let mut hc = HealthCheck {
        kind: HealthCheckKind::Exec {
            command: Vec::new(),
        },
        initial_delay: Duration::ZERO,
        period: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        failure_threshold: 3,
        success_threshold: 1,
    };
    let mut address = None;
    let mut url = None;
    let mut status = None;
    let mut command = None;
    let mut ok = true;
    // Set when address/url/command was given but rejected (already reported).
    let mut target_reported = false;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        let key = e.key.as_str();
        if let (Some(t), Some(owner)) = (kind, hc_type_of_key(key)) {
            if !hc_keys_of(t).contains(&key) {
                ctx.err(
                    &e.key_origin,
                    &kpath,
                    format!("`{key}` is only used by `type: {owner}` checks"),
                );
                ok = false;
                continue;
            }
        }
        match key {
            "type" => {}
            "initial_delay" => set(&mut hc.initial_delay, ctx.duration(n, &kpath)),
            "period" | "timeout" => match ctx.duration(n, &kpath) {
                Got::Val(d) if d.is_zero() => {
                    ctx.err(&n.origin, &kpath, "must be more than 0");
                    ok = false;
                }
                Got::Val(d) if key == "period" => hc.period = d,
                Got::Val(d) => hc.timeout = d,
                Got::Bad => ok = false,
                Got::Null => {}
            },
            "failure_threshold" | "success_threshold" => match ctx.u32(n, &kpath, 1_000_000) {
                Got::Val(0) => {
                    ctx.err(&n.origin, &kpath, "must be at least 1");
                    ok = false;
                }
                Got::Val(v) if key == "failure_threshold" => hc.failure_threshold = v,
                Got::Val(v) => hc.success_threshold = v,
                Got::Bad => ok = false,
                Got::Null => {}
            },
            "address" => match ctx.string(n, &kpath) {
                Got::Val(a) => {
                    if valid_address(&a) {
                        if uses_port_without_default(&a) {
                            meta.port_users.push((kpath.clone(), n.origin.clone()));
                        }
                        address = Some(a);
                    } else {
                        ctx.err(
                            &n.origin,
                            &kpath,
                            format!("`{}` is not `host:port`, e.g. 127.0.0.1:${{PHPEEK_PM_INSTANCE_PORT}}", shorten(&a)),
                        );
                        ok = false;
                        target_reported = true;
                    }
                }
                Got::Bad => {
                    ok = false;
                    target_reported = true;
                }
                Got::Null => {}
            },
            "url" => match ctx.string(n, &kpath) {
                Got::Val(u) => match check_url(&u) {
                    Ok(()) => {
                        if uses_port_without_default(&u) {
                            meta.port_users.push((kpath.clone(), n.origin.clone()));
                        }
                        url = Some(u);
                    }
                    Err(m) => {
                        ctx.err(&n.origin, &kpath, m);
                        ok = false;
                        target_reported = true;
                    }
                },
                Got::Bad => {
                    ok = false;
                    target_reported = true;
                }
                Got::Null => {}
            },
            "expected_status" => match ctx.uint(n, &kpath, 999) {
                Got::Val(s) if (100..=599).contains(&s) => status = u16::try_from(s).ok(),
                Got::Val(s) => {
                    ctx.err(
                        &n.origin,
                        &kpath,
                        format!("{s} is not an HTTP status (100 to 599)"),
                    );
                    ok = false;
                }
                Got::Bad => ok = false,
                Got::Null => {}
            },
            "command" => match ctx.string_list(n, &kpath, "[\"php-fpm-healthcheck\"]") {
                Got::Val(c) if c.first().is_none_or(|s| s.trim().is_empty()) => {
                    ctx.err(
                        &n.origin,
                        &kpath,
                        "is empty: give the program and its arguments",
                    );
                    ok = false;
                    target_reported = true;
                }
                Got::Val(c) => {
                    if c.iter().any(|a| uses_port_without_default(a)) {
                        meta.port_users.push((kpath.clone(), n.origin.clone()));
                    }
                    command = Some(c);
                }
                Got::Bad => {
                    ok = false;
                    target_reported = true;
                }
                Got::Null => {}
            },
            _ => {
                let mut known: Vec<&str> = HC_COMMON.to_vec();
                match kind {
                    Some(t) => known.extend_from_slice(hc_keys_of(t)),
                    None => {
                        known.extend_from_slice(&["address", "url", "expected_status", "command"])
                    }
                }
                ctx.unknown_key(e, path, &known, "");
                ok = false;
            }
        }
    }
    let t = kind?;
    let missing = |ctx: &mut Ctx<'_>, key: &str, example: &str| {
        if target_reported {
            return;
        }
        ctx.err(
            &node.origin,
            &join(path, key),
            format!(
                "missing `{key}` for a {} check, e.g. {example}",
                match t {
                    HcType::Tcp => "tcp",
                    HcType::Http => "http",
                    HcType::Exec => "exec",
                }
            ),
        );
    };
    hc.kind = match t {
        HcType::Tcp => match address {
            Some(address) => HealthCheckKind::Tcp { address },
            None => {
                missing(ctx, "address", "address: \"127.0.0.1:8080\"");
                return None;
            }
        },
        HcType::Http => match url {
            Some(url) => HealthCheckKind::Http {
                url,
                expected_status: status,
            },
            None => {
                missing(ctx, "url", "url: \"http://127.0.0.1:8080/health\"");
                return None;
            }
        },
        HcType::Exec => match command {
            Some(command) => HealthCheckKind::Exec { command },
            None => {
                missing(ctx, "command", "command: [\"php-fpm-healthcheck\"]");
                return None;
            }
        },
    };
    ok.then_some(hc)
}

fn valid_address(a: &str) -> bool {
    let Some((host, port)) = a.rsplit_once(':') else {
        return false;
    };
    let host_ok = !host.is_empty() && !host.contains(char::is_whitespace);
    let port_ok = port.contains("${")
        || (!port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u16>().is_ok());
    host_ok && port_ok
}

fn check_url(u: &str) -> Result<(), String> {
    let lower = u.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(format!(
            "`{}`: https is not supported for health checks; use http://",
            shorten(u)
        ));
    }
    let Some(rest) = u.get(7..).filter(|_| lower.starts_with("http://")) else {
        return Err(format!(
            "`{}` is not an http:// URL, e.g. http://127.0.0.1:8080/health",
            shorten(u)
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host_only = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    if host_only.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!(
            "`{}` has no host, e.g. http://127.0.0.1:8080/health",
            shorten(u)
        ));
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
    }
}
