//! Client commands: talk to a running manager over its HTTP API.
//!
//! The address and token come from `--api`/`--token`, then
//! `$PHPEEK_PM_API_URL`/`$PHPEEK_PM_API_TOKEN`, then the config file's
//! `api_host`/`api_port`/`api_auth`. Exit codes: 0 ok, 1 the action failed
//! (unreachable manager, refused request), 2 bad usage or config.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use phpeek_config::Env;
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

    fn usage(message: impl Into<String>) -> Self {
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
                        base = Some(format!("http://{host}:{}", g.api_port));
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
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Failure::action(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            base: base.unwrap_or_else(|| "http://127.0.0.1:9180".to_string()),
            token,
            http,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Value), Failure> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let resp = req.send().await.map_err(|e| {
            Failure::action(format!("cannot reach the manager at {}: {e}", self.base))
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| Failure::action(format!("broken answer from {url}: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            let mut msg = value["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            if let Some(errors) = value["errors"].as_array() {
                for e in errors {
                    msg.push_str("\n  ");
                    msg.push_str(e.as_str().unwrap_or_default());
                }
            }
            return Err(Failure::action(format!("{msg} (HTTP {status})")));
        }
        Ok((status, value))
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        Ok(self.call(reqwest::Method::GET, path, None).await?.1)
    }

    pub async fn post(&self, path: &str, body: Option<String>) -> Result<Value, Failure> {
        Ok(self.call(reqwest::Method::POST, path, body).await?.1)
    }
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
pub fn status_table(instances: &[Value]) -> String {
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
            let opt = |v: &Value| match v {
                Value::Null => "-".to_string(),
                v => v.to_string(),
            };
            [
                i["name"].as_str().unwrap_or("?").to_string(),
                i["state"].as_str().unwrap_or("?").to_string(),
                opt(&i["pid"]),
                if i["pid"].is_null() {
                    "-".into()
                } else {
                    fmt_uptime(i["uptime"].as_u64().unwrap_or(0))
                },
                opt(&i["restarts"]),
                i["health"].as_str().unwrap_or("?").to_string(),
                opt(&i["last_exit_code"]),
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
    let list = client.get("/processes").await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return Ok(());
    }
    let instances = list.as_array().cloned().unwrap_or_default();
    if instances.is_empty() {
        println!("no instances");
    } else {
        print!("{}", status_table(&instances));
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
    let answer = client
        .post(&format!("/processes/{name}/scale"), Some(body))
        .await?;
    println!("{}", answer["message"].as_str().unwrap_or("scaling"));
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
        let p = client.get(&format!("/processes/{name}")).await?;
        let instances = p["instances"].as_array().map(Vec::len).unwrap_or(0);
        let running = p["current"].as_u64().unwrap_or(0);
        bar.set_position(running.min(u64::from(desired)));
        if running == u64::from(desired) && instances as u64 == u64::from(desired) {
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
    let answer = client
        .post(&format!("/processes/{name}/{verb}"), None)
        .await?;
    println!(
        "{}: {}",
        answer["process"].as_str().unwrap_or(name),
        answer["message"].as_str().unwrap_or("done")
    );
    Ok(())
}

pub async fn reload(client: &Client) -> Result<(), Failure> {
    let r = client.post("/reload", None).await?;
    let list = |k: &str| {
        let v: Vec<&str> = r[k]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    println!("reloaded");
    for k in ["added", "removed", "rescaled", "restarted", "updated"] {
        println!("  {k:<9} {}", list(k));
    }
    Ok(())
}

fn print_line(l: &Value) {
    println!(
        "{} [{}] {}",
        l["ts"].as_str().unwrap_or(""),
        l["instance"].as_str().unwrap_or("?"),
        l["msg"].as_str().unwrap_or("")
    );
}

pub async fn logs(client: &Client, name: &str, lines: usize, follow: bool) -> Result<(), Failure> {
    let v = client
        .get(&format!("/processes/{name}/logs?lines={lines}"))
        .await?;
    let mut seen: Vec<Value> = v["lines"].as_array().cloned().unwrap_or_default();
    for l in &seen {
        print_line(l);
    }
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let v = client
            .get(&format!("/processes/{name}/logs?lines=1000"))
            .await?;
        let now: Vec<Value> = v["lines"].as_array().cloned().unwrap_or_default();
        // New lines are those after the longest overlap with what we saw.
        let start = overlap_end(&seen, &now);
        for l in now.iter().skip(start) {
            print_line(l);
        }
        seen = now;
    }
}

/// Index in `now` after which lines are new, given the previous window.
fn overlap_end(prev: &[Value], now: &[Value]) -> usize {
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

    #[test]
    fn table_has_a_row_per_instance() {
        let t = status_table(&[
            json!({"name":"w-1","state":"running","pid":12,"uptime":3,"restarts":0,"health":"unknown","last_exit_code":null}),
            json!({"name":"w-2","state":"stopped","pid":null,"uptime":0,"restarts":1,"health":"unknown","last_exit_code":0}),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("INSTANCE"));
        assert!(lines[1].starts_with("w-1") && lines[1].contains("running"));
        assert!(lines[2].contains("stopped"));
    }

    #[test]
    fn follow_prints_only_new_lines() {
        let a = json!({"ts":"1","msg":"a"});
        let b = json!({"ts":"2","msg":"b"});
        let c = json!({"ts":"3","msg":"c"});
        assert_eq!(
            overlap_end(&[a.clone(), b.clone()], &[a.clone(), b.clone(), c.clone()]),
            2
        );
        assert_eq!(overlap_end(&[], std::slice::from_ref(&a)), 0);
        assert_eq!(overlap_end(&[a], &[b, c]), 0);
    }
}
