//! A fetched message, detached from the consumer: its bytes, its headers in one buffer and where
//! it came from.

use std::sync::Arc;

use crate::envelope::Origin;

/// A fetched message, detached from the consumer.
pub(crate) struct Job {
    pub(crate) origin: Source,
    /// The record's value, shared with each attempt's handler instead of copied.
    pub(crate) value: Option<Arc<[u8]>>,
    /// The record's headers, read once from the consumer (no further calls into librdkafka).
    pub(crate) headers: RecordHeaders,
}

/// Where a fetched message came from, as its job keeps it: the topic's name shared by every job
/// of the topic, the key shared with the handler's context (the event gets an [`Origin`] of its
/// own).
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<Arc<[u8]>>,
}

impl Source {
    /// The event's copy.
    pub(crate) fn origin(&self) -> Origin {
        Origin {
            topic: String::from(&*self.topic),
            partition: self.partition,
            offset: self.offset,
            key: self.key.as_deref().map(<[u8]>::to_vec),
        }
    }
}

/// A record's headers in one buffer (one allocation however many headers): for each header the
/// key's length, the value's length (`u32::MAX` for no value), both as 4 little-endian bytes, then
/// the key and the value.
#[derive(Debug, Default, Clone)]
pub(crate) struct RecordHeaders(Vec<u8>);

/// Marks a header without a value.
const NO_VALUE: u32 = u32::MAX;

impl RecordHeaders {
    /// Copies header pairs (name, value).
    pub(crate) fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    ) -> Self {
        let mut buffer = Vec::with_capacity(256);
        for (key, value) in pairs {
            let (Ok(key_len), Ok(value_len)) = (
                u32::try_from(key.len()),
                value.map_or(Ok(NO_VALUE), |v| u32::try_from(v.len())),
            ) else {
                continue;
            };
            buffer.extend_from_slice(&key_len.to_le_bytes());
            buffer.extend_from_slice(&value_len.to_le_bytes());
            buffer.extend_from_slice(key.as_bytes());
            buffer.extend_from_slice(value.unwrap_or_default());
        }
        Self(buffer)
    }

    /// The headers, in order, as (name, value).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        // Keys were copied from `&str`s, so they are UTF-8.
        self.byte_pairs()
            .filter_map(|(key, value)| Some((std::str::from_utf8(key).ok()?, value)))
    }

    /// The headers, in order, as (name, value), the names as bytes (not checked for UTF-8 again).
    pub(crate) fn byte_pairs(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        let mut rest = self.0.as_slice();
        std::iter::from_fn(move || {
            let (key_len, after) = rest.split_first_chunk::<4>()?;
            let (value_len, after) = after.split_first_chunk::<4>()?;
            let key_len = usize::try_from(u32::from_le_bytes(*key_len)).ok()?;
            let value_len = u32::from_le_bytes(*value_len);
            let (key, after) = after.split_at_checked(key_len)?;
            let (value, after) = if value_len == NO_VALUE {
                (None, after)
            } else {
                let (value, after) = after.split_at_checked(usize::try_from(value_len).ok()?)?;
                (Some(value), after)
            };
            rest = after;
            Some((key, value))
        })
    }
}

/// `topic[partition]@offset`, for logs.
pub(crate) fn place(origin: &Source) -> String {
    format!("{}[{}]@{}", origin.topic, origin.partition, origin.offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_headers_keep_every_pair_in_order() {
        let pairs: [(&str, Option<&[u8]>); 4] = [
            ("message_id", Some(b"abc")),
            ("empty", Some(b"")),
            ("none", None),
            ("", Some(&[0xff, 0x00])),
        ];
        let headers = RecordHeaders::from_pairs(pairs);
        assert_eq!(headers.iter().collect::<Vec<_>>(), pairs);
        assert_eq!(RecordHeaders::default().iter().count(), 0);
    }
}
