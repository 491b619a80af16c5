//! Connection inactivity timeouts (the deadlines of streaming requests): a read that waits too long for a byte, or a write that waits
//! too long for the client to take one, fails the connection, so a stalled or slowloris client
//! holds nothing for long. How long a read may wait depends on where the connection is: within a
//! request (its body: [`Timeouts::body_read`]) or between requests (keep-alive:
//! [`Timeouts::idle`]). The request head has its own deadline (hyper's header read timeout).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The inactivity limits of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for the next byte of a request body.
    pub body_read: Duration,
    /// Longest a keep-alive connection waits for its next request.
    pub idle: Duration,
    /// Longest wait for the client to accept more response bytes.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { body_read: Duration::from_secs(60), idle: Duration::from_secs(120), write: Duration::from_secs(60) }
    }
}

/// Whether a connection is inside a request; shared by the connection's IO and its service.
#[derive(Debug, Default, Clone)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Marks a request in progress until the guard drops (when its response is produced).
    pub(crate) fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.0.clone())
    }

    fn active(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }
}

/// See [`InFlight::enter`].
pub(crate) struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An IO whose reads and writes fail with [`io::ErrorKind::TimedOut`] when the connection made
/// no progress either way for too long: a read waits at most the body or idle limit after the
/// last byte moved in either direction (so a long download never trips it), a write at most the
/// write limit.
pub(crate) struct DeadlineIo<T> {
    inner: T,
    timeouts: Timeouts,
    in_flight: InFlight,
    last_progress: Instant,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
}

impl<T> DeadlineIo<T> {
    pub(crate) fn new(inner: T, timeouts: Timeouts, in_flight: InFlight) -> Self {
        let now = Instant::now();
        DeadlineIo {
            inner,
            timeouts,
            in_flight,
            last_progress: now,
            read_timer: Box::pin(tokio::time::sleep_until(now + timeouts.idle)),
            write_timer: Box::pin(tokio::time::sleep_until(now + timeouts.write)),
        }
    }
}

/// Polls `timer` for `deadline`; an error once it passes.
fn expired(timer: &mut Pin<Box<Sleep>>, deadline: Instant, cx: &mut Context<'_>, what: &str) -> Poll<io::Error> {
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    match timer.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))),
        Poll::Pending => Poll::Pending,
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DeadlineIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last_progress = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let (limit, what) = if this.in_flight.active() {
                    (this.timeouts.body_read, "request body read")
                } else {
                    (this.timeouts.idle, "idle connection")
                };
                expired(&mut this.read_timer, this.last_progress + limit, cx, what).map(Err)
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> DeadlineIo<T> {
    fn written(&mut self, result: Poll<io::Result<usize>>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.last_progress = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                expired(&mut self.write_timer, self.last_progress + self.timeouts.write, cx, "response write").map(Err)
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        self.written(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.written(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
