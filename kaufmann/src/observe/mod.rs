//! What a service shows about itself: one set of counters and gauges (`metrics`, read by `stats`),
//! readiness and its reasons (`health`), rate-limited logging (`log_limit`), librdkafka's log
//! lines (`client_logs`), and the HTTP server of `/metrics` and the probes
//! (`server`). It calls no other stage: every stage records into it.

pub(crate) mod client_logs;
pub(crate) mod health;
pub(crate) mod log_limit;
pub(crate) mod metrics;
#[cfg(feature = "otel")]
pub(crate) mod otel;
pub(crate) mod server;
pub(crate) mod stats;
