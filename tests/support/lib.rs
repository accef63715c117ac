//! Helpers for the workspace tests: the test broker's address, unique names, topics, a `test.work`
//! event with a handler that records what it did, producing and reading back.

#![allow(clippy::implicit_hasher)]

pub mod hostile;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kaufmann::registry::{open_registry, subject_for};
use kaufmann::wire::{confluent, encode_body};
use kaufmann::{Event, EventSchema, Metadata, State};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

kaufmann::schemas!("schemas");

/// The environment variable `scripts/test` sets to the Apache Kafka broker's address
/// (`scripts/with-kafka`).
pub const BROKERS_VAR: &str = "TEST_KAFKA_BROKERS";

/// The value of `var`, which `scripts/test` sets. Without it the test is skipped with a note,
/// except under CI (`CI` set), where it fails.
pub fn from_test_stack(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{var} is not set under CI: run the suite with `bash scripts/test`"
            );
            eprintln!(
                "skipped: {var} is not set (run `bash scripts/test`, which starts the test stack)"
            );
            None
        }
    }
}

/// A child process, killed (if it still runs) when the test ends, however it ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A command running `binary` (a service) with none of this process's `KAUFMANN_*` and `OTEL_*`
/// variables, its standard output and error written to `log`.
pub fn service_command(binary: &str, log: &Path) -> Command {
    let mut command = Command::new(binary);
    for (key, _) in std::env::vars() {
        if key.starts_with("KAUFMANN_") || key.starts_with("OTEL_") {
            command.env_remove(key);
        }
    }
    let out = std::fs::File::create(log).unwrap();
    command.stderr(out.try_clone().unwrap()).stdout(out);
    command
}

/// The test broker's bootstrap address ([`from_test_stack`]).
pub fn broker() -> Option<String> {
    from_test_stack(BROKERS_VAR)
}

/// The environment variable `scripts/test` sets to Apicurio Registry's Confluent-compatible API
/// (`scripts/with-apicurio`).
pub const APICURIO_VAR: &str = "TEST_APICURIO_URL";

/// The independent registry's URL (Apicurio's `/apis/ccompat/v7`, [`from_test_stack`]).
pub fn apicurio() -> Option<String> {
    from_test_stack(APICURIO_VAR)
}

/// The test broker's secured listeners (`scripts/with-kafka`): TLS, and TLS + SASL (PLAIN) with
/// one user, certificates signed by the run's own CA.
#[derive(Debug, Clone)]
pub struct SecuredBroker {
    /// The TLS listener.
    pub tls: String,
    /// The TLS + SASL listener.
    pub sasl: String,
    /// The CA certificate (PEM file).
    pub ca: String,
    /// The SASL user.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl SecuredBroker {
    /// From `TEST_KAFKA_TLS_BROKERS`, `TEST_KAFKA_SASL_BROKERS`, `TEST_KAFKA_CA` and
    /// `TEST_KAFKA_SASL_USER`/`_PASSWORD`; skipped without them, except under CI.
    pub fn from_env() -> Option<Self> {
        Some(Self {
            tls: from_test_stack("TEST_KAFKA_TLS_BROKERS")?,
            sasl: from_test_stack("TEST_KAFKA_SASL_BROKERS")?,
            ca: from_test_stack("TEST_KAFKA_CA")?,
            user: from_test_stack("TEST_KAFKA_SASL_USER")?,
            password: from_test_stack("TEST_KAFKA_SASL_PASSWORD")?,
        })
    }

    /// The service's settings for the TLS listener.
    pub fn tls_security(&self) -> kaufmann::config::KafkaSecurity {
        let mut security = kaufmann::config::KafkaSecurity::default();
        security.protocol = Some("ssl".to_owned());
        security.ssl_ca_location = Some(self.ca.clone());
        security
    }

    /// The service's settings for the TLS + SASL listener, with `mechanism`.
    pub fn sasl_security(&self, mechanism: &str) -> kaufmann::config::KafkaSecurity {
        let mut security = self.tls_security();
        security.protocol = Some("sasl_ssl".to_owned());
        security.sasl_mechanism = Some(mechanism.to_owned());
        security.sasl_username = Some(self.user.clone());
        security.sasl_password = Some(self.password.clone());
        security
    }
}

/// The application state every service of this test binary needs: its handlers include the
/// sample's, which take `State<Users>`, and `test.tally`, which takes `State<Tally>`.
pub fn states() -> kaufmann::States {
    kaufmann::States::new()
        .with(kaufmann_examples::Users::default())
        .with(Tally::default())
}

/// Starts a service of this test binary's handlers with [`states`].
pub async fn start(config: kaufmann::Config) -> kaufmann::Result<kaufmann::RunningService> {
    kaufmann::Service::builder(config)
        .states(states())
        .start()
        .await
}

/// A name unique to this test run: `<prefix>-<random>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates topics with the admin API, with the partition counts the test needs (a topic created on
/// first use would get the broker's default of one).
pub async fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    create_new_topics(brokers, &new).await;
}

/// Creates `topic` with `partitions` partitions whose records (batches, as the broker measures
/// them) may be at most `max_bytes` long (`max.message.bytes`): larger ones are refused.
pub async fn create_topic_with_max_bytes(
    brokers: &str,
    topic: &str,
    partitions: i32,
    max_bytes: usize,
) {
    let max_bytes = max_bytes.to_string();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1))
        .set("max.message.bytes", &max_bytes);
    create_new_topics(brokers, &[new]).await;
}

/// Creates `new` through the admin API; a topic it cannot create fails the test.
async fn create_new_topics(brokers: &str, new: &[NewTopic<'_>]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new, &options)
        .await
        .expect("create topics");
    for result in results {
        if let Err((topic, err)) = result {
            panic!("creating topic {topic} failed: {err}");
        }
    }
}

/// Creates `<prefix>-<random>` with `partitions` partitions and its dead-letter topic
/// (`<topic>.DLT`, one partition); returns the topic's name.
pub async fn topic_with_dead_letters(brokers: &str, prefix: &str, partitions: i32) -> String {
    let topic = unique(prefix);
    create_topics(
        brokers,
        &[(&topic, partitions), (&format!("{topic}.DLT"), 1)],
    )
    .await;
    topic
}

/// A consumer outside any group, assigned every partition of `topic` from the beginning.
pub fn reader(brokers: &str, topic: &str, partitions: i32, group_prefix: &str) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique(group_prefix))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    assign_from_beginning(&consumer, topic, partitions);
    consumer
}

/// Assigns `consumer` every partition of `topic` (0..`partitions`) from the beginning.
pub fn assign_from_beginning<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    topic: &str,
    partitions: i32,
) {
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
}

/// Queues `record` on `producer`, waiting while librdkafka's queue is full.
pub async fn send<K, P>(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, K, P>,
) -> DeliveryFuture
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return delivery,
            Err((_, back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// What the `test.work` handler saw, in the order it finished messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The work id.
    pub id: i64,
    /// The work's lane (its Kafka key).
    pub lane: String,
    /// Its sequence number in the lane.
    pub seq: i64,
    /// The partition it was read from.
    pub partition: i32,
    /// The offset it was read from.
    pub offset: i64,
}

#[derive(Default)]
struct Recorder {
    observed: Vec<Observed>,
    attempts: HashMap<i64, i32>,
}

fn recorders() -> &'static Mutex<HashMap<String, Recorder>> {
    static RECORDERS: OnceLock<Mutex<HashMap<String, Recorder>>> = OnceLock::new();
    RECORDERS.get_or_init(Mutex::default)
}

fn running() -> &'static Mutex<HashMap<String, (usize, usize)>> {
    static RUNNING: OnceLock<Mutex<HashMap<String, (usize, usize)>>> = OnceLock::new();
    RUNNING.get_or_init(Mutex::default)
}

/// Everything the handler finished for messages of `topic`, in finishing order.
pub fn observed(topic: &str) -> Vec<Observed> {
    recorders()
        .lock()
        .unwrap()
        .get(topic)
        .map(|r| r.observed.clone())
        .unwrap_or_default()
}

/// The most `test.work` handlers that ran at once for messages of `topic`.
pub fn peak_concurrency(topic: &str) -> usize {
    running()
        .lock()
        .unwrap()
        .get(topic)
        .map_or(0, |(_, peak)| *peak)
}

/// Asserts that the handler finished each of `keys` keys' `per_key` messages of `topic` in order
/// (the `work_records` sequence) and that keys ran in parallel; the concurrency peak.
pub fn assert_each_key_in_order(topic: &str, keys: usize, per_key: i64) -> usize {
    let mut by_lane: HashMap<String, Vec<i64>> = HashMap::new();
    for o in observed(topic) {
        by_lane.entry(o.lane).or_default().push(o.seq);
    }
    assert_eq!(by_lane.len(), keys);
    for (lane, seqs) in &by_lane {
        assert_eq!(seqs, &(0..per_key).collect::<Vec<_>>(), "order of {lane}");
    }
    let peak = peak_concurrency(topic);
    assert!(peak > 1, "keys never ran in parallel (peak {peak})");
    peak
}

/// Handles `test.work`: fails the first `fail_times` attempts (every attempt when -1), sleeps
/// `sleep_ms`, records the message, and appends `<id> <partition> <offset> <unix micros>` to
/// `$TEST_HANDLED_FILE` when that is set.
#[kaufmann::given_event("test.work")]
pub async fn work(event: Event<TestWork>) -> kaufmann::Result<()> {
    let w = &event.payload;
    let topic = event.origin.topic.clone();
    let attempt = {
        let mut all = recorders().lock().unwrap();
        let attempts = all
            .entry(topic.clone())
            .or_default()
            .attempts
            .entry(w.id)
            .or_default();
        *attempts += 1;
        *attempts
    };
    if w.fail_times < 0 || attempt <= w.fail_times {
        return Err(kaufmann::Error::handler(format!(
            "work {} fails on attempt {attempt}",
            w.id
        )));
    }
    {
        let mut all = running().lock().unwrap();
        let (now, peak) = all.entry(topic.clone()).or_default();
        *now += 1;
        *peak = (*peak).max(*now);
    }
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(w.sleep_ms).unwrap_or(0),
    ))
    .await;
    if let Ok(path) = std::env::var("TEST_HANDLED_FILE") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        // One write per line: appends of concurrent handlers must not interleave. The last
        // column is the wall-clock time in microseconds since the Unix epoch.
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let line = format!(
            "{} {} {} {micros}\n",
            w.id, event.origin.partition, event.origin.offset
        );
        file.write_all(line.as_bytes()).unwrap();
    }
    recorders()
        .lock()
        .unwrap()
        .entry(topic.clone())
        .or_default()
        .observed
        .push(Observed {
            id: w.id,
            lane: w.lane.clone(),
            seq: w.seq,
            partition: event.origin.partition,
            offset: event.origin.offset,
        });
    running().lock().unwrap().entry(topic).or_default().0 -= 1;
    Ok(())
}

/// What the `test.tally` handler counts, in the state a test gives the service: the ids it
/// handled, by topic. Clones share one map, so the test keeps one and gives the service another.
#[derive(Debug, Clone, Default)]
pub struct Tally(pub Arc<Mutex<HashMap<String, Vec<i64>>>>);

impl Tally {
    /// The ids handled for `topic`, in the order they were handled.
    pub fn of(&self, topic: &str) -> Vec<i64> {
        self.0
            .lock()
            .unwrap()
            .get(topic)
            .cloned()
            .unwrap_or_default()
    }
}

/// Handles `test.tally`: records its id in the service's [`Tally`].
#[kaufmann::given_event("test.tally")]
pub async fn tally(event: Event<TestTally>, State(tally): State<Tally>) -> kaufmann::Result<()> {
    let topic = event.origin.topic;
    tally
        .0
        .lock()
        .unwrap()
        .entry(topic)
        .or_default()
        .push(event.payload.id);
    Ok(())
}

/// When each attempt at a `test.flaky` event started, by (run, id).
type Attempts = Mutex<HashMap<(String, i64), Vec<Instant>>>;

/// The attempts at `test.flaky` events of every test.
fn flaky_attempts() -> &'static Attempts {
    static ATTEMPTS: OnceLock<Attempts> = OnceLock::new();
    ATTEMPTS.get_or_init(Mutex::default)
}

/// When each attempt at `test.flaky` `id` of `run` started; the last one succeeded when the
/// event was handled.
pub fn attempts_of(run: &str, id: i64) -> Vec<Instant> {
    flaky_attempts()
        .lock()
        .unwrap()
        .get(&(run.to_owned(), id))
        .cloned()
        .unwrap_or_default()
}

/// Handles `test.flaky`: records the attempt, then fails the first `fails` attempts (every one
/// when -1), with a permanent error when `permanent` is set.
#[kaufmann::given_event("test.flaky")]
pub async fn flaky(event: Event<TestFlaky>) -> kaufmann::Result<()> {
    let f = event.payload;
    let attempt = {
        let mut all = flaky_attempts().lock().unwrap();
        let attempts = all.entry((f.run, f.id)).or_default();
        attempts.push(Instant::now());
        attempts.len()
    };
    let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
    if f.permanent {
        return Err(kaufmann::Error::permanent(format!(
            "flaky {} is refused",
            f.id
        )));
    }
    if f.fails < 0 || attempt <= f.fails {
        return Err(kaufmann::Error::handler(format!(
            "flaky {} fails on attempt {attempt}",
            f.id
        )));
    }
    Ok(())
}

/// The attempts at `test.copy` events, by (run, id).
fn copy_attempts() -> &'static Mutex<HashMap<(String, i64), i32>> {
    static ATTEMPTS: OnceLock<Mutex<HashMap<(String, i64), i32>>> = OnceLock::new();
    ATTEMPTS.get_or_init(Mutex::default)
}

/// Handles `test.shout`: publishes a `test.copied` without declaring it in `publishes`, for the
/// test bus's warning about undeclared events.
#[kaufmann::given_event("test.shout")]
pub async fn shout(event: Event<TestShout>, ctx: kaufmann::Context) -> kaufmann::Result<()> {
    ctx.publish(TestCopied {
        id: event.payload.id,
    })
    .await
}

/// Handles `test.copy`: sleeps `sleep_ms`, publishes `test.copied` with its id (keyed like it), then fails the
/// first `fails` attempts (every one when -1): an attempt publishes before it fails, so under
/// `exactly_once` only a successful attempt's event may be seen.
#[kaufmann::given_event("test.copy", publishes = ["test.copied"])]
pub async fn copy(event: Event<TestCopy>, ctx: kaufmann::Context) -> kaufmann::Result<()> {
    let c = event.payload;
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(c.sleep_ms).unwrap_or(0),
    ))
    .await;
    ctx.publish(TestCopied { id: c.id }).await?;
    let attempt = {
        let mut all = copy_attempts().lock().unwrap();
        let attempts = all.entry((c.run, c.id)).or_default();
        *attempts += 1;
        *attempts
    };
    if c.fails < 0 || attempt <= c.fails {
        return Err(kaufmann::Error::handler(format!(
            "copy {} fails on attempt {attempt}",
            c.id
        )));
    }
    Ok(())
}

/// Handles `test.copy.batch` in batches: publishes `test.copied` for each event, then fails the
/// whole batch on its first `fails` attempts (the first event's count), so that what a failed
/// attempt published can be told from what the successful one did.
#[kaufmann::given_events("test.copy.batch", publishes = ["test.copied"])]
pub async fn copy_batch(
    events: Vec<Event<TestCopyBatch>>,
    ctx: kaufmann::Context,
) -> kaufmann::Result<()> {
    for event in &events {
        ctx.publish(TestCopied {
            id: event.payload.id,
        })
        .await?;
    }
    let Some(first) = events.first().map(|e| &e.payload) else {
        return Ok(());
    };
    let attempt = {
        let mut all = copy_attempts().lock().unwrap();
        let attempts = all.entry((first.run.clone(), first.id)).or_default();
        *attempts += 1;
        *attempts
    };
    if attempt <= first.fails {
        return Err(kaufmann::Error::handler(format!(
            "batch of {} fails on attempt {attempt}",
            first.id
        )));
    }
    Ok(())
}

/// What the `test.batch` handler saw of one run: the size of each batch, and the (key, seq) of
/// each event it handled, in the order it handled them.
#[derive(Debug, Clone, Default)]
pub struct BatchRecord {
    /// The size of each batch it was given.
    pub sizes: Vec<usize>,
    /// (key, seq) of each event handled, in order.
    pub handled: Vec<(String, i64)>,
    /// How many times each failing event was given to it, by id.
    pub failed: HashMap<i64, usize>,
}

fn batch_records() -> &'static Mutex<HashMap<String, BatchRecord>> {
    static RECORDS: OnceLock<Mutex<HashMap<String, BatchRecord>>> = OnceLock::new();
    RECORDS.get_or_init(Mutex::default)
}

/// What the `test.batch` handler saw of `run`.
pub fn batch_record(run: &str) -> BatchRecord {
    batch_records()
        .lock()
        .unwrap()
        .get(run)
        .cloned()
        .unwrap_or_default()
}

/// Handles `test.batch` in batches: records the batch's size and each event, and names the
/// events with `fail` set as failed (a transient error each).
#[kaufmann::given_events("test.batch")]
pub async fn batch(events: Vec<Event<TestBatch>>) -> kaufmann::Result<()> {
    let mut failed = Vec::new();
    let mut all = batch_records().lock().unwrap();
    let Some(run) = events.first().map(|e| e.payload.run.clone()) else {
        return Ok(());
    };
    let record = all.entry(run).or_default();
    record.sizes.push(events.len());
    for (index, event) in events.iter().enumerate() {
        let b = &event.payload;
        if b.fail {
            *record.failed.entry(b.id).or_default() += 1;
            failed.push((
                index,
                kaufmann::Error::handler(format!("batch event {} fails", b.id)),
            ));
        } else {
            record.handled.push((b.key.clone(), b.seq));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(kaufmann::Error::failed_events(failed))
    }
}

/// Handles `test.ping`: answers on the caller's callback topic with `test.pong`.
#[kaufmann::given_event("test.ping", publishes = ["test.pong"])]
pub async fn ping(event: Event<TestPing>, ctx: kaufmann::Context) -> kaufmann::Result<()> {
    ctx.reply(TestPong {
        text: format!("pong: {}", event.payload.text),
    })
    .await
}

/// Handles `test.echo`: answers it (to its callback topic) with itself, `hops` one more.
#[kaufmann::given_event("test.echo", publishes = ["test.echo"])]
pub async fn echo(event: Event<TestEcho>, ctx: kaufmann::Context) -> kaufmann::Result<()> {
    let mut echo = event.payload;
    echo.hops += 1;
    ctx.reply(echo).await
}

/// Handles `test.relay`: publishes the next link, with one hop less, until none are left.
#[kaufmann::given_event("test.relay", publishes = ["test.relay"])]
pub async fn relay(event: Event<TestRelay>, ctx: kaufmann::Context) -> kaufmann::Result<()> {
    let hops = event.payload.hops;
    if hops > 0 {
        ctx.publish(TestRelay { hops: hops - 1 }).await?;
    }
    Ok(())
}

/// `n` units of work over `lanes` keys, sequence numbers counting per lane.
pub fn work_items(n: i64, lanes: i64, sleep_ms: i32) -> Vec<TestWork> {
    (0..n)
        .map(|id| TestWork {
            id,
            lane: format!("lane-{}", id % lanes),
            seq: id / lanes,
            sleep_ms,
            fail_times: 0,
        })
        .collect()
}

/// `work_items` as records to produce.
pub fn work_records(n: i64, lanes: i64, sleep_ms: i32) -> Vec<Record> {
    work_items(n, lanes, sleep_ms)
        .into_iter()
        .map(Record::Work)
        .collect()
}

/// One record to produce: a `test.work` event (keyed by its lane) or raw bytes.
pub enum Record {
    /// A framed, enveloped `test.work`.
    Work(TestWork),
    /// Bytes as they are, with a key.
    Raw(String, Vec<u8>),
    /// Bytes as they are, with a key and the metadata headers of a `test.work` event (so that
    /// the service decodes them as one, with the writer schema their frame names).
    Headed(String, Vec<u8>),
}

/// Produces records in order, registering `test.work` in `registry_url` first; returns the end
/// offset of each partition.
pub async fn produce(
    brokers: &str,
    topic: &str,
    registry_url: &str,
    records: Vec<Record>,
) -> HashMap<i32, i64> {
    produce_with(brokers, topic, registry_url, records, &[]).await
}

/// [`produce`] with more producer properties (`compression.type`, say).
pub async fn produce_with(
    brokers: &str,
    topic: &str,
    registry_url: &str,
    records: Vec<Record>,
    properties: &[(&str, &str)],
) -> HashMap<i32, i64> {
    let registry = open_registry(registry_url).unwrap();
    let schema_id = registry
        .register(&subject_for(TestWork::EVENT_NAME), TestWork::schema())
        .await
        .unwrap();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20");
    for (key, value) in properties {
        config.set(*key, *value);
    }
    let producer: FutureProducer = config.create().unwrap();
    let records = records.into_iter().map(|record| match record {
        Record::Work(work) => {
            let body = encode_body(TestWork::EVENT_NAME, TestWork::schema(), &work).unwrap();
            let meta = Metadata::new(TestWork::EVENT_NAME, "test", "test-1");
            (
                work.lane,
                confluent::frame(schema_id, &body),
                Some(meta.to_headers()),
            )
        }
        Record::Raw(key, bytes) => (key, bytes, None),
        Record::Headed(key, bytes) => {
            let meta = Metadata::new(TestWork::EVENT_NAME, "test", "test-1");
            (key, bytes, Some(meta.to_headers()))
        }
    });
    deliver(&producer, topic, records).await
}

/// Produces typed events in order (each with its Kafka key), as a Kaufmann service publishes
/// them, registering `T` in `registry_url` first; returns the end offset of each partition.
pub async fn produce_events<T: EventSchema>(
    brokers: &str,
    topic: &str,
    registry_url: &str,
    events: impl IntoIterator<Item = (String, T)>,
) -> HashMap<i32, i64> {
    let events = events.into_iter().map(|(key, event)| (key, event, None));
    produce_requests(brokers, topic, registry_url, events).await
}

/// [`produce_events`], each event with the callback topic its answers go to (`ctx.reply`), when
/// it names one.
pub async fn produce_requests<T: EventSchema>(
    brokers: &str,
    topic: &str,
    registry_url: &str,
    events: impl IntoIterator<Item = (String, T, Option<kaufmann::CallbackTopic>)>,
) -> HashMap<i32, i64> {
    let registry = open_registry(registry_url).unwrap();
    let schema_id = registry
        .register(&subject_for(T::EVENT_NAME), T::schema())
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let records = events.into_iter().map(|(key, event, callback_topic)| {
        let body = encode_body(T::EVENT_NAME, T::schema(), &event).unwrap();
        let mut meta = Metadata::new(T::EVENT_NAME, "test", "test-1");
        meta.callback_topic = callback_topic;
        (
            key,
            confluent::frame(schema_id, &body),
            Some(meta.to_headers()),
        )
    });
    deliver(&producer, topic, records).await
}

/// Sends `(key, value, headers)` records in order and waits for every delivery; returns the end
/// offset of each partition.
async fn deliver(
    producer: &FutureProducer,
    topic: &str,
    records: impl Iterator<Item = (String, Vec<u8>, Option<rdkafka::message::OwnedHeaders>)>,
) -> HashMap<i32, i64> {
    let mut deliveries = Vec::new();
    for (key, value, headers) in records {
        let mut record = FutureRecord::to(topic).key(&key).payload(&value);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        deliveries.push(send(producer, record).await);
    }
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for delivery in deliveries {
        let delivery = delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        let end = ends.entry(delivery.partition).or_default();
        *end = (*end).max(delivery.offset + 1);
    }
    ends
}

/// A service config for tests: the broker, one input topic, a unique group and registry scope,
/// quick commits and retries.
pub fn test_config(brokers: &str, topic: &str, registry_url: &str) -> kaufmann::Config {
    let mut config = kaufmann::Config::new("engine-test");
    config.brokers = Some(brokers.to_owned());
    config.group_id = unique("group");
    config.topics = vec![topic.to_owned()];
    topic.clone_into(&mut config.default_topic);
    registry_url.clone_into(&mut config.registry_url);
    config.commit_interval = Duration::from_millis(200);
    config.errors.retry.initial_backoff = Duration::from_millis(10);
    config.errors.retry.max_backoff = Duration::from_millis(50);
    config
}

/// The committed offsets of `group` for partitions `0..partitions` of `topic` (-1: none). Asks
/// again for up to 30 s while the broker answers with an error (a fresh broker's group
/// coordinator answers `NotCoordinator` until its offsets topic is ready).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> HashMap<i32, i64> {
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let started = Instant::now();
    let list = loop {
        match probe.committed_offsets(list.clone(), Duration::from_secs(10)) {
            Ok(answer) => break answer,
            Err(err) if started.elapsed() < Duration::from_secs(30) => {
                eprintln!("committed offsets of {group}: {err}; asking again");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(err) => panic!("committed offsets of {group}: {err}"),
        }
    };
    list.elements()
        .iter()
        .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
        .collect()
}

/// The high watermark (the offset after the last message) of partitions `0..partitions` of
/// `topic`, as the broker reports it.
pub fn high_watermarks(brokers: &str, topic: &str, partitions: i32) -> HashMap<i32, i64> {
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("isolation.level", "read_uncommitted")
        .create()
        .unwrap();
    partition_ends(&probe, topic, partitions)
}

/// The end of each of partitions `0..partitions` of `topic` as `client` sees it: a watermark query
/// asks with the client's isolation level, so the end is the high watermark read uncommitted and
/// the last stable offset read committed (librdkafka's default).
pub fn partition_ends(client: &BaseConsumer, topic: &str, partitions: i32) -> HashMap<i32, i64> {
    (0..partitions)
        .map(|p| {
            let (_, end) = client
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            (p, end)
        })
        .collect()
}

/// The committed offsets of `partitions` partitions once everything up to `ends` is committed:
/// each partition's end, 0 for a partition without messages.
pub fn all_committed(partitions: i32, ends: &HashMap<i32, i64>) -> HashMap<i32, i64> {
    (0..partitions)
        .map(|p| (p, ends.get(&p).copied().unwrap_or(0)))
        .collect()
}

/// Polls the committed offsets until they equal `ends` (partitions without messages: 0 or none)
/// or `limit` passes; returns the last answer.
pub async fn wait_for_commits(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    ends: &HashMap<i32, i64>,
    limit: Duration,
) -> HashMap<i32, i64> {
    let expected = all_committed(partitions, ends);
    let started = Instant::now();
    loop {
        let (b, g, t) = (brokers.to_owned(), group.to_owned(), topic.to_owned());
        let now = tokio::task::spawn_blocking(move || committed(&b, &g, &t, partitions))
            .await
            .unwrap();
        let normalized: HashMap<i32, i64> = now.iter().map(|(p, o)| (*p, (*o).max(0))).collect();
        if normalized == expected || started.elapsed() > limit {
            return normalized;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `done()` holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// A GET with a plain socket: (status code, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of one sample line (`name{labels} value`) of a Prometheus text body.
pub fn sample(body: &str, series: &str) -> Option<u64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Reads `count` records from a dead-letter topic: value (lossy text) and headers.
pub async fn read_dead_letters(
    brokers: &str,
    topic: &str,
    count: usize,
) -> Vec<(String, HashMap<String, String>)> {
    let reader = reader(brokers, topic, 1, "dlt-reader");
    let mut out = Vec::new();
    while out.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(120), reader.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} dead letters arrived", out.len()))
            .unwrap();
        let value =
            String::from_utf8_lossy(rdkafka::Message::payload(&message).unwrap_or_default())
                .into_owned();
        let headers = rdkafka::Message::headers(&message)
            .map(|hs| {
                rdkafka::message::Headers::iter(hs)
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push((value, headers));
    }
    out
}

/// Readiness, polled until it answers `status` (or `limit` passes); the last body.
pub async fn readiness_becomes(addr: std::net::SocketAddr, status: u16, limit: Duration) -> String {
    let mut body = String::new();
    let reached = eventually(limit, || {
        let (now, text) = http_get(addr, "/health/ready");
        body = text;
        now == status
    })
    .await;
    assert!(reached, "readiness never answered {status}: {body}");
    body
}
