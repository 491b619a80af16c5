//! Hashing a pushed body beside the task that reads it.
//!
//! A push makes one pass over its bytes: socket, hash, file. Hashed on the task that reads the
//! socket, SHA-256 (about 0.6 CPU-s a GiB with SHA-NI) holds up the reading: while a frame is
//! hashed no other frame is read, and the store's writer waits for frames. Once a body has passed
//! [`INLINE`] bytes, [`HashingStream`] hands each frame to a blocking thread that hashes it while
//! the task reads the next frame and the writer writes this one. Frames are [`Bytes`], shared, not
//! copied; the channel to the hashing thread is bounded, so a slow hash slows the body as a slow
//! disk does. Small bodies (manifests, most layers of a chunked push's requests) are hashed inline:
//! a thread hop would cost them more than it saves.
//!
//! The size limit is still checked on the reading task, as each frame arrives, so a body longer
//! than its range is refused at once, as before.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::Stream;
use registry_core::DigestVerifier;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::PollSender;

use crate::blob::BodyError;
use crate::error::{Error, Result};

/// Bytes hashed inline before the rest of a body is hashed on a thread of its own.
const INLINE: u64 = 4 << 20;
/// Frames waiting for the hashing thread (frames are up to 1 MiB: the server's read buffer).
const DEPTH: usize = 16;

enum State {
    Inline(Box<DigestVerifier>),
    Behind { frames: PollSender<Bytes>, hasher: JoinHandle<DigestVerifier> },
    Gone,
}

/// Passes a body through, hashing it into a [`DigestVerifier`] (inline at first, then on a
/// blocking thread); [`HashingStream::into_verifier`] gives the verifier back once the body has
/// ended.
pub(crate) struct HashingStream<S> {
    inner: S,
    state: State,
    /// Bytes seen so far, the verifier's starting size included.
    size: u64,
    limit: Option<u64>,
    failed: bool,
}

impl<S> HashingStream<S> {
    /// Hashes `inner` into `verifier`, refusing bytes past `limit` (in total, as
    /// [`DigestVerifier::with_limit`]).
    pub(crate) fn new(inner: S, verifier: DigestVerifier, limit: Option<u64>) -> Self {
        let size = verifier.size();
        let verifier = match limit {
            Some(limit) => verifier.with_limit(limit),
            None => verifier,
        };
        HashingStream { inner, state: State::Inline(Box::new(verifier)), size, limit, failed: false }
    }

    /// The verifier with every byte passed hashed into it.
    pub(crate) async fn into_verifier(self) -> Result<DigestVerifier> {
        match self.state {
            State::Inline(verifier) => Ok(*verifier),
            State::Behind { frames, hasher } => {
                drop(frames);
                hasher.await.map_err(|e| Error::invariant(format!("the hashing thread failed: {e}")))
            }
            State::Gone => Err(Error::invariant("the hashing thread went away".to_string())),
        }
    }

    fn refuse(&mut self, e: registry_core::Error) -> Poll<Option<std::result::Result<Bytes, BodyError>>> {
        self.failed = true;
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

impl<S> Stream for HashingStream<S>
where
    S: Stream<Item = std::result::Result<Bytes, BodyError>> + Unpin,
{
    type Item = std::result::Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        // Room for the next frame at the hashing thread first, so a frame read is never held.
        if let State::Behind { frames, .. } = &mut this.state
            && ready!(frames.poll_reserve(cx)).is_err()
        {
            this.state = State::Gone;
            this.failed = true;
            return Poll::Ready(Some(Err("the hashing thread went away".into())));
        }
        let bytes = match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
            Some(Ok(bytes)) => bytes,
            other => return Poll::Ready(other),
        };
        let size = this.size.saturating_add(bytes.len() as u64);
        if let Some(limit) = this.limit
            && size > limit
        {
            return this.refuse(registry_core::Error::SizeExceeded { limit });
        }
        this.size = size;
        match &mut this.state {
            State::Inline(verifier) => {
                if let Err(e) = verifier.update(&bytes) {
                    return this.refuse(e);
                }
                if size >= INLINE {
                    let algorithm = verifier.algorithm();
                    this.state = behind(std::mem::replace(verifier.as_mut(), DigestVerifier::new(algorithm)));
                }
            }
            State::Behind { frames, .. } => {
                if frames.send_item(bytes.clone()).is_err() {
                    this.state = State::Gone;
                    this.failed = true;
                    return Poll::Ready(Some(Err("the hashing thread went away".into())));
                }
            }
            State::Gone => return Poll::Ready(None),
        }
        Poll::Ready(Some(Ok(bytes)))
    }
}

/// Moves the hashing to a blocking thread.
fn behind(mut verifier: DigestVerifier) -> State {
    let (tx, mut rx) = mpsc::channel::<Bytes>(DEPTH);
    let hasher = tokio::task::spawn_blocking(move || {
        while let Some(frame) = rx.blocking_recv() {
            // The limit was checked as the frame passed; this cannot fail.
            let _ = verifier.update(&frame);
        }
        verifier
    });
    State::Behind { frames: PollSender::new(tx), hasher }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use proptest::prelude::*;
    use registry_core::Algorithm;

    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    /// The frames of `data` cut at `cuts` (offsets, any order).
    fn frames(data: &[u8], cuts: &[usize]) -> Vec<std::result::Result<Bytes, BodyError>> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        at.extend([0, data.len()]);
        at.sort_unstable();
        at.dedup();
        at.windows(2).map(|w| Ok(Bytes::copy_from_slice(&data[w[0]..w[1]]))).collect()
    }

    /// Streams `frames` through a [`HashingStream`] resumed from `start` bytes of `data` hashed
    /// inline: what it passed on, and its verifier or the error it stopped with.
    async fn pass(
        data: &[u8],
        start: usize,
        cuts: &[usize],
        limit: Option<u64>,
    ) -> (Vec<u8>, std::result::Result<DigestVerifier, String>) {
        let mut verifier = DigestVerifier::new(Algorithm::Sha256);
        verifier.update(&data[..start]).expect("start");
        let mut hashing = HashingStream::new(futures::stream::iter(frames(&data[start..], cuts)), verifier, limit);
        let mut passed = data[..start].to_vec();
        while let Some(frame) = hashing.next().await {
            match frame {
                Ok(bytes) => passed.extend_from_slice(&bytes),
                Err(e) => return (passed, Err(e.to_string())),
            }
        }
        (passed, hashing.into_verifier().await.map_err(|e| e.to_string()))
    }

    fn digest_of(data: &[u8]) -> registry_core::Digest {
        let mut v = DigestVerifier::new(Algorithm::Sha256);
        v.update(data).expect("update");
        v.finish().expect("finish").digest
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_body_hashed_behind_its_frames_gives_the_one_pass_digest() {
        let data = data(3 * INLINE as usize + 12_345);
        let cuts: Vec<usize> = (1..200).map(|i| i * 61_417).collect();
        let (passed, verifier) = pass(&data, 0, &cuts, None).await;
        assert_eq!(passed, data, "every byte passed on, in order");
        let verifier = verifier.expect("verifier");
        assert_eq!(verifier.size(), data.len() as u64);
        assert_eq!(verifier.finish().expect("finish").digest, digest_of(&data));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_past_the_limit_are_refused_as_they_arrive_once_hashing_is_behind() {
        let data = data(2 * INLINE as usize);
        let limit = INLINE + INLINE / 2;
        let cuts: Vec<usize> = (1..64).map(|i| i * (INLINE as usize / 16)).collect();
        let (passed, outcome) = pass(&data, 0, &cuts, Some(limit)).await;
        let error = outcome.expect_err("refused");
        assert!(error.contains(&limit.to_string()), "{error}");
        assert!(passed.len() as u64 <= limit, "{} bytes passed on, past the limit {limit}", passed.len());
        assert_eq!(passed.len() as u64, limit, "the frames up to the limit passed (the cuts fall on it)");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any chunking, any resumed start, inline or behind: the digest of the whole.
        #[test]
        fn any_chunking_and_start_give_the_whole_digest(
            len in 0usize..(2 * INLINE as usize),
            start_share in 0usize..100,
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            let data = data(len);
            let start = len * start_share / 100;
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
            let (passed, verifier) = runtime.block_on(pass(&data, start, &cuts, None));
            prop_assert_eq!(&passed, &data);
            let verifier = verifier.expect("verifier");
            prop_assert_eq!(verifier.size(), len as u64);
            prop_assert_eq!(verifier.finish().expect("finish").digest, digest_of(&data));
        }
    }
}
