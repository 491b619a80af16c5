//! The streaming digest verifier every pushed byte passes through. (Half of this file is its tests:
//! every chunking, every refusal, the resumable state.)
//!
//! A [`DigestVerifier`] hashes bytes fed in any chunking and ends with the [`Verified`] digest and
//! byte count. Given an expected digest and size it fails with distinct errors:
//! [`Error::DigestMismatch`], [`Error::SizeMismatch`], and — as soon as one byte too many arrives —
//! [`Error::SizeExceeded`] (the offending chunk is not absorbed, so the verifier stays usable for
//! reporting).
//!
//! # Chunked uploads across requests and restarts
//!
//! An upload in several requests keeps one verifier per session. Between requests it can stay in
//! memory, but to survive a restart (or to let another replica take the next request) the session
//! stores [`DigestVerifier::save`]'s [`VerifierState`] with its offset after every acknowledged
//! chunk, and the next request resumes with [`DigestVerifier::restore`]. The state is the hash
//! function's internal block state plus its partial block (sha2's serializable state: at most 113
//! bytes for SHA-256, 209 for SHA-512) and the byte count; it reveals nothing beyond what the
//! stored upload bytes already do. The state must be saved together with (never before) the bytes
//! it covers are durable, so that `state.size` always equals the durable length of the upload.
//! [`VerifierState::to_bytes`] gives a compact, versioned encoding.
//!
//! Adapters: [`VerifyingStream`] over a `Stream<Item = Result<Bytes, E>>`, and [`VerifyingReader`]
//! over an [`AsyncRead`]. Both pass the bytes through unchanged.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use sha2::Digest as _;
use sha2::digest::common::hazmat::SerializableState;
use tokio::io::{AsyncRead, ReadBuf};

use crate::digest::{Algorithm, Digest};
use crate::error::Error;

#[derive(Clone)]
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_finished(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_finished(Algorithm::Sha512, &h.finalize()),
        }
    }

    fn serialize(&self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.serialize().to_vec(),
            Hasher::Sha512(h) => h.serialize().to_vec(),
        }
    }

    fn deserialize(algorithm: Algorithm, bytes: &[u8]) -> Option<Hasher> {
        match algorithm {
            Algorithm::Sha256 => {
                let array = bytes.try_into().ok()?;
                sha2::Sha256::deserialize(array).ok().map(Hasher::Sha256)
            }
            Algorithm::Sha512 => {
                let array = bytes.try_into().ok()?;
                sha2::Sha512::deserialize(array).ok().map(Hasher::Sha512)
            }
        }
    }
}

/// The outcome of a verification: what was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The digest of the bytes received.
    pub digest: Digest,
    /// The number of bytes received.
    pub size: u64,
}

/// Hashes a byte stream in any chunking and checks it against an expected digest and size.
#[derive(Clone)]
pub struct DigestVerifier {
    hasher: Hasher,
    size: u64,
    expected_digest: Option<Digest>,
    expected_size: Option<u64>,
    limit: Option<u64>,
}

impl std::fmt::Debug for DigestVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestVerifier")
            .field("algorithm", &self.hasher.algorithm())
            .field("size", &self.size)
            .field("expected_digest", &self.expected_digest)
            .field("expected_size", &self.expected_size)
            .field("limit", &self.limit)
            .finish()
    }
}

impl DigestVerifier {
    /// A verifier that computes a digest of `algorithm` and expects nothing yet.
    pub fn new(algorithm: Algorithm) -> DigestVerifier {
        DigestVerifier {
            hasher: Hasher::new(algorithm),
            size: 0,
            expected_digest: None,
            expected_size: None,
            limit: None,
        }
    }

    /// A verifier that expects `digest` (and `size`, when given); it hashes with the digest's algorithm.
    pub fn expecting(digest: &Digest, size: Option<u64>) -> DigestVerifier {
        let mut v = DigestVerifier::new(digest.algorithm());
        v.expected_digest = Some(digest.clone());
        v.expected_size = size;
        v
    }

    /// Sets the expected digest and size, e.g. when the last request of a chunked upload names them.
    /// Fails if the digest's algorithm is not the one being computed, or if more than `size` bytes
    /// were already received.
    pub fn expect(&mut self, digest: &Digest, size: Option<u64>) -> Result<(), Error> {
        if digest.algorithm() != self.hasher.algorithm() {
            return Err(Error::InvalidVerifierState { reason: "expected digest uses another algorithm" });
        }
        if let Some(limit) = size
            && self.size > limit
        {
            return Err(Error::SizeExceeded { limit });
        }
        self.expected_digest = Some(digest.clone());
        self.expected_size = size;
        Ok(())
    }

    /// Refuses, early, any input beyond `limit` bytes in total ([`Error::SizeExceeded`]).
    pub fn with_limit(mut self, limit: u64) -> DigestVerifier {
        self.limit = Some(limit);
        self
    }

    /// The algorithm being computed.
    pub fn algorithm(&self) -> Algorithm {
        self.hasher.algorithm()
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Feeds the next bytes. Fails with [`Error::SizeExceeded`], without absorbing them, when they
    /// would pass the expected size or the limit.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let new_size = self.size.saturating_add(bytes.len() as u64);
        for limit in [self.expected_size, self.limit].into_iter().flatten() {
            if new_size > limit {
                return Err(Error::SizeExceeded { limit });
            }
        }
        self.hasher.update(bytes);
        self.size = new_size;
        Ok(())
    }

    /// Ends the stream: the digest and size received, checked against what was expected
    /// (size first, since it is the cheaper and more specific diagnosis).
    pub fn finish(self) -> Result<Verified, Error> {
        let size = self.size;
        let expected_digest = self.expected_digest;
        let expected_size = self.expected_size;
        let digest = self.hasher.finish();
        if let Some(expected) = expected_size
            && expected != size
        {
            return Err(Error::SizeMismatch { expected, actual: size });
        }
        if let Some(expected) = expected_digest
            && expected != digest
        {
            return Err(Error::DigestMismatch { expected: expected.to_string(), actual: digest.to_string() });
        }
        Ok(Verified { digest, size })
    }

    /// The state to carry to the next request of a chunked upload (see the module docs).
    /// Expectations and limits are not part of it: each request sets its own.
    pub fn save(&self) -> VerifierState {
        VerifierState { algorithm: self.hasher.algorithm(), size: self.size, hash_state: self.hasher.serialize() }
    }

    /// Resumes from a saved state.
    pub fn restore(state: &VerifierState) -> Result<DigestVerifier, Error> {
        let hasher = Hasher::deserialize(state.algorithm, &state.hash_state)
            .ok_or(Error::InvalidVerifierState { reason: "hash state does not decode" })?;
        let mut v = DigestVerifier::new(state.algorithm);
        v.hasher = hasher;
        v.size = state.size;
        Ok(v)
    }
}

/// The resumable state of a [`DigestVerifier`]: algorithm, byte count and internal hash state.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierState {
    /// The algorithm being computed.
    pub algorithm: Algorithm,
    /// Bytes hashed so far: the offset at which the upload resumes.
    pub size: u64,
    hash_state: Vec<u8>,
}

impl std::fmt::Debug for VerifierState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierState").field("algorithm", &self.algorithm).field("size", &self.size).finish()
    }
}

/// Version byte of [`VerifierState::to_bytes`].
const STATE_VERSION: u8 = 1;

impl VerifierState {
    /// A compact encoding: version, algorithm, size (little endian), hash state.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(10 + self.hash_state.len());
        out.push(STATE_VERSION);
        out.push(match self.algorithm {
            Algorithm::Sha256 => 1,
            Algorithm::Sha512 => 2,
        });
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.hash_state);
        out
    }

    /// Decodes [`VerifierState::to_bytes`]; the hash state itself is checked by
    /// [`DigestVerifier::restore`].
    pub fn from_bytes(bytes: &[u8]) -> Result<VerifierState, Error> {
        let bad = |reason| Error::InvalidVerifierState { reason };
        if bytes.len() < 10 {
            return Err(bad("too short"));
        }
        if bytes[0] != STATE_VERSION {
            return Err(bad("unknown version"));
        }
        let algorithm = match bytes[1] {
            1 => Algorithm::Sha256,
            2 => Algorithm::Sha512,
            _ => return Err(bad("unknown algorithm")),
        };
        let mut size = [0u8; 8];
        size.copy_from_slice(&bytes[2..10]);
        Ok(VerifierState { algorithm, size: u64::from_le_bytes(size), hash_state: bytes[10..].to_vec() })
    }
}

/// An error from a [`VerifyingStream`]: the source's own, or the verifier's.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E> {
    /// The underlying stream failed.
    #[error("body stream failed: {0}")]
    Source(E),
    /// The bytes broke the verifier's expectations (only [`Error::SizeExceeded`] arrives early).
    #[error(transparent)]
    Verify(Error),
}

/// Passes a byte stream through a [`DigestVerifier`]. When the stream has ended, call
/// [`VerifyingStream::finish`].
#[derive(Debug)]
pub struct VerifyingStream<S> {
    inner: S,
    verifier: DigestVerifier,
    failed: bool,
}

impl<S> VerifyingStream<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, verifier: DigestVerifier) -> Self {
        VerifyingStream { inner, verifier, failed: false }
    }

    /// The verifier, e.g. to read the byte count so far.
    pub fn verifier(&self) -> &DigestVerifier {
        &self.verifier
    }

    /// Ends the verification (call after the stream returned `None`).
    pub fn finish(self) -> Result<Verified, Error> {
        self.verifier.finish()
    }

    /// Gives back the verifier, e.g. to save its state after a chunk.
    pub fn into_verifier(self) -> DigestVerifier {
        self.verifier
    }
}

impl<S, E> Stream for VerifyingStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, StreamError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => match this.verifier.update(&bytes) {
                Ok(()) => Poll::Ready(Some(Ok(bytes))),
                Err(e) => {
                    this.failed = true;
                    Poll::Ready(Some(Err(StreamError::Verify(e))))
                }
            },
            Poll::Ready(Some(Err(e))) => {
                this.failed = true;
                Poll::Ready(Some(Err(StreamError::Source(e))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Passes an [`AsyncRead`] through a [`DigestVerifier`]. A size violation surfaces as an
/// [`io::Error`] of kind `InvalidData` whose inner error is the [`Error`]
/// (see [`VerifyingReader::verify_error`]).
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    verifier: DigestVerifier,
}

impl<R> VerifyingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, verifier: DigestVerifier) -> Self {
        VerifyingReader { inner, verifier }
    }

    /// The verifier, e.g. to read the byte count so far.
    pub fn verifier(&self) -> &DigestVerifier {
        &self.verifier
    }

    /// Ends the verification (call after a read returned 0 bytes).
    pub fn finish(self) -> Result<Verified, Error> {
        self.verifier.finish()
    }

    /// The verifier's error inside an I/O error this reader returned, if it is one.
    pub fn verify_error(e: &io::Error) -> Option<&Error> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for VerifyingReader<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                match this.verifier.update(new) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(e) => {
                        buf.set_filled(before);
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)))
                    }
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn matches_one_shot_hashing_for_both_algorithms() {
        let bytes = data(10_000);
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut v = DigestVerifier::new(algorithm);
            for chunk in bytes.chunks(333) {
                v.update(chunk).expect("no limit");
            }
            let out = v.finish().expect("no expectation");
            assert_eq!(out.digest, Digest::compute(algorithm, &bytes));
            assert_eq!(out.size, 10_000);
        }
    }

    #[test]
    fn distinct_errors_for_digest_and_size_mismatch() {
        let bytes = data(100);
        let right = Digest::sha256_of(&bytes);
        let wrong = Digest::sha256_of(b"other");

        let mut v = DigestVerifier::expecting(&wrong, Some(100));
        v.update(&bytes).expect("within size");
        assert!(matches!(v.finish(), Err(Error::DigestMismatch { .. })));

        let mut v = DigestVerifier::expecting(&right, Some(101));
        v.update(&bytes).expect("within size");
        assert!(matches!(v.finish(), Err(Error::SizeMismatch { expected: 101, actual: 100 })));

        let mut v = DigestVerifier::expecting(&right, Some(99));
        assert!(matches!(v.update(&bytes), Err(Error::SizeExceeded { limit: 99 })));
        assert_eq!(v.size(), 0, "the offending chunk is not absorbed");

        let mut v = DigestVerifier::new(Algorithm::Sha256).with_limit(10);
        v.update(&bytes[..10]).expect("at the limit");
        assert!(matches!(v.update(&bytes[10..11]), Err(Error::SizeExceeded { limit: 10 })));

        let mut v = DigestVerifier::expecting(&right, Some(100));
        v.update(&bytes).expect("exact");
        assert_eq!(v.finish().expect("match").digest, right);
    }

    #[test]
    fn expect_later_refuses_other_algorithms_and_short_sizes() {
        let mut v = DigestVerifier::new(Algorithm::Sha256);
        v.update(&data(50)).expect("ok");
        let sha512 = Digest::compute(Algorithm::Sha512, b"");
        assert!(matches!(v.expect(&sha512, None), Err(Error::InvalidVerifierState { .. })));
        let d = Digest::sha256_of(&data(50));
        assert!(matches!(v.expect(&d, Some(49)), Err(Error::SizeExceeded { .. })));
        v.expect(&d, Some(50)).expect("consistent");
        assert_eq!(v.finish().expect("match").digest, d);
    }

    #[test]
    fn state_survives_save_and_restore() {
        let bytes = data(200_003);
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut v = DigestVerifier::new(algorithm);
            v.update(&bytes[..77_777]).expect("ok");
            let saved = VerifierState::from_bytes(&v.save().to_bytes()).expect("decodes");
            assert_eq!(saved.size, 77_777);
            let mut resumed = DigestVerifier::restore(&saved).expect("restores");
            resumed.update(&bytes[77_777..]).expect("ok");
            assert_eq!(resumed.finish().expect("ok").digest, Digest::compute(algorithm, &bytes));
        }
    }

    #[test]
    fn corrupt_state_is_refused() {
        assert!(VerifierState::from_bytes(b"").is_err());
        assert!(VerifierState::from_bytes(&[9u8; 20]).is_err());
        let mut bytes = DigestVerifier::new(Algorithm::Sha256).save().to_bytes();
        bytes.pop();
        let state = VerifierState::from_bytes(&bytes).expect("header fine");
        assert!(matches!(DigestVerifier::restore(&state), Err(Error::InvalidVerifierState { .. })));
    }

    #[test]
    fn stream_adapter_passes_bytes_and_fails_early() {
        use futures::StreamExt;
        use futures::executor::block_on;
        let bytes = data(1000);
        let chunks: Vec<Result<Bytes, io::Error>> = bytes.chunks(64).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let mut s = VerifyingStream::new(
            futures::stream::iter(chunks.into_iter().map(|r| r.map_err(|e| e.to_string()))),
            DigestVerifier::expecting(&Digest::sha256_of(&bytes), Some(1000)),
        );
        let mut out = Vec::new();
        block_on(async {
            while let Some(item) = s.next().await {
                out.extend_from_slice(&item.expect("no error"));
            }
        });
        assert_eq!(out, bytes);
        assert_eq!(s.finish().expect("verified").size, 1000);

        let chunks = bytes.chunks(64).map(|c| Ok::<_, String>(Bytes::copy_from_slice(c)));
        let mut s =
            VerifyingStream::new(futures::stream::iter(chunks), DigestVerifier::new(Algorithm::Sha256).with_limit(100));
        let results: Vec<_> = block_on(async { (&mut s).collect::<Vec<_>>().await });
        assert_eq!(results.len(), 2, "one good chunk, then the error, then the end");
        assert!(matches!(results[1], Err(StreamError::Verify(Error::SizeExceeded { limit: 100 }))));
    }

    #[tokio::test]
    async fn reader_adapter_passes_bytes_and_fails_early() {
        use tokio::io::AsyncReadExt;
        let bytes = data(5000);
        let mut r = VerifyingReader::new(&bytes[..], DigestVerifier::expecting(&Digest::sha256_of(&bytes), None));
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.expect("reads");
        assert_eq!(out, bytes);
        assert_eq!(r.finish().expect("verified").size, 5000);

        let mut r = VerifyingReader::new(&bytes[..], DigestVerifier::new(Algorithm::Sha256).with_limit(10));
        let err = r.read_to_end(&mut Vec::new()).await.expect_err("over the limit");
        assert!(matches!(VerifyingReader::<&[u8]>::verify_error(&err), Some(Error::SizeExceeded { .. })));
    }
}
