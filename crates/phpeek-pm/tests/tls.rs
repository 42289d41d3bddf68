//! SPEC §13: the API and metrics over TLS, client certificates, rotation on
//! reload, bad files, and the audit line of every accepted write. Every
//! certificate is made at test time (rcgen); a rustls client in the test
//! checks which certificate the manager serves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use common::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A CA with a key to sign more certificates later (rotation).
struct Pki {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_pem: String,
}

/// A certificate and its key, as PEM and the DER the server sends.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Pki {
    fn new() -> Pki {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "phpeek-pm test CA");
        let cert = params.self_signed(&key).unwrap();
        Pki {
            issuer: rcgen::Issuer::new(params, key),
            ca_pem: cert.pem(),
        }
    }

    /// A server certificate for localhost and 127.0.0.1.
    fn server(&self) -> Leaf {
        self.leaf(vec!["localhost".into(), "127.0.0.1".into()])
    }

    /// A client certificate.
    fn client(&self) -> Leaf {
        self.leaf(vec!["client.test".into()])
    }

    fn leaf(&self, names: Vec<String>) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

impl Leaf {
    /// Writes `NAME.pem` and `NAME.key` into `dir`.
    fn write(&self, dir: &Path, name: &str) {
        std::fs::write(dir.join(format!("{name}.pem")), &self.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), &self.key_pem).unwrap();
    }
}

/// Writes the CA, a server and a client certificate into `dir`; returns
/// the server leaf.
fn write_pki(pki: &Pki, dir: &Path) -> (Leaf, Leaf) {
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    let server = pki.server();
    server.write(dir, "server");
    let client = pki.client();
    client.write(dir, "client");
    (server, client)
}

const WEB: &str = r#"processes:
  web:
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    max_scale: 5
"#;

fn tls_config(api_tls: &str, extra: &str) -> String {
    format!("{TEST_GLOBALS}  api_tls: {api_tls}\n{extra}{WEB}")
}

const SERVER_FILES: &str = "{ cert: $DIR/server.pem, key: $DIR/server.key }";
const SERVER_FILES_CA: &str =
    "{ cert: $DIR/server.pem, key: $DIR/server.key, client_ca: $DIR/ca.pem }";

/// What a TLS request got back.
struct TlsAnswer {
    status: u16,
    body: String,
    /// The leaf certificate the server presented.
    served: Vec<u8>,
}

fn client_config(ca_pem: &str, identity: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    Arc::new(config)
}

use rustls::pki_types::pem::PemObject;

/// `host:port` of an `https://host:port[/path]` URL.
fn host_of(url: &str) -> String {
    let rest = url
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("not an https URL: {url}"));
    rest.split('/').next().unwrap().to_string()
}

/// One HTTPS request on a fresh connection; `Err` when the handshake or
/// the connection fails.
fn try_https(
    host: &str,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: &str,
) -> Result<TlsAnswer, String> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(host).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A peer that closes without close_notify after a whole answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    let served = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    Ok(TlsAnswer {
        status,
        body: body.to_string(),
        served,
    })
}

fn https(
    host: &str,
    config: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: &str,
) -> TlsAnswer {
    try_https(host, Arc::clone(config), method, path, body)
        .unwrap_or_else(|e| panic!("{method} https://{host}{path}: {e}"))
}

fn audit_lines(m: &Manager) -> Vec<String> {
    m.stderr()
        .lines()
        .filter(|l| l.contains("] audit "))
        .map(str::to_string)
        .collect()
}

fn cli(m: &Manager, args: &[&str]) -> CliRun {
    run_cli(
        args,
        m.dir.path(),
        &[],
        &[
            "PHPEEK_PM_API_URL",
            "PHPEEK_PM_API_TOKEN",
            "PHPEEK_PM_API_CACERT",
            "PHPEEK_PM_API_CERT",
            "PHPEEK_PM_API_KEY",
            "PHPEEK_PM_CONFIG",
        ],
    )
}

fn path_in(m: &Manager, name: &str) -> String {
    m.path(name).display().to_string()
}

#[test]
fn https_serves_the_api_and_plain_http_to_it_fails_cleanly() {
    let pki = Pki::new();
    let mut server = None;
    let mut m = Manager::start_with(&tls_config(SERVER_FILES, ""), &[], |dir| {
        server = Some(write_pki(&pki, dir).0);
    });
    let server = server.unwrap();
    let url = m.api();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let host = host_of(&url);
    let config = client_config(&pki.ca_pem, None);
    let ok = https(&host, &config, "GET", "/api/v1/processes", "");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("\"web-1\""), "{}", ok.body);
    assert_eq!(ok.served, server.der);

    // Plain HTTP to the TLS port gets no HTTP answer and the connection
    // ends; the manager goes on serving.
    let mut plain = TcpStream::connect(&host).unwrap();
    plain.set_read_timeout(Some(DEADLINE)).unwrap();
    plain
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = plain.read_to_end(&mut raw);
    assert!(
        !raw.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(m.running());
    assert_eq!(
        https(&host, &config, "GET", "/api/v1/health", "").status,
        200
    );

    // The CLI speaks https with --cacert (or its variable), and refuses a
    // server it cannot verify.
    let api = format!("https://localhost:{}", host.rsplit(':').next().unwrap());
    let ca = path_in(&m, "ca.pem");
    let run = cli(&m, &["--api", &api, "--cacert", &ca, "status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("web-1"), "{}", run.stdout);
    let run = run_cli(
        &["--api", &api, "status", "--json"],
        m.dir.path(),
        &[("PHPEEK_PM_API_CACERT", ca.as_str())],
        &["PHPEEK_PM_API_URL", "PHPEEK_PM_API_TOKEN"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = cli(&m, &["--api", &api, "status"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot reach the manager"),
        "{}",
        run.stderr
    );
    let run = cli(
        &m,
        &["--api", &api, "--cacert", "/nonexistent/ca.pem", "status"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("/nonexistent/ca.pem"), "{}", run.stderr);
    assert!(m.running());
}

#[test]
fn client_ca_guards_writes_but_not_the_probes_and_each_accepted_write_is_audited() {
    let pki = Pki::new();
    let mut leaves = None;
    let extra =
        "  metrics_tls: { cert: $DIR/server.pem, key: $DIR/server.key, client_ca: $DIR/ca.pem }\n";
    let mut m = Manager::start_with(&tls_config(SERVER_FILES_CA, extra), &[], |dir| {
        leaves = Some(write_pki(&pki, dir));
    });
    let (_server, client) = leaves.unwrap();
    let host = host_of(&m.api());
    let anonymous = client_config(&pki.ca_pem, None);
    let known = client_config(&pki.ca_pem, Some(&client));

    // Probes reach health and ready without a certificate.
    assert_eq!(
        https(&host, &anonymous, "GET", "/api/v1/health", "").status,
        200
    );
    wait_for("ready without a client certificate", DEADLINE, || {
        (https(&host, &anonymous, "GET", "/api/v1/ready", "").status == 200).then_some(())
    });
    // Everything else needs one.
    for (method, path) in [
        ("GET", "/api/v1/processes"),
        ("POST", "/api/v1/processes/web/scale"),
        ("POST", "/api/v1/reload"),
        ("GET", "/api/v1/nope"),
    ] {
        let a = https(&host, &anonymous, method, path, r#"{"desired": 2}"#);
        assert_eq!(a.status, 401, "{method} {path}: {}", a.body);
        assert!(a.body.contains("client certificate required"), "{}", a.body);
    }
    // A certificate from another CA fails the handshake.
    let stranger = client_config(&pki.ca_pem, Some(&Pki::new().client()));
    let a = try_https(&host, stranger, "GET", "/api/v1/health", "");
    assert!(a.is_err(), "a foreign client certificate was accepted");
    // With a certificate: one accepted write, one 404, one 400.
    let a = https(
        &host,
        &known,
        "POST",
        "/api/v1/processes/web/scale",
        r#"{"desired": 2}"#,
    );
    assert_eq!(a.status, 202, "{}", a.body);
    let a = https(
        &host,
        &known,
        "POST",
        "/api/v1/processes/nope/scale",
        r#"{"desired": 2}"#,
    );
    assert_eq!(a.status, 404, "{}", a.body);
    let a = https(&host, &known, "POST", "/api/v1/processes/web/scale", "{}");
    assert_eq!(a.status, 400, "{}", a.body);
    let a = https(&host, &known, "POST", "/api/v1/processes/web-1/restart", "");
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(
        https(&host, &known, "GET", "/api/v1/processes", "").status,
        200
    );

    let lines = wait_for("two audit lines", DEADLINE, || {
        let l = audit_lines(&m);
        (l.len() >= 2).then_some(l)
    });
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("[phpeek-pm] audit 127.0.0.1:")
            && lines[0].ends_with(" POST /api/v1/processes/web/scale 202"),
        "{lines:?}"
    );
    assert!(
        lines[1].ends_with(" POST /api/v1/processes/web-1/restart 202"),
        "{lines:?}"
    );

    // Metrics refuse the handshake without a certificate.
    let metrics = m.metrics_url();
    assert!(metrics.starts_with("https://"), "{metrics}");
    let mhost = host_of(&metrics);
    let refused = try_https(&mhost, Arc::clone(&anonymous), "GET", "/metrics", "");
    assert!(refused.is_err(), "metrics answered without a certificate");
    let a = https(&mhost, &known, "GET", "/metrics", "");
    assert_eq!(a.status, 200);
    assert!(a.body.contains("phpeek_pm_up 1"), "{}", a.body);

    // The CLI with --cert/--key gets in; without them it gets the 401.
    let api = format!("https://localhost:{}", host.rsplit(':').next().unwrap());
    let (ca, cert, key) = (
        path_in(&m, "ca.pem"),
        path_in(&m, "client.pem"),
        path_in(&m, "client.key"),
    );
    let run = cli(&m, &["--api", &api, "--cacert", &ca, "status"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("client certificate required"),
        "{}",
        run.stderr
    );
    let run = cli(
        &m,
        &[
            "--api", &api, "--cacert", &ca, "--cert", &cert, "--key", &key, "stop", "web-2",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    wait_for("the CLI's audit line", DEADLINE, || {
        let l = audit_lines(&m);
        (l.len() == 3 && l[2].ends_with(" POST /api/v1/processes/web-2/stop 202")).then_some(())
    });
    let run = cli(
        &m,
        &["--api", &api, "--cacert", &ca, "--cert", &cert, "status"],
    );
    assert_eq!(run.code, 2, "--cert without --key: {}", run.stderr);
    assert_eq!(audit_lines(&m).len(), 3);
}

#[test]
fn a_rotated_certificate_is_served_after_sighup_and_after_reload() {
    let pki = Pki::new();
    let mut leaves = None;
    let mut m = Manager::start_with(&tls_config(SERVER_FILES, ""), &[], |dir| {
        leaves = Some(write_pki(&pki, dir));
    });
    let (first, _) = leaves.unwrap();
    let host = host_of(&m.api());
    let config = client_config(&pki.ca_pem, None);
    assert_eq!(
        https(&host, &config, "GET", "/api/v1/health", "").served,
        first.der
    );

    // New files at the same paths, then SIGHUP.
    let second = pki.server();
    second.write(m.dir.path(), "server");
    m.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for("the second certificate served", DEADLINE, || {
        (https(&host, &config, "GET", "/api/v1/health", "").served == second.der).then_some(())
    });
    m.wait_stderr("API TLS: certificate re-read from");

    // A broken key: the reload is refused with the path, the old pair serves on.
    std::fs::write(m.path("server.key"), "not a key\n").unwrap();
    let a = https(&host, &config, "POST", "/api/v1/reload", "");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("global.api_tls.key"), "{}", a.body);
    assert!(a.body.contains(&path_in(&m, "server.key")), "{}", a.body);
    assert_eq!(
        https(&host, &config, "GET", "/api/v1/health", "").served,
        second.der
    );

    // A third pair through POST /api/v1/reload.
    let third = pki.server();
    third.write(m.dir.path(), "server");
    let a = https(&host, &config, "POST", "/api/v1/reload", "");
    assert_eq!(a.status, 202, "{}", a.body);
    wait_for("the third certificate served", DEADLINE, || {
        (https(&host, &config, "GET", "/api/v1/health", "").served == third.der).then_some(())
    });
    assert!(m.running());
}

/// Starts the manager on `yaml` (after `prepare`), expecting exit 2 with
/// one error line containing `needle`, and no process started.
fn refused_at_start(yaml: &str, prepare: impl FnOnce(&Path), needle: &str) {
    let yaml = format!(
        "{TEST_GLOBALS}{yaml}processes:\n  web:\n    command: [\"sh\", \"-c\", \"touch $DIR/started; sleep 30\"]\n"
    );
    let mut m = Manager::start_with(&yaml, &[], prepare);
    assert_eq!(m.wait_exit(DEADLINE), 2, "{}", m.stderr());
    let err = m.stderr();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(needle), "{err}");
    assert!(!m.path("started").exists());
    let check = cli(&m, &["check-config", "-c", &path_in(&m, "phpeek-pm.yaml")]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert_eq!(check.stderr.trim_end(), lines[0]);
    assert_eq!(check.stdout, "");
}

#[test]
fn bad_tls_files_stop_check_config_and_start() {
    let pki = Pki::new();
    // Missing file: the position of `cert` and the path.
    refused_at_start(
        "  api_tls:\n    cert: $DIR/missing.pem\n    key: $DIR/server.key\n",
        |dir| {
            write_pki(&pki, dir);
        },
        ":9:11: global.api_tls.cert: cannot read ",
    );
    // A key of another certificate.
    refused_at_start(
        "  metrics_tls:\n    cert: $DIR/server.pem\n    key: $DIR/client.key\n",
        |dir| {
            write_pki(&pki, dir);
        },
        ":10:10: global.metrics_tls.key: the key in ",
    );
    // An expired certificate.
    refused_at_start(
        "  api_tls: { cert: $DIR/old.pem, key: $DIR/old.key }\n",
        |dir| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
            let cert = p.self_signed(&key).unwrap();
            std::fs::write(dir.join("old.pem"), cert.pem()).unwrap();
            std::fs::write(dir.join("old.key"), key.serialize_pem()).unwrap();
        },
        "expired on 2021-01-01 00:00:00 UTC",
    );
}

/// One request over the API's unix socket; the raw answer.
fn over_socket(path: &Path, method: &str, route: &str, body: &str) -> String {
    let mut sock = std::os::unix::net::UnixStream::connect(path).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let req = format!(
        "{method} {route} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    sock.read_to_string(&mut raw).unwrap();
    raw
}

#[test]
fn json_audit_lines_whatever_the_log_level_and_the_unix_socket_peer() {
    let yaml = format!(
        "{TEST_GLOBALS}  log_format: json\n  log_level: error\n  api_socket: $DIR/api.sock\n{WEB}"
    );
    let m = Manager::start(&yaml);
    let sock = m.path("api.sock");
    wait_for("the API socket", DEADLINE, || sock.exists().then_some(()));
    let raw = wait_for("the scale answer", DEADLINE, || {
        let raw = over_socket(
            &sock,
            "POST",
            "/api/v1/processes/web/scale",
            r#"{"desired": 2}"#,
        );
        (!raw.starts_with("HTTP/1.1 409")).then_some(raw)
    });
    assert!(raw.starts_with("HTTP/1.1 202"), "{raw}");
    let raw = over_socket(&sock, "POST", "/api/v1/processes/nope/stop", "");
    assert!(raw.starts_with("HTTP/1.1 404"), "{raw}");
    let raw = over_socket(&sock, "GET", "/api/v1/processes", "");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let raw = over_socket(&sock, "POST", "/api/v1/processes/web-1/restart", "");
    assert!(raw.starts_with("HTTP/1.1 202"), "{raw}");

    let audits = wait_for("two JSON audit lines", DEADLINE, || {
        let lines: Vec<serde_json::Value> = m
            .stderr()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["audit"] == serde_json::json!(true))
            .collect();
        (lines.len() >= 2).then_some(lines)
    });
    assert_eq!(audits.len(), 2, "{audits:?}");
    let a = &audits[0];
    assert_eq!(a["process"], "phpeek-pm");
    assert_eq!(a["level"], "info");
    assert!(a["ts"].is_string());
    assert_eq!(a["peer"], "unix");
    assert_eq!(a["method"], "POST");
    assert_eq!(a["path"], "/api/v1/processes/web/scale");
    assert_eq!(a["status"], 202);
    assert_eq!(a["msg"], "audit unix POST /api/v1/processes/web/scale 202");
    assert_eq!(audits[1]["path"], "/api/v1/processes/web-1/restart");
    // Nothing else at log_level: error.
    assert!(!m.stderr().contains("listening"), "{}", m.stderr());
}
