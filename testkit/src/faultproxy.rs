//! A TCP proxy on loopback that fails the network between a replica and one of its stores
//! (PostgreSQL, the S3 server) the ways networks fail: it can cut every open connection, refuse
//! new ones, stall connections (half-open: nothing moves either way, nothing is closed), strand
//! the connections open now while new ones go through (a failover or a lost NAT mapping: the old
//! sessions' peer is gone, the address answers again), delay every read, and throttle the bytes
//! per second. [`FaultProxy::heal`] ends every fault.
//!
//! The test points the replica at [`FaultProxy::addr`] instead of the store. Each connection
//! is two pumps (client to store, store to client) that read, apply the faults in force, and
//! write; a cut closes both sockets of every connection open at that moment.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The faults in force, shared by the accept loop and every pump.
#[derive(Default)]
struct Faults {
    refuse: AtomicBool,
    /// Milliseconds each read waits before it is forwarded.
    delay_ms: AtomicU64,
    /// Bytes per second per direction of each connection (0: unlimited).
    rate: AtomicU64,
    open: AtomicUsize,
    /// Connections made so far: each one's number is its place in this count.
    made: AtomicU64,
}

/// A running fault proxy; stopped when dropped.
pub struct FaultProxy {
    /// `127.0.0.1:<port>`: where the replica connects.
    pub addr: SocketAddr,
    faults: Arc<Faults>,
    /// Bumped by every cut; each connection closes when it changes.
    cuts: watch::Sender<u64>,
    /// What is stalled now.
    stalled: watch::Sender<Stall>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding a free loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fault proxy");
        let addr = listener.local_addr().expect("addr");
        let faults = Arc::new(Faults::default());
        let (cuts, _) = watch::channel(0u64);
        let (stalled, _) = watch::channel(Stall::default());
        let accept = {
            let (faults, cuts, stalled) = (faults.clone(), cuts.clone(), stalled.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if faults.refuse.load(Ordering::SeqCst) {
                        // Refused: closed before a byte moves.
                        drop(client);
                        continue;
                    }
                    let (faults, cut, stall) = (faults.clone(), cuts.subscribe(), stalled.subscribe());
                    let number = faults.made.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(connection(client, upstream, faults, cut, stall, number));
                }
            })
        };
        FaultProxy { addr, faults, cuts, stalled, accept }
    }

    /// `host:port` of the proxy, for a URL.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Closes every connection open now (new ones are let through unless [`FaultProxy::refuse`]).
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Refuses (`true`) or lets through (`false`) new connections.
    pub fn refuse(&self, on: bool) {
        self.faults.refuse.store(on, Ordering::SeqCst);
    }

    /// Stalls (`true`) every connection, open and new: bytes stop moving both ways and nothing is
    /// closed, as a half-open connection behind a dead link; `false` lets them move again.
    pub fn stall(&self, on: bool) {
        self.stalled.send_modify(|s| s.all = on);
    }

    /// Stalls the connections open now for good (until [`FaultProxy::heal`]); new ones go
    /// through, as when a store fails over or a NAT loses its mappings: the old sessions hang
    /// while the address answers again.
    pub fn strand(&self) {
        let made = self.faults.made.load(Ordering::SeqCst);
        self.stalled.send_modify(|s| s.stranded_below = made);
    }

    /// Delays every read forwarded, either way, by `delay`.
    pub fn delay(&self, delay: Duration) {
        self.faults.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Limits each direction of each connection to `bytes_per_second` (0: unlimited).
    pub fn throttle(&self, bytes_per_second: u64) {
        self.faults.rate.store(bytes_per_second, Ordering::SeqCst);
    }

    /// Ends every fault: connections let through, nothing stalled, delayed or throttled.
    pub fn heal(&self) {
        self.refuse(false);
        self.stalled.send_replace(Stall::default());
        self.delay(Duration::ZERO);
        self.throttle(0);
    }

    /// Connections open through the proxy now.
    pub fn open_connections(&self) -> usize {
        self.faults.open.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// What is stalled: every connection, or those numbered below a mark (stranded).
#[derive(Default, Clone, Copy)]
struct Stall {
    all: bool,
    stranded_below: u64,
}

impl Stall {
    fn holds(&self, connection: u64) -> bool {
        self.all || connection < self.stranded_below
    }
}

/// One connection: pumps both ways until either side closes or a cut comes.
async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    faults: Arc<Faults>,
    mut cut: watch::Receiver<u64>,
    stall: watch::Receiver<Stall>,
    number: u64,
) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    faults.open.fetch_add(1, Ordering::SeqCst);
    cut.borrow_and_update();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, faults.clone(), stall.clone(), number);
    let down = pump(server_read, client_write, faults.clone(), stall, number);
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = cut.changed() => {}
    }
    faults.open.fetch_sub(1, Ordering::SeqCst);
}

/// Copies `from` to `to`, applying the faults to each read; ends at EOF or an error.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: Arc<Faults>,
    mut stall: watch::Receiver<Stall>,
    number: u64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // While stalled nothing is read, so the sender's window fills as behind a dead link.
        if stall.wait_for(|s| !s.holds(number)).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = faults.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let rate = faults.rate.load(Ordering::SeqCst);
        if rate > 0 {
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
        if stall.wait_for(|s| !s.holds(number)).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream, text: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(text).await?;
        let mut back = vec![0u8; text.len()];
        s.read_exact(&mut back).await?;
        Ok(back)
    }

    #[tokio::test]
    async fn each_fault_does_what_it_says_and_heal_ends_it() {
        let proxy = FaultProxy::start(echo().await).await;
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        assert_eq!(round_trip(&mut s, b"hello").await.expect("through"), b"hello");
        assert_eq!(proxy.open_connections(), 1);

        // Stalled: nothing comes back, the connection stays open; healed, the bytes arrive.
        proxy.stall(true);
        s.write_all(b"held").await.expect("write");
        let mut back = [0u8; 4];
        let waited = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut back)).await;
        assert!(waited.is_err(), "a stalled connection moves nothing");
        proxy.heal();
        s.read_exact(&mut back).await.expect("after the stall");
        assert_eq!(&back, b"held");

        // Delayed.
        proxy.delay(Duration::from_millis(200));
        let started = tokio::time::Instant::now();
        round_trip(&mut s, b"slow").await.expect("delayed");
        assert!(started.elapsed() >= Duration::from_millis(400), "both directions wait");
        proxy.heal();

        // Throttled: 20 KiB at 40 KiB/s each way takes about a second.
        proxy.throttle(40 * 1024);
        let started = tokio::time::Instant::now();
        round_trip(&mut s, &[7u8; 20 * 1024]).await.expect("throttled");
        assert!(started.elapsed() >= Duration::from_millis(500), "{:?}", started.elapsed());
        proxy.heal();

        // Cut: the open connection is closed; a new one goes through.
        proxy.cut();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("closed promptly");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        let mut again = TcpStream::connect(proxy.addr).await.expect("connect");
        assert_eq!(round_trip(&mut again, b"new").await.expect("a new connection"), b"new");

        // Stranded: the connection open now moves nothing, a new one goes through; healed, the
        // stranded one moves again.
        proxy.strand();
        again.write_all(b"lost").await.expect("write");
        let mut back = [0u8; 4];
        let waited = tokio::time::timeout(Duration::from_millis(300), again.read_exact(&mut back)).await;
        assert!(waited.is_err(), "a stranded connection moves nothing");
        let mut fresh = TcpStream::connect(proxy.addr).await.expect("connect");
        assert_eq!(round_trip(&mut fresh, b"next").await.expect("a new connection"), b"next");
        proxy.heal();
        again.read_exact(&mut back).await.expect("after healing");
        assert_eq!(&back, b"lost");

        // Refused: new connections are closed at once; healed, they go through.
        proxy.refuse(true);
        let mut refused = TcpStream::connect(proxy.addr).await.expect("the port accepts");
        assert!(round_trip(&mut refused, b"no").await.is_err(), "refused connections carry nothing");
        proxy.heal();
        let mut last = TcpStream::connect(proxy.addr).await.expect("connect");
        assert_eq!(round_trip(&mut last, b"yes").await.expect("healed"), b"yes");
    }
}
