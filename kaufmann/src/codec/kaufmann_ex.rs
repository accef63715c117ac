//! The `kaufmann_ex` wire format: the layout `KaufmannEx` services write, so that a Kaufmann
//! service can join their bus.
//!
//! - The Kafka value is raw Avro (no Confluent framing) written with the union
//!   `[event_metadata, <event>]`, where `<event>` is a record named after the event with two
//!   fields, `meta` (an `event_metadata`) and `payload` (the event's own schema). Events are
//!   branch 1, so every value begins with the union index 1 (zig-zag: byte `0x02`).
//! - The Kafka key is the event name, optionally followed by `#<id>` (a partition key); the id is
//!   not part of the event name.
//! - The registry subject is the event name (no `-value`), except for the shared families:
//!   `query.req.*` -> `query.req`, `query.res.*` -> `query.res`, `event.error.*` -> `event.error`.
//! - `timestamp` is a string as Elixir's `DateTime.to_string/1` writes it:
//!   `2018-06-01 12:00:00.123456Z` (Kaufmann writes milliseconds, the last three digits `000`).

use apache_avro::types::Value;
use apache_avro::Schema;

use crate::codec::avro::AvroError;
use crate::codec::schema::EventSchema;
use crate::envelope::{CallbackTopic, Metadata};
use crate::error::CodecError;

/// `KaufmannEx`'s `event_metadata` schema (`seven.cloud.services.event_metadata`).
pub const EVENT_METADATA_SCHEMA: &str = r#"{
  "type": "record",
  "name": "event_metadata",
  "namespace": "seven.cloud.services",
  "fields": [
    {"name": "message_id", "type": "string"},
    {"name": "emitter_service", "type": "string"},
    {"name": "emitter_service_id", "type": "string"},
    {"name": "callback_id", "type": ["null", "string"]},
    {"name": "message_name", "type": "string"},
    {"name": "timestamp", "type": "string"},
    {"name": "callback_topic", "default": null, "type": ["null", {
      "name": "callback_topic",
      "type": "record",
      "fields": [
        {"name": "topic", "type": ["null", "string"]},
        {"name": "partition", "type": ["null", "int"]}
      ]
    }]}
  ]
}"#;

/// The event name a Kafka key names: the key without its `#<id>` suffix.
pub fn event_name(key: &str) -> &str {
    key.split_once('#').map_or(key, |(name, _)| name)
}

/// The registry subject of an event (or key): the event name, or the shared subject of its family.
pub fn subject(key: &str) -> &str {
    let name = event_name(key);
    ["query.req", "query.res", "event.error"]
        .into_iter()
        .find(|family| {
            name.strip_prefix(family)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
        .unwrap_or(name)
}

/// The schema `KaufmannEx` registers for an event: `[event_metadata, {meta, payload}]`, with
/// `payload_json` (the event's own schema) as the payload's type. The `{meta, payload}` record is
/// named after the event, as in `KaufmannEx`, or `<event>.envelope` when the payload's own record
/// already has that name (names do not reach the bytes).
pub fn wire_schema(event: &str, payload_json: &str) -> Result<Schema, CodecError> {
    let payload: serde_json::Value = serde_json::from_str(payload_json).unwrap_or_default();
    let name = payload["name"].as_str().unwrap_or_default();
    let full = match payload["namespace"].as_str() {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    };
    let wrapper = if full == event {
        format!("{event}.envelope")
    } else {
        event.to_owned()
    };
    let text = format!(
        r#"[{EVENT_METADATA_SCHEMA}, {{"type": "record", "name": "{wrapper}", "fields": [
            {{"name": "meta", "type": "seven.cloud.services.event_metadata"}},
            {{"name": "payload", "type": {payload_json}}}]}}]"#
    );
    Schema::parse_str(&text).map_err(CodecError::avro(
        "build the kaufmann_ex schema of",
        event,
        None,
    ))
}

/// Formats milliseconds since the epoch as Elixir's `DateTime.to_string/1` does.
pub fn format_timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S%.6fZ")
        .to_string()
}

/// Reads a `KaufmannEx` timestamp (or RFC 3339) into milliseconds since the epoch; 0 when it is
/// neither.
pub fn parse_timestamp(text: &str) -> i64 {
    let elixir = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.fZ")
        .map(|t| t.and_utc().timestamp_millis());
    elixir
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()))
        .unwrap_or_default()
}

fn optional<T>(value: Option<T>, to: impl FnOnce(T) -> Value) -> Value {
    match value {
        Some(v) => Value::Union(1, Box::new(to(v))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

fn metadata_value(meta: &Metadata) -> Value {
    let callback_topic = optional(meta.callback_topic.as_ref(), |c| {
        Value::Record(vec![
            ("topic".into(), optional(c.topic.clone(), Value::String)),
            ("partition".into(), optional(c.partition, Value::Int)),
        ])
    });
    Value::Record(vec![
        ("message_id".into(), Value::String(meta.message_id.clone())),
        (
            "emitter_service".into(),
            Value::String(meta.emitter_service.clone()),
        ),
        (
            "emitter_service_id".into(),
            Value::String(meta.emitter_service_id.clone()),
        ),
        (
            "callback_id".into(),
            optional(meta.callback_id.clone(), Value::String),
        ),
        (
            "message_name".into(),
            Value::String(meta.message_name.clone()),
        ),
        (
            "timestamp".into(),
            Value::String(format_timestamp(meta.timestamp_ms)),
        ),
        ("callback_topic".into(), callback_topic),
    ])
}

/// Encodes `payload` with its metadata as `KaufmannEx` does, with `schema` from [`wire_schema`].
pub fn encode<T: EventSchema>(
    schema: &Schema,
    meta: &Metadata,
    payload: &T,
) -> Result<Vec<u8>, CodecError> {
    let value = payload
        .to_avro()
        .map_err(CodecError::shape("encode", T::EVENT_NAME, None))?;
    encode_value(T::EVENT_NAME, schema, meta, value)
}

/// [`encode`] for a payload that is already an Avro value.
pub fn encode_value(
    event: &str,
    schema: &Schema,
    meta: &Metadata,
    payload: Value,
) -> Result<Vec<u8>, CodecError> {
    let record = Value::Record(vec![
        ("meta".into(), metadata_value(meta)),
        ("payload".into(), payload),
    ]);
    crate::codec::datum::write(schema, Value::Union(1, Box::new(record)))
        .map_err(CodecError::avro("encode", event, None))
}

/// A field of a record value, by name.
fn field<'a>(fields: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// The value inside a `["null", T]` union, `None` for null.
fn present(value: Option<&Value>) -> Option<&Value> {
    match value? {
        Value::Union(_, inner) => present(Some(inner)),
        Value::Null => None,
        other => Some(other),
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    match present(value)? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn metadata_from(value: &Value) -> Metadata {
    let Value::Record(fields) = value else {
        return Metadata::default();
    };
    let string = |name| text(field(fields, name)).unwrap_or_default();
    let callback_topic = match present(field(fields, "callback_topic")) {
        Some(Value::Record(callback)) => Some(CallbackTopic {
            topic: text(field(callback, "topic")),
            partition: match present(field(callback, "partition")) {
                Some(Value::Int(p)) => Some(*p),
                _ => None,
            },
        }),
        _ => None,
    };
    Metadata {
        message_id: string("message_id"),
        emitter_service: string("emitter_service"),
        emitter_service_id: string("emitter_service_id"),
        callback_id: text(field(fields, "callback_id")),
        message_name: string("message_name"),
        timestamp_ms: parse_timestamp(&string("timestamp")),
        callback_topic,
    }
}

/// Decodes a `KaufmannEx` value written with `writer` (the subject's schema, `[event_metadata,
/// event]`) into its metadata and typed payload. Values of the bare metadata branch, or of an
/// event record without `meta`, are errors naming what was found.
pub fn decode<T: EventSchema>(writer: &Schema, bytes: &[u8]) -> Result<(Metadata, T), CodecError> {
    let (meta, payload) = decode_parts(T::EVENT_NAME, writer, bytes)?;
    let payload =
        T::from_avro(payload).map_err(CodecError::shape("decode", T::EVENT_NAME, None))?;
    Ok((meta, payload))
}

/// [`decode`] up to the payload's Avro value; `event` names the event in errors.
pub fn decode_parts(
    event: &str,
    writer: &Schema,
    bytes: &[u8],
) -> Result<(Metadata, Value), CodecError> {
    let shape = |source| CodecError::shape("decode", event, None)(source);
    let value = crate::codec::datum::read(writer, None, bytes, event, None)?;
    let record = match value {
        Value::Union(_, inner) => *inner,
        other => other,
    };
    let Value::Record(mut fields) = record else {
        return Err(shape(AvroError::new(format!(
            "expected the event record {{meta, payload}}, found {record:?}"
        ))));
    };
    let meta = field(&fields, "meta").map(metadata_from);
    let payload = fields
        .iter()
        .position(|(n, _)| n == "payload")
        .map(|i| fields.swap_remove(i).1);
    match (meta, payload) {
        (Some(meta), Some(payload)) => Ok((meta, payload)),
        _ => Err(shape(AvroError::new(
            "the kaufmann_ex value has no `meta` and `payload` fields (it is the bare metadata \
             branch, or not a KaufmannEx event)"
                .to_owned(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_events_and_subjects_as_kaufmann_ex_does() {
        assert_eq!(event_name("command.user.create#42"), "command.user.create");
        assert_eq!(subject("command.user.create#42"), "command.user.create");
        assert_eq!(subject("query.req.user.get"), "query.req");
        assert_eq!(subject("query.res.user.get#7"), "query.res");
        assert_eq!(subject("event.error.command.user.create"), "event.error");
        assert_eq!(subject("event.errors.x"), "event.errors.x");
    }

    #[test]
    fn timestamps_are_written_as_elixir_writes_them() {
        let ms = 1_527_854_400_123; // 2018-06-01 12:00:00.123 UTC
        assert_eq!(format_timestamp(ms), "2018-06-01 12:00:00.123000Z");
        assert_eq!(parse_timestamp("2018-06-01 12:00:00.123456Z"), ms);
        assert_eq!(parse_timestamp("2018-06-01 12:00:00Z"), ms - 123);
        assert_eq!(parse_timestamp("2018-06-01T12:00:00.123Z"), ms);
        assert_eq!(parse_timestamp("yesterday"), 0);
    }
}
