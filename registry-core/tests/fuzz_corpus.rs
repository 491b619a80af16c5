//! Runs every fuzz target's body over its checked-in corpus (`fuzz/corpus/<target>/`), so the
//! targets and every crash they ever found (kept there as regression inputs) are exercised by
//! `cargo test` on stable Rust.

use std::path::PathBuf;

fn run(target: &str, body: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            body(&std::fs::read(&path).expect("read corpus file"));
            count += 1;
        }
    }
    assert!(count > 0, "empty corpus for {target}");
}

#[test]
fn digest() {
    run("digest", registry_core::fuzzing::digest);
}

#[test]
fn name() {
    run("name", registry_core::fuzzing::name);
}

#[test]
fn reference() {
    run("reference", registry_core::fuzzing::reference);
}

#[test]
fn scope() {
    run("scope", registry_core::fuzzing::scope);
}

#[test]
fn manifest() {
    run("manifest", registry_core::fuzzing::manifest);
}

#[test]
fn verifier_chunks() {
    run("verifier_chunks", registry_core::fuzzing::verifier_chunks);
}

#[test]
fn chart() {
    run("chart", registry_core::fuzzing::chart);
}
