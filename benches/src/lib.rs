//! Benches and load tools of the registry workspace; see `BENCHMARKS.md` for the figures and how
//! to reproduce them. The criterion benches live in `benches/`.

/// Deterministic, incompressible-looking test data of `len` bytes.
pub fn test_data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
