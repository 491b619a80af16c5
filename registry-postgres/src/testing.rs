//! A throwaway database per test (feature `testing`): created on a PostgreSQL server the test
//! names (`REGISTRY_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! dropped when the test is done with it.

use crate::{PgOptions, PgStore};

/// The server tests create their databases on.
pub fn server_url() -> String {
    std::env::var("REGISTRY_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
    dropped: bool,
}

fn with_database(url: &str, database: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{database}"),
        None => format!("{url}/{database}"),
    }
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} does not answer (run the README's test command): {e}"));
    tokio::spawn(connection);
    client
}

impl TestDatabase {
    /// Creates an empty database.
    pub async fn create() -> TestDatabase {
        let admin_url = server_url();
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).expect("randomness");
        let name = format!("registry_test_{}", id.iter().map(|b| format!("{b:02x}")).collect::<String>());
        admin(&admin_url).await.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create database");
        let url = with_database(&admin_url, &name);
        TestDatabase { admin_url, name, url, dropped: false }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A store on it (migrations applied).
    pub async fn store(&self) -> PgStore {
        PgStore::connect(&self.url, PgOptions::default()).await.expect("connect")
    }

    /// Drops the database (closing the connections still open to it).
    pub async fn drop_database(mut self) {
        admin(&self.admin_url)
            .await
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await
            .expect("drop database");
        self.dropped = true;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // A test that failed before dropping it: drop it from a thread of its own.
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}
