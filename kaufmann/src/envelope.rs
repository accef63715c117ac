//! The event envelope: the metadata every event carries beside its payload.
//!
//! With the Confluent wire format the payload is the Kafka value and the metadata travels in Kafka
//! headers named after `KaufmannEx`'s metadata fields (`message_id`, `message_name`, ...), so that
//! any Confluent consumer can read the payload with the registry alone.

use rdkafka::message::{Header, Headers, OwnedHeaders};

/// Header names of the envelope's metadata fields.
pub mod header {
    /// The unique id of the message.
    pub const MESSAGE_ID: &str = "message_id";
    /// The event name.
    pub const MESSAGE_NAME: &str = "message_name";
    /// The service that emitted the event.
    pub const EMITTER_SERVICE: &str = "emitter_service";
    /// The id of the emitting service instance.
    pub const EMITTER_SERVICE_ID: &str = "emitter_service_id";
    /// The `message_id` of the event this one answers (correlation).
    pub const CALLBACK_ID: &str = "callback_id";
    /// When the event was emitted, milliseconds since the Unix epoch.
    pub const TIMESTAMP: &str = "timestamp";
    /// Where answers go: `<topic>` or `<topic>:<partition>`.
    pub const CALLBACK_TOPIC: &str = "callback_topic";
}

/// Where the emitter of an event wants answers (`KaufmannEx`'s `callback_topic`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackTopic {
    /// The topic, when the emitter named one.
    pub topic: Option<String>,
    /// The partition, when the emitter named one.
    pub partition: Option<i32>,
}

impl CallbackTopic {
    /// As a header value: `<topic>` or `<topic>:<partition>` (`:` cannot occur in topic names).
    pub fn to_header(&self) -> String {
        let topic = self.topic.as_deref().unwrap_or_default();
        match self.partition {
            Some(p) => format!("{topic}:{p}"),
            None => topic.to_owned(),
        }
    }

    /// Reads a header value written by [`to_header`](Self::to_header).
    pub fn from_header(value: &str) -> Self {
        let (topic, partition) = match value.rsplit_once(':') {
            Some((topic, p)) => (topic, p.parse().ok()),
            None => (value, None),
        };
        Self {
            topic: Some(topic.to_owned()).filter(|t| !t.is_empty()),
            partition,
        }
    }
}

/// The metadata of an event (`KaufmannEx`'s `event_metadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metadata {
    /// The unique id of the message.
    pub message_id: String,
    /// The event name, for example `command.user.create`.
    pub message_name: String,
    /// The service that emitted the event.
    pub emitter_service: String,
    /// The id of the emitting service instance.
    pub emitter_service_id: String,
    /// The `message_id` of the event this one answers, when it answers one.
    pub callback_id: Option<String>,
    /// When the event was emitted, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Where the emitter wants answers, when it said.
    pub callback_topic: Option<CallbackTopic>,
}

impl Metadata {
    /// Fresh metadata for a new event emitted by `service` (instance `instance`).
    pub fn new(message_name: &str, service: &str, instance: &str) -> Self {
        Self {
            message_id: uuid::Uuid::new_v4().simple().to_string(),
            message_name: message_name.to_owned(),
            emitter_service: service.to_owned(),
            emitter_service_id: instance.to_owned(),
            callback_id: None,
            timestamp_ms: now_ms(),
            callback_topic: None,
        }
    }

    /// Sets the correlation id (the `message_id` of the event being answered).
    #[must_use]
    pub fn with_callback_id(mut self, callback_id: Option<String>) -> Self {
        self.callback_id = callback_id;
        self
    }

    /// The metadata as Kafka headers.
    pub fn to_headers(&self) -> OwnedHeaders {
        let timestamp = self.timestamp_ms.to_string();
        let callback_topic = self.callback_topic.as_ref().map(CallbackTopic::to_header);
        let mut headers = OwnedHeaders::new_with_capacity(7);
        let fields = [
            (header::MESSAGE_ID, Some(self.message_id.as_str())),
            (header::MESSAGE_NAME, Some(self.message_name.as_str())),
            (header::EMITTER_SERVICE, Some(self.emitter_service.as_str())),
            (
                header::EMITTER_SERVICE_ID,
                Some(self.emitter_service_id.as_str()),
            ),
            (header::CALLBACK_ID, self.callback_id.as_deref()),
            (header::TIMESTAMP, Some(timestamp.as_str())),
            (header::CALLBACK_TOPIC, callback_topic.as_deref()),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
        }
        headers
    }

    /// Reads the metadata from Kafka headers; missing fields stay empty.
    pub fn from_headers<H: Headers>(headers: Option<&H>) -> Self {
        let Some(headers) = headers else {
            return Self::default();
        };
        Self::from_pairs(headers.iter().map(|h| (h.key, h.value)))
    }

    /// Reads the metadata from header pairs (name, value); missing fields stay empty.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>) -> Self {
        Self::from_byte_pairs(
            pairs
                .into_iter()
                .map(|(key, value)| (key.as_bytes(), value)),
        )
    }

    /// [`Metadata::from_pairs`] with names as bytes: only the values of the metadata headers are
    /// checked for UTF-8 (a value that is not UTF-8 is left out).
    #[allow(clippy::assigning_clones)] // See below: the fields are empty, nothing to reuse.
    pub(crate) fn from_byte_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Self {
        let mut meta = Self::default();
        for (key, value) in pairs {
            let field = match key {
                k if k == header::MESSAGE_ID.as_bytes() => Field::MessageId,
                k if k == header::MESSAGE_NAME.as_bytes() => Field::MessageName,
                k if k == header::EMITTER_SERVICE.as_bytes() => Field::EmitterService,
                k if k == header::EMITTER_SERVICE_ID.as_bytes() => Field::EmitterServiceId,
                k if k == header::CALLBACK_ID.as_bytes() => Field::CallbackId,
                k if k == header::TIMESTAMP.as_bytes() => Field::Timestamp,
                k if k == header::CALLBACK_TOPIC.as_bytes() => Field::CallbackTopic,
                _ => continue,
            };
            let Some(value) = value.and_then(|v| std::str::from_utf8(v).ok()) else {
                continue;
            };
            // (`to_owned` allocates the value's size at once; `clone_into` an empty string went
            // through its growth path.)
            match field {
                Field::MessageId => meta.message_id = value.to_owned(),
                Field::MessageName => meta.message_name = value.to_owned(),
                Field::EmitterService => meta.emitter_service = value.to_owned(),
                Field::EmitterServiceId => meta.emitter_service_id = value.to_owned(),
                Field::CallbackId => meta.callback_id = Some(value.to_owned()),
                Field::Timestamp => meta.timestamp_ms = value.parse().unwrap_or_default(),
                Field::CallbackTopic => {
                    meta.callback_topic = Some(CallbackTopic::from_header(value));
                }
            }
        }
        meta
    }
}

/// The metadata header a pair carries.
enum Field {
    MessageId,
    MessageName,
    EmitterService,
    EmitterServiceId,
    CallbackId,
    Timestamp,
    CallbackTopic,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where a consumed event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Origin {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The Kafka key, if the record had one.
    pub key: Option<Vec<u8>>,
}

/// An event as a handler receives it: the typed payload, its metadata and where it came from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Event<T> {
    /// The decoded payload.
    pub payload: T,
    /// The envelope's metadata.
    pub meta: Metadata,
    /// Where the event was read from.
    pub origin: Origin,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_headers() {
        let mut meta = Metadata::new("event.user.created", "users", "users-1")
            .with_callback_id(Some("abc".to_owned()));
        meta.callback_topic = Some(CallbackTopic {
            topic: Some("replies.v1".to_owned()),
            partition: Some(3),
        });
        let headers = meta.to_headers();
        assert_eq!(Metadata::from_headers(Some(&headers)), meta);
        let none: Option<&OwnedHeaders> = None;
        assert_eq!(Metadata::from_headers(none), Metadata::default());
    }

    /// Other headers are skipped whatever their value; a metadata header whose value is not
    /// UTF-8 is left out, and the others are still read.
    #[test]
    fn only_metadata_values_are_read() {
        let pairs: [(&[u8], Option<&[u8]>); 5] = [
            (b"traceparent", Some(&[0xFF, 0xFE])),
            (b"message_id", Some(&[0xC0])),
            (b"message_name", Some(b"event.user.created")),
            (b"timestamp", Some(b"1764200000000")),
            (b"emitter_service", None),
        ];
        let meta = Metadata::from_byte_pairs(pairs);
        assert_eq!(meta.message_name, "event.user.created");
        assert_eq!(meta.timestamp_ms, 1_764_200_000_000);
        assert!(meta.message_id.is_empty() && meta.emitter_service.is_empty());
    }
}
