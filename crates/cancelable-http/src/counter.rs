//! [`Counter`]: a statistic that every request updates, without making the threads that serve
//! requests fight over one cache line.
//!
//! A plain atomic counter that several threads increment moves its cache line from core to
//! core on every increment. Here each thread adds to a shard of its own (threads beyond
//! [`SHARDS`] share), each shard on its own cache line, and a reader sums the shards.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Shards per counter: more than the threads a server usually runs requests on.
const SHARDS: usize = 16;

/// A shard on a cache line of its own (two lines: some CPUs fetch lines in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(AtomicU64);

/// A count that many threads add to and few read.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    shards: [Shard; SHARDS],
}

/// The shard of each thread, handed out in turn on a thread's first use.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|shard| {
        if shard.get() == usize::MAX {
            shard.set(NEXT.fetch_add(1, Relaxed) % SHARDS);
        }
        shard.get()
    })
}

impl Counter {
    /// Adds one.
    pub(crate) fn add(&self) {
        self.shards[shard()].0.fetch_add(1, Relaxed);
    }

    /// The count: exact when no thread adds at the same time, otherwise a value it had while
    /// this ran, or one that only the concurrent additions separate from such a value.
    pub(crate) fn get(&self) -> u64 {
        self.shards.iter().map(|s| s.0.load(Relaxed)).sum()
    }
}
