//! What `Service::stats` and `TestBus::stats` show: a read-only view of the service's one set of
//! counters, the [`Metrics`] (the totals are the sums of the per-event counters the metrics
//! endpoint shows).

use std::sync::Arc;

use crate::observe::metrics::Metrics;

/// Counters and gauges of a running service.
#[derive(Debug, Clone)]
pub struct Stats {
    metrics: Arc<Metrics>,
}

impl Stats {
    /// The view of `metrics`.
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }

    /// Messages admitted to the pool and not yet finished, now (never above `demand`).
    pub fn in_flight(&self) -> usize {
        self.metrics.in_flight()
    }
    /// The highest `in_flight` seen since start.
    pub fn max_in_flight(&self) -> usize {
        self.metrics.max_in_flight()
    }
    /// Messages out of the pool whose handlers returned, waiting for the broker to acknowledge
    /// their events before their offsets are committed (`publish_confirm = "before_commit"`, or
    /// exactly once), now: at most 100 × `demand`.
    pub fn unconfirmed(&self) -> usize {
        self.metrics.unconfirmed()
    }
    /// The highest `unconfirmed` seen since start.
    pub fn max_unconfirmed(&self) -> usize {
        self.metrics.max_unconfirmed()
    }
    /// Messages whose handler returned `Ok`.
    pub fn handled(&self) -> u64 {
        self.metrics.total(|c| c.handled)
    }
    /// Messages that failed for good (after retries): dead-lettered or logged.
    pub fn failed(&self) -> u64 {
        self.metrics.total(|c| c.failed)
    }
    /// Retries of failed attempts.
    pub fn retried(&self) -> u64 {
        self.metrics.total(|c| c.retried)
    }
    /// Messages sent to a dead-letter topic.
    pub fn dead_lettered(&self) -> u64 {
        self.metrics.total(|c| c.dead_lettered)
    }
    /// Messages whose event has no handler in this service.
    pub fn unhandled(&self) -> u64 {
        self.metrics.unhandled()
    }
    /// The partitions each of the service's consumers holds now, by consumer (see
    /// [`Config::consumers`](crate::Config::consumers)); empty before the first assignment.
    pub fn assigned_partitions(&self) -> Vec<u64> {
        self.metrics.health.assigned()
    }
    /// Partition revocations and assignments seen.
    pub fn rebalances(&self) -> u64 {
        self.metrics.rebalances()
    }
    /// Transactions committed (`exactly_once` processing).
    pub fn transactions_committed(&self) -> u64 {
        self.metrics.transactions().0
    }
    /// Transactions aborted (`exactly_once` processing): a failed commit, a rebalance that could
    /// not commit, a fenced producer.
    pub fn transactions_aborted(&self) -> u64 {
        self.metrics.transactions().1
    }
}
