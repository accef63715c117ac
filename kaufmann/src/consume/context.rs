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
use crate::consume::transactions::{Ended, Transactions};
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
    /// Which of the service's consumers this is (from 0).
    pub(crate) consumer: usize,
    revoke_timeout: Duration,
    /// The transactional producer, under `exactly_once`.
    transactions: Option<Transactions>,
}

impl Shared {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        consumer: usize,
        revoke_timeout: Duration,
        transactions: Option<Transactions>,
    ) -> Arc<Self> {
        Arc::new(Self {
            last_client_error: Mutex::default(),
            tracker: Mutex::default(),
            held: Mutex::default(),
            delayed: Mutex::default(),
            consumer_error_log: LogLimit::new(CONSUMER_ERROR_LOG),
            metrics,
            consumer,
            revoke_timeout,
            transactions,
        })
    }

    /// The transactional producer, under `exactly_once`.
    pub(crate) fn transactions(&self) -> Option<&Transactions> {
        self.transactions.as_ref()
    }

    /// Under `exactly_once`, commits the open transaction with every partition's position; on
    /// failure aborts it (and the partitions are to be rewound). Call with nothing in flight.
    /// Blocks.
    pub(crate) fn end_transaction<C: Consumer<X>, X: ConsumerContext>(
        &self,
        consumer: &C,
    ) -> Option<Ended> {
        let transactions = self.transactions.as_ref()?;
        if consumer.assignment_lost() {
            // The group gave these partitions to another member (this one missed its session
            // timeout): their work is that member's now, and committing it here would undo it.
            return Some(transactions.abort("the group took this member's partitions away"));
        }
        let positions = self.tracker().committable();
        let ended = transactions.commit(consumer.group_metadata(), &positions);
        if ended == Ended::Committed {
            self.tracker().committed(&positions);
        }
        Some(ended)
    }

    /// Drops every record waiting outside the pool, held or delayed (a rewind reads them again).
    pub(crate) fn drop_waiting(&self) {
        self.held().clear();
        self.delayed().clear();
    }

    /// Whether messages of `partitions` (all of them: `None`) are in flight: fetched, not
    /// finished and not waiting outside the pool.
    fn busy(&self, partitions: Option<&[(String, i32)]>) -> bool {
        let mut waiting: Vec<(String, i32)> = self
            .held()
            .iter()
            .map(|j| (j.origin.topic.to_string(), j.origin.partition))
            .collect();
        waiting.extend(self.delayed().iter().map(|(t, p, _)| (t.to_string(), *p)));
        let tracker = self.tracker();
        let busy_in = |t: &str, p: i32| {
            let here = waiting
                .iter()
                .filter(|(wt, wp)| wt == t && *wp == p)
                .count();
            tracker.unfinished_in(t, p) > here
        };
        match partitions {
            Some(partitions) => partitions.iter().any(|(t, p)| busy_in(t, *p)),
            None => tracker.partitions().any(|(t, p)| busy_in(t, p)),
        }
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
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        crate::observe::client_logs::log(level, fac, message);
    }

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
        // The callback runs on the poll loop's runtime thread and waits there for messages in
        // flight. On a multi-threaded runtime that thread's queued tasks move to another thread
        // meanwhile: the last task the poll loop spawned sits in that thread's own slot, which no
        // other thread takes, and would wait for the callback that waits for it.
        let multi_threaded = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        if multi_threaded {
            tokio::task::block_in_place(|| self.revoke(consumer, list));
        } else {
            self.revoke(consumer, list);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.assigned(consumer, rebalance);
    }
}

impl EngineContext {
    /// Finishes the revoked partitions' messages (exactly once: every partition's, then commits
    /// the transaction), commits them and lets the partitions go.
    fn revoke(&self, consumer: &BaseConsumer<Self>, list: &TopicPartitionList) {
        self.shared.metrics.rebalanced();
        let revoked: Vec<(String, i32)> = list
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        tracing::info!(partitions = ?revoked, "partitions revoked: finishing their in-flight messages");
        // Under `exactly_once` the open transaction holds every partition's work: all of it must
        // finish before the transaction is committed.
        let transactional = self.shared.transactions.is_some();
        let waited_for = (!transactional).then_some(&revoked[..]);
        let deadline = Instant::now() + self.shared.revoke_timeout;
        let mut finished = true;
        while self.shared.busy(waited_for) {
            if Instant::now() > deadline {
                tracing::warn!(
                    "revoke timeout passed with messages in flight; they will be delivered again"
                );
                finished = false;
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
        match &self.shared.transactions {
            None => self
                .shared
                .commit(consumer, CommitMode::Sync, Some(&revoked)),
            Some(_) if finished => {
                self.shared.end_transaction(consumer);
            }
            Some(transactions) => {
                transactions.abort("a rebalance came while messages were in flight");
            }
        }
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
            .set_assigned(self.shared.consumer, kept);
    }

    fn assigned(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.shared.metrics.rebalanced();
            // After an incremental assign, the list holds only the partitions added.
            let assigned_now = consumer
                .assignment()
                .map_or(list.count(), |now| now.count());
            self.shared
                .metrics
                .health
                .set_assigned(self.shared.consumer, assigned_now);
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
