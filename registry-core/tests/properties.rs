//! Invariants over generated inputs: chunking never changes a digest, printing and parsing round
//! trip, and no parser panics on arbitrary text.

use proptest::prelude::*;
use registry_core::{Algorithm, Digest, DigestVerifier, Reference, RepositoryName, Scope, Tag, VerifierState};

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![Just(Algorithm::Sha256), Just(Algorithm::Sha512)]
}

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,3}"
}

fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec(component(), 1..5).prop_map(|c| c.join("/")).prop_filter("length", |n| n.len() <= 255)
}

fn digest() -> impl Strategy<Value = String> {
    prop_oneof!["sha256:[0-9a-f]{64}", "sha512:[0-9a-f]{128}"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_chunking_gives_the_one_shot_digest(
        data in proptest::collection::vec(any::<u8>(), 0..20_000),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        algorithm in algorithm(),
    ) {
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        points.sort_unstable();
        let mut v = DigestVerifier::new(algorithm);
        let mut last = 0;
        for p in points.into_iter().chain([data.len()]) {
            v.update(&data[last..p]).expect("no limit");
            last = p;
        }
        let out = v.finish().expect("no expectation");
        prop_assert_eq!(out.digest, Digest::compute(algorithm, &data));
        prop_assert_eq!(out.size, data.len() as u64);
    }

    #[test]
    fn save_and_restore_at_any_point(
        data in proptest::collection::vec(any::<u8>(), 0..5_000),
        at in any::<prop::sample::Index>(),
        algorithm in algorithm(),
    ) {
        let split = at.index(data.len() + 1);
        let mut v = DigestVerifier::new(algorithm);
        v.update(&data[..split]).expect("no limit");
        let state = VerifierState::from_bytes(&v.save().to_bytes()).expect("decodes");
        let mut resumed = DigestVerifier::restore(&state).expect("restores");
        resumed.update(&data[split..]).expect("no limit");
        prop_assert_eq!(resumed.finish().expect("ok").digest, Digest::compute(algorithm, &data));
    }

    #[test]
    fn digests_round_trip(s in digest()) {
        let d = Digest::parse(&s).expect("valid");
        prop_assert_eq!(d.to_string(), s.clone());
        prop_assert_eq!(Digest::parse(&d.to_string()).expect("valid"), d);
    }

    #[test]
    fn names_round_trip(s in name()) {
        let n = RepositoryName::parse(&s).expect("valid");
        prop_assert_eq!(RepositoryName::parse(&format!("{n}")).expect("valid"), n);
    }

    #[test]
    fn tags_and_references_round_trip(t in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", d in digest()) {
        let tag = Tag::parse(&t).expect("valid");
        prop_assert_eq!(tag.to_string(), t.clone());
        for s in [t, d] {
            let r = Reference::parse(&s).expect("valid");
            prop_assert_eq!(Reference::parse(&r.to_string()).expect("valid"), r);
        }
    }

    #[test]
    fn scopes_round_trip(
        ty in "[a-z0-9]{1,10}",
        class in proptest::option::of("[a-z0-9]{1,6}"),
        host in proptest::option::of("[a-z]{1,8}(:[0-9]{1,5})?"),
        n in name(),
        actions in proptest::collection::btree_set(prop_oneof![
            Just("pull".to_string()), Just("push".to_string()), Just("delete".to_string()),
            Just("*".to_string()), "[a-z]{1,8}"], 1..5),
    ) {
        let ty = match class { Some(c) => format!("{ty}({c})"), None => ty };
        let name = match host { Some(h) => format!("{h}/{n}"), None => n };
        let text = format!("{ty}:{name}:{}", actions.into_iter().collect::<Vec<_>>().join(","));
        let scope = Scope::parse(&text).expect("valid");
        prop_assert_eq!(Scope::parse(&scope.to_string()).expect("valid"), scope);
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,300}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Digest::parse(&s);
        let _ = RepositoryName::parse(&s);
        let _ = Tag::parse(&s);
        let _ = Reference::parse(&s);
        let _ = Scope::parse_list(&s);
        let _ = registry_core::Manifest::parse(s.as_bytes(), None);
        registry_core::fuzzing::manifest(&bytes);
        registry_core::fuzzing::verifier_chunks(&bytes);
        registry_core::fuzzing::chart(&bytes);
    }

    /// A valid chart's tar with bytes changed anywhere (headers, sizes, names, checksums) is read
    /// or refused, never a panic, within the limits.
    #[test]
    fn damaged_charts_never_panic(
        changes in proptest::collection::vec((0usize..10240, any::<u8>()), 1..24),
        cut in 0usize..10240,
    ) {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/chart/demo.tar");
        let mut tar = std::fs::read(dir).expect("corpus");
        for (at, byte) in changes {
            let at = at % tar.len();
            tar[at] = byte;
        }
        registry_core::fuzzing::chart(&tar);
        registry_core::fuzzing::chart(&tar[..cut.min(tar.len())]);
    }

    #[test]
    fn valid_names_never_escape(s in "[a-z0-9./_-]{1,40}") {
        if let Ok(n) = RepositoryName::parse(&s) {
            prop_assert!(n.components().all(|c| c != ".." && c != "." && !c.is_empty()));
        }
    }
}
