//! `sslmode=require`: the connection is TLS, verified against the CA file given; a server whose
//! certificate no trusted authority signed is refused, naming the database.

use registry_postgres::{PgOptions, PgStore};
use testkit::postgres::PrivatePostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_uses_tls_and_verifies_the_server() {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let server_key = rcgen::KeyPair::generate().expect("key");
    let server_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let server = server_params.signed_by(&server_key, &issuer).expect("server cert");
    let pg = PrivatePostgres::start_with_tls(&server.pem(), &server_key.serialize_pem()).await;

    let dir = tempfile_dir();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("ca file");
    let url = format!("{}?sslmode=require", pg.url());
    let options = PgOptions { ca_file: Some(ca_file), ..PgOptions::default() };
    let store = PgStore::connect(&url, options).await.expect("TLS, verified by the CA file");
    assert!(store.connection_uses_tls().await.expect("query"), "the session is encrypted");
    drop(store);

    let err = PgStore::connect(&url, PgOptions::default()).await.expect_err("an unknown CA is refused");
    assert!(err.to_string().contains(&format!("127.0.0.1:{}", pg.port)), "names the database: {err}");
    let plain = PgStore::connect(&pg.url(), PgOptions::default()).await.expect("plain without sslmode");
    assert!(!plain.connection_uses_tls().await.expect("query"));
    drop(plain);
    pg.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("registry-pg-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}
