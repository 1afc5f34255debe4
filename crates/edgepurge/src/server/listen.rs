//! The accept loop, hardened against senders that hold connections open: at most
//! `max_connections` at once (beyond it a caller gets `503` + `Retry-After` and the socket is
//! closed at once), a request head must arrive within `header_timeout` of the connection
//! opening or of its previous answer (so idle keep-alive connections and slow-header senders
//! are closed), a caller that stops reading its answers is cut once a write has made no
//! progress for `header_timeout` (else it would hold its slot forever: hyper reads no next
//! head while an answer waits to be written), and on shutdown open connections get `drain` to finish before they are cut.
//!
//! The connection cap is kept below the process's open-file limit (raised to its hard limit
//! at start), leaving [`FD_RESERVE`] descriptors for the store and for outgoing provider
//! connections, so incoming connections can never starve a purge.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// Descriptors kept for everything but incoming connections: the store's files, outgoing
/// provider and cache connections, secret files, the listener itself.
pub const FD_RESERVE: u64 = 256;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub drain: Duration,
}

/// What an over-the-cap caller reads before its socket is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
Content-Type: application/json\r\nContent-Length: 74\r\n\r\n\
{\"error\":\"too many open connections (server.max_connections); retry later\"}";

/// Raises the open-file limit to its hard limit and returns the connection cap that leaves
/// [`FD_RESERVE`] descriptors free: `wanted`, or less (with a warning) when the limit is
/// lower.
pub fn fit_connection_cap(wanted: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            match rlimit::getrlimit(rlimit::Resource::NOFILE) {
                Ok((soft, _)) => soft,
                Err(_) => return wanted,
            }
        }
    };
    let room = usize::try_from(limit.saturating_sub(FD_RESERVE).max(1)).unwrap_or(usize::MAX);
    if wanted > room {
        tracing::warn!(
            open_file_limit = limit,
            max_connections = room,
            configured = wanted,
            "server.max_connections lowered to fit the open-file limit (raise it with \
             LimitNOFILE= or ulimit -n)"
        );
        room
    } else {
        wanted
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets open connections finish for at most
/// `limits.drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    let mut quiet_until: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (or a connection reset before it was accepted): say so
                // once in a while, give the system a moment, go on.
                if quiet_until.is_none_or(|t| Instant::now() >= t) {
                    tracing::error!(error = %e, "cannot accept connections");
                    quiet_until = Some(Instant::now() + Duration::from_secs(10));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Never blocks: the socket is new and its send buffer empty.
            let _ = stream.try_write(BUSY);
            if quiet_until.is_none_or(|t| Instant::now() >= t) {
                tracing::warn!(
                    peer = %peer,
                    max_connections = limits.max_connections,
                    "connection limit reached: answering 503 to new connections"
                );
                quiet_until = Some(Instant::now() + Duration::from_secs(10));
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = match make.call(peer).await {
            Ok(s) => s,
            Err(never) => match never {},
        };
        let stream = WriteDeadline::new(stream, limits.header_timeout);
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        conns.spawn(async move {
            // A closed or timed-out connection is the caller's business, not an error of ours.
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = conns.len(),
            drain_s = limits.drain.as_secs(),
            "connections still open after the drain time; closing them"
        );
    }
    conns.shutdown().await;
    Ok(())
}

/// A socket whose writes fail once one has made no progress for `limit` (the peer stopped
/// reading). Reads pass through: their deadlines are the header and body timeouts.
struct WriteDeadline {
    inner: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WriteDeadline {
    fn new(inner: TcpStream, limit: Duration) -> WriteDeadline {
        WriteDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After a write was `Pending`: an error once the stall has lasted `limit`.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the caller stopped reading its answer",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn write_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match op(Pin::new(&mut self.inner), cx) {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.check_stall(cx).map(Err),
        }
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_with(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.write_with(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.write_with(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.write_with(cx, |s, cx| s.poll_shutdown(cx))
    }
}
