//! The streaming DigestVerifier against bare `sha2` one-shot hashing, at the chunk sizes a registry
//! sees (4 KiB socket reads up to 16 MiB buffers), over a 64 MiB payload.
//!
//! `cargo bench -p registry-benches --bench verifier`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use registry_core::{Algorithm, DigestVerifier};
use sha2::Digest as _;
use std::hint::black_box;

const PAYLOAD: usize = 64 << 20;

fn verifier(c: &mut Criterion) {
    let data = registry_benches::test_data(PAYLOAD);
    for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
        let mut group = c.benchmark_group(format!("{algorithm}"));
        group.throughput(Throughput::Bytes(PAYLOAD as u64));
        group.sample_size(10);
        group.bench_function("sha2-one-shot", |b| {
            b.iter(|| match algorithm {
                Algorithm::Sha256 => black_box(sha2::Sha256::digest(black_box(&data)).to_vec()),
                Algorithm::Sha512 => black_box(sha2::Sha512::digest(black_box(&data)).to_vec()),
            })
        });
        for chunk in [4 << 10, 64 << 10, 1 << 20, 16 << 20] {
            group.bench_with_input(BenchmarkId::new("verifier", chunk_label(chunk)), &chunk, |b, &chunk| {
                b.iter(|| {
                    let mut v = DigestVerifier::new(algorithm);
                    for part in data.chunks(chunk) {
                        v.update(black_box(part)).expect("no limit");
                    }
                    black_box(v.finish().expect("no expectation"))
                })
            });
        }
        group.finish();
    }
}

fn chunk_label(bytes: usize) -> String {
    if bytes >= 1 << 20 { format!("{}MiB", bytes >> 20) } else { format!("{}KiB", bytes >> 10) }
}

criterion_group!(benches, verifier);
criterion_main!(benches);
