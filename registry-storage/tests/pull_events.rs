//! Pull events: gathered and appended in batches; identical pulls (same operator, address and
//! artifact) gathered together are one event with their count; different ones stay apart.

use std::sync::Arc;

use bytes::Bytes;
use registry_core::event::{EventAction, Operator};
use registry_core::{Digest, Reference, RepositoryName};
use registry_storage::testing::body;
use registry_storage::{Limits, MemoryBlobStore, MemoryMetadataStore, MetadataStore, Registry};

#[tokio::test]
async fn identical_pulls_are_counted_on_one_event() {
    let meta = Arc::new(MemoryMetadataStore::new());
    let registry = Registry::new(Arc::new(MemoryBlobStore::new()), meta.clone(), Limits::default());
    let repo = RepositoryName::parse("library/app").expect("name");
    let config = br#"{"a":1}"#;
    let digest = Digest::sha256_of(config);
    let mut stream = body(&[config]);
    registry.push_blob(&repo, &digest, &mut stream, &registry_core::event::Operator::system()).await.expect("config");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let tag = Reference::parse("v1").expect("tag");
    registry
        .put_manifest(
            &repo,
            &tag,
            Some("application/vnd.oci.image.manifest.v1+json"),
            Bytes::from(manifest),
            &Operator::system(),
        )
        .await
        .expect("push");
    let alice = Operator::named("alice", Some("192.0.2.1".into()));
    let elsewhere = Operator::named("alice", Some("192.0.2.2".into()));
    for _ in 0..5 {
        registry.pull_manifest(&repo, &tag, &alice).await.expect("pull");
    }
    registry.pull_manifest(&repo, &tag, &elsewhere).await.expect("pull");
    registry.flush_events().await;
    let pulls: Vec<_> = meta
        .events_after(0, usize::MAX)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.action == EventAction::PullArtifact)
        .collect();
    assert_eq!(pulls.len(), 2, "{pulls:?}");
    assert_eq!((pulls[0].operator.address.as_deref(), pulls[0].count), (Some("192.0.2.1"), 5));
    assert_eq!((pulls[1].operator.address.as_deref(), pulls[1].count), (Some("192.0.2.2"), 1));
}
