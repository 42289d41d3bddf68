//! The management API and the metrics endpoint.
//!
//! Listeners are bound before any child starts, so a taken port is a clear
//! startup error rather than a manager running without its API. Serving runs
//! in its own tasks and only ever reads snapshots or sends commands, so a
//! slow or stuck client cannot delay the supervisor.

pub mod api;
pub mod audit;
pub mod auth;
pub mod metrics;
pub mod openapi;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use phpeek_config::Config;
use phpeek_core::Handle;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tower_service::Service;

use crate::tls::{TlsEndpoint, TlsListener, TlsSwitch};

/// Connections served at once per listener; more are closed at accept, so
/// idle or hostile clients cannot use up the manager's descriptors (which
/// it needs for its children's pipes).
const MAX_CONNECTIONS: usize = 256;
/// A client must send a complete request head within this time, on a new
/// connection and between requests on a kept-alive one.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS handshake must finish within this time, so a client that never
/// sends its hello cannot hold a connection slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Who is on the other end of a connection; every request of the
/// connection carries it as an extension.
#[derive(Debug, Clone)]
pub struct Peer {
    /// `127.0.0.1:53122`, or `unix` for the API socket.
    pub addr: Arc<str>,
    /// The client presented a certificate the listener's `client_ca`
    /// verified.
    pub client_cert: bool,
    /// The listener has a `client_ca`: routes but health and ready need a
    /// client certificate.
    pub client_cert_required: bool,
}

/// How a listener names the peer of a connection.
pub trait PeerName {
    fn peer_name(&self) -> String;
}

impl PeerName for SocketAddr {
    fn peer_name(&self) -> String {
        self.to_string()
    }
}

impl PeerName for tokio::net::unix::SocketAddr {
    fn peer_name(&self) -> String {
        "unix".to_string()
    }
}

/// Serves HTTP/1.1 on one accepted connection (plain or TLS).
async fn serve_connection<I>(io: I, app: axum::Router, peer: Peer)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        let mut app = app.clone();
        async move { app.call(req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES.max(8192))
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let _ = conn.await;
}

/// Serves `app` on `listener` with a connection cap and a header timeout,
/// over TLS when `tls` is given (with a handshake timeout).
async fn serve_limited<L>(
    mut listener: L,
    app: axum::Router,
    what: &'static str,
    tls: Option<watch::Receiver<Arc<TlsEndpoint>>>,
) where
    L: axum::serve::Listener,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    L::Addr: PeerName,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut warned = false;
    loop {
        let (io, addr) = listener.accept().await;
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if !warned {
                tracing::warn!("{what}: {MAX_CONNECTIONS} connections open; closing new ones");
                warned = true;
            }
            drop(io);
            continue;
        };
        warned = false;
        let app = app.clone();
        let endpoint = tls.as_ref().map(|rx| Arc::clone(&rx.borrow()));
        let addr: Arc<str> = Arc::from(addr.peer_name());
        tokio::spawn(async move {
            match endpoint {
                None => {
                    let peer = Peer {
                        addr,
                        client_cert: false,
                        client_cert_required: false,
                    };
                    serve_connection(io, app, peer).await;
                }
                Some(ep) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, ep.acceptor.accept(io)).await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            let client_cert = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .is_some_and(|c| !c.is_empty());
                            let peer = Peer {
                                addr,
                                client_cert,
                                client_cert_required: ep.client_ca,
                            };
                            serve_connection(stream, app, peer).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!("{what}: TLS handshake with {addr} failed: {e}")
                        }
                        Err(_) => tracing::debug!("{what}: TLS handshake with {addr} timed out"),
                    }
                }
            }
            drop(slot);
        });
    }
}

/// Sockets bound at startup.
pub struct Listeners {
    api: Option<TcpListener>,
    api_unix: Option<(UnixListener, PathBuf)>,
    metrics: Option<TcpListener>,
    api_tls: Option<TlsSwitch>,
    metrics_tls: Option<TlsSwitch>,
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen for the {what} on {addr}: {source}")]
    Tcp {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot listen for the API on unix socket {path}: {source}")]
    Unix {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serve TLS: {0}")]
    Tls(#[from] tls::TlsSetupError),
}

async fn bind_tcp(what: &'static str, host: &str, port: u16) -> Result<TcpListener, BindError> {
    // A bare IPv6 address needs brackets to be joined with a port.
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    TcpListener::bind(&addr)
        .await
        .map_err(|source| BindError::Tcp { what, addr, source })
}

fn url_of(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

impl Listeners {
    /// Binds every enabled endpoint of `config`.
    pub async fn bind(config: &Config) -> Result<Listeners, BindError> {
        let g = &config.global;
        let mut out = Listeners {
            api: None,
            api_unix: None,
            metrics: None,
            api_tls: None,
            metrics_tls: None,
        };
        if g.api_enabled {
            let l = bind_tcp("API", &g.api_host, g.api_port).await?;
            if let Some(files) = &g.api_tls {
                out.api_tls = Some(TlsSwitch::new(TlsListener::Api, files)?);
            }
            if let Ok(a) = l.local_addr() {
                tracing::info!("API listening on {}", url_of(a, out.api_tls.is_some()));
            }
            out.api = Some(l);
            if let Some(path) = &g.api_socket {
                // A socket file left by an earlier run would make bind fail.
                if std::fs::symlink_metadata(path)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    let _ = std::fs::remove_file(path);
                }
                let l = UnixListener::bind(path).map_err(|source| BindError::Unix {
                    path: path.clone(),
                    source,
                })?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
                tracing::info!("API listening on unix socket {}", path.display());
                out.api_unix = Some((l, path.clone()));
            }
        }
        if g.metrics_enabled {
            let l = bind_tcp("metrics", &g.metrics_host, g.metrics_port).await?;
            if let Some(files) = &g.metrics_tls {
                out.metrics_tls = Some(TlsSwitch::new(TlsListener::Metrics, files)?);
            }
            if let Ok(a) = l.local_addr() {
                let url = url_of(a, out.metrics_tls.is_some());
                tracing::info!("metrics listening on {url}{}", g.metrics_path);
            }
            out.metrics = Some(l);
        }
        Ok(out)
    }

    /// Serves every bound endpoint in background tasks.
    pub fn serve(self, config: &Config, handle: Handle) {
        let state = api::ApiState::new(
            handle.clone(),
            config.global.api_auth.as_deref().map(auth::TokenCheck::new),
        );
        let mut switches = Vec::new();
        let mut plain = Vec::new();
        if let Some(l) = self.api {
            let rx = self.api_tls.as_ref().map(|s| s.tx.subscribe());
            tokio::spawn(serve_limited(l, api::router(state.clone()), "API", rx));
            match self.api_tls {
                Some(s) => switches.push(s),
                None => plain.push(TlsListener::Api),
            }
        }
        // The socket file's permissions guard it: no TLS, no client
        // certificates (api_auth still applies).
        if let Some((l, _path)) = self.api_unix {
            tokio::spawn(serve_limited(l, api::router(state), "API socket", None));
        }
        if let Some(l) = self.metrics {
            let app = metrics::router(handle.clone(), &config.global.metrics_path);
            let rx = self.metrics_tls.as_ref().map(|s| s.tx.subscribe());
            tokio::spawn(serve_limited(l, app, "metrics", rx));
            match self.metrics_tls {
                Some(s) => switches.push(s),
                None => plain.push(TlsListener::Metrics),
            }
        }
        tokio::spawn(tls::follow_reloads(
            handle.applied_config(),
            switches,
            plain,
        ));
    }
}
