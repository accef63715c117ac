//! Dead letters: the header names Kaufmann adds to a record it gives up on, and the headers of the
//! record it sends to the dead-letter topic.

use rdkafka::message::{Header, OwnedHeaders};

use crate::process::message::Job;
use crate::process::retry_topic::Retried;

/// The error message.
pub const ERROR: &str = "kaufmann.error";
/// `handler`, `panic`, `timeout`, `permanent`, `decode`, `registry`, `state` or `unhandled`.
pub const ERROR_KIND: &str = "kaufmann.error.kind";
/// The event name, when known.
pub const EVENT: &str = "kaufmann.event";
/// The topic the record was read from (first: a record that went through retry topics names the
/// topic it was produced to).
pub const SOURCE_TOPIC: &str = "kaufmann.source.topic";
/// Its partition.
pub const SOURCE_PARTITION: &str = "kaufmann.source.partition";
/// Its offset.
pub const SOURCE_OFFSET: &str = "kaufmann.source.offset";
/// How many attempts were made (over every retry topic it went through).
pub const ATTEMPTS: &str = "kaufmann.attempts";

/// The original headers of `job`, then what Kaufmann adds; `first` is where it was read first.
pub(crate) fn dead_letter_headers(
    job: &Job,
    first: &Retried,
    event: &str,
    attempts: u32,
    kind: &str,
    error: &str,
) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    for (key, value) in job.headers.iter() {
        headers = headers.insert(Header { key, value });
    }
    let (partition, offset, attempts) = (
        first.partition.to_string(),
        first.offset.to_string(),
        attempts.to_string(),
    );
    let added = [
        (ERROR, error),
        (ERROR_KIND, kind),
        (EVENT, event),
        (SOURCE_TOPIC, first.topic.as_str()),
        (SOURCE_PARTITION, partition.as_str()),
        (SOURCE_OFFSET, offset.as_str()),
        (ATTEMPTS, attempts.as_str()),
    ];
    for (key, value) in added {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}
