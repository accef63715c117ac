//! The test bus's sink: records a publisher keeps in memory instead of producing them.

use std::sync::{Mutex, PoisonError};

use rdkafka::message::{Headers, OwnedHeaders};

/// A record produced to the test bus's in-memory sink, as it would have gone to Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    /// The topic.
    pub topic: String,
    /// The partition, when the publisher chose one.
    pub partition: Option<i32>,
    /// The Kafka key.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Option<Vec<u8>>,
    /// The headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl SentRecord {
    /// The value of the first header named `key`, as text.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The headers as (name, value) pairs, in order.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }
}

/// Records kept in memory instead of produced, with a signal for whoever waits for them.
#[derive(Debug, Default)]
pub(crate) struct MemorySink {
    pub(crate) records: Mutex<Vec<SentRecord>>,
    pub(crate) arrived: tokio::sync::Notify,
}

impl MemorySink {
    /// Keeps one record, as it would have been produced.
    pub(crate) fn keep(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &OwnedHeaders,
    ) {
        let record = SentRecord {
            topic: topic.to_owned(),
            partition,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect(),
        };
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record);
        self.arrived.notify_waiters();
    }
}
