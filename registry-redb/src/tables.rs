//! The tables both the metadata writes (`meta.rs`) and the usage bookkeeping (`quota.rs`) touch;
//! their layout is documented in `meta.rs`.

use redb::TableDefinition;

pub(crate) const BLOB_LINKS: TableDefinition<&str, u64> = TableDefinition::new("blob_links");
pub(crate) const MANIFESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("manifests");
pub(crate) const HOLDERS: TableDefinition<&str, u64> = TableDefinition::new("holders");
