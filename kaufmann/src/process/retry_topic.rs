//! Retry topics: the headers of a record Kaufmann sends to `<topic>.retry.<delay>` after its
//! retries in place failed, and reading them back when the record comes round again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::message::{Header, OwnedHeaders};

use crate::process::message::{Job, RecordHeaders};

/// The prefix of every header below; a record sent on again drops the old ones.
const PREFIX: &str = "kaufmann.retry.";
/// Which retry topic the record is in: 1 for the first delay.
pub const STAGE: &str = "kaufmann.retry.stage";
/// The attempts made so far, over every topic it went through.
pub const ATTEMPTS: &str = "kaufmann.retry.attempts";
/// When the record is due, in milliseconds since the Unix epoch; it is not handled before.
pub const DUE: &str = "kaufmann.retry.due";
/// When its first attempt failed, in milliseconds since the Unix epoch.
pub const FIRST_FAILURE: &str = "kaufmann.retry.first_failure";
/// The last error.
pub const ERROR: &str = "kaufmann.retry.error";
/// The topic it was first read from.
pub const ORIGINAL_TOPIC: &str = "kaufmann.retry.original.topic";
/// Its partition there.
pub const ORIGINAL_PARTITION: &str = "kaufmann.retry.original.partition";
/// Its offset there.
pub const ORIGINAL_OFFSET: &str = "kaufmann.retry.original.offset";

/// The longest error kept in the [`ERROR`] header.
const MAX_ERROR: usize = 1_000;

/// Where a record came from first and how far its retries went: from its retry headers, or its
/// own place for a record read from the topic it was produced to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Retried {
    /// The retry topics passed (0: read from its own topic).
    pub(crate) stage: usize,
    /// Attempts made before this delivery.
    pub(crate) attempts: u32,
    /// When its first attempt failed (ms since the epoch), once one did.
    pub(crate) first_failure: Option<u64>,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

impl Retried {
    /// The retry state of `job`: its headers' (when they are whole), else its own place.
    pub(crate) fn of(job: &Job) -> Self {
        Self::from_headers(&job.headers).unwrap_or_else(|| Self {
            stage: 0,
            attempts: 0,
            first_failure: None,
            topic: job.origin.topic.to_string(),
            partition: job.origin.partition,
            offset: job.origin.offset,
        })
    }

    fn from_headers(headers: &RecordHeaders) -> Option<Self> {
        let text = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| *key == name)
                .and_then(|(_, value)| std::str::from_utf8(value?).ok())
        };
        Some(Self {
            stage: text(STAGE)?.parse().ok()?,
            attempts: text(ATTEMPTS)?.parse().ok()?,
            first_failure: text(FIRST_FAILURE).and_then(|v| v.parse().ok()),
            topic: text(ORIGINAL_TOPIC)?.to_owned(),
            partition: text(ORIGINAL_PARTITION)?.parse().ok()?,
            offset: text(ORIGINAL_OFFSET)?.parse().ok()?,
        })
    }
}

/// When a record read from a retry topic is due (ms since the epoch), if it says.
pub(crate) fn due(headers: &RecordHeaders) -> Option<u64> {
    headers
        .iter()
        .find(|(key, _)| *key == DUE)
        .and_then(|(_, value)| std::str::from_utf8(value?).ok())
        .and_then(|v| v.parse().ok())
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The headers of `job` sent on to the retry topic of stage `stage` (1-based), due `delay` from
/// now: its own headers without earlier retry headers, then the new ones.
pub(crate) fn retry_headers(
    job: &Job,
    retried: &Retried,
    stage: usize,
    delay: Duration,
    attempts: u32,
    error: &str,
) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    for (key, value) in job.headers.iter() {
        if !key.starts_with(PREFIX) {
            headers = headers.insert(Header { key, value });
        }
    }
    let now = now_ms();
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let mut cut = error.len().min(MAX_ERROR);
    while !error.is_char_boundary(cut) {
        cut -= 1;
    }
    let added = [
        (STAGE, stage.to_string()),
        (ATTEMPTS, attempts.to_string()),
        (DUE, now.saturating_add(delay_ms).to_string()),
        (
            FIRST_FAILURE,
            retried.first_failure.unwrap_or(now).to_string(),
        ),
        (ERROR, error[..cut].to_owned()),
        (ORIGINAL_TOPIC, retried.topic.clone()),
        (ORIGINAL_PARTITION, retried.partition.to_string()),
        (ORIGINAL_OFFSET, retried.offset.to_string()),
    ];
    for (key, value) in &added {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_str()),
        });
    }
    headers
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rdkafka::message::Headers;

    use super::*;
    use crate::process::message::Source;

    fn job(headers: RecordHeaders) -> Job {
        Job {
            origin: Source {
                topic: Arc::from("orders.retry.1s"),
                partition: 2,
                offset: 40,
                key: None,
            },
            value: None,
            headers,
        }
    }

    #[test]
    fn a_record_of_its_own_topic_starts_at_stage_zero() {
        let retried = Retried::of(&job(RecordHeaders::default()));
        assert_eq!((retried.stage, retried.attempts), (0, 0));
        assert_eq!(retried.topic, "orders.retry.1s");
    }

    #[test]
    fn headers_sent_on_read_back_and_replace_the_old_ones() {
        let first = Retried {
            stage: 0,
            attempts: 0,
            first_failure: None,
            topic: "orders".into(),
            partition: 1,
            offset: 7,
        };
        let sent = retry_headers(
            &job(RecordHeaders::from_pairs([(
                "message_name",
                Some(&b"x"[..]),
            )])),
            &first,
            1,
            Duration::from_secs(1),
            3,
            "boom",
        );
        let pairs: Vec<(&str, Option<&[u8]>)> = sent.iter().map(|h| (h.key, h.value)).collect();
        let again = job(RecordHeaders::from_pairs(pairs));
        let read = Retried::of(&again);
        assert_eq!(
            (
                read.stage,
                read.attempts,
                read.topic.as_str(),
                read.partition,
                read.offset
            ),
            (1, 3, "orders", 1, 7)
        );
        let due = due(&again.headers).unwrap();
        assert!(due >= now_ms() + 900 && due <= now_ms() + 1_100, "{due}");

        let resent = retry_headers(&again, &read, 2, Duration::from_secs(5), 4, "again");
        assert_eq!(
            resent.iter().filter(|h| h.key == STAGE).count(),
            1,
            "one stage header"
        );
        assert_eq!(resent.iter().filter(|h| h.key == "message_name").count(), 1);
        let first_failures: Vec<_> = resent
            .iter()
            .filter(|h| h.key == FIRST_FAILURE)
            .map(|h| h.value)
            .collect();
        assert_eq!(first_failures.len(), 1);
    }
}
