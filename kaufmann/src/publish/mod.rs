//! Stage: typed value -> Kafka. The publisher (encode in the service's wire format, register the
//! writer schema once, add the envelope headers and the trace context, produce), the `Context` a
//! handler publishes through, and the in-memory sink of the test bus. It may call `codec`,
//! `registry`, `observe` and `config`.

pub(crate) mod context;
#[cfg(feature = "testing")]
pub(crate) mod memory_sink;
pub(crate) mod publisher;
pub(crate) mod trace;
