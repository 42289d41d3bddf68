//! The audit trail (SPEC §13): every accepted write to the API is one line
//! on the manager's stderr, `audit PEER METHOD PATH STATUS`.
//!
//! Invariants:
//! * A write is any POST, PUT, PATCH or DELETE, so routes added later are
//!   covered without listing them; accepted means a 2xx answer. Refused
//!   requests (401, other 4xx, 5xx) are no audit lines.
//! * The line is written after the handler answered, exactly once per
//!   request, on the [`AUDIT_TARGET`] target, which the binary's logger
//!   always shows whatever `log_level` says.
//! * The peer is the TCP address (`127.0.0.1:53122`), or `unix` for the
//!   API socket, which has no address.

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::Peer;

/// The tracing target of audit lines.
pub const AUDIT_TARGET: &str = "phpeek_pm::audit";

fn is_write(m: &Method) -> bool {
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(m)
}

/// Middleware: logs an accepted write once the answer is known.
pub async fn audit_writes(req: Request, next: Next) -> Response {
    if !is_write(req.method()) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let peer = req
        .extensions()
        .get::<Peer>()
        .map_or_else(|| "unknown".into(), |p| p.addr.to_string());
    let resp = next.run(req).await;
    let status = resp.status();
    if status.is_success() {
        let code = status.as_u16();
        tracing::info!(
            target: AUDIT_TARGET,
            audit = true,
            peer = %peer,
            method = %method,
            path = %path,
            status = code,
            "audit {peer} {method} {path} {code}"
        );
    }
    resp
}
