//! A minimal HTTP/1.1 client for loopback tests, and the manager's API
//! through it (raw and decoded into the wire types).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use phpeek_wire::{InstanceInfo, ProcessInfo};
use serde::de::DeserializeOwned;

use super::{Manager, DEADLINE};

/// One answer: status code, raw head (status line and headers) and the
/// body, de-chunked when it came chunked.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// Sends one request over a fresh connection and reads the whole answer;
/// panics when the connection fails.
pub fn send(method: &str, url: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Response {
    try_send(method, url, body, headers).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// [`send`], returning a failed connection (refused, reset) as an error,
/// for waits that must ride one out.
pub fn try_send(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(DEADLINE))?;
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok(Response {
        status,
        head: head.to_string(),
        body: if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    })
}

/// [`send`], keeping only (status, body).
pub fn http(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: Option<&[(&str, &str)]>,
) -> (u16, String) {
    let r = send(method, url, body, headers.unwrap_or(&[]));
    (r.status, r.body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Pids by instance name, of the instances that have one.
pub fn pid_map(list: Vec<InstanceInfo>) -> BTreeMap<String, i32> {
    list.into_iter()
        .filter_map(|i| Some((i.name, i.pid?)))
        .collect()
}

/// Decodes a JSON body, naming it in the panic when it does not fit `T`.
pub fn decode<T: DeserializeOwned>(body: &str) -> T {
    serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("not a {} ({e}): {body:?}", std::any::type_name::<T>()))
}

impl Manager {
    /// A request to the API with extra headers; the manager's token is not
    /// added.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        send(method, &format!("{}{path}", self.api()), None, headers)
    }

    /// A request to the API carrying the manager's token, if set.
    fn authed(&mut self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let r = send(method, &format!("{}{path}", self.api()), body, &headers);
        (r.status, r.body)
    }

    pub fn get(&mut self, path: &str) -> (u16, String) {
        self.authed("GET", path, None)
    }

    pub fn post(&mut self, path: &str, body: &str) -> (u16, String) {
        self.authed("POST", path, Some(body))
    }

    /// `GET path`, which must answer 200, decoded as `T`.
    pub fn get_as<T: DeserializeOwned>(&mut self, path: &str) -> T {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        decode(&body)
    }

    /// `GET path` as raw JSON, for tests about the document's shape.
    pub fn get_json(&mut self, path: &str) -> serde_json::Value {
        self.get_as(path)
    }

    /// `GET /api/v1/processes`: every instance.
    pub fn instances(&mut self) -> Vec<InstanceInfo> {
        self.get_as("/api/v1/processes")
    }

    /// The instances of `process` in `GET /api/v1/processes`.
    pub fn instances_of(&mut self, process: &str) -> Vec<InstanceInfo> {
        let mut all = self.instances();
        all.retain(|i| i.process == process);
        all
    }

    /// Pids by instance name of the instances of `process` that have one.
    pub fn pids(&mut self, process: &str) -> BTreeMap<String, i32> {
        pid_map(self.instances_of(process))
    }

    /// `GET /api/v1/processes/{name}` where `name` is a process.
    pub fn process(&mut self, name: &str) -> ProcessInfo {
        self.get_as(&format!("/api/v1/processes/{name}"))
    }

    /// `GET /api/v1/processes/{name}` where `name` is an instance.
    pub fn instance(&mut self, name: &str) -> InstanceInfo {
        self.get_as(&format!("/api/v1/processes/{name}"))
    }
}
