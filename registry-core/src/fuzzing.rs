//! The bodies of the fuzz targets in `fuzz/`, as plain functions so that ordinary tests run them
//! over the checked-in corpus on stable Rust. Each one panics exactly when it finds a bug: a parser
//! that panics, or an invariant (round trip, chunking) that does not hold.

use crate::digest::{Algorithm, Digest};
use crate::manifest::Manifest;
use crate::name::{Reference, RepositoryName, Tag};
use crate::scope::Scope;
use crate::verifier::{DigestVerifier, VerifierState};

/// Digest parsing: never panics; what parses prints back to the same text.
pub fn digest(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(d.to_string(), s);
        assert_eq!(Digest::parse(&d.to_string()).ok(), Some(d));
    }
}

/// Name, tag and reference parsing: never panic; round trips; a valid name is a safe relative path.
pub fn name(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(n) = RepositoryName::parse(s) {
        assert_eq!(n.as_str(), s);
        assert!(n.components().all(|c| !c.is_empty() && c != "." && c != ".."));
        assert!(!s.starts_with('/') && !s.contains('\\') && s.len() <= RepositoryName::MAX_LEN);
    }
    if let Ok(t) = Tag::parse(s) {
        assert_eq!(t.as_str(), s);
    }
}

/// Reference parsing: never panics; round trips.
pub fn reference(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = Reference::parse(s) {
        assert_eq!(Reference::parse(&r.to_string()).ok(), Some(r));
    }
}

/// Scope parsing: never panics; `parse(display(x)) == x`; intersection never grants more.
pub fn scope(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(list) = Scope::parse_list(s) {
        for scope in &list {
            let printed = scope.to_string();
            assert_eq!(Scope::parse(&printed).as_ref(), Ok(scope), "{printed}");
            for other in &list {
                let granted = scope.intersection(other);
                assert!(granted.actions.is_subset(&scope.actions));
            }
        }
    }
}

/// Manifest parsing: never panics, with each Content-Type the registry meets.
pub fn manifest(data: &[u8]) {
    for ct in [
        None,
        Some(crate::media_type::OCI_MANIFEST),
        Some(crate::media_type::OCI_INDEX),
        Some(crate::media_type::DOCKER_MANIFEST),
        Some(crate::media_type::DOCKER_MANIFEST_LIST),
    ] {
        if let Ok(m) = Manifest::parse(data, ct) {
            assert!(m.kind.is_index() || m.config.is_some());
        }
    }
}

/// The verifier fed an arbitrary chunking (the first bytes choose the chunk sizes), with a
/// save/restore in the middle, gives the one-shot digest.
pub fn verifier_chunks(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else { return };
    let algorithm = if control & 1 == 0 { Algorithm::Sha256 } else { Algorithm::Sha512 };
    let sizes: Vec<usize> = rest.iter().take(8).map(|&b| usize::from(b) * 37 + 1).collect();
    let payload = &rest[rest.len().min(8)..];
    let expected = Digest::compute(algorithm, payload);
    let mut v = DigestVerifier::expecting(&expected, Some(payload.len() as u64));
    let mut offset = 0;
    let mut i = 0;
    while offset < payload.len() {
        let n = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(1).min(payload.len() - offset);
        v.update(&payload[offset..offset + n]).expect("within the expected size");
        offset += n;
        i += 1;
        if i == 2 {
            let state = VerifierState::from_bytes(&v.save().to_bytes()).expect("state decodes");
            let mut resumed = DigestVerifier::restore(&state).expect("state restores");
            resumed.expect(&expected, Some(payload.len() as u64)).expect("consistent");
            v = resumed;
        }
    }
    let out = v.finish().expect("digest and size match");
    assert_eq!(out.size, payload.len() as u64);
}

/// Chart archives: never panic, within small limits, whether the input is taken as the gzip
/// stream itself or as the tar inside one; what is read keeps to the limits.
pub fn chart(data: &[u8]) {
    use std::io::Write;
    let limits =
        crate::chart::Limits { archive_bytes: 1 << 20, unpacked_bytes: 1 << 20, entries: 64, file_bytes: 16 << 10 };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("in memory");
    let wrapped = gz.finish().expect("in memory");
    for input in [data, &wrapped[..]] {
        if let Ok(chart) = crate::chart::read(input, &limits) {
            assert!(chart.entries <= limits.entries);
            assert!(chart.readme.as_ref().is_none_or(|r| r.len() as u64 <= 3 * limits.file_bytes));
            assert!(chart.values.as_ref().is_none_or(|v| v.len() as u64 <= limits.file_bytes));
            chart.metadata.check().expect("a chart read is a valid chart");
        }
    }
}
