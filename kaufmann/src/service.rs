//! The service: consumer group -> bounded worker pool -> handlers -> publisher, with offsets
//! committed only for finished messages.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::embedded::EmbeddedBroker;
use crate::envelope::{Metadata, Origin};
use crate::error::{Error, Result};
use crate::handler::{HandlerTable, Incoming};
use crate::offsets::OffsetTracker;
use crate::publisher::{Context, Publisher};
use crate::schema::{open_registry, wire, RegisteredSchema, SchemaRegistry};

/// How long startup waits for the broker to answer a metadata request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters and gauges of a running service.
#[derive(Debug, Default)]
pub struct Stats {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    handled: AtomicU64,
    failed: AtomicU64,
    unhandled: AtomicU64,
}

impl Stats {
    /// Messages fetched and not yet finished, now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
    /// The highest `in_flight` seen since start.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
    /// Messages whose handler returned `Ok`.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::SeqCst)
    }
    /// Messages that could not be decoded or whose handler failed or panicked.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }
    /// Messages whose event has no handler in this service.
    pub fn unhandled(&self) -> u64 {
        self.unhandled.load(Ordering::SeqCst)
    }

    fn started(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
    }
}

/// Entry point: start a service from a [`Config`].
#[derive(Debug)]
pub struct Service;

impl Service {
    /// Connects to the brokers (or starts the embedded mock cluster), joins the consumer group and
    /// starts handling messages with every handler registered in this binary.
    pub async fn start(mut config: Config) -> Result<RunningService> {
        let handlers = HandlerTable::collect()?;
        let embedded = if config.brokers.is_some() {
            None
        } else {
            let mut topics = config.topics.clone();
            topics.push(config.default_topic.clone());
            topics.sort();
            topics.dedup();
            let broker = EmbeddedBroker::start(&topics)?;
            tracing::info!(
                "no broker configured (KAUFMANN_BROKERS is unset): using the embedded in-process \
                 mock cluster at {} and the schema registry {}; set KAUFMANN_BROKERS to use Kafka",
                broker.bootstrap_servers(),
                config.registry_url,
            );
            config.brokers = Some(broker.bootstrap_servers().to_owned());
            Some(broker)
        };
        let brokers = config.brokers.clone().unwrap_or_default();
        log_startup(&config, &handlers);

        let registry = open_registry(&config.registry_url)?;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|e| Error::kafka("creating the producer", e))?;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(|e| Error::kafka("creating the consumer", e))?;
        let consumer = Arc::new(consumer);
        check_topics(&consumer, &brokers, &config.topics).await?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| Error::kafka(format!("subscribing to {topics:?}"), e))?;

        let publisher = Publisher::new(
            producer,
            registry.clone(),
            &config.service_name,
            &config.default_topic,
        );
        let stats = Arc::new(Stats::default());
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let engine = Engine {
            consumer,
            handlers,
            decoder: Decoder::new(registry),
            publisher: publisher.clone(),
            stats: stats.clone(),
            semaphore: Arc::new(Semaphore::new(config.demand)),
            config,
        };
        let task = tokio::spawn(engine.run(shutdown_rx));
        Ok(RunningService {
            publisher,
            stats,
            shutdown: shutdown_tx,
            task,
            embedded,
        })
    }
}

fn log_startup(config: &Config, handlers: &HandlerTable) {
    tracing::info!(
        service = %config.service_name,
        group = %config.group_id,
        topics = ?config.topics,
        default_topic = %config.default_topic,
        demand = config.demand,
        "starting kaufmann service"
    );
    if handlers.is_empty() {
        tracing::warn!("no handlers are registered: add `#[kaufmann::given_event(\"<event>\")]` to an async fn");
    }
    for h in handlers.iter() {
        tracing::info!("handler: {} -> {}", h.event, h.describe());
    }
}

async fn check_topics(
    consumer: &Arc<StreamConsumer>,
    brokers: &str,
    topics: &[String],
) -> Result<()> {
    let probe = consumer.clone();
    let metadata = tokio::task::spawn_blocking(move || probe.fetch_metadata(None, CONNECT_TIMEOUT))
        .await
        .map_err(|e| Error::Startup(format!("metadata request task failed: {e}")))?
        .map_err(|e| {
            Error::kafka(
                format!(
                    "connecting to the brokers at `{brokers}` (no answer within {CONNECT_TIMEOUT:?}; \
                     check KAUFMANN_BROKERS, or unset it to use the embedded broker)"
                ),
                e,
            )
        })?;
    for topic in topics {
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            return Err(Error::Startup(format!(
                "topic `{topic}` (from KAUFMANN_TOPICS) does not exist on `{brokers}`: create it first"
            )));
        }
    }
    Ok(())
}

/// A service that is running. Dropping it without [`RunningService::shutdown`] aborts it.
#[derive(Debug)]
pub struct RunningService {
    publisher: Publisher,
    stats: Arc<Stats>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
    embedded: Option<EmbeddedBroker>,
}

impl RunningService {
    /// The service's publisher (for events not caused by a consumed one, such as seeds).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The service's counters and gauges.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The embedded broker's bootstrap servers, when the service started one.
    pub fn embedded_brokers(&self) -> Option<&str> {
        self.embedded
            .as_ref()
            .map(EmbeddedBroker::bootstrap_servers)
    }

    /// Stops fetching, waits for in-flight messages, commits their offsets and leaves the group.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.shutdown.send(true);
        let ended = (&mut self.task).await;
        self.finish(ended)
    }

    /// Flushes the producer, then stops the embedded broker (after every client is gone).
    fn finish(self, ended: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
        let Self {
            publisher,
            embedded,
            ..
        } = self;
        publisher.flush();
        drop(publisher);
        drop(embedded);
        ended.map_err(|e| Error::Startup(format!("the service task failed: {e}")))?
    }

    /// Runs until Ctrl-C (SIGINT) or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(mut self) -> Result<()> {
        tokio::select! {
            () = shutdown_signal() => {
                tracing::info!("shutdown signal received: finishing in-flight messages");
                self.shutdown().await
            }
            ended = &mut self.task => self.finish(ended),
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Finds writer schemas by id, asking the registry once per id.
struct Decoder {
    registry: Arc<dyn SchemaRegistry>,
    cache: Mutex<HashMap<u32, RegisteredSchema>>,
}

impl Decoder {
    fn new(registry: Arc<dyn SchemaRegistry>) -> Self {
        Self {
            registry,
            cache: Mutex::default(),
        }
    }

    async fn writer(&self, id: u32) -> Result<RegisteredSchema> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        if let Some(found) = cached {
            return Ok(found);
        }
        let found = self.registry.schema_by_id(id).await?;
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, found.clone());
        Ok(found)
    }
}

struct Engine {
    consumer: Arc<StreamConsumer>,
    handlers: HandlerTable,
    decoder: Decoder,
    publisher: Publisher,
    stats: Arc<Stats>,
    semaphore: Arc<Semaphore>,
    config: Config,
}

type Done = (String, i32, i64);

impl Engine {
    async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let engine = Arc::new(self);
        let mut tracker = OffsetTracker::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut commit_tick = tokio::time::interval(engine.config.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut permit = None;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                Some((topic, partition, offset)) = done_rx.recv() => {
                    tracker.finished(&topic, partition, offset);
                }
                _ = commit_tick.tick() => engine.commit(&mut tracker, CommitMode::Async),
                acquired = engine.semaphore.clone().acquire_owned(), if permit.is_none() => {
                    permit = acquired.ok();
                }
                received = engine.consumer.recv(), if permit.is_some() => match received {
                    Ok(message) => {
                        let Some(permit) = permit.take() else { continue };
                        let (origin, value, meta) = detach(&message);
                        tracker.fetched(&origin.topic, origin.partition, origin.offset);
                        engine.stats.started();
                        let engine = engine.clone();
                        let done_tx = done_tx.clone();
                        tokio::spawn(async move {
                            let done = (origin.topic.clone(), origin.partition, origin.offset);
                            engine.process(origin, value, meta).await;
                            engine.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
                            let _ = done_tx.send(done);
                            drop(permit);
                        });
                    }
                    Err(err) => tracing::warn!("kafka consumer error (retrying): {err}"),
                },
            }
        }
        drop(permit);
        engine.drain(&mut tracker, &mut done_rx).await;
        Ok(())
    }

    /// Waits (bounded) for in-flight messages, then commits what finished.
    async fn drain(
        &self,
        tracker: &mut OffsetTracker,
        done_rx: &mut mpsc::UnboundedReceiver<Done>,
    ) {
        let limit = self.config.shutdown_timeout;
        let all = u32::try_from(self.config.demand).unwrap_or(u32::MAX);
        let waited = tokio::time::timeout(limit, self.semaphore.acquire_many(all)).await;
        if waited.is_err() {
            tracing::warn!(
                in_flight = self.stats.in_flight(),
                "shutdown timeout ({limit:?}) passed with messages in flight; they are not committed \
                 and will be delivered again"
            );
        }
        while let Ok((topic, partition, offset)) = done_rx.try_recv() {
            tracker.finished(&topic, partition, offset);
        }
        self.commit(tracker, CommitMode::Sync);
        self.consumer.unsubscribe();
        tracing::info!(
            handled = self.stats.handled(),
            failed = self.stats.failed(),
            "service stopped"
        );
    }

    fn commit(&self, tracker: &mut OffsetTracker, mode: CommitMode) {
        let positions = tracker.committable();
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
        match self.consumer.commit(&list, mode) {
            Ok(()) => tracker.committed(&positions),
            Err(err) => tracing::warn!(
                "commit of {} partition(s) failed (will retry): {err}",
                positions.len()
            ),
        }
    }

    async fn process(&self, origin: Origin, value: Option<Vec<u8>>, meta: Metadata) {
        let place = format!("{}[{}]@{}", origin.topic, origin.partition, origin.offset);
        let outcome = AssertUnwindSafe(self.dispatch(origin, value, meta))
            .catch_unwind()
            .await;
        match outcome {
            Ok(Ok(Some(event))) => {
                self.stats.handled.fetch_add(1, Ordering::SeqCst);
                tracing::debug!(event, at = %place, "handled");
            }
            Ok(Ok(None)) => {
                self.stats.unhandled.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Err(err)) => {
                self.stats.failed.fetch_add(1, Ordering::SeqCst);
                tracing::error!(at = %place, "message failed and is skipped: {err}");
            }
            Err(panic) => {
                self.stats.failed.fetch_add(1, Ordering::SeqCst);
                let what = panic
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(at = %place, "handler panicked; message is skipped: {what}");
            }
        }
    }

    /// Decodes the wire header, finds the event's handler and runs it. `Ok(None)`: no handler.
    async fn dispatch(
        &self,
        origin: Origin,
        value: Option<Vec<u8>>,
        mut meta: Metadata,
    ) -> Result<Option<&'static str>> {
        let value = value.ok_or(crate::error::CodecError::NoPayload)?;
        let (schema_id, _) = wire::split(&value)?;
        let writer = self.decoder.writer(schema_id).await?;
        if meta.message_name.is_empty() {
            meta.message_name = writer.subject.trim_end_matches("-value").to_owned();
        }
        let Some(handler) = self.handlers.get(&meta.message_name) else {
            tracing::debug!(event = %meta.message_name, "no handler for this event: committed without handling");
            return Ok(None);
        };
        let context = Context::new(self.publisher.clone(), meta.clone(), origin.clone());
        let incoming = Incoming {
            writer: writer.schema,
            schema_id,
            value,
            meta,
            origin,
        };
        (handler.call)(incoming, context).await?;
        Ok(Some(handler.event))
    }
}

fn detach(message: &BorrowedMessage<'_>) -> (Origin, Option<Vec<u8>>, Metadata) {
    let origin = Origin {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
    };
    let meta = Metadata::from_headers(message.headers());
    (origin, message.payload().map(<[u8]>::to_vec), meta)
}
