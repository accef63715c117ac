//! Publishing typed events: encode with the event's schema, frame, add the envelope, produce.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::message::Header;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::config::Config;
use crate::envelope::{Metadata, Origin};
use crate::error::{Error, Result};
use crate::metrics::{Metrics, Outcome};
use crate::registry::{SchemaRegistry, SubjectStrategy};
use crate::schema::{encode_body, wire, EventSchema};
use crate::trace::{TraceParent, TRACEPARENT};

/// Publishes typed events for a service. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<PublisherInner>,
}

struct PublisherInner {
    producer: FutureProducer,
    registry: Arc<dyn SchemaRegistry>,
    /// Schema ids by event, then by topic (the subject may depend on the topic).
    schema_ids: Mutex<HashMap<&'static str, HashMap<String, u32>>>,
    strategy: SubjectStrategy,
    metrics: Arc<Metrics>,
    service: String,
    instance: String,
    default_topic: String,
    send_timeout: Duration,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("service", &self.inner.service)
            .field("default_topic", &self.inner.default_topic)
            .finish_non_exhaustive()
    }
}

/// Where and how one event is published.
#[derive(Debug, Clone, Default)]
pub(crate) struct Route<'a> {
    pub(crate) topic: Option<&'a str>,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) callback_id: Option<String>,
    pub(crate) trace: Option<TraceParent>,
}

impl Publisher {
    pub(crate) fn new(
        producer: FutureProducer,
        registry: Arc<dyn SchemaRegistry>,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> Self {
        let service = &config.service_name;
        Self {
            inner: Arc::new(PublisherInner {
                producer,
                registry,
                schema_ids: Mutex::default(),
                strategy: config.subject_strategy,
                metrics,
                service: service.to_owned(),
                instance: format!("{service}-{}", uuid::Uuid::new_v4().simple()),
                default_topic: config.default_topic.clone(),
                send_timeout: Duration::from_secs(30),
            }),
        }
    }

    /// Publishes `value` to the default topic with fresh metadata; returns the metadata sent.
    pub async fn publish<T: EventSchema>(&self, value: T) -> Result<Metadata> {
        self.publish_routed(&value, Route::default()).await
    }

    /// Publishes `value` to `topic` with the Kafka key `key`.
    pub async fn publish_to<T: EventSchema>(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: T,
    ) -> Result<Metadata> {
        let route = Route {
            topic: Some(topic),
            key,
            callback_id: None,
            trace: None,
        };
        self.publish_routed(&value, route).await
    }

    /// Produces a record as it is (no schema, no envelope): for the dead-letter topic.
    pub(crate) async fn send_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: rdkafka::message::OwnedHeaders,
    ) -> Result<()> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(value) = value {
            record = record.payload(value);
        }
        self.inner
            .producer
            .send(record, self.inner.send_timeout)
            .await
            .map(drop)
            .map_err(|(source, _)| Error::kafka(format!("producing to topic `{topic}`"), source))
    }

    /// Waits (up to the send timeout) until every produced event is delivered.
    pub fn flush(&self) {
        if let Err(err) = self.inner.producer.flush(self.inner.send_timeout) {
            tracing::warn!("producer flush failed: {err}");
        }
    }

    pub(crate) async fn publish_routed<T: EventSchema>(
        &self,
        value: &T,
        route: Route<'_>,
    ) -> Result<Metadata> {
        let inner = &self.inner;
        let topic = route.topic.unwrap_or(&inner.default_topic);
        let schema_id = self.schema_id::<T>(topic).await?;
        let body = encode_body(T::EVENT_NAME, T::schema(), value)?;
        let framed = wire::frame(schema_id, &body);
        let meta = Metadata::new(T::EVENT_NAME, &inner.service, &inner.instance)
            .with_callback_id(route.callback_id);
        let trace = route
            .trace
            .unwrap_or_else(TraceParent::new_root)
            .to_string();
        let headers = meta.to_headers().insert(Header {
            key: TRACEPARENT,
            value: Some(trace.as_str()),
        });
        let mut record = FutureRecord::to(topic).payload(&framed).headers(headers);
        if let Some(key) = route.key {
            record = record.key(key);
        }
        let started = std::time::Instant::now();
        inner
            .producer
            .send(record, inner.send_timeout)
            .await
            .map_err(|(source, _)| {
                Error::kafka(
                    format!("publishing `{}` to topic `{topic}`", T::EVENT_NAME),
                    source,
                )
            })?;
        inner
            .metrics
            .record(T::EVENT_NAME, Outcome::Published(started.elapsed()));
        tracing::debug!(event = T::EVENT_NAME, topic, message_id = %meta.message_id, "published");
        Ok(meta)
    }

    /// The schema id of `T` for `topic`: registered (or found) once, then cached.
    async fn schema_id<T: EventSchema>(&self, topic: &str) -> Result<u32> {
        let inner = &self.inner;
        // Under the event and record strategies the subject does not depend on the topic.
        let topic = if inner.strategy.uses_topic() {
            topic
        } else {
            ""
        };
        let cached = inner
            .schema_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(T::EVENT_NAME)
            .and_then(|by_topic| by_topic.get(topic))
            .copied();
        if let Some(id) = cached {
            return Ok(id);
        }
        let subject = inner.strategy.subject(T::EVENT_NAME, topic, T::schema());
        let id = inner.registry.register(&subject, T::schema()).await?;
        inner
            .schema_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(T::EVENT_NAME)
            .or_default()
            .insert(topic.to_owned(), id);
        Ok(id)
    }
}

/// What a handler gets beside its event: publishing, correlated with the event being handled.
#[derive(Debug, Clone)]
pub struct Context {
    publisher: Publisher,
    message_id: String,
    origin: Origin,
    trace: Option<TraceParent>,
}

impl Context {
    pub(crate) fn new(
        publisher: Publisher,
        message_id: String,
        origin: Origin,
        trace: Option<TraceParent>,
    ) -> Self {
        Self {
            publisher,
            message_id,
            origin,
            trace,
        }
    }

    /// Publishes `value` to the default topic, keyed like the event being handled and carrying its
    /// `message_id` as `callback_id`.
    pub async fn publish<T: EventSchema>(&self, value: T) -> Result<()> {
        let route = Route {
            topic: None,
            key: self.origin.key.as_deref(),
            callback_id: Some(self.message_id.clone()),
            trace: Some(self.trace.map_or_else(TraceParent::new_root, |t| t.child())),
        };
        self.publisher.publish_routed(&value, route).await.map(drop)
    }

    /// The trace context of the event being handled (its `traceparent` header), if it had one.
    /// Events published through this context continue it, or start a new trace without one.
    pub fn trace(&self) -> Option<TraceParent> {
        self.trace
    }

    /// The publisher, for events that are not correlated with the event being handled.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }
}
