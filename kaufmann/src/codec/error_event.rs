//! Error events: `event.error.<event name>`, published when handling an event fails for good
//! (after its retries), to the default topic and to the event's callback topic, as `KaufmannEx`
//! does. Under the `confluent` wire format the payload is [`SCHEMA`]; under `kaufmann_ex` it is
//! `KaufmannEx`'s own error payload ([`KAUFMANN_EX_SCHEMA`]), so its services read ours.

use std::sync::OnceLock;

use apache_avro::types::Value;
use apache_avro::Schema;

/// The payload of an error event under the `confluent` wire format.
pub const SCHEMA: &str = r#"{
  "type": "record",
  "name": "EventError",
  "namespace": "kaufmann",
  "doc": "Handling an event failed for good: what, why, and the original record.",
  "fields": [
    {"name": "event", "type": "string", "doc": "The failed event's name."},
    {"name": "error", "type": "string", "doc": "The last error."},
    {"name": "kind", "type": "string", "doc": "handler, panic, timeout, decode, registry or unhandled."},
    {"name": "attempts", "type": "int", "doc": "How many attempts were made."},
    {"name": "topic", "type": "string", "doc": "Where the failed record was read from."},
    {"name": "partition", "type": "int"},
    {"name": "offset", "type": "long"},
    {"name": "original", "type": ["null", "bytes"], "default": null, "doc": "The record's value as read."}
  ]
}"#;

/// The payload of an error event under the `kaufmann_ex` wire format (`KaufmannEx`'s
/// `event.error` payload).
pub const KAUFMANN_EX_SCHEMA: &str = r#"{
  "name": "Payload",
  "type": "record",
  "fields": [
    {"name": "error", "type": ["null", "string", {"type": "map", "values": ["string",
      {"type": "array", "items": {"type": "map", "values": "string"}}]}]}
  ]
}"#;

/// What the name of every error event starts with.
pub(crate) const PREFIX: &str = "event.error.";

/// The name of the error event for `event`.
pub fn name(event: &str) -> String {
    format!("{PREFIX}{event}")
}

/// What failed, for the error event.
pub(crate) struct Failed<'a> {
    pub(crate) event: &'a str,
    pub(crate) error: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) attempts: u32,
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) original: Option<&'a [u8]>,
}

/// The payload schema of the `confluent` error event (parsed once) and its text.
pub(crate) fn schema() -> (&'static Schema, &'static str) {
    static CELL: OnceLock<Schema> = OnceLock::new();
    (parsed(&CELL, SCHEMA), SCHEMA)
}

/// The payload schema of the `kaufmann_ex` error event (parsed once) and its text.
pub(crate) fn kaufmann_ex_schema() -> (&'static Schema, &'static str) {
    static CELL: OnceLock<Schema> = OnceLock::new();
    (parsed(&CELL, KAUFMANN_EX_SCHEMA), KAUFMANN_EX_SCHEMA)
}

/// `text`, parsed once into `cell`. (Both texts are constants checked by the tests below.)
fn parsed(cell: &'static OnceLock<Schema>, text: &str) -> &'static Schema {
    cell.get_or_init(|| Schema::parse_str(text).unwrap_or(Schema::Null))
}

/// The `kaufmann_ex` payload value: `KaufmannEx`'s error, the message alone.
pub(crate) fn kaufmann_ex_value(failed: &Failed<'_>) -> Value {
    Value::Record(vec![(
        "error".into(),
        Value::Union(1, Box::new(Value::String(failed.error.to_owned()))),
    )])
}

/// The `confluent` payload value.
pub(crate) fn value(failed: &Failed<'_>) -> Value {
    Value::Record(vec![
        ("event".into(), Value::String(failed.event.to_owned())),
        ("error".into(), Value::String(failed.error.to_owned())),
        ("kind".into(), Value::String(failed.kind.to_owned())),
        (
            "attempts".into(),
            Value::Int(i32::try_from(failed.attempts).unwrap_or(i32::MAX)),
        ),
        ("topic".into(), Value::String(failed.topic.to_owned())),
        ("partition".into(), Value::Int(failed.partition)),
        ("offset".into(), Value::Long(failed.offset)),
        (
            "original".into(),
            match failed.original {
                Some(bytes) => Value::Union(1, Box::new(Value::Bytes(bytes.to_vec()))),
                None => Value::Union(0, Box::new(Value::Null)),
            },
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_payloads_encode_with_their_schemas() {
        let failed = Failed {
            event: "command.user.create",
            error: "boom",
            kind: "handler",
            attempts: 4,
            topic: "rapids",
            partition: 1,
            offset: 9,
            original: Some(b"\0\0\0\0\x01x"),
        };
        for (which, (schema, _), value) in [
            ("confluent", schema(), value(&failed)),
            (
                "kaufmann_ex",
                kaufmann_ex_schema(),
                kaufmann_ex_value(&failed),
            ),
        ] {
            assert!(!matches!(schema, Schema::Null), "{which} parses");
            crate::codec::datum::write(schema, value).unwrap();
        }
        assert_eq!(
            name("command.user.create"),
            "event.error.command.user.create"
        );
    }
}
