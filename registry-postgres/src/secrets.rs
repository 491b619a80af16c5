//! Secrets every replica must share, kept in the database: the first replica that needs one makes
//! it, every other finds it.

use registry_core::BackendError;

use crate::{Cached, PgStore, pg_err};

impl PgStore {
    /// The secret `name`; made with `make` and stored when no replica has made it yet (of two
    /// replicas making it at once, one's is kept and both return it).
    pub async fn shared_secret(
        &self,
        name: &str,
        make: impl FnOnce() -> Result<Vec<u8>, BackendError>,
    ) -> Result<Vec<u8>, BackendError> {
        let client = self.client().await?;
        let read = |row: Option<tokio_postgres::Row>| row.map(|r| r.get::<_, Vec<u8>>(0));
        let found = client
            .cached_opt("SELECT value FROM secrets WHERE name = $1", &[&name])
            .await
            .map_err(|e| pg_err("reading a secret", e))?;
        if let Some(value) = read(found) {
            return Ok(value);
        }
        let value = make()?;
        client
            .cached_execute(
                "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&name, &value],
            )
            .await
            .map_err(|e| pg_err("storing a secret", e))?;
        let stored = client
            .cached_one("SELECT value FROM secrets WHERE name = $1", &[&name])
            .await
            .map_err(|e| pg_err("reading a secret", e))?;
        Ok(stored.get(0))
    }
}
