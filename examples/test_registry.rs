//! The in-process test registry inside a `#[tokio::test]`: one call starts it on an ephemeral port
//! of 127.0.0.1, dropping it stops it.
//!
//! `cargo test -p registry-examples --example test_registry`

use registry_core::Digest;
use registry_examples::send;
use registry_http::TestRegistry;

async fn push_and_pull() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let registry = TestRegistry::start().await?;
    let blob = b"hello from a test".to_vec();
    let digest = Digest::sha256_of(&blob);
    let (status, _, _) =
        send(registry.addr(), "POST", &format!("/v2/demo/blobs/uploads/?digest={digest}"), blob.clone()).await?;
    assert_eq!(status, 201);
    let (status, _, body) = send(registry.addr(), "GET", &format!("/v2/demo/blobs/{digest}"), "").await?;
    assert_eq!(status, 200);
    assert_eq!(body.as_ref(), blob.as_slice());
    println!("pushed and pulled {digest} through {}", registry.url());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    push_and_pull().await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn push_and_pull() {
        super::push_and_pull().await.expect("example runs");
    }
}
