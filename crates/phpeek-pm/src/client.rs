//! Client commands: talk to a running manager over its HTTP API.
//!
//! The address and token come from `--api`/`--token`, then
//! `$PHPEEK_PM_API_URL`/`$PHPEEK_PM_API_TOKEN`, then the config file's
//! `api_host`/`api_port`/`api_auth` (with `https://` when it sets
//! `api_tls`). TLS: `--cacert` (trusted instead of the system's roots),
//! `--cert`/`--key` (a client certificate), or `$PHPEEK_PM_API_CACERT`,
//! `$PHPEEK_PM_API_CERT`, `$PHPEEK_PM_API_KEY`. Exit codes: 0 ok, 1 the
//! action failed (unreachable manager, refused request), 2 bad usage or
//! config (including an unreadable TLS file).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use phpeek_config::Env;
use phpeek_wire::{
    ActionResponse, ErrorResponse, InstanceInfo, LogLine, LogsResponse, ProcessInfo,
    ReloadResponse, ScaleResponse,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A failed client action, with the exit code it maps to.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    fn action(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    pub fn report(self) -> ExitCode {
        eprintln!("phpeek-pm: {}", self.message);
        ExitCode::from(self.code)
    }
}

/// TLS files of the client commands (global flags).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsFlags {
    /// PEM CA certificate(s) to trust for an https API, instead of the
    /// system's roots.
    #[arg(long, global = true, env = "PHPEEK_PM_API_CACERT", value_name = "PATH")]
    pub cacert: Option<PathBuf>,
    /// PEM client certificate for an API with `client_ca` (needs --key).
    #[arg(
        long,
        global = true,
        env = "PHPEEK_PM_API_CERT",
        value_name = "PATH",
        requires = "key"
    )]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(
        long,
        global = true,
        env = "PHPEEK_PM_API_KEY",
        value_name = "PATH",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,
}

fn read_tls_file(what: &str, path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::usage(format!("cannot read the {what} {}: {e}", path.display())))
}

/// Whether a client with the system's CA certificates can be built.
fn system_roots_available() -> bool {
    reqwest::Client::builder().build().is_ok()
}

/// The HTTP client, with the TLS settings of `tls`.
fn http_client(tls: &TlsFlags) -> Result<reqwest::Client, Failure> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30));
    if tls.cacert.is_none() && !system_roots_available() {
        // An image without CA certificates (scratch, distroless): plain
        // http still works; https needs --cacert.
        builder = builder.tls_certs_only(std::iter::empty::<reqwest::Certificate>());
    }
    if let Some(path) = &tls.cacert {
        let pem = read_tls_file("CA certificate", path)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Failure::usage(format!("{} holds no PEM certificate", path.display()))
            })?;
        builder = builder.tls_certs_only(certs);
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        let mut pem = read_tls_file("private key", key)?;
        pem.push(b'\n');
        pem.extend(read_tls_file("client certificate", cert)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            Failure::usage(format!(
                "cannot use {} with {} as a client certificate: {}",
                cert.display(),
                key.display(),
                error_chain(&e)
            ))
        })?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| Failure::action(format!("cannot build the HTTP client: {}", error_chain(&e))))
}

/// An error with its causes: `error sending request: …: certificate expired`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// Normalises `http://host:port[/api/v1][/]` to `http://host:port`.
pub fn normalize_base(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix("/api/v1").unwrap_or(url);
    url.trim_end_matches('/').to_string()
}

impl Client {
    /// Finds the manager from flags, environment or the config file.
    pub fn locate(
        api: Option<&str>,
        token: Option<&str>,
        config: Option<&Path>,
        tls: &TlsFlags,
    ) -> Result<Client, Failure> {
        let mut base = api.map(normalize_base);
        let mut token = token.map(str::to_string).filter(|t| !t.is_empty());
        if base.is_none() || token.is_none() {
            let env = Env::from_process();
            let loaded = phpeek_config::find_config_path(config, &env)
                .and_then(|p| phpeek_config::load_file(&p, &env));
            match loaded {
                Ok(cfg) => {
                    if base.is_none() {
                        let g = &cfg.global;
                        if g.api_port == 0 {
                            return Err(Failure::usage(
                                "the config sets api_port: 0 (an ephemeral port); pass --api URL",
                            ));
                        }
                        let host = match g.api_host.as_str() {
                            "0.0.0.0" | "" => "127.0.0.1".to_string(),
                            "::" => "[::1]".to_string(),
                            h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
                            h => h.to_string(),
                        };
                        let scheme = if g.api_tls.is_some() { "https" } else { "http" };
                        base = Some(format!("{scheme}://{host}:{}", g.api_port));
                    }
                    if token.is_none() {
                        token = cfg.global.api_auth.clone();
                    }
                }
                // An explicit config that does not load is a usage error;
                // without one the defaults apply.
                Err(e) if config.is_some() => return Err(Failure::usage(e.to_string())),
                Err(_) => {}
            }
        }
        let http = http_client(tls)?;
        Ok(Client {
            base: base.unwrap_or_else(|| "http://127.0.0.1:9180".to_string()),
            token,
            http,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<T, Failure> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let resp = req.send().await.map_err(|e| {
            Failure::action(format!(
                "cannot reach the manager at {}: {}",
                self.base,
                error_chain(&e)
            ))
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| Failure::action(format!("broken answer from {url}: {e}")))?;
        if status >= 400 {
            return Err(Failure::action(format!(
                "{} (HTTP {status})",
                error_message(&text)
            )));
        }
        serde_json::from_str(&text)
            .map_err(|e| Failure::action(format!("unexpected answer from {url}: {e}")))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<String>,
    ) -> Result<T, Failure> {
        self.call(reqwest::Method::POST, path, body).await
    }
}

/// The message of an error answer: the API's `error` with any config
/// `errors` listed below it, or the body itself when it is not an
/// [`ErrorResponse`].
fn error_message(text: &str) -> String {
    if let Ok(e) = serde_json::from_str::<ErrorResponse>(text) {
        let mut msg = e.error;
        for line in &e.errors {
            msg.push_str("\n  ");
            msg.push_str(line);
        }
        return msg;
    }
    serde_json::from_str::<Value>(text)
        .unwrap_or_else(|_| Value::String(text.to_string()))
        .to_string()
}

/// `-` for nothing, the value otherwise.
fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn fmt_uptime(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..=86399 => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d{:02}h", secs / 86400, (secs % 86400) / 3600),
    }
}

/// Renders the instance array as a table.
pub fn status_table(instances: &[InstanceInfo]) -> String {
    let headers = [
        "INSTANCE",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "HEALTH",
        "LAST EXIT",
    ];
    let rows: Vec<[String; 7]> = instances
        .iter()
        .map(|i| {
            [
                i.name.clone(),
                i.state.as_str().to_string(),
                or_dash(i.pid),
                or_dash(i.pid.map(|_| fmt_uptime(i.uptime))),
                i.restarts.to_string(),
                i.health.as_str().to_string(),
                or_dash(i.last_exit_code),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths.iter())
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&headers);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

pub async fn status(client: &Client, json: bool) -> Result<(), Failure> {
    if json {
        // The API's document as it came, only pretty-printed.
        let list: Value = client.get("/processes").await?;
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return Ok(());
    }
    let instances: Vec<InstanceInfo> = client.get("/processes").await?;
    if instances.is_empty() {
        println!("no instances");
    } else {
        print!("{}", status_table(&instances));
    }
    let processes: Vec<ProcessInfo> = client.get("/processes?view=processes").await?;
    print!(
        "{}",
        crate::runs::summary(&processes, std::time::SystemTime::now())
    );
    let autoscale = crate::autoscale::table(&processes);
    if !autoscale.is_empty() {
        println!();
        print!("{autoscale}");
    }
    Ok(())
}

pub async fn scale(
    client: &Client,
    name: &str,
    desired: u32,
    wait: bool,
    timeout: Duration,
) -> Result<(), Failure> {
    let body = format!("{{\"desired\": {desired}}}");
    let answer: ScaleResponse = client
        .post(&format!("/processes/{name}/scale"), Some(body))
        .await?;
    println!("{}", answer.message);
    if !wait {
        return Ok(());
    }
    let bar = indicatif::ProgressBar::new(u64::from(desired));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} running")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("scaling {name} to {desired}"));
    let end = Instant::now() + timeout;
    loop {
        let p: ProcessInfo = client.get(&format!("/processes/{name}")).await?;
        let running = p.current;
        bar.set_position(u64::from(running.min(desired)));
        if running == desired && p.instances.len() == desired as usize {
            bar.finish_with_message(format!("{name} runs {desired} instances"));
            return Ok(());
        }
        if Instant::now() > end {
            bar.abandon();
            return Err(Failure::action(format!(
                "{name} has {running} of {desired} instances running after {}s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn action(client: &Client, name: &str, verb: &str) -> Result<(), Failure> {
    let answer: ActionResponse = client
        .post(&format!("/processes/{name}/{verb}"), None)
        .await?;
    println!("{}: {}", answer.process, answer.message);
    Ok(())
}

pub async fn reload(client: &Client) -> Result<(), Failure> {
    let r: ReloadResponse = client.post("/reload", None).await?;
    println!("reloaded");
    for (k, names) in [
        ("added", &r.added),
        ("removed", &r.removed),
        ("rescaled", &r.rescaled),
        ("restarted", &r.restarted),
        ("updated", &r.updated),
    ] {
        let list = if names.is_empty() {
            "-".to_string()
        } else {
            names.join(", ")
        };
        println!("  {k:<9} {list}");
    }
    Ok(())
}

fn print_line(l: &LogLine) {
    println!("{} [{}] {}", l.ts, l.instance, l.msg);
}

pub async fn logs(client: &Client, name: &str, lines: usize, follow: bool) -> Result<(), Failure> {
    let v: LogsResponse = client
        .get(&format!("/processes/{name}/logs?lines={lines}"))
        .await?;
    let mut seen = v.lines;
    for l in &seen {
        print_line(l);
    }
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let v: LogsResponse = client
            .get(&format!("/processes/{name}/logs?lines=1000"))
            .await?;
        let now = v.lines;
        // New lines are those after the longest overlap with what we saw.
        let start = overlap_end(&seen, &now);
        for l in now.iter().skip(start) {
            print_line(l);
        }
        seen = now;
    }
}

/// Index in `now` after which lines are new, given the previous window.
fn overlap_end(prev: &[LogLine], now: &[LogLine]) -> usize {
    let Some(last) = prev.last() else { return 0 };
    now.iter()
        .rposition(|l| l == last)
        .map(|i| i + 1)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base_urls_are_normalised() {
        assert_eq!(
            normalize_base("http://127.0.0.1:9180"),
            "http://127.0.0.1:9180"
        );
        assert_eq!(
            normalize_base("http://127.0.0.1:9180/"),
            "http://127.0.0.1:9180"
        );
        assert_eq!(
            normalize_base("http://127.0.0.1:9180/api/v1"),
            "http://127.0.0.1:9180"
        );
        assert_eq!(
            normalize_base("http://127.0.0.1:9180/api/v1/"),
            "http://127.0.0.1:9180"
        );
    }

    #[test]
    fn uptime_is_short() {
        assert_eq!(fmt_uptime(5), "5s");
        assert_eq!(fmt_uptime(3600), "1h00m");
        assert_eq!(fmt_uptime(90000), "1d01h");
    }

    fn instance(name: &str, state: &str, pid: Option<i32>, last_exit: Option<i32>) -> InstanceInfo {
        serde_json::from_value(json!({
            "name": name, "process": "w", "number": 1, "state": state, "pid": pid,
            "uptime": 3, "started_at": null, "restarts": 1, "health": "unknown",
            "last_exit_code": last_exit,
        }))
        .unwrap()
    }

    #[test]
    fn table_has_a_row_per_instance() {
        let t = status_table(&[
            instance("w-1", "running", Some(12), None),
            instance("w-2", "stopped", None, Some(0)),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("INSTANCE"));
        assert!(lines[1].starts_with("w-1") && lines[1].contains("running"));
        assert!(lines[2].contains("stopped"));
        // Unknown values are dashes; uptime only while there is a pid.
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["w-1", "running", "12", "3s", "1", "unknown", "-"]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["w-2", "stopped", "-", "-", "1", "unknown", "0"]
        );
    }

    #[test]
    fn error_answers_read_as_their_message() {
        assert_eq!(
            error_message(r#"{"error":"config rejected","errors":["a","b"]}"#),
            "config rejected\n  a\n  b"
        );
        assert_eq!(error_message(r#"{"oops":1}"#), r#"{"oops":1}"#);
        assert_eq!(error_message("Bad Gateway"), r#""Bad Gateway""#);
    }

    #[test]
    fn follow_prints_only_new_lines() {
        let line = |ts: &str, msg: &str| LogLine {
            ts: ts.into(),
            instance: "w-1".into(),
            stream: "stdout".into(),
            msg: msg.into(),
        };
        let a = line("1", "a");
        let b = line("2", "b");
        let c = line("3", "c");
        assert_eq!(
            overlap_end(&[a.clone(), b.clone()], &[a.clone(), b.clone(), c.clone()]),
            2
        );
        assert_eq!(overlap_end(&[], std::slice::from_ref(&a)), 0);
        assert_eq!(overlap_end(&[a], &[b, c]), 0);
    }
}
