//! Stage: one message, start to finish. The registered handlers and the typed view they read
//! (`handler`, checked at compile time by `checks`), decode through the registry cache, dispatch,
//! attempts with timeouts, panics caught and retries (`processor`), then the last resort: error
//! events and dead letters. It may call `codec`, `registry`, `publish`, `observe` and `config`,
//! never `consume`.

pub(crate) mod checks;
pub(crate) mod error_event;
pub(crate) mod handler;
pub(crate) mod processor;
