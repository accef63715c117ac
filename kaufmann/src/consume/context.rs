//! The rdkafka glue: the state the poll loop, the workers and the rebalance callbacks share (the
//! offset tracker, messages held outside the pool, the last client error), the commit of finished
//! offsets, and the client context whose callbacks see errors, statistics and rebalances (finished
//! work is committed synchronously before a partition is released).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use crate::consume::offsets::OffsetTracker;
use crate::observe::log_limit::LogLimit;
use crate::observe::metrics::Metrics;
use crate::process::message::Job;

/// The least time between two log lines of consumer errors (librdkafka may report one on every
/// fetch).
pub(crate) const CONSUMER_ERROR_LOG: Duration = Duration::from_secs(10);

/// State shared by the poll loop, the workers and the rebalance callback.
pub(crate) struct Shared {
    /// The last error librdkafka reported for the connection (authentication, TLS, all brokers
    /// down), for the start-up error that says why the brokers did not answer.
    last_client_error: Mutex<Option<String>>,
    tracker: Mutex<OffsetTracker>,
    held: Mutex<VecDeque<Job>>,
    /// Where the records read from retry topics before they were due wait (topic, partition,
    /// offset): outside the pool, their partitions paused until they are due.
    delayed: Mutex<Vec<(Arc<str>, i32, i64)>>,
    /// When a consumer error was last logged.
    pub(crate) consumer_error_log: LogLimit,
    pub(crate) metrics: Arc<Metrics>,
    revoke_timeout: Duration,
}

impl Shared {
    pub(crate) fn new(metrics: Arc<Metrics>, revoke_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            last_client_error: Mutex::default(),
            tracker: Mutex::default(),
            held: Mutex::default(),
            delayed: Mutex::default(),
            consumer_error_log: LogLimit::new(CONSUMER_ERROR_LOG),
            metrics,
            revoke_timeout,
        })
    }

    /// The last connection error librdkafka reported, if any.
    pub(crate) fn last_client_error(&self) -> Option<String> {
        self.last_client_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn tracker(&self) -> MutexGuard<'_, OffsetTracker> {
        self.tracker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn held(&self) -> MutexGuard<'_, VecDeque<Job>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that a record of `topic` waits until it is due.
    pub(crate) fn delay(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        self.delayed().push((Arc::clone(topic), partition, offset));
    }

    /// Takes back a waiting record that is due; `false` when its partition was revoked meanwhile
    /// (the new owner reads it again).
    pub(crate) fn undelay(&self, topic: &str, partition: i32, offset: i64) -> bool {
        let mut delayed = self.delayed();
        let found = delayed
            .iter()
            .position(|(t, p, o)| **t == *topic && *p == partition && *o == offset);
        found.map(|at| delayed.swap_remove(at)).is_some()
    }

    fn delayed(&self) -> MutexGuard<'_, Vec<(Arc<str>, i32, i64)>> {
        self.delayed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits the position of every partition that moved (all of them, or only `only`).
    pub(crate) fn commit<C: Consumer<X>, X: ConsumerContext>(
        &self,
        consumer: &C,
        mode: CommitMode,
        only: Option<&[(String, i32)]>,
    ) {
        let mut positions = self.tracker().committable();
        if let Some(only) = only {
            positions.retain(|(tp, _)| only.contains(tp));
        }
        if positions.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in &positions {
            if let Err(err) = list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            {
                tracing::warn!("cannot commit {topic}[{partition}]@{offset}: {err}");
            }
        }
        match consumer.commit(&list, mode) {
            Ok(()) => {
                self.tracker().committed(&positions);
                self.metrics.committed();
            }
            Err(err) => tracing::warn!(
                "commit of {} partition(s) failed (retried at the next commit): {err}",
                positions.len()
            ),
        }
    }
}

/// The consumer's context: on revoke, waits (bounded) for the revoked partitions' in-flight
/// messages, commits them synchronously, then lets the partitions go.
pub(crate) struct EngineContext {
    pub(crate) shared: Arc<Shared>,
}

impl ClientContext for EngineContext {
    /// librdkafka's client errors: logged (they name brokers and causes, never credentials) and
    /// the last one kept for the start-up error.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!("kafka client error: {error}: {reason}");
        let consequence =
            error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown);
        if consequence {
            self.shared.metrics.health.broker.set_down(reason);
        }
        let mut last = self
            .shared
            .last_client_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // "All brokers are down" follows the error that brought them down: keep that one.
        if !(consequence && last.is_some()) {
            *last = Some(reason.to_owned());
        }
    }

    /// librdkafka's statistics (every `statistics.interval.ms`): the consumer lag per partition.
    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.shared
                        .metrics
                        .set_lag(topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for EngineContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        self.shared.metrics.rebalanced();
        let revoked: Vec<(String, i32)> = list
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        tracing::info!(partitions = ?revoked, "partitions revoked: finishing their in-flight messages");
        let deadline = Instant::now() + self.shared.revoke_timeout;
        loop {
            // Held and delayed records are not in flight: they are dropped below.
            let mut held: Vec<(String, i32)> = self
                .shared
                .held()
                .iter()
                .map(|j| (j.origin.topic.to_string(), j.origin.partition))
                .collect();
            held.extend(
                self.shared
                    .delayed()
                    .iter()
                    .map(|(t, p, _)| (t.to_string(), *p)),
            );
            let busy = {
                let tracker = self.shared.tracker();
                revoked.iter().any(|(t, p)| {
                    let held_here = held.iter().filter(|(ht, hp)| ht == t && hp == p).count();
                    tracker.unfinished_in(t, *p) > held_here
                })
            };
            if !busy {
                break;
            }
            if Instant::now() > deadline {
                tracing::warn!(
                    "revoke timeout passed with messages in flight; they will be delivered again"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.shared.held().retain(|j| {
            !revoked
                .iter()
                .any(|(t, p)| **t == *j.origin.topic && *p == j.origin.partition)
        });
        self.shared.delayed().retain(|(topic, partition, _)| {
            !revoked
                .iter()
                .any(|(t, p)| **t == **topic && p == partition)
        });
        self.shared
            .commit(consumer, CommitMode::Sync, Some(&revoked));
        let mut tracker = self.shared.tracker();
        for (topic, partition) in &revoked {
            tracker.forget(topic, *partition);
            self.shared.metrics.forget_lag(topic, *partition);
        }
        // An incremental (cooperative) revoke keeps the partitions it does not name; an eager
        // one names them all.
        let kept = consumer.assignment().map_or(0, |now| {
            now.elements()
                .iter()
                .filter(|e| {
                    !revoked
                        .iter()
                        .any(|(t, p)| t == e.topic() && *p == e.partition())
                })
                .count()
        });
        self.shared
            .metrics
            .health
            .set_assigned(u64::try_from(kept).unwrap_or(u64::MAX));
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.shared.metrics.rebalanced();
            // After an incremental assign, the list holds only the partitions added.
            let assigned_now = consumer
                .assignment()
                .map_or(list.count(), |now| now.count());
            self.shared
                .metrics
                .health
                .set_assigned(u64::try_from(assigned_now).unwrap_or(u64::MAX));
            let assigned: Vec<String> = list
                .elements()
                .iter()
                .map(|e| format!("{}[{}]", e.topic(), e.partition()))
                .collect();
            tracing::info!(partitions = ?assigned, "partitions assigned");
        }
    }
}

pub(crate) type EngineConsumer = StreamConsumer<EngineContext>;
