//! `global.api_tls` / `global.metrics_tls` (SPEC §13): shapes, positions
//! and the file checks, with certificates made at test time.
#![allow(clippy::unwrap_used)]

use phpeek_config::{parse_str, to_yaml, Config, ConfigErrors, Env, TlsFiles};

const WEB: &str = "processes:\n  web:\n    command: [\"./web\"]\n";

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_str(text, "phpeek-pm.yaml", &Env::default())
}

fn errs(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(c) => panic!("accepted: {c:#?}"),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate signed by it (files `ca.pem`,
    /// `server.pem`, `server.key`), and a stray key `other.key`.
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let w = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        w("ca.pem", ca_cert.pem());
        w("server.pem", leaf.pem());
        w("server.key", key.serialize_pem());
        w(
            "other.key",
            rcgen::KeyPair::generate().unwrap().serialize_pem(),
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[test]
fn both_listeners_take_tls_files() {
    let pki = Pki::new();
    let text = format!(
        "global:\n  api_tls:\n    cert: {}\n    key: {}\n    client_ca: {}\n  metrics_tls: {{ cert: {}, key: {} }}\n{WEB}",
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
        pki.path("server.pem"),
        pki.path("server.key"),
    );
    let c = parse(&text).unwrap();
    let api = c.global.api_tls.clone().unwrap();
    assert_eq!(
        api,
        TlsFiles {
            cert: pki.path("server.pem").into(),
            key: pki.path("server.key").into(),
            client_ca: Some(pki.path("ca.pem").into()),
        }
    );
    assert!(api.wants_client_cert());
    assert!(!c.global.metrics_tls.clone().unwrap().wants_client_cert());
    // check-config's output loads back to the same config.
    assert_eq!(parse(&to_yaml(&c)).unwrap(), c);
    // Absent or null: no TLS.
    let plain = parse(&format!("global:\n  api_tls: ~\n{WEB}")).unwrap();
    assert_eq!(plain.global.api_tls, None);
    assert_eq!(plain.global.metrics_tls, None);
}

#[test]
fn shape_mistakes_have_positions() {
    let e = errs(&format!(
        "global:\n  api_tls:\n    cert: a.pem\n    kee: b.pem\n  metrics_tls: yes\n{WEB}"
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(
        e[0],
        "phpeek-pm.yaml:4:5: global.api_tls.kee: unknown key (did you mean `key`?)"
    );
    assert_eq!(
        e[1],
        "phpeek-pm.yaml:5:16: global.metrics_tls: expected a mapping like { cert: server.pem, key: server.key }"
    );
    let e = errs(&format!("global:\n  api_tls:\n    cert: a.pem\n{WEB}"));
    assert_eq!(
        e,
        ["phpeek-pm.yaml:3:5: global.api_tls: needs both `cert` and `key` (PEM files), e.g. { cert: server.pem, key: server.key }"]
    );
    let e = errs(&format!(
        "global:\n  api_tls: {{ cert: \"\", key: [x] }}\n{WEB}"
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("phpeek-pm.yaml:2:20: global.api_tls.cert: must be"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("phpeek-pm.yaml:2:29: global.api_tls.key: expected a string"),
        "{e:?}"
    );
    // A mapping cannot come from a scalar override.
    let env = Env::from_pairs([("PHPEEK_PM_GLOBAL_API_TLS", "/x.pem")]);
    let e = parse_str(WEB, "phpeek-pm.yaml", &env)
        .unwrap_err()
        .to_string();
    assert!(e.contains("PHPEEK_PM_GLOBAL_API_TLS"), "{e}");
}

#[test]
fn bad_files_are_one_line_each_naming_the_path() {
    let pki = Pki::new();
    let missing = pki.path("missing.pem");
    let e = errs(&format!(
        "global:\n  api_tls:\n    cert: {missing}\n    key: {}\n{WEB}",
        pki.path("server.key")
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!(
            "phpeek-pm.yaml:3:11: global.api_tls.cert: cannot read {missing}: No such file"
        )),
        "{e:?}"
    );

    let e = errs(&format!(
        "global:\n  metrics_tls:\n    cert: {}\n    key: {}\n{WEB}",
        pki.path("server.pem"),
        pki.path("other.key")
    ));
    assert_eq!(
        e,
        [format!(
            "phpeek-pm.yaml:4:10: global.metrics_tls.key: the key in {} does not match the certificate in {}",
            pki.path("other.key"),
            pki.path("server.pem")
        )]
    );

    // A key where a certificate belongs, and a directory as the CA.
    let e = errs(&format!(
        "global:\n  api_tls:\n    cert: {}\n    key: {}\n    client_ca: {}\n{WEB}",
        pki.path("server.key"),
        pki.path("server.key"),
        pki.dir.path().display()
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains("global.api_tls.cert: ") && e[0].contains("holds no PEM certificate"));
    assert!(e[1].starts_with("phpeek-pm.yaml:5:16: global.api_tls.client_ca: "));
    assert!(e[1].ends_with("is not a regular file"), "{e:?}");
}

#[test]
fn an_expired_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 6, 30);
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    let e = errs(&format!(
        "global:\n  api_tls: {{ cert: {}, key: {} }}\n{WEB}",
        c.display(),
        k.display()
    ));
    assert_eq!(
        e,
        [format!(
            "phpeek-pm.yaml:2:20: global.api_tls.cert: the certificate in {} expired on 2020-06-30 00:00:00 UTC",
            c.display()
        )]
    );
}

#[test]
fn client_certificates_count_as_api_protection() {
    let pki = Pki::new();
    let tls = |ca: bool| {
        let ca = if ca {
            format!(", client_ca: {}", pki.path("ca.pem"))
        } else {
            String::new()
        };
        format!(
            "global:\n  api_host: 0.0.0.0\n  api_tls: {{ cert: {}, key: {}{ca} }}\n{WEB}",
            pki.path("server.pem"),
            pki.path("server.key")
        )
    };
    assert!(parse(&tls(true)).is_ok());
    let e = errs(&tls(false));
    assert_eq!(
        e,
        ["phpeek-pm.yaml:2:13: global.api_host: refusing a non-loopback API (`0.0.0.0`) without api_auth; set api_auth, api_tls.client_ca or api_insecure: true"]
    );
}

#[test]
fn the_schema_knows_the_keys() {
    let schema = phpeek_config::json_schema().to_string();
    assert!(schema.contains("api_tls") && schema.contains("metrics_tls"));
    assert!(schema.contains("client_ca"));
}
