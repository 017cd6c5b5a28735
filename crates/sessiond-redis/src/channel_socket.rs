//! The near-cache channel's socket, dialed here rather than by redis-rs so
//! that a lookup can ask, without a round trip, whether anything has arrived
//! that the connection has not applied yet: the kernel's receive queue is
//! peeked (empty, and not at end of stream), and the connection's reader
//! must be idle (it applied everything it took from the socket, since its
//! last read found nothing more). Invalidations the server sent before the
//! lookup are therefore either applied or still on the wire.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

/// What a connection is built on.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<S: AsyncRead + AsyncWrite + Send + Unpin> Stream for S {}

/// A dialed socket: the stream for redis-rs, and its probe.
pub(crate) struct Dialed {
    pub(crate) stream: Watched<Box<dyn Stream>>,
    pub(crate) probe: Probe,
}

/// What [`Probe::state`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketState {
    /// Nothing unread, nothing unapplied.
    Quiet,
    /// Bytes are waiting or being applied.
    Busy,
    /// The peer closed the connection, or it failed.
    Closed,
}

/// Looks at the socket without reading from it.
pub(crate) struct Probe {
    socket: socket2::Socket,
    reading: Arc<AtomicBool>,
}

impl Probe {
    /// The socket's state now.
    pub(crate) fn state(&self) -> SocketState {
        let mut byte = [MaybeUninit::<u8>::uninit()];
        // The socket is non-blocking (it is shared with the runtime).
        let peeked = self.socket.peek(&mut byte);
        // Read after the peek: a reader that took bytes before the peek is
        // still marked as reading until it has applied them.
        let reading = self.reading.load(Ordering::SeqCst);
        match peeked {
            Ok(0) => SocketState::Closed,
            Ok(_) => SocketState::Busy,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if reading {
                    SocketState::Busy
                } else {
                    SocketState::Quiet
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => SocketState::Busy,
            Err(_) => SocketState::Closed,
        }
    }
}

/// A stream that records whether its reader may hold bytes it has not
/// applied: from the start of every read until a read finds nothing.
pub(crate) struct Watched<S> {
    inner: S,
    reading: Arc<AtomicBool>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.reading.store(true, Ordering::SeqCst);
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_pending() {
            self.reading.store(false, Ordering::SeqCst);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

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

/// A TCP connection and a second handle on its socket for peeking.
async fn probed_tcp(host: &str, port: u16) -> io::Result<(TcpStream, socket2::Socket)> {
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let std = tcp.into_std()?;
    let socket = socket2::Socket::from(std.try_clone()?);
    Ok((TcpStream::from_std(std)?, socket))
}

fn watched(stream: Box<dyn Stream>, socket: socket2::Socket) -> Dialed {
    let reading = Arc::new(AtomicBool::new(false));
    Dialed {
        stream: Watched {
            inner: stream,
            reading: reading.clone(),
        },
        probe: Probe { socket, reading },
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_probe_sees_unread_bytes_unapplied_bytes_and_the_end() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let info: ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(format!(
            "redis://127.0.0.1:{}/",
            addr.port()
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let (dialed, accepted) =
            tokio::join!(dial(&info, None, Duration::from_secs(2)), listener.accept());
        let Dialed { mut stream, probe } = dialed.unwrap_or_else(|e| panic!("{e}"));
        let (mut server, _) = accepted.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(probe.state(), SocketState::Quiet);

        server
            .write_all(b"hi")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while probe.state() != SocketState::Busy {
            assert!(std::time::Instant::now() < deadline);
            tokio::task::yield_now().await;
        }
        let mut buf = [0u8; 2];
        stream
            .read_exact(&mut buf)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Read, but the reader has not come back for more: not yet applied.
        assert_eq!(probe.state(), SocketState::Busy);
        let mut more = [0u8; 1];
        let next = tokio::time::timeout(Duration::from_millis(20), stream.read(&mut more)).await;
        assert!(next.is_err(), "nothing more to read");
        assert_eq!(probe.state(), SocketState::Quiet);

        drop(server);
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while probe.state() != SocketState::Closed {
            assert!(std::time::Instant::now() < deadline);
            tokio::task::yield_now().await;
        }
    }
}
