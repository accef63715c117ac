//! The `json` wire format: events as JSON text, in the shape `KaufmannEx`'s JSON transcoder
//! writes, with no schema registry. The generated types and their Avro schemas stay the contract:
//! a payload is written from, and read into, the event's own schema.
//!
//! - The Kafka value is a JSON object `{"meta": {...}, "payload": {...}}`. Reading also accepts
//!   the transcoder's two other shapes: the payload's members with a `meta` member among them,
//!   and a bare payload (its metadata then comes from the Kafka headers alone).
//! - `meta` holds `KaufmannEx`'s metadata fields: `message_id`, `emitter_service`,
//!   `emitter_service_id`, `callback_id` (`null` or a string), `message_name`, `timestamp` (RFC
//!   3339 in UTC with milliseconds, `2018-06-01T12:00:00.123Z`; read also as `KaufmannEx`'s
//!   `2018-06-01 12:00:00.123456Z` or as milliseconds since the epoch) and `callback_topic`
//!   (`null` or `{"topic": .., "partition": ..}`). The metadata also travels in the Kafka headers,
//!   as in every format.
//! - The Kafka key is the event name, or `<event>#<key field>` with a `key_field`, as
//!   `KaufmannEx` keys its events.
//! - A message names its event by `meta.message_name`, else by the `message_name` header, else by
//!   its key (without a `#<id>` suffix).
//!
//! A payload maps to JSON type by type, following the event's Avro schema:
//!
//! | Avro | JSON written | also read |
//! |---|---|---|
//! | `null`, `boolean`, `string` | `null`, `true`/`false`, a string | |
//! | `int`, `long` | an integer | |
//! | `float`, `double` | a number; `"NaN"`, `"Infinity"`, `"-Infinity"` for those | an integer |
//! | `bytes`, `fixed` | standard base64 with padding (`fixed`: exactly its size) | |
//! | `enum` | the symbol | an unknown symbol as the enum's `default`, when it has one |
//! | `array`, `map` | an array, an object | |
//! | `record` | an object of its fields, in schema order | a missing field as its default, or `null` when its union has `null`; members it does not have are ignored |
//! | union | the branch's value, unwrapped | the first branch that reads the value, in schema order (`null` the `null` branch) |
//! | `uuid` | `"8-4-4-4-12"` hexadecimal | |
//! | `date` | `"2024-01-31"` | days since the epoch |
//! | `time-millis`, `time-micros` | `"13:45:00.250"` (3 or 6 fractional digits) | milliseconds or microseconds since midnight |
//! | `timestamp-millis`, `-micros`, `-nanos` | `"2024-01-31T13:45:00.250Z"` (3, 6 or 9 fractional digits) | any RFC 3339 offset; a number in the schema's unit since the epoch |
//! | `local-timestamp-millis`, `-micros`, `-nanos` | `"2024-01-31T13:45:00.250"` | a number in the schema's unit |
//! | `decimal`, `big-decimal` | `"12.34"` (a string: no precision lost on the way) | a number; more digits after the point than `scale` is an error, never rounded |
//! | `duration` | `{"months": m, "days": d, "millis": ms}` | |
//!
//! Values outside what the text forms hold (a date before year -262143) are written as the
//! number they are. Nesting deeper than `max_nesting_depth` is refused as in Avro data; the
//! parser refuses JSON nested deeper than 128 levels before that.

use std::collections::HashMap;

use apache_avro::schema::{Name, RecordSchema, ResolvedSchema, Schema, UnionSchema};
use apache_avro::types::Value;
use base64::Engine as _;
use bigdecimal::num_bigint::BigInt;
use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value as Json;

use crate::codec::avro::AvroError;
use crate::codec::datum::{field_default, named};
use crate::codec::depth::max_depth;
use crate::codec::kaufmann_ex::{event_name, parse_timestamp};
use crate::codec::schema::EventSchema;
use crate::envelope::{CallbackTopic, Metadata};
use crate::error::CodecError;

type Names<'s> = HashMap<Name, &'s Schema>;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The epoch, as a date.
const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(date) => date,
    None => NaiveDate::MIN,
};

/// Encodes `payload` with its metadata as a `json` value.
///
/// # Errors
/// When the payload does not have its schema's shape.
pub fn encode<T: EventSchema>(meta: &Metadata, payload: &T) -> Result<Vec<u8>, CodecError> {
    let value = payload
        .to_avro()
        .map_err(CodecError::shape("encode", T::EVENT_NAME, None))?;
    encode_value(T::EVENT_NAME, T::schema(), meta, &value)
}

/// [`encode`] for a payload that is already an Avro value of `schema`.
///
/// # Errors
/// When the value does not have the schema's shape.
pub fn encode_value(
    event: &str,
    schema: &Schema,
    meta: &Metadata,
    payload: &Value,
) -> Result<Vec<u8>, CodecError> {
    let names = names_of(schema).map_err(CodecError::shape("encode", event, None))?;
    let envelope = Envelope {
        meta: MetaJson::of(meta),
        payload: Writing {
            schema,
            value: payload,
            names: &names,
        },
    };
    serde_json::to_vec(&envelope)
        .map_err(|e| CodecError::shape("encode", event, None)(AvroError::new(e.to_string())))
}

/// Decodes a `json` value into its metadata (`None` when the body carries none) and typed payload.
///
/// # Errors
/// When the value is not JSON, not one of the shapes above, or its payload does not read as `T`.
pub fn decode<T: EventSchema>(bytes: &[u8]) -> Result<(Option<Metadata>, T), CodecError> {
    let parsed =
        Parsed::from_bytes(bytes).map_err(CodecError::shape("decode", T::EVENT_NAME, None))?;
    let value = read_value(T::schema(), &parsed.payload).map_err(CodecError::shape(
        "decode",
        T::EVENT_NAME,
        None,
    ))?;
    let payload = T::from_avro(value).map_err(CodecError::shape("decode", T::EVENT_NAME, None))?;
    Ok((parsed.meta, payload))
}

/// The JSON of `value`, an Avro value of `schema`, as this format writes payloads.
///
/// # Errors
/// When the value does not have the schema's shape.
pub fn to_json(schema: &Schema, value: &Value) -> Result<Json, AvroError> {
    let names = names_of(schema)?;
    serde_json::to_value(Writing {
        schema,
        value,
        names: &names,
    })
    .map_err(|e| AvroError::new(e.to_string()))
}

/// The Avro value of `schema` that `json` stands for, as this format reads payloads.
///
/// # Errors
/// When `json` does not read as the schema (the error names the field).
pub fn read_value(schema: &Schema, json: &Json) -> Result<Value, AvroError> {
    let names = names_of(schema)?;
    Reading {
        names: &names,
        limit: max_depth(),
    }
    .read(schema, json, 0)
}

/// The named types of `schema`, for its references (`Schema::Ref`): most schemas have none, and
/// are not walked twice or copied for them.
fn names_of(schema: &Schema) -> Result<Names<'_>, AvroError> {
    if !refers(schema) {
        return Ok(Names::new());
    }
    let resolved =
        ResolvedSchema::try_from(schema).map_err(|e| AvroError::new(format!("the schema: {e}")))?;
    Ok(resolved.get_names().clone())
}

/// Whether `schema` refers to a named type by name anywhere in it.
fn refers(schema: &Schema) -> bool {
    match schema {
        Schema::Ref { .. } => true,
        Schema::Record(record) => record.fields.iter().any(|f| refers(&f.schema)),
        Schema::Array(array) => refers(&array.items),
        Schema::Map(map) => refers(&map.types),
        Schema::Union(union) => union.variants().iter().any(refers),
        _ => false,
    }
}

/// A `json` value as it arrived: the metadata its body carries (when it does) and its payload.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) meta: Option<Metadata>,
    pub(crate) payload: Json,
}

impl Parsed {
    /// Parses a value in any of the three shapes (see the module docs).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, AvroError> {
        let json: Json = serde_json::from_slice(bytes)
            .map_err(|e| AvroError::new(format!("the value is not JSON: {e}")))?;
        let Json::Object(mut object) = json else {
            return Err(AvroError::new(format!(
                "the value is JSON {}, not an object (`{{\"meta\": .., \"payload\": ..}}` or \
                 the payload's fields)",
                kind(&json)
            )));
        };
        let meta = match object.remove("meta") {
            None | Some(Json::Null) => None,
            Some(Json::Object(meta)) => Some(metadata_from(&meta)?),
            Some(other) => {
                return Err(AvroError::new(format!(
                    "`meta` is {}, not an object",
                    kind(&other)
                )))
            }
        };
        let payload = match (meta.is_some(), object.remove("payload")) {
            (true, Some(payload)) => payload,
            (_, Some(payload)) => {
                // A bare payload with a field called `payload`.
                object.insert("payload".to_owned(), payload);
                Json::Object(object)
            }
            (_, None) => Json::Object(object),
        };
        Ok(Self { meta, payload })
    }

    /// Completes `known` (the metadata from the headers) with what the body says, the event name
    /// from the key when nothing else names it; the payload stays.
    pub(crate) fn complete(&mut self, key: Option<&str>, known: &mut Metadata) {
        if let Some(mut meta) = self.meta.take() {
            if meta.message_name.is_empty() {
                std::mem::swap(&mut meta.message_name, &mut known.message_name);
            }
            *known = meta;
        }
        if known.message_name.is_empty() {
            if let Some(key) = key {
                event_name(key).clone_into(&mut known.message_name);
            }
        }
    }
}

fn metadata_from(meta: &serde_json::Map<String, Json>) -> Result<Metadata, AvroError> {
    let text = |name: &str| -> Result<Option<String>, AvroError> {
        match meta.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(AvroError::new(format!(
                "`meta.{name}` is {}, not a string",
                kind(other)
            ))),
        }
    };
    let timestamp_ms = match meta.get("timestamp") {
        Some(Json::String(s)) => parse_timestamp(s),
        Some(Json::Number(n)) => n.as_i64().unwrap_or_default(),
        _ => 0,
    };
    let callback_topic = match meta.get("callback_topic") {
        Some(Json::Object(callback)) => Some(CallbackTopic {
            topic: callback
                .get("topic")
                .and_then(Json::as_str)
                .map(str::to_owned),
            partition: callback
                .get("partition")
                .and_then(Json::as_i64)
                .and_then(|p| i32::try_from(p).ok()),
        }),
        _ => None,
    };
    Ok(Metadata {
        message_id: text("message_id")?.unwrap_or_default(),
        message_name: text("message_name")?.unwrap_or_default(),
        emitter_service: text("emitter_service")?.unwrap_or_default(),
        emitter_service_id: text("emitter_service_id")?.unwrap_or_default(),
        callback_id: text("callback_id")?,
        timestamp_ms,
        callback_topic,
    })
}

/// What JSON `value` is, for errors.
fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    meta: MetaJson<'a>,
    payload: Writing<'a>,
}

#[derive(Serialize)]
struct MetaJson<'a> {
    message_id: &'a str,
    emitter_service: &'a str,
    emitter_service_id: &'a str,
    callback_id: Option<&'a str>,
    message_name: &'a str,
    timestamp: String,
    callback_topic: Option<CallbackJson<'a>>,
}

#[derive(Serialize)]
struct CallbackJson<'a> {
    topic: Option<&'a str>,
    partition: Option<i32>,
}

impl<'a> MetaJson<'a> {
    fn of(meta: &'a Metadata) -> Self {
        Self {
            message_id: &meta.message_id,
            emitter_service: &meta.emitter_service,
            emitter_service_id: &meta.emitter_service_id,
            callback_id: meta.callback_id.as_deref(),
            message_name: &meta.message_name,
            timestamp: DateTime::from_timestamp_millis(meta.timestamp_ms)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
            callback_topic: meta.callback_topic.as_ref().map(|c| CallbackJson {
                topic: c.topic.as_deref(),
                partition: c.partition,
            }),
        }
    }
}

/// An Avro value of a schema, serialized as this format writes it (in the schema's field order,
/// with no JSON tree in between).
struct Writing<'a> {
    schema: &'a Schema,
    value: &'a Value,
    names: &'a Names<'a>,
}

impl Writing<'_> {
    fn of<'b>(&'b self, schema: &'b Schema, value: &'b Value) -> Writing<'b> {
        Writing {
            schema,
            value,
            names: self.names,
        }
    }
}

impl Serialize for Writing<'_> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        let schema = named(self.schema, self.names).map_err(S::Error::custom)?;
        let mismatch = || {
            S::Error::custom(format!(
                "a {:?} value does not fit the schema {:?}",
                apache_avro::schema::SchemaKind::from(self.value),
                apache_avro::schema::SchemaKind::from(schema)
            ))
        };
        match (schema, self.value) {
            (Schema::Union(union), Value::Union(index, inner)) => {
                let branch = usize::try_from(*index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(mismatch)?;
                self.of(branch, inner).serialize(out)
            }
            (Schema::Union(union), value) => {
                // An unwrapped value: the first branch it fits.
                let branch = union
                    .variants()
                    .iter()
                    .find(|b| {
                        named(b, self.names).is_ok_and(|b| {
                            apache_avro::schema::SchemaKind::from(b)
                                == apache_avro::schema::SchemaKind::from(value)
                        })
                    })
                    .ok_or_else(mismatch)?;
                self.of(branch, value).serialize(out)
            }
            (Schema::Record(record), Value::Record(fields)) => {
                let mut map = out.serialize_map(Some(fields.len()))?;
                for (name, value) in fields {
                    let field = record
                        .lookup
                        .get(name)
                        .and_then(|&i| record.fields.get(i))
                        .ok_or_else(|| S::Error::custom(format!("no field `{name}`")))?;
                    map.serialize_entry(name, &self.of(&field.schema, value))?;
                }
                map.end()
            }
            (Schema::Array(array), Value::Array(items)) => {
                let mut seq = out.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&self.of(&array.items, item))?;
                }
                seq.end()
            }
            (Schema::Map(map_schema), Value::Map(entries)) => {
                let mut sorted: Vec<_> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                let mut map = out.serialize_map(Some(sorted.len()))?;
                for (key, value) in sorted {
                    map.serialize_entry(key, &self.of(&map_schema.types, value))?;
                }
                map.end()
            }
            (Schema::Decimal(decimal), Value::Decimal(_) | Value::Bytes(_) | Value::Fixed(..)) => {
                let unscaled = match self.value {
                    Value::Decimal(d) => BigInt::from(d.clone()),
                    Value::Bytes(b) | Value::Fixed(_, b) => BigInt::from_signed_bytes_be(b),
                    _ => return Err(mismatch()),
                };
                let scale = i64::try_from(decimal.scale).map_err(S::Error::custom)?;
                out.serialize_str(&BigDecimal::new(unscaled, scale).to_plain_string())
            }
            (_, value) => leaf(value, out, mismatch),
        }
    }
}

/// A value that is not a container, written as the table in the module docs says.
fn leaf<S: Serializer>(
    value: &Value,
    out: S,
    mismatch: impl FnOnce() -> S::Error,
) -> Result<S::Ok, S::Error> {
    match value {
        Value::Null => out.serialize_unit(),
        Value::Boolean(b) => out.serialize_bool(*b),
        Value::Int(n) => out.serialize_i32(*n),
        Value::Long(n) => out.serialize_i64(*n),
        Value::Float(x) => float(f64::from(*x), out),
        Value::Double(x) => float(*x, out),
        Value::String(s) | Value::Enum(_, s) => out.serialize_str(s),
        Value::Bytes(b) | Value::Fixed(_, b) => out.serialize_str(&BASE64.encode(b)),
        Value::BigDecimal(d) => out.serialize_str(&d.to_plain_string()),
        Value::Uuid(u) => out.serialize_str(&u.hyphenated().to_string()),
        Value::Date(days) => {
            match EPOCH.checked_add_signed(chrono::TimeDelta::days((*days).into())) {
                Some(date) => out.serialize_str(&date.format("%Y-%m-%d").to_string()),
                None => out.serialize_i32(*days),
            }
        }
        Value::TimeMillis(ms) => time(i64::from(*ms), 1_000_000, "%H:%M:%S%.3f", out),
        Value::TimeMicros(us) => time(*us, 1_000, "%H:%M:%S%.6f", out),
        Value::TimestampMillis(n) => timestamp(*n, 1_000_000, "%Y-%m-%dT%H:%M:%S%.3fZ", out),
        Value::TimestampMicros(n) => timestamp(*n, 1_000, "%Y-%m-%dT%H:%M:%S%.6fZ", out),
        Value::TimestampNanos(n) => timestamp(*n, 1, "%Y-%m-%dT%H:%M:%S%.9fZ", out),
        Value::LocalTimestampMillis(n) => timestamp(*n, 1_000_000, "%Y-%m-%dT%H:%M:%S%.3f", out),
        Value::LocalTimestampMicros(n) => timestamp(*n, 1_000, "%Y-%m-%dT%H:%M:%S%.6f", out),
        Value::LocalTimestampNanos(n) => timestamp(*n, 1, "%Y-%m-%dT%H:%M:%S%.9f", out),
        Value::Duration(d) => {
            let mut map = out.serialize_map(Some(3))?;
            map.serialize_entry("months", &u32::from(d.months()))?;
            map.serialize_entry("days", &u32::from(d.days()))?;
            map.serialize_entry("millis", &u32::from(d.millis()))?;
            map.end()
        }
        _ => Err(mismatch()),
    }
}

fn float<S: Serializer>(x: f64, out: S) -> Result<S::Ok, S::Error> {
    if x.is_finite() {
        out.serialize_f64(x)
    } else if x.is_nan() {
        out.serialize_str("NaN")
    } else if x > 0.0 {
        out.serialize_str("Infinity")
    } else {
        out.serialize_str("-Infinity")
    }
}

/// A time of day, `count` units of `nanos_per` nanoseconds since midnight.
fn time<S: Serializer>(
    count: i64,
    nanos_per: i64,
    format: &str,
    out: S,
) -> Result<S::Ok, S::Error> {
    let at = count
        .checked_mul(nanos_per)
        .filter(|n| (0..86_400 * 1_000_000_000).contains(n))
        .and_then(|n| {
            let (secs, nanos) = (n / 1_000_000_000, n % 1_000_000_000);
            NaiveTime::from_num_seconds_from_midnight_opt(
                u32::try_from(secs).ok()?,
                u32::try_from(nanos).ok()?,
            )
        });
    match at {
        Some(at) => out.serialize_str(&at.format(format).to_string()),
        None => out.serialize_i64(count),
    }
}

/// A timestamp, `count` units of `nanos_per` nanoseconds since the epoch.
fn timestamp<S: Serializer>(
    count: i64,
    nanos_per: i64,
    format: &str,
    out: S,
) -> Result<S::Ok, S::Error> {
    let per_second = 1_000_000_000 / nanos_per;
    let (secs, rest) = (count.div_euclid(per_second), count.rem_euclid(per_second));
    let at = u32::try_from(rest * nanos_per)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(secs, nanos));
    match at {
        Some(at) => out.serialize_str(&at.format(format).to_string()),
        None => out.serialize_i64(count),
    }
}

/// Reads JSON into Avro values of a schema, as the table in the module docs says.
struct Reading<'a, 's> {
    names: &'a Names<'s>,
    /// The deepest nesting of records, arrays and maps accepted (`max_nesting_depth`).
    limit: usize,
}

impl<'s> Reading<'_, 's> {
    fn read(&self, schema: &'s Schema, json: &Json, depth: usize) -> Result<Value, AvroError> {
        let schema = named(schema, self.names)?;
        let nested = matches!(
            schema,
            Schema::Record(_) | Schema::Array(_) | Schema::Map(_)
        );
        if nested && depth >= self.limit {
            return Err(AvroError::new(format!(
                "nesting deeper than {} levels (max_nesting_depth)",
                self.limit
            )));
        }
        Ok(match (schema, json) {
            (Schema::Array(array), Json::Array(items)) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        self.read(&array.items, item, depth + 1)
                            .map_err(|e| e.in_field(&format!("[{i}]")))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (Schema::Map(map), Json::Object(entries)) => Value::Map(
                entries
                    .iter()
                    .map(|(key, item)| {
                        self.read(&map.types, item, depth + 1)
                            .map(|v| (key.clone(), v))
                            .map_err(|e| e.in_field(key))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (Schema::Record(record), Json::Object(members)) => {
                self.record(record, members, depth)?
            }
            (Schema::Union(union), _) => self.union(union, json, depth)?,
            (schema, json) => read_leaf(schema, json)?,
        })
    }

    fn record(
        &self,
        record: &'s RecordSchema,
        members: &serde_json::Map<String, Json>,
        depth: usize,
    ) -> Result<Value, AvroError> {
        let mut fields = Vec::with_capacity(record.fields.len());
        for field in &record.fields {
            let value = match members.get(&field.name) {
                Some(json) => self.read(&field.schema, json, depth + 1),
                None => self.missing(field),
            }
            .map_err(|e| e.in_field(&field.name))?;
            fields.push((field.name.clone(), value));
        }
        Ok(Value::Record(fields))
    }

    /// A field the object does not have: its default, else `null` when its union has it.
    fn missing(&self, field: &'s apache_avro::schema::RecordField) -> Result<Value, AvroError> {
        if field.default.is_some() {
            return field_default(field, self.names);
        }
        if let Ok(Schema::Union(union)) = named(&field.schema, self.names) {
            if let Some(null) = union.variants().iter().position(|b| *b == Schema::Null) {
                return Ok(Value::Union(
                    u32::try_from(null).unwrap_or_default(),
                    Box::new(Value::Null),
                ));
            }
        }
        Err(AvroError::new("missing (the field has no default)"))
    }

    /// The first branch of `union` that reads `json`.
    fn union(&self, union: &'s UnionSchema, json: &Json, depth: usize) -> Result<Value, AvroError> {
        let mut first_error = None;
        for (index, branch) in union.variants().iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            match self.read(branch, json, depth) {
                Ok(value) => return Ok(Value::Union(index, Box::new(value))),
                // (The `null` branch's refusal of a value says nothing.)
                Err(error) if *branch != Schema::Null => {
                    first_error.get_or_insert(error);
                }
                Err(_) => {}
            }
        }
        let others = union
            .variants()
            .iter()
            .filter(|b| **b != Schema::Null)
            .count();
        if let (1, Some(error)) = (others, first_error.take_if(|_| !json.is_null())) {
            // An optional value: the one branch's own error.
            return Err(error);
        }
        let branches: Vec<String> = union
            .variants()
            .iter()
            .map(|b| match b {
                Schema::Ref { name } => name.to_string(),
                other => {
                    format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase()
                }
            })
            .collect();
        Err(AvroError::new(format!(
            "no branch of the union [{}] reads {} ({})",
            branches.join(", "),
            describe(json),
            first_error.map_or_else(String::new, |e| e.to_string())
        )))
    }
}

/// A value of a schema that is not a container (nor a union), as the table in the module docs
/// says.
fn read_leaf(schema: &Schema, json: &Json) -> Result<Value, AvroError> {
    let expected =
        |what: &str| AvroError::new(format!("expected {what}, found {}", describe(json)));
    Ok(match (schema, json) {
        (Schema::Null, Json::Null) => Value::Null,
        (Schema::Boolean, Json::Bool(b)) => Value::Boolean(*b),
        (Schema::Int, Json::Number(n)) => Value::Int(
            n.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| expected("an int (32 bits)"))?,
        ),
        (Schema::Long, Json::Number(n)) => {
            Value::Long(n.as_i64().ok_or_else(|| expected("a long (64 bits)"))?)
        }
        // (Rounded to the nearest `f32`, as Avro's promotion of a double would be.)
        #[allow(clippy::cast_possible_truncation)]
        (Schema::Float, _) => {
            Value::Float(read_float(json).ok_or_else(|| expected("a number"))? as f32)
        }
        (Schema::Double, _) => Value::Double(read_float(json).ok_or_else(|| expected("a number"))?),
        (Schema::String, Json::String(s)) => Value::String(s.clone()),
        (Schema::Bytes, Json::String(s)) => {
            Value::Bytes(base64(s).ok_or_else(|| expected("base64"))?)
        }
        (Schema::Fixed(fixed), Json::String(s)) => {
            let bytes = base64(s)
                .filter(|b| b.len() == fixed.size)
                .ok_or_else(|| expected(&format!("base64 of {} bytes", fixed.size)))?;
            Value::Fixed(fixed.size, bytes)
        }
        (Schema::Enum(e), Json::String(s)) => {
            let symbol = if e.symbols.contains(s) {
                Some(s)
            } else {
                e.default.as_ref()
            };
            let index = symbol
                .and_then(|symbol| e.symbols.iter().position(|x| x == symbol))
                .ok_or_else(|| expected(&format!("one of {:?}", e.symbols)))?;
            Value::Enum(
                u32::try_from(index).unwrap_or(u32::MAX),
                e.symbols[index].clone(),
            )
        }
        (Schema::Decimal(decimal), Json::String(_) | Json::Number(_)) => {
            let number = read_decimal(json).ok_or_else(|| expected("a decimal number"))?;
            let size = match &decimal.inner {
                apache_avro::schema::InnerDecimalSchema::Fixed(fixed) => Some(fixed.size),
                apache_avro::schema::InnerDecimalSchema::Bytes => None,
            };
            crate::codec::conv::decimal_to(&number, decimal.precision, decimal.scale, size)?
        }
        (Schema::BigDecimal, Json::String(_) | Json::Number(_)) => {
            Value::BigDecimal(read_decimal(json).ok_or_else(|| expected("a decimal number"))?)
        }
        (Schema::Uuid(_), Json::String(s)) => {
            Value::Uuid(uuid::Uuid::parse_str(s).map_err(|_| expected("a UUID"))?)
        }
        (Schema::Date, _) => {
            Value::Date(read_date(json).ok_or_else(|| expected("a date (2024-01-31)"))?)
        }
        (Schema::TimeMillis, _) => {
            let micros = read_time(json, 1_000).ok_or_else(|| expected("a time (13:45:00.250)"))?;
            Value::TimeMillis(i32::try_from(micros).map_err(|_| expected("a time"))?)
        }
        (Schema::TimeMicros, _) => {
            Value::TimeMicros(read_time(json, 1).ok_or_else(|| expected("a time (13:45:00.250)"))?)
        }
        (Schema::TimestampMillis, _) => Value::TimestampMillis(instant(json, 1_000_000, true)?),
        (Schema::TimestampMicros, _) => Value::TimestampMicros(instant(json, 1_000, true)?),
        (Schema::TimestampNanos, _) => Value::TimestampNanos(instant(json, 1, true)?),
        (Schema::LocalTimestampMillis, _) => {
            Value::LocalTimestampMillis(instant(json, 1_000_000, false)?)
        }
        (Schema::LocalTimestampMicros, _) => {
            Value::LocalTimestampMicros(instant(json, 1_000, false)?)
        }
        (Schema::LocalTimestampNanos, _) => Value::LocalTimestampNanos(instant(json, 1, false)?),
        (Schema::Duration(_), Json::Object(parts)) => {
            let part = |name: &str| {
                parts
                    .get(name)
                    .and_then(Json::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        expected("a duration {\"months\", \"days\", \"millis\"} of 32-bit counts")
                    })
            };
            Value::Duration(apache_avro::Duration::new(
                apache_avro::Months::new(part("months")?),
                apache_avro::Days::new(part("days")?),
                apache_avro::Millis::new(part("millis")?),
            ))
        }
        (schema, _) => {
            return Err(expected(
                &format!("{:?}", apache_avro::schema::SchemaKind::from(schema)).to_lowercase(),
            ))
        }
    })
}

/// A timestamp in units of `nanos_per` nanoseconds since the epoch: from its text (with an
/// offset when `zoned`) or a number.
fn instant(json: &Json, nanos_per: i64, zoned: bool) -> Result<i64, AvroError> {
    let found = match json {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => {
            let at = if zoned {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.naive_utc())
                    .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.fZ"))
                    .ok()
            } else {
                NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()
            };
            at.and_then(|at| {
                let at = at.and_utc();
                let per_second = 1_000_000_000 / nanos_per;
                at.timestamp()
                    .checked_mul(per_second)?
                    .checked_add(i64::from(at.nanosecond()) / nanos_per)
            })
        }
        _ => None,
    };
    found.ok_or_else(|| {
        let example = if zoned {
            "2024-01-31T13:45:00.250Z"
        } else {
            "2024-01-31T13:45:00.250"
        };
        AvroError::new(format!(
            "expected a timestamp ({example}) or a number, found {}",
            describe(json)
        ))
    })
}

/// A number, or one of the names of the non-finite ones.
fn read_float(json: &Json) -> Option<f64> {
    match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn base64(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text).ok()
}

/// A decimal number from its text or a JSON number (its text as written), at most 1,000
/// characters (a longer exponent could ask for a huge number).
fn read_decimal(json: &Json) -> Option<BigDecimal> {
    let text = match json {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => return None,
    };
    if text.len() > 1_000 {
        return None;
    }
    let number: BigDecimal = text.parse().ok()?;
    // An exponent far beyond what any schema's scale or precision holds is refused here, before
    // anything scales by it.
    let (_, exponent) = number.as_bigint_and_exponent();
    (exponent.abs() <= 10_000).then_some(number)
}

fn read_date(json: &Json) -> Option<i32> {
    match json {
        Json::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Json::String(s) => {
            let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            i32::try_from(date.signed_duration_since(EPOCH).num_days()).ok()
        }
        _ => None,
    }
}

/// A time of day: a number as it is (in the schema's unit), a text as microseconds since
/// midnight divided by `divisor` (1,000 for milliseconds).
fn read_time(json: &Json, divisor: i64) -> Option<i64> {
    match json {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => {
            let at = NaiveTime::parse_from_str(s, "%H:%M:%S%.f").ok()?;
            let micros = i64::from(at.num_seconds_from_midnight()) * 1_000_000
                + i64::from(at.nanosecond() / 1_000);
            Some(micros / divisor)
        }
        _ => None,
    }
}

/// A JSON value in errors: its kind, and a short text of it.
fn describe(json: &Json) -> String {
    let text = json.to_string();
    if text.len() <= 40 {
        format!("{} {text}", kind(json))
    } else {
        kind(json).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::parse_str(
            r#"{"type": "record", "name": "t.order", "fields": [
                {"name": "id", "type": "long"},
                {"name": "note", "type": ["null", "string"]},
                {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "price", "type": {"type": "bytes", "logicalType": "decimal",
                    "precision": 6, "scale": 2}},
                {"name": "raw", "type": "bytes"},
                {"name": "ratio", "type": "double"},
                {"name": "kind", "type": {"type": "enum", "name": "Kind",
                    "symbols": ["A", "B", "OTHER"], "default": "OTHER"}},
                {"name": "next", "type": ["null", "t.order"], "default": null}]}"#,
        )
        .unwrap()
    }

    fn order() -> Json {
        json!({"id": 7, "note": "hi", "tags": ["x"], "at": "2024-01-31T13:45:00.250Z",
            "price": "12.30", "raw": "AAH/", "ratio": 0.5, "kind": "B",
            "next": {"id": 8, "note": null, "tags": [], "at": "1970-01-01T00:00:00.000Z",
                "price": "-0.01", "raw": "", "ratio": "NaN", "kind": "A", "next": null}})
    }

    #[test]
    fn a_payload_reads_and_writes_back_the_same_json() {
        let schema = schema();
        let value = read_value(&schema, &order()).unwrap();
        let Value::Record(fields) = &value else {
            panic!("{value:?}")
        };
        assert_eq!(fields[3].1, Value::TimestampMillis(1_706_708_700_250));
        assert_eq!(fields[5].1, Value::Bytes(vec![0, 1, 255]));
        let back = to_json(&schema, &value).unwrap();
        assert_eq!(back, order());
    }

    #[test]
    fn missing_fields_take_their_default_or_null_and_unknown_members_are_ignored() {
        let schema = schema();
        let mut json = order();
        let object = json.as_object_mut().unwrap();
        for field in ["note", "tags", "next"] {
            object.remove(field);
        }
        object.insert("added_later".into(), json!(true));
        object.insert("kind".into(), json!("Z"));
        let back = to_json(&schema, &read_value(&schema, &json).unwrap()).unwrap();
        assert_eq!(back["note"], Json::Null);
        assert_eq!(back["tags"], json!([]));
        assert_eq!(
            back["kind"], "OTHER",
            "the enum's default for an unknown symbol"
        );
        assert!(back.get("added_later").is_none());
    }

    #[test]
    fn what_does_not_fit_is_an_error_naming_the_field() {
        let schema = schema();
        let cases = [
            ("id", json!("7"), "id", "expected"),
            ("id", json!(1.5), "id", "expected a long"),
            (
                "price",
                json!("1.234"),
                "price",
                "more than 2 digits after the point",
            ),
            ("price", json!("1e100000"), "price", "expected a decimal"),
            ("raw", json!("not base64!"), "raw", "base64"),
            ("at", json!("yesterday"), "at", "timestamp"),
            ("next", json!({"id": "x"}), "next.id", "expected long"),
        ];
        for (field, bad, path, says) in cases {
            let mut json = order();
            json[field] = bad;
            let err = read_value(&schema, &json).unwrap_err().to_string();
            assert!(err.contains(path) && err.contains(says), "{field}: {err}");
        }
        let mut json = order();
        json.as_object_mut().unwrap().remove("id");
        let err = read_value(&schema, &json).unwrap_err().to_string();
        assert!(err.contains("id") && err.contains("no default"), "{err}");
    }

    #[test]
    fn nesting_past_the_limit_is_refused() {
        let schema = schema();
        let mut json = order();
        for _ in 0..=max_depth() {
            let mut outer = order();
            outer["next"] = json;
            json = outer;
        }
        let err = read_value(&schema, &json).unwrap_err().to_string();
        assert!(err.contains("max_nesting_depth"), "{err}");
    }

    #[test]
    fn the_three_kaufmann_ex_shapes_are_read() {
        let meta = json!({"message_id": "m1", "emitter_service": "elixir",
            "emitter_service_id": "e1", "callback_id": null, "message_name": "t.order",
            "timestamp": "2018-06-01 12:00:00.123456Z", "callback_topic": null});
        let payload = json!({"id": 1});
        let mut with_meta = payload.clone();
        with_meta["meta"] = meta.clone();
        for (shape, has_meta) in [
            (json!({"meta": meta, "payload": payload}), true),
            (with_meta, true),
            (payload.clone(), false),
        ] {
            let parsed = Parsed::from_bytes(shape.to_string().as_bytes()).unwrap();
            assert_eq!(parsed.payload, payload);
            assert_eq!(parsed.meta.is_some(), has_meta);
            if let Some(meta) = parsed.meta {
                assert_eq!(meta.message_id, "m1");
                assert_eq!(meta.timestamp_ms, 1_527_854_400_123);
            }
        }
        for bad in [&b"[1]"[..], b"{\"meta\": 3}", b"\xff", b"{\"a\": 1", b""] {
            assert!(Parsed::from_bytes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_event_is_named_by_the_body_then_the_headers_then_the_key() {
        let complete = |body: &str, header: &str, key: Option<&str>| {
            let mut parsed = Parsed::from_bytes(body.as_bytes()).unwrap();
            let mut known = Metadata::default();
            header.clone_into(&mut known.message_name);
            parsed.complete(key, &mut known);
            known.message_name
        };
        let named = r#"{"meta": {"message_name": "a"}, "payload": {}}"#;
        assert_eq!(complete(named, "b", Some("c#1")), "a");
        assert_eq!(
            complete(r#"{"meta": {}, "payload": {}}"#, "b", Some("c#1")),
            "b"
        );
        assert_eq!(complete("{}", "", Some("c#1")), "c");
        assert_eq!(complete("{}", "", None), "");
    }

    #[test]
    fn an_encoded_event_carries_its_metadata() {
        let schema = schema();
        let mut meta = Metadata::new("t.order", "svc", "i1").with_callback_id(Some("c".into()));
        meta.timestamp_ms = 1_527_854_400_123;
        meta.callback_topic = Some(CallbackTopic {
            topic: Some("replies".into()),
            partition: Some(2),
        });
        let value = read_value(&schema, &order()).unwrap();
        let bytes = encode_value("t.order", &schema, &meta, &value).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(r#""payload":{"id":7,"note":"hi","tags":["x"],"at""#),
            "fields in schema order: {text}"
        );
        let json: Json = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["payload"], order());
        assert_eq!(json["meta"]["timestamp"], "2018-06-01T12:00:00.123Z");
        assert_eq!(
            json["meta"]["callback_topic"],
            json!({"topic": "replies", "partition": 2})
        );
        let parsed = Parsed::from_bytes(&bytes).unwrap();
        assert_eq!(parsed.meta, Some(meta));
    }
}
