//! What a service shows about itself: one set of counters and gauges (`metrics`, read by `stats`),
//! readiness and its reasons (`health`), and the HTTP server of `/metrics` and the probes
//! (`server`). It calls no other stage: every stage records into it.

pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod server;
pub(crate) mod stats;
