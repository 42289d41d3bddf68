//! The `redis` source: `LLEN key` over one multiplexed connection per URL.
//!
//! A connection that failed (refused, dropped, timed out: anything but an
//! error reply of the server) is dropped from the cache; the next sample
//! connects again.
//! A URL's password and database are applied by the client on connect
//! (`AUTH`, `SELECT`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

use super::{redact_url, SampleFailure};

/// Open connections by URL, shared by every autoscaler.
#[derive(Default)]
pub(super) struct RedisConnections {
    by_url: Mutex<HashMap<String, MultiplexedConnection>>,
}

impl RedisConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, MultiplexedConnection>> {
        self.by_url.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn cached(&self, url: &str) -> Option<MultiplexedConnection> {
        self.lock().get(url).cloned()
    }

    fn keep(&self, url: &str, conn: MultiplexedConnection) {
        self.lock().insert(url.to_string(), conn);
    }

    pub(super) fn forget(&self, url: &str) {
        self.lock().remove(url);
    }

    pub(super) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|url, _| keep(url));
    }
}

/// The length of the list at `key` (0 when there is no such key).
pub(super) async fn llen(
    conns: &RedisConnections,
    url: &str,
    key: &str,
    timeout: Duration,
) -> Result<f64, SampleFailure> {
    let mut conn = match conns.cached(url) {
        Some(conn) => conn,
        None => {
            let conn = connect(url, timeout).await?;
            conns.keep(url, conn.clone());
            conn
        }
    };
    match redis::cmd("LLEN")
        .arg(key)
        .query_async::<i64>(&mut conn)
        .await
    {
        // Lengths are far below 2^53: exact as f64.
        Ok(n) => Ok(n as f64),
        Err(e) => {
            // A server's error reply (WRONGTYPE, …) leaves the connection
            // sound; anything else may not have.
            if e.code().is_none() {
                conns.forget(url);
            }
            Err(classify(url, &e, timeout, Some(key)))
        }
    }
}

async fn connect(url: &str, timeout: Duration) -> Result<MultiplexedConnection, SampleFailure> {
    let scheme = url.split("://").next().unwrap_or("").to_ascii_lowercase();
    if scheme == "rediss" || scheme == "valkeys" {
        return Err(SampleFailure::RedisTlsUnsupported {
            url: redact_url(url),
        });
    }
    let client = redis::Client::open(url).map_err(|e| SampleFailure::BadRedisUrl {
        url: redact_url(url),
        reason: e.to_string(),
    })?;
    // The client's own defaults (1 s to connect, 0.5 s per answer) would
    // cut a sample short of the configured timeout.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| classify(url, &e, timeout, None))
}

fn classify(
    url: &str,
    e: &redis::RedisError,
    timeout: Duration,
    key: Option<&str>,
) -> SampleFailure {
    let target = redact_url(url);
    if e.is_timeout() {
        return SampleFailure::Timeout(timeout);
    }
    if e.is_connection_refusal() {
        return SampleFailure::Unreachable {
            target,
            reason: e.to_string(),
        };
    }
    if e.is_io_error() || e.is_connection_dropped() {
        return SampleFailure::Unreachable {
            target,
            reason: format!("connection lost ({e})"),
        };
    }
    let reason = match key {
        Some(key) => format!("LLEN {key}: {e}"),
        None => e.to_string(),
    };
    SampleFailure::Redis { target, reason }
}
