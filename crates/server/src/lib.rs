//! The management API and the metrics endpoint.
//!
//! Listeners are bound before any child starts, so a taken port is a clear
//! startup error rather than a manager running without its API. Serving runs
//! in its own tasks and only ever reads snapshots or sends commands, so a
//! slow or stuck client cannot delay the supervisor.

pub mod api;
pub mod auth;
pub mod metrics;
pub mod openapi;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use phpeek_config::Config;
use phpeek_core::Handle;
use tokio::net::{TcpListener, UnixListener};

/// Connections served at once per listener; more are closed at accept, so
/// idle or hostile clients cannot use up the manager's descriptors (which
/// it needs for its children's pipes).
const MAX_CONNECTIONS: usize = 256;
/// A client must send a complete request head within this time, on a new
/// connection and between requests on a kept-alive one.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Serves `app` on `listener` with a connection cap and a header timeout.
async fn serve_limited<L>(mut listener: L, app: axum::Router, what: &'static str)
where
    L: axum::serve::Listener,
    L::Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut warned = false;
    loop {
        let (io, _addr) = listener.accept().await;
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if !warned {
                tracing::warn!("{what}: {MAX_CONNECTIONS} connections open; closing new ones");
                warned = true;
            }
            drop(io);
            continue;
        };
        warned = false;
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES.max(8192))
                .serve_connection(hyper_util::rt::TokioIo::new(io), service);
            let _ = conn.await;
            drop(slot);
        });
    }
}

/// Sockets bound at startup.
pub struct Listeners {
    api: Option<TcpListener>,
    api_unix: Option<(UnixListener, PathBuf)>,
    metrics: Option<TcpListener>,
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

fn url_of(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

impl Listeners {
    /// Binds every enabled endpoint of `config`.
    pub async fn bind(config: &Config) -> Result<Listeners, BindError> {
        let g = &config.global;
        let mut out = Listeners {
            api: None,
            api_unix: None,
            metrics: None,
        };
        if g.api_enabled {
            let l = bind_tcp("API", &g.api_host, g.api_port).await?;
            if let Ok(a) = l.local_addr() {
                tracing::info!("API listening on {}", url_of(a));
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
            if let Ok(a) = l.local_addr() {
                tracing::info!("metrics listening on {}{}", url_of(a), g.metrics_path);
            }
            out.metrics = Some(l);
        }
        Ok(out)
    }

    /// Serves every bound endpoint in background tasks.
    pub fn serve(self, config: &Config, handle: Handle) {
        let state = api::ApiState {
            handle: handle.clone(),
            auth: config.global.api_auth.as_deref().map(auth::TokenCheck::new),
        };
        if let Some(l) = self.api {
            tokio::spawn(serve_limited(l, api::router(state.clone()), "API"));
        }
        if let Some((l, _path)) = self.api_unix {
            tokio::spawn(serve_limited(l, api::router(state), "API socket"));
        }
        if let Some(l) = self.metrics {
            let app = metrics::router(handle, &config.global.metrics_path);
            tokio::spawn(serve_limited(l, app, "metrics"));
        }
    }
}
