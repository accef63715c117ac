//! apache-avro's generic datum reader and writer, and the limits on Avro data from outside: one
//! bounded walk of the writer schema over the bytes before apache-avro's reader (schema
//! resolution, `kaufmann_ex`) sees them.
//!
//! apache-avro reserves what a block count announces and recurses once per nesting level, so a
//! few hostile bytes could make it allocate gigabytes or overflow the stack. The walk allocates
//! nothing and refuses, as a decode error:
//! - data that ends early, a length or count below zero, a varint longer than 64 bits;
//! - a string, bytes or block longer than the bytes that remain;
//! - more collection items in the whole value than it has bytes, plus
//!   [`conv::ZERO_WIDTH_ITEMS`] for items written in no bytes (`null`, empty records), so
//!   memory stays proportional to the value;
//! - a union branch or enum symbol the schema does not have;
//! - nesting (records, arrays, maps) deeper than [`max_depth`] levels.
//!
//! The generated readers ([`crate::AvroValue::read_avro`]) keep the same depth limit through
//! [`crate::codec::depth::Nesting`], and their own per-block count bound.

use std::collections::HashMap;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{
    InnerDecimalSchema, Name, RecordField, ResolvedSchema, Schema, SchemaKind, UuidSchema,
};
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::codec::conv::{self, read_long};
use crate::codec::depth::max_depth;
use crate::error::{AvroError, CodecError};

/// Reads one value written with `writer` from untrusted `body`, resolved to `reader`
/// when one is given: the bytes are checked against the limits first (see the module docs).
///
/// # Errors
/// A limit broken ([`CodecError::Shape`]) or what apache-avro refuses ([`CodecError::Avro`]),
/// naming `event` and `schema_id`.
pub(crate) fn read(
    writer: &Schema,
    reader: Option<&Schema>,
    body: &[u8],
    event: &str,
    schema_id: Option<u32>,
) -> Result<Value, CodecError> {
    let depth = check(writer, body).map_err(CodecError::shape("decode", event, schema_id))?;
    on_stack_for(depth, || {
        let value = GenericDatumReader::builder(writer)
            .build()
            .and_then(|datum| datum.read_value(&mut &body[..]))
            .map_err(CodecError::avro("decode", event, schema_id))?;
        match reader {
            Some(reader) => resolve(value, writer, reader)
                .map_err(CodecError::shape("decode", event, schema_id)),
            None => Ok(value),
        }
    })
}

/// Resolves `value`, read with `writer`, to `reader` by Avro's rules (the specification's
/// "Schema Resolution"): record fields by name or by the reader field's aliases, defaults for
/// fields the writer lacks, union branches by their schema, enum symbols by name (or the reader's
/// default symbol), the numeric and string/bytes promotions.
///
/// apache-avro's own resolution validates a value against a union's branches before it resolves
/// it, at every level, which takes time exponential in the nesting (a 12-level tree took 57 ms,
/// each level doubling it): this one visits each value once. Leaves (numbers, strings, logical
/// types) and defaults go through apache-avro.
///
/// # Errors
/// When the value cannot be read as `reader`: naming the field.
pub(crate) fn resolve(value: Value, writer: &Schema, reader: &Schema) -> Result<Value, AvroError> {
    let writer_names = ResolvedSchema::try_from(writer)
        .map_err(|e| AvroError::new(format!("the writer schema: {e}")))?;
    let reader_names = ResolvedSchema::try_from(reader)
        .map_err(|e| AvroError::new(format!("the reader schema: {e}")))?;
    Resolver {
        writer: writer_names.get_names(),
        reader: reader_names.get_names(),
    }
    .resolve(value, writer, reader)
}

struct Resolver<'a, 'w, 'r> {
    writer: &'a HashMap<Name, &'w Schema>,
    reader: &'a HashMap<Name, &'r Schema>,
}

/// Follows a named reference.
pub(crate) fn named<'s>(
    schema: &'s Schema,
    names: &HashMap<Name, &'s Schema>,
) -> Result<&'s Schema, AvroError> {
    match schema {
        Schema::Ref { name } => names
            .get(name)
            .copied()
            .ok_or_else(|| AvroError::new(format!("no type named {name}"))),
        other => Ok(other),
    }
}

/// The kind a logical type is written as, for promotions.
fn underlying(schema: &Schema) -> SchemaKind {
    match schema {
        Schema::Date | Schema::TimeMillis => SchemaKind::Int,
        Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => SchemaKind::Long,
        Schema::BigDecimal | Schema::Uuid(UuidSchema::Bytes) => SchemaKind::Bytes,
        Schema::Decimal(decimal) => match decimal.inner {
            InnerDecimalSchema::Bytes => SchemaKind::Bytes,
            InnerDecimalSchema::Fixed(_) => SchemaKind::Fixed,
        },
        Schema::Uuid(UuidSchema::String) => SchemaKind::String,
        Schema::Uuid(UuidSchema::Fixed(_)) | Schema::Duration(_) => SchemaKind::Fixed,
        other => SchemaKind::from(other),
    }
}

/// Whether a leaf written as `writer` is read as it is by `reader`: the same type (and, for a
/// decimal, the same scale).
fn same_leaf(writer: &Schema, reader: &Schema) -> bool {
    match (writer, reader) {
        (Schema::Decimal(w), Schema::Decimal(r)) => {
            w.scale == r.scale && underlying(writer) == underlying(reader)
        }
        (Schema::Fixed(w), Schema::Fixed(r)) => w.size == r.size,
        _ => SchemaKind::from(writer) == SchemaKind::from(reader),
    }
}

/// A named type's unqualified name.
fn short_name(schema: &Schema) -> Option<&str> {
    schema.name().map(Name::name)
}

impl<'w, 'r> Resolver<'_, 'w, 'r> {
    /// Whether data written as `writer` can be read as `reader` (for choosing a union branch):
    /// by kind and name, without looking at the value.
    fn fits(&self, writer: &'w Schema, reader: &'r Schema) -> bool {
        let (Ok(writer), Ok(reader)) = (named(writer, self.writer), named(reader, self.reader))
        else {
            return false;
        };
        match (writer, reader) {
            (Schema::Record(_) | Schema::Enum(_) | Schema::Fixed(_), _) => {
                SchemaKind::from(writer) == SchemaKind::from(reader)
                    && (short_name(writer) == short_name(reader)
                        || reader.aliases().is_some_and(|aliases| {
                            aliases.iter().any(|a| Some(a.name()) == short_name(writer))
                        }))
            }
            (Schema::Array(_), Schema::Array(_)) | (Schema::Map(_), Schema::Map(_)) => true,
            _ => {
                use SchemaKind as K;
                let (from, to) = (SchemaKind::from(writer), SchemaKind::from(reader));
                from == to
                    || matches!(
                        (underlying(writer), underlying(reader)),
                        (K::Int, K::Long | K::Float | K::Double)
                            | (K::Long, K::Float | K::Double)
                            | (K::Float, K::Double)
                            | (K::String, K::Bytes)
                            | (K::Bytes, K::String)
                    )
                    || underlying(writer) == underlying(reader)
            }
        }
    }

    fn resolve(
        &self,
        value: Value,
        writer: &'w Schema,
        reader: &'r Schema,
    ) -> Result<Value, AvroError> {
        let writer = named(writer, self.writer)?;
        let reader = named(reader, self.reader)?;
        match (writer, reader, value) {
            (Schema::Union(union), _, Value::Union(index, inner)) => {
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| AvroError::new(format!("union branch {index}")))?;
                self.resolve(*inner, branch, reader)
            }
            (_, Schema::Union(union), value) => {
                let (index, branch) = union
                    .variants()
                    .iter()
                    .enumerate()
                    .find(|(_, branch)| self.fits(writer, branch))
                    .ok_or_else(|| {
                        AvroError::new(format!(
                            "no branch of the reader's union reads a {:?}",
                            SchemaKind::from(writer)
                        ))
                    })?;
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                Ok(Value::Union(
                    index,
                    Box::new(self.resolve(value, writer, branch)?),
                ))
            }
            (Schema::Record(written), Schema::Record(read), Value::Record(fields)) => {
                let mut fields: Vec<(String, Option<Value>)> = fields
                    .into_iter()
                    .map(|(name, v)| (name, Some(v)))
                    .collect();
                let mut out = Vec::with_capacity(read.fields.len());
                for field in &read.fields {
                    let found = written
                        .fields
                        .iter()
                        .zip(&mut fields)
                        .find(|(w, _)| w.name == field.name || field.aliases.contains(&w.name));
                    let value = match found {
                        Some((w, (_, slot))) => {
                            let value = slot.take().ok_or_else(|| {
                                AvroError::new("two reader fields read one writer field")
                            })?;
                            self.resolve(value, &w.schema, &field.schema)
                        }
                        None => self.default(field),
                    }
                    .map_err(|e| e.in_field(&field.name))?;
                    out.push((field.name.clone(), value));
                }
                Ok(Value::Record(out))
            }
            (Schema::Enum(_), Schema::Enum(read), Value::Enum(_, symbol)) => {
                let index = read
                    .symbols
                    .iter()
                    .position(|s| *s == symbol)
                    .or_else(|| {
                        let default = read.default.as_ref()?;
                        read.symbols.iter().position(|s| s == default)
                    })
                    .ok_or_else(|| {
                        AvroError::new(format!("the reader's enum has no symbol `{symbol}`"))
                    })?;
                Ok(Value::Enum(
                    u32::try_from(index).unwrap_or(u32::MAX),
                    read.symbols[index].clone(),
                ))
            }
            (Schema::Array(written), Schema::Array(read), Value::Array(items)) => items
                .into_iter()
                .map(|item| self.resolve(item, &written.items, &read.items))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            (Schema::Map(written), Schema::Map(read), Value::Map(entries)) => entries
                .into_iter()
                .map(|(key, v)| Ok((key, self.resolve(v, &written.types, &read.types)?)))
                .collect::<Result<_, AvroError>>()
                .map(Value::Map),
            (Schema::Record(_) | Schema::Enum(_) | Schema::Array(_) | Schema::Map(_), _, _)
            | (_, Schema::Record(_) | Schema::Enum(_) | Schema::Array(_) | Schema::Map(_), _) => {
                Err(AvroError::new(format!(
                    "a {:?} cannot be read as a {:?}",
                    SchemaKind::from(writer),
                    SchemaKind::from(reader)
                )))
            }
            // A leaf of the same type reads as written (apache-avro would also check a bytes
            // decimal's length against the precision, refusing data that fits the scale).
            (_, _, value) if same_leaf(writer, reader) => Ok(value),
            // Other leaves: apache-avro's promotions and logical types (no recursion below them).
            (_, _, value) => value
                .resolve_with_names(reader, self.reader)
                .map_err(|e| AvroError::new(e.to_string())),
        }
    }

    /// The reader field's default, for a field the writer does not have.
    fn default(&self, field: &'r RecordField) -> Result<Value, AvroError> {
        if field.default.is_none() {
            return Err(AvroError::new(
                "the writer has no such field and the reader no default",
            ));
        }
        field_default(field, self.reader)
    }
}

/// The value of `field`'s default (`names`: the named types of its schema).
///
/// # Errors
/// When the field has no default, or its default does not fit its schema.
pub(crate) fn field_default<'s>(
    field: &'s RecordField,
    names: &HashMap<Name, &'s Schema>,
) -> Result<Value, AvroError> {
    let json = field
        .default
        .clone()
        .ok_or_else(|| AvroError::new("the field has no default"))?;
    let value = Value::try_from(json).map_err(|e| AvroError::new(e.to_string()))?;
    let schema = named(&field.schema, names)?;
    // A union's default is of its first branch.
    let (schema, union) = match schema {
        Schema::Union(union) => (
            union
                .variants()
                .first()
                .ok_or_else(|| AvroError::new("an empty union"))?,
            true,
        ),
        other => (other, false),
    };
    let value = value
        .resolve_with_names(schema, names)
        .map_err(|e| AvroError::new(e.to_string()))?;
    Ok(if union {
        Value::Union(0, Box::new(value))
    } else {
        value
    })
}

/// The stack apache-avro's reader may take for one level of nesting (a record, the union and the
/// named reference to it: three frames of its decoder, about 24 KiB each in a debug build, and
/// resolution's).
const STACK_PER_LEVEL: usize = 128 * 1024;

/// Runs `read` (an apache-avro read of a value `depth` levels deep) on a stack with room for it:
/// the thread's own when enough of it is left (the common case, values a few levels deep), else
/// a larger one set up for the call.
pub(crate) fn on_stack_for<R>(depth: usize, read: impl FnOnce() -> R) -> R {
    let need = STACK_PER_LEVEL.saturating_mul(depth.saturating_add(2));
    stacker::maybe_grow(need, need, read)
}

/// Writes `value` as Avro of `schema`.
///
/// # Errors
/// When the value does not fit the schema.
pub(crate) fn write(schema: &Schema, value: Value) -> apache_avro::AvroResult<Vec<u8>> {
    let mut out = Vec::new();
    write_into(schema, value, &mut out)?;
    Ok(out)
}

/// Appends `value`, as Avro of `schema`, to `out`.
///
/// The shapes the generated types, error events and envelopes are made of (records with their
/// fields in the schema's order, unions, enums, arrays, maps, primitives, dates, times,
/// timestamps, uuids) are written here in one pass. Anything else (a named reference, a
/// decimal or duration, a value that does not match its schema exactly) goes through
/// apache-avro's writer, which resolves the schema's names, validates the value and looks each
/// record's fields up in a table built for it, on every call: for an event of the benchmark,
/// those cost more than the writing.
///
/// # Errors
/// When the value does not fit the schema (apache-avro's error).
pub(crate) fn write_into(
    schema: &Schema,
    value: Value,
    out: &mut Vec<u8>,
) -> apache_avro::AvroResult<()> {
    let start = out.len();
    if write_direct(schema, &value, out).is_some() {
        return Ok(());
    }
    out.truncate(start);
    let body = GenericDatumWriter::builder(schema)
        .build()?
        .write_value_to_vec(value)?;
    out.extend_from_slice(&body);
    Ok(())
}

/// Writes `value` when it has one of the shapes [`write_into`] writes itself and matches
/// `schema` exactly (`None` otherwise: part of it may be written).
fn write_direct(schema: &Schema, value: &Value, out: &mut Vec<u8>) -> Option<()> {
    match (schema, value) {
        (Schema::Null, Value::Null) => {}
        (Schema::Boolean, Value::Boolean(b)) => out.push(u8::from(*b)),
        (Schema::Int, Value::Int(n))
        | (Schema::Date, Value::Date(n))
        | (Schema::TimeMillis, Value::TimeMillis(n)) => write_long(i64::from(*n), out),
        (Schema::Long, Value::Long(n))
        | (Schema::TimeMicros, Value::TimeMicros(n))
        | (Schema::TimestampMillis, Value::TimestampMillis(n))
        | (Schema::TimestampMicros, Value::TimestampMicros(n))
        | (Schema::TimestampNanos, Value::TimestampNanos(n))
        | (Schema::LocalTimestampMillis, Value::LocalTimestampMillis(n))
        | (Schema::LocalTimestampMicros, Value::LocalTimestampMicros(n))
        | (Schema::LocalTimestampNanos, Value::LocalTimestampNanos(n)) => write_long(*n, out),
        (Schema::Float, Value::Float(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Schema::Double, Value::Double(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Schema::Bytes, Value::Bytes(bytes)) => write_sized(bytes, out)?,
        (Schema::String, Value::String(text)) => write_sized(text.as_bytes(), out)?,
        (Schema::Uuid(UuidSchema::String), Value::Uuid(uuid)) => {
            let mut text = uuid::Uuid::encode_buffer();
            write_sized(uuid.hyphenated().encode_lower(&mut text).as_bytes(), out)?;
        }
        (Schema::Uuid(UuidSchema::Bytes), Value::Uuid(uuid)) => write_sized(uuid.as_bytes(), out)?,
        (Schema::Uuid(UuidSchema::Fixed(fixed)), Value::Uuid(uuid)) if fixed.size == 16 => {
            out.extend_from_slice(uuid.as_bytes());
        }
        (Schema::Fixed(fixed), Value::Fixed(size, bytes))
            if *size == fixed.size && bytes.len() == fixed.size =>
        {
            out.extend_from_slice(bytes);
        }
        (Schema::Enum(e), Value::Enum(index, symbol))
            if e.symbols.get(usize::try_from(*index).ok()?) == Some(symbol) =>
        {
            write_long(i64::from(*index), out);
        }
        (Schema::Union(union), Value::Union(index, item)) => {
            let branch = union.variants().get(usize::try_from(*index).ok()?)?;
            write_long(i64::from(*index), out);
            write_direct(branch, item, out)?;
        }
        (Schema::Array(array), Value::Array(items)) => {
            if !items.is_empty() {
                write_long(i64::try_from(items.len()).ok()?, out);
                for item in items {
                    write_direct(&array.items, item, out)?;
                }
            }
            out.push(0);
        }
        (Schema::Map(map), Value::Map(entries)) => {
            if !entries.is_empty() {
                write_long(i64::try_from(entries.len()).ok()?, out);
                for (key, item) in entries {
                    write_sized(key.as_bytes(), out)?;
                    write_direct(&map.types, item, out)?;
                }
            }
            out.push(0);
        }
        (Schema::Record(record), Value::Record(fields)) if fields.len() == record.fields.len() => {
            for (field, (name, item)) in record.fields.iter().zip(fields) {
                if field.name != *name {
                    return None;
                }
                write_direct(&field.schema, item, out)?;
            }
        }
        _ => return None,
    }
    Some(())
}

/// Appends Avro's `long` encoding of `n` (zig-zag, then 7 bits a byte).
fn write_long(n: i64, out: &mut Vec<u8>) {
    // Zig-zag: the sign moves to the lowest bit (the cast keeps the bits).
    #[allow(clippy::cast_sign_loss)]
    let mut rest = ((n << 1) ^ (n >> 63)) as u64;
    while rest >= 0x80 {
        // The low 7 bits, with the bit that says more follow.
        #[allow(clippy::cast_possible_truncation)]
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(rest as u8);
}

/// Appends `bytes` with their length before them (Avro's `bytes` and `string`).
fn write_sized(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    write_long(i64::try_from(bytes.len()).ok()?, out);
    out.extend_from_slice(bytes);
    Some(())
}

/// Checks that `bytes` begin with one value of `schema` within the limits; returns how deeply
/// it nests.
///
/// # Errors
/// What is wrong, and where (the path of record fields).
pub(crate) fn check(schema: &Schema, bytes: &[u8]) -> Result<usize, AvroError> {
    let resolved = ResolvedSchema::try_from(schema)
        .map_err(|e| AvroError::new(format!("the writer schema has an unknown name: {e}")))?;
    let mut walk = Walk {
        input: bytes,
        names: resolved.get_names(),
        items_left: u64::try_from(bytes.len())
            .unwrap_or(u64::MAX)
            .saturating_add(conv::ZERO_WIDTH_ITEMS),
        max_depth: max_depth(),
        deepest: 0,
    };
    // (Bytes after the value are left alone, as every Avro reader leaves them.)
    walk.value(schema, 0)?;
    Ok(walk.deepest)
}

struct Walk<'a, 's> {
    input: &'a [u8],
    names: &'a HashMap<Name, &'s Schema>,
    items_left: u64,
    max_depth: usize,
    deepest: usize,
}

impl Walk<'_, '_> {
    fn take(&mut self, n: usize) -> Result<(), AvroError> {
        if n > self.input.len() {
            return Err(AvroError::new(format!(
                "{n} bytes announced, {} left",
                self.input.len()
            )));
        }
        self.input = &self.input[n..];
        Ok(())
    }

    fn index(&mut self, count: usize, what: &str) -> Result<usize, AvroError> {
        let index = read_long(&mut self.input)?;
        usize::try_from(index)
            .ok()
            .filter(|i| *i < count)
            .ok_or_else(|| AvroError::new(format!("{what} {index} of {count}")))
    }

    fn deeper(&mut self, depth: usize) -> Result<usize, AvroError> {
        if depth >= self.max_depth {
            return Err(AvroError::new(format!(
                "nesting deeper than {} levels (max_nesting_depth)",
                self.max_depth
            )));
        }
        self.deepest = self.deepest.max(depth + 1);
        Ok(depth + 1)
    }

    fn value(&mut self, schema: &Schema, depth: usize) -> Result<(), AvroError> {
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => match self.input.split_first() {
                Some((0 | 1, rest)) => {
                    self.input = rest;
                    Ok(())
                }
                Some((byte, _)) => Err(AvroError::new(format!("{byte} is not a boolean"))),
                None => Err(AvroError::new("the data ends early")),
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => {
                conv::read_int(&mut self.input).map(drop)
            }
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => read_long(&mut self.input).map(drop),
            Schema::Float => self.take(4),
            Schema::Double => self.take(8),
            Schema::Bytes
            | Schema::String
            | Schema::Uuid(UuidSchema::Bytes | UuidSchema::String) => {
                conv::read_sized(&mut self.input).map(drop)
            }
            // Bytes holding the unscaled number (bytes again) and the scale: apache-avro reserves
            // the inner length before it reads, so it is checked too.
            Schema::BigDecimal => {
                let mut inner = conv::read_sized(&mut self.input)?;
                conv::read_sized(&mut inner)?;
                read_long(&mut inner).map(drop)
            }
            Schema::Decimal(decimal) => match &decimal.inner {
                InnerDecimalSchema::Bytes => conv::read_sized(&mut self.input).map(drop),
                InnerDecimalSchema::Fixed(fixed) => self.take(fixed.size),
            },
            Schema::Fixed(fixed)
            | Schema::Duration(fixed)
            | Schema::Uuid(UuidSchema::Fixed(fixed)) => self.take(fixed.size),
            Schema::Enum(enumeration) => self
                .index(enumeration.symbols.len(), "enum symbol")
                .map(drop),
            Schema::Union(union) => {
                let branches = union.variants();
                let index = self.index(branches.len(), "union branch")?;
                self.value(&branches[index], depth)
            }
            Schema::Record(record) => {
                let depth = self.deeper(depth)?;
                for field in &record.fields {
                    self.value(&field.schema, depth)
                        .map_err(|e| e.in_field(&field.name))?;
                }
                Ok(())
            }
            Schema::Array(array) => {
                let depth = self.deeper(depth)?;
                self.blocks(|walk| walk.value(&array.items, depth))
            }
            Schema::Map(map) => {
                let depth = self.deeper(depth)?;
                self.blocks(|walk| {
                    conv::read_sized(&mut walk.input)?;
                    walk.value(&map.types, depth)
                })
            }
            Schema::Ref { name } => {
                let named = *self
                    .names
                    .get(name)
                    .ok_or_else(|| AvroError::new(format!("no type named {name}")))?;
                self.value(named, depth)
            }
        }
    }

    fn blocks(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), AvroError>,
    ) -> Result<(), AvroError> {
        loop {
            let count = read_long(&mut self.input)?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                let size = read_long(&mut self.input)?;
                if usize::try_from(size).map_or(true, |s| s > self.input.len()) {
                    return Err(AvroError::new(format!(
                        "a block of {size} bytes in {} bytes",
                        self.input.len()
                    )));
                }
            }
            let count = count.unsigned_abs();
            if count > self.items_left {
                return Err(AvroError::new(format!(
                    "a block of {count} items where at most {} can be in {} bytes",
                    self.items_left,
                    self.input.len()
                )));
            }
            self.items_left -= count;
            for _ in 0..count {
                item(self)?;
            }
        }
    }
}

/// apache-avro's reader without the limits, for tests that compare against it.
#[cfg(test)]
pub(crate) fn read_unchecked(schema: &Schema, bytes: &[u8]) -> apache_avro::AvroResult<Value> {
    GenericDatumReader::builder(schema)
        .build()?
        .read_value(&mut &bytes[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(json: &str) -> Schema {
        Schema::parse_str(json).unwrap()
    }

    fn zigzag(n: i64, out: &mut Vec<u8>) {
        out.extend(write(&Schema::Long, Value::Long(n)).unwrap());
    }

    /// apache-avro's own writer, which `write_into` must match byte for byte.
    fn apache(schema: &Schema, value: Value) -> apache_avro::AvroResult<Vec<u8>> {
        GenericDatumWriter::builder(schema)
            .build()?
            .write_value_to_vec(value)
    }

    /// Every shape written without apache-avro is written as apache-avro writes it.
    #[test]
    fn direct_writes_match_apache_avro() {
        let everything = schema(
            r#"{"type":"record","name":"All","namespace":"t","fields":[
            {"name":"n","type":"null"},{"name":"b","type":"boolean"},
            {"name":"i","type":"int"},{"name":"l","type":"long"},
            {"name":"f","type":"float"},{"name":"d","type":"double"},
            {"name":"by","type":"bytes"},{"name":"s","type":"string"},
            {"name":"u","type":{"type":"string","logicalType":"uuid"}},
            {"name":"uf","type":{"type":"fixed","name":"U16","size":16,"logicalType":"uuid"}},
            {"name":"date","type":{"type":"int","logicalType":"date"}},
            {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
            {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"lts","type":{"type":"long","logicalType":"local-timestamp-millis"}},
            {"name":"fx","type":{"type":"fixed","name":"F3","size":3}},
            {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
            {"name":"o","type":["null","string"]},
            {"name":"arr","type":{"type":"array","items":"long"}},
            {"name":"empty","type":{"type":"array","items":"long"}},
            {"name":"m","type":{"type":"map","values":"int"}},
            {"name":"inner","type":{"type":"record","name":"In","fields":[{"name":"x","type":"int"}]}}
            ]}"#,
        );
        let uuid = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let values = |long: i64| {
            Value::Record(vec![
                ("n".into(), Value::Null),
                ("b".into(), Value::Boolean(true)),
                ("i".into(), Value::Int(i32::MIN)),
                ("l".into(), Value::Long(long)),
                ("f".into(), Value::Float(1.5)),
                ("d".into(), Value::Double(-2.25)),
                ("by".into(), Value::Bytes(vec![0, 1, 255])),
                ("s".into(), Value::String("grüße".into())),
                ("u".into(), Value::Uuid(uuid)),
                ("uf".into(), Value::Uuid(uuid)),
                ("date".into(), Value::Date(-3)),
                ("tm".into(), Value::TimeMillis(1_000)),
                ("tu".into(), Value::TimeMicros(1_000_000)),
                ("ts".into(), Value::TimestampMillis(1_700_000_000_000)),
                ("tsu".into(), Value::TimestampMicros(-1)),
                ("lts".into(), Value::LocalTimestampMillis(7)),
                ("fx".into(), Value::Fixed(3, vec![9, 8, 7])),
                ("e".into(), Value::Enum(2, "C".into())),
                (
                    "o".into(),
                    Value::Union(1, Box::new(Value::String("x".into()))),
                ),
                (
                    "arr".into(),
                    Value::Array((0..200).map(Value::Long).collect()),
                ),
                ("empty".into(), Value::Array(Vec::new())),
                (
                    "m".into(),
                    Value::Map([("k".to_owned(), Value::Int(1))].into()),
                ),
                (
                    "inner".into(),
                    Value::Record(vec![("x".into(), Value::Int(64))]),
                ),
            ])
        };
        for long in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            let value = values(long);
            let mut direct = Vec::new();
            assert!(
                write_direct(&everything, &value, &mut direct).is_some(),
                "written directly"
            );
            assert_eq!(direct, apache(&everything, value).unwrap(), "long {long}");
        }
    }

    /// What the direct writer declines (fields out of order, a named reference, a decimal, a
    /// value of another type) goes through apache-avro: the same bytes, or its refusal.
    #[test]
    fn other_values_go_through_apache_avro() {
        let pair = schema(
            r#"{"type":"record","name":"P","fields":[{"name":"a","type":"int"},{"name":"b","type":"long"}]}"#,
        );
        let swapped = Value::Record(vec![
            ("b".into(), Value::Long(2)),
            ("a".into(), Value::Int(1)),
        ]);
        assert!(write_direct(&pair, &swapped, &mut Vec::new()).is_none());
        assert_eq!(
            write(&pair, swapped.clone()).unwrap(),
            apache(&pair, swapped).unwrap()
        );
        // An int where the schema has a long: apache-avro's promotion.
        let promoted = Value::Record(vec![
            ("a".into(), Value::Int(1)),
            ("b".into(), Value::Int(2)),
        ]);
        assert_eq!(
            write(&pair, promoted.clone()).unwrap(),
            apache(&pair, promoted).unwrap()
        );
        let tree = schema(TREE);
        let nested = Value::Record(vec![
            ("label".into(), Value::String("root".into())),
            (
                "child".into(),
                Value::Union(
                    1,
                    Box::new(Value::Record(vec![
                        ("label".into(), Value::String("leaf".into())),
                        ("child".into(), Value::Union(0, Box::new(Value::Null))),
                    ])),
                ),
            ),
        ]);
        assert_eq!(
            write(&tree, nested.clone()).unwrap(),
            apache(&tree, nested).unwrap()
        );
        let money = schema(r#"{"type":"bytes","logicalType":"decimal","precision":6,"scale":2}"#);
        let decimal = Value::Decimal(apache_avro::Decimal::from(vec![0x01, 0x02]));
        assert_eq!(
            write(&money, decimal.clone()).unwrap(),
            apache(&money, decimal).unwrap()
        );
        assert!(write(&pair, Value::String("no".into())).is_err());
        let mut out = b"kept".to_vec();
        assert!(write_into(
            &pair,
            Value::Record(vec![("a".into(), Value::Int(1))]),
            &mut out
        )
        .is_err());
        assert_eq!(out, b"kept", "nothing of a refused value stays");
    }

    const TREE: &str = r#"{"type":"record","name":"Tree","fields":[
        {"name":"label","type":"string"},
        {"name":"child","type":["null","Tree"],"default":null}]}"#;

    /// Valid values pass and read as apache-avro reads them.
    #[test]
    fn valid_values_pass() {
        let tree = schema(TREE);
        let leaf = Value::Record(vec![
            ("label".into(), Value::String("leaf".into())),
            ("child".into(), Value::Union(0, Box::new(Value::Null))),
        ]);
        let root = Value::Record(vec![
            ("label".into(), Value::String("root".into())),
            ("child".into(), Value::Union(1, Box::new(leaf))),
        ]);
        let body = write(&tree, root.clone()).unwrap();
        assert_eq!(read(&tree, None, &body, "tree", None).unwrap(), root);
        let map = schema(r#"{"type":"map","values":{"type":"array","items":"null"}}"#);
        let value = Value::Map(
            [("k".to_owned(), Value::Array(vec![Value::Null; 3]))]
                .into_iter()
                .collect(),
        );
        let body = write(&map, value.clone()).unwrap();
        assert_eq!(read(&map, None, &body, "map", None).unwrap(), value);
    }

    /// 13 bytes announcing a map of 500 million entries: refused, nothing reserved.
    #[test]
    fn a_huge_block_count_is_refused() {
        let map = schema(r#"{"type":"map","values":"long"}"#);
        let mut body = Vec::new();
        zigzag(500_000_000, &mut body);
        body.extend_from_slice(&[2, b'k', 2, 0, 0, 0, 0, 0]);
        assert_eq!(body.len(), 13);
        let err = read(&map, None, &body, "map", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a block of 500000000 items"), "{err}");
    }

    /// 12 bytes announcing 8.4 million `null`s: more items than bytes (plus the allowance for
    /// zero-width items), refused; so are many blocks that each stay under the allowance.
    #[test]
    fn zero_width_items_are_bounded_by_the_value_as_a_whole() {
        let nulls = schema(r#"{"type":"array","items":"null"}"#);
        let mut body = Vec::new();
        zigzag(8_400_000, &mut body);
        body.resize(12, 0);
        assert!(read(&nulls, None, &body, "nulls", None).is_err());
        let mut blocks = Vec::new();
        for _ in 0..100 {
            zigzag(60_000, &mut blocks);
        }
        blocks.push(0);
        let err = check(&nulls, &blocks).unwrap_err().to_string();
        assert!(err.contains("at most"), "{err}");
    }

    /// A recursive record nested 100,000 deep (300 KB): refused at the depth limit, no stack
    /// overflow.
    #[test]
    fn deep_nesting_is_refused_at_the_limit() {
        let tree = schema(TREE);
        let mut body = Vec::new();
        for _ in 0..100_000 {
            body.extend_from_slice(&[2, b'x', 2]); // label "x", union branch 1 (Tree)
        }
        body.extend_from_slice(&[2, b'x', 0]);
        let err = read(&tree, None, &body, "tree", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nesting deeper than"), "{err}");
        // Within the limit it reads.
        let mut shallow = Vec::new();
        for _ in 0..10 {
            shallow.extend_from_slice(&[2, b'x', 2]);
        }
        shallow.extend_from_slice(&[2, b'x', 0]);
        assert!(read(&tree, None, &shallow, "tree", None).is_ok());
    }

    /// Lengths beyond the data, negative lengths and counts, bad indexes and truncations are
    /// errors, never panics.
    #[test]
    fn malformed_values_are_errors() {
        let record = schema(
            r#"{"type":"record","name":"R","fields":[
                {"name":"s","type":"string"},
                {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
                {"name":"u","type":["null","long"]},
                {"name":"d","type":{"type":"bytes","logicalType":"big-decimal"}},
                {"name":"f","type":{"type":"fixed","name":"F","size":4}}]}"#,
        );
        let good = [2, b'a', 2, 2, 4, 6, 2, 2, 4, 1, 2, 3, 4];
        check(&record, &good).unwrap();
        for cut in 0..good.len() {
            assert!(check(&record, &good[..cut]).is_err(), "cut at {cut}");
        }
        for (name, bytes) in [
            ("long string", &[0x80, 0x80, 0x04, b'a'][..]),
            ("negative length", &[1, b'a'][..]),
            ("enum index", &[2, b'a', 4][..]),
            ("union index", &[2, b'a', 2, 9][..]),
            (
                "big-decimal inner length",
                &[2, b'a', 2, 2, 4, 4, 0x80, 0x80, 0x04, 0, 0, 1, 2][..],
            ),
        ] {
            assert!(check(&record, bytes).is_err(), "{name}");
        }
        let array = schema(r#"{"type":"array","items":"long"}"#);
        let mut min = Vec::new();
        zigzag(i64::MIN, &mut min);
        assert!(check(&array, &min).is_err(), "i64::MIN count");
    }
}
