//! Autoscale metric sources (SPEC 12): the effects that turn a configured
//! [`MetricSource`] into one number per interval.
//!
//! Invariants:
//! - Every sample is bounded by its timeout, whatever the source does: a
//!   Redis that accepts and never answers, an HTTP server that trickles, a
//!   command that hangs (its whole process group is killed at the timeout).
//! - A command runs through the manager's one spawner and its exit comes
//!   from the one reaper: its waiter is registered under the spawn gate, so
//!   this module never calls `waitpid`. It runs as the process does (the
//!   caller's [`SpawnSpec`] base: user, group, environment, directory).
//! - Nothing here panics on any configured value or any answer; everything
//!   that goes wrong is a [`SampleFailure`] with a one-line message, and
//!   passwords in URLs never appear in one.
//! - Bodies and outputs are read up to a cap ([`MAX_BODY`], [`MAX_OUTPUT`]);
//!   more is a failure (body) or ignored (output past the cap is drained).
//! - A Redis connection is kept per URL and dropped after any error but an
//!   error reply of the server (`WRONGTYPE`); the next sample connects
//!   again, so a Redis that went away and came back works without a
//!   restart of the manager.
//! - Sampling holds no state of the owner: the CPU source's previous
//!   reading lives in a [`CpuTracker`] the caller keeps per metric.

mod command;
mod cpu;
mod exposition;
mod json_path;
mod redis_list;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use phpeek_config::MetricSource;

use crate::registry::ChildRegistry;
use crate::spawn::{SpawnSpec, Spawner};

pub use command::first_number;
pub use cpu::CpuTracker;
pub use exposition::{parse_sample_line, select_sample, ExpositionSample, SelectError};
pub use json_path::{number_at, JsonPathError};

/// The largest HTTP body read (JSON or an exposition).
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// The part of a command's stdout searched for a number.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// What sampling needs, shared by every autoscaler (cheap to clone).
#[derive(Clone)]
pub struct SourceKit {
    spawner: Spawner,
    registry: Arc<ChildRegistry>,
    http: reqwest::Client,
    redis: Arc<redis_list::RedisConnections>,
}

impl SourceKit {
    /// `http` should be [`http_client`]'s (or the health probes' client,
    /// which is built the same way: no proxy, no redirects).
    pub fn new(spawner: Spawner, registry: Arc<ChildRegistry>, http: reqwest::Client) -> Self {
        SourceKit {
            spawner,
            registry,
            http,
            redis: Arc::default(),
        }
    }

    /// Drops the cached Redis connections whose URL `keep` rejects (call
    /// after a reload with the URLs still configured).
    pub fn retain_redis(&self, keep: impl Fn(&str) -> bool) {
        self.redis.retain(keep);
    }
}

/// The HTTP client for metric sources: no proxy (a `127.0.0.1` source must
/// not go through `HTTP_PROXY`) and no redirects.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    crate::http_client()
}

/// What the `command` and `cpu` sources need from the process.
#[derive(Debug, Clone, Copy)]
pub struct SampleContext<'a> {
    /// The process's user, group, environment and directory; the argv is
    /// replaced by the command's and output capture switched on.
    pub base: &'a SpawnSpec,
    /// Pids of the running instances (each leads its own session).
    pub sessions: &'a [i32],
    /// The previous CPU reading of this metric.
    pub cpu: &'a CpuTracker,
}

/// Why a metric has no value this interval.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleFailure {
    #[error("no value within {}", phpeek_config::format_duration(*.0))]
    Timeout(Duration),
    #[error("`{command}` did not finish within {}; its process group was killed", phpeek_config::format_duration(*after))]
    CommandTimeout { command: String, after: Duration },
    /// The first CPU reading (or the first since every instance was
    /// replaced): utilization needs two. Harmless; the next one counts.
    #[error("warming up: CPU utilization needs a second reading")]
    WarmingUp,
    #[error("no running instance to measure")]
    NoInstances,
    #[error("cannot read CPU times: {0}")]
    CpuUnreadable(String),
    #[error("cannot reach {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("TLS to Redis is not built in ({url})")]
    RedisTlsUnsupported { url: String },
    #[error("invalid Redis URL {url}: {reason}")]
    BadRedisUrl { url: String, reason: String },
    #[error("Redis at {target}: {reason}")]
    Redis { target: String, reason: String },
    #[error("GET {url} answered {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("GET {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("the answer of {url} is larger than {limit} bytes")]
    BodyTooLarge { url: String, limit: usize },
    #[error("the answer of {url} is not JSON: {reason}")]
    NotJson { url: String, reason: String },
    #[error("JSON path `{path}`: {error}")]
    JsonPath { path: String, error: JsonPathError },
    #[error("no sample {selector} in the exposition of {url}")]
    MetricNotFound { url: String, selector: String },
    #[error("{count} samples match {selector} at {url}; add labels to pick one")]
    AmbiguousMetric {
        url: String,
        selector: String,
        count: usize,
    },
    #[error("line {line} of the exposition of {url}: {reason}")]
    BadExposition {
        url: String,
        line: usize,
        reason: String,
    },
    #[error("{what} is {value}, not a finite number")]
    NotFinite { what: String, value: String },
    #[error("cannot run `{command}`: {reason}")]
    CommandStart { command: String, reason: String },
    #[error("`{command}` {status}{}", stderr_suffix(.stderr))]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed no number{}", output_suffix(.output))]
    NoNumber { command: String, output: String },
    #[error("empty command")]
    EmptyCommand,
    #[error("the spawner is gone")]
    SpawnerGone,
}

impl SampleFailure {
    /// True for the CPU source's first reading: not a real failure.
    pub fn is_warming_up(&self) -> bool {
        matches!(self, SampleFailure::WarmingUp)
    }
}

impl From<SampleFailure> for super::SampleError {
    fn from(_: SampleFailure) -> Self {
        super::SampleError
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

fn output_suffix(output: &str) -> String {
    if output.is_empty() {
        " (no output)".to_string()
    } else {
        format!(": {output:?}")
    }
}

/// Samples one metric, within `timeout`.
pub async fn sample(
    kit: &SourceKit,
    source: &MetricSource,
    ctx: &SampleContext<'_>,
    timeout: Duration,
) -> Result<f64, SampleFailure> {
    // The command bounds itself: at its timeout its group must be killed.
    if let MetricSource::Command(argv) = source {
        return command::run_command(kit, ctx.base, argv, timeout).await;
    }
    let bounded = async {
        match source {
            MetricSource::Redis { url, llen } => {
                redis_list::llen(&kit.redis, url, llen, timeout).await
            }
            MetricSource::Http { url, json } => sample_json(kit, url, json, timeout).await,
            MetricSource::Prometheus {
                url,
                metric,
                labels,
            } => sample_exposition(kit, url, metric, labels, timeout).await,
            MetricSource::Cpu { .. } => cpu::sample_cpu(ctx.cpu, ctx.sessions).await,
            MetricSource::Command(_) => Err(SampleFailure::EmptyCommand),
        }
    };
    match tokio::time::timeout(timeout, bounded).await {
        Ok(result) => result,
        Err(_) => {
            if let MetricSource::Redis { url, .. } = source {
                // Its state is unknown after a cut-off request.
                kit.redis.forget(url);
            }
            Err(SampleFailure::Timeout(timeout))
        }
    }
}

async fn sample_json(
    kit: &SourceKit,
    url: &str,
    path: &str,
    timeout: Duration,
) -> Result<f64, SampleFailure> {
    let body = fetch_body(kit, url, "application/json", timeout).await?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| SampleFailure::NotJson {
            url: redact_url(url),
            reason: e.to_string(),
        })?;
    number_at(&value, path).map_err(|error| match error {
        JsonPathError::NotFinite(v) => SampleFailure::NotFinite {
            what: format!("`{path}` of {}", redact_url(url)),
            value: v,
        },
        error => SampleFailure::JsonPath {
            path: path.to_string(),
            error,
        },
    })
}

/// What a Prometheus server's scraper asks for: the classic text format.
const EXPOSITION_ACCEPT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

async fn sample_exposition(
    kit: &SourceKit,
    url: &str,
    metric: &str,
    labels: &std::collections::BTreeMap<String, String>,
    timeout: Duration,
) -> Result<f64, SampleFailure> {
    let body = fetch_body(kit, url, EXPOSITION_ACCEPT, timeout).await?;
    let text = String::from_utf8_lossy(&body);
    exposition::select_sample(&text, metric, labels).map_err(|e| e.into_failure(url))
}

/// `GET url`: the body of a 2xx answer, at most [`MAX_BODY`] bytes.
async fn fetch_body(
    kit: &SourceKit,
    url: &str,
    accept: &str,
    timeout: Duration,
) -> Result<Vec<u8>, SampleFailure> {
    let shown = || redact_url(url);
    let request = kit
        .http
        .get(url)
        .header(reqwest::header::ACCEPT, accept)
        .timeout(timeout);
    let mut response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            return SampleFailure::Timeout(timeout);
        }
        let connect = e.is_connect();
        let reason = describe_error(&e.without_url());
        if connect {
            SampleFailure::Unreachable {
                target: shown(),
                reason,
            }
        } else {
            SampleFailure::Http {
                url: shown(),
                reason,
            }
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(SampleFailure::HttpStatus {
            url: shown(),
            status: status.as_u16(),
        });
    }
    let mut body = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|e| {
            if e.is_timeout() {
                return SampleFailure::Timeout(timeout);
            }
            SampleFailure::Http {
                url: shown(),
                reason: describe_error(&e.without_url()),
            }
        })?;
        let Some(chunk) = chunk else { break };
        if body.len().saturating_add(chunk.len()) > MAX_BODY {
            return Err(SampleFailure::BodyTooLarge {
                url: shown(),
                limit: MAX_BODY,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its root cause, on one line ("error sending request:
/// Connection refused (os error 111)").
fn describe_error(e: &dyn std::error::Error) -> String {
    let top = e.to_string();
    let mut root = e.source();
    while let Some(next) = root.and_then(|r| r.source()) {
        root = Some(next);
    }
    match root.map(|r| r.to_string()) {
        Some(cause) if !top.contains(&cause) => format!("{top}: {cause}"),
        _ => top,
    }
}

/// The URL with any password replaced by `***` (for messages and logs).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    // A lone userinfo may well be a password put where the user goes.
    let shown = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None => "***".to_string(),
    };
    format!("{}{shown}{}", &url[..rest_start], &url[rest_start + at..])
}
