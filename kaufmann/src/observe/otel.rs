//! OpenTelemetry (the `otel` feature): the service's spans and metrics exported over OTLP (HTTP,
//! protobuf) with the OpenTelemetry SDK and `tracing-opentelemetry`, configured by the standard
//! variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`; `_HEADERS`, `_TIMEOUT`, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`). Nothing is exported
//! unless an endpoint variable is set; `OTEL_TRACES_EXPORTER=none` or `OTEL_METRICS_EXPORTER=none`
//! turns one of the two off.
//!
//! The metrics are those of `/metrics`, under the names the Collector's Prometheus exporter turns
//! back into the `/metrics` ones: without `_total` (monotonic sums) and `_seconds` (unit `s`),
//! `kaufmann_messages_handled` for `kaufmann_messages_handled_total`. Counters and gauges are read
//! at each export; the histograms (same buckets) are recorded as messages are handled.
//!
//! A message's span takes the `traceparent` of the message as its remote parent, and what a
//! handler publishes carries the span's own id as its parent: a chain of events through several
//! services is one trace in the receiver.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::metrics::{AsyncInstrument, Histogram, Meter, MeterProvider as _};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;

use crate::observe::metrics::{
    Kind, Metrics, TimeSink, ASSIGNED, BUCKETS, COUNTERS, HISTOGRAMS, LAG, SCALARS, TRANSACTIONS,
    TRANSACTION_DURATION,
};

/// The provider spans are exported through, when one was set up.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
/// The provider metrics are exported through, when one was set up.
static METERS: OnceLock<SdkMeterProvider> = OnceLock::new();

/// Whether a signal is exported: an endpoint variable for it is set (`endpoint`, its own, or the
/// common one) and its exporter variable (`exporter`) is not `none`.
fn configured(endpoint: &str, exporter: &str) -> bool {
    let set = |var: &str| std::env::var_os(var).is_some_and(|value| !value.is_empty());
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set(endpoint))
        && std::env::var(exporter).map_or(true, |value| value.trim() != "none")
}

/// The resource every signal is exported with: the service name from `OTEL_SERVICE_NAME`, else
/// `KAUFMANN_SERVICE_NAME` (the SDK reads the `OTEL_*` ones).
fn resource() -> Resource {
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        if let Ok(name) = std::env::var("KAUFMANN_SERVICE_NAME") {
            resource = resource.with_service_name(name);
        }
    }
    resource.build()
}

/// The layer that exports spans, when an endpoint is configured (and the exporter builds; else a
/// line on standard error says why, and the service runs without it).
pub(crate) fn layer<S>() -> Option<Box<dyn Layer<S> + Send + Sync>>
where
    S: tracing::Subscriber + Send + Sync + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if !configured("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER") {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(err) => {
            eprintln!("kaufmann: OpenTelemetry export is off: {err}");
            return None;
        }
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build();
    let tracer = provider.tracer("kaufmann");
    if PROVIDER.set(provider).is_err() {
        return None;
    }
    Some(Box::new(tracing_opentelemetry::layer().with_tracer(tracer)))
}

/// Exports the service's metrics, when an endpoint is configured (else, or when the exporter
/// does not build, a line on standard error says why and nothing is exported).
pub(crate) fn export_metrics(metrics: &Arc<Metrics>) {
    if !configured(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_METRICS_EXPORTER",
    ) {
        return;
    }
    let exporter = match opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(err) => {
            eprintln!("kaufmann: OpenTelemetry metrics export is off: {err}");
            return;
        }
    };
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(resource())
        .build();
    let meter = provider.meter("kaufmann");
    observe(&meter, metrics);
    let histograms = Histograms {
        events: HISTOGRAMS.map(|(name, help)| histogram(&meter, name, help)),
        transaction: histogram(&meter, TRANSACTION_DURATION.0, TRANSACTION_DURATION.1),
    };
    if metrics.exported.set(Box::new(histograms)).is_err() || METERS.set(provider).is_err() {
        eprintln!("kaufmann: OpenTelemetry metrics are exported once per process");
    }
}

/// The name of a `/metrics` metric in OTLP: without the suffixes the Prometheus exporter adds.
fn otlp_name(name: &'static str) -> &'static str {
    let name = name.strip_suffix("_total").unwrap_or(name);
    name.strip_suffix("_seconds").unwrap_or(name)
}

/// An instrument's callback: `read` with the metrics and the observer, while the service's
/// metrics are alive (the meter provider lives as long as the process).
fn reading<T>(
    metrics: &Arc<Metrics>,
    read: impl Fn(&Metrics, &dyn AsyncInstrument<T>) + Send + Sync + 'static,
) -> impl Fn(&dyn AsyncInstrument<T>) + Send + Sync + 'static {
    let metrics = Arc::downgrade(metrics);
    move |observer| {
        if let Some(metrics) = metrics.upgrade() {
            read(&metrics, observer);
        }
    }
}

/// The counters and gauges, each read from `metrics` at export.
fn observe(meter: &Meter, metrics: &Arc<Metrics>) {
    for (name, help, read) in COUNTERS {
        meter
            .u64_observable_counter(otlp_name(name))
            .with_description(help)
            .with_callback(reading(metrics, move |metrics, observer| {
                for (event, counters) in metrics.per_event() {
                    observer.observe(read(&counters), &[KeyValue::new("event", event)]);
                }
            }))
            .build();
    }
    for (name, help, kind, read) in SCALARS {
        let callback = reading(metrics, move |metrics, observer| {
            observer.observe(read(metrics), &[]);
        });
        match kind {
            Kind::Counter => {
                meter
                    .u64_observable_counter(otlp_name(name))
                    .with_description(help)
                    .with_callback(callback)
                    .build();
            }
            Kind::Gauge => {
                meter
                    .u64_observable_gauge(otlp_name(name))
                    .with_description(help)
                    .with_callback(callback)
                    .build();
            }
        }
    }
    meter
        .u64_observable_counter(otlp_name(TRANSACTIONS.0))
        .with_description(TRANSACTIONS.1)
        .with_callback(reading(metrics, |metrics, observer| {
            let (committed, aborted) = metrics.transactions();
            observer.observe(committed, &[KeyValue::new("outcome", "committed")]);
            observer.observe(aborted, &[KeyValue::new("outcome", "aborted")]);
        }))
        .build();
    meter
        .i64_observable_gauge(otlp_name(LAG.0))
        .with_description(LAG.1)
        .with_callback(reading(metrics, |metrics, observer| {
            for ((topic, partition), lag) in metrics.lags() {
                observer.observe(
                    lag,
                    &[
                        KeyValue::new("topic", topic),
                        KeyValue::new("partition", i64::from(partition)),
                    ],
                );
            }
        }))
        .build();
    meter
        .u64_observable_gauge(otlp_name(ASSIGNED.0))
        .with_description(ASSIGNED.1)
        .with_callback(reading(metrics, |metrics, observer| {
            for (consumer, partitions) in metrics.health.assigned().into_iter().enumerate() {
                let consumer = i64::try_from(consumer).unwrap_or(i64::MAX);
                observer.observe(partitions, &[KeyValue::new("consumer", consumer)]);
            }
        }))
        .build();
}

fn histogram(meter: &Meter, name: &'static str, help: &'static str) -> Histogram<f64> {
    meter
        .f64_histogram(otlp_name(name))
        .with_description(help)
        .with_unit("s")
        .with_boundaries(BUCKETS.to_vec())
        .build()
}

/// The exported histograms, recorded into as [`Metrics`] records.
#[derive(Debug)]
struct Histograms {
    /// In the order of [`HISTOGRAMS`].
    events: [Histogram<f64>; 3],
    transaction: Histogram<f64>,
}

impl TimeSink for Histograms {
    fn event(&self, index: usize, event: &str, took: Duration) {
        if let Some(histogram) = self.events.get(index) {
            histogram.record(
                took.as_secs_f64(),
                &[KeyValue::new("event", event.to_owned())],
            );
        }
    }

    fn transaction(&self, took: Duration) {
        self.transaction.record(took.as_secs_f64(), &[]);
    }
}

/// Exports what is left and stops the exporters (`exit_code` calls it).
pub(crate) fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(err) = provider.shutdown() {
            eprintln!("kaufmann: OpenTelemetry export did not finish: {err}");
        }
    }
    if let Some(provider) = METERS.get() {
        if let Err(err) = provider.shutdown() {
            eprintln!("kaufmann: OpenTelemetry metrics export did not finish: {err}");
        }
    }
}

/// Makes the sender of a message (its `traceparent`'s trace id, span id and flags) the parent
/// of `span` (the message's span).
pub(crate) fn adopt(span: &tracing::Span, (trace_id, span_id, flags): (u128, u64, u8)) {
    let remote = SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// The id of the current span as exported, when it is.
pub(crate) fn current_span_id() -> Option<u64> {
    PROVIDER.get()?;
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| u64::from_be_bytes(span_context.span_id().to_bytes()))
}
