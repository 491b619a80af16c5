//! A pooled connection lent to one store call, and what happens when the call gives it back.
//!
//! A call that is cancelled part-way (the HTTP layer's request deadline, a readiness probe's
//! timeout) drops its connection wherever it was: possibly with a statement sent and its answer
//! never read, on a connection whose peer has stopped answering while its kernel still
//! acknowledges (a hung server, a proxy or NAT that lost the route, a failover that stranded the
//! old sessions). The pool's fast recycling only asks whether the socket is closed, and such a
//! connection is not: handed to the next call, it would hang that one too, and the next, until
//! the pool is all stalled connections.
//!
//! So a lease remembers when it was taken, and one held longer than the stall limit (half the
//! store's connect timeout, 2.5 s by default, so that a ping timed out by the connect timeout
//! is past it; a statement of this store takes milliseconds) is closed
//! instead of being pooled again: the next call gets a fresh connection. A slow but healthy
//! connection costs one reconnect; a stalled one can never be lent twice.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// A connection from the pool, closed instead of pooled again if it was held too long.
pub(crate) struct Lease {
    object: Option<deadpool_postgres::Object>,
    taken: Instant,
    stall_limit: Duration,
}

impl Lease {
    pub(crate) fn new(object: deadpool_postgres::Object, stall_limit: Duration) -> Lease {
        Lease { object: Some(object), taken: Instant::now(), stall_limit }
    }

    /// The connection, out of the pool for good (a session that must serve no one else: one
    /// holding a session-level lock).
    pub(crate) fn detach(mut self) -> deadpool_postgres::ClientWrapper {
        let object = self.object.take().expect("a lease holds its connection until dropped");
        deadpool_postgres::Object::take(object)
    }
}

impl Deref for Lease {
    type Target = deadpool_postgres::Object;

    fn deref(&self) -> &Self::Target {
        self.object.as_ref().expect("a lease holds its connection until dropped")
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.object.as_mut().expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(object) = self.object.take() else { return };
        let held = self.taken.elapsed();
        if held > self.stall_limit {
            tracing::debug!(
                held_ms = held.as_millis() as u64,
                "closing a PostgreSQL connection held past the stall limit"
            );
            drop(deadpool_postgres::Object::take(object));
        }
    }
}
