//! The socket of a near-cache's invalidation channel, watched so that a
//! lookup can ask, without a round trip, whether anything has arrived that
//! the channel's connection has not applied yet: the kernel's receive queue
//! is peeked (empty, and not at end of stream), and the connection's reader
//! must be idle (it applied everything it took from the socket, since its
//! last read found nothing more). Changes the store sent before the lookup
//! are therefore either applied or still on the wire. A store dials the
//! socket itself ([`probed_tcp`]), hands its client library the
//! [`Watched`] stream and keeps the [`Probe`].

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What a connection is built on.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<S: AsyncRead + AsyncWrite + Send + Unpin> Stream for S {}

/// A dialed socket: the stream for the client library, and its probe.
pub struct Dialed {
    /// The stream to hand the client library.
    pub stream: Watched<Box<dyn Stream>>,
    /// Looks at the same socket.
    pub probe: Probe,
}

/// What [`Probe::state`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketState {
    /// Nothing unread, nothing unapplied.
    Quiet,
    /// Bytes are waiting or being applied.
    Busy,
    /// The peer closed the connection, or it failed.
    Closed,
}

/// Looks at the socket without reading from it.
pub struct Probe {
    socket: socket2::Socket,
    reading: Arc<AtomicBool>,
}

impl Probe {
    /// The socket's state now.
    pub fn state(&self) -> SocketState {
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
pub struct Watched<S> {
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

/// A TCP connection and a second handle on its socket for peeking.
pub async fn probed_tcp(
    host: impl AsRef<str>,
    port: u16,
) -> io::Result<(TcpStream, socket2::Socket)> {
    let host = host.as_ref().to_owned();
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let std = tcp.into_std()?;
    let socket = socket2::Socket::from(std.try_clone()?);
    Ok((TcpStream::from_std(std)?, socket))
}

/// Watch `stream`, whose socket `socket` is a second handle on.
pub fn watched(stream: Box<dyn Stream>, socket: socket2::Socket) -> Dialed {
    let reading = Arc::new(AtomicBool::new(false));
    Dialed {
        stream: Watched {
            inner: stream,
            reading: reading.clone(),
        },
        probe: Probe { socket, reading },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_probe_sees_unread_bytes_unapplied_bytes_and_the_end() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (dialed, accepted) =
            tokio::join!(probed_tcp("127.0.0.1", addr.port()), listener.accept());
        let (tcp, socket) = dialed.unwrap_or_else(|e| panic!("{e}"));
        let Dialed { mut stream, probe } = watched(Box::new(tcp), socket);
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
