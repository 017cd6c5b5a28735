//! The near-cache channel's socket, dialed here rather than by redis-rs so
//! that a lookup can peek it (see the engine's
//! [`sessiond_engine::near_cache::channel_socket`]): TCP, TLS over TCP, or a
//! Unix socket.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sessiond_engine::near_cache::channel_socket::{Dialed, probed_tcp, watched};
use tokio::net::UnixStream;
use tokio_rustls::TlsConnector;

/// Dial the server of `info` (TCP, TLS over TCP, or a Unix socket) within
/// `timeout`. TLS verifies the server against `tls_ca_pem` when given, else
/// against the system's roots.
pub(crate) async fn dial(
    info: &ConnectionInfo,
    tls_ca_pem: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<Dialed> {
    tokio::time::timeout(timeout, dial_now(info, tls_ca_pem))
        .await
        .unwrap_or_else(|_| Err(io::Error::from(io::ErrorKind::TimedOut)))
}

async fn dial_now(info: &ConnectionInfo, tls_ca_pem: Option<&[u8]>) -> io::Result<Dialed> {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => {
            let (tcp, socket) = probed_tcp(host, *port).await?;
            Ok(watched(Box::new(tcp), socket))
        }
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            ..
        } => {
            if *insecure {
                return Err(io::Error::other(
                    "TLS without certificate checks is not supported",
                ));
            }
            let (tcp, socket) = probed_tcp(host, *port).await?;
            let name = ServerName::try_from(host.clone()).map_err(io::Error::other)?;
            let connector = TlsConnector::from(Arc::new(tls_config(tls_ca_pem)?));
            let tls = connector.connect(name, tcp).await?;
            Ok(watched(Box::new(tls), socket))
        }
        ConnectionAddr::Unix(path) => {
            let unix = UnixStream::connect(path).await?;
            let std = unix.into_std()?;
            let socket = socket2::Socket::from(std.try_clone()?);
            Ok(watched(Box::new(UnixStream::from_std(std)?), socket))
        }
        _ => Err(io::Error::other("unsupported redis address")),
    }
}

/// Roots from `ca_pem`, else the system's (as the main connection's).
fn tls_config(ca_pem: Option<&[u8]>) -> io::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(cert.map_err(io::Error::other)?)
                    .map_err(io::Error::other)?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system certificate rustls cannot use is skipped, as
                // redis-rs does.
                let _ = roots.add(cert);
            }
        }
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}
