//! Audit records forwarded as RFC 5424 syslog to a TCP (octet-counted frames) and a UDP endpoint
//! started by the test: header fields, structured data, the record, a failed login without its
//! password; a bad endpoint refused.

use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::*;
use tokio::io::AsyncReadExt;

/// Reads octet-counted frames (`LEN SP MSG`) from one connection after another until `want`
/// appears in a message; returns the messages read.
async fn tcp_until(listener: &tokio::net::TcpListener, want: &str) -> Vec<String> {
    let mut messages = Vec::new();
    loop {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.expect("read");
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let space = rest.iter().position(|b| *b == b' ').expect("length");
            let len: usize = std::str::from_utf8(&rest[..space]).expect("utf8").parse().expect("length");
            let message = &rest[space + 1..space + 1 + len];
            messages.push(String::from_utf8(message.to_vec()).expect("utf8"));
            rest = &rest[space + 1 + len..];
        }
        if messages.iter().any(|m| m.contains(want)) {
            return messages;
        }
    }
}

fn record(message: &str) -> Value {
    serde_json::from_str(message.split_once("] ").expect("structured data ends").1).expect("json record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_reach_tcp_and_udp_syslog() {
    let reg = TestRegistry::builder()
        .harbor_accounts()
        .jobs(std::time::Duration::from_secs(5), std::time::Duration::from_millis(50))
        .start()
        .await
        .expect("start");
    let accounts = reg.accounts().expect("accounts").acting_as(registry_core::event::Operator::system());
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    accounts.create_project("team", false).await.expect("team");
    let (c, base) = (client(), reg.url());
    let configure = |value: Value| {
        let c = c.clone();
        let url = format!("{base}/api/v2.0/configurations");
        async move { c.put(url).basic_auth("admin", Some("adminpassword")).json(&value).send().await.expect("put").status() }
    };
    assert_eq!(configure(json!({"audit_log_forward_endpoint": "http://logs:80"})).await, StatusCode::BAD_REQUEST);

    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("tcp://{}", tcp.local_addr().expect("addr"));
    assert_eq!(configure(json!({"audit_log_forward_endpoint": endpoint})).await, StatusCode::OK);
    let shown: Value = c
        .get(format!("{base}/api/v2.0/configurations"))
        .basic_auth("admin", Some("adminpassword"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["audit_log_forward_endpoint"]["value"], endpoint);
    // The forwarder starts from the newest record once it sees the endpoint: wait for it to
    // pick up the next change (a project created), then push.
    accounts.create_project("warmup", false).await.expect("warmup");
    tcp_until(&tcp, "CREATE_PROJECT").await;

    let t = token(&c, &base, Some(("admin", "adminpassword")), &["repository:team/app:pull,push"]).await;
    push_image_as(&c, &base, "team/app", "v1", "layer", Some(&t)).await;
    let refused = get_token(&c, &base, Some(("admin", "Wrong-Password-42")), &[]).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    reg.registry().flush_events().await;
    let mut messages = tcp_until(&tcp, "PUSH_ARTIFACT").await;
    if !messages.iter().any(|m| m.contains("LOGIN_FAILURE")) {
        messages.extend(tcp_until(&tcp, "LOGIN_FAILURE").await);
    }
    let push = messages.iter().find(|m| m.contains(" PUSH_ARTIFACT ")).expect("push record");
    let fields: Vec<&str> = push.splitn(7, ' ').collect();
    assert_eq!(fields[0], "<110>1", "facility log audit, informational: {push}");
    assert!(fields[1].ends_with('Z') && fields[1].contains('.'), "an RFC 3339 time with fractions: {push}");
    assert_eq!(fields[3], "registry");
    assert_eq!(fields[5], "PUSH_ARTIFACT");
    assert!(fields[6].starts_with("[audit@32473 id=\""), "{push}");
    assert!(fields[6].contains("user=\"admin\" operation=\"create\" resource_type=\"artifact\""), "{push}");
    let r = record(push);
    assert_eq!(r["username"], "admin");
    assert_eq!(r["operation"], "create");
    assert_eq!(r["resource"], "team/app:v1", "{r}");
    let failure = messages.iter().find(|m| m.contains(" LOGIN_FAILURE ")).expect("failed login");
    assert!(failure.starts_with("<109>1 "), "a notice: {failure}");
    assert!(!failure.contains("Wrong-Password-42"), "never the password: {failure}");

    // UDP: one datagram per record.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("udp://{}", udp.local_addr().expect("addr"));
    assert_eq!(configure(json!({"audit_log_forward_endpoint": endpoint})).await, StatusCode::OK);
    accounts.create_project("over-udp", false).await.expect("project");
    let mut buf = vec![0u8; 65536];
    loop {
        let n = udp.recv(&mut buf).await.expect("datagram");
        let message = String::from_utf8(buf[..n].to_vec()).expect("utf8");
        assert!(message.starts_with('<'), "{message}");
        if message.contains(" CREATE_PROJECT ")
            && record(&message)["resource"].as_str().is_some_and(|r| r.contains("over-udp"))
        {
            break;
        }
    }
    reg.stop().await;
}
