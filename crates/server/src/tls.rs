//! TLS for the API and metrics listeners (SPEC §13).
//!
//! Invariants:
//! * Whether a listener speaks TLS is fixed when it is bound, like its
//!   address. What it serves (certificate, key, client CA) lives in a
//!   `watch` channel that every new connection reads once, so a reload
//!   swaps it without touching connections already open.
//! * A swap happens only after a reload was applied (the loader already
//!   checked the new files) and only when the files read again build a
//!   configuration; otherwise the previous material keeps serving.
//! * The API asks for a client certificate but lets a handshake without
//!   one through, so probes reach health and ready; the router answers
//!   401 elsewhere. Metrics refuse such a handshake.
//! * TLS 1.2 and 1.3 (rustls's safe defaults), ALPN `http/1.1` only.

use std::sync::Arc;
use std::time::SystemTime;

use phpeek_config::tls::{crypto_provider, load_tls, TlsMaterial};
use phpeek_config::{Config, Global, TlsFiles};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// What a listener does with a client that presents no certificate when
/// `client_ca` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCerts {
    /// Handshake goes on; the router decides (the API).
    Optional,
    /// Handshake is refused (metrics).
    Required,
}

/// Which listener: its name in messages and its key in `global`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsListener {
    Api,
    Metrics,
}

impl TlsListener {
    pub fn name(self) -> &'static str {
        match self {
            TlsListener::Api => "API",
            TlsListener::Metrics => "metrics",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            TlsListener::Api => "global.api_tls",
            TlsListener::Metrics => "global.metrics_tls",
        }
    }

    fn client_certs(self) -> ClientCerts {
        match self {
            TlsListener::Api => ClientCerts::Optional,
            TlsListener::Metrics => ClientCerts::Required,
        }
    }

    /// The listener's setting in `g`.
    pub fn files(self, g: &Global) -> Option<&TlsFiles> {
        match self {
            TlsListener::Api => g.api_tls.as_ref(),
            TlsListener::Metrics => g.metrics_tls.as_ref(),
        }
    }
}

/// What one TLS listener serves right now.
pub struct TlsEndpoint {
    pub acceptor: TlsAcceptor,
    /// Requests other than the open routes need a client certificate.
    pub client_ca: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{key}: {problems}")]
pub struct TlsSetupError {
    pub key: &'static str,
    pub problems: String,
}

/// The one certificate of a listener, whatever the client asks for.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

fn server_config(material: &TlsMaterial, certs: ClientCerts) -> Result<ServerConfig, String> {
    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &material.client_roots {
        None => builder.with_no_client_auth(),
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider);
            let verifier = match certs {
                ClientCerts::Optional => verifier.allow_unauthenticated(),
                ClientCerts::Required => verifier,
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(FixedCert(Arc::clone(&material.certified))));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Reads `files` and builds what `listener` serves.
pub fn endpoint(listener: TlsListener, files: &TlsFiles) -> Result<TlsEndpoint, TlsSetupError> {
    let fail = |problems: String| TlsSetupError {
        key: listener.key(),
        problems,
    };
    let material = load_tls(files, SystemTime::now()).map_err(|problems| {
        fail(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let config = server_config(&material, listener.client_certs()).map_err(fail)?;
    Ok(TlsEndpoint {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        client_ca: files.wants_client_cert(),
    })
}

/// The current material of a TLS listener, and the sender a reload swaps.
pub struct TlsSwitch {
    pub listener: TlsListener,
    pub tx: watch::Sender<Arc<TlsEndpoint>>,
}

impl TlsSwitch {
    pub fn new(listener: TlsListener, files: &TlsFiles) -> Result<TlsSwitch, TlsSetupError> {
        let ep = endpoint(listener, files)?;
        Ok(TlsSwitch {
            listener,
            tx: watch::channel(Arc::new(ep)).0,
        })
    }

    /// Re-reads the files named in `config` (after an applied reload).
    fn reload(&self, config: &Config) {
        let (name, key) = (self.listener.name(), self.listener.key());
        let Some(files) = self.listener.files(&config.global) else {
            tracing::warn!(
                "{key} was removed from the file; the {name} keeps TLS until the next start"
            );
            return;
        };
        match endpoint(self.listener, files) {
            Ok(ep) => {
                self.tx.send_replace(Arc::new(ep));
                tracing::info!(
                    "{name} TLS: certificate re-read from {}",
                    files.cert.display()
                );
            }
            Err(e) => tracing::error!("{name} TLS: keeping the previous certificate: {e}"),
        }
    }
}

/// After every applied reload: re-reads the TLS files of `switches`, and
/// warns about TLS added to a listener that started without it.
pub async fn follow_reloads(
    mut applied: watch::Receiver<Arc<Config>>,
    switches: Vec<TlsSwitch>,
    plain: Vec<TlsListener>,
) {
    while applied.changed().await.is_ok() {
        let config = Arc::clone(&applied.borrow_and_update());
        for s in &switches {
            s.reload(&config);
        }
        for l in &plain {
            if l.files(&config.global).is_some() {
                tracing::warn!(
                    "{} was added to the file; the {} speaks TLS from the next start",
                    l.key(),
                    l.name()
                );
            }
        }
    }
}
