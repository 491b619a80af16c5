//! Conformance suites any [`BlobStore`] or [`MetadataStore`] can run, an embedder's included
//! (enable the `testing` feature). Each function panics with a message naming the broken rule.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = registry_storage::MemoryBlobStore::new();
//! registry_storage::testing::blob_store_suite(&store).await;
//! # }
//! ```

pub mod concurrent;
pub mod faults;
pub mod gc;
pub mod jobs;
pub mod listing;

use bytes::Bytes;
use futures::StreamExt;
use registry_core::{Digest, RepositoryName, Tag};

use crate::blob::{BlobStore, BodyError, ByteStream, UploadId};
use crate::error::Error;
use crate::meta::{ManifestRecord, MetadataStore, UploadRecord};

/// A body stream over fixed chunks.
pub fn body(chunks: &[&[u8]]) -> impl futures::Stream<Item = Result<Bytes, BodyError>> + Send + Unpin + use<> {
    let chunks: Vec<Result<Bytes, BodyError>> = chunks.iter().map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(chunks)
}

/// A body stream that yields `chunks` and then fails, as a client that disconnects.
pub fn failing_body(chunks: &[&[u8]]) -> impl futures::Stream<Item = Result<Bytes, BodyError>> + Send + Unpin + use<> {
    let mut items: Vec<Result<Bytes, BodyError>> = chunks.iter().map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    items.push(Err("client went away".into()));
    futures::stream::iter(items)
}

/// Collects a byte stream.
pub async fn collect(mut stream: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("stream chunk"));
    }
    out
}

/// The [`BlobStore`] rules.
pub async fn blob_store_suite(store: &dyn BlobStore) {
    let data = b"hello, content-addressed world".to_vec();
    let digest = Digest::sha256_of(&data);

    assert_eq!(store.stat(&digest).await.expect("stat"), None, "absent blob has no size");
    assert!(matches!(store.read(&digest, None).await, Err(Error::BlobUnknown { .. })), "absent blob is unknown");

    // An upload in two appends, invisible until published. Each call gets the state saved with
    // the offset it continues from (as the engine passes it), and returns the next.
    let id = UploadId::new_random();
    let s0 = store.upload_create(&id, None).await.expect("create upload");
    let (n, s10) = store.upload_append(&id, &s0, 0, &mut body(&[&data[..5], &data[5..10]])).await.expect("append");
    assert_eq!(n, 10);
    assert!(
        matches!(store.upload_append(&id, &s10, 11, &mut body(&[b"x"])).await, Err(Error::RangeInvalid { offset: 10 })),
        "append beyond the upload's end fails"
    );
    let failed = store.upload_append(&id, &s10, 10, &mut failing_body(&[&data[10..20]])).await;
    assert!(matches!(failed, Err(Error::Body(_))), "a failing body is a body error: {failed:?}");
    let len = data.len() as u64;
    let (n, s_all) =
        store.upload_append(&id, &s10, 10, &mut body(&[&data[10..]])).await.expect("append after a failed one");
    assert_eq!(n, len, "a failed append left nothing behind");
    assert_eq!(collect(store.upload_read(&id, &s_all, len).await.expect("read upload")).await, data);
    assert_eq!(collect(store.upload_read(&id, &s10, 10).await.expect("read a prefix")).await, &data[..10]);
    assert_eq!(store.stat(&digest).await.expect("stat"), None, "uploads are invisible");

    store.upload_publish(&id, &s_all, &digest, len).await.expect("publish");
    assert_eq!(store.stat(&digest).await.expect("stat"), Some(len));
    assert_eq!(collect(store.read(&digest, None).await.expect("read")).await, data);
    assert_eq!(collect(store.read(&digest, Some(7..12)).await.expect("range")).await, &data[7..12]);
    assert!(store.upload_read(&id, &s_all, len).await.is_err(), "a published upload is gone");

    // Publishing the same content again keeps one copy and succeeds; so does an upload created
    // with the digest announced (a monolithic push).
    for announced in [None, Some(&digest)] {
        let id2 = UploadId::new_random();
        let s = store.upload_create(&id2, announced).await.expect("create");
        let (_, s) = store.upload_append(&id2, &s, 0, &mut body(&[&data])).await.expect("append");
        store.upload_publish(&id2, &s, &digest, len).await.expect("publish duplicate");
        assert_eq!(collect(store.read(&digest, None).await.expect("read")).await, data);
    }

    // An append that was never acknowledged (its state not saved) is replaced by the next append
    // from the saved state; publishing takes exactly the bytes of the state it is given.
    let id4 = UploadId::new_random();
    let s = store.upload_create(&id4, None).await.expect("create");
    let (_, s3) = store.upload_append(&id4, &s, 0, &mut body(&[b"abc"])).await.expect("append");
    let (n, _) = store.upload_append(&id4, &s3, 3, &mut body(&[b"def"])).await.expect("append, not acknowledged");
    assert_eq!(n, 6);
    let (n, s5) = store.upload_append(&id4, &s3, 3, &mut body(&[b"XY"])).await.expect("append at 3 again");
    assert_eq!(n, 5);
    assert_eq!(collect(store.upload_read(&id4, &s5, 5).await.expect("read")).await, b"abcXY");
    let prefix = Digest::sha256_of(b"abc");
    store.upload_publish(&id4, &s3, &prefix, 3).await.expect("publish the acknowledged bytes");
    assert_eq!(collect(store.read(&prefix, None).await.expect("read")).await, b"abc");
    assert!(store.delete(&prefix).await.expect("delete"));

    // put, delete, cancel.
    let small = Bytes::from_static(b"{\"schemaVersion\":2}");
    let small_digest = Digest::sha256_of(&small);
    store.put(&small_digest, small.clone()).await.expect("put");
    assert_eq!(collect(store.read(&small_digest, None).await.expect("read")).await, small.to_vec());
    assert!(store.delete(&small_digest).await.expect("delete"));
    assert!(!store.delete(&small_digest).await.expect("delete again"));
    let id3 = UploadId::new_random();
    let s = store.upload_create(&id3, None).await.expect("create");
    let (_, s) = store.upload_append(&id3, &s, 0, &mut body(&[b"abc"])).await.expect("append");
    store.upload_delete(&id3, Some(&s)).await.expect("cancel");
    store.upload_delete(&id3, Some(&s)).await.expect("cancel is idempotent");
    assert!(store.upload_read(&id3, &s, 3).await.is_err());
    let id5 = UploadId::new_random();
    let s = store.upload_create(&id5, None).await.expect("create");
    store.upload_append(&id5, &s, 0, &mut body(&[b"abc"])).await.expect("append");
    store.upload_delete(&id5, None).await.expect("cancel without the state (garbage collection)");
    assert!(store.upload_read(&id5, &s, 3).await.is_err());
}

fn name(s: &str) -> RepositoryName {
    RepositoryName::parse(s).expect("valid name")
}

fn record(content: &str, subject: Option<&Digest>) -> ManifestRecord {
    ManifestRecord {
        digest: Digest::sha256_of(content.as_bytes()),
        media_type: registry_core::media_type::OCI_MANIFEST.into(),
        size: content.len() as u64,
        artifact_type: Some("application/vnd.example".into()),
        annotations: Default::default(),
        subject: subject.cloned(),
        references: vec![],
        pushed_at: 0,
    }
}

/// The [`MetadataStore`] rules.
pub async fn metadata_store_suite(store: &dyn MetadataStore) {
    let repo = name("suite/app");
    let other = name("suite/other");

    // Upload sessions with compare-and-swap.
    let id = UploadId::new_random();
    let rec = UploadRecord {
        repository: repo.clone(),
        offset: 0,
        verifier_state: vec![1, 2, 3],
        started_at: 7,
        store_state: vec![4, 5],
    };
    store.create_upload(&id, &rec).await.expect("create upload");
    assert_eq!(store.get_upload(&id).await.expect("get"), Some(rec.clone()));
    let moved = UploadRecord { offset: 10, store_state: vec![6; 300], ..rec.clone() };
    assert!(store.update_upload(&id, 0, &moved).await.expect("cas"), "swap at the right offset");
    assert_eq!(store.get_upload(&id).await.expect("get"), Some(moved.clone()), "the store's state is kept");
    assert!(!store.update_upload(&id, 0, &moved).await.expect("cas"), "swap at a stale offset fails");
    assert!(store.delete_upload(&id).await.expect("delete"));
    assert_eq!(store.get_upload(&id).await.expect("get"), None);

    // Blob links are per repository.
    let blob = Digest::sha256_of(b"blob");
    assert_eq!(store.list_tags(&repo, None, 10).await.expect("tags"), None, "unknown repository");
    store.link_blob(&repo, &blob, 4).await.expect("link");
    assert_eq!(store.blob_link(&repo, &blob).await.expect("link"), Some(4));
    assert_eq!(store.blob_link(&other, &blob).await.expect("link"), None);
    assert!(store.unlink_blob(&repo, &blob).await.expect("unlink"));
    assert!(!store.unlink_blob(&repo, &blob).await.expect("unlink again"));
    assert_eq!(store.blob_link(&repo, &blob).await.expect("link"), None, "an unlinked blob is gone at once");

    // A digest held for a write is not marked for deletion; an expired hold is ignored; a marked
    // digest cannot be held.
    let far = u64::MAX / 2;
    store.hold_digest(&blob, 7, far).await.expect("hold");
    assert!(store.gc_mark(std::slice::from_ref(&blob)).await.expect("mark").is_empty(), "held: not marked");
    store.release_digest(&blob, 7).await.expect("release");
    store.hold_digest(&blob, 8, 1).await.expect("hold that expired long ago");
    assert_eq!(store.gc_mark(std::slice::from_ref(&blob)).await.expect("mark"), vec![blob.clone()], "expired hold");
    assert!(matches!(store.hold_digest(&blob, 9, far).await, Err(crate::Error::Collecting { .. })), "marked: no hold");
    store.gc_unmark(std::slice::from_ref(&blob)).await.expect("unmark");
    store.release_digest(&blob, 8).await.expect("release");

    // Completing an upload links its blob and ends the session.
    store.create_upload(&id, &rec).await.expect("create upload");
    store.complete_upload(&id, &repo, &blob, 4).await.expect("complete");
    assert_eq!(store.get_upload(&id).await.expect("get"), None);
    assert_eq!(store.blob_link(&repo, &blob).await.expect("link"), Some(4));
    assert!(store.unlink_blob(&repo, &blob).await.expect("unlink"));

    // Manifests, tags, referrers.
    let image = record("image", None);
    let sig = record("signature", Some(&image.digest));
    let latest = Tag::parse("latest").expect("tag");
    let v1 = Tag::parse("v1").expect("tag");
    store.put_manifest(&repo, &image, Some(&latest), &crate::Protection::none(), &[]).await.expect("put");
    store
        .put_manifest(&repo, &image, Some(&v1), &crate::Protection::none(), &[])
        .await
        .expect("put again with another tag");
    store.put_manifest(&repo, &sig, None, &crate::Protection::none(), &[]).await.expect("put referrer");
    assert_eq!(store.resolve_tag(&repo, &latest).await.expect("resolve"), Some(image.digest.clone()));
    assert_eq!(store.tagged_manifest(&repo, &latest).await.expect("tagged"), Some(image.clone()));
    assert_eq!(store.tagged_manifest(&other, &latest).await.expect("tagged"), None, "per repository");
    assert_eq!(store.get_manifest(&repo, &image.digest).await.expect("get"), Some(image.clone()));
    assert_eq!(store.get_manifest(&other, &image.digest).await.expect("get"), None, "per repository");
    assert_eq!(store.referrers(&repo, &image.digest).await.expect("referrers"), vec![sig.clone()]);

    // A manifest may reference only what the repository holds (checked in its transaction).
    let mut dangling = record("dangling", None);
    dangling.references = vec![Digest::sha256_of(b"never linked")];
    assert!(matches!(
        store.put_manifest(&repo, &dangling, None, &crate::Protection::none(), &[]).await,
        Err(crate::Error::ManifestBlobUnknown { .. })
    ));
    assert_eq!(store.get_manifest(&repo, &dangling.digest).await.expect("get"), None, "nothing written");

    // What references a digest: the manifests listing it.
    let mut index = record("an index", None);
    index.references = vec![image.digest.clone()];
    store.put_manifest(&repo, &index, None, &crate::Protection::none(), &[]).await.expect("index");
    assert_eq!(store.referencing(&repo, &image.digest).await.expect("referencing"), vec![index.digest.clone()]);
    assert!(store.referencing(&other, &image.digest).await.expect("referencing").is_empty(), "per repository");
    assert!(store.delete_manifest(&repo, &index.digest, &crate::Protection::none(), &[]).await.expect("delete index"));
    assert!(store.referencing(&repo, &image.digest).await.expect("referencing").is_empty());

    // Moving a tag leaves the manifest and the other tag alone.
    let image2 = record("image2", None);
    store.put_manifest(&repo, &image2, Some(&v1), &crate::Protection::none(), &[]).await.expect("move v1");
    assert_eq!(store.resolve_tag(&repo, &v1).await.expect("resolve"), Some(image2.digest.clone()));
    assert_eq!(store.resolve_tag(&repo, &latest).await.expect("resolve"), Some(image.digest.clone()));

    // Pagination.
    for t in ["a", "b", "c"] {
        store
            .put_manifest(&repo, &image2, Some(&Tag::parse(t).expect("tag")), &crate::Protection::none(), &[])
            .await
            .expect("tag");
    }
    let page = store.list_tags(&repo, None, 2).await.expect("tags").expect("known repository");
    assert_eq!(page.entries, vec!["a", "b"]);
    assert!(page.more);
    let page = store.list_tags(&repo, Some("b"), 10).await.expect("tags").expect("known");
    assert_eq!(page.entries, vec!["c", "latest", "v1"]);
    assert!(!page.more);
    store.link_blob(&other, &blob, 4).await.expect("link");
    let repos = store.list_repositories(None, 10).await.expect("catalog");
    assert_eq!(repos.entries, vec!["suite/app", "suite/other"]);
    let repos = store.list_repositories(Some("suite/app"), 10).await.expect("catalog");
    assert_eq!(repos.entries, vec!["suite/other"]);

    // The manifests listing: tags, referencing manifests and pulls counted from pull events.
    let pull = |digest: &Digest, count: u64, time_ms: u64| {
        let resource = registry_core::event::Resource {
            project: Some("suite".into()),
            repository: Some(repo.to_string()),
            digest: Some(digest.to_string()),
            ..Default::default()
        };
        let operator = registry_core::event::Operator::anonymous(Some("127.0.0.1".into()));
        let event = registry_core::event::Event::new(
            time_ms,
            operator,
            registry_core::event::EventAction::PullArtifact,
            resource,
        );
        registry_core::event::Event { count, ..event }
    };
    let never = Digest::sha256_of(b"never pushed");
    store
        .append_events(&[pull(&image2.digest, 2, 5_000), pull(&image2.digest, 1, 4_000), pull(&never, 1, 6_000)])
        .await
        .expect("pulls");
    let listed = store.manifests(&repo, None, 10).await.expect("manifests");
    let of = |d: &Digest| listed.iter().find(|m| m.record.digest == *d).cloned().expect("listed");
    assert_eq!(of(&image2.digest).tags, vec!["a", "b", "c", "v1"]);
    assert_eq!(of(&image2.digest).pulls, crate::Pulls { count: 3, last_ms: 5_000 });
    assert_eq!(of(&image.digest).tags, vec!["latest"]);
    assert_eq!(of(&image.digest).pulls, crate::Pulls::default(), "never pulled");
    assert_eq!(listed.len(), 3, "image, image2 and the signature");
    let first = store.manifests(&repo, None, 1).await.expect("page");
    let rest = store.manifests(&repo, Some(&first[0].record.digest), 10).await.expect("page");
    assert_eq!(first.len() + rest.len(), 3, "pages by digest");

    // Deleting a tag keeps the manifest; deleting a manifest takes its tags and referrer entry.
    assert!(store.delete_tag(&repo, &latest, &crate::Protection::none(), &[]).await.expect("delete tag"));
    assert!(!store.delete_tag(&repo, &latest, &crate::Protection::none(), &[]).await.expect("delete tag again"));
    assert_eq!(store.resolve_tag(&repo, &latest).await.expect("resolve"), None, "a deleted tag is gone at once");
    assert_eq!(store.tagged_manifest(&repo, &latest).await.expect("tagged"), None);
    assert!(store.get_manifest(&repo, &image.digest).await.expect("get").is_some());
    assert!(store.delete_manifest(&repo, &sig.digest, &crate::Protection::none(), &[]).await.expect("delete referrer"));
    assert!(store.referrers(&repo, &image.digest).await.expect("referrers").is_empty());
    assert!(store.get_manifest(&repo, &image2.digest).await.expect("get").is_some());
    assert!(store.delete_manifest(&repo, &image2.digest, &crate::Protection::none(), &[]).await.expect("delete"));
    assert_eq!(store.get_manifest(&repo, &image2.digest).await.expect("get"), None);
    store.put_manifest(&repo, &image2, None, &crate::Protection::none(), &[]).await.expect("push it again");
    let again = store.manifests(&repo, None, 10).await.expect("manifests");
    let image2_again = again.iter().find(|m| m.record.digest == image2.digest).expect("listed");
    assert_eq!(image2_again.pulls, crate::Pulls::default(), "pulls go with the manifest");
    assert!(store.delete_manifest(&repo, &image2.digest, &crate::Protection::none(), &[]).await.expect("delete"));
    assert_eq!(store.resolve_tag(&repo, &v1).await.expect("resolve"), None, "tags go with the manifest");
    let page = store.list_tags(&repo, None, 10).await.expect("tags").expect("known");
    assert!(page.entries.is_empty(), "{:?}", page.entries);
    assert!(
        !store.delete_manifest(&repo, &image2.digest, &crate::Protection::none(), &[]).await.expect("delete again")
    );
    event_stream_rules(store).await;
    quota_rules(store).await;
    protection_rules(store).await;
    label_rules(store).await;
    report_rules(store).await;
    listing::listing_rules(store, 1, 120).await;
}

/// Quotas: usage counted once per digest and project, moved by every link, manifest and
/// removal; a limit refuses growth past it with nothing written; warnings when crossing.
async fn quota_rules(store: &dyn MetadataStore) {
    use crate::quota::Quota;
    let (a, b, elsewhere) = (name("quota/a"), name("quota/b/deep"), name("quota-other/a"));
    let used = |q: Option<Quota>| q.map_or(0, |q| q.used);
    assert_eq!(store.quota("quota").await.expect("quota"), None, "nothing held, no limit: no quota");
    let layer = Digest::sha256_of(b"quota layer");
    store.link_blob(&a, &layer, 100).await.expect("link");
    assert_eq!(used(store.quota("quota").await.expect("quota")), 100);
    store.link_blob(&a, &layer, 100).await.expect("link again");
    store.link_blob(&b, &layer, 100).await.expect("link into another repository of the project");
    assert_eq!(used(store.quota("quota").await.expect("quota")), 100, "a digest counts once per project");
    store.link_blob(&elsewhere, &layer, 100).await.expect("link into another project");
    assert_eq!(used(store.quota("quota-other").await.expect("quota")), 100, "and once in each project");
    let mut image = record("quota image", None);
    image.references = vec![layer.clone()];
    store
        .put_manifest(&a, &image, Some(&Tag::parse("v1").expect("tag")), &crate::Protection::none(), &[])
        .await
        .expect("put");
    store
        .put_manifest(&a, &image, Some(&Tag::parse("v2").expect("tag")), &crate::Protection::none(), &[])
        .await
        .expect("tag");
    assert_eq!(used(store.quota("quota").await.expect("quota")), 100 + image.size, "the manifest counts once");

    // A limit: growth past it is refused and writes nothing; what does not grow passes.
    let q = store.set_quota("quota", Some(150 + image.size), 95, &[]).await.expect("set");
    assert_eq!((q.limit, q.used, q.warn_percent), (Some(150 + image.size), 100 + image.size, 95));
    let big = Digest::sha256_of(b"quota big");
    let refused = store.link_blob(&b, &big, 51).await.expect_err("over the limit");
    assert!(
        matches!(&refused, crate::Error::QuotaExceeded { project, needed: 51, .. } if project == "quota"),
        "{refused}"
    );
    assert_eq!(store.blob_link(&b, &big).await.expect("link"), None, "nothing linked");
    let id = UploadId::new_random();
    let rec =
        UploadRecord { repository: b.clone(), offset: 0, verifier_state: vec![], started_at: 0, store_state: vec![] };
    store.create_upload(&id, &rec).await.expect("create upload");
    assert!(matches!(store.complete_upload(&id, &b, &big, 51).await, Err(crate::Error::QuotaExceeded { .. })));
    assert!(store.get_upload(&id).await.expect("get").is_some(), "the refused completion kept the session");
    assert!(matches!(store.mount_blob(&b, &elsewhere, &layer).await, Ok(Some(100))), "held already: no growth");
    let mut huge = record("quota huge manifest", None);
    huge.size = 1000;
    assert!(matches!(
        store.put_manifest(&a, &huge, None, &crate::Protection::none(), &[]).await,
        Err(crate::Error::QuotaExceeded { .. })
    ));
    assert_eq!(store.get_manifest(&a, &huge.digest).await.expect("get"), None, "the refused manifest is not there");
    let before = store.events_after(0, usize::MAX).await.expect("events").last().map_or(0, |e| e.id);
    store.link_blob(&b, &big, 50).await.expect("exactly at the limit");
    let quota = store.quota("quota").await.expect("quota").expect("quota");
    assert_eq!(quota.used, quota.limit.expect("limit"));
    let warnings: Vec<_> = store.events_after(before, usize::MAX).await.expect("events");
    assert_eq!(warnings.len(), 1, "one QUOTA_WARNING crossing 95%: {warnings:?}");
    assert_eq!(warnings[0].action, registry_core::event::EventAction::QuotaWarning);
    assert_eq!(warnings[0].resource.project.as_deref(), Some("quota"));

    // Removals move usage down, each digest with its last holder in the project.
    assert!(store.unlink_blob(&b, &layer).await.expect("unlink"));
    assert_eq!(used(store.quota("quota").await.expect("quota")), quota.used, "still held by quota/a");
    assert!(store.delete_manifest(&a, &image.digest, &crate::Protection::none(), &[]).await.expect("delete"));
    assert_eq!(used(store.quota("quota").await.expect("quota")), quota.used - image.size);
    let removed = store.gc_unlink(&a, std::slice::from_ref(&layer), u64::MAX).await.expect("gc unlink");
    assert_eq!(removed.len(), 1);
    assert_eq!(used(store.quota("quota").await.expect("quota")), 50, "only the big blob left");
    assert!(!store.remove_quota("quota").await.expect("remove"), "a project holding bytes keeps its quota");
    assert!(store.unlink_blob(&b, &big).await.expect("unlink"));
    assert!(store.delete_upload(&id).await.expect("delete upload"));
    let q = store.quota("quota").await.expect("quota").expect("kept");
    assert_eq!((q.used, q.limit), (0, Some(150 + image.size)), "the limit stays");
    assert!(store.remove_quota("quota").await.expect("remove"));
    assert_eq!(store.quota("quota").await.expect("quota"), None);
    let listed: Vec<String> = store.quotas().await.expect("quotas").into_iter().map(|q| q.project).collect();
    assert!(listed.contains(&"quota-other".to_owned()) && !listed.contains(&"quota".to_owned()), "{listed:?}");
    assert!(store.unlink_blob(&elsewhere, &layer).await.expect("unlink"));
    assert_eq!(used(store.quota("quota-other").await.expect("quota")), 0);
}

/// Immutability: a protected tag does not move to another manifest, is not deleted, and its
/// manifest is not deleted; re-pushing the same manifest under it is fine.
async fn protection_rules(store: &dyn MetadataStore) {
    use crate::immutable::{Protection, Selector, TagRule};
    use registry_core::glob::Pattern;
    let repo = name("immutable/app");
    let selector = |p: &str| Selector { pattern: Pattern::parse(p).expect("pattern"), exclude: false };
    let rules =
        Protection::new(vec![TagRule { id: 9, repositories: vec![selector("**")], tags: vec![selector("v*")] }]);
    let (one, two) = (record("immutable one", None), record("immutable two", None));
    let v1 = Tag::parse("v1").expect("tag");
    store.put_manifest(&repo, &one, Some(&v1), &rules, &[]).await.expect("a new protected tag");
    store.put_manifest(&repo, &one, Some(&v1), &rules, &[]).await.expect("the same manifest again");
    let moved = store.put_manifest(&repo, &two, Some(&v1), &rules, &[]).await.expect_err("moving it");
    assert!(matches!(&moved, crate::Error::TagImmutable { rule, .. } if rule.starts_with("9 ")), "{moved}");
    assert_eq!(store.resolve_tag(&repo, &v1).await.expect("resolve"), Some(one.digest.clone()), "not moved");
    assert_eq!(store.get_manifest(&repo, &two.digest).await.expect("get"), None, "nothing written");
    assert!(matches!(store.delete_tag(&repo, &v1, &rules, &[]).await, Err(crate::Error::TagImmutable { .. })));
    assert!(matches!(
        store.delete_manifest(&repo, &one.digest, &rules, &[]).await,
        Err(crate::Error::TagImmutable { .. })
    ));
    assert!(store.get_manifest(&repo, &one.digest).await.expect("get").is_some(), "not deleted");
    let latest = Tag::parse("latest").expect("tag");
    store.put_manifest(&repo, &two, Some(&latest), &rules, &[]).await.expect("unprotected tag");
    store.put_manifest(&repo, &one, Some(&latest), &rules, &[]).await.expect("unprotected tag moves");
    assert!(store.delete_manifest(&repo, &two.digest, &rules, &[]).await.expect("untagged now: deletable"));
    assert!(store.delete_tag(&repo, &v1, &Protection::none(), &[]).await.expect("without the rule"));
    assert!(store.delete_manifest(&repo, &one.digest, &Protection::none(), &[]).await.expect("delete"));
}

/// Labels: on and off a manifest, listed with it, gone with it or with the label.
async fn label_rules(store: &dyn MetadataStore) {
    let repo = name("labels/app");
    let image = record("labelled", None);
    let missing = Digest::sha256_of(b"labels: never pushed");
    assert!(matches!(store.set_label(&repo, &missing, 1, true, &[]).await, Err(crate::Error::ManifestUnknown { .. })));
    store.put_manifest(&repo, &image, None, &crate::Protection::none(), &[]).await.expect("put");
    assert!(store.set_label(&repo, &image.digest, 7, true, &[]).await.expect("label"));
    assert!(!store.set_label(&repo, &image.digest, 7, true, &[]).await.expect("again"), "already on");
    assert!(store.set_label(&repo, &image.digest, 3, true, &[]).await.expect("label"));
    let labels = |listed: Vec<crate::ManifestEntry>| listed.into_iter().next().map(|m| m.labels).unwrap_or_default();
    assert_eq!(labels(store.manifests(&repo, None, 10).await.expect("list")), vec![3, 7]);
    assert!(store.set_label(&repo, &image.digest, 3, false, &[]).await.expect("off"));
    assert!(!store.set_label(&repo, &image.digest, 3, false, &[]).await.expect("off again"));
    assert_eq!(store.drop_label(7).await.expect("drop"), 1);
    assert!(labels(store.manifests(&repo, None, 10).await.expect("list")).is_empty());
    assert!(store.set_label(&repo, &image.digest, 5, true, &[]).await.expect("label"));
    assert!(store.delete_manifest(&repo, &image.digest, &crate::Protection::none(), &[]).await.expect("delete"));
    store.put_manifest(&repo, &image, None, &crate::Protection::none(), &[]).await.expect("put again");
    assert!(labels(store.manifests(&repo, None, 10).await.expect("list")).is_empty(), "labels go with the manifest");
    assert_eq!(store.drop_label(5).await.expect("drop"), 0);
    assert!(store.delete_manifest(&repo, &image.digest, &crate::Protection::none(), &[]).await.expect("delete"));
}

/// Scan reports: by digest, scanner and format; replaced only by compare and set on their id;
/// listed in key order; removed with their digest.
async fn report_rules(store: &dyn MetadataStore) {
    use crate::reports::ScanReport;
    let digest = Digest::sha256_of(b"reports: scanned");
    let other = Digest::sha256_of(b"reports: another");
    let report = |digest: &Digest, scanner: &str, id: &str, status: &str| ScanReport {
        digest: digest.clone(),
        scanner: scanner.into(),
        mime_type: "application/vnd.security.vulnerability.report; version=1.1".into(),
        id: id.into(),
        status: status.into(),
        job_id: 3,
        started_ms: 10,
        ended_ms: 0,
        summary: "{}".into(),
        body: "x".repeat(70_000),
    };
    assert!(store.reports(&digest).await.expect("none").is_empty());
    assert!(
        !store.put_report(&report(&digest, "a", "1", "Running"), Some("0"), &[]).await.expect("cas"),
        "nothing to replace"
    );
    assert!(store.put_report(&report(&digest, "a", "1", "Pending"), None, &[]).await.expect("put"));
    assert!(store.put_report(&report(&digest, "a", "1", "Running"), Some("1"), &[]).await.expect("cas"));
    assert!(store.put_report(&report(&digest, "a", "2", "Pending"), None, &[]).await.expect("a new scan"));
    assert!(
        !store.put_report(&report(&digest, "a", "1", "Success"), Some("1"), &[]).await.expect("stale"),
        "an older scan"
    );
    assert!(store.put_report(&report(&digest, "b", "9", "Success"), None, &[]).await.expect("another scanner"));
    assert!(store.put_report(&report(&other, "a", "5", "Success"), None, &[]).await.expect("another digest"));
    let found = store.reports(&digest).await.expect("reports");
    assert_eq!(
        found.iter().map(|r| (r.scanner.as_str(), r.id.as_str(), r.status.as_str())).collect::<Vec<_>>(),
        vec![("a", "2", "Pending"), ("b", "9", "Success")]
    );
    assert_eq!(found[0].body.len(), 70_000, "large reports are kept whole");
    let all = store.reports_after(None, 10).await.expect("all");
    assert_eq!(all.len(), 3);
    let first = (all[0].digest.clone(), all[0].scanner.clone(), all[0].mime_type.clone());
    assert_eq!(store.reports_after(Some(&first), 10).await.expect("after").len(), 2);
    assert_eq!(store.delete_reports(&digest).await.expect("delete"), 2);
    assert!(store.reports(&digest).await.expect("gone").is_empty());
    assert_eq!(store.delete_reports(&other).await.expect("delete"), 1);
}

/// The event stream: written with the change, only when it happens, in commit order; appended,
/// queried (newest first, filtered, counted), trimmed; consumers' cursors by compare-and-swap.
async fn event_stream_rules(store: &dyn MetadataStore) {
    use registry_core::event::{Event, EventAction, EventFilter, Operator, Resource};
    let start = store.events_after(0, usize::MAX).await.expect("events").last().map_or(0, |e| e.id);
    let repo = name("events/app");
    let event = |action, time_ms, who: &str| {
        let resource =
            Resource { project: Some("events".into()), repository: Some("events/app".into()), ..Resource::default() };
        Event::new(time_ms, Operator::named(who, Some("192.0.2.1".into())), action, resource)
    };
    let image = record("event image", None);
    let tag = Tag::parse("v1").expect("tag");
    let push = [event(EventAction::PushArtifact, 1_000, "alice"), event(EventAction::CreateTag, 1_000, "alice")];
    store.put_manifest(&repo, &image, Some(&tag), &crate::Protection::none(), &push).await.expect("put");
    let mut dangling = record("never stored", None);
    dangling.references = vec![Digest::sha256_of(b"nothing")];
    let refused = store
        .put_manifest(
            &repo,
            &dangling,
            None,
            &crate::Protection::none(),
            &[event(EventAction::PushArtifact, 1_500, "alice")],
        )
        .await;
    assert!(refused.is_err());
    let gone = Tag::parse("gone").expect("tag");
    assert!(
        !store
            .delete_tag(&repo, &gone, &crate::Protection::none(), &[event(EventAction::DeleteTag, 1_600, "bob")])
            .await
            .expect("delete")
    );
    assert!(
        store
            .delete_tag(&repo, &tag, &crate::Protection::none(), &[event(EventAction::DeleteTag, 2_000, "bob")])
            .await
            .expect("delete")
    );
    store.append_events(&[event(EventAction::PullArtifact, 3_000, "carol")]).await.expect("append");
    let events = store.events_after(start, 100).await.expect("events");
    let actions: Vec<EventAction> = events.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![EventAction::PushArtifact, EventAction::CreateTag, EventAction::DeleteTag, EventAction::PullArtifact],
        "one event per change that happened, none for a refused push or an absent tag"
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "ids grow");
    assert_eq!(events[0].operator, Operator::named("alice", Some("192.0.2.1".into())), "kept whole");
    assert_eq!(store.events_after(events[1].id, 1).await.expect("page"), vec![events[2].clone()], "paged by id");

    let filter = EventFilter { projects: Some(vec!["events".into()]), ..EventFilter::default() };
    let (page, total) = store.query_events(&filter, 0, 2).await.expect("query");
    assert_eq!(total, 4);
    assert_eq!(
        page.iter().map(|e| e.action).collect::<Vec<_>>(),
        vec![EventAction::PullArtifact, EventAction::DeleteTag]
    );
    let bob = EventFilter { username: Some("bob".into()), ..filter.clone() };
    assert_eq!(store.query_events(&bob, 0, 10).await.expect("query").1, 1);
    let window = EventFilter { from_ms: Some(1_500), to_ms: Some(2_500), ..filter.clone() };
    assert_eq!(store.query_events(&window, 0, 10).await.expect("query").0[0].action, EventAction::DeleteTag);

    assert_eq!(store.cursor("suite").await.expect("cursor"), 0);
    assert!(store.advance_cursor("suite", 0, events[1].id).await.expect("advance"));
    assert!(!store.advance_cursor("suite", 0, events[2].id).await.expect("advance"), "not from a stale place");
    assert_eq!(store.cursor("suite").await.expect("cursor"), events[1].id);

    assert_eq!(store.trim_events(2_500).await.expect("trim"), 3, "the three older than the cutoff");
    let left = store.events_after(start, 100).await.expect("events");
    assert_eq!(left.iter().map(|e| e.action).collect::<Vec<_>>(), vec![EventAction::PullArtifact]);
}
