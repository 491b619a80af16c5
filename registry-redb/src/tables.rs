//! The tables the metadata writes (`meta.rs`) share with the usage bookkeeping (`quota.rs`) and
//! the listing index (`listing.rs`); their layout is documented in `meta.rs`.

use redb::TableDefinition;

pub(crate) const BLOB_LINKS: TableDefinition<&str, u64> = TableDefinition::new("blob_links");
pub(crate) const MANIFESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("manifests");
pub(crate) const HOLDERS: TableDefinition<&str, u64> = TableDefinition::new("holders");
pub(crate) const MANIFEST_TAGS: TableDefinition<&str, u8> = TableDefinition::new("manifest_tags");
pub(crate) const BLOB_REFS: TableDefinition<&str, u8> = TableDefinition::new("blob_refs");
/// (repository, digest) -> (pulls, newest pull in ms).
pub(crate) const PULLS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("pulls");
