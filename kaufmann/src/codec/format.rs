//! One codec type per wire format: everything that differs between the `confluent`, `kaufmann_ex`
//! and `json` layouts (the writer schema and its subject, the bytes of a value, the default key,
//! where an incoming value's writer schema is found, what its body carries, the error event's
//! payload) is a method of [`WireCodec`], so that no other file branches on the format.

use std::borrow::Cow;

use apache_avro::types::Value;
use apache_avro::Schema;

use crate::codec::error_event::{self, Failed};
use crate::codec::schema::wire;
use crate::codec::{json, kaufmann_ex};
use crate::envelope::Metadata;
use crate::error::CodecError;

/// How events are laid out on the wire (the `wire_format` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WireFormat {
    /// Confluent framing (magic byte, schema id, Avro body); metadata in Kafka headers.
    #[default]
    Confluent,
    /// `KaufmannEx`'s layout (see [`crate::codec::kaufmann_ex`]): raw Avro of `[event_metadata,
    /// {meta, payload}]`, the event name as the key, the event name as the subject.
    KaufmannEx,
    /// JSON text `{"meta": {..}, "payload": {..}}` as `KaufmannEx`'s JSON transcoder writes it
    /// (see [`crate::wire::json`]), the payload mapped from the event's Avro schema; no registry.
    Json,
}

impl WireFormat {
    /// The codec of this format.
    pub(crate) fn codec(self) -> &'static dyn WireCodec {
        match self {
            Self::Confluent => &Confluent,
            Self::KaufmannEx => &KaufmannEx,
            Self::Json => &Json,
        }
    }
}

/// Where the writer schema of an incoming value is found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriterRef<'a> {
    /// By the schema id the value carries.
    Id(u32),
    /// The latest version of a subject the key names.
    Latest(&'a str),
    /// Nowhere: the value is read with the schema of the event it names (the handler's own).
    Reader,
}

/// The part of encoding and decoding that depends on the wire format.
pub(crate) trait WireCodec: Send + Sync {
    /// The schema an outgoing `event` is written with, when it is not the event's own
    /// (`payload_json` its payload schema).
    fn wire_schema(&self, event: &str, payload_json: &str) -> Result<Option<Schema>, CodecError> {
        let _ = (event, payload_json);
        Ok(None)
    }

    /// The subject the writer schema of `event` is registered under, when the format fixes it
    /// (else the configured subject strategy names it).
    fn own_subject<'a>(&self, event: &'a str) -> Option<&'a str> {
        let _ = event;
        None
    }

    /// The bytes of an outgoing value, written with `writer` (registered as `schema_id`).
    fn encode(
        &self,
        event: &str,
        schema_id: u32,
        writer: &Schema,
        meta: &Metadata,
        value: Value,
    ) -> Result<Vec<u8>, CodecError>;

    /// The Kafka key of an outgoing event with no explicit key: from its key field's value
    /// (`field_key`) or the handled event's key (`inherited`).
    fn default_key<'a>(
        &self,
        event: &'a str,
        field_key: Option<Vec<u8>>,
        inherited: Option<&'a [u8]>,
    ) -> Option<Cow<'a, [u8]>>;

    /// Where the writer schema of an incoming value (with its Kafka key) is found.
    fn writer_of<'a>(
        &self,
        key: Option<&'a [u8]>,
        value: &[u8],
    ) -> Result<WriterRef<'a>, CodecError>;

    /// Whether writer schemas are registered (their ids are in the values).
    fn registers(&self) -> bool {
        true
    }

    /// For values whose writer is [`WriterRef::Reader`]: completes `known` (the metadata from the
    /// headers) with what the body carries, the event name included, and reads the payload with
    /// `schema_of` that event (`None`: no schema, the event is served by no handler here).
    fn read_unframed<'s>(
        &self,
        key: Option<&str>,
        value: &[u8],
        known: &mut Metadata,
        schema_of: &dyn Fn(&str) -> Option<&'s Schema>,
    ) -> Result<Option<Value>, CodecError> {
        let _ = (key, value, known, schema_of);
        Ok(None)
    }

    /// Reads what the body of an incoming value carries besides the payload into `known` (the
    /// metadata from the headers), and the payload's value when the format decodes it whole
    /// (`None`: the handler decodes the body itself, resolved to its type).
    fn read(
        &self,
        key: &str,
        writer: &Schema,
        value: &[u8],
        known: &mut Metadata,
    ) -> Result<Option<Value>, CodecError> {
        let _ = (key, writer, value, known);
        Ok(None)
    }

    /// The payload of a value written with `writer`, read as `reader` reads it (the test bus reads
    /// what a service published).
    #[cfg(feature = "testing")]
    fn decode_value(
        &self,
        key: &str,
        writer: &Schema,
        reader: &Schema,
        value: &[u8],
    ) -> Result<Value, CodecError>;

    /// Whether the handler's event may take the metadata instead of a copy (it can be read again
    /// from the headers).
    fn event_takes_metadata(&self) -> bool;

    /// The payload schema of an error event (parsed once) and its text.
    fn error_event_schema(&self) -> (&'static Schema, &'static str) {
        error_event::schema()
    }

    /// The payload value of an error event.
    fn error_event_value(&self, failed: &Failed<'_>) -> Value {
        error_event::value(failed)
    }
}

/// Confluent framing (magic byte, schema id, Avro body); metadata in Kafka headers.
struct Confluent;

impl WireCodec for Confluent {
    fn encode(
        &self,
        event: &str,
        schema_id: u32,
        writer: &Schema,
        _: &Metadata,
        value: Value,
    ) -> Result<Vec<u8>, CodecError> {
        // The body goes straight after the header (the room is a guess: most events are
        // smaller).
        let mut framed = wire::header(schema_id, 256);
        crate::codec::datum::write_into(writer, value, &mut framed).map_err(CodecError::avro(
            "encode",
            event,
            Some(schema_id),
        ))?;
        Ok(framed)
    }

    fn default_key<'a>(
        &self,
        _: &'a str,
        field_key: Option<Vec<u8>>,
        inherited: Option<&'a [u8]>,
    ) -> Option<Cow<'a, [u8]>> {
        field_key.map(Cow::Owned).or(inherited.map(Cow::Borrowed))
    }

    fn writer_of<'a>(
        &self,
        _: Option<&'a [u8]>,
        value: &[u8],
    ) -> Result<WriterRef<'a>, CodecError> {
        wire::split(value).map(|(id, _)| WriterRef::Id(id))
    }

    #[cfg(feature = "testing")]
    fn decode_value(
        &self,
        key: &str,
        writer: &Schema,
        reader: &Schema,
        value: &[u8],
    ) -> Result<Value, CodecError> {
        let (id, body) = wire::split(value)?;
        crate::codec::datum::read(writer, Some(reader), body, key, Some(id))
    }

    fn event_takes_metadata(&self) -> bool {
        true
    }
}

/// `KaufmannEx`'s layout: raw Avro of `[event_metadata, {meta, payload}]`, the event name as the
/// key and as the subject.
struct KaufmannEx;

impl WireCodec for KaufmannEx {
    fn wire_schema(&self, event: &str, payload_json: &str) -> Result<Option<Schema>, CodecError> {
        kaufmann_ex::wire_schema(event, payload_json).map(Some)
    }

    fn own_subject<'a>(&self, event: &'a str) -> Option<&'a str> {
        Some(kaufmann_ex::subject(event))
    }

    fn encode(
        &self,
        event: &str,
        _: u32,
        writer: &Schema,
        meta: &Metadata,
        value: Value,
    ) -> Result<Vec<u8>, CodecError> {
        kaufmann_ex::encode_value(event, writer, meta, value)
    }

    /// The event name, or `<event>#<field value>` with a key field.
    fn default_key<'a>(
        &self,
        event: &'a str,
        field_key: Option<Vec<u8>>,
        _: Option<&'a [u8]>,
    ) -> Option<Cow<'a, [u8]>> {
        Some(match field_key {
            Some(field) => Cow::Owned([event.as_bytes(), b"#", &field].concat()),
            None => Cow::Borrowed(event.as_bytes()),
        })
    }

    fn writer_of<'a>(&self, key: Option<&'a [u8]>, _: &[u8]) -> Result<WriterRef<'a>, CodecError> {
        key.and_then(|k| std::str::from_utf8(k).ok())
            .map(|key| WriterRef::Latest(kaufmann_ex::subject(key)))
            .ok_or(CodecError::NoEventKey)
    }

    fn read(
        &self,
        key: &str,
        writer: &Schema,
        value: &[u8],
        known: &mut Metadata,
    ) -> Result<Option<Value>, CodecError> {
        let (meta, payload) = kaufmann_ex::decode_parts(key, writer, value)?;
        *known = meta;
        if known.message_name.is_empty() {
            kaufmann_ex::event_name(key).clone_into(&mut known.message_name);
        }
        Ok(Some(payload))
    }

    /// (A `kaufmann_ex` value is read with its writer schema: the payload is nested in it.)
    #[cfg(feature = "testing")]
    fn decode_value(
        &self,
        key: &str,
        writer: &Schema,
        _: &Schema,
        value: &[u8],
    ) -> Result<Value, CodecError> {
        Ok(kaufmann_ex::decode_parts(key, writer, value)?.1)
    }

    fn event_takes_metadata(&self) -> bool {
        false
    }

    fn error_event_schema(&self) -> (&'static Schema, &'static str) {
        error_event::kaufmann_ex_schema()
    }

    fn error_event_value(&self, failed: &Failed<'_>) -> Value {
        error_event::kaufmann_ex_value(failed)
    }
}

/// JSON text as `KaufmannEx`'s JSON transcoder writes it; the key names the event as under
/// `kaufmann_ex`; no registry.
struct Json;

impl WireCodec for Json {
    fn registers(&self) -> bool {
        false
    }

    fn encode(
        &self,
        event: &str,
        _: u32,
        writer: &Schema,
        meta: &Metadata,
        value: Value,
    ) -> Result<Vec<u8>, CodecError> {
        json::encode_value(event, writer, meta, &value)
    }

    fn default_key<'a>(
        &self,
        event: &'a str,
        field_key: Option<Vec<u8>>,
        inherited: Option<&'a [u8]>,
    ) -> Option<Cow<'a, [u8]>> {
        KaufmannEx.default_key(event, field_key, inherited)
    }

    fn writer_of<'a>(&self, _: Option<&'a [u8]>, _: &[u8]) -> Result<WriterRef<'a>, CodecError> {
        Ok(WriterRef::Reader)
    }

    fn read_unframed<'s>(
        &self,
        key: Option<&str>,
        value: &[u8],
        known: &mut Metadata,
        schema_of: &dyn Fn(&str) -> Option<&'s Schema>,
    ) -> Result<Option<Value>, CodecError> {
        let mut parsed = json::Parsed::from_bytes(value).map_err(CodecError::shape(
            "decode",
            key.unwrap_or_default(),
            None,
        ))?;
        parsed.complete(key, known);
        let event = known.message_name.as_str();
        if event.is_empty() {
            return Err(CodecError::Unnamed);
        }
        let Some(schema) = schema_of(event) else {
            return Ok(None);
        };
        json::read_value(schema, &parsed.payload)
            .map(Some)
            .map_err(CodecError::shape("decode", event, None))
    }

    #[cfg(feature = "testing")]
    fn decode_value(
        &self,
        key: &str,
        _: &Schema,
        reader: &Schema,
        value: &[u8],
    ) -> Result<Value, CodecError> {
        let parsed =
            json::Parsed::from_bytes(value).map_err(CodecError::shape("decode", key, None))?;
        json::read_value(reader, &parsed.payload).map_err(CodecError::shape("decode", key, None))
    }

    fn event_takes_metadata(&self) -> bool {
        false
    }
}
