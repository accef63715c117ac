//! Stage: bytes <-> typed values. The Avro runtime of generated types (`avro`, `datum`, with the
//! nesting limit of `depth`), the Confluent framing and the Avro body (`schema`), the `kaufmann_ex`
//! and `json` layouts, and one codec type per wire format (`format`). Pure: it may call `error` and `envelope`,
//! never the registry, the broker or a later stage.

pub mod avro;
#[doc(hidden)]
pub mod conv;
pub(crate) mod datum;
pub(crate) mod depth;
pub(crate) mod error_event;
pub(crate) mod format;
pub mod json;
pub mod kaufmann_ex;
pub mod schema;
