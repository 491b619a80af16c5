//! The event stream in the database: written in the transaction of the change it records (redb
//! has one writer at a time, so ids given in a write transaction are in commit order), read by
//! cursor, queried newest first, trimmed by age.
//!
//! ```text
//! events   u64 id -> JSON event
//! cursors  consumer name -> id of the last event it finished with
//! ```

use redb::{ReadableTable, TableDefinition};
use registry_core::BackendError;
use registry_core::event::{Event, EventFilter};

use crate::RedbStore;
use crate::handle::{Fault, db_err};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cursors");

/// How far past the cut a trim reads before it stops (see `trim`).
const TRIM_MARGIN_MS: u64 = 3_600_000;

type Result<T, E = registry_storage::Error> = std::result::Result<T, E>;

fn corrupt<E: Fault>(e: serde_json::Error) -> E {
    E::backend(BackendError::permanent("a corrupt event record", e))
}

/// Creates the tables.
pub(crate) fn prepare<E: Fault>(txn: &redb::WriteTransaction) -> Result<(), E> {
    txn.open_table(EVENTS).map_err(db_err)?;
    txn.open_table(CURSORS).map_err(db_err)?;
    Ok(())
}

/// Writes `events` in the caller's transaction, giving them the next ids.
pub(crate) fn record<E: Fault>(txn: &redb::WriteTransaction, events: &[Event]) -> Result<(), E> {
    let encoded = events.iter().map(encode).collect::<Result<Vec<_>, E>>()?;
    record_encoded(txn, &encoded)
}

/// An event's stored bytes: its JSON (the id is the key, set again when it is read).
pub(crate) fn encode<E: Fault>(event: &Event) -> Result<Vec<u8>, E> {
    serde_json::to_vec(event).map_err(corrupt)
}

/// Writes encoded events in the caller's transaction, giving them the next ids.
pub(crate) fn record_encoded<E: Fault>(txn: &redb::WriteTransaction, encoded: &[Vec<u8>]) -> Result<(), E> {
    if encoded.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(EVENTS).map_err(db_err)?;
    let first = table.last().map_err(db_err)?.map_or(0, |(k, _)| k.value()) + 1;
    for (id, bytes) in (first..).zip(encoded) {
        table.insert(id, bytes.as_slice()).map_err(db_err)?;
    }
    Ok(())
}

fn err(e: impl Into<redb::Error>) -> registry_storage::Error {
    db_err(e)
}

fn decode(id: u64, bytes: &[u8]) -> Result<Event> {
    let event: Event = serde_json::from_slice(bytes).map_err(corrupt::<registry_storage::Error>)?;
    Ok(Event { id, ..event })
}

impl RedbStore {
    pub(crate) async fn after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.db
            .read(move |txn| {
                let table = txn.open_table(EVENTS).map_err(err)?;
                let mut out = Vec::new();
                for item in table.range(after.saturating_add(1)..).map_err(err)?.take(limit) {
                    let (k, v) = item.map_err(err)?;
                    out.push(decode(k.value(), v.value())?);
                }
                Ok(out)
            })
            .await
    }

    pub(crate) async fn query(&self, filter: &EventFilter, offset: usize, limit: usize) -> Result<(Vec<Event>, u64)> {
        let filter = filter.clone();
        self.db
            .read(move |txn| {
                let table = txn.open_table(EVENTS).map_err(err)?;
                let (mut page, mut total) = (Vec::new(), 0u64);
                for item in table.iter().map_err(err)?.rev() {
                    let (k, v) = item.map_err(err)?;
                    let event = decode(k.value(), v.value())?;
                    if filter.matches(&event) {
                        if total >= offset as u64 && page.len() < limit {
                            page.push(event);
                        }
                        total += 1;
                    }
                }
                Ok((page, total))
            })
            .await
    }

    pub(crate) async fn trim(&self, before_ms: u64) -> Result<u64> {
        self.db
            .write(move |txn| {
                let mut table = txn.open_table(EVENTS).map_err(err)?;
                let mut old = Vec::new();
                for item in table.iter().map_err(err)? {
                    let (k, v) = item.map_err(err)?;
                    // Ids follow time closely, but not exactly (pulls are appended in batches,
                    // later while the store refused them): past an hour beyond the cut, the rest
                    // is newer, and the oldest part of the stream is all that is read.
                    let time_ms = decode(k.value(), v.value())?.time_ms;
                    if time_ms < before_ms {
                        old.push(k.value());
                    } else if time_ms >= before_ms.saturating_add(TRIM_MARGIN_MS) {
                        break;
                    }
                }
                for id in &old {
                    table.remove(*id).map_err(err)?;
                }
                Ok(old.len() as u64)
            })
            .await
    }

    pub(crate) async fn consumer(&self, name: &str) -> Result<u64> {
        let name = name.to_owned();
        self.db
            .read(move |txn| {
                Ok(txn.open_table(CURSORS).map_err(err)?.get(name.as_str()).map_err(err)?.map_or(0, |v| v.value()))
            })
            .await
    }

    pub(crate) async fn advance(&self, name: &str, from: u64, to: u64) -> Result<bool> {
        let name = name.to_owned();
        self.db
            .write(move |txn| {
                let mut table = txn.open_table(CURSORS).map_err(err)?;
                let at = table.get(name.as_str()).map_err(err)?.map_or(0, |v| v.value());
                if at != from {
                    return Ok(false);
                }
                table.insert(name.as_str(), to).map_err(err)?;
                Ok(true)
            })
            .await
    }
}
