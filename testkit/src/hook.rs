//! An HTTP receiver for webhook deliveries, started by a test on a loopback port: it records
//! what it gets and answers a status the test may change, at once or only when let through.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::{Semaphore, mpsc};

/// One request a receiver got.
#[derive(Debug)]
pub struct Received {
    /// Its headers.
    pub headers: hyper::HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
}

/// An HTTP receiver: answers `status` (changeable), waits for a permit of `gate` before answering
/// when gated, and sends what it got to the test.
pub struct Receiver {
    /// Where it listens (`http://127.0.0.1:<port>/hook`).
    pub url: String,
    /// The status it answers.
    pub status: Arc<AtomicU16>,
    /// Permits to answer (when gated).
    pub gate: Arc<Semaphore>,
    /// Requests that arrived (answered or not).
    pub arrived: Arc<std::sync::atomic::AtomicUsize>,
    got: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts one answering `status`, at once (`open`) or only with permits of its gate.
    pub async fn start(status: u16, open: bool) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let status = Arc::new(AtomicU16::new(status));
        let gate = Arc::new(Semaphore::new(if open { Semaphore::MAX_PERMITS } else { 0 }));
        let (tx, got) = mpsc::unbounded_channel();
        let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, g, a) = (status.clone(), gate.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            // Its connections end with it (dropping the set aborts them): a dropped receiver
            // keeps no kept-alive connection answering.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                while connections.try_join_next().is_some() {}
                let (s, g, a, tx) = (s.clone(), g.clone(), a.clone(), tx.clone());
                connections.spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (s, g, a, tx) = (s.clone(), g.clone(), a.clone(), tx.clone());
                        async move {
                            a.fetch_add(1, Ordering::SeqCst);
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                            let permit = g.acquire().await;
                            drop(permit);
                            let code = s.load(Ordering::SeqCst);
                            let _ = tx.send(Received { headers: parts.headers, body });
                            let mut response = hyper::Response::new(Full::new(Bytes::from_static(b"ok")));
                            *response.status_mut() = hyper::StatusCode::from_u16(code).expect("status");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { url, status, gate, arrived, got, task }
    }

    /// The next request it got.
    pub async fn next(&mut self) -> Received {
        self.got.recv().await.expect("a delivery")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
