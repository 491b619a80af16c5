//! The object store on real S3 servers started by the tests: Garage (production semantics) and
//! moto (which enforces the minimum part size and conditional requests that Garage skips). The
//! shared blob-store and garbage-collection suites, multipart uploads continued from saved states
//! (as another replica would), read-back, removal without the state, presigned redirects, and
//! clear errors for a wrong bucket, wrong credentials and an endpoint that does not answer.

use std::sync::Arc;

use bytes::Bytes;
use registry_core::Digest;
use registry_object_store::{MIN_PART_SIZE, ObjectBlobStore, S3Config};
use registry_storage::testing::gc::{GcFixture, gc_suite};
use registry_storage::testing::{blob_store_suite, body, collect};
use registry_storage::{BlobStore, Limits, MemoryMetadataStore, Registry, UploadId};
use testkit::s3::S3Server;

fn config(server: &S3Server, prefix: &str) -> S3Config {
    S3Config {
        bucket: server.bucket.clone(),
        prefix: prefix.into(),
        endpoint: Some(server.endpoint.clone()),
        region: Some(server.region.clone()),
        path_style: true,
        access_key_id: Some(server.access_key_id.clone()),
        secret_access_key: Some(server.secret_access_key.clone()),
        part_size: Some(MIN_PART_SIZE),
        ..S3Config::default()
    }
}

async fn store(server: &S3Server, prefix: &str) -> ObjectBlobStore {
    ObjectBlobStore::s3(config(server, prefix)).await.expect("connect to the bucket")
}

/// Deterministic incompressible-looking bytes.
fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

const MIB: usize = 1 << 20;

/// Multipart uploads as replicas make them: chunks of odd sizes across part boundaries, an
/// append that was never acknowledged and is redone from the saved state, read-back, publication
/// from a chunked session and from an announced digest, and removal without the state.
async fn multipart_cases(store: &ObjectBlobStore) {
    // 13 MiB in chunks of 3 MiB + 1 byte: parts of 5 MiB fill across chunk boundaries.
    let bytes = data(13 * MIB, 1);
    let digest = Digest::sha256_of(&bytes);
    let id = UploadId::new_random();
    let mut state = store.upload_create(&id, None).await.expect("create");
    let mut offset = 0usize;
    let mut redone = false;
    while offset < bytes.len() {
        let end = (offset + 3 * MIB + 1).min(bytes.len());
        let chunk = &bytes[offset..end];
        let (len, next) = store.upload_append(&id, &state, offset as u64, &mut body(&[chunk])).await.expect("append");
        assert_eq!(len as usize, end);
        if !redone && end > 6 * MIB {
            // Never acknowledged (the replica died before saving): the next replica appends
            // from the saved state again, with other bytes first, then the right ones.
            redone = true;
            let junk = data(chunk.len(), 9);
            store.upload_append(&id, &state, offset as u64, &mut body(&[&junk])).await.expect("append junk");
            let (again, next) =
                store.upload_append(&id, &state, offset as u64, &mut body(&[chunk])).await.expect("redo");
            assert_eq!(again as usize, end);
            state = next;
        } else {
            state = next;
        }
        offset = end;
    }
    let listed = store.list_uploads(None, 100).await.expect("list uploads");
    assert!(listed.iter().any(|u| u.key == id), "the upload is listed for garbage collection");
    assert!(store.upload_info(&id).await.expect("info").is_some());
    let read = collect(store.upload_read(&id, &state, bytes.len() as u64).await.expect("read back")).await;
    assert!(read == bytes, "read-back returns exactly the acknowledged bytes");
    store.upload_publish(&id, &state, &digest, bytes.len() as u64).await.expect("publish");
    assert_eq!(store.stat(&digest).await.expect("stat"), Some(bytes.len() as u64));
    let whole = collect(store.read(&digest, None).await.expect("read")).await;
    assert!(whole == bytes, "the published blob is the uploaded bytes");
    let across = collect(store.read(&digest, Some(5 * MIB as u64 - 3..5 * MIB as u64 + 3)).await.expect("range")).await;
    assert_eq!(across, &bytes[5 * MIB - 3..5 * MIB + 3], "a range across a part boundary");
    assert_eq!(store.upload_info(&id).await.expect("info"), None, "nothing of the upload is left");

    // Announced digest (a monolithic push): the parts go to the blob's key.
    let mono = data(11 * MIB + 7, 2);
    let mono_digest = Digest::sha256_of(&mono);
    let id = UploadId::new_random();
    let s = store.upload_create(&id, Some(&mono_digest)).await.expect("create");
    assert_eq!(store.stat(&mono_digest).await.expect("stat"), None);
    let (len, s) = store.upload_append(&id, &s, 0, &mut body(&[&mono])).await.expect("append");
    assert_eq!(store.stat(&mono_digest).await.expect("stat"), None, "nothing visible before publication");
    store.upload_publish(&id, &s, &mono_digest, len).await.expect("publish");
    assert!(collect(store.read(&mono_digest, None).await.expect("read")).await == mono);

    // Removed by garbage collection, which may not have the state: the multipart upload is
    // aborted and every object goes.
    let id = UploadId::new_random();
    let s = store.upload_create(&id, None).await.expect("create");
    store.upload_append(&id, &s, 0, &mut body(&[&data(6 * MIB, 3)])).await.expect("append");
    store.upload_delete(&id, None).await.expect("remove without the state");
    assert_eq!(store.upload_info(&id).await.expect("info"), None);
    assert!(!store.list_uploads(None, 100).await.expect("list").iter().any(|u| u.key == id));

    // Listing pages through uploads in id order.
    let mut ids: Vec<UploadId> = Vec::new();
    for _ in 0..3 {
        let id = UploadId::new_random();
        let s = store.upload_create(&id, None).await.expect("create");
        store.upload_append(&id, &s, 0, &mut body(&[b"x"])).await.expect("append");
        ids.push(id);
    }
    ids.sort();
    let first = store.list_uploads(None, 2).await.expect("list");
    let rest = store.list_uploads(first.last().map(|u| &u.key), 2).await.expect("list");
    let listed: Vec<UploadId> = first.iter().chain(&rest).map(|u| u.key.clone()).collect();
    assert_eq!(listed, ids, "two pages, in order, each upload once");
    for id in &ids {
        store.upload_delete(id, None).await.expect("remove");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_garage() {
    let server = S3Server::garage().await;
    blob_store_suite(&store(&server, "suite").await).await;
    multipart_cases(&store(&server, "multipart").await).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_moto_which_enforces_the_part_size() {
    let server = S3Server::moto().await;
    blob_store_suite(&store(&server, "suite").await).await;
    multipart_cases(&store(&server, "multipart").await).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_collection_suite_on_garage() {
    let server = Arc::new(S3Server::garage().await);
    let cases = std::sync::atomic::AtomicUsize::new(0);
    gc_suite(|| {
        let (server, case) = (server.clone(), cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        async move {
            let blobs = Arc::new(store(&server, &format!("gc-{case}")).await);
            let registry = Registry::new(blobs.clone(), Arc::new(MemoryMetadataStore::new()), Limits::default());
            GcFixture { registry, blobs, guard: Box::new(()) }
        }
    })
    .await;
    Arc::into_inner(server).expect("one owner").stop().await;
}

#[tokio::test]
async fn downloads_redirect_to_presigned_urls_when_asked() {
    let server = S3Server::garage().await;
    let mut cfg = config(&server, "redirect");
    let plain = ObjectBlobStore::s3(cfg.clone()).await.expect("connect");
    cfg.redirect = true;
    let redirecting = ObjectBlobStore::s3(cfg).await.expect("connect");
    let content = Bytes::from_static(b"a layer, fetched from the bucket itself");
    let digest = Digest::sha256_of(&content);
    plain.put(&digest, content.clone()).await.expect("put");
    assert_eq!(plain.download_url(&digest).await.expect("url"), None, "off by default");
    let url = redirecting.download_url(&digest).await.expect("url").expect("a presigned URL");
    let fetched = testkit::client().get(&url).send().await.expect("GET the presigned URL");
    assert!(fetched.status().is_success(), "{}", fetched.status());
    assert_eq!(fetched.bytes().await.expect("body"), content);
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_bucket_credentials_or_endpoint_is_named() {
    let server = S3Server::garage().await;
    let wrong_bucket = S3Config { bucket: "no-such-bucket".into(), ..config(&server, "") };
    let err = ObjectBlobStore::s3(wrong_bucket).await.expect_err("no such bucket").to_string();
    assert!(err.contains("no-such-bucket") && err.contains(&server.endpoint), "{err}");
    let wrong_key = S3Config { secret_access_key: Some("0".repeat(64)), ..config(&server, "") };
    let err = ObjectBlobStore::s3(wrong_key).await.expect_err("wrong secret").to_string();
    assert!(err.contains("registry") && !err.contains(&"0".repeat(64)), "names the bucket, not the secret: {err}");
    server.stop().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let gone = S3Config {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        ..S3Config { bucket: "b".into(), ..S3Config::default() }
    };
    let err = ObjectBlobStore::s3(gone).await.expect_err("nothing answers").to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    let err = ObjectBlobStore::s3(S3Config::default()).await.expect_err("no bucket").to_string();
    assert!(err.contains("no bucket"), "{err}");
}
