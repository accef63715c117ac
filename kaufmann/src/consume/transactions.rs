//! Exactly-once processing (`processing = "exactly_once"`): the one transaction of this instance's
//! producer holds what the handlers published (error events, retry-topic and dead-letter records
//! included) and the consumed offsets (KIP-98, KIP-447's consumer group metadata). The engine
//! commits it with no message in flight, every `transaction_interval` or
//! `transaction_max_messages`; a failed commit aborts it and asks the engine to rewind every
//! partition to its committed offset; a fenced producer commits nothing more.
//!
//! Every call into librdkafka's transaction API here blocks: the engine makes them off the
//! runtime's threads (or in the rebalance callback, which already runs on the poll loop).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::consume::offsets::TopicPartition;
use crate::error::{Error, Result};
use crate::observe::client_logs::KafkaProducer;
use crate::observe::metrics::Metrics;

/// The limit of one call into the transaction API.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a call that failed with a retriable error is made again.
const CALL_TRIES: u32 = 5;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Nothing was admitted since the last commit: the transaction stays open.
    Empty,
    /// Committed: its records are visible to `read_committed` readers, its offsets committed.
    Committed,
    /// Aborted: its records are never visible; the engine rewinds to the committed offsets.
    Aborted,
    /// The producer is fenced or failed for good: nothing more is committed.
    Fenced,
}

/// What the open transaction holds so far.
#[derive(Debug, Default)]
struct Open {
    /// When its first message was admitted.
    since: Option<Instant>,
    messages: usize,
}

/// The transactional producer's state, shared by the poll loop and the rebalance callback.
pub(crate) struct Transactions {
    producer: KafkaProducer,
    id: String,
    interval: Duration,
    max_messages: usize,
    open: Mutex<Open>,
    /// Set by an abort: the poll loop rewinds every partition before it takes another message.
    rewind: AtomicBool,
    /// Why the producer can commit no more, once it cannot.
    fenced: Mutex<Option<String>>,
    metrics: Arc<Metrics>,
}

impl Transactions {
    /// The transactions of `producer`, whose transactional id is `id`.
    pub(crate) fn new(
        producer: KafkaProducer,
        id: String,
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            producer,
            id,
            interval: config.transaction_interval,
            max_messages: config.transaction_max_messages,
            open: Mutex::default(),
            rewind: AtomicBool::new(false),
            fenced: Mutex::default(),
            metrics,
        }
    }

    fn open(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the transactional id with its coordinator (which aborts what an earlier
    /// producer with this id left open: a killed predecessor is fenced here) and begins the
    /// first transaction. Blocks.
    pub(crate) fn start(&self) -> Result<()> {
        retried(|| self.producer.init_transactions(CALL_TIMEOUT))
            .and_then(|()| self.producer.begin_transaction())
            .map_err(|source| {
                Error::kafka(format!("starting transactions as `{}`", self.id), source)
            })?;
        tracing::info!(transactional_id = %self.id, "exactly-once processing: transactions started");
        Ok(())
    }

    /// Counts a message admitted to the open transaction; `true` when the transaction is full.
    pub(crate) fn admitted(&self) -> bool {
        let mut open = self.open();
        open.since.get_or_insert_with(Instant::now);
        open.messages += 1;
        open.messages >= self.max_messages
    }

    /// Whether the open transaction is due: full, or open for `transaction_interval`.
    pub(crate) fn due(&self) -> bool {
        let open = self.open();
        open.messages >= self.max_messages
            || open
                .since
                .is_some_and(|since| since.elapsed() >= self.interval)
    }

    /// Whether an abort left the partitions to rewind.
    pub(crate) fn needs_rewind(&self) -> bool {
        self.rewind.load(Ordering::SeqCst)
    }

    /// The partitions were rewound.
    pub(crate) fn rewound(&self) {
        self.rewind.store(false, Ordering::SeqCst);
    }

    /// The error the service stops with, once the producer is fenced.
    pub(crate) fn fenced(&self) -> Option<Error> {
        let reason = self
            .fenced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        Some(Error::Fenced {
            transactional_id: self.id.clone(),
            reason,
        })
    }

    /// Commits the open transaction with `positions` (the consumed offsets) and begins the next
    /// one; on failure aborts it. Call with no message in flight. Blocks.
    pub(crate) fn commit(
        &self,
        group: Option<ConsumerGroupMetadata>,
        positions: &[(TopicPartition, i64)],
    ) -> Ended {
        if self.is_fenced() {
            return Ended::Fenced;
        }
        let since = {
            let open = self.open();
            if open.messages == 0 && positions.is_empty() {
                return Ended::Empty;
            }
            open.since
        };
        let committed = self.send_offsets(group, positions).and_then(|()| {
            retried(|| self.producer.commit_transaction(CALL_TIMEOUT))
                .map_err(|e| ("committing", e))
        });
        match committed {
            Ok(()) => {
                let took = since.map_or(Duration::ZERO, |s| s.elapsed());
                self.metrics.transaction(true, took);
                self.metrics.committed();
                tracing::debug!(transactional_id = %self.id, partitions = positions.len(), ?took, "transaction committed");
                self.next().map_or(Ended::Fenced, |()| Ended::Committed)
            }
            Err((step, err)) => self.fail(&format!("{step} the transaction failed: {err}"), &err),
        }
    }

    /// Aborts the open transaction (a rebalance that could not wait for its messages, a
    /// shutdown past its timeout). Blocks.
    pub(crate) fn abort(&self, why: &str) -> Ended {
        if self.is_fenced() {
            return Ended::Fenced;
        }
        if self.open().messages == 0 {
            return Ended::Empty;
        }
        self.abort_and_begin(why)
    }

    fn send_offsets(
        &self,
        group: Option<ConsumerGroupMetadata>,
        positions: &[(TopicPartition, i64)],
    ) -> std::result::Result<(), (&'static str, KafkaError)> {
        if positions.is_empty() {
            return Ok(());
        }
        let group = group.ok_or((
            "sending the offsets of",
            // (The consumer is in no group: it has no generation to fence zombies with.)
            KafkaError::Global(rdkafka::types::RDKafkaErrorCode::State),
        ))?;
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in positions {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(|e| ("sending the offsets of", e))?;
        }
        retried(|| {
            self.producer
                .send_offsets_to_transaction(&list, &group, CALL_TIMEOUT)
        })
        .map_err(|e| ("sending the offsets of", e))
    }

    /// A commit failed with `err`: fenced when it is fatal, else aborted.
    fn fail(&self, what: &str, err: &KafkaError) -> Ended {
        if is_fatal(err) {
            self.fence(what);
            self.metrics.transaction(false, Duration::ZERO);
            return Ended::Fenced;
        }
        self.abort_and_begin(what)
    }

    fn abort_and_begin(&self, why: &str) -> Ended {
        tracing::warn!(transactional_id = %self.id, "{why}: aborting the transaction; its records are never visible to read_committed readers and its messages are processed again from the committed offsets");
        self.metrics.transaction(false, Duration::ZERO);
        self.rewind.store(true, Ordering::SeqCst);
        if let Err(err) = retried(|| self.producer.abort_transaction(CALL_TIMEOUT)) {
            self.fence(&format!("aborting the transaction failed: {err}"));
            return Ended::Fenced;
        }
        match self.next() {
            Ok(()) => Ended::Aborted,
            Err(()) => Ended::Fenced,
        }
    }

    /// Begins the next transaction.
    fn next(&self) -> std::result::Result<(), ()> {
        *self.open() = Open::default();
        self.producer.begin_transaction().map_err(|err| {
            self.fence(&format!("beginning a transaction failed: {err}"));
        })
    }

    fn is_fenced(&self) -> bool {
        self.fenced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn fence(&self, why: &str) {
        tracing::error!(transactional_id = %self.id, "{why}: the producer commits nothing more; the service stops");
        self.fenced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| why.to_owned());
    }
}

/// Makes `call` again while it fails with a retriable error (at most [`CALL_TRIES`] times).
fn retried(
    mut call: impl FnMut() -> rdkafka::error::KafkaResult<()>,
) -> rdkafka::error::KafkaResult<()> {
    let mut tries = 1;
    loop {
        match call() {
            Err(KafkaError::Transaction(err)) if err.is_retriable() && tries < CALL_TRIES => {
                tries += 1;
                tracing::debug!("transaction call failed, trying again: {err}");
            }
            other => return other,
        }
    }
}

/// Whether `err` leaves the producer unable to go on (fenced by a newer producer with the same
/// transactional id, or a fatal librdkafka error).
fn is_fatal(err: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    match err {
        KafkaError::Transaction(err) => {
            err.is_fatal() || matches!(err.code(), Code::ProducerFenced | Code::Fenced)
        }
        other => matches!(
            other.rdkafka_error_code(),
            Some(Code::ProducerFenced | Code::Fenced | Code::Fatal)
        ),
    }
}
