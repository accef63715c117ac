//! Peer benchmark: RustStream 0.7 (`ruststream-rdkafka`) consuming the benchmark's
//! Confluent-framed events through its registry-backed Avro codec (`AvroCodec::registry`) into a
//! serde struct, with a no-op handler, as its docs show. The subscription commits with
//! `Commit::Tracked`, the at-least-once mode that matches Kaufmann's.
//!
//! Usage: ruststream-peer <brokers> <topic> <count> <schema.avsc>, with `PEER_REGISTRY_URL`
//! naming the registry the events' ids live in. Prints `elapsed_ms <ms>` from the first message
//! to the count-th, then exits.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ruststream_rdkafka::avro::AvroCodec;
use ruststream_rdkafka::prelude::*;
use ruststream_rdkafka::{SchemaPrefetch, SchemaRegistry};
use serde::Deserialize;

/// The benchmark event, as the schema in `tests/benches/schemas/bench.event.avsc` has it.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct BenchEvent {
    id: i64,
    sent_us: i64,
    user: String,
    email: String,
    country: String,
    active: bool,
    score: f64,
    note: String,
}

static SEEN: AtomicU64 = AtomicU64::new(0);
static COUNT: AtomicU64 = AtomicU64::new(u64::MAX);
static FIRST: OnceLock<Instant> = OnceLock::new();

fn arg(n: usize) -> String {
    std::env::args().nth(n).unwrap_or_else(|| {
        eprintln!("usage: ruststream-peer <brokers> <topic> <count> <schema.avsc>");
        std::process::exit(2)
    })
}

fn group() -> String {
    format!("ruststream-bench-{}", std::process::id())
}

#[subscriber(
    KafkaTopic::new(arg(2))
        .group(group())
        .start(StartOffset::Earliest)
        .commit(Commit::Tracked)
)]
async fn consume(event: &BenchEvent) -> HandlerOutcome {
    let _ = event;
    let first = *FIRST.get_or_init(Instant::now);
    let seen = SEEN.fetch_add(1, Ordering::Relaxed) + 1;
    if seen == COUNT.load(Ordering::Relaxed) {
        println!("elapsed_ms {:.3}", first.elapsed().as_secs_f64() * 1000.0);
        std::process::exit(0);
    }
    HandlerOutcome::ack()
}

#[tokio::main]
async fn main() {
    let brokers = arg(1);
    let count: u64 = arg(3).parse().unwrap_or(0);
    COUNT.store(count.max(1), Ordering::Relaxed);
    let Ok(url) = std::env::var("PEER_REGISTRY_URL") else {
        eprintln!("PEER_REGISTRY_URL is not set");
        std::process::exit(2)
    };
    let prefetch = SchemaPrefetch::new(SchemaRegistry::new(url));
    let codec = AvroCodec::registry(&prefetch);
    let broker = KafkaBroker::new([brokers]).schema_prefetch(prefetch);
    let app = RustStream::new(AppInfo::new("ruststream-bench", "0.1.0"))
        .with_broker_codec(broker, codec, |b| {
            b.include(consume);
        });
    // A run that does not finish within two minutes reports nothing (the runner says so).
    let timeout = tokio::time::sleep(Duration::from_secs(120));
    if let Err(e) = app.run_until(timeout).await {
        eprintln!("ruststream: {e}");
    }
    eprintln!("timed out after {} messages", SEEN.load(Ordering::Relaxed));
    std::process::exit(2);
}
