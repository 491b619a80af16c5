//! Mounting the registry's service under a path prefix of a larger hyper application: requests
//! under `/registry` go to the registry (its `Location` headers carry the prefix), everything else
//! to the application's own handler.
//!
//! `cargo run -p registry-examples --example prefix_mount`

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use registry_core::Digest;
use registry_examples::send;
use registry_http::{RegistryBuilder, ResponseBody};

/// The application's own routes.
fn app_handler(req: &Request<Incoming>) -> Response<ResponseBody> {
    let body = format!("the application answers {}", req.uri().path());
    Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync())
}

async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let registry = RegistryBuilder::new().prefix("/registry").build_service(&format!("http://{addr}")).await?;
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { break };
            let registry = registry.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let registry = registry.clone();
                async move {
                    if req.uri().path().starts_with("/registry/") {
                        Ok::<_, Infallible>(registry.handle(req).await)
                    } else {
                        Ok(app_handler(&req))
                    }
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });

    let (status, _, body) = send(addr, "GET", "/hello", "").await?;
    assert_eq!(status, 200);
    println!("{}", String::from_utf8_lossy(&body));

    let blob = b"mounted under a prefix".to_vec();
    let digest = Digest::sha256_of(&blob);
    let (status, headers, _) =
        send(addr, "POST", &format!("/registry/v2/app/blobs/uploads/?digest={digest}"), blob).await?;
    assert_eq!(status, 201);
    let location = headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(location, format!("/registry/v2/app/blobs/{digest}"));
    let (status, _, body) = send(addr, "GET", &location, "").await?;
    assert_eq!((status.as_u16(), body.as_ref()), (200, b"mounted under a prefix".as_ref()));
    println!("registry answered under /registry: {location}");
    server.abort();
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    run().await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn both_halves_answer() {
        super::run().await.expect("example runs");
    }
}
