//! The engine: poll -> admit (at most `demand` in flight) -> lanes (ordering) -> decode, dispatch,
//! retry, dead-letter -> offset tracker -> commits.
//!
//! The poll loop takes a message only when the pool has a slot; librdkafka's own prefetch queue
//! (a few MB for all partitions, see `service.rs`) buffers the rest. When the pool stays full for
//! `STALL`, the loop pauses the assigned partitions (librdkafka then drops what it prefetched and
//! resumes from the last message handed out) and keeps polling, so rebalances and
//! `max.poll.interval.ms` are served however slow the handlers are. The few messages that arrive
//! between "full" and "paused" wait in `held`, outside the pool, until slots free up.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, MessageStream};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::Offset;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::consume::batching::Batches;
use crate::consume::context::{EngineConsumer, EngineContext, Shared};
use crate::consume::ordering::{Lane, Lanes};
use crate::consume::transactions::Transactions;
use crate::envelope::header;
use crate::error::{Error, Result};
use crate::process::handler::HandlerTable;
use crate::process::message::{place, Job, RecordHeaders, Source};
use crate::process::processor::{Processor, Unconfirmed};
use crate::process::retry_topic;
use crate::process::state::States;
use crate::publish::publisher::Publisher;
use crate::registry::SchemaRegistry;

/// The task that probes the dependencies ([`Engine::probe_dependencies`]); aborted when dropped.
struct Probes {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Probes {
    fn start(engine: Arc<Engine>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(engine.probe_dependencies(stopped));
        Self { stop, task }
    }

    /// Stops the probes between two probes and waits until the task is gone, with what it
    /// holds. An abort would not do: the broker's probe runs on a blocking thread, which goes on
    /// holding the consumer until it returns (up to [`PROBE_TIMEOUT`]).
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        let limit = PROBE_TIMEOUT * 2 + PROBE_DOWN;
        if tokio::time::timeout(limit, &mut self.task).await.is_err() {
            self.task.abort();
            let _ = (&mut self.task).await;
        }
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How many messages one wake-up of the poll loop takes at most from what librdkafka already
/// holds, before it looks at shutdown and the commit timer again.
const READY_BATCH: usize = 32;

/// How often a dependency that is up is asked whether it still answers.
const PROBE_UP: Duration = Duration::from_secs(10);
/// How often a dependency that is down is asked whether it answers again.
const PROBE_DOWN: Duration = Duration::from_secs(1);
/// The time one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the pool may stay full before the consumer pauses its partitions and goes on polling
/// (for rebalances and `max.poll.interval.ms`) without taking messages.
const STALL: Duration = Duration::from_millis(500);

/// How often, at most, the poll loop looks whether the open transaction is due when no message
/// wakes it.
const TRANSACTION_TICK: Duration = Duration::from_millis(50);

pub(crate) struct Engine {
    consumer: Arc<EngineConsumer>,
    shared: Arc<Shared>,
    processor: Processor,
    semaphore: Arc<Semaphore>,
    lanes: Arc<Lanes<Lane, (Job, OwnedSemaphorePermit)>>,
    config: Config,
    /// The messages of batch handlers, collected per partition; `None` without batch handlers.
    batches: Option<Arc<Batches<Lane, (Job, OwnedSemaphorePermit)>>>,
    /// The events batch handlers serve (few: compared byte by byte with each message's).
    batch_events: Vec<&'static str>,
    /// The retry topics consumed: their records wait until they are due.
    retry_topics: Vec<String>,
    /// The timers of records that wait until they are due (aborted at shutdown).
    delayed: std::sync::Mutex<tokio::task::JoinSet<()>>,
    /// Under `publish_confirm = "before_commit"` or exactly once: the messages whose handlers
    /// returned and whose events are not acknowledged yet, at most [`UNCONFIRMED_PER_SLOT`] ×
    /// `demand`.
    unconfirmed: Arc<Semaphore>,
    /// Where those messages go, in the order their handlers returned, to the one task that
    /// waits for their acknowledgements (started with the first; see [`Engine::confirm_later`]).
    confirmer: std::sync::OnceLock<mpsc::UnboundedSender<Confirmation>>,
}

/// A message waiting for the acknowledgements of its events, with its room among those waiting.
type Confirmation = (Job, Box<Unconfirmed>, OwnedSemaphorePermit);

/// How many messages waiting for their events' acknowledgements (`publish_confirm =
/// "before_commit"`, exactly once) there may be per slot of the pool: a produce round trip is
/// about a hundred handler runs of a handler that waits for nothing else.
const UNCONFIRMED_PER_SLOT: usize = 100;

/// How many messages may wait for acknowledgements at `demand`.
fn unconfirmed_places(demand: usize) -> usize {
    demand.saturating_mul(UNCONFIRMED_PER_SLOT)
}

/// How long a message's first steps may take on the poll loop before messages go straight to
/// tasks of their own (see [`Inline`]).
const INLINE_LIMIT: Duration = Duration::from_micros(200);
/// How long messages go straight to tasks after a first step took longer than [`INLINE_LIMIT`].
const INLINE_PAUSE: Duration = Duration::from_secs(1);
/// One message in this many has its inline first step timed.
const INLINE_SAMPLE: u32 = 16;
/// How many timed first steps in a row must take longer than [`INLINE_LIMIT`]: one alone may have
/// been a thread preempted by the operating system, not a slow handler.
const INLINE_STRIKES: u32 = 3;

/// Whether a message's first steps run inline on the poll loop.
///
/// A message is first polled on the poll loop: a handler that finishes without waiting then costs
/// no task, no wake-up and no thread switch, and a handler that waits goes on in a task of its own.
/// A handler that computes for long before it first waits would hold up the poll loop and run
/// one at a time, so when [`INLINE_STRIKES`] sampled first steps in a row take longer than
/// [`INLINE_LIMIT`], messages go straight to tasks (in parallel on the runtime's threads) for
/// [`INLINE_PAUSE`].
#[derive(Debug, Default)]
struct Inline {
    counter: u32,
    strikes: u32,
    off_until: Option<Instant>,
}

impl Inline {
    /// Runs `submit` (told whether to poll inline), timing one call in [`INLINE_SAMPLE`].
    fn run(&mut self, submit: impl FnOnce(bool)) {
        if let Some(until) = self.off_until {
            if Instant::now() < until {
                submit(false);
                return;
            }
            self.off_until = None;
        }
        self.counter = self.counter.wrapping_add(1);
        if self.counter % INLINE_SAMPLE != 0 {
            submit(true);
            return;
        }
        let started = Instant::now();
        submit(true);
        if started.elapsed() <= INLINE_LIMIT {
            self.strikes = 0;
            return;
        }
        self.strikes += 1;
        if self.strikes >= INLINE_STRIKES {
            self.strikes = 0;
            tracing::debug!(limit = ?INLINE_LIMIT, "handlers' first steps take long: messages go to tasks for {INLINE_PAUSE:?}");
            self.off_until = Some(Instant::now() + INLINE_PAUSE);
        }
    }
}

/// What the poll loop does after its transaction step.
enum Turn {
    /// Go on with the round.
    Go,
    /// Start the next round.
    Again,
    /// Stop (with the error the service stops with, if any).
    Stop(Option<Error>),
}

/// The poll loop's own state.
#[derive(Debug)]
struct PollState {
    /// A pool slot taken for the next message.
    slot: Option<OwnedSemaphorePermit>,
    /// Partitions paused because the pool stayed full.
    paused: HashSet<(String, i32)>,
    /// Since when the loop has waited for a slot, while it waits.
    waiting_since: Option<tokio::time::Instant>,
    inline: Inline,
    /// The names of the topics messages came from, shared by their jobs (one copy per topic).
    topics: Vec<Arc<str>>,
}

impl Engine {
    pub(crate) fn new(
        consumer: Arc<EngineConsumer>,
        shared: Arc<Shared>,
        handlers: HandlerTable,
        registry: Arc<dyn SchemaRegistry>,
        publisher: Publisher,
        config: Config,
        states: States,
    ) -> Self {
        let batch_events = handlers.batch_events();
        let batches = (!batch_events.is_empty())
            .then(|| Arc::new(Batches::new(config.batch_max, config.batch_linger)));
        let processor = Processor::new(
            shared.metrics.clone(),
            handlers,
            registry,
            publisher,
            config.clone(),
            states,
        );
        Self {
            consumer,
            shared,
            processor,
            semaphore: Arc::new(Semaphore::new(config.demand)),
            lanes: Arc::default(),
            batches,
            batch_events,
            retry_topics: config.retry_topics(),
            unconfirmed: Arc::new(Semaphore::new(unconfirmed_places(config.demand))),
            config,
            delayed: std::sync::Mutex::default(),
            confirmer: std::sync::OnceLock::new(),
        }
    }

    pub(crate) async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let engine = Arc::new(self);
        let transactional = engine.start_transactions().await?;
        // The first consumer probes the dependencies for the whole service.
        let probes = (engine.shared.consumer == 0).then(|| Probes::start(Arc::clone(&engine)));
        // Under `exactly_once` the tick looks whether the open transaction is due.
        let tick = if transactional {
            engine.config.transaction_interval.min(TRANSACTION_TICK)
        } else {
            engine.config.commit_interval
        };
        let mut commit_tick = tokio::time::interval(tick);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Normal mode: take a slot, then poll one message. Stalled mode (the pool stayed full for
        // `STALL`): partitions paused, polling goes on, stray messages wait in `held`.
        let mut state = PollState {
            slot: None,
            paused: HashSet::new(),
            waiting_since: None,
            inline: Inline::default(),
            topics: Vec::new(),
        };
        // One message stream and one shutdown future for the whole loop (`recv()` and
        // `changed()` would register and drop a waker for every message).
        let consumer = Arc::clone(&engine.consumer);
        let mut messages = consumer.stream();
        let mut stop = std::pin::pin!(shutdown.changed());
        let mut fenced = None;
        loop {
            match engine.transaction_turn(&mut state).await {
                Turn::Go => {}
                Turn::Again => continue,
                Turn::Stop(err) => {
                    fenced = err;
                    break;
                }
            }
            let stalled = !state.paused.is_empty() || !engine.shared.held().is_empty();
            // Fast path: a free slot is taken without a round through `select!` (which builds
            // every branch's future, the stall timer included, each time).
            if state.slot.is_none() && !stalled {
                match engine.semaphore.clone().try_acquire_owned() {
                    Ok(permit) => {
                        state.slot = Some(permit);
                        state.waiting_since = None;
                    }
                    // The stall clock starts when a slot is first waited for, not at the last
                    // message (an idle topic is not a full pool).
                    Err(_) => {
                        state
                            .waiting_since
                            .get_or_insert_with(tokio::time::Instant::now);
                    }
                }
            }
            if state.slot.is_some() && !stalled {
                // The common case: a slot is held, wait for the next message (and nothing else
                // but shutdown and the commit tick).
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    _ = commit_tick.tick() => engine.tick(),
                    Some(received) = messages.next() => {
                        engine.take(received, &mut state);
                        engine.take_ready(&mut messages, &mut state);
                    }
                }
                continue;
            }
            let waiting = state.slot.is_none() && !stalled;
            tokio::select! {
                biased;
                _ = &mut stop => break,
                _ = commit_tick.tick() => engine.tick(),
                permit = engine.semaphore.clone().acquire_owned(), if waiting => {
                    let Ok(permit) = permit else { break };
                    state.slot = Some(permit);
                    state.waiting_since = None;
                }
                () = tokio::time::sleep_until(state.waiting_since.unwrap_or_else(tokio::time::Instant::now) + STALL), if waiting => {
                    engine.pause(&mut state.paused);
                    state.waiting_since = None;
                }
                permit = engine.room(), if stalled => {
                    let Ok(permit) = permit else { break };
                    let next = engine.shared.held().pop_front();
                    if let Some(job) = next {
                        engine.admit(job, permit, &mut state.inline);
                    } else {
                        drop(permit);
                        engine.resume(&mut state.paused);
                    }
                }
                Some(received) = messages.next(), if !waiting => engine.take(received, &mut state),
            }
        }
        drop(state.slot);
        engine.drain(fenced.is_some()).await;
        // The probes hold the engine, and so the consumer and the producer: they end here, a
        // probe under way included, not later on another thread (the embedded broker stops once
        // the service ends, and clients still connected to it would log it as an outage).
        if let Some(probes) = probes {
            probes.stop().await;
        }
        fenced.map_or(Ok(()), Err)
    }

    /// Under `exactly_once`: registers the transactional producer and begins the first
    /// transaction; `false` at least once.
    async fn start_transactions(self: &Arc<Self>) -> Result<bool> {
        if self.shared.transactions().is_none() {
            return Ok(false);
        }
        let engine = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            engine
                .shared
                .transactions()
                .map_or(Ok(()), Transactions::start)
        })
        .await
        .map_err(|e| Error::Startup(format!("starting transactions failed: {e}")))??;
        Ok(true)
    }

    /// The poll loop's first step in each round under `exactly_once`: stop when the producer is
    /// fenced, rewind after an abort, commit the open transaction when it is due.
    async fn transaction_turn(self: &Arc<Self>, state: &mut PollState) -> Turn {
        let Some(transactions) = self.shared.transactions() else {
            return Turn::Go;
        };
        if let Some(err) = transactions.fenced() {
            return Turn::Stop(Some(err));
        }
        if transactions.needs_rewind() {
            drop(state.slot.take());
            let Ok(all) = self.whole_pool().await else {
                return Turn::Stop(None);
            };
            self.rewind(state).await;
            drop(all);
            return Turn::Again;
        }
        if transactions.due() {
            self.end_transaction(state).await;
            return Turn::Again;
        }
        Turn::Go
    }

    /// The commit timer: at least once, commits what finished; exactly once, the loop's next
    /// round looks whether the open transaction is due.
    fn tick(&self) {
        if self.shared.transactions().is_none() {
            self.shared.commit(&*self.consumer, CommitMode::Async, None);
        }
    }

    /// Every slot of the pool, then every place among the messages waiting for
    /// acknowledgements: when this returns, no message is in flight or unconfirmed, and none is
    /// admitted until the permits are dropped. (In this order: a message leaves the pool only
    /// once it has its place among those waiting.)
    async fn whole_pool(&self) -> Result<[OwnedSemaphorePermit; 2], tokio::sync::AcquireError> {
        let all = |places: usize| u32::try_from(places).unwrap_or(u32::MAX);
        let pool = Arc::clone(&self.semaphore)
            .acquire_many_owned(all(self.config.demand))
            .await?;
        let waiting = Arc::clone(&self.unconfirmed)
            .acquire_many_owned(all(unconfirmed_places(self.config.demand)))
            .await?;
        Ok([pool, waiting])
    }

    /// Commits the open transaction: waits until no message is in flight (the poll loop takes
    /// none meanwhile), then commits every partition's position with what was published; a
    /// failed commit aborts and rewinds. Exactly once only.
    async fn end_transaction(self: &Arc<Self>, state: &mut PollState) {
        drop(state.slot.take());
        let Ok(all) = self.whole_pool().await else {
            return;
        };
        let engine = Arc::clone(self);
        let ended =
            tokio::task::spawn_blocking(move || engine.shared.end_transaction(&*engine.consumer))
                .await;
        if let Err(err) = ended {
            tracing::error!("committing the transaction failed: {err}");
        }
        if self
            .shared
            .transactions()
            .is_some_and(Transactions::needs_rewind)
        {
            self.rewind(state).await;
        }
        drop(all);
    }

    /// After an abort, with the whole pool held: drops what waits outside the pool, seeks every
    /// assigned partition back to its committed offset (the start, without one), forgets the
    /// offsets fetched and resumes the partitions. When the broker cannot say, the flag stays and
    /// the loop tries again.
    async fn rewind(self: &Arc<Self>, state: &mut PollState) {
        self.delayed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .abort_all();
        self.shared.drop_waiting();
        state.paused.clear();
        let engine = Arc::clone(self);
        let rewound = tokio::task::spawn_blocking(move || engine.seek_to_committed()).await;
        match rewound {
            Ok(Ok(partitions)) => {
                tracing::info!(
                    partitions,
                    "rewound to the committed offsets after an abort"
                );
                if let Some(transactions) = self.shared.transactions() {
                    transactions.rewound();
                }
            }
            Ok(Err(err)) => {
                tracing::warn!("rewinding to the committed offsets failed (trying again): {err}");
                tokio::time::sleep(PROBE_DOWN).await;
            }
            Err(err) => tracing::error!("rewinding to the committed offsets failed: {err}"),
        }
    }

    /// Seeks every assigned partition to its committed offset; returns how many. Blocks.
    fn seek_to_committed(&self) -> rdkafka::error::KafkaResult<usize> {
        let assignment = self.consumer.assignment()?;
        *self.shared.tracker() = crate::consume::offsets::OffsetTracker::default();
        if assignment.count() == 0 {
            return Ok(0);
        }
        let committed = self
            .consumer
            .committed_offsets(assignment.clone(), PROBE_TIMEOUT)?;
        let mut list = rdkafka::TopicPartitionList::new();
        for e in committed.elements() {
            let offset = match e.offset() {
                Offset::Offset(offset) => Offset::Offset(offset),
                // No committed offset: where `auto.offset.reset = earliest` started.
                _ => Offset::Beginning,
            };
            list.add_partition_offset(e.topic(), e.partition(), offset)?;
        }
        let sought = self.consumer.seek_partitions(list, PROBE_TIMEOUT)?;
        for e in sought.elements() {
            e.error()?;
        }
        self.consumer.resume(&assignment)?;
        Ok(assignment.count())
    }

    /// Asks the registry and the broker whether they answer: every [`PROBE_UP`] while they do,
    /// every [`PROBE_DOWN`] while they do not, so readiness follows an outage even when no message
    /// needs the dependency, and waiting messages go on as soon as it is back. Returns when
    /// `stop` changes, between two probes.
    async fn probe_dependencies(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let health = &self.shared.metrics.health;
        let mut last = [Instant::now(); 2];
        loop {
            tokio::select! {
                () = tokio::time::sleep(PROBE_DOWN) => {}
                _ = stop.changed() => return,
            }
            let due = |at: Instant, up: bool| !up || at.elapsed() >= PROBE_UP;
            if due(last[0], health.registry.is_up()) {
                last[0] = Instant::now();
                match tokio::time::timeout(PROBE_TIMEOUT, self.processor.registry().ping()).await {
                    Ok(Ok(())) => health.registry.set_up(),
                    Ok(Err(err)) => health.registry.set_down(&err.to_string()),
                    Err(_) => health
                        .registry
                        .set_down(&format!("no answer within {PROBE_TIMEOUT:?}")),
                }
            }
            if due(last[1], health.broker.is_up()) {
                last[1] = Instant::now();
                let consumer = Arc::clone(&self.consumer);
                let topic = self.config.topics.first().cloned();
                let asked = tokio::task::spawn_blocking(move || {
                    consumer
                        .fetch_metadata(topic.as_deref(), PROBE_TIMEOUT)
                        .map(drop)
                })
                .await;
                match asked {
                    Ok(Ok(())) => health.broker.set_up(),
                    Ok(Err(err)) => health.broker.set_down(&err.to_string()),
                    Err(err) => tracing::warn!("broker probe failed: {err}"),
                }
            }
        }
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

    /// A message from the consumer: admitted with the held slot, or held (and its partition
    /// paused) when the pool is stalled.
    fn take(
        self: &Arc<Self>,
        received: rdkafka::error::KafkaResult<BorrowedMessage<'_>>,
        state: &mut PollState,
    ) {
        let message = match received {
            Ok(message) => message,
            Err(err) => {
                self.consumer_error(&err);
                return;
            }
        };
        self.shared.metrics.health.message_received();
        if self
            .shared
            .transactions()
            .is_some_and(Transactions::needs_rewind)
        {
            // Read again after the rewind.
            return;
        }
        let job = detach(&message, &mut state.topics);
        drop(message);
        self.shared
            .tracker()
            .fetched(&job.origin.topic, job.origin.partition, job.origin.offset);
        if let Some(wait) = self.not_due(&job) {
            // (The slot stays for the next message.)
            self.delay(job, wait);
            return;
        }
        if let Some(permit) = state.slot.take() {
            self.admit(job, permit, &mut state.inline);
        } else {
            let tp = (job.origin.topic.to_string(), job.origin.partition);
            self.shared.held().push_back(job);
            if !state.paused.contains(&tp) {
                self.pause(&mut state.paused);
            }
        }
    }

    /// An error librdkafka gives in place of a message (a record it cannot decompress or parse,
    /// a partition it may not read): counted, readiness 503 until a message comes again, and
    /// logged at most once per `CONSUMER_ERROR_LOG` with the positions of the assigned
    /// partitions (rdkafka does not say which record it was; librdkafka tries it again).
    fn consumer_error(&self, err: &rdkafka::error::KafkaError) {
        let health = &self.shared.metrics.health;
        health.consumer_error(&err.to_string());
        let Some(since) = self
            .shared
            .consumer_error_log
            .admit(health.consumer_errors())
        else {
            return;
        };
        let positions = self.consumer.position().map_or_else(
            |e| format!("unknown ({e})"),
            |list| {
                list.elements()
                    .iter()
                    .map(|e| format!("{}[{}]@{:?}", e.topic(), e.partition(), e.offset()))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        tracing::error!(
            consumer_errors = health.consumer_errors(),
            "kafka consumer error in place of a record: {err}; positions: {positions}; \
             readiness answers 503 until records arrive again; {since} more since the last such \
             error"
        );
    }

    /// Takes the messages librdkafka already holds, while the pool has free slots (at most
    /// [`READY_BATCH`]), without a round through `select!` for each.
    fn take_ready(
        self: &Arc<Self>,
        messages: &mut MessageStream<'_, EngineContext>,
        state: &mut PollState,
    ) {
        for _ in 0..READY_BATCH {
            if state.slot.is_none() {
                match self.semaphore.clone().try_acquire_owned() {
                    Ok(permit) => state.slot = Some(permit),
                    Err(_) => return,
                }
            }
            match messages.next().now_or_never() {
                Some(Some(received)) => self.take(received, state),
                _ => return,
            }
        }
    }

    /// Whether `job` is for a batch handler, by the event its headers name (a message without
    /// the header runs alone, as a batch of one, once its event is known).
    fn for_a_batch(&self, job: &Job) -> bool {
        job.headers
            .byte_pairs()
            .find(|(key, _)| *key == header::MESSAGE_NAME.as_bytes())
            .and_then(|(_, value)| value)
            .is_some_and(|event| self.batch_events.iter().any(|e| e.as_bytes() == event))
    }

    /// How long until a record of a retry topic is due, when it is not due yet.
    fn not_due(&self, job: &Job) -> Option<Duration> {
        if self.retry_topics.is_empty()
            || !self.retry_topics.iter().any(|t| **t == *job.origin.topic)
        {
            return None;
        }
        let due = retry_topic::due(&job.headers)?;
        let now = retry_topic::now_ms();
        (due > now).then(|| Duration::from_millis(due - now))
    }

    /// Keeps a record of a retry topic until it is due, outside the pool, with its partition
    /// paused (the records behind it are due later still); then resumes the partition and admits
    /// it. Other partitions, the retry topics' own included, go on meanwhile.
    fn delay(self: &Arc<Self>, job: Job, wait: Duration) {
        let origin = &job.origin;
        let mut partition = rdkafka::TopicPartitionList::new();
        partition.add_partition(&origin.topic, origin.partition);
        if let Err(err) = self.consumer.pause(&partition) {
            tracing::warn!(at = %place(origin), "could not pause a retry topic's partition: {err}");
        }
        self.shared
            .delay(&origin.topic, origin.partition, origin.offset);
        tracing::debug!(at = %place(origin), "not due for {wait:?}: waiting");
        let engine = Arc::clone(self);
        let mut timers = self
            .delayed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while timers.try_join_next().is_some() {}
        timers.spawn(async move {
            tokio::time::sleep(wait).await;
            let origin = &job.origin;
            if !engine
                .shared
                .undelay(&origin.topic, origin.partition, origin.offset)
            {
                return;
            }
            if let Err(err) = engine.consumer.resume(&partition) {
                tracing::warn!(at = %place(origin), "could not resume a retry topic's partition: {err}");
            }
            let Ok(permit) = engine.semaphore.clone().acquire_owned().await else {
                return;
            };
            if let Some(transactions) = engine.shared.transactions() {
                if transactions.needs_rewind() {
                    // An abort came meanwhile: the rewind reads the record again.
                    return;
                }
                transactions.admitted();
            }
            engine.shared.metrics.started();
            // No lane: a record sent to a retry topic gave up its key's order.
            engine.submit(None, job, permit, false);
        });
    }

    fn admit(self: &Arc<Self>, job: Job, permit: OwnedSemaphorePermit, inline: &mut Inline) {
        if let Some(transactions) = self.shared.transactions() {
            transactions.admitted();
        }
        self.shared.metrics.started();
        if let Some(batches) = self.batches.as_ref().filter(|_| self.for_a_batch(&job)) {
            let lane = Lane::of_batch(&job.origin.topic, job.origin.partition);
            let engine = Arc::clone(self);
            batches.submit(lane, (job, permit), move |batch| {
                let engine = Arc::clone(&engine);
                Box::pin(async move {
                    let (jobs, permits): (Vec<Job>, Vec<OwnedSemaphorePermit>) =
                        batch.into_iter().unzip();
                    engine.processor.process_batch(&jobs).await;
                    let mut tracker = engine.shared.tracker();
                    for job in &jobs {
                        let origin = &job.origin;
                        tracker.finished(&origin.topic, origin.partition, origin.offset);
                        engine.shared.metrics.finished();
                    }
                    drop(tracker);
                    drop(permits);
                })
            });
            return;
        }
        let lane = Lane::of_message(
            self.config.ordering,
            &job.origin.topic,
            job.origin.partition,
            job.origin.key.as_deref(),
        );
        inline.run(|inline| self.submit(lane, job, permit, inline));
    }

    /// Runs `job` in its lane: processes it, then marks its offset finished and frees its slot.
    fn submit(
        self: &Arc<Self>,
        lane: Option<Lane>,
        job: Job,
        permit: OwnedSemaphorePermit,
        inline: bool,
    ) {
        let engine = Arc::clone(self);
        self.lanes
            .submit(lane, (job, permit), inline, move |(job, permit)| {
                // (An async block, not an async fn: it keeps one copy of the job, not two.)
                let engine = Arc::clone(&engine);
                Box::pin(async move {
                    if let Some(unconfirmed) = engine.processor.process(&job).await {
                        // Boxed, like the rare paths: every message's future stays small.
                        Box::pin(engine.confirm_later(job, unconfirmed, permit)).await;
                        return;
                    }
                    let origin = &job.origin;
                    engine.shared.tracker().finished(
                        &origin.topic,
                        origin.partition,
                        origin.offset,
                    );
                    engine.shared.metrics.finished();
                    drop(permit);
                })
            });
    }

    /// A message whose events are not acknowledged yet: once there is room among those waiting
    /// ([`UNCONFIRMED_PER_SLOT`] × `demand`; its lane waits for it), its pool slot is freed and it
    /// goes to the confirming task, which finishes its offset once they are acknowledged.
    async fn confirm_later(
        self: &Arc<Self>,
        job: Job,
        unconfirmed: Box<Unconfirmed>,
        permit: OwnedSemaphorePermit,
    ) {
        let Ok(waiting) = Arc::clone(&self.unconfirmed).acquire_owned().await else {
            return;
        };
        drop(permit);
        self.shared.metrics.awaits_confirmation();
        let confirmer = self.confirmer.get_or_init(|| {
            let (confirmer, confirmations) = mpsc::unbounded_channel();
            tokio::spawn(Self::confirm_in_order(Arc::downgrade(self), confirmations));
            confirmer
        });
        // The task ends only with the engine, which holds the sender, or if it panicked: then
        // the message is not committed, and is delivered again after a restart.
        if confirmer.send((job, unconfirmed, waiting)).is_err() {
            tracing::error!("the task confirming published events has stopped: messages are no longer committed; restart the service");
        }
    }

    /// The confirming task: waits for each message's acknowledgements in the order the handlers
    /// returned (the producer acknowledges a partition's records in order, so most are in by the
    /// time it looks: one wake-up serves many), then finishes its offset. One task instead of one
    /// per message: a task per message, woken from librdkafka's thread for each acknowledgement,
    /// cost more than the rest of the message.
    async fn confirm_in_order(
        engine: std::sync::Weak<Self>,
        mut confirmations: mpsc::UnboundedReceiver<Confirmation>,
    ) {
        while let Some((job, unconfirmed, waiting)) = confirmations.recv().await {
            let Some(engine) = engine.upgrade() else {
                return;
            };
            engine.processor.confirm(&job, unconfirmed).await;
            let origin = &job.origin;
            engine
                .shared
                .tracker()
                .finished(&origin.topic, origin.partition, origin.offset);
            engine.shared.metrics.confirmed();
            drop(waiting);
        }
    }

    /// Waits (bounded) for in-flight messages, commits what finished (exactly once: commits the
    /// open transaction, or aborts it when messages are still in flight; nothing when `fenced`)
    /// and leaves the group.
    async fn drain(self: &Arc<Self>, fenced: bool) {
        self.delayed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .abort_all();
        let limit = self.config.shutdown_timeout;
        let finished = tokio::time::timeout(limit, self.whole_pool()).await.is_ok();
        if !finished {
            tracing::warn!(
                in_flight = self.shared.metrics.in_flight(),
                unconfirmed = self.shared.metrics.unconfirmed(),
                "shutdown timeout ({limit:?}) passed with messages in flight; they are not committed and will be delivered again"
            );
        }
        self.shared.held().clear();
        if self.shared.transactions().is_none() {
            self.shared.commit(&*self.consumer, CommitMode::Sync, None);
        } else if !fenced {
            let engine = Arc::clone(self);
            let _ = tokio::task::spawn_blocking(move || {
                if finished {
                    engine.shared.end_transaction(&*engine.consumer);
                } else if let Some(transactions) = engine.shared.transactions() {
                    transactions.abort("shutdown timeout passed with messages in flight");
                }
            })
            .await;
        }
        self.consumer.unsubscribe();
    }
}

/// Copies what the job needs out of the consumer's message; the topic's name is taken from
/// `topics` (and added there the first time).
fn detach(message: &BorrowedMessage<'_>, topics: &mut Vec<Arc<str>>) -> Job {
    let name = message.topic();
    let topic = if let Some(known) = topics.iter().find(|t| ***t == *name) {
        Arc::clone(known)
    } else {
        let new: Arc<str> = Arc::from(name);
        topics.push(Arc::clone(&new));
        new
    };
    Job {
        origin: Source {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(Arc::from),
        },
        value: message.payload().map(Arc::from),
        headers: message
            .headers()
            .map(|headers| RecordHeaders::from_pairs(headers.iter().map(|h| (h.key, h.value))))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quick first steps stay inline; three slow sampled ones in a row send messages to tasks,
    /// and a single slow one (a preempted thread) does not.
    #[test]
    fn slow_first_steps_turn_inlining_off() {
        let mut inline = Inline::default();
        let mut flags = Vec::new();
        for _ in 0..INLINE_SAMPLE * 4 {
            inline.run(|on| flags.push(on));
        }
        assert!(flags.iter().all(|on| *on), "quick steps run inline");

        let slow = INLINE_LIMIT + Duration::from_micros(300);
        let mut calls = 0;
        for _ in 0..INLINE_SAMPLE {
            inline.run(|_| {
                calls += 1;
                if calls == INLINE_SAMPLE {
                    std::thread::sleep(slow);
                }
            });
        }
        assert_eq!(inline.strikes, 1);
        for _ in 0..INLINE_SAMPLE {
            inline.run(|on| assert!(on, "one slow step alone keeps inlining on"));
        }
        assert_eq!(inline.strikes, 0, "a quick sampled step clears the strikes");

        let mut flags = Vec::new();
        for _ in 0..INLINE_SAMPLE * INLINE_STRIKES {
            inline.run(|on| {
                flags.push(on);
                std::thread::sleep(slow);
            });
        }
        assert!(flags.iter().all(|on| *on));
        let mut after = None;
        inline.run(|on| after = Some(on));
        assert_eq!(
            after,
            Some(false),
            "slow steps in a row send messages to tasks"
        );
        assert!(inline.off_until.is_some());
    }
}
