//! Broker benchmarks: framework overhead against raw rdkafka and a peer, on the same Apache Kafka
//! broker and the same data. Run with `bash scripts/bench` (it starts the broker with
//! `scripts/with-kafka`); figures are printed and written to
//! `bench/RESULTS.md`. Goals are goals for the figures, never assertions.
//!
//! Arguments: `--messages N` (default 1000000), `--runs R` (default 3), `--out PATH`, `--no-peers`,
//! `--only-c`.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::many_single_char_names,
    missing_docs
)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::Schema;
use kaufmann::registry::{open_registry, subject_for};
use kaufmann::wire::{confluent, encode_body};
use kaufmann::{Event, EventSchema, Metadata};
use kaufmann_cli::registry_server::LocalRegistry;
use kaufmann_tests::{create_topics, unique};
use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

kaufmann::schemas!("benches/schemas");

/// The allocator `kaufmann::run!()` installs (its default feature `mimalloc`), for the services
/// measured here and the hand-written loops alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: i32 = 8;

static SLEEP_MS: AtomicU64 = AtomicU64::new(0);
static SLEPT_NANOS: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);
static TARGET: AtomicU64 = AtomicU64::new(u64::MAX);
/// The handler records the latency of events whose id is at least this.
static RECORD_FROM: AtomicI64 = AtomicI64::new(i64::MAX);
/// Whether the handler publishes its event again (to the service's default topic).
static PUBLISH: AtomicBool = AtomicBool::new(false);
/// The transactions the last measured service committed.
static LAST_TRANSACTIONS: AtomicU64 = AtomicU64::new(0);

fn first_at() -> &'static Mutex<Option<Instant>> {
    static FIRST: OnceLock<Mutex<Option<Instant>>> = OnceLock::new();
    FIRST.get_or_init(Mutex::default)
}

fn done_at() -> &'static Mutex<Option<Instant>> {
    static DONE: OnceLock<Mutex<Option<Instant>>> = OnceLock::new();
    DONE.get_or_init(Mutex::default)
}

/// Each handled event's send time (µs since the epoch) and its send -> handler latency (µs).
fn latencies() -> &'static Mutex<Vec<(i64, u64)>> {
    static LATENCIES: OnceLock<Mutex<Vec<(i64, u64)>>> = OnceLock::new();
    LATENCIES.get_or_init(Mutex::default)
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The benchmark handler: optionally sleeps, optionally records the end-to-end latency,
/// optionally publishes the event again.
#[kaufmann::given_event("bench.event")]
async fn handle(event: Event<BenchEvent>, ctx: kaufmann::Context) -> kaufmann::Result<()> {
    if event.payload.id >= RECORD_FROM.load(Ordering::Relaxed) {
        let took = now_us() - event.payload.sent_us;
        latencies()
            .lock()
            .unwrap()
            .push((event.payload.sent_us, took.max(0) as u64));
    }
    let ms = SLEEP_MS.load(Ordering::Relaxed);
    if ms > 0 {
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        SLEPT_NANOS.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
    if PUBLISH.load(Ordering::Relaxed) {
        ctx.publish(event.payload).await?;
    }
    let n = HANDLED.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        *first_at().lock().unwrap() = Some(Instant::now());
    }
    if n == TARGET.load(Ordering::SeqCst) {
        *done_at().lock().unwrap() = Some(Instant::now());
    }
    Ok(())
}

fn event(id: i64) -> BenchEvent {
    BenchEvent {
        id,
        sent_us: now_us(),
        user: format!("user-{id:08}"),
        email: format!("user{id}@example.org"),
        country: "DE".to_owned(),
        active: id % 3 != 0,
        score: id as f64 / 7.0,
        note: "a typical note carried by a typical event, long enough to make the payload about two hundred bytes in all, like the events of the services we mean".to_owned(),
    }
}

struct Args {
    messages: u64,
    runs: usize,
    out: String,
    /// `--no-peers`: skip kafkajs and Faust (for quick before/after measurements).
    peers: bool,
    /// `--only-c`, `--only-publish`, `--only-e`, `--only-latency`: one part alone.
    only: Only,
    /// `--e-run TOPIC REGISTRY_URL COUNT`: this process is one run of E (see [`e_in_a_process`]).
    e_run: Option<(String, String, u64)>,
    /// `--e-messages N`: the events a run of E reads (10,000 unless given; at most `messages`).
    e_messages: u64,
}

/// The part of the benchmark a run measures.
#[derive(PartialEq, Eq)]
enum Only {
    /// Everything.
    All,
    /// `--only-c`: C and C2 alone, `--runs` times each, their rates printed (for profiling).
    C,
    /// `--only-publish`: the consume -> publish rows alone, their medians printed.
    Publish,
    /// `--only-e`: E alone, its runs printed.
    E,
    /// `--only-latency`: the latency rows alone, each run's tail placed in time.
    Latency,
}

fn args() -> Args {
    let mut parsed = Args {
        messages: 1_000_000,
        runs: 3,
        out: "bench/RESULTS.md".to_owned(),
        peers: true,
        only: Only::All,
        e_run: None,
        e_messages: 10_000,
    };
    let all: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < all.len() {
        let value = all.get(i + 1).cloned().unwrap_or_default();
        match all[i].as_str() {
            "--messages" => parsed.messages = value.parse().expect("--messages takes a number"),
            "--runs" => parsed.runs = value.parse().expect("--runs takes a number"),
            "--e-messages" => {
                parsed.e_messages = value.parse().expect("--e-messages takes a number");
            }
            "--out" => parsed.out = value,
            "--no-peers" => {
                parsed.peers = false;
                i += 1;
                continue;
            }
            only @ ("--only-c" | "--only-publish" | "--only-e" | "--only-latency") => {
                parsed.only = match only {
                    "--only-c" => Only::C,
                    "--only-publish" => Only::Publish,
                    "--only-latency" => Only::Latency,
                    _ => Only::E,
                };
                i += 1;
                continue;
            }
            "--e-run" => {
                let count = all
                    .get(i + 3)
                    .and_then(|c| c.parse().ok())
                    .expect("--e-run TOPIC REGISTRY_URL COUNT");
                parsed.e_run = Some((value, all.get(i + 2).cloned().unwrap_or_default(), count));
                i += 4;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    parsed
}

/// Produces `count` framed events to `topic`, keyed over 1,000 keys; returns the mean value size.
async fn prefill(
    brokers: &str,
    topic: &str,
    registry_url: &str,
    count: u64,
    rate: Option<u64>,
    linger_ms: &str,
) -> usize {
    let registry = open_registry(registry_url).unwrap();
    let id = registry
        .register(&subject_for(BenchEvent::EVENT_NAME), BenchEvent::schema())
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", linger_ms)
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let started = Instant::now();
    let mut bytes = 0;
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..count {
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let body = encode_body(
            BenchEvent::EVENT_NAME,
            BenchEvent::schema(),
            &event(i as i64),
        )
        .unwrap();
        let value = confluent::frame(id, &body);
        bytes += value.len();
        let key = format!("k{}", i % 1000);
        let meta = Metadata::new(BenchEvent::EVENT_NAME, "bench", "bench-1");
        let record = FutureRecord::to(topic)
            .payload(&value)
            .key(&key)
            .headers(meta.to_headers());
        pending.push(kaufmann_tests::send(&producer, record).await);
        if pending.len() >= 10_000 {
            for d in pending.drain(..) {
                d.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        }
    }
    for d in pending {
        d.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    bytes / count.max(1) as usize
}

/// A and B: a raw `StreamConsumer` over every partition, counting (and decoding, for B).
async fn raw_consume(
    brokers: &str,
    topic: &str,
    registry_url: &str,
    count: u64,
    decode: bool,
) -> Duration {
    let registry = open_registry(registry_url).unwrap();
    let consumer = kaufmann_tests::reader(brokers, topic, PARTITIONS, "raw");
    let mut writers = HashMap::new();
    let mut first = None;
    for _ in 0..count {
        let message = consumer.recv().await.unwrap();
        first.get_or_insert_with(Instant::now);
        if decode {
            let (id, body) = confluent::split(message.payload().unwrap()).unwrap();
            if let std::collections::hash_map::Entry::Vacant(slot) = writers.entry(id) {
                // What a hand-written consumer that knows its schema does: one reader per writer
                // schema, built once (the reader borrows the schema: kept for the process), no
                // resolution (Kaufmann skips resolution too when the schemas are equal).
                let schema: &'static Schema = Box::leak(Box::new(
                    (*registry.schema_by_id(id).await.unwrap().schema).clone(),
                ));
                slot.insert(GenericDatumReader::builder(schema).build().unwrap());
            }
            let mut body = body;
            let value = writers[&id].read_value(&mut body).unwrap();
            let value = <BenchEvent as kaufmann::AvroValue>::from_avro(value).unwrap();
            std::hint::black_box(value);
        } else {
            std::hint::black_box(message.payload());
        }
    }
    first.map_or(Duration::ZERO, |f| f.elapsed())
}

/// H: the hand-written consume -> publish loop F is measured against. A `StreamConsumer` over
/// every partition decodes each event (apache-avro, as B), encodes it again the way Kaufmann
/// publishes (Avro body, Confluent header, the metadata headers) and produces it to `output`
/// without waiting for each delivery: at most 10,000 deliveries are outstanding, and the run ends
/// when the last one is acknowledged. Returns the time from the first message to that.
async fn relay_loop(
    brokers: &str,
    topic: &str,
    output: &str,
    registry_url: &str,
    count: u64,
) -> Duration {
    let registry = open_registry(registry_url).unwrap();
    let consumer = kaufmann_tests::reader(brokers, topic, PARTITIONS, "relay");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let id = registry
        .register(&subject_for(BenchEvent::EVENT_NAME), BenchEvent::schema())
        .await
        .unwrap();
    let mut readers = HashMap::new();
    let mut pending = std::collections::VecDeque::with_capacity(10_000);
    let mut first = None;
    for _ in 0..count {
        let message = consumer.recv().await.unwrap();
        first.get_or_insert_with(Instant::now);
        let (writer, mut body) = confluent::split(message.payload().unwrap()).unwrap();
        if let std::collections::hash_map::Entry::Vacant(slot) = readers.entry(writer) {
            let schema: &'static Schema = Box::leak(Box::new(
                (*registry.schema_by_id(writer).await.unwrap().schema).clone(),
            ));
            slot.insert(GenericDatumReader::builder(schema).build().unwrap());
        }
        let value = readers[&writer].read_value(&mut body).unwrap();
        let event = <BenchEvent as kaufmann::AvroValue>::from_avro(value).unwrap();
        let body = encode_body(BenchEvent::EVENT_NAME, BenchEvent::schema(), &event).unwrap();
        let framed = confluent::frame(id, &body);
        let meta = Metadata::new(BenchEvent::EVENT_NAME, "relay", "relay-1");
        let mut record = FutureRecord::to(output)
            .payload(&framed)
            .headers(meta.to_headers());
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        pending.push_back(kaufmann_tests::send(&producer, record).await);
        if pending.len() >= 10_000 {
            if let Some(delivery) = pending.pop_front() {
                delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        }
    }
    for delivery in pending {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    first.map_or(Duration::ZERO, |f| f.elapsed())
}

/// Runs a Kaufmann service over `topic` until `target` messages are handled; returns the time from
/// the first handled message to the last and the service's in-flight peak.
async fn kaufmann_run(
    brokers: &str,
    topic: &str,
    registry_url: &str,
    target: u64,
    sleep_ms: u64,
) -> (Duration, usize) {
    let config = service_config("bench", brokers, topic, registry_url);
    configured_run(config, target, sleep_ms).await
}

/// C with two consumers (`consumers = 2`) over `topic` until `target` messages are handled: the
/// rate from the moment both consumers hold partitions to the last message, and how long after
/// the first message that was; `None` when the last message came first. The consumers send
/// heartbeats every 100 ms (librdkafka's default: 3 s), so that the first learns within a
/// fraction of a second that the second joined (a broker's default
/// `group.initial.rebalance.delay.ms` of 3 s has both join the first generation; the test broker
/// sets it to 0).
async fn two_consumers_run(
    brokers: &str,
    topic: &str,
    registry_url: &str,
    target: u64,
) -> Option<(f64, Duration)> {
    let mut config = service_config("bench-c2", brokers, topic, registry_url);
    config.consumers = 2;
    config
        .librdkafka
        .insert("heartbeat.interval.ms".to_owned(), "100".to_owned());
    let mut spread = None;
    watched_run(config, target, 0, |service| {
        let holding = service.stats().assigned_partitions();
        if spread.is_none() && holding.iter().filter(|&&p| p > 0).count() == 2 {
            spread = Some((Instant::now(), HANDLED.load(Ordering::SeqCst)));
        }
    })
    .await;
    let (at, handled) = spread?;
    let first = (*first_at().lock().unwrap())?;
    let done = (*done_at().lock().unwrap())?;
    (handled < target && done > at).then(|| {
        (
            rate(target - handled, done - at),
            at.saturating_duration_since(first),
        )
    })
}

/// How many times C's events C2 reads.
const C2_TIMES: u64 = 3;

/// [`kaufmann_run`] with the service's whole config.
async fn configured_run(config: kaufmann::Config, target: u64, sleep_ms: u64) -> (Duration, usize) {
    watched_run(config, target, sleep_ms, |_| {}).await
}

/// [`configured_run`], calling `watch` with the service every 5 ms until the last message.
async fn watched_run(
    config: kaufmann::Config,
    target: u64,
    sleep_ms: u64,
    mut watch: impl FnMut(&kaufmann::RunningService),
) -> (Duration, usize) {
    HANDLED.store(0, Ordering::SeqCst);
    SLEPT_NANOS.store(0, Ordering::SeqCst);
    SLEEP_MS.store(sleep_ms, Ordering::SeqCst);
    TARGET.store(target, Ordering::SeqCst);
    *first_at().lock().unwrap() = None;
    *done_at().lock().unwrap() = None;
    let service = Box::pin(kaufmann_tests::start(config)).await.unwrap();
    while done_at().lock().unwrap().is_none() {
        watch(&service);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = match (*first_at().lock().unwrap(), *done_at().lock().unwrap()) {
        (Some(first), Some(done)) => done - first,
        _ => Duration::ZERO,
    };
    let peak_in_flight = service.stats().max_in_flight();
    LAST_TRANSACTIONS.store(service.stats().transactions_committed(), Ordering::SeqCst);
    SLEEP_MS.store(0, Ordering::SeqCst);
    service.shutdown().await.unwrap();
    (took, peak_in_flight)
}

/// The settings of a latency row: the sending producer's `linger.ms` and the service's
/// librdkafka settings.
struct LatencySettings {
    /// How the row names them.
    label: &'static str,
    /// The sending producer's `linger.ms` (librdkafka's default is 5).
    linger_ms: &'static str,
    /// The service's librdkafka settings.
    service: &'static [(&'static str, &'static str)],
    /// Whether the latency goal applies (the settings the README recommends).
    recommended: bool,
}

/// The latency rows' settings: librdkafka's defaults; for low latency at a low rate, the
/// producer sends at once (`linger.ms` 0) and the consumer's fetch waits at most 10 ms (not 500)
/// for data; for any rate, the producer waits 2 ms (at 20,000 msg/s a producer that sends each
/// event at once took the cores: p50 0.1 s in the runs of 2026-12-07).
const LATENCY_SETTINGS: [LatencySettings; 3] = [
    LatencySettings {
        label: "librdkafka's defaults",
        linger_ms: "5",
        service: &[],
        recommended: false,
    },
    LatencySettings {
        label: "the low-latency settings (producer linger.ms 0, fetch.wait.max.ms 10)",
        linger_ms: "0",
        service: &[("fetch.wait.max.ms", "10")],
        recommended: true,
    },
    LatencySettings {
        label: "the settings for any rate (producer linger.ms 2, fetch.wait.max.ms 10)",
        linger_ms: "2",
        service: &[("fetch.wait.max.ms", "10")],
        recommended: true,
    },
];

/// A Kaufmann service on a fresh topic, fed `count` events at `rate` a second once it has its
/// partitions (with `settings`), after a second of them
/// at that rate that is not measured; returns the p50, p99 and max of the payload's send time
/// -> handler, in ms.
/// With `detail`, where the slowest events were sent is printed (see [`print_tail`]).
async fn latency_run(
    brokers: &str,
    registry: &str,
    (rate, count): (u64, u64),
    settings: &LatencySettings,
    detail: bool,
) -> [f64; 3] {
    let topic = unique("bench-latency");
    create_topics(brokers, &[(&topic, PARTITIONS)]).await;
    // The first second's events warm the path up and are not measured: in the runs of
    // 2026-12-07, the events sent 40 to 90 ms after the first waited up to 50 ms more, once.
    let warm_up = rate;
    HANDLED.store(0, Ordering::SeqCst);
    TARGET.store(u64::MAX, Ordering::SeqCst);
    latencies().lock().unwrap().clear();
    let mut config = service_config("bench-latency", brokers, &topic, registry);
    for (key, value) in settings.service {
        config
            .librdkafka
            .insert((*key).to_owned(), (*value).to_owned());
    }
    let service = kaufmann_tests::start(config).await.unwrap();
    while service.stats().rebalances() == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    RECORD_FROM.store(warm_up as i64, Ordering::SeqCst);
    prefill(
        brokers,
        &topic,
        registry,
        warm_up + count,
        Some(rate),
        settings.linger_ms,
    )
    .await;
    while HANDLED.load(Ordering::SeqCst) < warm_up + count {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    RECORD_FROM.store(i64::MAX, Ordering::SeqCst);
    service.shutdown().await.unwrap();
    let mut sent = latencies().lock().unwrap().clone();
    sent.sort_unstable_by_key(|&(_, took)| took);
    // The latency at `p` (0 to 1), µs.
    let pct = |p: f64| {
        sent.get(((sent.len() as f64 - 1.0) * p) as usize)
            .map_or(0, |&(_, took)| took)
    };
    if detail {
        print_tail(&sent, pct(0.99));
    }
    [pct(0.50), pct(0.99), pct(1.0)].map(|us| us as f64 / 1000.0)
}

/// Where a latency run's tail lies in time: its events at or above `p99` (µs) by the 100 ms
/// window they were sent in (ms from the first send), the ten fullest windows.
fn print_tail(sent: &[(i64, u64)], p99: u64) {
    let first = sent.iter().map(|&(at, _)| at).min().unwrap_or(0);
    let mut windows = std::collections::BTreeMap::<i64, (usize, u64)>::default();
    for &(at, took) in sent.iter().filter(|&&(_, took)| took >= p99) {
        let window = windows.entry((at - first) / 100_000 * 100).or_default();
        window.0 += 1;
        window.1 = window.1.max(took);
    }
    let mut fullest: Vec<_> = windows.into_iter().collect();
    fullest.sort_unstable_by_key(|&(_, (n, _))| std::cmp::Reverse(n));
    fullest.truncate(10);
    let listed: Vec<String> = fullest
        .iter()
        .map(|(at, (n, max))| format!("{at} ms: {n} (max {:.1} ms)", *max as f64 / 1000.0))
        .collect();
    eprintln!(
        "    events at or above p99 ({:.1} ms) by send time: {}",
        p99 as f64 / 1000.0,
        listed.join(", ")
    );
}

/// The latency rows: at 2,000 and 20,000 msg/s, each of [`LATENCY_SETTINGS`], `runs` runs each;
/// (rate, messages, settings, the medians of the runs' p50, p99 and max).
async fn latency_rows(
    brokers: &str,
    registry: &str,
    runs: usize,
    detail: bool,
) -> Vec<(u64, u64, &'static LatencySettings, [f64; 3])> {
    let mut rows = Vec::new();
    for (rate, count) in [(2_000, 10_000), (20_000, 100_000)] {
        for settings in &LATENCY_SETTINGS {
            let mut figures: [Vec<f64>; 3] = Default::default();
            for _ in 0..runs {
                let run = latency_run(brokers, registry, (rate, count), settings, detail).await;
                eprintln!(
                    "  latency at {rate} msg/s, {}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    settings.label, run[0], run[1], run[2]
                );
                for (all, value) in figures.iter_mut().zip(run) {
                    all.push(value);
                }
            }
            rows.push((rate, count, settings, figures.map(median)));
        }
    }
    rows
}

/// The config of a measured service `name` over `topic` (a group of its own, no dead-letter
/// topic), with the librdkafka properties of `BENCH_LIBRDKAFKA="key=value,..."`.
fn service_config(name: &str, brokers: &str, topic: &str, registry: &str) -> kaufmann::Config {
    let mut config = kaufmann::Config::new(name);
    config.brokers = Some(brokers.to_owned());
    config.group_id = unique(name);
    config.topics = vec![topic.to_owned()];
    registry.clone_into(&mut config.registry_url);
    config.errors.dead_letter_topic = None;
    for pair in std::env::var("BENCH_LIBRDKAFKA")
        .unwrap_or_default()
        .split(',')
    {
        if let Some((key, value)) = pair.split_once('=') {
            config.librdkafka.insert(key.to_owned(), value.to_owned());
        }
    }
    config
}

/// The peak resident set size of this process so far, KiB.
fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// A size field of `/proc/self/status`, KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// One run of E in a process of its own (this benchmark, started with `--e-run`), so that its
/// peak RSS is the service's, not that of the runs before it, the prefill and the served
/// registry: reads `count` events of `topic` with a 20 ms handler at `demand` 50, decoding through
/// the registry at `registry_url` (HTTP). Returns its rate, in-flight peak and peak RSS (KiB).
fn e_in_a_process(topic: &str, registry_url: &str, count: u64) -> (f64, usize, u64) {
    let out = Command::new(std::env::current_exe().expect("the benchmark's own path"))
        .args(["--e-run", topic, registry_url, &count.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("start an E run");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("e_run "))
        .unwrap_or_else(|| panic!("an E run printed no result: {text}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let rate = fields.first().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let peak = fields.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    let rss = fields.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
    (rate, peak, rss)
}

/// E's runs: each in a process of its own (see [`e_in_a_process`]); the median rate, the
/// highest in-flight peak and the highest peak RSS (KiB).
async fn e_runs(topic: &str, registry_url: &str, count: u64, runs: usize) -> (f64, usize, u64) {
    let (mut e, mut e_peak, mut e_rss) = (Vec::new(), 0, 0);
    for _ in 0..runs {
        let (topic, url) = (topic.to_owned(), registry_url.to_owned());
        let (rate, peak, rss) =
            tokio::task::spawn_blocking(move || e_in_a_process(&topic, &url, count))
                .await
                .unwrap();
        e.push(rate);
        e_peak = e_peak.max(peak);
        e_rss = e_rss.max(rss);
        eprintln!(
            "  E run: {rate:.0} msg/s, in-flight peak {peak}, peak RSS of its process {} MiB",
            rss / 1024
        );
    }
    (median(e), e_peak, e_rss)
}

/// The CPU time this process has used (user and system, all threads), in seconds, at the
/// kernel's tick resolution.
fn cpu_seconds() -> f64 {
    // utime and stime are fields 14 and 15.
    stat_seconds(14)
}

/// The CPU time of this process's children that have ended (user and system), in seconds.
fn children_cpu_seconds() -> f64 {
    // cutime and cstime are fields 16 and 17.
    stat_seconds(16)
}

/// The sum of fields `field` and `field + 1` of `/proc/self/stat` (clock ticks), in seconds.
fn stat_seconds(field: usize) -> f64 {
    let ticks: u64 = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command name (which is in parentheses and may hold spaces);
            // `after` starts at field 3.
            let after = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            Some(
                after.get(field - 3)?.parse::<u64>().ok()?
                    + after.get(field - 2)?.parse::<u64>().ok()?,
            )
        })
        .unwrap_or(0);
    // The kernel's USER_HZ is 100 on the Linux machines this runs on.
    ticks as f64 / 100.0
}

/// `f`'s result and the CPU time of this process per message of `count` while it ran, in µs.
async fn with_cpu<T>(count: u64, f: impl std::future::Future<Output = T>) -> (T, f64) {
    let cpu = cpu_seconds();
    let out = f.await;
    (out, (cpu_seconds() - cpu) / count as f64 * 1e6)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn rate(count: u64, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64().max(1e-9)
}

/// A peer consumer run as a child process: it decodes `count` messages of `topic` and prints
/// `elapsed_ms <ms>`; `scripts/bench` installs each one under `.tools/`.
struct Peer {
    /// Its row label in the table.
    label: &'static str,
    /// Its column in the ratios (`C / <name>`) and the goal there.
    name: &'static str,
    goal: &'static str,
    program: std::path::PathBuf,
    /// The script the program runs, when it is an interpreter.
    script: Option<std::path::PathBuf>,
    /// Arguments after the common ones (brokers, topic, count, schema).
    extra: Vec<&'static str>,
    env: Vec<(&'static str, std::path::PathBuf)>,
    /// The most messages a run takes (a slow peer reads fewer; rates compare as rates).
    max_count: u64,
    /// Why it cannot run, when it is not installed.
    missing: Option<String>,
}

fn peers() -> Vec<Peer> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let modules = root.join(".tools/node/node_modules");
    let faust = root.join(".tools/faust/bin/python");
    let confluent = root.join(".tools/confluent/bin/python");
    let ruststream = root.join("target/ruststream-peer/release/ruststream-peer");
    let kafkajs = |label, name, goal, mode| Peer {
        label,
        name,
        goal,
        program: "node".into(),
        script: Some(root.join("tests/benches/peers/kafkajs.js")),
        extra: vec![mode],
        env: vec![("NODE_PATH", modules.clone())],
        max_count: u64::MAX,
        missing: (!modules.join("kafkajs").exists()).then(|| {
            "kafkajs is not installed (scripts/bench installs it under .tools/node)".to_owned()
        }),
    };
    vec![
        kafkajs("kafkajs + avsc, eachBatch, decode only", "kafkajs eachBatch", ">= 3", "batch"),
        kafkajs("kafkajs + avsc, eachMessage, decode only", "kafkajs eachMessage", "", "message"),
        Peer {
            label: "confluent-kafka Python + fastavro, consume(1000), decode only",
            name: "confluent-kafka Python",
            goal: ">= 8",
            missing: (!confluent.exists()).then(|| {
                "confluent-kafka is not installed (scripts/bench installs it under .tools/confluent)".to_owned()
            }),
            program: confluent,
            script: Some(root.join("tests/benches/peers/confluent_peer.py")),
            extra: Vec::new(),
            env: Vec::new(),
            max_count: 500_000,
        },
        Peer {
            label: "RustStream 0.7 (ruststream-rdkafka), registry Avro codec into a serde struct, no-op handler, Commit::Tracked",
            name: "RustStream",
            goal: ">= 1.5",
            missing: (!ruststream.exists()).then(|| {
                "the RustStream peer is not built (scripts/bench builds tests/benches/peers/ruststream)".to_owned()
            }),
            program: ruststream,
            script: None,
            extra: Vec::new(),
            env: Vec::new(),
            max_count: u64::MAX,
        },
        Peer {
            label: "Faust (faust-streaming) + fastavro, decode only",
            name: "Faust",
            goal: ">= 10",
            missing: (!faust.exists())
                .then(|| "faust-streaming is not installed (scripts/bench installs it under .tools/faust)".to_owned()),
            program: faust,
            script: Some(root.join("tests/benches/peers/faust_peer.py")),
            extra: Vec::new(),
            env: Vec::new(),
            max_count: 100_000,
        },
    ]
}

/// What the rounds measured of one peer.
#[derive(Default)]
struct PeerRuns {
    /// Its rate in each run that finished.
    runs: Vec<f64>,
    /// C's rate over its rate, in each round it finished.
    ratios: Vec<f64>,
    /// Why a run failed, when one did.
    note: String,
    /// Its CPU time per message in each run that finished, µs.
    cpus: Vec<f64>,
}

/// One run of `peer` over the first `count` messages of `topic` (at most its `max_count`): its
/// rate in messages per second, and its CPU time per message in microseconds.
fn run_peer(
    peer: &Peer,
    brokers: &str,
    topic: &str,
    count: u64,
    registry_url: &str,
) -> Result<(f64, f64), String> {
    if let Some(why) = &peer.missing {
        return Err(why.clone());
    }
    let count = count.min(peer.max_count);
    let cpu = children_cpu_seconds();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let schema = root.join("tests/benches/schemas/bench.event.avsc");
    let work = std::env::temp_dir().join(format!("kaufmann-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let output = Command::new(&peer.program)
        .envs(peer.env.iter().map(|(k, v)| (k, v)))
        .env("PEER_REGISTRY_URL", registry_url)
        .current_dir(&work)
        .args(&peer.script)
        .arg(brokers)
        .arg(topic)
        .arg(count.to_string())
        .arg(schema)
        .args(&peer.extra)
        .output()
        .map_err(|e| format!("{}: {e}", peer.program.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    let text = String::from_utf8_lossy(&output.stdout);
    let ms: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("elapsed_ms ")?.trim().parse().ok())
        .ok_or_else(|| {
            let err = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            format!("{} printed no result: {}", peer.name, tail.join(" / "))
        })?;
    let per_message = (children_cpu_seconds() - cpu) / count as f64 * 1e6;
    Ok((
        rate(count, Duration::from_secs_f64(ms / 1000.0)),
        per_message,
    ))
}

/// The medians of the consume -> publish rows (F with the default `before_commit`, F with
/// `in_handler` at the default demand and at 1000, G, H) and of their ratios.
struct PublishFigures {
    /// The messages of a run of the rows that wait per message (`in_handler`, G).
    slow_count: u64,
    /// The messages of a run of the fast rows (F, H).
    fast_count: u64,
    f: f64,
    f_waiting: f64,
    f_waiting_wide: f64,
    g: f64,
    h: f64,
    f_over_h: f64,
    waiting_over_h: f64,
    g_over_f: f64,
    g_over_waiting: f64,
    /// The process's CPU time per message of F and of H, µs.
    f_cpu: f64,
    h_cpu: f64,
    /// The most transactions G committed in a run.
    transactions: u64,
}

/// F (the default `publish_confirm = before_commit`), F with `in_handler` at the default demand
/// and at 1000, and G (the handler publishes each event again, at least once and exactly once)
/// against a hand-written rdkafka loop (H), a run of each per round, over `n` events of `topic`
/// (at most 500,000 for F and H, 50,000 for the others).
async fn publish_rounds(
    brokers: &str,
    topic: &str,
    registry: &str,
    n: u64,
    runs: usize,
) -> PublishFigures {
    let slow_count = n.min(50_000);
    // The fast rows read more, so that a run lasts seconds, not a fraction of one.
    let fast_count = n.min(500_000);
    let (mut f_cpu, mut h_cpu) = (Vec::new(), Vec::new());
    let output = unique("bench-out");
    let relayed = unique("bench-relay");
    create_topics(brokers, &[(&output, PARTITIONS), (&relayed, PARTITIONS)]).await;
    // Each round's F, F in_handler, F in_handler at demand 1000, G and H.
    let mut rounds: Vec<[f64; 5]> = Vec::new();
    let mut transactions = 0_u64;
    let (in_handler, before_commit) = (
        kaufmann::PublishConfirm::InHandler,
        kaufmann::PublishConfirm::BeforeCommit,
    );
    let services = [
        (kaufmann::Processing::AtLeastOnce, None, before_commit),
        (kaufmann::Processing::AtLeastOnce, None, in_handler),
        (kaufmann::Processing::AtLeastOnce, Some(1000), in_handler),
        (kaufmann::Processing::ExactlyOnce, None, before_commit),
    ];
    for round in 1..=runs {
        PUBLISH.store(true, Ordering::SeqCst);
        let mut rates = [0.0; 5];
        for (slot, (processing, demand, confirm)) in services.into_iter().enumerate() {
            let mut config = service_config("bench-publish", brokers, topic, registry);
            config.default_topic.clone_from(&output);
            config.processing = processing;
            config.publish_confirm = confirm;
            config.instance_id = unique("bench");
            if let Some(demand) = demand {
                config.demand = demand;
            }
            let count = if slot == 0 { fast_count } else { slow_count };
            let ((took, _), cpu) = with_cpu(count, configured_run(config, count, 0)).await;
            rates[slot] = rate(count, took);
            if slot == 0 {
                f_cpu.push(cpu);
            }
            if processing == kaufmann::Processing::ExactlyOnce {
                transactions = transactions.max(LAST_TRANSACTIONS.load(Ordering::SeqCst));
            }
        }
        PUBLISH.store(false, Ordering::SeqCst);
        let (took_h, cpu_h) = with_cpu(
            fast_count,
            relay_loop(brokers, topic, &relayed, registry, fast_count),
        )
        .await;
        rates[4] = rate(fast_count, took_h);
        h_cpu.push(cpu_h);
        let [f, waiting, wide, g, h] = rates;
        eprintln!(
            "  round {round}: F {f:.0}, F in_handler {waiting:.0}, F in_handler at demand 1000 {wide:.0}, G {g:.0}, H {h:.0} msg/s (F / H {:.2}, F in_handler / H {:.2}, G / F {:.2}, G / F in_handler {:.2})",
            f / h, waiting / h, g / f, g / waiting
        );
        rounds.push(rates);
    }
    // The median over the rounds of a figure of each round.
    let of = |figure: fn(&[f64; 5]) -> f64| median(rounds.iter().map(figure).collect());
    PublishFigures {
        slow_count,
        fast_count,
        f: of(|r| r[0]),
        f_waiting: of(|r| r[1]),
        f_waiting_wide: of(|r| r[2]),
        g: of(|r| r[3]),
        h: of(|r| r[4]),
        f_over_h: of(|r| r[0] / r[4]),
        waiting_over_h: of(|r| r[1] / r[4]),
        g_over_f: of(|r| r[3] / r[0]),
        g_over_waiting: of(|r| r[3] / r[1]),
        f_cpu: median(f_cpu),
        h_cpu: median(h_cpu),
        transactions,
    }
}

#[allow(clippy::too_many_lines)]
fn main() {
    let args = args();
    let brokers = std::env::var("TEST_KAFKA_BROKERS")
        .expect("run through scripts/bench (TEST_KAFKA_BROKERS)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        if let Some((topic, registry_url, count)) = &args.e_run {
            let (took, peak) = kaufmann_run(&brokers, topic, registry_url, *count, 20).await;
            println!("e_run {:.0} {peak} {}", rate(*count, took), peak_rss_kib());
            return;
        }
        let n = args.messages;
        let topic = unique("bench");
        let registry = format!("mock://{}", unique("bench"));
        if args.only == Only::Latency {
            latency_rows(&brokers, &registry, args.runs, true).await;
            return;
        }
        create_topics(&brokers, &[(&topic, PARTITIONS)]).await;
        eprintln!("prefilling {n} events into {topic} ({PARTITIONS} partitions)");
        let size = prefill(&brokers, &topic, &registry, n, None, "5").await;
        // C2 on a topic of its own, three times as long: its rate counts from the moment both
        // consumers hold partitions, up to a second after the first message on the test broker.
        let (topic_c2, n_c2) = (unique("bench-c2"), n * C2_TIMES);
        if matches!(args.only, Only::All | Only::C) {
            create_topics(&brokers, &[(&topic_c2, PARTITIONS)]).await;
            eprintln!("prefilling {n_c2} events into {topic_c2} for C2");
            prefill(&brokers, &topic_c2, &registry, n_c2, None, "5").await;
        }
        if args.only == Only::C {
            eprintln!("prefilled; measuring C");
            for run in 1..=args.runs {
                let cpu = cpu_seconds();
                let run_c = rate(n, kaufmann_run(&brokers, &topic, &registry, n, 0).await.0);
                // From the service's start to its shutdown: less noisy than the rate on a busy VM.
                let per_message = (cpu_seconds() - cpu) / n as f64 * 1e6;
                eprintln!("  C run {run}: {run_c:.0} msg/s, {per_message:.2} us of this process's CPU per message");
                match two_consumers_run(&brokers, &topic_c2, &registry, n_c2).await {
                    Some((run_c2, after)) => eprintln!("  C2 run {run}: {run_c2:.0} msg/s (C2 / C {:.2}), both consumers held partitions {} ms after the first message", run_c2 / run_c, after.as_millis()),
                    None => eprintln!("  C2 run {run}: the last message came before both consumers held partitions"),
                }
            }
            return;
        }
        if args.only == Only::Publish {
            eprintln!("prefilled; measuring the consume -> publish rows");
            let p = publish_rounds(&brokers, &topic, &registry, n, args.runs).await;
            eprintln!(
                "medians: F {:.0} ({:.2} us CPU per message), F in_handler {:.0}, F in_handler at demand 1000 {:.0}, G {:.0}, H {:.0} msg/s ({:.2} us); F / H {:.2}, F in_handler / H {:.2}, G / F {:.2}, G / F in_handler {:.2}",
                p.f, p.f_cpu, p.f_waiting, p.f_waiting_wide, p.g, p.h, p.h_cpu, p.f_over_h, p.waiting_over_h, p.g_over_f, p.g_over_waiting
            );
            return;
        }

        // Peers that read the events' schema ids from a registry over HTTP (RustStream) ask
        // the benchmark's own, served by the local development stand-in.
        let scope = kaufmann::registry::memory_scope(&registry).expect("the benchmark's registry");
        let served = LocalRegistry::start("127.0.0.1:0", scope)
            .await
            .expect("serve the benchmark's registry");
        let registry_url = served.url();
        if args.only == Only::E {
            let (e, peak, rss) = e_runs(&topic, &registry_url, n.min(args.e_messages), args.runs).await;
            eprintln!("E: median {e:.0} msg/s, in-flight peak {peak}, peak RSS of the service's process {} MiB", rss / 1024);
            return;
        }
        let mut table: Vec<(String, f64, Option<f64>)> = Vec::new();
        let say = |label: &str| eprintln!("measuring {label}");
        // A, B, C and the peers take turns, one run of each per round, so that a slow spell of
        // the machine (this VM's rates move by half between runs) weighs on all alike; C / B and
        // C / peer are the medians of the rounds' ratios.
        say("A (raw rdkafka), B (+ decode), C (Kaufmann, no-op handler) and the peers, a run of each per round");
        let (mut a, mut b, mut c, mut c_over_b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // C with two consumers: its rates, and its ratio to C, each round it spread in time.
        let (mut c2, mut c2_over_c, mut c2_cpu) = (Vec::new(), Vec::new(), Vec::new());
        // CPU time per message of A, B and C, each run.
        let mut cpu: [Vec<f64>; 3] = Default::default();
        // The peers take their turn in each round too: (rates, C's ratios, why a run failed).
        let peer_list: Vec<Peer> = peers().into_iter().filter(|_| args.peers).collect();
        let mut peer_runs: Vec<PeerRuns> = peer_list.iter().map(|_| PeerRuns::default()).collect();
        for round in 1..=args.runs {
            let (took_a, cpu_a) = with_cpu(n, raw_consume(&brokers, &topic, &registry, n, false)).await;
            let (took_b, cpu_b) = with_cpu(n, raw_consume(&brokers, &topic, &registry, n, true)).await;
            let (took_c, cpu_c) = with_cpu(n, kaufmann_run(&brokers, &topic, &registry, n, 0)).await;
            let (run_a, run_b, run_c) = (rate(n, took_a), rate(n, took_b), rate(n, took_c.0));
            eprintln!(
                "  round {round}: A {run_a:.0}, B {run_b:.0}, C {run_c:.0} msg/s (C / B {:.2}); CPU per message A {cpu_a:.2}, B {cpu_b:.2}, C {cpu_c:.2} us",
                run_c / run_b
            );
            match with_cpu(n_c2, two_consumers_run(&brokers, &topic_c2, &registry, n_c2)).await {
                (Some((run_c2, after)), cpu_c2) => {
                    eprintln!("  round {round}: C2 {run_c2:.0} msg/s (C2 / C {:.2}), both consumers held partitions {} ms after the first message", run_c2 / run_c, after.as_millis());
                    c2.push(run_c2);
                    c2_over_c.push(run_c2 / run_c);
                    c2_cpu.push(cpu_c2);
                }
                (None, _) => eprintln!("  round {round}: C2 not measured: the last message came before both consumers held partitions"),
            }
            a.push(run_a);
            b.push(run_b);
            c.push(run_c);
            c_over_b.push(run_c / run_b);
            cpu[0].push(cpu_a);
            cpu[1].push(cpu_b);
            cpu[2].push(cpu_c);
            for (peer, PeerRuns { runs, ratios, note, cpus }) in peer_list.iter().zip(&mut peer_runs) {
                if peer.missing.is_some() && !note.is_empty() {
                    continue;
                }
                match run_peer(peer, &brokers, &topic, n, &registry_url) {
                    Ok((r, per_message)) => {
                        eprintln!("  round {round}: {} {r:.0} msg/s, {per_message:.2} us CPU per message (C / {} {:.2})", peer.name, peer.name, run_c / r);
                        runs.push(r);
                        ratios.push(run_c / r);
                        cpus.push(per_message);
                    }
                    Err(why) => {
                        eprintln!("  round {round}: {} run failed: {why}", peer.name);
                        *note = why;
                    }
                }
            }
        }
        let (a, b, c, c_over_b) = (median(a), median(b), median(c), median(c_over_b));
        let c2_rounds = c2.len();
        let (c2, c2_over_c, c2_cpu) = (median(c2), median(c2_over_c), median(c2_cpu));
        // D, E and the latency: medians of the runs too; in-flight and RSS peaks are the
        // highest of the runs (they are limits, not typical values).
        say("D: Kaufmann, 5 ms handler, demand 50");
        let d_count = n.min(30_000);
        let (mut d, mut ideal, mut d_peak) = (Vec::new(), Vec::new(), 0);
        for _ in 0..args.runs {
            let (took, peak) = kaufmann_run(&brokers, &topic, &registry, d_count, 5).await;
            let mean_sleep = SLEPT_NANOS.load(Ordering::SeqCst) as f64 / d_count as f64 / 1e9;
            d.push(rate(d_count, took));
            ideal.push(50.0 / mean_sleep.max(1e-9));
            d_peak = d_peak.max(peak);
            eprintln!("  D run: {:.0} msg/s (ideal {:.0})", d[d.len() - 1], ideal[ideal.len() - 1]);
        }
        let (d, ideal) = (median(d), median(ideal));
        say("E: Kaufmann, 20 ms handler, demand 50, each run in a process of its own");
        let e_count = n.min(args.e_messages);
        let (e, e_peak, e_rss) = e_runs(&topic, &registry_url, e_count, args.runs).await;

        say("F, F with publish_confirm = in_handler (at the default demand and at 1000), G and H: the handler publishes each event again, at least once (F) and exactly once (G), against a hand-written rdkafka loop (H), a run of each per round");
        let publish = publish_rounds(&brokers, &topic, &registry, n, args.runs).await;
        let PublishFigures { slow_count, fast_count, f, f_waiting, f_waiting_wide, g, h, transactions, .. } = publish;

        say("latency at a fixed produce rate: 2,000 and 20,000 msg/s, librdkafka's defaults, the low-latency settings and the settings for any rate");
        let latency_rows = latency_rows(&brokers, &registry, args.runs, false).await;

        // Each peer: its median rate over the runs that finished, how many did, why not, and the
        // median of C's ratio to it over the rounds.
        let peer_results: Vec<(Peer, Option<f64>, usize, String, f64, f64)> = peer_list
            .into_iter()
            .zip(peer_runs)
            .map(|(peer, PeerRuns { runs, ratios, note, cpus })| {
                let finished = runs.len();
                let value = (!runs.is_empty()).then(|| median(runs));
                (peer, value, finished, note, median(ratios), median(cpus))
            })
            .collect();
        let cpu = cpu.map(median);

        let ratio = |x: f64, base: f64| format!("{:.2}", x / base);
        // Each row's ratio to each peer that was measured.
        let to_peers = |x: f64| -> String {
            let mut cells = String::new();
            for (_, value, _, _, _, _) in &peer_results {
                let cell = value.map_or_else(|| "-".to_owned(), |v| ratio(x, v));
                let _ = write!(cells, " {cell} |");
            }
            cells
        };
        // Each row: its label, rate and the process's CPU time per message, when measured.
        table.push(("A. raw rdkafka StreamConsumer, counting".into(), a, Some(cpu[0])));
        table.push(("B. A + wire format + apache-avro decode".into(), b, Some(cpu[1])));
        table.push(("C. Kaufmann, no-op handler (decode, dispatch, commit)".into(), c, Some(cpu[2])));
        if c2_rounds > 0 {
            table.push((format!("C2. C with `consumers = 2` ({n_c2} msgs, the rate from the moment both consumers hold partitions; {c2_rounds} of {} rounds)", args.runs), c2, Some(c2_cpu)));
        }
        table.push((format!("D. Kaufmann, 5 ms handler, demand 50 ({d_count} msgs)"), d, None));
        table.push((format!("E. Kaufmann, 20 ms handler, demand 50 ({e_count} msgs of a {n}-event backlog)"), e, None));
        table.push((format!("F. Kaufmann, handler publishes each event, at least once, the default publish_confirm = before_commit ({fast_count} msgs)"), f, Some(publish.f_cpu)));
        table.push((format!("F with publish_confirm = in_handler ({slow_count} msgs)"), f_waiting, None));
        table.push((format!("F with publish_confirm = in_handler at demand 1000 ({slow_count} msgs)"), f_waiting_wide, None));
        table.push((format!("G. F exactly once (transactions every 100 ms or 10,000 messages; up to {transactions} in a run)"), g, None));
        table.push((format!("H. hand-written rdkafka loop: decode, encode, produce, 10,000 deliveries outstanding ({fast_count} msgs)"), h, Some(publish.h_cpu)));
        for (peer, value, finished, _, _, per_message) in &peer_results {
            if let Some(v) = value {
                let count = n.min(peer.max_count);
                let label = format!("{} ({count} msgs; {finished} of {} runs finished)", peer.label, args.runs);
                table.push((label, *v, Some(*per_message)));
            }
        }

        let machine = machine();
        let date = Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default();
        let mut md = String::new();
        let _ = writeln!(md, "# Benchmark results\n\nMeasured {date} by `bash scripts/bench --messages {n} --runs {}` on {machine}.", args.runs);
        let kafka = std::env::var("TEST_KAFKA_VERSION").unwrap_or_else(|_| "(version unknown)".to_owned());
        let _ = writeln!(md, "Broker: Apache Kafka {kafka} (single-node KRaft, `scripts/with-kafka`) on 127.0.0.1, librdkafka defaults (no fetch-wait override), one topic of {PARTITIONS} partitions, {n} Confluent-framed Avro events of {size} bytes on average (1,000 keys). Rates and latencies are the median of {} runs (rates from the first message to the last; A, B, C and the peers take turns, a run of each per round); in-flight and RSS peaks are the highest of the runs. Kaufmann runs with the default `key` ordering, built as the README recommends for a service (`lto = \"fat\"`, `codegen-units = 1`: the workspace's `[profile.bench]`; the other Rust rows share the binary, and RustStream builds the same way).\n", args.runs);
        let mut peer_heads = String::new();
        for (peer, _, _, _, _, _) in &peer_results {
            let _ = write!(peer_heads, " ratio to {} |", peer.name);
        }
        let peer_rules: String = peer_results.iter().map(|_| "---:|").collect();
        let _ = writeln!(md, "| run | msgs/s | CPU µs/msg | ratio to A |{peer_heads}\n|---|---:|---:|---:|{peer_rules}");
        for (label, value, cpu) in &table {
            let cpu = cpu.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"));
            let _ = writeln!(md, "| {label} | {value:.0} | {cpu} | {} |{}", ratio(*value, a), to_peers(*value));
        }
        let _ = writeln!(md, "\n| figure | value | goal |\n|---|---:|---|");
        let _ = writeln!(md, "| C / B (median of the rounds' ratios; ratio of the medians {:.2}) | {c_over_b:.2} | >= 1.0 |", c / b);
        if c2_rounds > 0 {
            let _ = writeln!(md, "| C2 / C, two consumers against one (median of the rounds' ratios; ratio of the medians {:.2}) | {c2_over_c:.2} | |", c2 / c);
        }
        let _ = writeln!(md, "| D / (demand / measured mean handler time = {ideal:.0} msg/s) | {:.2} | >= 0.95 |", d / ideal);
        let _ = writeln!(md, "| D in-flight peak | {d_peak} | <= 50 |");
        let _ = writeln!(md, "| E in-flight peak | {e_peak} | <= 50 |");
        let _ = writeln!(md, "| E peak RSS of the service's process (each run in a process of its own, VmHWM) | {} MiB | < 100 MB |", e_rss / 1024);
        let _ = writeln!(md, "| G / F, exactly once against at least once on the same data (median of the rounds' ratios; ratio of the medians {:.2}; G / F with in_handler {:.2}) | {:.2} | >= 0.5 |", g / f, publish.g_over_waiting, publish.g_over_f);
        let _ = writeln!(md, "| F / H, consume -> publish against the hand-written loop (median of the rounds' ratios; ratio of the medians {:.2}; with in_handler {:.2}, at demand 1000 {:.2}) | {:.2} | >= 0.8 |", f / h, publish.waiting_over_h, f_waiting_wide / h, publish.f_over_h);
        for (lat_rate, lat_count, settings, [p50, p99, max]) in &latency_rows {
            let goal = if *lat_rate == 2_000 && settings.recommended { "p50 <= 5 ms, p99 <= 25 ms" } else { "" };
            let _ = writeln!(md, "| end-to-end latency p50 / p99 / max at {lat_rate} msg/s, {} ({lat_count} msgs, send -> handler) | {p50:.1} / {p99:.1} / {max:.1} ms | {goal} |", settings.label);
        }
        for (peer, value, _, note, c_over_peer, _) in &peer_results {
            let _ = match value {
                Some(v) => writeln!(md, "| C / {} (median of the rounds' ratios; ratio of the medians {:.2}) | {c_over_peer:.2} | {} |", peer.name, c / v, peer.goal),
                None => writeln!(md, "| C / {} | not measured: {note} | {} |", peer.name, peer.goal),
            };
        }
        println!("{md}");
        std::fs::write(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(&args.out), md).unwrap();
    });
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    format!("{cores} cores ({cpu}), {} GiB RAM", mem / 1024 / 1024)
}
