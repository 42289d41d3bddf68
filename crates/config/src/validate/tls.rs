//! `global.api_tls` and `global.metrics_tls`: `{cert, key, client_ca}`.
//!
//! Invariant: a value is accepted only when [`crate::tls::load_tls`]
//! accepts its files now; each problem is reported at the line and column
//! of the key whose file it is about (the `key` entry for a key that does
//! not match its certificate).

use std::path::PathBuf;
use std::time::SystemTime;

use super::reader::{join, Ctx, Got};
use crate::text::is_null_literal;
use crate::tls::{load_tls, TlsFileKey};
use crate::tree::{Node, Origin, Style, Value};
use crate::TlsFiles;

const TLS_KEYS: &[&str] = &["cert", "key", "client_ca"];

pub(super) fn parse_tls(node: &Node, ctx: &mut Ctx<'_>, path: &str) -> Got<Option<TlsFiles>> {
    if let Value::Scalar {
        text,
        style: Style::Plain,
    } = &node.value
    {
        if is_null_literal(text) {
            return Got::Null;
        }
    }
    if let Value::Scalar { .. } = &node.value {
        ctx.err(
            &node.origin,
            path,
            "expected a mapping like { cert: server.pem, key: server.key }",
        );
        return Got::Bad;
    }
    let Some(entries) = ctx.map(node, path) else {
        return Got::Bad;
    };
    let mut cert: Option<(PathBuf, Origin)> = None;
    let mut key: Option<(PathBuf, Origin)> = None;
    let mut client_ca: Option<(PathBuf, Origin)> = None;
    let mut bad = false;
    for e in entries {
        let p = join(path, &e.key);
        let slot = match e.key.as_str() {
            "cert" => &mut cert,
            "key" => &mut key,
            "client_ca" => &mut client_ca,
            _ => {
                ctx.unknown_key(e, path, TLS_KEYS, "");
                bad = true;
                continue;
            }
        };
        match ctx.opt_string(&e.value, &p) {
            Got::Val(Some(s)) => *slot = Some((PathBuf::from(s), e.value.origin.clone())),
            Got::Val(None) | Got::Null => {
                if e.key != "client_ca" {
                    ctx.err(&e.value.origin, &p, "must be the path of a PEM file");
                    bad = true;
                }
            }
            Got::Bad => bad = true,
        }
    }
    let (Some((cert, cert_origin)), Some((key, key_origin))) = (cert, key) else {
        if !bad {
            ctx.err(
                &node.origin,
                path,
                "needs both `cert` and `key` (PEM files), e.g. { cert: server.pem, key: server.key }",
            );
        }
        return Got::Bad;
    };
    if bad {
        return Got::Bad;
    }
    let (client_ca, ca_origin) = match client_ca {
        Some((p, o)) => (Some(p), Some(o)),
        None => (None, None),
    };
    let files = TlsFiles {
        cert,
        key,
        client_ca,
    };
    match load_tls(&files, SystemTime::now()) {
        Ok(_) => Got::Val(Some(files)),
        Err(problems) => {
            for problem in problems {
                let origin = match problem.key {
                    TlsFileKey::Cert => &cert_origin,
                    TlsFileKey::Key => &key_origin,
                    TlsFileKey::ClientCa => ca_origin.as_ref().unwrap_or(&node.origin),
                };
                ctx.err(origin, &join(path, problem.key.as_str()), problem.message);
            }
            Got::Bad
        }
    }
}
