//! OpenTelemetry (the `otel` feature): the service's spans exported over OTLP (HTTP, protobuf)
//! with the OpenTelemetry SDK and `tracing-opentelemetry`, configured by the standard variables
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `_HEADERS`,
//! `_TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`). Nothing is
//! exported unless an endpoint variable is set.
//!
//! A message's span takes the `traceparent` of the message as its remote parent, and what a
//! handler publishes carries the span's own id as its parent: a chain of events through several
//! services is one trace in the receiver.

use std::sync::OnceLock;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;

/// The provider spans are exported through, when one was set up.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The variables that name where spans go; without one, nothing is exported.
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// The layer that exports spans, when an endpoint is configured (and the exporter builds; else a
/// line on standard error says why, and the service runs without it).
pub(crate) fn layer<S>() -> Option<Box<dyn Layer<S> + Send + Sync>>
where
    S: tracing::Subscriber + Send + Sync + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if !ENDPOINT_VARS
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|value| !value.is_empty()))
    {
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
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        if let Ok(name) = std::env::var("KAUFMANN_SERVICE_NAME") {
            resource = resource.with_service_name(name);
        }
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("kaufmann");
    if PROVIDER.set(provider).is_err() {
        return None;
    }
    Some(Box::new(tracing_opentelemetry::layer().with_tracer(tracer)))
}

/// Exports what is left and stops the exporter (`exit_code` calls it).
pub(crate) fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(err) = provider.shutdown() {
            eprintln!("kaufmann: OpenTelemetry export did not finish: {err}");
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
