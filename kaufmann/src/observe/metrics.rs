//! Metrics in the Prometheus text format, and the health state behind the readiness probe.
//!
//! Event labels drop a `#<id>` suffix (`command.user.create#42` counts as
//! `command.user.create`), so that ids in event names cannot explode the number of series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(feature = "otel")]
use std::sync::OnceLock;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::observe::health::Health;

/// Upper bounds (seconds) of the latency histogram buckets.
pub(crate) const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// Per-event counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventCounters {
    pub(crate) consumed: u64,
    pub(crate) handled: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) dead_lettered: u64,
    /// Batches a batch handler ran, and the messages in them.
    pub(crate) batches: u64,
    pub(crate) batched: u64,
    handler: Histogram,
    batch: Histogram,
    publish: Histogram,
    pub(crate) published: u64,
}

impl EventCounters {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Consumed => self.consumed += 1,
            Outcome::Handled(took) => {
                self.handled += 1;
                self.handler.observe(took);
            }
            Outcome::Retried => self.retried += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::DeadLettered => self.dead_lettered += 1,
            Outcome::Batch(size, took) => {
                self.batches += 1;
                self.batched += u64::try_from(size).unwrap_or(u64::MAX);
                self.batch.observe(took);
            }
            Outcome::Published(took) => {
                self.published += 1;
                self.publish.observe(took);
            }
        }
    }
}

/// A per-event counter: metric name, help text and how to read it.
pub(crate) type CounterColumn = (&'static str, &'static str, fn(&EventCounters) -> u64);
/// A metric with one value for the service: name, help text, kind and how to read it.
pub(crate) type ScalarColumn = (&'static str, &'static str, Kind, fn(&Metrics) -> u64);

/// Whether a metric only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// The per-event counters `/metrics` shows.
pub(crate) const COUNTERS: [CounterColumn; 8] = [
    (
        "kaufmann_messages_consumed_total",
        "Messages taken from the consumer.",
        |c| c.consumed,
    ),
    (
        "kaufmann_messages_handled_total",
        "Messages whose handler succeeded.",
        |c| c.handled,
    ),
    (
        "kaufmann_messages_failed_total",
        "Messages that failed for good (after retries).",
        |c| c.failed,
    ),
    (
        "kaufmann_messages_retried_total",
        "Retries of failed attempts.",
        |c| c.retried,
    ),
    (
        "kaufmann_messages_dead_lettered_total",
        "Messages sent to a dead-letter topic.",
        |c| c.dead_lettered,
    ),
    (
        "kaufmann_events_published_total",
        "Events published.",
        |c| c.published,
    ),
    (
        "kaufmann_batches_total",
        "Runs of a batch handler (each attempt at a batch).",
        |c| c.batches,
    ),
    (
        "kaufmann_batch_messages_total",
        "Messages in those runs (over kaufmann_batches_total: the mean batch size).",
        |c| c.batched,
    ),
];

/// The metrics with one value for the service.
pub(crate) const SCALARS: [ScalarColumn; 9] = [
    (
        "kaufmann_in_flight",
        "Messages in the pool now.",
        Kind::Gauge,
        |m| u64::try_from(m.in_flight()).unwrap_or(u64::MAX),
    ),
    (
        "kaufmann_unconfirmed",
        "Messages whose handlers returned, waiting for the broker to acknowledge their events.",
        Kind::Gauge,
        |m| u64::try_from(m.unconfirmed()).unwrap_or(u64::MAX),
    ),
    (
        "kaufmann_commits_total",
        "Successful offset commits.",
        Kind::Counter,
        |m| m.commits.load(Ordering::Relaxed),
    ),
    (
        "kaufmann_rebalances_total",
        "Partition assignments and revocations.",
        Kind::Counter,
        Metrics::rebalances,
    ),
    (
        "kaufmann_unhandled_total",
        "Messages no handler serves (committed or dead-lettered by the unhandled policy).",
        Kind::Counter,
        Metrics::unhandled,
    ),
    (
        "kaufmann_registry_up",
        "1 while the schema registry answers.",
        Kind::Gauge,
        |m| u64::from(m.health.registry.is_up()),
    ),
    (
        "kaufmann_broker_up",
        "1 while the Kafka broker answers.",
        Kind::Gauge,
        |m| u64::from(m.health.broker.is_up()),
    ),
    (
        "kaufmann_ready",
        "1 while /health/ready answers 200.",
        Kind::Gauge,
        |m| u64::from(m.health.ready()),
    ),
    (
        "kaufmann_consumer_errors_total",
        "Errors librdkafka reported in place of a message.",
        Kind::Counter,
        |m| m.health.consumer_errors(),
    ),
];

/// The transactions counter, by outcome.
pub(crate) const TRANSACTIONS: (&str, &str) = (
    "kaufmann_transactions_total",
    "Transactions of exactly-once processing, by how they ended.",
);
/// The histogram of transaction durations.
pub(crate) const TRANSACTION_DURATION: (&str, &str) = (
    "kaufmann_transaction_duration_seconds",
    "Time from a transaction's first message to its commit.",
);
/// The consumer lag gauge, by topic and partition.
pub(crate) const LAG: (&str, &str) = (
    "kaufmann_consumer_lag",
    "Messages behind the end of the partition.",
);

/// The gauge of the partitions each consumer holds, by consumer.
pub(crate) const ASSIGNED: (&str, &str) = (
    "kaufmann_assigned_partitions",
    "Partitions the consumer holds (one series per consumer of the instance).",
);

/// The per-event histograms.
pub(crate) const HISTOGRAMS: [(&str, &str); 3] = [
    (
        "kaufmann_handler_duration_seconds",
        "Handler run time of successful attempts.",
    ),
    (
        "kaufmann_publish_duration_seconds",
        "Time from publish to the broker's acknowledgement.",
    ),
    (
        "kaufmann_batch_duration_seconds",
        "Run time of a batch handler over one batch.",
    ),
];

#[cfg(feature = "otel")]
impl Outcome {
    /// The per-event histogram this outcome is measured in ([`HISTOGRAMS`] index), with the time.
    pub(crate) fn timed(self) -> Option<(usize, Duration)> {
        match self {
            Self::Handled(took) => Some((0, took)),
            Self::Published(took) => Some((1, took)),
            Self::Batch(_, took) => Some((2, took)),
            Self::Consumed | Self::Retried | Self::Failed | Self::DeadLettered => None,
        }
    }
}

/// What happened to one message, for [`Metrics::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Consumed,
    Handled(Duration),
    Retried,
    Failed,
    DeadLettered,
    Published(Duration),
    /// A batch handler ran over this many messages, for this long.
    Batch(usize, Duration),
}

/// The service's metrics and health.
#[derive(Debug, Default)]
pub struct Metrics {
    events: Mutex<BTreeMap<String, EventCounters>>,
    lag: Mutex<BTreeMap<(String, i32), i64>>,
    commits: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Messages out of the pool, waiting for their events' acknowledgements.
    unconfirmed: AtomicUsize,
    max_unconfirmed: AtomicUsize,
    unhandled: AtomicU64,
    rebalances: AtomicU64,
    /// Transactions of `exactly_once` processing.
    transactions: Mutex<TransactionCounters>,
    /// What readiness reports.
    pub health: Health,
    /// Where times go besides these histograms (OTLP's, under `otel`), when they do.
    #[cfg(feature = "otel")]
    pub(crate) exported: OnceLock<Box<dyn TimeSink>>,
}

/// Histograms kept outside [`Metrics`], fed as it records (the OTLP export's).
#[cfg(feature = "otel")]
pub(crate) trait TimeSink: Send + Sync + std::fmt::Debug {
    /// A time of the `index`th of [`HISTOGRAMS`], for `event` (its label).
    fn event(&self, index: usize, event: &str, took: Duration);
    /// A committed transaction's time.
    fn transaction(&self, took: Duration);
}

/// Committed and aborted transactions, and how long committed ones were open.
#[derive(Debug, Clone, Default)]
struct TransactionCounters {
    committed: u64,
    aborted: u64,
    duration: Histogram,
}

/// The label of an event name: without a `#<id>` suffix; `unknown` when empty.
pub fn event_label(event: &str) -> &str {
    let base = event.split_once('#').map_or(event, |(base, _)| base);
    if base.is_empty() {
        "unknown"
    } else {
        base
    }
}

impl Metrics {
    fn events(&self) -> MutexGuard<'_, BTreeMap<String, EventCounters>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an outcome in its event's counters.
    fn count(&self, event: &str, outcome: Outcome) {
        let mut events = self.events();
        // One search when the event is known (every message but each event's first): a known
        // name is its own label (labels hold no `#`), so it needs no search for a `#`.
        if let Some(counters) = events.get_mut(event) {
            counters.count(outcome);
            return;
        }
        let label = event_label(event);
        match events.get_mut(label) {
            Some(counters) => counters.count(outcome),
            None => events.entry(label.to_owned()).or_default().count(outcome),
        }
    }

    /// Counts what happened to a message of `event`, in `/metrics` and, when they are exported,
    /// in the OTLP histograms.
    pub(crate) fn record(&self, event: &str, outcome: Outcome) {
        self.count(event, outcome);
        #[cfg(feature = "otel")]
        if let (Some(histograms), Some((index, took))) = (self.exported.get(), outcome.timed()) {
            histograms.event(index, event_label(event), took);
        }
    }

    /// Each event's counters (its label and a copy of them).
    #[cfg(feature = "otel")]
    pub(crate) fn per_event(&self) -> Vec<(String, EventCounters)> {
        self.events()
            .iter()
            .map(|(event, counters)| (event.clone(), counters.clone()))
            .collect()
    }

    /// The consumer lag of each partition.
    pub(crate) fn lags(&self) -> Vec<((String, i32), i64)> {
        self.lag
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(at, lag)| (at.clone(), *lag))
            .collect()
    }

    /// A message was admitted to the pool.
    pub(crate) fn started(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
    }

    /// A message of the pool finished.
    pub(crate) fn finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// A message left the pool to wait for its events' acknowledgements.
    pub(crate) fn awaits_confirmation(&self) {
        self.finished();
        let now = self.unconfirmed.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_unconfirmed.fetch_max(now, Ordering::SeqCst);
    }

    /// A message's events were acknowledged (or it failed after the fact): it is finished.
    pub(crate) fn confirmed(&self) {
        self.unconfirmed.fetch_sub(1, Ordering::SeqCst);
    }

    /// A partition assignment or revocation.
    pub(crate) fn rebalanced(&self) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
    }

    /// A message no handler serves; returns how many there were, this one included.
    pub(crate) fn count_unhandled(&self) -> u64 {
        self.unhandled.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    pub(crate) fn unconfirmed(&self) -> usize {
        self.unconfirmed.load(Ordering::SeqCst)
    }

    pub(crate) fn max_unconfirmed(&self) -> usize {
        self.max_unconfirmed.load(Ordering::SeqCst)
    }

    pub(crate) fn unhandled(&self) -> u64 {
        self.unhandled.load(Ordering::SeqCst)
    }

    pub(crate) fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::SeqCst)
    }

    /// The sum over every event of one counter.
    pub(crate) fn total(&self, counter: fn(&EventCounters) -> u64) -> u64 {
        self.events().values().map(counter).sum()
    }

    pub(crate) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// A transaction ended: committed (after `took` open) or aborted.
    pub(crate) fn transaction(&self, committed: bool, took: Duration) {
        let mut counters = self.transaction_counters();
        if committed {
            counters.committed += 1;
            counters.duration.observe(took);
        } else {
            counters.aborted += 1;
        }
        drop(counters);
        #[cfg(feature = "otel")]
        if let (Some(histograms), true) = (self.exported.get(), committed) {
            histograms.transaction(took);
        }
    }

    /// Transactions committed and aborted so far.
    pub(crate) fn transactions(&self) -> (u64, u64) {
        let counters = self.transaction_counters();
        (counters.committed, counters.aborted)
    }

    fn transaction_counters(&self) -> MutexGuard<'_, TransactionCounters> {
        self.transactions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((topic.to_owned(), partition), lag);
    }

    pub(crate) fn forget_lag(&self, topic: &str, partition: i32) {
        self.lag
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(topic.to_owned(), partition));
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let events = self.events().clone();
        for (name, help, value) in COUNTERS {
            header(&mut out, name, help, "counter");
            for (event, c) in &events {
                let _ = writeln!(out, "{name}{{event=\"{}\"}} {}", escape(event), value(c));
            }
        }
        for (name, help, kind, value) in SCALARS {
            header(&mut out, name, help, kind.name());
            let _ = writeln!(out, "{name} {}", value(self));
        }
        let transactions = self.transaction_counters().clone();
        let (name, help) = TRANSACTIONS;
        header(&mut out, name, help, "counter");
        for (outcome, count) in [
            ("committed", transactions.committed),
            ("aborted", transactions.aborted),
        ] {
            let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {count}");
        }
        let (name, help) = TRANSACTION_DURATION;
        header(&mut out, name, help, "histogram");
        write_histogram(&mut out, name, "", &transactions.duration);
        let (name, help) = LAG;
        header(&mut out, name, help, "gauge");
        for ((topic, partition), lag) in self.lags() {
            let _ = writeln!(
                out,
                "{name}{{topic=\"{}\",partition=\"{partition}\"}} {lag}",
                escape(&topic)
            );
        }
        let (name, help) = ASSIGNED;
        header(&mut out, name, help, "gauge");
        for (consumer, partitions) in self.health.assigned().into_iter().enumerate() {
            let _ = writeln!(out, "{name}{{consumer=\"{consumer}\"}} {partitions}");
        }
        render_histograms(&mut out, &events);
        out
    }
}

fn render_histograms(out: &mut String, events: &BTreeMap<String, EventCounters>) {
    let columns: [fn(&EventCounters) -> &Histogram; 3] =
        [|c| &c.handler, |c| &c.publish, |c| &c.batch];
    for ((name, help), histogram) in HISTOGRAMS.into_iter().zip(columns) {
        header(out, name, help, "histogram");
        for (event, c) in events {
            let labels = format!("event=\"{}\",", escape(event));
            write_histogram(out, name, &labels, histogram(c));
        }
    }
}

/// One histogram's series: `labels` (each followed by a comma) go before `le`.
fn write_histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    for (bound, count) in BUCKETS.iter().zip(h.counts) {
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", h.count);
    let plain = labels.trim_end_matches(',');
    let braces = if plain.is_empty() {
        String::new()
    } else {
        format!("{{{plain}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum);
    let _ = writeln!(out, "{name}_count{braces} {}", h.count);
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_drop_id_suffixes() {
        assert_eq!(event_label("command.user.create#42"), "command.user.create");
        assert_eq!(event_label("event.user.created"), "event.user.created");
        assert_eq!(event_label(""), "unknown");
    }

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let metrics = Metrics::default();
        metrics.record("a.b#1", Outcome::Consumed);
        metrics.record("a.b#2", Outcome::Consumed);
        metrics.record("a.b", Outcome::Handled(Duration::from_millis(3)));
        metrics.record("a.b", Outcome::DeadLettered);
        metrics.record("we\"ird", Outcome::Failed);
        metrics.committed();
        metrics.transaction(true, Duration::from_millis(30));
        metrics.transaction(false, Duration::from_millis(2));
        metrics.set_lag("t", 2, 17);
        metrics.health.set_assigned(1, 3);
        let text = metrics.render();
        for line in [
            "kaufmann_messages_consumed_total{event=\"a.b\"} 2",
            "kaufmann_messages_handled_total{event=\"a.b\"} 1",
            "kaufmann_messages_dead_lettered_total{event=\"a.b\"} 1",
            "kaufmann_messages_failed_total{event=\"we\\\"ird\"} 1",
            "kaufmann_commits_total 1",
            "kaufmann_transactions_total{outcome=\"committed\"} 1",
            "kaufmann_transactions_total{outcome=\"aborted\"} 1",
            "kaufmann_transaction_duration_seconds_bucket{le=\"0.025\"} 0",
            "kaufmann_transaction_duration_seconds_bucket{le=\"0.05\"} 1",
            "kaufmann_transaction_duration_seconds_count 1",
            "kaufmann_handler_duration_seconds_sum{event=\"a.b\"} 0.003",
            "kaufmann_consumer_lag{topic=\"t\",partition=\"2\"} 17",
            "# TYPE kaufmann_assigned_partitions gauge",
            "kaufmann_assigned_partitions{consumer=\"0\"} 0",
            "kaufmann_assigned_partitions{consumer=\"1\"} 3",
            "kaufmann_handler_duration_seconds_bucket{event=\"a.b\",le=\"0.0025\"} 0",
            "kaufmann_handler_duration_seconds_bucket{event=\"a.b\",le=\"0.005\"} 1",
            "kaufmann_handler_duration_seconds_bucket{event=\"a.b\",le=\"+Inf\"} 1",
            "kaufmann_handler_duration_seconds_count{event=\"a.b\"} 1",
            "# TYPE kaufmann_in_flight gauge",
            "kaufmann_in_flight 0",
            "# TYPE kaufmann_unconfirmed gauge",
            "kaufmann_unconfirmed 0",
            "kaufmann_unhandled_total 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
