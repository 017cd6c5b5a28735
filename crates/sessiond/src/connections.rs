//! Accepting and supervising HTTP connections: a cap on open connections, a
//! deadline for reading a request head, an idle keep-alive timeout, and a
//! bounded drain at shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, header};
use futures_util::StreamExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// How connections are bounded (the `[limits]` section).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the first byte of a request head to its end; a client that takes
    /// longer is disconnected.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in progress and
    /// no bytes arriving.
    pub idle_timeout: Duration,
    /// Connections open at once; beyond it, new ones wait to be accepted.
    pub max_connections: usize,
    /// After a stop signal, how long requests in flight may take to finish
    /// before their connections are closed anyway.
    pub drain_timeout: Duration,
}

/// What the supervisor of one connection knows about it. Times are
/// milliseconds since `origin`, plus one, so that 0 means "not set".
struct Activity {
    origin: Instant,
    /// Requests whose head was read and whose response is not finished.
    in_flight: AtomicU32,
    /// When the last request finished (or the connection opened).
    idle_since: AtomicU64,
    /// When the first byte of a not yet complete head arrived; 0 if none.
    head_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(1),
            head_since: AtomicU64::new(0),
        }
    }

    fn now_mark(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn instant(&self, mark: u64) -> Instant {
        self.origin + Duration::from_millis(mark.saturating_sub(1))
    }

    /// Bytes arrived: with no request in progress they start a head.
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == 0
        {
            self.head_since.store(self.now_mark(), Ordering::Release);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
    }

    fn request_finished(&self) {
        self.idle_since.store(self.now_mark(), Ordering::Release);
        self.head_since.store(0, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// When the supervisor must look at the connection next, and what
    /// expires then if nothing changes. Nothing wakes the supervisor when a
    /// request starts or ends (that would cost a task wake-up per request);
    /// instead it never sleeps longer than the head timeout, so a head that
    /// starts while it sleeps is still caught at its exact deadline.
    fn deadline(&self, limits: &ConnectionLimits) -> Deadline {
        let now = Instant::now();
        if self.busy() {
            // The request timeout bounds handlers.
            return Deadline::Recheck(now + limits.idle_timeout.min(limits.header_read_timeout));
        }
        match self.head_since.load(Ordering::Acquire) {
            0 => {
                let idle =
                    self.instant(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout;
                let look_again = now + limits.header_read_timeout;
                if idle <= look_again {
                    Deadline::Idle(idle)
                } else {
                    Deadline::Recheck(look_again)
                }
            }
            since => Deadline::Head(self.instant(since) + limits.header_read_timeout),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Deadline {
    Recheck(Instant),
    Idle(Instant),
    Head(Instant),
}

impl Deadline {
    fn at(self) -> Instant {
        match self {
            Self::Recheck(t) | Self::Idle(t) | Self::Head(t) => t,
        }
    }
}

/// Ends a request's "in flight" mark however its future ends.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A TCP stream that reports arriving bytes to its connection's [`Activity`].
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serve `app` on `listener` within `limits` until `stop` completes; then
/// stop accepting, close idle connections and those still sending a head,
/// let requests in flight finish for up to `drain_timeout`, and close the
/// rest.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let closing = closing_rx.clone();
        connections.spawn(async move {
            serve_connection(stream, peer, app, limits, closing).await;
            drop(permit);
        });
        // Reap finished connections so the set holds open ones only.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            drain_timeout = ?limits.drain_timeout,
            "requests still in flight after the drain timeout: closing their connections"
        );
        connections.shutdown().await;
    }
}

/// A response is in flight until its head is sent, or, for an event
/// stream (whose body is the answer, for as long as it lasts), until its
/// body ends: an open stream is neither idle nor done at shutdown.
fn streaming_stays_in_flight(response: Response<Body>, in_flight: InFlight) -> Response<Body> {
    let streaming = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streaming {
        return response;
    }
    response.map(|body| {
        Body::from_stream(body.into_data_stream().inspect(move |_| {
            let _ = &in_flight;
        }))
    })
}

/// Errors of a single failed handshake are the client's; anything else
/// (out of file descriptors, say) is logged and waited out.
async fn accept_failed(e: &io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    mut closing: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let tracked = activity.clone();
    let service = tower::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        tracked.request_started();
        let in_flight = InFlight(tracked.clone());
        let call = app.clone().oneshot(request.map(Body::new));
        async move {
            let response = match call.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(streaming_stays_in_flight(response, in_flight))
        }
    });
    let builder = Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
    tokio::pin!(connection);
    let mut winding_down = false;
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            _ = connection.as_mut() => return,
            () = tokio::time::sleep_until(deadline.at()) => {
                // Requests may have come and gone while this slept.
                let deadline = activity.deadline(&limits);
                if Instant::now() < deadline.at() {
                    continue;
                }
                match deadline {
                    Deadline::Recheck(_) => {}
                    Deadline::Head(_) => {
                        tracing::debug!(%peer, "request head not received in time: disconnecting");
                        return;
                    }
                    Deadline::Idle(_) => return,
                }
            }
            changed = closing.changed(), if !winding_down => {
                winding_down = true;
                if changed.is_err() || !activity.busy() {
                    return;
                }
                // Finish the requests in flight, then close.
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 10,
            drain_timeout: Duration::from_secs(10),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_connection_state() {
        let a = Activity::new();
        let start = Instant::now();
        // Idle for 30 s, but looked at again within the head timeout.
        let Deadline::Recheck(t) = a.deadline(&limits()) else {
            panic!("a new idle connection is rechecked")
        };
        assert_eq!(t, start + Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(25)).await;
        let Deadline::Idle(t) = a.deadline(&limits()) else {
            panic!("idle expiry within reach")
        };
        assert!(t >= start + Duration::from_secs(30) - Duration::from_millis(1));

        let a = Activity::new();
        let start = Instant::now();
        tokio::time::advance(Duration::from_secs(3)).await;
        a.bytes_read();
        let Deadline::Head(t) = a.deadline(&limits()) else {
            panic!("bytes without a request start a head")
        };
        assert!(t >= start + Duration::from_secs(13) - Duration::from_millis(1));
        // More bytes of the same head do not move the deadline.
        tokio::time::advance(Duration::from_secs(5)).await;
        a.bytes_read();
        assert_eq!(a.deadline(&limits()).at(), t);
        a.request_started();
        assert!(matches!(a.deadline(&limits()), Deadline::Recheck(_)));
        // Body bytes of a request in flight are not a new head.
        a.bytes_read();
        a.request_finished();
        tokio::time::advance(Duration::from_secs(25)).await;
        let Deadline::Idle(t) = a.deadline(&limits()) else {
            panic!("idle after the response")
        };
        assert!(t >= start + Duration::from_secs(38) - Duration::from_millis(1));
    }
}
