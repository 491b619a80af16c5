//! Embedding the registry with your own authentication and access rules:
//!
//! - an `Authenticator` that accepts one fixed API key (any user name, the key as password),
//!   compared in constant time;
//! - an `AccessPolicy` that makes the registry read-only except for one repository.
//!
//! The token service, the 401 challenge and the token verification are the crate's; only the
//! two decisions are yours. Assembling the server takes 5 lines:
//!
//! ```text
//! let server = RegistryBuilder::new()
//!     .authenticator(ApiKey("s3cret-api-key".into()))
//!     .access_policy(ReadOnlyExceptOne)
//!     .bind("127.0.0.1:0")
//!     .await?;
//! ```
//!
//! then `server.serve(shutdown).await`. A test registry with the same authenticator is one line:
//! `TestRegistry::builder().authenticator(ApiKey(..)).start().await?` (its default policy lets
//! every signed-in identity pull, push and delete).
//!
//! `cargo run -p registry-examples --example custom_auth`

use async_trait::async_trait;
use base64::Engine as _;
use registry_auth::{AccessPolicy, AuthError, Authenticator, Identity};
use registry_core::{Action, Digest, Scope};
use registry_examples::send_with;
use registry_http::{RegistryBuilder, TestRegistry};

/// Accepts exactly one API key.
struct ApiKey(String);

#[async_trait]
impl Authenticator for ApiKey {
    async fn authenticate(&self, username: &str, password: &str) -> Result<Identity, AuthError> {
        // Constant time: every byte is compared whatever the first difference.
        let (a, b) = (password.as_bytes(), self.0.as_bytes());
        let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same {
            Ok(Identity::User { name: username.to_owned(), admin: false })
        } else {
            Err(AuthError::InvalidCredentials)
        }
    }

    async fn lookup(&self, username: &str) -> Result<Identity, AuthError> {
        Ok(Identity::User { name: username.to_owned(), admin: false })
    }
}

/// Anyone authenticated may pull anything; only `scratch/playground` may be written.
struct ReadOnlyExceptOne;

#[async_trait]
impl AccessPolicy for ReadOnlyExceptOne {
    async fn grant(&self, who: &Identity, requested: &Scope) -> Result<Scope, AuthError> {
        let mut allowed = Scope { actions: Default::default(), ..requested.clone() };
        if requested.resource_type == "repository" && *who != Identity::Anonymous {
            allowed.actions.insert(Action::Pull);
            if requested.name == "scratch/playground" {
                allowed.actions.extend([Action::Push, Action::Delete]);
            }
        }
        Ok(requested.intersection(&allowed))
    }
}

async fn token(
    addr: std::net::SocketAddr,
    key: &str,
    scope: &str,
) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>> {
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("ci:{key}")));
    let (status, _, body) =
        send_with(addr, "GET", &format!("/auth/token?scope={scope}"), "", &[("authorization", &basic)]).await?;
    if status != 200 {
        return Ok(None);
    }
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(json["token"].as_str().map(str::to_owned))
}

async fn push(
    addr: std::net::SocketAddr,
    repo: &str,
    token: &str,
) -> Result<u16, Box<dyn std::error::Error + Send + Sync>> {
    let blob = format!("written to {repo}").into_bytes();
    let digest = Digest::sha256_of(&blob);
    let bearer = format!("Bearer {token}");
    let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
    Ok(send_with(addr, "POST", &path, blob, &[("authorization", &bearer)]).await?.0.as_u16())
}

async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = RegistryBuilder::new()
        .authenticator(ApiKey("s3cret-api-key".into()))
        .access_policy(ReadOnlyExceptOne)
        .bind("127.0.0.1:0")
        .await?;
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));

    assert!(token(addr, "wrong-key", "repository:scratch/playground:push").await?.is_none(), "wrong key: 401");
    let t = token(addr, "s3cret-api-key", "repository:scratch/playground:pull,push").await?.ok_or("no token")?;
    assert_eq!(push(addr, "scratch/playground", &t).await?, 201);
    let t = token(addr, "s3cret-api-key", "repository:prod/app:pull,push").await?.ok_or("no token")?;
    assert_eq!(push(addr, "prod/app", &t).await?, 401, "read-only elsewhere");
    println!("API key accepted; writes allowed only to scratch/playground");
    let _ = stop.send(());
    serving.await??;

    // The same authenticator in a test registry: one line.
    let test = TestRegistry::builder().authenticator(ApiKey("s3cret-api-key".into())).start().await?;
    let t = token(test.addr(), "s3cret-api-key", "repository:any/repo:pull,push").await?.ok_or("no token")?;
    assert_eq!(push(test.addr(), "any/repo", &t).await?, 201, "the default policy: signed in may push");
    test.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    run().await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn api_key_and_read_only_policy() {
        super::run().await.expect("example runs");
    }
}
