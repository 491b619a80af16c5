//! Storage faults (EIO, ENOSPC) over HTTP: the request gets a 5xx OCI error body (never a panic or
//! a hung connection), nothing half-published is visible, and the registry works again as soon as
//! the fault clears. Also a real full disk (a small tmpfs) during a push.

use std::sync::Arc;

use registry_core::Digest;
use registry_http::TestRegistry;
use registry_redb::RedbStore;
use registry_storage::testing::faults::{FaultKind, FaultPoint, Faults, FaultyBlobStore, FaultyMetadataStore};
use registry_storage::{FsBlobStore, Limits, Registry};
use reqwest::StatusCode;
use testkit::*;

struct Faulty {
    reg: TestRegistry,
    faults: Faults,
    dir: tempfile::TempDir,
}

async fn faulty_registry() -> Faulty {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = Faults::default();
    let blobs = FsBlobStore::open(dir.path().join("blobs")).expect("blobs");
    let meta = RedbStore::open(dir.path().join("metadata.redb")).expect("metadata");
    let registry = Registry::new(
        Arc::new(FaultyBlobStore::new(blobs, faults.clone())),
        Arc::new(FaultyMetadataStore::new(meta, faults.clone())),
        Limits::default(),
    );
    let reg = TestRegistry::builder().registry(registry).start().await.expect("start");
    Faulty { reg, faults, dir }
}

/// Asserts a retryable server error with the spec's JSON body.
async fn assert_server_error(resp: reqwest::Response) {
    assert!(resp.status().is_server_error(), "{}", resp.status());
    let body: serde_json::Value = resp.json().await.expect("a JSON error body");
    assert_eq!(body["errors"][0]["code"], "UNKNOWN", "{body}");
}

#[tokio::test]
async fn a_full_disk_mid_chunk_leaves_the_upload_where_it_was_and_it_resumes() {
    let f = faulty_registry().await;
    let (c, base) = (client(), f.reg.url());
    let resp = c.post(format!("{base}/v2/faults/app/blobs/uploads/")).send().await.expect("post");
    let location = header(&resp, "location");
    let chunk = |bytes: &'static [u8], range: &str| {
        c.patch(format!("{base}{location}"))
            .header("content-type", "application/octet-stream")
            .header("content-range", range.to_owned())
            .body(bytes)
            .send()
    };
    let resp = chunk(b"first part ", "0-10").await.expect("patch");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    f.faults.fail(FaultPoint::BlobWrite, FaultKind::NoSpace);
    assert_server_error(chunk(b"second part", "11-21").await.expect("patch")).await;
    let status = c.get(format!("{base}{location}")).send().await.expect("status");
    assert_eq!(header(&status, "range"), "0-10", "the failed chunk left nothing");

    f.faults.clear();
    let resp = chunk(b"second part", "11-21").await.expect("patch");
    assert_eq!(resp.status(), StatusCode::ACCEPTED, "the same chunk again, once there is room");
    let digest = Digest::sha256_of(b"first part second part");
    let resp = c.put(format!("{base}{location}?digest={digest}")).send().await.expect("put");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let pulled = c.get(format!("{base}/v2/faults/app/blobs/{digest}")).send().await.expect("get");
    assert_eq!(pulled.bytes().await.expect("body").as_ref(), b"first part second part");
}

#[tokio::test]
async fn failed_publish_and_metadata_writes_publish_nothing_and_recover() {
    let f = faulty_registry().await;
    let (c, base) = (client(), f.reg.url());
    let data = b"a blob that fails to publish";
    let digest = Digest::sha256_of(data);
    let push = || c.post(format!("{base}/v2/faults/pub/blobs/uploads/?digest={digest}")).body(data.to_vec()).send();

    f.faults.fail(FaultPoint::BlobPublish, FaultKind::Io);
    assert_server_error(push().await.expect("push")).await;
    let head = c.head(format!("{base}/v2/faults/pub/blobs/{digest}")).send().await.expect("head");
    assert_eq!(head.status(), StatusCode::NOT_FOUND, "not published");
    f.faults.clear();

    // The metadata database fails: the blob lands but is not linked, so it is not visible.
    f.faults.fail(FaultPoint::MetaWrite, FaultKind::Io);
    assert_server_error(push().await.expect("push")).await;
    f.faults.clear();
    let head = c.head(format!("{base}/v2/faults/pub/blobs/{digest}")).send().await.expect("head");
    assert_eq!(head.status(), StatusCode::NOT_FOUND);

    // Cleared: the client's retry succeeds.
    assert_eq!(push().await.expect("push").status(), StatusCode::CREATED);
    let (manifest, manifest_digest) = {
        let config = push_blob(&c, &base, "faults/pub", b"{}").await;
        let m = image_manifest(&config, 2, &[(digest.clone(), data.len())], "");
        let d = Digest::sha256_of(m.as_bytes());
        (m, d)
    };
    let put = || {
        c.put(format!("{base}/v2/faults/pub/manifests/v1"))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
    };
    for point in [FaultPoint::BlobWrite, FaultPoint::MetaWrite] {
        f.faults.fail(point, FaultKind::NoSpace);
        assert_server_error(put().await.expect("put")).await;
        f.faults.clear();
        let get = c.get(format!("{base}/v2/faults/pub/manifests/v1")).send().await.expect("get");
        assert_eq!(get.status(), StatusCode::NOT_FOUND, "no tag after a failed push ({point:?})");
    }
    assert_eq!(put().await.expect("put").status(), StatusCode::CREATED);

    // Reads fail with a 5xx too, and work again after.
    f.faults.fail(FaultPoint::MetaRead, FaultKind::Io);
    assert_server_error(c.get(format!("{base}/v2/faults/pub/manifests/{manifest_digest}")).send().await.expect("get"))
        .await;
    assert_server_error(c.get(format!("{base}/v2/faults/pub/tags/list")).send().await.expect("get")).await;
    f.faults.clear();
    f.faults.fail(FaultPoint::BlobRead, FaultKind::Io);
    assert_server_error(c.get(format!("{base}/v2/faults/pub/blobs/{digest}")).send().await.expect("get")).await;
    f.faults.clear();
    let pulled = c.get(format!("{base}/v2/faults/pub/blobs/{digest}")).send().await.expect("get");
    assert_eq!(pulled.bytes().await.expect("body").as_ref(), data);
    assert_eq!(f.dir.path().join("blobs/tmp").read_dir().expect("tmp").count(), 0, "no temporary file left");
}

/// A real full disk: the data directory on a 2 MiB tmpfs. Needs mount rights (root in a
/// container); says so and checks nothing else when it has none.
#[tokio::test]
async fn a_real_full_disk_during_a_push_leaves_no_partial_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("cannot mount a tmpfs here: the real-disk variant is skipped (the injected faults above cover it)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dir.path().to_owned());
    let reg = TestRegistry::builder().embedded(dir.path()).start().await.expect("start");
    let (c, base) = (client(), reg.url());
    let small = push_blob(&c, &base, "full/app", b"fits").await;
    let kept_manifest = image_manifest(&small, 4, &[], "");
    let resp = c
        .put(format!("{base}/v2/full/app/manifests/kept"))
        .header("content-type", OCI_MANIFEST)
        .body(kept_manifest)
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let big = vec![7u8; 3 << 20];
    let digest = Digest::sha256_of(&big);
    let resp = c.post(format!("{base}/v2/full/app/blobs/uploads/?digest={digest}")).body(big.clone()).send().await;
    let resp = resp.expect("the server answers");
    assert_server_error(resp).await;
    let head = c.head(format!("{base}/v2/full/app/blobs/{digest}")).send().await.expect("head");
    assert_eq!(head.status(), StatusCode::NOT_FOUND, "no partial blob");
    assert_eq!(files_under(&dir.path().join("uploads")), 0, "the failed upload's bytes are gone");
    // Room again (a smaller push fits), and what was there is intact.
    let other = push_blob(&c, &base, "full/app", &vec![1u8; 256 << 10]).await;
    for d in [&small, &other] {
        let resp = c.get(format!("{base}/v2/full/app/blobs/{d}")).send().await.expect("get");
        assert_eq!(Digest::sha256_of(&resp.bytes().await.expect("body")), *d);
    }

    // Completely full (the metadata database cannot commit either), then room again.
    let filler = dir.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 64 << 10];
        while f.write_all(&block).and_then(|()| f.sync_data()).is_ok() {}
    }
    for i in 0..3u8 {
        let resp = c
            .post(format!("{base}/v2/full/app/blobs/uploads/?digest={}", Digest::sha256_of(&[i])))
            .body(vec![i])
            .send()
            .await
            .expect("the server answers");
        assert_server_error(resp).await;
    }
    let tag = c
        .put(format!("{base}/v2/full/app/manifests/v1"))
        .header("content-type", OCI_MANIFEST)
        .body(image_manifest(&small, 4, &[], ""))
        .send()
        .await
        .expect("put");
    assert!(tag.status().is_server_error(), "{}", tag.status());
    std::fs::remove_file(&filler).expect("free the disk");
    let after = push_blob(&c, &base, "full/app", b"the disk has room again").await;
    let resp = c.get(format!("{base}/v2/full/app/blobs/{after}")).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::OK, "the registry recovered without a restart");
    let untag = c.delete(format!("{base}/v2/full/app/manifests/kept")).send().await.expect("delete");
    assert_eq!(untag.status(), StatusCode::ACCEPTED, "metadata writes work again");
}

#[tokio::test]
async fn readiness_says_whether_storage_takes_writes() {
    let f = faulty_registry().await;
    let (c, base) = (client(), f.reg.url());
    let ready = c.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    f.faults.fail(FaultPoint::BlobWrite, FaultKind::NoSpace);
    let ready = c.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "reads work, writes do not");
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["problems"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(c.get(format!("{base}/healthz")).send().await.expect("healthz").status(), StatusCode::OK, "alive");
    f.faults.clear();
    let ready = c.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    drop(f.dir);
}
