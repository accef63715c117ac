//! The counters and gauges of a running service (`Service::stats`), kept by the engine and the
//! processor and rendered by the metrics endpoint.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as Atomic};

/// Counters and gauges of a running service.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    pub(crate) handled: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) unhandled: AtomicU64,
    pub(crate) rebalances: AtomicU64,
}

impl Stats {
    /// Messages admitted to the pool and not yet finished, now (never above `demand`).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Atomic::SeqCst)
    }
    /// The highest `in_flight` seen since start.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Atomic::SeqCst)
    }
    /// Messages whose handler returned `Ok`.
    pub fn handled(&self) -> u64 {
        self.handled.load(Atomic::SeqCst)
    }
    /// Messages that failed for good (after retries): dead-lettered or logged.
    pub fn failed(&self) -> u64 {
        self.failed.load(Atomic::SeqCst)
    }
    /// Retries of failed attempts.
    pub fn retried(&self) -> u64 {
        self.retried.load(Atomic::SeqCst)
    }
    /// Messages sent to a dead-letter topic.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Atomic::SeqCst)
    }
    /// Messages whose event has no handler in this service.
    pub fn unhandled(&self) -> u64 {
        self.unhandled.load(Atomic::SeqCst)
    }
    /// Partition revocations and assignments seen.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Atomic::SeqCst)
    }

    /// A message was admitted to the pool.
    pub(crate) fn started(&self) {
        let now = self.in_flight.fetch_add(1, Atomic::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Atomic::SeqCst);
    }
}
