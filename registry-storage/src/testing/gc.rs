//! The garbage-collection suite: what goes, what stays, the dry run, marks, abandoned uploads,
//! and the race with concurrent pushes, on the engine over any stores. A metadata store passes it
//! only if its transactions keep the GC contract (see `registry_storage::gc`).
//!
//! The race case spawns tasks: run the suite on a multi-threaded runtime.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use registry_core::event::Operator;
use registry_core::{Digest, Reference, RepositoryName};

use super::{body, collect};
use crate::{BlobStore, Error, GcOptions, Registry};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A fresh registry for one case of the suite.
pub struct GcFixture {
    /// The engine under test.
    pub registry: Registry,
    /// Its blob store (to check what is stored).
    pub blobs: Arc<dyn BlobStore>,
    /// Whatever must live as long as the case (a temporary directory, a database).
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Runs every case, each on a registry `make` builds empty.
pub async fn gc_suite<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = GcFixture>,
{
    unreferenced_blobs_go_after_the_grace_period_referenced_ones_stay(&make().await).await;
    deleting_an_image_frees_its_own_blobs_not_shared_ones(&make().await).await;
    delete_untagged_keeps_tagged_index_children_and_referrers_of_live_images(&make().await).await;
    a_dry_run_changes_nothing(&make().await).await;
    a_marked_blob_cannot_be_linked_and_the_next_run_finishes_it(&make().await).await;
    abandoned_uploads_are_removed(&make().await).await;
    collection_racing_pushes_never_leaves_a_manifest_without_its_blobs(&make().await).await;
    progress_is_reported_page_by_page(&make().await).await;
}

/// Collects with no grace period: everything unreferenced goes now.
fn now_options() -> GcOptions {
    GcOptions { grace: Duration::ZERO, ..GcOptions::default() }
}

fn name(s: &str) -> RepositoryName {
    RepositoryName::parse(s).expect("name")
}

async fn push_blob(r: &Registry, repo: &RepositoryName, content: &[u8]) -> Result<Digest, Error> {
    let digest = Digest::sha256_of(content);
    r.push_blob(repo, &digest, &mut body(&[content]), &registry_core::event::Operator::system()).await?;
    Ok(digest)
}

fn image_manifest(config: &Digest, layers: &[(&Digest, usize)], subject: Option<&Digest>) -> Bytes {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, size)| {
            format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{size}}}"#)
        })
        .collect();
    let subject = subject
        .map(|s| format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{s}","size":1}}"#))
        .unwrap_or_default();
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{}]{subject}}}"#,
        layers.join(",")
    ))
}

/// Pushes an image with one layer of `layer` (and a shared `{}` config); returns the manifest's
/// digest and the layer's.
async fn push_image(
    r: &Registry,
    repo: &RepositoryName,
    layer: &[u8],
    tag: Option<&str>,
    subject: Option<&Digest>,
) -> Result<(Digest, Digest), Error> {
    let config = push_blob(r, repo, b"{}").await?;
    let layer_digest = push_blob(r, repo, layer).await?;
    let manifest = image_manifest(&config, &[(&layer_digest, layer.len())], subject);
    let reference = match tag {
        Some(t) => Reference::parse(t).expect("tag"),
        None => Reference::Digest(Digest::sha256_of(&manifest)),
    };
    let pushed = r.put_manifest(repo, &reference, Some(OCI_MANIFEST), manifest, &Operator::system()).await?;
    Ok((pushed.digest, layer_digest))
}

async fn blob_exists(f: &GcFixture, digest: &Digest) -> bool {
    f.blobs.stat(digest).await.expect("stat").is_some()
}

async fn unreferenced_blobs_go_after_the_grace_period_referenced_ones_stay(f: &GcFixture) {
    let repo = name("gc/app");
    let (manifest, layer) = push_image(&f.registry, &repo, b"layer one", Some("v1"), None).await.expect("push");
    let orphan = push_blob(&f.registry, &repo, b"uploaded, never referenced").await.expect("blob");

    let kept = f.registry.collect_garbage(&GcOptions::default()).await.expect("gc");
    assert_eq!((kept.links_removed, kept.blobs_deleted), (0, 0), "within the grace period: {kept:?}");
    assert!(blob_exists(f, &orphan).await);

    let report = f.registry.collect_garbage(&now_options()).await.expect("gc");
    assert_eq!(report.links_removed, 1, "{report:?}");
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert_eq!(report.bytes_freed, b"uploaded, never referenced".len() as u64);
    assert!(!blob_exists(f, &orphan).await);
    assert!(matches!(f.registry.stat_blob(&repo, &orphan).await, Err(Error::BlobUnknown { .. })));
    // The image is whole.
    for d in [&manifest, &layer] {
        assert!(blob_exists(f, d).await, "{d} kept");
    }
    let (_, bytes) = f.registry.get_manifest(&repo, &Reference::parse("v1").expect("tag")).await.expect("manifest");
    assert_eq!(Digest::sha256_of(&bytes), manifest);
    let read = f.registry.read_blob(&repo, &layer, None).await.expect("layer");
    assert_eq!(collect(read.body).await, b"layer one");
}

async fn deleting_an_image_frees_its_own_blobs_not_shared_ones(f: &GcFixture) {
    let (a, b) = (name("gc/a"), name("gc/b"));
    let (manifest_a, layer_a) = push_image(&f.registry, &a, b"only in a", Some("v1"), None).await.expect("a");
    let (_, layer_b) = push_image(&f.registry, &b, b"only in b", Some("v1"), None).await.expect("b");
    f.registry.delete_manifest(&a, &Reference::Digest(manifest_a.clone()), &Operator::system()).await.expect("delete");

    let report = f.registry.collect_garbage(&now_options()).await.expect("gc");
    // a's layer, a's config link, a's manifest file; the config blob is shared with b.
    assert_eq!(report.links_removed, 2, "{report:?}");
    assert_eq!(report.blobs_deleted, 2, "{report:?}");
    assert!(!blob_exists(f, &layer_a).await);
    assert!(!blob_exists(f, &manifest_a).await);
    assert!(blob_exists(f, &layer_b).await);
    assert!(blob_exists(f, &Digest::sha256_of(b"{}")).await, "the config b uses stays");
}

async fn delete_untagged_keeps_tagged_index_children_and_referrers_of_live_images(f: &GcFixture) {
    let repo = name("gc/untagged");
    let r = &f.registry;
    let (tagged, _) = push_image(r, &repo, b"tagged", Some("v1"), None).await.expect("tagged");
    let (untagged, untagged_layer) = push_image(r, &repo, b"untagged", None, None).await.expect("untagged");
    let (signature, _) = push_image(r, &repo, b"signature", None, Some(&tagged)).await.expect("referrer");
    let (orphan_referrer, _) = push_image(r, &repo, b"orphan sig", None, Some(&untagged)).await.expect("referrer");
    let (child, _) = push_image(r, &repo, b"child", None, None).await.expect("child");
    let size = r.stat_manifest(&repo, &Reference::Digest(child.clone())).await.expect("child").size;
    let index = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{child}","size":{size}}}]}}"#
    ));
    r.put_manifest(&repo, &Reference::parse("multi").expect("tag"), Some(OCI_INDEX), index, &Operator::system())
        .await
        .expect("index");

    let dry =
        r.collect_garbage(&GcOptions { dry_run: true, delete_untagged: true, ..now_options() }).await.expect("dry");
    let report = r.collect_garbage(&GcOptions { delete_untagged: true, ..now_options() }).await.expect("gc");
    assert_eq!(report.manifests_deleted, 2, "the untagged image and the referrer of it: {report:?}");
    let repo = &repo;
    let exists = |d: &Digest| {
        let d = d.clone();
        async move { r.stat_manifest(repo, &Reference::Digest(d)).await.is_ok() }
    };
    assert!(exists(&tagged).await);
    assert!(exists(&signature).await, "a referrer of a tagged image stays");
    assert!(exists(&child).await, "an index's child stays");
    assert!(!exists(&untagged).await);
    assert!(!exists(&orphan_referrer).await, "a referrer whose subject went goes");
    assert!(!blob_exists(f, &untagged_layer).await, "and their blobs in the same run");
    assert_eq!(
        (dry.manifests_deleted, dry.links_removed, dry.blobs_deleted, dry.bytes_freed),
        (report.manifests_deleted, report.links_removed, report.blobs_deleted, report.bytes_freed),
        "the dry run foresaw exactly what the run did"
    );
    assert!(dry.dry_run && !report.dry_run);
}

async fn a_dry_run_changes_nothing(f: &GcFixture) {
    let repo = name("gc/dry");
    let orphan = push_blob(&f.registry, &repo, b"orphan").await.expect("blob");
    let dry = f.registry.collect_garbage(&GcOptions { dry_run: true, ..now_options() }).await.expect("dry");
    assert_eq!((dry.links_removed, dry.blobs_deleted, dry.bytes_freed), (1, 1, 6));
    assert!(blob_exists(f, &orphan).await);
    assert_eq!(f.registry.stat_blob(&repo, &orphan).await.expect("still linked"), 6);
}

async fn a_marked_blob_cannot_be_linked_and_the_next_run_finishes_it(f: &GcFixture) {
    let repo = name("gc/marks");
    let digest = push_blob(&f.registry, &repo, b"doomed").await.expect("blob");
    let meta = f.registry.metadata_store();
    assert!(f.registry.delete_blob(&repo, &digest).await.is_ok());
    // A collection that stopped after marking.
    assert_eq!(meta.gc_mark(std::slice::from_ref(&digest)).await.expect("mark"), vec![digest.clone()]);
    let relink =
        f.registry.push_blob(&repo, &digest, &mut body(&[b"doomed"]), &registry_core::event::Operator::system()).await;
    assert!(matches!(relink, Err(Error::Collecting { .. })), "{relink:?}");
    assert!(relink.expect_err("refused").is_retryable());
    assert_eq!(
        f.registry
            .mount_blob(&name("gc/other"), &repo, &digest, &registry_core::event::Operator::system())
            .await
            .expect("mount"),
        None
    );

    let report = f.registry.collect_garbage(&GcOptions::default()).await.expect("gc");
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert!(meta.gc_marked(10).await.expect("marks").is_empty());
    // And it can be pushed again.
    push_blob(&f.registry, &repo, b"doomed").await.expect("pushed again");
    assert!(blob_exists(f, &digest).await);
}

async fn abandoned_uploads_are_removed(f: &GcFixture) {
    let repo = name("gc/uploads");
    let status = f.registry.start_upload(&repo).await.expect("start");
    f.registry.append_upload(&repo, &status.id, None, &mut body(&[b"partial"])).await.expect("chunk");
    let kept = f.registry.collect_garbage(&now_options()).await.expect("gc");
    assert_eq!(kept.uploads_removed, 0, "a live session stays");
    let report =
        f.registry.collect_garbage(&GcOptions { upload_expiry: Duration::ZERO, ..now_options() }).await.expect("gc");
    assert_eq!(report.uploads_removed, 1, "{report:?}");
    assert!(f.blobs.list_uploads(None, 10).await.expect("uploads").is_empty());
    assert!(matches!(f.registry.upload_status(&repo, &status.id).await, Err(Error::UploadUnknown)));
}

/// Collection runs in a loop, with no grace period, while clients push images (retrying what a
/// collection took from under them, as clients do) and pull them. Every manifest acknowledged is
/// whole at the end: each blob it references is readable and hashes to its digest.
async fn collection_racing_pushes_never_leaves_a_manifest_without_its_blobs(f: &GcFixture) {
    let registry = f.registry.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (registry, stop) = (registry.clone(), stop.clone());
        tokio::spawn(async move {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let options = GcOptions { delete_untagged: runs % 2 == 1, ..now_options() };
                registry.collect_garbage(&options).await.expect("gc");
                runs += 1;
                // A pause between runs, as a schedule has: a collection in a tight loop with no
                // grace period could otherwise starve a client's push for ever.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            runs
        })
    };
    let mut clients = Vec::new();
    for client in 0..4 {
        let registry = registry.clone();
        clients.push(tokio::spawn(async move {
            let repo = name(&format!("race/c{client}"));
            let mut pushed = Vec::new();
            for i in 0..15 {
                let layer = format!("client {client} layer {i}").into_bytes();
                let tag = format!("t{i}");
                let mut attempts = 0;
                let (manifest, _) = loop {
                    attempts += 1;
                    match push_image(&registry, &repo, &layer, Some(&tag), None).await {
                        Ok(done) => break done,
                        Err(Error::ManifestBlobUnknown { .. } | Error::Collecting { .. }) if attempts < 1000 => {
                            continue;
                        }
                        Err(e) => panic!("push failed: {e}"),
                    }
                };
                // Shared layers between tags: push the previous layer again under another tag.
                let pulled = registry.get_manifest(&repo, &Reference::parse(&tag).expect("tag")).await.expect("pull");
                assert_eq!(Digest::sha256_of(&pulled.1), manifest);
                pushed.push((tag, manifest));
            }
            (repo, pushed)
        }));
    }
    let mut all = Vec::new();
    for c in clients {
        all.push(c.await.expect("client"));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let runs = collector.await.expect("collector");
    assert!(runs > 0);
    // One more collection after the dust settles, then every acknowledged image must be whole.
    registry.collect_garbage(&now_options()).await.expect("gc");
    for (repo, pushed) in all {
        for (tag, digest) in pushed {
            let (record, bytes) =
                registry.get_manifest(&repo, &Reference::parse(&tag).expect("tag")).await.expect("manifest");
            assert_eq!(record.digest, digest);
            assert_eq!(Digest::sha256_of(&bytes), digest);
            for blob in &record.references {
                let read = match registry.read_blob(&repo, blob, None).await {
                    Ok(read) => read,
                    Err(e) => {
                        let link = registry.metadata_store().blob_link(&repo, blob).await;
                        let stored = f.blobs.stat(blob).await;
                        panic!("{repo}:{tag} {blob}: {e} (link {link:?}, stored {stored:?})")
                    }
                };
                assert_eq!(&Digest::sha256_of(&collect(read.body).await), blob);
            }
        }
    }
}

async fn progress_is_reported_page_by_page(f: &GcFixture) {
    let repo = name("gc/progress");
    for i in 0..3u8 {
        push_image(&f.registry, &repo, &[i; 10], Some(&format!("v{i}")), None).await.expect("push");
    }
    let seen = std::sync::Mutex::new(Vec::new());
    let record = |r: &crate::GcReport| seen.lock().expect("lock").push(r.examined);
    let report = f.registry.collect_garbage_with_progress(&now_options(), &record).await.expect("gc");
    let seen = seen.into_inner().expect("lock");
    assert!(seen.len() >= 2, "links and blob files are separate pages: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(seen.last().copied(), Some(report.examined));
}
