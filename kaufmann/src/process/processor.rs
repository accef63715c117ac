//! One message, start to finish: decode (through the registry cache), route to its handler, run
//! it with the error policy (retries, error event, dead-letter topic). The engine feeds it from the
//! consumer; the test bus (`testing`, behind the `testing` feature) feeds it directly.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::message::{Header, OwnedHeaders};
use tracing::Instrument;

use crate::codec::kaufmann_ex;
use crate::codec::schema::wire;
use crate::config::{Config, Unhandled, WireFormat};
use crate::envelope::{Metadata, Origin};
use crate::error::{CodecError, Error, RegistryError, Result};
use crate::fast_map::QuickState;
use crate::observe::health::Dependency;
use crate::observe::metrics::{Metrics, Outcome};
use crate::process::error_event;
use crate::process::handler::{HandlerTable, Incoming};
use crate::publish::publisher::{Context, Outgoing, Publisher, Route};
use crate::publish::trace::{TraceParent, TRACEPARENT};
use crate::registry::bounded::Bounded;
use crate::registry::{RegisteredSchema, SchemaRegistry};

/// A fetched message, detached from the consumer.
pub(crate) struct Job {
    pub(crate) origin: Source,
    /// The record's value, shared with each attempt's handler instead of copied.
    pub(crate) value: Option<Arc<[u8]>>,
    /// The record's headers, read once from the consumer (no further calls into librdkafka).
    pub(crate) headers: RecordHeaders,
}

/// Where a fetched message came from, as its job keeps it: the topic's name shared by every job
/// of the topic, the key shared with the handler's context (the event gets an [`Origin`] of its
/// own).
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<Arc<[u8]>>,
}

impl Source {
    /// The event's copy.
    fn origin(&self) -> Origin {
        Origin {
            topic: String::from(&*self.topic),
            partition: self.partition,
            offset: self.offset,
            key: self.key.as_deref().map(<[u8]>::to_vec),
        }
    }
}

/// A record's headers in one buffer (one allocation however many headers): for each header the
/// key's length, the value's length (`u32::MAX` for no value), both as 4 little-endian bytes, then
/// the key and the value.
#[derive(Debug, Default, Clone)]
pub(crate) struct RecordHeaders(Vec<u8>);

/// Marks a header without a value.
const NO_VALUE: u32 = u32::MAX;

impl RecordHeaders {
    /// Copies header pairs (name, value).
    pub(crate) fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    ) -> Self {
        let mut buffer = Vec::with_capacity(256);
        for (key, value) in pairs {
            let (Ok(key_len), Ok(value_len)) = (
                u32::try_from(key.len()),
                value.map_or(Ok(NO_VALUE), |v| u32::try_from(v.len())),
            ) else {
                continue;
            };
            buffer.extend_from_slice(&key_len.to_le_bytes());
            buffer.extend_from_slice(&value_len.to_le_bytes());
            buffer.extend_from_slice(key.as_bytes());
            buffer.extend_from_slice(value.unwrap_or_default());
        }
        Self(buffer)
    }

    /// The headers, in order, as (name, value).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        // Keys were copied from `&str`s, so they are UTF-8.
        self.byte_pairs()
            .filter_map(|(key, value)| Some((std::str::from_utf8(key).ok()?, value)))
    }

    /// The headers, in order, as (name, value), the names as bytes (not checked for UTF-8 again).
    pub(crate) fn byte_pairs(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        let mut rest = self.0.as_slice();
        std::iter::from_fn(move || {
            let (key_len, after) = rest.split_first_chunk::<4>()?;
            let (value_len, after) = after.split_first_chunk::<4>()?;
            let key_len = usize::try_from(u32::from_le_bytes(*key_len)).ok()?;
            let value_len = u32::from_le_bytes(*value_len);
            let (key, after) = after.split_at_checked(key_len)?;
            let (value, after) = if value_len == NO_VALUE {
                (None, after)
            } else {
                let (value, after) = after.split_at_checked(usize::try_from(value_len).ok()?)?;
                (Some(value), after)
            };
            rest = after;
            Some((key, value))
        })
    }
}

/// Finds writer schemas by id, asking the registry once per id. Entries are shared, so a hit
/// costs one reference count, not a copy of the subject and schema handles.
struct Decoder {
    registry: Arc<dyn SchemaRegistry>,
    /// Where the registry's reachability is reported.
    metrics: Arc<Metrics>,
    cache: Bounded<u32, Arc<RegisteredSchema>, QuickState>,
    /// Ids the registry does not have (kept for [`MISS_TTL`]).
    misses: Bounded<u32, ()>,
    /// `kaufmann_ex`: the latest schema of each subject (kept for [`LATEST_TTL`]).
    latest: Bounded<String, Arc<RegisteredSchema>>,
}

/// The least time between two warnings about messages no handler serves.
const UNHANDLED_LOG: Duration = Duration::from_secs(10);

/// The most schemas kept by id (a service sees a few; the bound is for the worst case).
const MAX_SCHEMAS: usize = 10_000;

/// How long the latest schema of a subject is trusted (`kaufmann_ex` messages name no schema
/// id, so a new version is seen when this passes).
const LATEST_TTL: Duration = Duration::from_secs(30);

/// How long a schema id the registry does not have is answered from memory: messages with that id
/// fail at once (dead letter, kind `registry`) without asking the registry again.
pub const MISS_TTL: Duration = Duration::from_secs(30);

/// The most unknown ids remembered (garbage ids cannot grow memory without bound).
const MAX_MISSES: usize = 10_000;

impl Decoder {
    /// The writer schema `id`, if it was fetched already.
    fn cached(&self, id: u32) -> Option<Arc<RegisteredSchema>> {
        self.cache.get(&id)
    }

    async fn writer(&self, id: u32) -> Result<Arc<RegisteredSchema>, Failure> {
        if let Some(found) = self.cached(id) {
            return Ok(found);
        }
        if let Some(((), age)) = self.misses.get_with_age(&id) {
            return Err(permanent(
                "registry",
                &format_args!(
                    "schema id {id} is not in the registry (it said so {age:.0?} ago; asked again \
                     after {MISS_TTL:?})"
                ),
            ));
        }
        let found = match self.registry.schema_by_id(id).await {
            Ok(found) => Arc::new(found),
            Err(err) => {
                if matches!(err, RegistryError::SchemaNotFound { .. }) {
                    self.misses.insert(id, ());
                }
                return Err(self.registry_failure(&err.into()));
            }
        };
        self.metrics.health.registry.set_up();
        self.cache.insert(id, found.clone());
        Ok(found)
    }

    /// The latest schema of `subject` (for `kaufmann_ex` messages), asked for again after
    /// [`LATEST_TTL`].
    async fn latest(&self, subject: &str) -> Result<Arc<RegisteredSchema>, Failure> {
        if let Some(found) = self.latest.get(subject) {
            return Ok(found);
        }
        let latest = self
            .registry
            .latest(subject)
            .await
            .map_err(|e| self.registry_failure(&e.into()))?;
        self.metrics.health.registry.set_up();
        let found = Arc::new(RegisteredSchema::new(latest.id, subject, latest.schema));
        self.latest.insert(subject.to_owned(), found.clone());
        Ok(found)
    }

    /// A registry error as a failure: an outage (the registry is down, overloaded or refuses
    /// the credentials: the message waits) or permanent (it answered, and retrying cannot help).
    fn registry_failure(&self, error: &Error) -> Failure {
        if let Some(of) = outage_of(error, &self.metrics) {
            return Failure::outage(of, error, &self.metrics);
        }
        permanent("registry", error)
    }
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
    /// Worth retrying: the handler failed, panicked or timed out.
    Transient { kind: &'static str, error: String },
    /// Retrying cannot help: the bytes are not a Kaufmann message, or no handler exists.
    Permanent { kind: &'static str, error: String },
    /// Not the message's fault: the registry or the broker is down. The message waits for it
    /// and tries again, without spending a retry.
    Outage { of: Outage },
}

impl Failure {
    /// An outage of `of`, reported to the health state.
    fn outage(of: Outage, error: &dyn std::fmt::Display, metrics: &Metrics) -> Self {
        of.dependency(metrics).set_down(&error.to_string());
        Self::Outage { of }
    }
}

/// A dependency that can be down.
#[derive(Debug, Clone, Copy)]
enum Outage {
    Registry,
    Broker,
}

impl Outage {
    fn dependency(self, metrics: &Metrics) -> &Dependency {
        match self {
            Self::Registry => &metrics.health.registry,
            Self::Broker => &metrics.health.broker,
        }
    }
}

/// The longest wait between two tries of a message during an outage (a dependency that comes
/// back wakes the waiting messages at once).
const OUTAGE_MAX_WAIT: Duration = Duration::from_secs(5);

/// Whether `error` says a dependency is down, rather than anything about the message: the
/// registry unreachable, answering 5xx or 429, or refusing the credentials; a broker error of
/// the cluster (no broker, timeouts, no leader), or any error while the broker is known to be down.
fn outage_of(error: &Error, metrics: &Metrics) -> Option<Outage> {
    use rdkafka::types::RDKafkaErrorCode as Code;
    match error {
        Error::Registry(RegistryError::Unreachable { .. } | RegistryError::Unauthorized { .. }) => {
            Some(Outage::Registry)
        }
        Error::Registry(RegistryError::Server { status, .. })
            if *status >= 500 || *status == 429 =>
        {
            Some(Outage::Registry)
        }
        Error::Kafka { source, .. } => match source.rdkafka_error_code() {
            Some(
                Code::AllBrokersDown
                | Code::BrokerTransportFailure
                | Code::MessageTimedOut
                | Code::RequestTimedOut
                | Code::NetworkException
                | Code::LeaderNotAvailable
                | Code::NotLeaderForPartition
                | Code::NotEnoughReplicas
                | Code::NotEnoughReplicasAfterAppend
                | Code::QueueFull,
            ) => Some(Outage::Broker),
            _ if !metrics.health.broker.is_up() => Some(Outage::Broker),
            _ => None,
        },
        _ if !metrics.health.broker.is_up() => Some(Outage::Broker),
        _ => None,
    }
}

/// Runs messages through decode, handler and error policy.
pub(crate) struct Processor {
    pub(crate) metrics: Arc<Metrics>,
    handlers: HandlerTable,
    decoder: Decoder,
    pub(crate) publisher: Publisher,
    config: Config,
    /// When an unhandled message was last logged, and the unhandled count then.
    unhandled_logged: Mutex<Option<(Instant, u64)>>,
}

impl Processor {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        handlers: HandlerTable,
        registry: Arc<dyn SchemaRegistry>,
        publisher: Publisher,
        config: Config,
    ) -> Self {
        // The depth limit holds for every decoder of the process, generated readers included.
        crate::codec::depth::set_max_depth(config.max_nesting_depth);
        Self {
            metrics: metrics.clone(),
            handlers,
            decoder: Decoder {
                registry,
                metrics,
                cache: Bounded::new(MAX_SCHEMAS),
                misses: Bounded::with_ttl(MAX_MISSES, MISS_TTL),
                latest: Bounded::with_ttl(MAX_SCHEMAS, LATEST_TTL),
            },
            publisher,
            config,
            unhandled_logged: Mutex::default(),
        }
    }

    /// The registry writer schemas come from.
    pub(crate) fn registry(&self) -> &dyn SchemaRegistry {
        &*self.decoder.registry
    }

    /// Runs one message through decode and handler with the error policy; never fails.
    ///
    /// The futures below take their arguments by reference: a future keeps a copy of each
    /// argument it takes by value, and every message's future is allocated once, so it stays
    /// small.
    pub(crate) async fn process(&self, job: &Job) {
        // One pass over the headers: the metadata, and the `traceparent` on the way.
        let mut trace = None;
        let mut meta =
            Metadata::from_byte_pairs(job.headers.byte_pairs().inspect(|(key, value)| {
                if *key == TRACEPARENT.as_bytes() {
                    trace = value
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(TraceParent::parse);
                }
            }));
        let span = tracing::info_span!(
            "message",
            event = %meta.message_name,
            topic = %job.origin.topic,
            partition = job.origin.partition,
            offset = job.origin.offset,
            message_id = %meta.message_id,
            trace_id = tracing::field::Empty,
            attempt = 1_u32,
        );
        if let (Some(trace), false) = (trace, span.is_disabled()) {
            span.record("trace_id", trace.trace_id_hex());
        }
        self.process_traced(job, &mut meta, trace.as_ref())
            .instrument(span)
            .await;
    }

    async fn process_traced(&self, job: &Job, meta: &mut Metadata, trace: Option<&TraceParent>) {
        self.metrics.record(&meta.message_name, Outcome::Consumed);
        let mut attempt = 0_u32;
        let mut outage_wait = Duration::from_millis(200);
        let failure = loop {
            attempt += 1;
            if attempt > 1 {
                // (The span starts at 1: no look-up of the current span for most messages.)
                tracing::Span::current().record("attempt", attempt);
            }
            let policy = self.config.error_policy(&meta.message_name);
            let outcome = self.attempt(job, meta, trace, policy.handler_timeout).await;
            if outcome.is_err() {
                self.restore(job, meta);
            }
            match outcome {
                Ok(()) => return,
                Err(Failure::Permanent { kind, error }) => break (kind, error),
                Err(Failure::Outage { of }) => {
                    // Not an attempt: the same one again when the dependency is back.
                    attempt -= 1;
                    tracing::debug!(at = %place(&job.origin), ?of, "waiting for {of:?} (up to {outage_wait:?})");
                    Box::pin(of.dependency(&self.metrics).wait_up(outage_wait)).await;
                    outage_wait = (outage_wait * 2).min(OUTAGE_MAX_WAIT);
                }
                Err(Failure::Transient { kind, error }) => {
                    match policy.retry.backoff(attempt + 1) {
                        Some(wait) => {
                            self.metrics.record(&meta.message_name, Outcome::Retried);
                            tracing::warn!(at = %place(&job.origin), event = %meta.message_name, attempt, "{kind}: {error}; retrying in {wait:?}");
                            // Boxed, like the timer below: every message's future stays small
                            // (under the allocator's fast sizes) for the rare message that waits.
                            Box::pin(tokio::time::sleep(wait)).await;
                        }
                        None => break (kind, error),
                    }
                }
            }
        };
        // Boxed: the rare path stays out of every message's future.
        Box::pin(self.give_up(job, meta, attempt, failure)).await;
    }

    /// Reads the metadata again after an attempt gave it to the handler's event (Confluent
    /// format: the event takes it instead of a copy), for the retry, the logs and the error event.
    /// (No registry request: an attempt that reached the handler found the schema in the cache.)
    fn restore(&self, job: &Job, meta: &mut Metadata) {
        if self.config.wire_format != WireFormat::Confluent || !meta.message_name.is_empty() {
            return;
        }
        *meta = Metadata::from_byte_pairs(job.headers.byte_pairs());
        let writer = job
            .value
            .as_deref()
            .and_then(|value| wire::split(value).ok())
            .and_then(|(id, _)| self.decoder.cached(id));
        if let Some(writer) = writer {
            route(&writer, &job.origin.topic, &self.handlers, meta);
        }
    }

    /// One attempt: decode and handler, a panic caught, within `limit`. A handler that finishes at
    /// its first poll (most do: they wait for nothing) needs no timer; the limit counts from its
    /// first wait.
    async fn attempt(
        &self,
        job: &Job,
        meta: &mut Metadata,
        trace: Option<&TraceParent>,
        limit: Duration,
    ) -> Result<(), Failure> {
        let mut run =
            std::pin::pin!(AssertUnwindSafe(self.dispatch(job, meta, trace)).catch_unwind());
        let first = std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx))).await;
        let finished = match first {
            Poll::Ready(finished) => finished,
            Poll::Pending => match Box::pin(tokio::time::timeout(limit, run)).await {
                Ok(finished) => finished,
                Err(_) => {
                    return Err(Failure::Transient {
                        kind: "timeout",
                        error: format!("handler did not finish within {limit:?}"),
                    })
                }
            },
        };
        finished.unwrap_or_else(|panic| {
            Err(Failure::Transient {
                kind: "panic",
                error: panic_message(&*panic),
            })
        })
    }

    /// Decodes and runs the handler once. Completes `known` (the metadata from the headers) with
    /// what the message itself says (event name, `kaufmann_ex` metadata).
    async fn dispatch(
        &self,
        job: &Job,
        known: &mut Metadata,
        trace: Option<&TraceParent>,
    ) -> Result<(), Failure> {
        let value = job
            .value
            .clone()
            .ok_or_else(|| permanent("decode", &CodecError::NoPayload))?;
        if value.len() > self.config.max_message_bytes {
            return Err(permanent(
                "decode",
                &CodecError::TooLarge {
                    len: value.len(),
                    limit: self.config.max_message_bytes,
                },
            ));
        }
        let (writer, schema_id, payload) = self.writer_for(job, &value, known).await?;
        let event = known.message_name.as_str();
        let Some(handler) = self.handlers.get(event) else {
            let total = self.metrics.count_unhandled();
            self.warn_unhandled(job, event, &writer, schema_id, total);
            return match self.config.unhandled {
                Unhandled::Commit => Ok(()),
                Unhandled::DeadLetter => Err(permanent(
                    "unhandled",
                    &format_args!("no handler for event `{event}`"),
                )),
            };
        };
        let started = Instant::now();
        // Built in a block: what the handler takes is not kept in this future while it runs.
        let running = {
            let context = Context::new(
                self.publisher.clone(),
                handler.event,
                known,
                job.origin.key.clone(),
                trace.copied(),
            );
            let incoming = Incoming {
                resolve: !handler.reads_as_written(&writer.canonical),
                writer: Arc::clone(&writer),
                schema_id,
                value,
                payload,
                // Confluent: the event takes the metadata; `restore` reads it again when the
                // attempt fails. `kaufmann_ex` metadata comes from the body: a copy.
                meta: match self.config.wire_format {
                    WireFormat::Confluent => std::mem::take(known),
                    WireFormat::KaufmannEx => known.clone(),
                },
                origin: job.origin.origin(),
            };
            (handler.call)(incoming, context)
        };
        match running.await {
            Ok(()) => {
                self.metrics
                    .record(handler.event, Outcome::Handled(started.elapsed()));
                Ok(())
            }
            Err(err @ Error::Codec(_)) => Err(permanent("decode", &err)),
            Err(err) => Err(match outage_of(&err, &self.metrics) {
                Some(of) => Failure::outage(of, &err, &self.metrics),
                None => Failure::Transient {
                    kind: "handler",
                    error: err.to_string(),
                },
            }),
        }
    }

    /// A message no handler serves: a warning naming it, at most one per [`UNHANDLED_LOG`] (with
    /// the count of those not logged), whatever the policy then does with it.
    fn warn_unhandled(
        &self,
        job: &Job,
        event: &str,
        writer: &RegisteredSchema,
        schema_id: u32,
        total: u64,
    ) {
        let mut last = self
            .unhandled_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|(at, _)| at.elapsed() < UNHANDLED_LOG) {
            return;
        }
        let since = last.map_or(0, |(_, count)| total.saturating_sub(count + 1));
        *last = Some((Instant::now(), total));
        let policy = match self.config.unhandled {
            Unhandled::Commit => "committed without handling (unhandled = \"commit\")",
            Unhandled::DeadLetter => "dead-lettered (unhandled = \"dead_letter\")",
        };
        tracing::warn!(
            at = %place(&job.origin),
            event,
            subject = %writer.subject,
            schema_id,
            unhandled_total = total,
            "no handler for event `{event}`: {policy}; {since} more since the last such warning"
        );
    }

    /// The writer schema of a message (and, for `kaufmann_ex`, its decoded payload), completing
    /// `known` with the event name and metadata the message carries.
    async fn writer_for(
        &self,
        job: &Job,
        value: &[u8],
        known: &mut Metadata,
    ) -> Result<Writer, Failure> {
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
            let writer = self.decoder.latest(subject).await?;
            let (meta, payload) = kaufmann_ex::decode_parts(key, &writer.schema, value)
                .map_err(|e| permanent("decode", &e))?;
            *known = meta;
            if known.message_name.is_empty() {
                kaufmann_ex::event_name(key).clone_into(&mut known.message_name);
            }
            return Ok((writer, 0, Some(payload)));
        }
        let (schema_id, _) = wire::split(value).map_err(|e| permanent("decode", &e))?;
        let writer = self.decoder.writer(schema_id).await?;
        route(&writer, &job.origin.topic, &self.handlers, known);
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
        self.metrics.record(event, Outcome::Failed);
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
        self.metrics.record(event, Outcome::DeadLettered);
        tracing::error!(at = %place, event, attempts, dead_letter_topic = %topic, "{kind}: {error}; sent to the dead-letter topic");
    }

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
                key: None,
                inherited_key: job.origin.key.as_deref(),
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
    for (key, value) in job.headers.iter() {
        headers = headers.insert(Header { key, value });
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
        (dead_letter::SOURCE_TOPIC, &*job.origin.topic),
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

/// The event of a message whose headers name none (a producer other than Kaufmann), in this order:
/// the writer schema's full record name, when a handler serves that event (an event's record is
/// named for it, which `schemas!` enforces); else the event its subject names under each subject
/// strategy (`<event>-value`, `<record>`, `<topic>-<record>`), when a handler serves that one;
/// else the record's full name (or the subject) as it is, which no handler serves.
fn route(writer: &RegisteredSchema, topic: &str, handlers: &HandlerTable, meta: &mut Metadata) {
    if !meta.message_name.is_empty() {
        return;
    }
    let record = match &*writer.schema {
        apache_avro::Schema::Record(record) => Some(record.name.fullname(None)),
        _ => None,
    };
    if let Some(record) = record.as_deref().filter(|r| handlers.get(r).is_some()) {
        record.clone_into(&mut meta.message_name);
        return;
    }
    let subject = writer.subject.as_str();
    let named = [
        subject.strip_suffix("-value"),
        Some(subject),
        subject
            .strip_prefix(topic)
            .and_then(|rest| rest.strip_prefix('-')),
    ];
    let found = named
        .into_iter()
        .flatten()
        .find(|e| handlers.get(e).is_some());
    match found.or(record.as_deref()) {
        Some(event) => event.clone_into(&mut meta.message_name),
        None => subject.clone_into(&mut meta.message_name),
    }
}

/// `topic[partition]@offset`, for logs.
fn place(origin: &Source) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_headers_keep_every_pair_in_order() {
        let pairs: [(&str, Option<&[u8]>); 4] = [
            ("message_id", Some(b"abc")),
            ("empty", Some(b"")),
            ("none", None),
            ("", Some(&[0xff, 0x00])),
        ];
        let headers = RecordHeaders::from_pairs(pairs);
        assert_eq!(headers.iter().collect::<Vec<_>>(), pairs);
        assert_eq!(RecordHeaders::default().iter().count(), 0);
    }
}
