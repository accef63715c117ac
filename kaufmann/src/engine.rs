//! The engine: poll -> admit (at most `demand` in flight) -> lanes (ordering) -> decode, dispatch,
//! retry, dead-letter -> offset tracker -> commits.
//!
//! The poll loop takes a message only when the pool has a slot; librdkafka's own prefetch queue
//! (kept near `demand` messages per partition) buffers the rest. When the pool stays full for
//! `STALL`, the loop pauses the assigned partitions (librdkafka then drops what it prefetched and
//! resumes from the last message handed out) and keeps polling, so rebalances and
//! `max.poll.interval.ms` are served however slow the handlers are. The few messages that arrive
//! between "full" and "paused" wait in `held`, outside the pool, until slots free up.

use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as Atomic};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::config::{Config, Unhandled, WireFormat};
use crate::envelope::{Metadata, Origin};
use crate::error::{CodecError, Error, RegistryError, Result};
use crate::error_event;
use crate::handler::{HandlerTable, Incoming};
use crate::kaufmann_ex;
use crate::metrics::{Metrics, Outcome};
use crate::offsets::OffsetTracker;
use crate::ordering::{Lane, Lanes};
use crate::publisher::{Context, Outgoing, Publisher, Route};
use crate::registry::{RegisteredSchema, SchemaRegistry};
use crate::schema::wire;
use crate::trace::{TraceParent, TRACEPARENT};

/// Counters and gauges of a running service.
#[derive(Debug, Default)]
pub struct Stats {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    handled: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    unhandled: AtomicU64,
    rebalances: AtomicU64,
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

    fn started(&self) {
        let now = self.in_flight.fetch_add(1, Atomic::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Atomic::SeqCst);
    }
}

/// A fetched message, detached from the consumer.
struct Job {
    origin: Origin,
    value: Option<Vec<u8>>,
    headers: Option<OwnedHeaders>,
}

/// State shared by the poll loop, the workers and the rebalance callback.
pub(crate) struct Shared {
    tracker: Mutex<OffsetTracker>,
    held: Mutex<VecDeque<Job>>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) metrics: Arc<Metrics>,
    revoke_timeout: Duration,
}

impl Shared {
    pub(crate) fn new(
        stats: Arc<Stats>,
        metrics: Arc<Metrics>,
        revoke_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            tracker: Mutex::default(),
            held: Mutex::default(),
            stats,
            metrics,
            revoke_timeout,
        })
    }

    fn tracker(&self) -> MutexGuard<'_, OffsetTracker> {
        self.tracker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn held(&self) -> MutexGuard<'_, VecDeque<Job>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits the position of every partition that moved (all of them, or only `only`).
    fn commit<C: Consumer<X>, X: ConsumerContext>(
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
        self.shared.stats.rebalances.fetch_add(1, Atomic::SeqCst);
        let revoked: Vec<(String, i32)> = list
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        tracing::info!(partitions = ?revoked, "partitions revoked: finishing their in-flight messages");
        let deadline = Instant::now() + self.shared.revoke_timeout;
        loop {
            let held: Vec<(String, i32)> = self
                .shared
                .held()
                .iter()
                .map(|j| (j.origin.topic.clone(), j.origin.partition))
                .collect();
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
        self.shared
            .held()
            .retain(|j| !revoked.contains(&(j.origin.topic.clone(), j.origin.partition)));
        self.shared
            .commit(consumer, CommitMode::Sync, Some(&revoked));
        let mut tracker = self.shared.tracker();
        for (topic, partition) in &revoked {
            tracker.forget(topic, *partition);
            self.shared.metrics.forget_lag(topic, *partition);
        }
        self.shared.metrics.set_assigned(0);
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.shared.stats.rebalances.fetch_add(1, Atomic::SeqCst);
            self.shared
                .metrics
                .set_assigned(u64::try_from(list.count()).unwrap_or(u64::MAX));
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

/// How long the pool may stay full before the consumer pauses its partitions and goes on polling
/// (for rebalances and `max.poll.interval.ms`) without taking messages.
const STALL: Duration = Duration::from_millis(500);

/// Finds writer schemas by id, asking the registry once per id. Entries are shared, so a hit
/// costs one reference count, not a copy of the subject and schema handles.
struct Decoder {
    registry: Arc<dyn SchemaRegistry>,
    cache: Mutex<std::collections::HashMap<u32, Arc<RegisteredSchema>>>,
    /// `kaufmann_ex`: the latest schema of each subject, and when it was fetched.
    latest: Mutex<std::collections::HashMap<String, (Instant, Arc<RegisteredSchema>)>>,
}

/// How long the latest schema of a subject is trusted (`kaufmann_ex` messages name no schema
/// id, so a new version is seen when this passes).
const LATEST_TTL: Duration = Duration::from_secs(30);

impl Decoder {
    async fn writer(&self, id: u32) -> Result<Arc<RegisteredSchema>> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        if let Some(found) = cached {
            return Ok(found);
        }
        let found = Arc::new(self.registry.schema_by_id(id).await?);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, found.clone());
        Ok(found)
    }

    /// The latest schema of `subject` (for `kaufmann_ex` messages), asked for again after
    /// [`LATEST_TTL`].
    async fn latest(&self, subject: &str) -> Result<Arc<RegisteredSchema>> {
        let cached = self
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(subject)
            .filter(|(at, _)| at.elapsed() < LATEST_TTL)
            .map(|(_, found)| found.clone());
        if let Some(found) = cached {
            return Ok(found);
        }
        let latest = self.registry.latest(subject).await?;
        let found = Arc::new(RegisteredSchema::new(latest.id, subject, latest.schema));
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(subject.to_owned(), (Instant::now(), found.clone()));
        Ok(found)
    }
}

pub(crate) struct Engine {
    consumer: Arc<EngineConsumer>,
    shared: Arc<Shared>,
    handlers: HandlerTable,
    decoder: Decoder,
    publisher: Publisher,
    semaphore: Arc<Semaphore>,
    lanes: Arc<Lanes<Lane, (Job, OwnedSemaphorePermit)>>,
    config: Config,
}

/// A failure retrying cannot help.
fn permanent(kind: &'static str, error: &dyn std::fmt::Display) -> Failure {
    Failure::Permanent {
        kind,
        error: error.to_string(),
    }
}

/// A message's writer schema, schema id (0 for `kaufmann_ex`) and, for `kaufmann_ex`, its decoded
/// payload.
type Writer = (
    Arc<RegisteredSchema>,
    u32,
    Option<apache_avro::types::Value>,
);

/// How one attempt ended, when it did not succeed.
enum Failure {
    /// Worth retrying: the handler failed, panicked or timed out; or the registry did not answer.
    Transient { kind: &'static str, error: String },
    /// Retrying cannot help: the bytes are not a Kaufmann message, or no handler exists.
    Permanent { kind: &'static str, error: String },
}

impl Engine {
    pub(crate) fn new(
        consumer: Arc<EngineConsumer>,
        shared: Arc<Shared>,
        handlers: HandlerTable,
        registry: Arc<dyn SchemaRegistry>,
        publisher: Publisher,
        config: Config,
    ) -> Self {
        Self {
            consumer,
            shared,
            handlers,
            decoder: Decoder {
                registry,
                cache: Mutex::default(),
                latest: Mutex::default(),
            },
            publisher,
            semaphore: Arc::new(Semaphore::new(config.demand)),
            lanes: Lanes::new(),
            config,
        }
    }

    pub(crate) async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let engine = Arc::new(self);
        let mut commit_tick = tokio::time::interval(engine.config.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Normal mode: take a slot, then poll one message. Stalled mode (the pool stayed full for
        // `STALL`): partitions paused, polling goes on, stray messages wait in `held`.
        let mut slot: Option<OwnedSemaphorePermit> = None;
        let mut paused: HashSet<(String, i32)> = HashSet::new();
        let mut progress = tokio::time::Instant::now();
        loop {
            let stalled = !paused.is_empty() || !engine.shared.held().is_empty();
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = commit_tick.tick() => engine.shared.commit(&*engine.consumer, CommitMode::Async, None),
                permit = engine.semaphore.clone().acquire_owned(), if slot.is_none() && !stalled => {
                    let Ok(permit) = permit else { break };
                    slot = Some(permit);
                    progress = tokio::time::Instant::now();
                }
                () = tokio::time::sleep_until(progress + STALL), if slot.is_none() && !stalled => {
                    engine.pause(&mut paused);
                }
                permit = engine.room(), if stalled => {
                    let Ok(permit) = permit else { break };
                    let next = engine.shared.held().pop_front();
                    if let Some(job) = next {
                        engine.admit(job, permit);
                    } else {
                        drop(permit);
                        engine.resume(&mut paused);
                        progress = tokio::time::Instant::now();
                    }
                }
                received = engine.consumer.recv(), if slot.is_some() || stalled => match received {
                    Ok(message) => {
                        let job = detach(&message);
                        drop(message);
                        engine.shared.tracker().fetched(&job.origin.topic, job.origin.partition, job.origin.offset);
                        if let Some(permit) = slot.take() {
                            engine.admit(job, permit);
                            // The stall clock starts when the next slot is asked for, not at the
                            // last slot (an idle topic is not a full pool).
                            progress = tokio::time::Instant::now();
                        } else {
                            let tp = (job.origin.topic.clone(), job.origin.partition);
                            engine.shared.held().push_back(job);
                            if !paused.contains(&tp) {
                                engine.pause(&mut paused);
                            }
                        }
                    }
                    Err(err) => tracing::warn!("kafka consumer error (retrying): {err}"),
                },
            }
        }
        drop(slot);
        engine.drain().await;
        Ok(())
    }

    /// Waits for room in the pool: one slot for the next held message; with nothing held, half
    /// the pool (so that a resume fetches a batch, instead of pausing again after one message).
    async fn room(&self) -> Result<OwnedSemaphorePermit, tokio::sync::AcquireError> {
        let wanted = if self.shared.held().is_empty() {
            u32::try_from(self.config.demand.div_ceil(2)).unwrap_or(u32::MAX)
        } else {
            1
        };
        self.semaphore.clone().acquire_many_owned(wanted).await
    }

    fn pause(&self, paused: &mut HashSet<(String, i32)>) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        if let Err(err) = self.consumer.pause(&assignment) {
            tracing::warn!("could not pause partitions: {err}");
            return;
        }
        paused.extend(
            assignment
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition())),
        );
        tracing::debug!(demand = self.config.demand, "pool full: partitions paused");
    }

    fn resume(&self, paused: &mut HashSet<(String, i32)>) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        if let Err(err) = self.consumer.resume(&assignment) {
            tracing::warn!("could not resume partitions: {err}");
            return;
        }
        paused.clear();
        tracing::debug!("pool has room: partitions resumed");
    }

    fn admit(self: &Arc<Self>, job: Job, permit: OwnedSemaphorePermit) {
        self.shared.stats.started();
        let lane = self.config.ordering.lane(
            &job.origin.topic,
            job.origin.partition,
            job.origin.key.as_deref(),
        );
        let engine = Arc::clone(self);
        self.lanes
            .submit(lane, (job, permit), move |(job, permit)| {
                let engine = Arc::clone(&engine);
                async move {
                    let origin = job.origin.clone();
                    engine.process(job).await;
                    engine.shared.tracker().finished(
                        &origin.topic,
                        origin.partition,
                        origin.offset,
                    );
                    engine.shared.stats.in_flight.fetch_sub(1, Atomic::SeqCst);
                    drop(permit);
                }
            });
    }

    /// Waits (bounded) for in-flight messages, commits what finished and leaves the group.
    async fn drain(&self) {
        let limit = self.config.shutdown_timeout;
        let all = u32::try_from(self.config.demand).unwrap_or(u32::MAX);
        if tokio::time::timeout(limit, self.semaphore.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.shared.stats.in_flight(),
                "shutdown timeout ({limit:?}) passed with messages in flight; they are not committed and will be delivered again"
            );
        }
        self.shared.held().clear();
        self.shared.commit(&*self.consumer, CommitMode::Sync, None);
        self.consumer.unsubscribe();
        let stats = &self.shared.stats;
        tracing::info!(
            handled = stats.handled(),
            failed = stats.failed(),
            dead_lettered = stats.dead_lettered(),
            "service stopped"
        );
    }

    /// Runs one message through decode and handler with the error policy; never fails.
    async fn process(&self, job: Job) {
        let meta = Metadata::from_headers(job.headers.as_ref());
        let trace = job
            .headers
            .as_ref()
            .and_then(|hs| hs.iter().find(|h| h.key == TRACEPARENT))
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(TraceParent::parse);
        let span = tracing::info_span!(
            "message",
            event = %meta.message_name,
            topic = %job.origin.topic,
            partition = job.origin.partition,
            offset = job.origin.offset,
            message_id = %meta.message_id,
            trace_id = tracing::field::Empty,
            attempt = tracing::field::Empty,
        );
        if let (Some(trace), false) = (trace, span.is_disabled()) {
            span.record("trace_id", trace.trace_id_hex());
        }
        self.process_traced(job, meta, trace).instrument(span).await;
    }

    async fn process_traced(&self, job: Job, mut meta: Metadata, trace: Option<TraceParent>) {
        self.shared
            .metrics
            .record(&meta.message_name, Outcome::Consumed);
        let mut attempt = 0_u32;
        let failure = loop {
            attempt += 1;
            tracing::Span::current().record("attempt", attempt);
            let policy = self.config.error_policy(&meta.message_name);
            let run = AssertUnwindSafe(self.dispatch(&job, &mut meta, trace)).catch_unwind();
            let outcome = match tokio::time::timeout(policy.handler_timeout, run).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(panic)) => Err(Failure::Transient {
                    kind: "panic",
                    error: panic_message(&*panic),
                }),
                Err(_) => Err(Failure::Transient {
                    kind: "timeout",
                    error: format!("handler did not finish within {:?}", policy.handler_timeout),
                }),
            };
            match outcome {
                Ok(()) => return,
                Err(Failure::Permanent { kind, error }) => break (kind, error),
                Err(Failure::Transient { kind, error }) => {
                    match policy.retry.backoff(attempt + 1) {
                        Some(wait) => {
                            self.shared.stats.retried.fetch_add(1, Atomic::SeqCst);
                            self.shared
                                .metrics
                                .record(&meta.message_name, Outcome::Retried);
                            tracing::warn!(at = %place(&job.origin), event = %meta.message_name, attempt, "{kind}: {error}; retrying in {wait:?}");
                            tokio::time::sleep(wait).await;
                        }
                        None => break (kind, error),
                    }
                }
            }
        };
        self.give_up(&job, &meta, attempt, failure).await;
    }

    /// Decodes and runs the handler once. Completes `known` (the metadata from the headers) with
    /// what the message itself says (event name, `kaufmann_ex` metadata).
    async fn dispatch(
        &self,
        job: &Job,
        known: &mut Metadata,
        trace: Option<TraceParent>,
    ) -> Result<(), Failure> {
        let value = job
            .value
            .clone()
            .ok_or_else(|| permanent("decode", &CodecError::NoPayload))?;
        let (writer, schema_id, payload) = self.writer_for(job, &value, known).await?;
        let meta = known.clone();
        let event = &known.message_name;
        let Some(handler) = self.handlers.get(&meta.message_name) else {
            self.shared.stats.unhandled.fetch_add(1, Atomic::SeqCst);
            return match self.config.unhandled {
                Unhandled::Commit => {
                    tracing::debug!(event = %meta.message_name, "no handler for this event: committed without handling");
                    Ok(())
                }
                Unhandled::DeadLetter => Err(permanent(
                    "unhandled",
                    &format_args!("no handler for event `{}`", meta.message_name),
                )),
            };
        };
        let context = Context::new(self.publisher.clone(), &meta, job.origin.clone(), trace);
        let incoming = Incoming {
            resolve: !handler.reads_as_written(&writer.canonical),
            writer: Arc::clone(&writer.schema),
            schema_id,
            value,
            payload,
            meta,
            origin: job.origin.clone(),
        };
        let started = Instant::now();
        match (handler.call)(incoming, context).await {
            Ok(()) => {
                self.shared.stats.handled.fetch_add(1, Atomic::SeqCst);
                self.shared
                    .metrics
                    .record(event, Outcome::Handled(started.elapsed()));
                Ok(())
            }
            Err(err @ Error::Codec(_)) => Err(permanent("decode", &err)),
            Err(err) => Err(Failure::Transient {
                kind: "handler",
                error: err.to_string(),
            }),
        }
    }

    /// The writer schema of a message (and, for `kaufmann_ex`, its decoded payload), completing
    /// `known` with the event name and metadata the message carries.
    async fn writer_for(
        &self,
        job: &Job,
        value: &[u8],
        known: &mut Metadata,
    ) -> Result<Writer, Failure> {
        let registry_failure = |e: Error| match e {
            Error::Registry(
                RegistryError::SchemaNotFound { .. }
                | RegistryError::Unreachable { .. }
                | RegistryError::Server { .. },
            ) => Failure::Transient {
                kind: "registry",
                error: e.to_string(),
            },
            other => permanent("registry", &other),
        };
        if self.config.wire_format == WireFormat::KaufmannEx {
            let key = job
                .origin
                .key
                .as_deref()
                .and_then(|k| std::str::from_utf8(k).ok())
                .ok_or_else(|| {
                    permanent(
                        "decode",
                        &"a kaufmann_ex message carries its event name as the Kafka key, \
                              and this one has none",
                    )
                })?;
            let subject = kaufmann_ex::subject(key);
            let writer = self
                .decoder
                .latest(subject)
                .await
                .map_err(registry_failure)?;
            let (meta, payload) = kaufmann_ex::decode_parts(key, &writer.schema, value)
                .map_err(|e| permanent("decode", &e))?;
            *known = meta;
            if known.message_name.is_empty() {
                kaufmann_ex::event_name(key).clone_into(&mut known.message_name);
            }
            return Ok((writer, 0, Some(payload)));
        }
        let (schema_id, _) = wire::split(value).map_err(|e| permanent("decode", &e))?;
        let writer = self
            .decoder
            .writer(schema_id)
            .await
            .map_err(registry_failure)?;
        if known.message_name.is_empty() {
            writer
                .subject
                .trim_end_matches("-value")
                .clone_into(&mut known.message_name);
        }
        Ok((writer, schema_id, None))
    }

    /// The last resort: the dead-letter topic (retried until it succeeds), or a loud log.
    async fn give_up(
        &self,
        job: &Job,
        meta: &Metadata,
        attempts: u32,
        (kind, error): (&'static str, String),
    ) {
        let event = meta.message_name.as_str();
        self.shared.stats.failed.fetch_add(1, Atomic::SeqCst);
        self.shared.metrics.record(event, Outcome::Failed);
        if self.config.error_policy(event).error_events && !event.is_empty() {
            let failed = error_event::Failed {
                event,
                error: &error,
                kind,
                attempts,
                topic: &job.origin.topic,
                partition: job.origin.partition,
                offset: job.origin.offset,
                original: job.value.as_deref(),
            };
            self.publish_error_event(job, meta, &failed).await;
        }
        let origin = &job.origin;
        let place = place(origin);
        let Some(topic) = self
            .config
            .error_policy(event)
            .dead_letter_for(&origin.topic)
        else {
            tracing::error!(at = %place, event, attempts, "{kind}: {error}; no dead-letter topic is configured: logged and committed");
            return;
        };
        let headers = dead_letter_headers(job, event, attempts, kind, &error);
        let mut wait = Duration::from_millis(100);
        loop {
            let sent = self
                .publisher
                .send_raw(
                    &topic,
                    origin.key.as_deref(),
                    job.value.as_deref(),
                    headers.clone(),
                )
                .await;
            match sent {
                Ok(()) => break,
                Err(err) => {
                    tracing::error!(at = %place, "could not write to dead-letter topic `{topic}` (retrying in {wait:?}): {err}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
        self.shared.stats.dead_lettered.fetch_add(1, Atomic::SeqCst);
        self.shared.metrics.record(event, Outcome::DeadLettered);
        tracing::error!(at = %place, event, attempts, dead_letter_topic = %topic, "{kind}: {error}; sent to the dead-letter topic");
    }
}

impl Engine {
    /// Publishes `event.error.<event>` to the default topic and to the event's callback topic,
    /// when it names one; a failure to publish is logged (the dead-letter topic keeps the record).
    async fn publish_error_event(
        &self,
        job: &Job,
        meta: &Metadata,
        failed: &error_event::Failed<'_>,
    ) {
        let format = self.config.wire_format;
        let (schema, schema_json) = error_event::schema(format);
        let name = error_event::name(failed.event);
        let callback = meta
            .callback_topic
            .as_ref()
            .and_then(|c| c.topic.as_deref().map(|t| (t, c.partition)));
        let targets = std::iter::once((None, None)).chain(
            callback
                .into_iter()
                .map(|(topic, partition)| (Some(topic), partition)),
        );
        for (topic, partition) in targets {
            let outgoing = Outgoing {
                event: &name,
                schema,
                schema_json,
                value: error_event::value(format, failed),
            };
            let route = Route {
                topic,
                partition,
                key: job.origin.key.as_deref(),
                callback_id: Some(meta.message_id.clone()),
                callback_topic: None,
                headers: &[],
                trace: None,
            };
            match self.publisher.publish_routed(outgoing, route).await {
                Ok(sent) => {
                    tracing::info!(error_event = %name, message_id = %sent.message_id, topic = ?topic, "error event published");
                }
                Err(err) => {
                    tracing::error!(error_event = %name, "could not publish the error event: {err}");
                }
            }
        }
    }
}

/// Header names Kaufmann adds to a dead-lettered record.
pub mod dead_letter {
    /// The error message.
    pub const ERROR: &str = "kaufmann.error";
    /// `handler`, `panic`, `timeout`, `decode`, `registry` or `unhandled`.
    pub const ERROR_KIND: &str = "kaufmann.error.kind";
    /// The event name, when known.
    pub const EVENT: &str = "kaufmann.event";
    /// The topic the record was read from.
    pub const SOURCE_TOPIC: &str = "kaufmann.source.topic";
    /// Its partition.
    pub const SOURCE_PARTITION: &str = "kaufmann.source.partition";
    /// Its offset.
    pub const SOURCE_OFFSET: &str = "kaufmann.source.offset";
    /// How many attempts were made.
    pub const ATTEMPTS: &str = "kaufmann.attempts";
}

fn dead_letter_headers(
    job: &Job,
    event: &str,
    attempts: u32,
    kind: &str,
    error: &str,
) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = &job.headers {
        for h in original.iter() {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let (partition, offset, attempts) = (
        job.origin.partition.to_string(),
        job.origin.offset.to_string(),
        attempts.to_string(),
    );
    let added = [
        (dead_letter::ERROR, error),
        (dead_letter::ERROR_KIND, kind),
        (dead_letter::EVENT, event),
        (dead_letter::SOURCE_TOPIC, job.origin.topic.as_str()),
        (dead_letter::SOURCE_PARTITION, partition.as_str()),
        (dead_letter::SOURCE_OFFSET, offset.as_str()),
        (dead_letter::ATTEMPTS, attempts.as_str()),
    ];
    for (key, value) in added {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}

/// `topic[partition]@offset`, for logs.
fn place(origin: &Origin) -> String {
    format!("{}[{}]@{}", origin.topic, origin.partition, origin.offset)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .map_or_else(
            || "handler panicked".to_owned(),
            |m| format!("handler panicked: {m}"),
        )
}

fn detach(message: &BorrowedMessage<'_>) -> Job {
    Job {
        origin: Origin {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
        },
        value: message.payload().map(<[u8]>::to_vec),
        headers: message
            .headers()
            .map(rdkafka::message::BorrowedHeaders::detach),
    }
}
