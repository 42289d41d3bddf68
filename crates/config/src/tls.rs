//! The TLS material named by `global.api_tls` / `global.metrics_tls`
//! (SPEC §13): PEM files read, parsed and checked in one place, so that a
//! file the loader accepted is one the server can serve.
//!
//! Invariants:
//! * [`load_tls`] is the only reader of these files. The validator calls it
//!   (so `check-config`, start and reload reject a bad file with its path),
//!   and the server calls it again to build its rustls configuration at
//!   start and after every applied reload.
//! * Only regular files are read, at most [`MAX_PEM_BYTES`] each, so a path
//!   to a FIFO or a device can neither block nor exhaust the loader.
//! * Every certificate (the chain and the client CA file) must be inside
//!   its validity end; the key must match the first certificate of the
//!   chain. `notBefore` is not checked: a container whose clock lags at
//!   boot should not refuse to start.
//! * One crypto provider, ring ([`crypto_provider`]), for the keys here,
//!   the server and the CLI's client.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use crate::TlsFiles;

/// Largest PEM file read.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// The crypto provider of every TLS use in phpeek-pm (ring).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which of the three files a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFileKey {
    Cert,
    Key,
    ClientCa,
}

impl TlsFileKey {
    /// The key's name in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsFileKey::Cert => "cert",
            TlsFileKey::Key => "key",
            TlsFileKey::ClientCa => "client_ca",
        }
    }
}

/// One problem with a TLS file; the message names the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", key.as_str())]
pub struct TlsProblem {
    pub key: TlsFileKey,
    pub message: String,
}

/// Checked material, ready for a rustls server configuration.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The chain and its key (matching each other).
    pub certified: Arc<CertifiedKey>,
    /// Trust anchors for client certificates, when `client_ca` is set.
    pub client_roots: Option<Arc<RootCertStore>>,
}

/// Reads and checks the files of one `*_tls` setting; every problem is
/// reported, not only the first.
pub fn load_tls(files: &TlsFiles, now: SystemTime) -> Result<TlsMaterial, Vec<TlsProblem>> {
    let now = unix_seconds(now);
    let mut problems = Vec::new();
    let mut bad = |key: TlsFileKey, message: String| problems.push(TlsProblem { key, message });

    let chain = match read_certs(&files.cert, now) {
        Ok(c) => Some(c),
        Err(m) => {
            bad(TlsFileKey::Cert, m);
            None
        }
    };
    let key = match read_key(&files.key) {
        Ok(k) => Some(k),
        Err(m) => {
            bad(TlsFileKey::Key, m);
            None
        }
    };
    let client_roots = match &files.client_ca {
        None => None,
        Some(path) => match read_certs(path, now).and_then(|c| roots_of(path, c)) {
            Ok(r) => Some(Arc::new(r)),
            Err(m) => {
                bad(TlsFileKey::ClientCa, m);
                None
            }
        },
    };
    let certified = match (chain, key) {
        (Some(chain), Some(key)) => match certify(chain, key, files) {
            Ok(c) => Some(c),
            Err(m) => {
                bad(TlsFileKey::Key, m);
                None
            }
        },
        _ => None,
    };
    match certified {
        Some(certified) if problems.is_empty() => Ok(TlsMaterial {
            certified: Arc::new(certified),
            client_roots,
        }),
        _ => Err(problems),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if meta.len() > MAX_PEM_BYTES {
        return Err(format!("{shown} is larger than 1 MiB; expected a PEM file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    Ok(bytes)
}

fn read_certs(path: &Path, now: i64) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_file(path)?;
    let shown = path.display();
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(&bytes) {
        certs.push(item.map_err(|e| format!("{shown} is not valid PEM: {e}"))?);
    }
    if certs.is_empty() {
        return Err(format!(
            "{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    let many = certs.len() > 1;
    for (i, cert) in certs.iter().enumerate() {
        let which = if many {
            format!("certificate {} in {shown}", i + 1)
        } else {
            format!("the certificate in {shown}")
        };
        let Some(validity) = validity_of(cert) else {
            return Err(format!("{which} is not a readable X.509 certificate"));
        };
        if validity.not_after < now {
            return Err(format!(
                "{which} expired on {}",
                format_utc(validity.not_after)
            ));
        }
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read_file(path)?;
    let shown = path.display();
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "{shown} holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
        ),
        e => format!("{shown} is not valid PEM: {e}"),
    })
}

fn roots_of(path: &Path, certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            format!(
                "certificate {} in {} is not a usable CA certificate: {e}",
                i + 1,
                path.display()
            )
        })?;
    }
    Ok(roots)
}

fn certify(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    files: &TlsFiles,
) -> Result<CertifiedKey, String> {
    let provider = crypto_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{} is not a usable private key: {e}", files.key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(format!(
                "the key in {} does not match the certificate in {}",
                files.key.display(),
                files.cert.display()
            ))
        }
        Err(e) => Err(format!(
            "cannot pair {} with the certificate in {}: {e}",
            files.key.display(),
            files.cert.display()
        )),
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A certificate's validity period, in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// One DER element: (tag, content, rest). Only the short tag form, which
/// is all an X.509 certificate's outer structure uses.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((tag, content, rest))
}

fn expect_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match der_element(input)? {
        (t, content, rest) if t == tag => Some((content, rest)),
        _ => None,
    }
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The validity of a DER certificate: `Certificate ::= SEQUENCE {
/// tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
/// signature, issuer, validity SEQUENCE { notBefore, notAfter }, … } … }`.
pub fn validity_of(cert: &[u8]) -> Option<Validity> {
    let (certificate, _) = expect_element(cert, SEQUENCE)?;
    let (tbs, _) = expect_element(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if let Some((VERSION, _, after)) = der_element(rest) {
        rest = after;
    }
    let (_, rest) = expect_element(rest, INTEGER)?;
    let (_, rest) = expect_element(rest, SEQUENCE)?;
    let (_, rest) = expect_element(rest, SEQUENCE)?;
    let (validity, _) = expect_element(rest, SEQUENCE)?;
    let (t1, before, rest) = der_element(validity)?;
    let (t2, after, _) = der_element(rest)?;
    Some(Validity {
        not_before: parse_time(t1, before)?,
        not_after: parse_time(t2, after)?,
    })
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ` (the DER
/// forms) as unix seconds.
fn parse_time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = text.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |s: &[u8]| s.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let (yy, rest) = digits.split_at_checked(2)?;
            let yy = num(yy);
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, rest)
        }
        (GENERALIZED_TIME, 14) => {
            let (yyyy, rest) = digits.split_at_checked(4)?;
            (num(yyyy), rest)
        }
        _ => return None,
    };
    let field = |i: usize| rest.get(i..i + 2).map(num);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(60))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2024-01-02 03:04:05 UTC`.
fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        tod / 3600,
        (tod % 3600) / 60,
        tod % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn calendar_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }

    #[test]
    fn der_times() {
        assert_eq!(parse_time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(
            parse_time(GENERALIZED_TIME, b"20991231235959Z"),
            Some(4_102_444_799)
        );
        for bad in [
            &b"7001010000Z"[..],
            b"700101000000",
            b"701301000000Z",
            b"7x0101000000Z",
        ] {
            assert_eq!(parse_time(UTC_TIME, bad), None);
        }
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01\x00",
        ] {
            assert_eq!(validity_of(bad), None);
        }
    }

    fn cert_with(not_after: (i32, u8, u8)) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2001, 2, 3);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        (params.self_signed(&key).unwrap(), key)
    }

    #[test]
    fn validity_of_a_generated_certificate() {
        let (cert, _) = cert_with((2031, 4, 5));
        let v = validity_of(cert.der()).unwrap();
        assert_eq!(format_utc(v.not_before), "2001-02-03 00:00:00 UTC");
        assert_eq!(format_utc(v.not_after), "2031-04-05 00:00:00 UTC");
    }

    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_ca: None,
        }
    }

    #[test]
    fn good_pair_loads_and_a_foreign_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_with((2099, 1, 1));
        let f = files(dir.path(), &cert.pem(), &key.serialize_pem());
        let m = load_tls(&f, SystemTime::now()).unwrap();
        assert!(m.client_roots.is_none());

        let other = rcgen::KeyPair::generate().unwrap();
        let f = files(dir.path(), &cert.pem(), &other.serialize_pem());
        let errs = load_tls(&f, SystemTime::now()).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, TlsFileKey::Key);
        assert!(errs[0]
            .message
            .contains("does not match the certificate in"));
    }

    #[test]
    fn expired_unreadable_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_with((2020, 1, 1));
        let mut f = files(dir.path(), &cert.pem(), &key.serialize_pem());
        f.client_ca = Some(dir.path().join("missing-ca.pem"));
        let errs = load_tls(&f, SystemTime::now()).unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(errs.len(), 2, "{text:?}");
        assert!(text[0].starts_with("cert: the certificate in "), "{text:?}");
        assert!(
            text[0].ends_with("expired on 2020-01-01 00:00:00 UTC"),
            "{text:?}"
        );
        assert!(text[1].contains("missing-ca.pem: No such file"), "{text:?}");

        let f = files(dir.path(), "hello", "");
        let errs = load_tls(&f, SystemTime::now()).unwrap_err();
        assert!(errs[0].message.contains("holds no PEM certificate"));
        assert!(errs[1].message.contains("holds no PEM private key"));

        let f = TlsFiles {
            cert: dir.path().to_path_buf(),
            key: "/dev/zero".into(),
            client_ca: None,
        };
        let errs = load_tls(&f, SystemTime::now()).unwrap_err();
        assert!(errs[0].message.ends_with("is not a regular file"));
        assert!(errs[1].message.ends_with("is not a regular file"));
    }
}
