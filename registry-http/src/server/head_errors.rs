//! hyper's own error responses in the spec's JSON: when a request head cannot be read (larger
//! than the limit: 431; malformed: 400) hyper answers by itself, before any service runs, with an
//! empty body that Docker-style clients cannot show. This IO wrapper recognizes those responses
//! as they are written (a 4xx head without the `Docker-Distribution-API-Version` header every
//! response of ours carries) and writes the same status with a JSON error body instead.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An IO that rewrites hyper's bodiless error responses.
pub(crate) struct HeadErrors<T> {
    inner: T,
    max_header_bytes: usize,
    /// A replacement being written: its bytes, how many went out, and how many bytes of hyper's
    /// write it stands for.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<T> HeadErrors<T> {
    pub(crate) fn new(inner: T, max_header_bytes: usize) -> Self {
        HeadErrors { inner, max_header_bytes, replacing: None }
    }

    /// The JSON response standing for hyper's `head`, if it is one of hyper's own errors.
    fn replacement(&self, head: &[u8]) -> Option<Vec<u8>> {
        if !head.starts_with(b"HTTP/1.1 4") || head.len() > 1024 {
            return None;
        }
        let text = std::str::from_utf8(head).ok()?.to_ascii_lowercase();
        if text.contains("docker-distribution-api-version") || !text.contains("content-length: 0") {
            return None;
        }
        let status: u16 = text.get(9..12)?.parse().ok()?;
        let (reason, code, message) = match status {
            431 => (
                "Request Header Fields Too Large",
                "SIZE_INVALID",
                format!("the request's head is larger than the limit of {} bytes", self.max_header_bytes),
            ),
            _ => ("Bad Request", "UNSUPPORTED", "the request could not be parsed as HTTP/1.1".to_owned()),
        };
        let body = serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string();
        Some(
            format!(
                "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 docker-distribution-api-version: registry/2.0\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadErrors<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadErrors<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none()
            && let Some(bytes) = this.replacement(data)
        {
            this.replacing = Some((bytes, 0, data.len()));
        }
        if this.replacing.is_none() {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        this.write_replacement(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none()
            && let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && let Some(bytes) = this.replacement(first)
        {
            this.replacing = Some((bytes, 0, bufs.iter().map(|b| b.len()).sum()));
        }
        if this.replacing.is_none() {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        this.write_replacement(cx)
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

impl<T: AsyncWrite + Unpin> HeadErrors<T> {
    /// Writes the replacement under way; done, it reports the write it stands for as done.
    fn write_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some((bytes, written, stands_for)) = &mut self.replacing else { return Poll::Ready(Ok(0)) };
        while *written < bytes.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = *stands_for;
        self.replacing = None;
        Poll::Ready(Ok(n))
    }
}
