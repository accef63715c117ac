//! Testing handlers without a broker: the test bus.
//!
//! [`TestBus`] runs the handlers registered in the test binary through the same path as a
//! service (the envelope, the configured wire format, Avro encoding and decoding with the real
//! schemas, the error policy with its retries, error events and dead letters), with an in-memory
//! registry and an in-memory producer instead of Kafka. Each bus has its own registry and
//! records, so tests run in parallel without sharing anything, and nothing touches the network.
//!
//! ```
//! use kaufmann::testing::TestBus;
//! use kaufmann::{Context, Event};
//!
//! kaufmann::schemas!("../schemas");
//!
//! #[kaufmann::given_event("command.user.create")]
//! async fn create_user(event: Event<CommandUserCreate>, ctx: Context) -> kaufmann::Result<()> {
//!     let c = event.payload;
//!     ctx.publish(EventUserCreated { id: c.id, name: c.name, email: c.email }).await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let bus = TestBus::new();
//! bus.given_event(CommandUserCreate { id: "u1".into(), name: "Ada".into(), email: "ada@example.org".into() })
//!     .await;
//! let created = bus.then_event::<EventUserCreated>().await;
//! assert_eq!(created.payload.name, "Ada");
//! bus.then_no_event().await;
//! # }
//! ```

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering as Atomic};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use apache_avro::types::Value;
use rdkafka::message::Headers;

use crate::codec::error_event;
use crate::codec::format::WriterRef;
use crate::codec::schema::EventSchema;
use crate::config::Config;
use crate::envelope::{header, CallbackTopic, Metadata};
use crate::observe::metrics::Metrics;
use crate::observe::stats::Stats;
use crate::process::dead_letter;
use crate::process::handler::HandlerTable;
use crate::process::message::{Job, RecordHeaders, Source};
use crate::process::processor::Processor;
use crate::process::state::States;
use crate::publish::memory_sink::MemorySink;
pub use crate::publish::memory_sink::SentRecord;
use crate::publish::publisher::{PublishOptions, Publisher};
use crate::registry::{MemoryRegistry, SchemaRegistry};

mod broker;

pub use broker::BrokerTest;

/// The callback topic of events given with [`TestBus::given_request`]; replies go there.
pub const REPLY_TOPIC: &str = "test-bus.replies";

/// A published event, decoded: its payload, metadata, topic and key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Published<T> {
    /// The decoded payload.
    pub payload: T,
    /// The envelope's metadata.
    pub meta: Metadata,
    /// The topic it was published to.
    pub topic: String,
    /// Its Kafka key.
    pub key: Option<Vec<u8>>,
}

/// A published `event.error.<event>`, decoded.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ErrorEvent {
    /// The event that failed.
    pub event: String,
    /// The last error.
    pub error: String,
    /// `handler`, `panic`, `timeout`, `permanent`, `decode`, `registry`, `state` or `unhandled` (empty under
    /// `kaufmann_ex`, whose error payload has only the error).
    pub kind: String,
    /// How many attempts were made (0 under `kaufmann_ex`).
    pub attempts: i32,
    /// The error event's metadata (its `callback_id` is the failed event's `message_id`).
    pub meta: Metadata,
    /// The topic it was published to.
    pub topic: String,
}

/// A broker-free bus for testing handlers: give it events, then assert on what was published.
pub struct TestBus {
    processor: Processor,
    stats: Stats,
    sink: Arc<MemorySink>,
    /// Encodes given events exactly as a publishing service would.
    input: Publisher,
    input_sink: Arc<MemorySink>,
    registry: Arc<MemoryRegistry>,
    config: Config,
    /// Indexes of the records assertions have taken.
    claimed: Mutex<Vec<usize>>,
    offset: AtomicI64,
    timeout: Duration,
    quiet: Duration,
    feed_back: bool,
    /// (handler, event) pairs a handler published without declaring them, in the order seen.
    undeclared: Mutex<Vec<(String, String)>>,
}

impl Debug for TestBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBus")
            .field("published", &self.records().len())
            .finish_non_exhaustive()
    }
}

impl Default for TestBus {
    fn default() -> Self {
        Self::new()
    }
}

impl TestBus {
    /// A bus with the defaults of a service named `test`, retries 1 ms apart (the count is the
    /// configured one), and every handler of this test binary.
    pub fn new() -> Self {
        let mut config = Config::new("test");
        config.errors.retry.initial_backoff = Duration::from_millis(1);
        config.errors.retry.max_backoff = Duration::from_millis(1);
        Self::with_config(config)
    }

    /// A bus with `config` (its error policy, wire format, topics, routes and service name apply;
    /// the brokers and registry URL do not). Panics when two handlers claim one event.
    pub fn with_config(config: Config) -> Self {
        let handlers = HandlerTable::collect().unwrap_or_else(|err| panic!("{err}"));
        let registry = Arc::new(MemoryRegistry::new(&format!(
            "mock://test-bus-{}",
            uuid::Uuid::new_v4().simple()
        )));
        let shared: Arc<dyn SchemaRegistry> = registry.clone();
        let metrics = Arc::new(Metrics::default());
        // In memory: nothing can be down.
        metrics.health.registry.set_up();
        metrics.health.broker.set_up();
        let sink = Arc::new(MemorySink::default());
        let publisher =
            Publisher::in_memory(sink.clone(), shared.clone(), metrics.clone(), &config);
        let input_sink = Arc::new(MemorySink::default());
        let mut caller = config.clone();
        "test-bus".clone_into(&mut caller.service_name);
        let input =
            Publisher::in_memory(input_sink.clone(), shared.clone(), metrics.clone(), &caller);
        let stats = Stats::new(metrics.clone());
        let processor = Processor::new(
            metrics,
            handlers,
            shared,
            publisher,
            config.clone(),
            States::new(),
        );
        Self {
            processor,
            stats,
            sink,
            input,
            input_sink,
            registry,
            config,
            claimed: Mutex::default(),
            offset: AtomicI64::new(0),
            timeout: Duration::from_secs(1),
            quiet: Duration::from_millis(20),
            feed_back: false,
            undeclared: Mutex::default(),
        }
    }

    /// How long `then_*` wait for an event to be published (default 1 s), and how long
    /// `then_no_event` waits for one that should not come (default 20 ms).
    #[must_use]
    pub fn with_timeouts(mut self, wait: Duration, quiet: Duration) -> Self {
        self.timeout = wait;
        self.quiet = quiet;
        self
    }

    /// Gives the handlers `value`, which they take as `State<T>` (a fake of a database, say).
    /// Panics when a value of that type was given already, as a service refuses to start then.
    #[must_use]
    pub fn with_state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        let states = self.processor.states_mut();
        states.insert(value);
        if let Some(why) = states.refused() {
            panic!("{why}");
        }
        self
    }

    /// Panics, naming the handler and the type, when the handler of `event` takes a `State<T>`
    /// the bus was not given (a service would refuse to start).
    fn check_states(&self, event: &str) {
        if let Some(handler) = self.processor.handlers().get(event) {
            let missing = handler.missing_states(self.processor.states());
            assert!(
                missing.is_empty(),
                "{}: give it with `TestBus::new().with_state(..)`",
                missing.join("; ")
            );
        }
    }

    /// Also delivers every event the handlers publish to the handlers (for chains of events).
    #[must_use]
    pub fn feeding_back(mut self) -> Self {
        self.feed_back = true;
        self
    }

    /// The in-memory registry the bus encodes and decodes with.
    pub fn registry(&self) -> &Arc<MemoryRegistry> {
        &self.registry
    }

    /// Counters of what the handlers did.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Gives the handlers `value`, encoded and enveloped as a service publishes it, and waits
    /// until its handler (with retries, error events and dead letters) has finished. Returns the
    /// metadata it was given with.
    pub async fn given_event<T: EventSchema>(&self, value: T) -> Metadata {
        self.give(value, PublishOptions::new()).await
    }

    /// [`given_event`](Self::given_event) with [`REPLY_TOPIC`] as the callback topic, so that the
    /// handler can answer with `ctx.reply` (see [`then_reply`](Self::then_reply)).
    pub async fn given_request<T: EventSchema>(&self, value: T) -> Metadata {
        let callback = CallbackTopic {
            topic: Some(REPLY_TOPIC.to_owned()),
            partition: None,
        };
        self.give(value, PublishOptions::new().callback(callback))
            .await
    }

    /// Gives the handlers a record whose value is `bytes` as they are, named `event` in its
    /// headers: for what a broken producer sends.
    pub async fn given_raw(&self, event: &str, bytes: Vec<u8>) {
        let meta = Metadata::new(event, "test-bus", "test-bus-1");
        let headers = meta.to_headers();
        let headers = RecordHeaders::from_pairs(headers.iter().map(|h| (h.key, h.value)));
        let job = self.job(None, Some(bytes), headers);
        self.run(event, job).await;
    }

    /// Gives a batch handler `values` as one batch (in order), encoded as a service publishes
    /// them, and waits until it and the error policy have finished with every one. (A
    /// `given_event` reaches a batch handler as a batch of one.) Returns their metadata.
    pub async fn given_batch<T: EventSchema>(&self, values: Vec<T>) -> Vec<Metadata> {
        self.check_states(T::EVENT_NAME);
        let mut metas = Vec::with_capacity(values.len());
        let mut jobs = Vec::with_capacity(values.len());
        for value in values {
            let (meta, job) = self.encode(value, PublishOptions::new()).await;
            metas.push(meta);
            jobs.push(job);
        }
        let before = self.sent_count();
        self.processor.process_batch(&jobs).await;
        self.note_undeclared(T::EVENT_NAME, before);
        metas
    }

    /// `value` encoded and enveloped as a service publishes it, as a consumed record.
    async fn encode<T: EventSchema>(&self, value: T, options: PublishOptions) -> (Metadata, Job) {
        let topic = self.config.topics.first().cloned().unwrap_or_default();
        let meta = self
            .input
            .publish_with(value, options.topic(topic))
            .await
            .unwrap_or_else(|err| panic!("the test bus could not encode the given event: {err}"));
        let record = self
            .input_sink
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| panic!("the test bus lost the given event"));
        let headers = sent_headers(&record);
        (meta, self.job(record.key, record.value, headers))
    }

    async fn give<T: EventSchema>(&self, value: T, options: PublishOptions) -> Metadata {
        self.check_states(T::EVENT_NAME);
        let (meta, job) = self.encode(value, options).await;
        self.run(T::EVENT_NAME, job).await;
        meta
    }

    fn job(&self, key: Option<Vec<u8>>, value: Option<Vec<u8>>, headers: RecordHeaders) -> Job {
        Job {
            origin: Source {
                topic: Arc::from(self.config.topics.first().map_or("", String::as_str)),
                partition: 0,
                offset: self.offset.fetch_add(1, Atomic::SeqCst),
                key: key.map(Arc::from),
            },
            value: value.map(Arc::from),
            headers,
        }
    }

    /// Processes `job` (a message of `event`), then (feeding back) every event the handlers
    /// published meanwhile.
    async fn run(&self, event: &str, job: Job) {
        let mut seen = self.records().len();
        self.process_one(event, &job).await;
        if !self.feed_back {
            return;
        }
        for _ in 0..100 {
            let records = self.records();
            if records.len() == seen {
                return;
            }
            for record in &records[seen..] {
                if is_event(record) {
                    let job = self.job(
                        record.key.clone(),
                        record.value.clone(),
                        sent_headers(record),
                    );
                    self.process_one(name(record), &job).await;
                }
            }
            seen = records.len();
        }
        panic!("the handlers went on publishing after 100 rounds of feeding back: a loop?");
    }

    /// Processes `job`, a message of `event`, noting what its handler published undeclared.
    async fn process_one(&self, event: &str, job: &Job) {
        let before = self.sent_count();
        if let Some(unconfirmed) = self.processor.process(job).await {
            self.processor.confirm(job, unconfirmed).await;
        }
        self.note_undeclared(event, before);
    }

    /// How many records were published so far.
    fn sent_count(&self) -> usize {
        self.sink
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Warns (once per handler and event) about each event published since the first `before`
    /// records that the handler of `event` does not declare in `publishes = [..]`: the AsyncAPI
    /// document would miss it.
    fn note_undeclared(&self, event: &str, before: usize) {
        let Some(handler) = self.processor.handlers().get(event) else {
            return;
        };
        let published: Vec<String> = self
            .sink
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(before..)
            .unwrap_or_default()
            .iter()
            .filter(|r| is_event(r))
            .map(|r| name(r).to_owned())
            .collect();
        for sent in &published {
            let sent = sent.as_str();
            if sent.starts_with(error_event::PREFIX) || handler.publishes.contains(&sent) {
                continue;
            }
            let pair = (handler.describe(), sent.to_owned());
            let mut undeclared = self
                .undeclared
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !undeclared.contains(&pair) {
                eprintln!(
                    "warning: handler {} published `{sent}`, which it does not declare: add it \
                     to `publishes = [..]` in its #[given_event] so that the service's AsyncAPI \
                     document lists it",
                    pair.0
                );
                undeclared.push(pair);
            }
        }
    }

    /// Each (handler, event) where a handler published an event it does not declare in
    /// `publishes = [..]` (as `name (file:line)` and the event name), in the order first seen.
    /// Error events are the framework's and never counted.
    pub fn undeclared_publishes(&self) -> Vec<(String, String)> {
        self.undeclared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Everything published so far (events, error events and dead letters), in order.
    pub fn records(&self) -> Vec<SentRecord> {
        self.sink
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (up to the timeout) for the first unclaimed record that `wanted` accepts, claims
    /// it and returns it; panics listing what was published otherwise.
    async fn take(&self, what: &str, wanted: impl Fn(&SentRecord) -> bool) -> SentRecord {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let arrived = self.sink.arrived.notified();
            if let Some(found) = self.claim(&wanted) {
                return found;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                if let Some(found) = self.claim(&wanted) {
                    return found;
                }
                panic!(
                    "expected {what} within {:?}, but the handlers published {}",
                    self.timeout,
                    self.listing()
                );
            }
        }
    }

    fn claim(&self, wanted: &impl Fn(&SentRecord) -> bool) -> Option<SentRecord> {
        let records = self.records();
        let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        let index = (0..records.len()).find(|i| !claimed.contains(i) && wanted(&records[*i]))?;
        claimed.push(index);
        Some(records[index].clone())
    }

    /// What was published, one line each, for failure messages.
    fn listing(&self) -> String {
        let records = self.records();
        if records.is_empty() {
            return "nothing".to_owned();
        }
        let claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        let lines: Vec<String> = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let what = r.header(dead_letter::ERROR).map_or_else(
                    || format!("`{}`", r.header(header::MESSAGE_NAME).unwrap_or("?")),
                    |error| format!("a dead letter ({error})"),
                );
                let taken = if claimed.contains(&i) {
                    " (already asserted)"
                } else {
                    ""
                };
                format!("\n  - {what} to topic `{}`{taken}", r.topic)
            })
            .collect();
        format!("{}:{}", records.len(), lines.concat())
    }

    /// The next published `T` (in publishing order, skipping other events), decoded with its
    /// metadata; panics listing what was published when none comes within the timeout.
    pub async fn then_event<T: EventSchema>(&self) -> Published<T> {
        let what = format!("an event `{}`", T::EVENT_NAME);
        let record = self
            .take(&what, |r| is_event(r) && name(r) == T::EVENT_NAME)
            .await;
        self.decode(&record).await
    }

    /// The next published `T` equal to `expected`; panics listing what was published otherwise.
    pub async fn then_event_eq<T: EventSchema + PartialEq + Debug>(
        &self,
        expected: &T,
    ) -> Published<T> {
        let found = self.then_event_where(|value: &T| value == expected).await;
        assert_eq!(&found.payload, expected);
        found
    }

    /// The next published `T` that `check` accepts; panics listing what was published otherwise.
    pub async fn then_event_where<T: EventSchema>(
        &self,
        check: impl Fn(&T) -> bool,
    ) -> Published<T> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let arrived = self.sink.arrived.notified();
            let records = self.records();
            for index in self.unclaimed() {
                let record = &records[index];
                if !is_event(record) || name(record) != T::EVENT_NAME {
                    continue;
                }
                let published: Published<T> = self.decode(record).await;
                if check(&published.payload) {
                    self.claimed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(index);
                    return published;
                }
            }
            assert!(
                tokio::time::timeout_at(deadline, arrived).await.is_ok(),
                "expected an event `{}` that passes the check within {:?}, but the handlers published {}",
                T::EVENT_NAME,
                self.timeout,
                self.listing()
            );
        }
    }

    /// The next `T` published to [`REPLY_TOPIC`] (an answer to [`given_request`](Self::given_request)).
    pub async fn then_reply<T: EventSchema>(&self) -> Published<T> {
        let what = format!("a reply `{}` on `{REPLY_TOPIC}`", T::EVENT_NAME);
        let record = self
            .take(&what, |r| {
                is_event(r) && name(r) == T::EVENT_NAME && r.topic == REPLY_TOPIC
            })
            .await;
        self.decode(&record).await
    }

    /// The next `event.error.<event>` published to the default topic, decoded.
    pub async fn then_error_event(&self, event: &str) -> ErrorEvent {
        let error_name = error_event::name(event);
        let default_topic = self.config.default_topic.clone();
        let what = format!("an error event `{error_name}`");
        let record = self
            .take(&what, |r| {
                is_event(r) && name(r) == error_name && r.topic == default_topic
            })
            .await;
        let meta = meta_of(&record);
        let value = self
            .decode_value(
                &record,
                &error_name,
                self.config.wire_format.codec().error_event_schema().1,
            )
            .await;
        let text = |field: &str| match record_field(&value, field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Union(_, inner)) => match &**inner {
                Value::String(s) => s.clone(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        ErrorEvent {
            event: event.to_owned(),
            error: text("error"),
            kind: text("kind"),
            attempts: match record_field(&value, "attempts") {
                Some(Value::Int(n)) => *n,
                _ => 0,
            },
            meta,
            topic: record.topic,
        }
    }

    /// The next record sent to a dead-letter topic (its headers name the error, the attempts and
    /// where it came from: see [`crate::wire::dead_letter`]).
    pub async fn then_dead_letter(&self) -> SentRecord {
        self.take("a dead letter", |r| r.header(dead_letter::ERROR).is_some())
            .await
    }

    /// Fails when any event (error events included) was published and not asserted, after
    /// waiting the quiet time for late ones.
    pub async fn then_no_event(&self) {
        tokio::time::sleep(self.quiet).await;
        let records = self.records();
        let left: Vec<usize> = self
            .unclaimed()
            .into_iter()
            .filter(|i| is_event(&records[*i]))
            .collect();
        assert!(
            left.is_empty(),
            "expected no more events, but {} were published and not asserted; the handlers published {}",
            left.len(),
            self.listing()
        );
    }

    fn unclaimed(&self) -> Vec<usize> {
        let count = self.records().len();
        let claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        (0..count).filter(|i| !claimed.contains(i)).collect()
    }

    async fn decode<T: EventSchema>(&self, record: &SentRecord) -> Published<T> {
        let value = self
            .decode_value(record, T::EVENT_NAME, T::SCHEMA_JSON)
            .await;
        let payload = T::from_avro(value).unwrap_or_else(|err| {
            panic!(
                "`{}` was published but does not decode as {}: {err}",
                T::EVENT_NAME,
                std::any::type_name::<T>()
            )
        });
        Published {
            payload,
            meta: meta_of(record),
            topic: record.topic.clone(),
            key: record.key.clone(),
        }
    }

    /// The Avro value of a published record's payload, read as `payload_json` reads it.
    async fn decode_value(&self, record: &SentRecord, event: &str, payload_json: &str) -> Value {
        let bytes = record.value.clone().unwrap_or_default();
        let fail = |err: &dyn std::fmt::Display| -> ! {
            panic!("`{event}` was published but does not decode: {err}")
        };
        let codec = self.config.wire_format.codec();
        let key = record.key.as_deref();
        let writer = match codec.writer_of(key, &bytes).unwrap_or_else(|e| fail(&e)) {
            WriterRef::Id(id) => self.registry.schema_by_id(id).await.map(|w| w.schema),
            WriterRef::Latest(subject) => self.registry.latest(subject).await.map(|w| w.schema),
            WriterRef::Reader => Ok(std::sync::Arc::new(apache_avro::Schema::Null)),
        }
        .unwrap_or_else(|e| fail(&e));
        let reader = apache_avro::Schema::parse_str(payload_json).unwrap_or_else(|e| fail(&e));
        let key = key
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or(event);
        codec
            .decode_value(key, &writer, &reader, &bytes)
            .unwrap_or_else(|e| fail(&e))
    }
}

fn name(record: &SentRecord) -> &str {
    record.header(header::MESSAGE_NAME).unwrap_or_default()
}

/// A sent record's headers, as the processor reads a consumed record's.
fn sent_headers(record: &SentRecord) -> RecordHeaders {
    RecordHeaders::from_pairs(record.header_pairs())
}

/// An event (not a dead letter).
fn is_event(record: &SentRecord) -> bool {
    record.header(dead_letter::ERROR).is_none() && !name(record).is_empty()
}

fn meta_of(record: &SentRecord) -> Metadata {
    Metadata::from_pairs(record.header_pairs())
}

fn record_field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine boxes each message's `process` future together with its job, its pool slot and
    /// an `Arc` of itself. That block has to stay within glibc's per-thread cache (requests up to
    /// 1,032 bytes): a larger one takes the allocator's slow path, `malloc_consolidate`
    /// included, for every message (about 11% more instructions per message in the engine,
    /// measured with callgrind).
    #[test]
    fn a_message_future_and_the_engine_state_fit_the_allocator_cache() {
        let bus = TestBus::new();
        let job = bus.job(None, None, RecordHeaders::default());
        let future = bus.processor.process(&job);
        let engine = size_of::<Job>()
            + size_of::<tokio::sync::OwnedSemaphorePermit>()
            + size_of::<Arc<()>>()
            + 1;
        let block = (size_of_val(&future) + engine).next_multiple_of(align_of_val(&future));
        assert!(block <= 1032, "{block} bytes");
    }
}
