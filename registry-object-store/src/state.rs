//! An upload's state, as the engine saves it with the upload's offset (see the `BlobStore` module
//! docs): the multipart upload and its parts, and the object holding the bytes after the last
//! full part.

use registry_storage::{Error, Result};
use serde::{Deserialize, Serialize};

/// The bytes after the last full part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tail {
    /// The object's name (relative to the root).
    pub(crate) name: String,
    /// Its length.
    pub(crate) len: u64,
}

/// Everything needed to continue, read back, publish or remove an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UploadState {
    /// The size of every part but the last (fixed when the upload starts, so a configuration
    /// change does not break uploads in progress).
    pub(crate) part_size: u64,
    /// Where the multipart upload completes (a name relative to the root): the blob's own key
    /// when the client announced a sha256 digest, else a key of the upload's.
    pub(crate) target: String,
    /// The multipart upload's id, once its first part was written.
    pub(crate) multipart: Option<String>,
    /// The full parts' ids (ETags), in order.
    pub(crate) parts: Vec<String>,
    /// The bytes after the last full part (none before the first append).
    pub(crate) tail: Option<Tail>,
    /// The tail of the state before this one: garbage once this state is saved, which the next
    /// append from it proves.
    pub(crate) superseded: Option<String>,
}

impl UploadState {
    /// A new, empty upload.
    pub(crate) fn new(part_size: u64, target: String) -> UploadState {
        UploadState { part_size, target, multipart: None, parts: Vec::new(), tail: None, superseded: None }
    }

    /// The bytes the upload holds in this state.
    pub(crate) fn len(&self) -> u64 {
        self.parts.len() as u64 * self.part_size + self.tail.as_ref().map_or(0, |t| t.len)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        // A struct of strings and integers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<UploadState> {
        serde_json::from_slice(bytes).map_err(|e| Error::corrupt("an object-storage upload's state", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_length() {
        let mut state = UploadState::new(8, "uploads/x/data".into());
        assert_eq!(state.len(), 0);
        state.parts = vec!["a".into(), "b".into()];
        state.tail = Some(Tail { name: "uploads/x/tail-1".into(), len: 3 });
        assert_eq!(state.len(), 19);
        assert_eq!(UploadState::decode(&state.encode()).expect("decode"), state);
        assert!(UploadState::decode(b"").is_err(), "a state from another store is refused");
    }
}
