//! Publishing typed events: encode in the service's wire format (registering the writer schema
//! once), add the envelope and the trace context, produce.

use std::borrow::Cow;
use std::future::ready;
use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::Schema;
use futures::future::Either;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureRecord, Producer};

use crate::codec::format::WireCodec;
use crate::codec::schema::EventSchema;
use crate::config::{Config, EventRoute};
use crate::envelope::{CallbackTopic, Metadata};
use crate::error::{CodecError, Error, Result};
use crate::fast_map::FastMap;
use crate::observe::client_logs::KafkaProducer;
use crate::observe::metrics::{Metrics, Outcome};
#[cfg(feature = "testing")]
use crate::publish::memory_sink::MemorySink;
use crate::publish::trace::{TraceParent, TRACEPARENT};
use crate::registry::bounded::Bounded;
use crate::registry::{SchemaRegistry, SubjectStrategy};

/// The most writer schemas a publisher keeps.
const MAX_CACHED: usize = 10_000;

/// How long a record waits for room in the producer's queue, at most, between two tries.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(10);

/// Publishes typed events for a service. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<PublisherInner>,
    /// Under `exactly_once` or `publish_confirm = "before_commit"`, the records of one handler
    /// attempt: produced only when the attempt succeeds, dropped when it fails.
    stage: Option<Arc<Stage>>,
}

/// Records published by one handler attempt, not produced yet.
#[derive(Default)]
pub(crate) struct Stage(std::sync::Mutex<Vec<Staged>>);

impl Stage {
    /// The staged records, locked (a panic elsewhere while they were locked leaves them usable).
    fn records(&self) -> std::sync::MutexGuard<'_, Vec<Staged>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The records staged so far, in order; the stage is left empty.
    fn take(&self) -> Vec<Staged> {
        std::mem::take(&mut *self.records())
    }

    /// Stages `record`: it is produced when the attempt succeeds.
    fn push(&self, record: Encoded<'_>) -> Metadata {
        let Encoded {
            meta,
            event,
            topic,
            partition,
            key,
            value,
            headers,
        } = record;
        self.records().push(Staged {
            event: Some(event.to_owned()),
            topic: topic.to_owned(),
            partition,
            key: key.map(Cow::into_owned),
            value: Some(value),
            headers,
        });
        tracing::debug!(event, topic, message_id = %meta.message_id, "staged until the attempt succeeds");
        meta
    }
}

/// One staged record.
struct Staged {
    event: Option<String>,
    topic: String,
    partition: Option<i32>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: rdkafka::message::OwnedHeaders,
}

/// A record handed to the producer whose acknowledgement is still to come
/// (`publish_confirm = "before_commit"`). The producer holds its bytes; a delivery that fails
/// gives them back (see [`Unsent`]).
pub(crate) struct Handed {
    event: Option<String>,
    topic: String,
    partition: Option<i32>,
    delivery: DeliveryFuture,
    since: std::time::Instant,
}

/// A handed record the broker did not take, with the reason.
pub(crate) struct Unsent {
    event: Option<String>,
    topic: String,
    partition: Option<i32>,
    /// The record as the producer gave it back (none when the producer itself went away).
    message: Option<OwnedMessage>,
    /// Why (taken by [`Unsent::take_error`]).
    error: Option<Error>,
}

impl Unsent {
    /// Why the record was not taken.
    pub(crate) fn take_error(&mut self) -> Error {
        self.error
            .take()
            .unwrap_or_else(|| Error::kafka(self.place(), KafkaError::Canceled))
    }

    /// Where the record went, for errors and logs.
    pub(crate) fn place(&self) -> String {
        place(self.event.as_deref(), &self.topic)
    }

    /// Why the record was not taken, this time.
    pub(crate) fn set_error(&mut self, error: Error) {
        self.error = Some(error);
    }
}

impl Staged {
    /// Where the record goes, for errors and logs.
    fn place(&self) -> String {
        place(self.event.as_deref(), &self.topic)
    }
}

/// Where a record goes, for errors and logs.
fn place(event: Option<&str>, topic: &str) -> String {
    match event {
        Some(event) => format!("publishing `{event}` to topic `{topic}`"),
        None => format!("producing to topic `{topic}`"),
    }
}

struct PublisherInner {
    sink: Sink,
    registry: Arc<dyn SchemaRegistry>,
    /// Writer schemas and their ids by event (by `<event>\0<topic>` under the strategies that name
    /// subjects after the topic: a reply's topic comes from the incoming message, so the bound
    /// matters).
    writers: Bounded<String, (u32, Arc<Schema>)>,
    strategy: SubjectStrategy,
    codec: &'static dyn WireCodec,
    metrics: Arc<Metrics>,
    service: String,
    instance: String,
    default_topic: String,
    /// Per-event topic and key field.
    routes: FastMap<String, EventRoute>,
    send_timeout: Duration,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("service", &self.inner.service)
            .field("default_topic", &self.inner.default_topic)
            .field("strategy", &self.inner.strategy)
            .finish_non_exhaustive()
    }
}

/// Where and how one event is published.
#[derive(Debug, Clone, Default)]
pub(crate) struct Route<'a> {
    pub(crate) topic: Option<&'a str>,
    pub(crate) partition: Option<i32>,
    pub(crate) key: Option<&'a [u8]>,
    /// The key of the event being handled: used (under `confluent`) when nothing else names one.
    pub(crate) inherited_key: Option<&'a [u8]>,
    pub(crate) callback_id: Option<String>,
    /// Where answers to this event should go.
    pub(crate) callback_topic: Option<CallbackTopic>,
    pub(crate) headers: &'a [(String, Vec<u8>)],
    pub(crate) trace: Option<TraceParent>,
}

/// How one event is published, beyond the defaults (the default topic or the event's configured
/// one; the configured key field or the wire format's default key; no extra headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishOptions {
    /// The topic.
    pub topic: Option<String>,
    /// The Kafka key.
    pub key: Option<Vec<u8>>,
    /// The partition (otherwise the partitioner picks one from the key).
    pub partition: Option<i32>,
    /// Kafka headers added beside the envelope's.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Where answers should go (the metadata's `callback_topic`).
    pub callback: Option<CallbackTopic>,
}

impl PublishOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes to `topic`.
    #[must_use]
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Uses `key` as the Kafka key.
    #[must_use]
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Publishes to `partition`.
    #[must_use]
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a Kafka header.
    #[must_use]
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }

    /// Asks for answers on `callback`.
    #[must_use]
    pub fn callback(mut self, callback: CallbackTopic) -> Self {
        self.callback = Some(callback);
        self
    }

    pub(crate) fn route(&self) -> Route<'_> {
        Route {
            topic: self.topic.as_deref(),
            partition: self.partition,
            key: self.key.as_deref(),
            callback_topic: self.callback.clone(),
            headers: &self.headers,
            ..Route::default()
        }
    }
}

/// An event to encode: its name, schema (parsed and as text) and Avro value.
pub(crate) struct Outgoing<'a> {
    pub(crate) event: &'a str,
    pub(crate) schema: &'a Schema,
    pub(crate) schema_json: &'a str,
    pub(crate) value: Value,
}

impl<'a> Outgoing<'a> {
    fn typed<T: EventSchema>(value: &T) -> Result<Outgoing<'a>> {
        let value = value
            .to_avro()
            .map_err(CodecError::shape("encode", T::EVENT_NAME, None))?;
        Ok(Outgoing {
            event: T::EVENT_NAME,
            schema: T::schema(),
            schema_json: T::SCHEMA_JSON,
            value,
        })
    }
}

/// Where published records go: Kafka, or memory (the test bus).
enum Sink {
    Kafka(KafkaProducer),
    #[cfg(feature = "testing")]
    Memory(Arc<MemorySink>),
}

impl Publisher {
    pub(crate) fn new(
        producer: KafkaProducer,
        registry: Arc<dyn SchemaRegistry>,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> Self {
        Self::with_sink(Sink::Kafka(producer), registry, metrics, config)
    }

    /// A publisher that keeps what it sends in `sink` (for the test bus).
    #[cfg(feature = "testing")]
    pub(crate) fn in_memory(
        sink: Arc<MemorySink>,
        registry: Arc<dyn SchemaRegistry>,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> Self {
        Self::with_sink(Sink::Memory(sink), registry, metrics, config)
    }

    fn with_sink(
        sink: Sink,
        registry: Arc<dyn SchemaRegistry>,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> Self {
        let service = &config.service_name;
        Self {
            inner: Arc::new(PublisherInner {
                sink,
                registry,
                writers: Bounded::new(MAX_CACHED),
                strategy: config.subject_strategy,
                codec: config.wire_format.codec(),
                metrics,
                service: service.to_owned(),
                instance: format!("{service}-{}", uuid::Uuid::new_v4().simple()),
                default_topic: config.default_topic.clone(),
                routes: config
                    .event_routes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                send_timeout: Duration::from_secs(30),
            }),
            stage: None,
        }
    }

    /// A publisher that keeps what it publishes until [`release`](Self::release): for one
    /// handler attempt under `exactly_once`.
    pub(crate) fn staging(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            stage: Some(Arc::default()),
        }
    }

    /// Produces what this staging publisher kept, in order, and waits for every
    /// acknowledgement (nothing for a publisher that does not stage).
    pub(crate) async fn release(&self) -> Result<()> {
        let Some(stage) = &self.stage else {
            return Ok(());
        };
        let staged = stage.take();
        let started = std::time::Instant::now();
        // Every record is handed to the producer at the first poll, in order; then the
        // acknowledgements are awaited together.
        let sends = staged.iter().map(|r| {
            self.deliver_now(
                &r.topic,
                r.partition,
                r.key.as_deref(),
                r.value.as_deref(),
                r.headers.clone(),
            )
        });
        let results = futures::future::join_all(sends).await;
        for (record, result) in staged.iter().zip(results) {
            result.map_err(|source| Error::kafka(record.place(), source))?;
            if let Some(event) = &record.event {
                self.inner
                    .metrics
                    .record(event, Outcome::Published(started.elapsed()));
            }
        }
        Ok(())
    }

    /// Hands what this staging publisher kept to the producer, in order, without waiting for
    /// the acknowledgements (nothing for a publisher that does not stage). The test bus keeps
    /// the records at once and hands back nothing.
    pub(crate) async fn hand_over(&self) -> Result<Vec<Handed>> {
        let Some(stage) = &self.stage else {
            return Ok(Vec::new());
        };
        let staged = stage.take();
        // Without the `testing` feature the sink has one kind only.
        #[allow(clippy::infallible_destructuring_match)]
        let producer = match &self.inner.sink {
            Sink::Kafka(producer) => producer,
            #[cfg(feature = "testing")]
            Sink::Memory(sink) => {
                for r in &staged {
                    sink.keep(
                        &r.topic,
                        r.partition,
                        r.key.as_deref(),
                        r.value.as_deref(),
                        &r.headers,
                    );
                }
                return Ok(Vec::new());
            }
        };
        let mut handed = Vec::with_capacity(staged.len());
        for record in staged {
            let Staged {
                event,
                topic,
                partition,
                key,
                value,
                headers,
            } = record;
            let sending = record_of(&topic, partition, key.as_deref(), value.as_deref(), headers);
            let delivery = self
                .enqueue(producer, sending)
                .await
                .map_err(|source| Error::kafka(place(event.as_deref(), &topic), source))?;
            handed.push(Handed {
                event,
                topic,
                partition,
                delivery,
                since: std::time::Instant::now(),
            });
        }
        Ok(handed)
    }

    /// Hands one record to the producer; while its queue is full, tries again for up to the
    /// send timeout.
    async fn enqueue(
        &self,
        producer: &KafkaProducer,
        mut record: FutureRecord<'_, [u8], [u8]>,
    ) -> std::result::Result<DeliveryFuture, KafkaError> {
        let started = std::time::Instant::now();
        loop {
            match producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < self.inner.send_timeout =>
                {
                    record = back;
                    // Boxed: the rare wait stays out of every message's future.
                    Box::pin(tokio::time::sleep(QUEUE_FULL_WAIT)).await;
                }
                Err((err, _)) => return Err(err),
            }
        }
    }

    /// Waits for the broker's acknowledgement of a handed record; the record and the reason when
    /// it was not taken (after the producer's own retries).
    pub(crate) async fn confirm(&self, handed: Handed) -> std::result::Result<(), Unsent> {
        let Handed {
            event,
            topic,
            partition,
            delivery,
            since,
        } = handed;
        let (error, message) = match delivery.await {
            Ok(Ok(_)) => {
                if let Some(event) = &event {
                    self.inner
                        .metrics
                        .record(event, Outcome::Published(since.elapsed()));
                }
                return Ok(());
            }
            Ok(Err((error, message))) => (error, Some(message)),
            Err(_) => (KafkaError::Canceled, None),
        };
        Err(Unsent {
            error: Some(Error::kafka(place(event.as_deref(), &topic), error)),
            event,
            topic,
            partition,
            message,
        })
    }

    /// Produces a record the broker did not take once more, and waits for its acknowledgement;
    /// the reason again when it fails.
    pub(crate) async fn resend(&self, unsent: &mut Unsent) -> Result<()> {
        let Some(message) = &unsent.message else {
            return Err(Error::kafka(unsent.place(), KafkaError::Canceled));
        };
        let sent = self
            .deliver_now(
                &unsent.topic,
                unsent.partition,
                message.key(),
                message.payload(),
                message.headers().cloned().unwrap_or_default(),
            )
            .await;
        sent.map_err(|source| Error::kafka(unsent.place(), source))
    }

    /// Publishes `value` to the default topic with fresh metadata; returns the metadata sent.
    pub async fn publish<T: EventSchema>(&self, value: T) -> Result<Metadata> {
        self.publish_typed(&value, Route::default()).await
    }

    /// Publishes `value` to `topic` with the Kafka key `key` (none: the format's default key,
    /// which is the event name under `kaufmann_ex` and no key under `confluent`).
    pub async fn publish_to<T: EventSchema>(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: T,
    ) -> Result<Metadata> {
        let route = Route {
            topic: Some(topic),
            key,
            ..Route::default()
        };
        self.publish_typed(&value, route).await
    }

    /// Publishes `value` to the default topic asking for answers on `callback` (the metadata's
    /// `callback_topic`): the handler answers with `ctx.reply`, and error events go there too.
    pub async fn publish_with_callback<T: EventSchema>(
        &self,
        value: T,
        callback: CallbackTopic,
    ) -> Result<Metadata> {
        self.publish_with(value, PublishOptions::new().callback(callback))
            .await
    }

    /// Publishes `value` with `options` (topic, key, partition, headers, callback topic).
    pub async fn publish_with<T: EventSchema>(
        &self,
        value: T,
        options: PublishOptions,
    ) -> Result<Metadata> {
        self.publish_typed(&value, options.route()).await
    }

    /// Produces a record as it is (no schema, no envelope): for the dead-letter topic.
    pub(crate) async fn send_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: rdkafka::message::OwnedHeaders,
    ) -> Result<()> {
        self.deliver_now(topic, None, key, value, headers)
            .await
            .map_err(|source| Error::kafka(format!("producing to topic `{topic}`"), source))
    }

    /// Produces one record (and waits for the broker's acknowledgement), or keeps it in memory.
    async fn deliver_now(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: rdkafka::message::OwnedHeaders,
    ) -> std::result::Result<(), rdkafka::error::KafkaError> {
        match &self.inner.sink {
            Sink::Kafka(producer) => {
                let record = record_of(topic, partition, key, value, headers);
                producer
                    .send(record, self.inner.send_timeout)
                    .await
                    .map(drop)
                    .map_err(|(source, _)| source)
            }
            #[cfg(feature = "testing")]
            Sink::Memory(sink) => {
                sink.keep(topic, partition, key, value, &headers);
                Ok(())
            }
        }
    }

    /// Waits (up to the send timeout) until every produced event is delivered.
    pub fn flush(&self) {
        match &self.inner.sink {
            Sink::Kafka(producer) => {
                if let Err(err) = producer.flush(self.inner.send_timeout) {
                    tracing::warn!("producer flush failed: {err}");
                }
            }
            #[cfg(feature = "testing")]
            Sink::Memory(_) => {}
        }
    }

    /// Publishes a typed value along `route` (see [`Publisher::publish_routed`]).
    pub(crate) fn publish_typed<'a, T: EventSchema>(
        &'a self,
        value: &T,
        route: Route<'a>,
    ) -> Publishing<'a> {
        match Outgoing::typed(value) {
            Ok(outgoing) => self.publish_routed(outgoing, route),
            Err(error) => Either::Left(ready(Err(error))),
        }
    }

    /// Encodes `outgoing` in the service's wire format and stages it (a staging publisher), or
    /// produces it and waits for the broker's acknowledgement. A record staged with its writer
    /// schema cached (most of them) is staged before this returns: only a registration or a
    /// wait for the broker is a future, boxed, so that a handler's future that publishes stays
    /// small (each message's future is moved into its box whole).
    pub(crate) fn publish_routed<'a>(
        &'a self,
        outgoing: Outgoing<'a>,
        route: Route<'a>,
    ) -> Publishing<'a> {
        let configured = self.inner.routes.get(outgoing.event);
        let topic = route
            .topic
            .or_else(|| configured.and_then(|r| r.topic.as_deref()))
            .unwrap_or(&self.inner.default_topic);
        let key_field = configured.and_then(|r| r.key_field.as_deref());
        match (
            self.stage.as_deref(),
            self.cached_writer(outgoing.event, topic),
        ) {
            (Some(stage), Some(writer)) => Either::Left(ready(
                self.encode(outgoing, route, topic, key_field, writer)
                    .map(|record| stage.push(record)),
            )),
            (stage, cached) => Either::Right(Box::pin(async move {
                let writer = match cached {
                    Some(writer) => writer,
                    None => self.register_writer(&outgoing, topic).await?,
                };
                let record = self.encode(outgoing, route, topic, key_field, writer)?;
                match stage {
                    Some(stage) => Ok(stage.push(record)),
                    None => self.produce(record).await,
                }
            })),
        }
    }

    /// The record of `outgoing` along `route` to `topic`: its metadata, encoded value, headers
    /// and key (from the event's configured `key_field`, when the route names none).
    fn encode<'a>(
        &self,
        outgoing: Outgoing<'a>,
        route: Route<'a>,
        topic: &'a str,
        key_field: Option<&str>,
        (schema_id, writer): (u32, Arc<Schema>),
    ) -> Result<Encoded<'a>> {
        let inner = &self.inner;
        let event = outgoing.event;
        let field_key = match key_field {
            Some(field) if route.key.is_none() => {
                Some(key_from_field(event, &outgoing.value, field)?)
            }
            _ => None,
        };
        let mut meta = Metadata::new(event, &inner.service, &inner.instance)
            .with_callback_id(route.callback_id);
        meta.callback_topic = route.callback_topic;
        let value = inner
            .codec
            .encode(event, schema_id, &writer, &meta, outgoing.value)?;
        let trace = route.trace.unwrap_or_else(TraceParent::new_root).encode();
        let mut headers = meta.to_headers().insert(Header {
            key: TRACEPARENT,
            value: Some(&trace[..]),
        });
        for (key, value) in route.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        // An explicit key; else the format's (see `WireCodec::default_key`).
        let key = match route.key {
            Some(key) => Some(Cow::Borrowed(key)),
            None => inner
                .codec
                .default_key(event, field_key, route.inherited_key),
        };
        Ok(Encoded {
            meta,
            event,
            topic,
            partition: route.partition,
            key,
            value,
            headers,
        })
    }

    /// Produces `record` and waits for the broker's acknowledgement.
    async fn produce(&self, record: Encoded<'_>) -> Result<Metadata> {
        let (event, topic) = (record.event, record.topic);
        let started = std::time::Instant::now();
        let key = record.key.as_deref();
        self.deliver_now(
            topic,
            record.partition,
            key,
            Some(&record.value),
            record.headers,
        )
        .await
        .map_err(|source| Error::kafka(place(Some(event), topic), source))?;
        self.inner
            .metrics
            .record(event, Outcome::Published(started.elapsed()));
        tracing::debug!(event, topic, message_id = %record.meta.message_id, "published");
        Ok(record.meta)
    }

    /// The key of `event`'s writer schema for `topic` in the cache: under the event and record
    /// strategies (and a format's own subject) the subject does not depend on the topic.
    fn writer_key<'a>(&self, event: &'a str, topic: &str) -> Cow<'a, str> {
        let inner = &self.inner;
        if inner.codec.own_subject(event).is_some() || !inner.strategy.uses_topic() {
            Cow::Borrowed(event)
        } else {
            Cow::Owned(format!("{event}\0{topic}"))
        }
    }

    /// The writer schema of `event` for `topic` and its id, when registered before.
    fn cached_writer(&self, event: &str, topic: &str) -> Option<(u32, Arc<Schema>)> {
        self.inner
            .writers
            .get(self.writer_key(event, topic).as_ref())
    }

    /// Registers (or finds) the writer schema of `outgoing` for `topic` under its subject, and
    /// caches it with its id.
    async fn register_writer(
        &self,
        outgoing: &Outgoing<'_>,
        topic: &str,
    ) -> Result<(u32, Arc<Schema>)> {
        let inner = &self.inner;
        let Outgoing {
            event,
            schema,
            schema_json,
            ..
        } = *outgoing;
        let writer = Arc::new(match inner.codec.wire_schema(event, schema_json)? {
            Some(wire) => wire,
            None => schema.clone(),
        });
        let subject = inner.codec.own_subject(event).map_or_else(
            || Cow::Owned(inner.strategy.subject(event, topic, schema)),
            Cow::Borrowed,
        );
        let id = if inner.codec.registers() {
            inner.registry.register(&subject, &writer).await?
        } else {
            0
        };
        inner.writers.insert(
            self.writer_key(event, topic).into_owned(),
            (id, Arc::clone(&writer)),
        );
        Ok((id, writer))
    }
}

/// A publish under way: done already (the record staged, or failed before it was sent), or
/// waiting for the registry or the broker.
pub(crate) type Publishing<'a> =
    Either<std::future::Ready<Result<Metadata>>, futures::future::BoxFuture<'a, Result<Metadata>>>;

/// One event's record, encoded, before it is staged or produced.
struct Encoded<'a> {
    meta: Metadata,
    event: &'a str,
    topic: &'a str,
    partition: Option<i32>,
    key: Option<Cow<'a, [u8]>>,
    value: Vec<u8>,
    headers: rdkafka::message::OwnedHeaders,
}

/// The producer's record of one event.
fn record_of<'a>(
    topic: &'a str,
    partition: Option<i32>,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: rdkafka::message::OwnedHeaders,
) -> FutureRecord<'a, [u8], [u8]> {
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(value) = value {
        record = record.payload(value);
    }
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    record
}

/// The Kafka key from a top-level field of the payload: a string as it is, a number in decimal.
fn key_from_field(event: &str, value: &Value, field: &str) -> Result<Vec<u8>> {
    let found = match value {
        Value::Record(fields) => fields.iter().find(|(n, _)| n == field).map(|(_, v)| v),
        _ => None,
    };
    let found = match found {
        Some(Value::Union(_, inner)) => Some(&**inner),
        other => other,
    };
    match found {
        Some(Value::String(s)) => Ok(s.clone().into_bytes()),
        Some(Value::Int(n)) => Ok(n.to_string().into_bytes()),
        Some(Value::Long(n)) => Ok(n.to_string().into_bytes()),
        other => Err(Error::Codec(CodecError::shape("key", event, None)(
            crate::codec::avro::AvroError::new(format!(
                "key_field `{field}` must name a string, int or long field of the payload, \
                 found {other:?}"
            )),
        ))),
    }
}
