//! Where things are in the bucket, below the configured prefix:
//!
//! ```text
//! blobs/<algorithm>/<hex>            a published blob (listing order is digest order)
//! uploads/<id>/started               an upload's marker: listed by garbage collection
//! uploads/<id>/tail-<offset>         the bytes after the last full part, as of <offset>
//! uploads/<id>/multipart             the multipart upload's target and id (to abort it)
//! uploads/<id>/data                  a chunked upload's multipart target (copied on publish)
//! uploads/<id>/sealed                an upload completed early to be read back (see `upload`)
//! ```

use object_store::path::Path;
use registry_core::Digest;
use registry_storage::UploadId;

/// Key names under a prefix.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// `""`, or the prefix with a trailing `/`.
    root: String,
}

impl Layout {
    pub(crate) fn new(prefix: &str) -> Layout {
        let prefix = prefix.trim_matches('/');
        Layout { root: if prefix.is_empty() { String::new() } else { format!("{prefix}/") } }
    }

    pub(crate) fn blob(&self, digest: &Digest) -> Path {
        Path::from(format!("{}blobs/{}/{}", self.root, digest.algorithm().as_str(), digest.hex()))
    }

    pub(crate) fn blobs(&self) -> Path {
        Path::from(format!("{}blobs", self.root))
    }

    /// The key of `digest`, for listing after it.
    pub(crate) fn blob_offset(&self, digest: &Digest) -> Path {
        self.blob(digest)
    }

    /// The digest a blob key names.
    pub(crate) fn digest_of(&self, key: &Path) -> Option<Digest> {
        let rest = key.as_ref().strip_prefix(&self.root)?.strip_prefix("blobs/")?;
        let (algorithm, hex) = rest.split_once('/')?;
        Digest::parse(&format!("{algorithm}:{hex}")).ok()
    }

    pub(crate) fn uploads(&self) -> Path {
        Path::from(format!("{}uploads", self.root))
    }

    pub(crate) fn upload_dir(&self, id: &UploadId) -> Path {
        Path::from(format!("{}uploads/{id}", self.root))
    }

    pub(crate) fn upload_object(&self, id: &UploadId, name: &str) -> Path {
        Path::from(format!("{}uploads/{id}/{name}", self.root))
    }

    /// A key after every object of upload `id` and before the next upload's.
    pub(crate) fn after_upload(&self, id: &UploadId) -> Path {
        // '0' sorts right after '/', and ids are fixed-length: "<id>0" is past "<id>/…" only.
        Path::from(format!("{}uploads/{id}0", self.root))
    }

    /// The upload an object belongs to.
    pub(crate) fn upload_of(&self, key: &Path) -> Option<UploadId> {
        let rest = key.as_ref().strip_prefix(&self.root)?.strip_prefix("uploads/")?;
        let (id, _) = rest.split_once('/')?;
        UploadId::parse(id).ok()
    }

    /// The key a stored key name stands for (names in upload states are relative to the root).
    pub(crate) fn key(&self, name: &str) -> Path {
        Path::from(format!("{}{name}", self.root))
    }

    /// A key's name relative to the root.
    pub(crate) fn name<'a>(&self, key: &'a Path) -> &'a str {
        key.as_ref().strip_prefix(&self.root).unwrap_or(key.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for prefix in ["", "registry", "/a/b/"] {
            let layout = Layout::new(prefix);
            let digest = Digest::sha256_of(b"x");
            assert_eq!(layout.digest_of(&layout.blob(&digest)), Some(digest.clone()), "{prefix}");
            let id = UploadId::new_random();
            assert_eq!(layout.upload_of(&layout.upload_object(&id, "started")), Some(id.clone()));
            let name = layout.name(&layout.upload_object(&id, "data")).to_owned();
            assert_eq!(layout.key(&name), layout.upload_object(&id, "data"));
            assert!(layout.after_upload(&id).as_ref() > layout.upload_object(&id, "tail-99999").as_ref());
            assert_eq!(layout.digest_of(&layout.upload_object(&id, "data")), None);
        }
    }
}
