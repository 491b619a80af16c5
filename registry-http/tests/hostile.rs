//! Hostile or broken clients: stalled bodies, slow headers, idle connections and too many uploads
//! at once. The upload stays consistent, the connection is cut, other clients are unaffected.

use std::time::Duration;

use registry_http::{TestRegistry, Timeouts};
use reqwest::StatusCode;
use testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SHORT: Duration = Duration::from_millis(300);
/// Bound on how long a test waits for the server to cut a connection (a guard, not a sleep).
const GUARD: Duration = Duration::from_secs(10);

fn short_timeouts() -> Timeouts {
    Timeouts { body_read: SHORT, idle: SHORT, write: SHORT }
}

/// Reads until the server closes the connection; what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut out))
        .await
        .expect("the server should have closed the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

async fn start_upload(base: &str, repo: &str) -> String {
    let resp = client().post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await.expect("post");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    header(&resp, "location")
}

async fn upload_offset(base: &str, location: &str) -> String {
    let resp = client().get(format!("{base}{location}")).send().await.expect("status");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    header(&resp, "range")
}

/// Opens a PATCH promising `declared` bytes and sends only `sent`.
async fn stalled_patch(reg: &TestRegistry, location: &str, declared: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(reg.addr()).await.expect("connect");
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n",
        reg.addr()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&vec![b'x'; sent]).await.expect("part of the body");
    stream
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_and_the_upload_stays_where_it_was() {
    let reg = TestRegistry::builder().timeouts(short_timeouts()).start().await.expect("start");
    let base = reg.url();
    let location = start_upload(&base, "hostile/stall").await;
    let mut stalled = stalled_patch(&reg, &location, 1000, 10).await;
    // Others are served meanwhile.
    let digest = push_blob(&client(), &base, "hostile/other", b"unaffected").await;
    assert!(!digest.to_string().is_empty());
    until_closed(&mut stalled).await;
    assert_eq!(upload_offset(&base, &location).await, "0-0", "nothing of the stalled chunk was taken");
    // The upload goes on from there.
    let resp = client()
        .patch(format!("{base}{location}"))
        .header("content-type", "application/octet-stream")
        .body(b"0123456789".to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&resp, "range"), "0-9");
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let reg =
        TestRegistry::builder().timeouts(short_timeouts()).header_read_timeout(SHORT).start().await.expect("start");
    // Slowloris: a head dribbled a byte at a time never completes in time.
    let mut slow = TcpStream::connect(reg.addr()).await.expect("connect");
    let dribble = async {
        for b in b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(GUARD, dribble).await.expect("the server should have cut the slow head off");

    // An idle keep-alive connection: served once, then closed for silence.
    let mut idle = TcpStream::connect(reg.addr()).await.expect("connect");
    idle.write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", reg.addr()).as_bytes()).await.expect("request");
    let answer = until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The server still serves.
    let resp = client().get(format!("{}/v2/", reg.url())).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn uploads_beyond_the_limit_get_429_and_retry_later() {
    // The stalled upload holds its slot for 3 s: ample time to see the second refused.
    let timeouts = Timeouts { body_read: Duration::from_secs(3), ..short_timeouts() };
    let reg = TestRegistry::builder().timeouts(timeouts).upload_limit(1).start().await.expect("start");
    let base = reg.url();
    let first = start_upload(&base, "hostile/limit").await;
    let second = start_upload(&base, "hostile/limit").await;
    let mut holding = stalled_patch(&reg, &first, 100, 1).await;
    // The slot is taken once the server reads the first request: poll for the refusal.
    let refused = loop {
        let resp = client()
            .patch(format!("{base}{second}"))
            .header("content-type", "application/octet-stream")
            .body(b"abc".to_vec())
            .send()
            .await
            .expect("patch");
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            break resp;
        }
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "served before the first took the slot");
        tokio::task::yield_now().await;
    };
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS").await;
    // Pulls are not uploads.
    let resp = client().get(format!("{base}/v2/")).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    // The stalled upload times out and frees its slot.
    until_closed(&mut holding).await;
    push_blob(&client(), &base, "hostile/limit", b"after the slot freed").await;
}

/// A chunk carrying more bytes than its Content-Length: the chunk is exactly the declared bytes,
/// the surplus is not taken as part of the upload (hyper reads it as the next request and refuses
/// it), and the upload continues consistently.
#[tokio::test]
async fn more_bytes_than_content_length_take_only_the_declared_ones() {
    let reg = TestRegistry::start().await.expect("start");
    let base = reg.url();
    let location = start_upload(&base, "hostile/surplus").await;
    let mut stream = TcpStream::connect(reg.addr()).await.expect("connect");
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\n",
        reg.addr()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(b"12345surplus bytes that are no request\r\n\r\n").await.expect("body");
    let answer = until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert_eq!(upload_offset(&base, &location).await, "0-4", "exactly the declared bytes");
    let digest = registry_core::Digest::sha256_of(b"12345678");
    let resp =
        client().put(format!("{base}{location}?digest={digest}")).body(b"678".to_vec()).send().await.expect("put");
    assert_eq!(resp.status(), StatusCode::CREATED);
}
