//! Stage: Kafka -> work. The rdkafka consumer and its rebalance callbacks (`context`), the poll loop with
//! admission (at most `demand` in flight, partitions paused when full), the lanes of the ordering
//! modes, the batches of batch handlers (`batching`), the offsets each partition may commit and the
//! transactions of exactly-once processing (`transactions`); the embedded broker for runs with none
//! configured. It hands each message to `process` and may call `config`, `observe`, `registry` and
//! `publish` (to flush on shutdown).

pub(crate) mod batching;
pub(crate) mod context;
pub(crate) mod embedded;
pub(crate) mod engine;
pub(crate) mod offsets;
pub(crate) mod ordering;
pub(crate) mod transactions;
