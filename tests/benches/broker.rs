//! Broker benchmarks: framework overhead against raw rdkafka and a peer, on the same Apache Kafka
//! broker and the same data. Run with `bash scripts/bench` (it starts the broker with
//! `scripts/with-kafka`); figures are printed and written to
//! `bench/RESULTS.md`. Goals are goals for the figures, never assertions.
//!
//! Arguments: `--messages N` (default 200000), `--runs R` (default 3), `--out PATH`.

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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::Schema;
use kaufmann::registry::{open_registry, subject_for};
use kaufmann::wire::{confluent, encode_body};
use kaufmann::{Event, EventSchema, Metadata};
use kaufmann_tests::{create_topics, unique};
use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

kaufmann::schemas!("benches/schemas");

const PARTITIONS: i32 = 8;

static SLEEP_MS: AtomicU64 = AtomicU64::new(0);
static SLEPT_NANOS: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);
static TARGET: AtomicU64 = AtomicU64::new(u64::MAX);
static RECORD_LATENCY: AtomicBool = AtomicBool::new(false);
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

fn latencies() -> &'static Mutex<Vec<u64>> {
    static LATENCIES: OnceLock<Mutex<Vec<u64>>> = OnceLock::new();
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
    if RECORD_LATENCY.load(Ordering::Relaxed) {
        let took = now_us() - event.payload.sent_us;
        latencies().lock().unwrap().push(took.max(0) as u64);
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
    /// `--only-c`: run C alone `--runs` times, print its rates and stop (for profiling).
    only_c: bool,
}

fn args() -> Args {
    let mut parsed = Args {
        messages: 200_000,
        runs: 3,
        out: "bench/RESULTS.md".to_owned(),
        peers: true,
        only_c: false,
    };
    let all: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < all.len() {
        let value = all.get(i + 1).cloned().unwrap_or_default();
        match all[i].as_str() {
            "--messages" => parsed.messages = value.parse().expect("--messages takes a number"),
            "--runs" => parsed.runs = value.parse().expect("--runs takes a number"),
            "--out" => parsed.out = value,
            "--no-peers" => {
                parsed.peers = false;
                i += 1;
                continue;
            }
            "--only-c" => {
                parsed.only_c = true;
                i += 1;
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
) -> usize {
    let registry = open_registry(registry_url).unwrap();
    let id = registry
        .register(&subject_for(BenchEvent::EVENT_NAME), BenchEvent::schema())
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
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

/// Runs a Kaufmann service over `topic` until `target` messages are handled; returns the time from
/// the first handled message to the last, the service's in-flight peak and the process's peak RSS
/// (read every 5 ms when `sample_rss`, which costs the service CPU time; 0 otherwise).
async fn kaufmann_run(
    brokers: &str,
    topic: &str,
    registry_url: &str,
    target: u64,
    sleep_ms: u64,
    sample_rss: bool,
) -> (Duration, usize, u64) {
    let config = service_config("bench", brokers, topic, registry_url);
    configured_run(config, target, sleep_ms, sample_rss).await
}

/// [`kaufmann_run`] with the service's whole config.
async fn configured_run(
    config: kaufmann::Config,
    target: u64,
    sleep_ms: u64,
    sample_rss: bool,
) -> (Duration, usize, u64) {
    HANDLED.store(0, Ordering::SeqCst);
    SLEPT_NANOS.store(0, Ordering::SeqCst);
    SLEEP_MS.store(sleep_ms, Ordering::SeqCst);
    TARGET.store(target, Ordering::SeqCst);
    *first_at().lock().unwrap() = None;
    *done_at().lock().unwrap() = None;
    let service = kaufmann_tests::start(config).await.unwrap();
    let mut peak_rss = 0;
    while done_at().lock().unwrap().is_none() {
        if sample_rss {
            peak_rss = peak_rss.max(rss_kib());
        }
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
    (took, peak_in_flight, peak_rss)
}

/// A Kaufmann service on a fresh topic, fed `count` events at `rate` a second once it has its
/// partitions; returns the p50 and p99 of publish timestamp -> handler, in ms.
async fn latency_run(brokers: &str, registry: &str, rate: u64, count: u64) -> (f64, f64) {
    let topic = unique("bench-latency");
    create_topics(brokers, &[(&topic, PARTITIONS)]).await;
    HANDLED.store(0, Ordering::SeqCst);
    TARGET.store(u64::MAX, Ordering::SeqCst);
    latencies().lock().unwrap().clear();
    let config = service_config("bench-latency", brokers, &topic, registry);
    let service = kaufmann_tests::start(config).await.unwrap();
    while service.stats().rebalances() == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    RECORD_LATENCY.store(true, Ordering::SeqCst);
    prefill(brokers, &topic, registry, count, Some(rate)).await;
    while HANDLED.load(Ordering::SeqCst) < count {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    RECORD_LATENCY.store(false, Ordering::SeqCst);
    service.shutdown().await.unwrap();
    let mut lat = latencies().lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    (pct(0.50), pct(0.99))
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

/// The resident set size of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The CPU time this process has used (user and system, all threads), in seconds, at the
/// kernel's tick resolution.
fn cpu_seconds() -> f64 {
    let ticks: u64 = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command name (which is in parentheses and may hold spaces).
            let after = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            // utime and stime are fields 14 and 15; `after` starts at field 3.
            Some(after.get(11)?.parse::<u64>().ok()? + after.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // The kernel's USER_HZ is 100 on the Linux machines this runs on.
    ticks as f64 / 100.0
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
    script: std::path::PathBuf,
    env: Vec<(&'static str, std::path::PathBuf)>,
    /// Why it cannot run, when it is not installed.
    missing: Option<String>,
}

fn peers() -> Vec<Peer> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let modules = root.join(".tools/node/node_modules");
    let python = root.join(".tools/faust/bin/python");
    vec![
        Peer {
            label: "kafkajs + avsc, decode only",
            name: "kafkajs",
            goal: ">= 3",
            program: "node".into(),
            script: root.join("tests/benches/peers/kafkajs.js"),
            env: vec![("NODE_PATH", modules.clone())],
            missing: (!modules.join("kafkajs").exists())
                .then(|| "kafkajs is not installed (scripts/bench installs it under .tools/node)".to_owned()),
        },
        Peer {
            label: "Faust (faust-streaming) + fastavro, decode only",
            name: "Faust",
            goal: ">= 10",
            missing: (!python.exists())
                .then(|| "faust-streaming is not installed (scripts/bench installs it under .tools/faust)".to_owned()),
            program: python,
            script: root.join("tests/benches/peers/faust_peer.py"),
            env: Vec::new(),
        },
    ]
}

/// One run of `peer` over the first `count` messages of `topic`, in messages per second.
fn run_peer(peer: &Peer, brokers: &str, topic: &str, count: u64) -> Result<f64, String> {
    if let Some(why) = &peer.missing {
        return Err(why.clone());
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let schema = root.join("tests/benches/schemas/bench.event.avsc");
    let work = std::env::temp_dir().join(format!("kaufmann-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let output = Command::new(&peer.program)
        .envs(peer.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&work)
        .arg(&peer.script)
        .arg(brokers)
        .arg(topic)
        .arg(count.to_string())
        .arg(schema)
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
    Ok(rate(count, Duration::from_secs_f64(ms / 1000.0)))
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
        let n = args.messages;
        let topic = unique("bench");
        let registry = format!("mock://{}", unique("bench"));
        create_topics(&brokers, &[(&topic, PARTITIONS)]).await;
        eprintln!("prefilling {n} events into {topic} ({PARTITIONS} partitions)");
        let size = prefill(&brokers, &topic, &registry, n, None).await;
        if args.only_c {
            for run in 1..=args.runs {
                let cpu = cpu_seconds();
                let run_c = rate(n, kaufmann_run(&brokers, &topic, &registry, n, 0, false).await.0);
                // From the service's start to its shutdown: less noisy than the rate on a busy VM.
                let per_message = (cpu_seconds() - cpu) / n as f64 * 1e6;
                eprintln!("  C run {run}: {run_c:.0} msg/s, {per_message:.2} us of this process's CPU per message");
            }
            return;
        }

        let mut table: Vec<(String, f64, String)> = Vec::new();
        let say = |label: &str| eprintln!("measuring {label}");
        // A, B, C and the peers take turns, one run of each per round, so that a slow spell of
        // the machine (this VM's rates move by half between runs) weighs on all alike; C / B and
        // C / peer are the medians of the rounds' ratios.
        say("A (raw rdkafka), B (+ decode), C (Kaufmann, no-op handler) and the peers, a run of each per round");
        let (mut a, mut b, mut c, mut c_over_b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // The peers take their turn in each round too: (rates, C's ratios, why a run failed).
        let peer_list: Vec<Peer> = peers().into_iter().filter(|_| args.peers).collect();
        let mut peer_runs: Vec<(Vec<f64>, Vec<f64>, String)> =
            peer_list.iter().map(|_| Default::default()).collect();
        for round in 1..=args.runs {
            let run_a = rate(n, raw_consume(&brokers, &topic, &registry, n, false).await);
            let run_b = rate(n, raw_consume(&brokers, &topic, &registry, n, true).await);
            let run_c = rate(n, kaufmann_run(&brokers, &topic, &registry, n, 0, false).await.0);
            eprintln!("  round {round}: A {run_a:.0}, B {run_b:.0}, C {run_c:.0} msg/s (C / B {:.2})", run_c / run_b);
            a.push(run_a);
            b.push(run_b);
            c.push(run_c);
            c_over_b.push(run_c / run_b);
            for (peer, (runs, ratios, note)) in peer_list.iter().zip(&mut peer_runs) {
                if peer.missing.is_some() && !note.is_empty() {
                    continue;
                }
                match run_peer(peer, &brokers, &topic, n) {
                    Ok(r) => {
                        eprintln!("  round {round}: {} {r:.0} msg/s (C / {} {:.2})", peer.name, peer.name, run_c / r);
                        runs.push(r);
                        ratios.push(run_c / r);
                    }
                    Err(why) => {
                        eprintln!("  round {round}: {} run failed: {why}", peer.name);
                        *note = why;
                    }
                }
            }
        }
        let (a, b, c, c_over_b) = (median(a), median(b), median(c), median(c_over_b));
        // D, E and the latency: medians of the runs too; in-flight and RSS peaks are the
        // highest of the runs (they are limits, not typical values).
        say("D: Kaufmann, 5 ms handler, demand 50");
        let d_count = n.min(30_000);
        let (mut d, mut ideal, mut d_peak) = (Vec::new(), Vec::new(), 0);
        for _ in 0..args.runs {
            let (took, peak, _) = kaufmann_run(&brokers, &topic, &registry, d_count, 5, false).await;
            let mean_sleep = SLEPT_NANOS.load(Ordering::SeqCst) as f64 / d_count as f64 / 1e9;
            d.push(rate(d_count, took));
            ideal.push(50.0 / mean_sleep.max(1e-9));
            d_peak = d_peak.max(peak);
            eprintln!("  D run: {:.0} msg/s (ideal {:.0})", d[d.len() - 1], ideal[ideal.len() - 1]);
        }
        let (d, ideal) = (median(d), median(ideal));
        say("E: Kaufmann, 20 ms handler, demand 50");
        let rss_before = rss_kib();
        let e_count = n.min(10_000);
        let (mut e, mut e_peak, mut e_rss) = (Vec::new(), 0, 0);
        for _ in 0..args.runs {
            let (took, peak, rss) = kaufmann_run(&brokers, &topic, &registry, e_count, 20, true).await;
            e.push(rate(e_count, took));
            e_peak = e_peak.max(peak);
            e_rss = e_rss.max(rss);
            eprintln!("  E run: {:.0} msg/s, in-flight peak {peak}, RSS peak {} MiB", e[e.len() - 1], rss / 1024);
        }
        let e = median(e);

        say("F and G: Kaufmann, the handler publishes each event again, at least once (F) and exactly once (G), a run of each per round");
        let fg_count = n.min(50_000);
        let output = unique("bench-out");
        create_topics(&brokers, &[(&output, PARTITIONS)]).await;
        let (mut f, mut g, mut g_over_f, mut transactions) = (Vec::new(), Vec::new(), Vec::new(), 0_u64);
        PUBLISH.store(true, Ordering::SeqCst);
        for round in 1..=args.runs {
            let mut rates = [0.0; 2];
            for (slot, processing) in [kaufmann::Processing::AtLeastOnce, kaufmann::Processing::ExactlyOnce].into_iter().enumerate() {
                let mut config = service_config("bench-publish", &brokers, &topic, &registry);
                config.default_topic.clone_from(&output);
                config.processing = processing;
                config.instance_id = unique("bench");
                let (took, _, _) = configured_run(config, fg_count, 0, false).await;
                rates[slot] = rate(fg_count, took);
            }
            transactions = transactions.max(LAST_TRANSACTIONS.load(Ordering::SeqCst));
            eprintln!("  round {round}: F {:.0}, G {:.0} msg/s (G / F {:.2})", rates[0], rates[1], rates[1] / rates[0]);
            f.push(rates[0]);
            g.push(rates[1]);
            g_over_f.push(rates[1] / rates[0]);
        }
        PUBLISH.store(false, Ordering::SeqCst);
        let (f, g, g_over_f) = (median(f), median(g), median(g_over_f));

        say("latency at a fixed produce rate");
        let (lat_rate, lat_count) = (2_000, 10_000);
        let (mut p50, mut p99) = (Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let (run_p50, run_p99) = latency_run(&brokers, &registry, lat_rate, lat_count).await;
            eprintln!("  latency run: p50 {run_p50:.1} ms, p99 {run_p99:.1} ms");
            p50.push(run_p50);
            p99.push(run_p99);
        }
        let (p50, p99) = (median(p50), median(p99));

        // Each peer: its median rate over the runs that finished, how many did, why not, and the
        // median of C's ratio to it over the rounds.
        let peer_results: Vec<(Peer, Option<f64>, usize, String, f64)> = peer_list
            .into_iter()
            .zip(peer_runs)
            .map(|(peer, (runs, ratios, note))| {
                let finished = runs.len();
                let value = (!runs.is_empty()).then(|| median(runs));
                (peer, value, finished, note, median(ratios))
            })
            .collect();

        let ratio = |x: f64, base: f64| format!("{:.2}", x / base);
        // Each row's ratio to each peer that was measured.
        let to_peers = |x: f64| -> String {
            let mut cells = String::new();
            for (_, value, _, _, _) in &peer_results {
                let cell = value.map_or_else(|| "-".to_owned(), |v| ratio(x, v));
                let _ = write!(cells, " {cell} |");
            }
            cells
        };
        table.push(("A. raw rdkafka StreamConsumer, counting".into(), a, "1.00".into()));
        table.push(("B. A + wire format + apache-avro decode".into(), b, ratio(b, a)));
        table.push(("C. Kaufmann, no-op handler (decode, dispatch, commit)".into(), c, ratio(c, a)));
        table.push((format!("D. Kaufmann, 5 ms handler, demand 50 ({d_count} msgs)"), d, ratio(d, a)));
        table.push((format!("E. Kaufmann, 20 ms handler, demand 50 ({e_count} msgs)"), e, ratio(e, a)));
        table.push((format!("F. Kaufmann, handler publishes each event, at least once ({fg_count} msgs)"), f, ratio(f, a)));
        table.push((format!("G. F exactly once (transactions every 100 ms or 1,000 messages; up to {transactions} in a run)"), g, ratio(g, a)));
        for (peer, value, finished, _, _) in &peer_results {
            if let Some(v) = value {
                let label = format!("{} ({finished} of {} runs finished)", peer.label, args.runs);
                table.push((label, *v, ratio(*v, a)));
            }
        }

        let machine = machine();
        let date = Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default();
        let mut md = String::new();
        let _ = writeln!(md, "# Benchmark results\n\nMeasured {date} by `bash scripts/bench --messages {n} --runs {}` on {machine}.", args.runs);
        let kafka = std::env::var("TEST_KAFKA_VERSION").unwrap_or_else(|_| "(version unknown)".to_owned());
        let _ = writeln!(md, "Broker: Apache Kafka {kafka} (single-node KRaft, `scripts/with-kafka`) on 127.0.0.1, librdkafka defaults (no fetch-wait override), one topic of {PARTITIONS} partitions, {n} Confluent-framed Avro events of {size} bytes on average (1,000 keys). Rates and latencies are the median of {} runs (rates from the first message to the last; A, B, C and the peers take turns, a run of each per round); in-flight and RSS peaks are the highest of the runs. Kaufmann runs in release mode with the default `key` ordering.\n", args.runs);
        let mut peer_heads = String::new();
        for (peer, _, _, _, _) in &peer_results {
            let _ = write!(peer_heads, " ratio to {} |", peer.name);
        }
        let peer_rules: String = peer_results.iter().map(|_| "---:|").collect();
        let _ = writeln!(md, "| run | msgs/s | ratio to A |{peer_heads}\n|---|---:|---:|{peer_rules}");
        for (label, value, r) in &table {
            let _ = writeln!(md, "| {label} | {value:.0} | {r} |{}", to_peers(*value));
        }
        let _ = writeln!(md, "\n| figure | value | goal |\n|---|---:|---|");
        let _ = writeln!(md, "| C / B (median of the rounds' ratios; ratio of the medians {:.2}) | {c_over_b:.2} | >= 0.8 |", c / b);
        let _ = writeln!(md, "| D / (demand / measured mean handler time = {ideal:.0} msg/s) | {:.2} | >= 0.9 |", d / ideal);
        let _ = writeln!(md, "| D in-flight peak | {d_peak} | <= 50 |");
        let _ = writeln!(md, "| E in-flight peak | {e_peak} | <= 50 |");
        let _ = writeln!(md, "| E peak RSS of the whole benchmark process (before E: {} MiB) | {} MiB | < 100 MB |", rss_before / 1024, e_rss / 1024);
        let _ = writeln!(md, "| G / F, exactly once against at least once on the same data (median of the rounds' ratios; ratio of the medians {:.2}) | {g_over_f:.2} | >= 0.5 |", g / f);
        let _ = writeln!(md, "| end-to-end latency p50 / p99 at {lat_rate} msg/s ({lat_count} msgs, produce -> handler) | {p50:.1} ms / {p99:.1} ms | |");
        for (peer, value, _, note, c_over_peer) in &peer_results {
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
