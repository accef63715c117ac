//! Stage: one message, start to finish. The fetched message (`message`), the registered handlers
//! and the typed view they read (`handler`, checked at compile time by `checks`), writer schemas
//! through the registry cache (`decoder`), dispatch, attempts with timeouts, panics caught and
//! retries (`processor`, failures classified by `failure`; batches of a batch handler in `batch`;
//! under exactly once, records the broker refused counted by `refusals`), then the last resort:
//! error events and dead letters (`dead_letter`). It may call `codec`, `registry`, `publish`, `observe` and
//! `config`, never `consume`.

pub(crate) mod batch;
pub(crate) mod checks;
pub mod dead_letter;
pub(crate) mod decoder;
pub(crate) mod failure;
pub(crate) mod handler;
pub(crate) mod message;
pub(crate) mod processor;
pub(crate) mod refusals;
pub mod retry_topic;
pub(crate) mod state;
