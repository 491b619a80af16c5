//! The blob cache over another store: what it copies, what it serves from its copies, what it
//! refuses to keep, its bound and its restart. (The shared store here is the in-memory one; the
//! replicated tests in registry-server run it over S3.)

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use registry_core::Digest;
use registry_storage::blob::cache::CachedBlobStore;
use registry_storage::{BlobStore, MemoryBlobStore};

async fn bytes_of(store: &dyn BlobStore, digest: &Digest, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let chunks: Vec<Bytes> = store.read(digest, range).await.expect("read").try_collect().await.expect("stream");
    chunks.concat()
}

async fn put(remote: &MemoryBlobStore, content: &[u8]) -> Digest {
    let digest = Digest::sha256_of(content);
    remote.put(&digest, Bytes::copy_from_slice(content)).await.expect("put");
    digest
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).expect("dir").count()
}

#[tokio::test]
async fn a_pulled_blob_is_served_from_its_copy_once_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = Arc::new(MemoryBlobStore::new());
    let cache = CachedBlobStore::open(remote.clone(), dir.path(), 1 << 20).await.expect("open");
    let content = vec![7u8; 3000];
    let digest = put(&remote, &content).await;

    assert_eq!(bytes_of(&cache, &digest, Some(10..20)).await, content[10..20], "a range passes through");
    cache.settled().await;
    assert!(!cache.holds(&digest), "a ranged read copies nothing");

    assert_eq!(bytes_of(&cache, &digest, None).await, content);
    cache.settled().await;
    assert!(cache.holds(&digest), "a whole read is copied");
    assert_eq!(cache.held(), (1, 3000));

    // From here the copy answers: the shared store no longer has the bytes.
    remote.delete(&digest).await.expect("delete");
    assert_eq!(bytes_of(&cache, &digest, None).await, content);
    assert_eq!(bytes_of(&cache, &digest, Some(2990..3000)).await, content[2990..]);
    let stats = cache.cache_stats();
    assert_eq!((stats[0].cache, stats[0].hits, stats[0].misses), ("blob_files", 2, 2));
    assert_eq!(files_in(&dir.path().join("tmp")), 0, "no temporary file stays");
}

#[tokio::test]
async fn bytes_that_are_not_the_digests_and_pulls_cut_short_are_not_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = Arc::new(MemoryBlobStore::new());
    let cache = CachedBlobStore::open(remote.clone(), dir.path(), 1 << 20).await.expect("open");

    // A store that answers with other bytes than the digest's (corruption on the way).
    let digest = Digest::sha256_of(b"what was pushed");
    remote.put(&digest, Bytes::from_static(b"what the store gives back")).await.expect("put");
    assert_eq!(bytes_of(&cache, &digest, None).await, b"what the store gives back");
    cache.settled().await;
    assert!(!cache.holds(&digest), "unverified bytes are not kept");

    // A pull whose client went away before reading anything.
    let cut = put(&remote, b"a layer nobody finished pulling").await;
    drop(cache.read(&cut, None).await.expect("read"));
    cache.settled().await;
    assert!(!cache.holds(&cut), "a cut pull is not kept");
    assert_eq!(cache.held(), (0, 0));
    assert_eq!(files_in(&dir.path().join("tmp")), 0, "the abandoned copies' files are gone");

    // A copy starts again on the next whole pull.
    assert_eq!(bytes_of(&cache, &cut, None).await, b"a layer nobody finished pulling");
    cache.settled().await;
    assert!(cache.holds(&cut));
}

#[tokio::test]
async fn the_least_recently_read_copies_go_to_keep_the_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = Arc::new(MemoryBlobStore::new());
    let cache = CachedBlobStore::open(remote.clone(), dir.path(), 100).await.expect("open");
    let a = put(&remote, &[1u8; 40]).await;
    let b = put(&remote, &[2u8; 40]).await;
    let c = put(&remote, &[3u8; 40]).await;
    let huge = put(&remote, &[4u8; 101]).await;

    for digest in [&a, &b] {
        bytes_of(&cache, digest, None).await;
        cache.settled().await;
    }
    // `a` read again after `b`: `b` is now the least recently read.
    bytes_of(&cache, &a, None).await;
    bytes_of(&cache, &c, None).await;
    cache.settled().await;
    assert!(cache.holds(&a) && cache.holds(&c) && !cache.holds(&b), "b was the least recently read");
    assert_eq!(cache.held(), (2, 80));

    bytes_of(&cache, &huge, None).await;
    cache.settled().await;
    assert!(!cache.holds(&huge), "a blob larger than the bound is never copied");
    assert_eq!(cache.held(), (2, 80), "and takes nothing else's place");
    assert_eq!(files_in(&dir.path().join("tmp")), 0, "what was written of it is gone");

    // Deleting through the cache deletes the copy too.
    assert!(cache.delete(&a).await.expect("delete"));
    assert!(!cache.holds(&a));
    assert_eq!(cache.held(), (1, 40));
}

#[tokio::test]
async fn copies_outlive_a_restart_and_a_crashs_leftovers_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = Arc::new(MemoryBlobStore::new());
    let a = put(&remote, &[1u8; 40]).await;
    let b = put(&remote, &[2u8; 40]).await;
    {
        let cache = CachedBlobStore::open(remote.clone(), dir.path(), 1000).await.expect("open");
        for digest in [&a, &b] {
            bytes_of(&cache, digest, None).await;
            cache.settled().await;
        }
    }
    // A copy a crash cut halfway.
    std::fs::write(dir.path().join("tmp").join("6f1c8a0e-2d7b-4c55-9d0e-1a2b3c4d5e6f"), b"half").expect("write");

    let cache = CachedBlobStore::open(remote.clone(), dir.path(), 1000).await.expect("reopen");
    assert_eq!(cache.held(), (2, 80));
    assert_eq!(files_in(&dir.path().join("tmp")), 0, "leftovers are removed");
    remote.delete(&a).await.expect("delete");
    assert_eq!(bytes_of(&cache, &a, None).await, [1u8; 40], "served from the kept copy");
    drop(cache);

    // A smaller bound at the next start trims to it.
    let cache = CachedBlobStore::open(remote, dir.path(), 50).await.expect("reopen smaller");
    assert_eq!(cache.held().0, 1);
    assert!(cache.held().1 <= 50);
}

#[tokio::test]
async fn a_redirected_pull_sends_the_client_to_the_store_and_the_next_one_reads_the_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = Arc::new(MemoryBlobStore::new().with_download_urls("http://bucket.example/"));
    let cache = CachedBlobStore::open(remote.clone(), dir.path(), 1 << 20).await.expect("open");
    let content = vec![9u8; 5000];
    let digest = put(&remote, &content).await;

    let url = cache.download_url(&digest).await.expect("url");
    assert_eq!(url, Some(format!("http://bucket.example/{digest}")), "the first pull goes to the store");
    cache.settled().await;
    assert!(cache.holds(&digest), "and the replica copied the blob meanwhile");
    assert_eq!(cache.download_url(&digest).await.expect("url"), None, "the next pull is served here");
    remote.delete(&digest).await.expect("delete");
    assert_eq!(bytes_of(&cache, &digest, None).await, content);
    let unknown = Digest::sha256_of(b"never pushed");
    assert_eq!(cache.download_url(&unknown).await.expect("url"), None);
    cache.settled().await;
    assert!(!cache.holds(&unknown));
}
