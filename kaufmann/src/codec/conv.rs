//! The conversions the code `schemas!` generates calls (through `kaufmann::__private::conv`):
//! between a generated type's fields and apache-avro's `Value`, and a reader of the Avro binary
//! encoding straight into them, each bounded by the bytes given and the nesting limit.

use std::collections::HashMap;

use bigdecimal::num_bigint::BigInt;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

use crate::codec::avro::{AvroError, BigDecimal, Duration, Uuid, Value};

type R<T> = Result<T, AvroError>;

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn mismatch(expected: &str, found: &Value) -> AvroError {
    let kind = format!("{found:?}");
    let kind = kind.split(['(', ' ']).next().unwrap_or("a value");
    AvroError::new(format!("expected {expected}, found {kind}"))
}

macro_rules! primitive {
    ($($name:ident: $ty:ty = $variant:ident, $what:literal;)*) => {$(
        #[doc = concat!("The ", $what, " in `value`.")]
        pub fn $name(value: Value) -> R<$ty> {
            match value {
                Value::$variant(v) => Ok(v),
                other => Err(mismatch($what, &other)),
            }
        }
    )*};
}

primitive! {
    boolean: bool = Boolean, "boolean";
    int: i32 = Int, "int";
    float: f32 = Float, "float";
    double: f64 = Double, "double";
    string: String = String, "string";
    uuid: Uuid = Uuid, "uuid";
    big_decimal: BigDecimal = BigDecimal, "big-decimal";
}

/// `null`.
pub fn null(value: Value) -> R<()> {
    match value {
        Value::Null => Ok(()),
        other => Err(mismatch("null", &other)),
    }
}

/// A `long` (an `int` is promoted, as schema resolution does).
pub fn long(value: Value) -> R<i64> {
    match value {
        Value::Long(v) => Ok(v),
        Value::Int(v) => Ok(i64::from(v)),
        other => Err(mismatch("long", &other)),
    }
}

/// `bytes` (a `string` is accepted, as schema resolution does).
pub fn bytes(value: Value) -> R<Vec<u8>> {
    match value {
        Value::Bytes(v) => Ok(v),
        Value::String(s) => Ok(s.into_bytes()),
        other => Err(mismatch("bytes", &other)),
    }
}

/// A `fixed` of `N` bytes.
pub fn fixed<const N: usize>(value: Value) -> R<[u8; N]> {
    match value {
        Value::Fixed(_, bytes) => {
            let len = bytes.len();
            bytes
                .try_into()
                .map_err(|_| AvroError::new(format!("expected {N} fixed bytes, found {len}")))
        }
        other => Err(mismatch("fixed", &other)),
    }
}

/// An array's items.
pub fn array(value: Value) -> R<Vec<Value>> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(mismatch("array", &other)),
    }
}

/// A map's entries.
pub fn map(value: Value) -> R<HashMap<String, Value>> {
    match value {
        Value::Map(entries) => Ok(entries),
        other => Err(mismatch("map", &other)),
    }
}

/// A union's branch index and value.
pub fn union(value: Value) -> R<(u32, Value)> {
    match value {
        Value::Union(index, inner) => Ok((index, *inner)),
        other => Err(mismatch("union", &other)),
    }
}

/// Whether `value` is branch `index` of a union.
pub fn is_branch(value: &Value, index: u32) -> bool {
    matches!(value, Value::Union(i, _) if *i == index)
}

/// Runs `convert`, adding `field` to the path of its error.
///
/// # Errors
/// `convert`'s error, one field further out.
pub fn in_field<T>(field: &str, convert: impl FnOnce() -> R<T>) -> R<T> {
    convert().map_err(|e| e.in_field(field))
}

/// The error for a union branch the generated type does not know.
pub fn bad_branch(index: u32, union: &str) -> AvroError {
    AvroError::new(format!("union {union} has no branch {index}"))
}

/// An enum's symbol index and symbol.
pub fn symbol(value: Value) -> R<(u32, String)> {
    match value {
        Value::Enum(index, symbol) => Ok((index, symbol)),
        other => Err(mismatch("enum", &other)),
    }
}

/// The error for a symbol the generated enum does not know.
pub fn bad_symbol(symbol: &str, enumeration: &str) -> AvroError {
    AvroError::new(format!("enum {enumeration} has no symbol `{symbol}`"))
}

/// A record's fields, to be taken in schema order with [`Fields::take`].
pub fn record(value: Value, record: &'static str) -> R<Fields> {
    match value {
        Value::Record(fields) => Ok(Fields {
            record,
            fields: fields.into_iter(),
        }),
        other => Err(mismatch(&format!("record {record}"), &other)),
    }
}

/// The fields of a record value, in schema order.
pub struct Fields {
    record: &'static str,
    fields: std::vec::IntoIter<(String, Value)>,
}

impl Fields {
    /// The next field's value; it must be named `name`.
    ///
    /// # Errors
    /// When the record has no more fields or the next one has another name.
    pub fn take(&mut self, name: &str) -> R<Value> {
        match self.fields.next() {
            Some((found, value)) if found == name => Ok(value),
            Some((found, _)) => Err(AvroError::new(format!(
                "record {} has field `{found}` where `{name}` was expected",
                self.record
            ))),
            None => Err(AvroError::new(format!(
                "record {} has no field `{name}`",
                self.record
            ))),
        }
    }
}

/// A `date`.
pub fn date(value: Value) -> R<NaiveDate> {
    match value {
        Value::Date(days) => days
            .checked_add(EPOCH_DAYS_FROM_CE)
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .ok_or_else(|| AvroError::new(format!("date {days} is out of range"))),
        other => Err(mismatch("date", &other)),
    }
}

/// The `date` of `date`.
pub fn date_to(date: &NaiveDate) -> Value {
    Value::Date(date.num_days_from_ce() - EPOCH_DAYS_FROM_CE)
}

fn time_of(micros: i64) -> R<NaiveTime> {
    let secs = u32::try_from(micros.div_euclid(1_000_000)).ok();
    let nanos = u32::try_from(micros.rem_euclid(1_000_000) * 1_000).ok();
    secs.zip(nanos)
        .and_then(|(s, n)| NaiveTime::from_num_seconds_from_midnight_opt(s, n))
        .ok_or_else(|| AvroError::new(format!("time of day {micros} µs is out of range")))
}

fn micros_of_day(time: NaiveTime) -> i64 {
    i64::from(time.num_seconds_from_midnight()) * 1_000_000 + i64::from(time.nanosecond() / 1_000)
}

/// A `time-millis` or `time-micros`.
pub fn time(value: Value) -> R<NaiveTime> {
    match value {
        Value::TimeMillis(ms) => time_of(i64::from(ms) * 1_000),
        Value::TimeMicros(us) => time_of(us),
        other => Err(mismatch("time", &other)),
    }
}

/// The `time-millis` of `time` (sub-millisecond digits dropped).
pub fn time_millis_to(time: &NaiveTime) -> R<Value> {
    i32::try_from(micros_of_day(*time) / 1_000)
        .map(Value::TimeMillis)
        .map_err(|_| AvroError::new(format!("time {time} is out of range")))
}

/// The `time-micros` of `time` (sub-microsecond digits dropped).
pub fn time_micros_to(time: &NaiveTime) -> Value {
    Value::TimeMicros(micros_of_day(*time))
}

/// A `timestamp-millis`, `-micros` or `-nanos`.
pub fn timestamp(value: Value) -> R<DateTime<Utc>> {
    let (at, unit) = match value {
        Value::TimestampMillis(v) | Value::LocalTimestampMillis(v) => {
            (DateTime::from_timestamp_millis(v), "ms")
        }
        Value::TimestampMicros(v) | Value::LocalTimestampMicros(v) => {
            (DateTime::from_timestamp_micros(v), "µs")
        }
        Value::TimestampNanos(v) | Value::LocalTimestampNanos(v) => {
            (Some(DateTime::from_timestamp_nanos(v)), "ns")
        }
        other => return Err(mismatch("timestamp", &other)),
    };
    at.ok_or_else(|| AvroError::new(format!("timestamp out of range ({unit})")))
}

/// A `local-timestamp-millis`, `-micros` or `-nanos`.
pub fn local_timestamp(value: Value) -> R<NaiveDateTime> {
    timestamp(value).map(|at| at.naive_utc())
}

fn nanos_of(at: &DateTime<Utc>) -> R<i64> {
    at.timestamp_nanos_opt()
        .ok_or_else(|| AvroError::new(format!("{at} does not fit a timestamp in nanoseconds")))
}

/// The `timestamp-millis`, `-micros` or `-nanos` (`unit` 3, 6 or 9) of `at`, `local` for the
/// `local-` forms.
pub fn timestamp_to(at: &DateTime<Utc>, unit: u8, local: bool) -> R<Value> {
    Ok(match (unit, local) {
        (3, false) => Value::TimestampMillis(at.timestamp_millis()),
        (3, true) => Value::LocalTimestampMillis(at.timestamp_millis()),
        (6, false) => Value::TimestampMicros(at.timestamp_micros()),
        (6, true) => Value::LocalTimestampMicros(at.timestamp_micros()),
        (_, false) => Value::TimestampNanos(nanos_of(at)?),
        (_, true) => Value::LocalTimestampNanos(nanos_of(at)?),
    })
}

/// The `local-timestamp-*` of `at` (see [`timestamp_to`]).
pub fn local_timestamp_to(at: &NaiveDateTime, unit: u8) -> R<Value> {
    timestamp_to(&at.and_utc(), unit, true)
}

/// A `decimal` with `scale` digits after the point.
pub fn decimal(value: Value, scale: usize) -> R<BigDecimal> {
    let scale = i64::try_from(scale).unwrap_or(i64::MAX);
    match value {
        Value::Decimal(d) => Ok(BigDecimal::new(BigInt::from(d), scale)),
        Value::Bytes(b) | Value::Fixed(_, b) => {
            Ok(BigDecimal::new(BigInt::from_signed_bytes_be(&b), scale))
        }
        other => Err(mismatch("decimal", &other)),
    }
}

/// The `decimal(precision, scale)` of `number`, on `fixed(size)` when `size` is given.
///
/// # Errors
/// When `number` has more digits after the point than `scale`, more digits in all than
/// `precision`, or more bytes than `size`: decimals are never rounded.
pub fn decimal_to(
    number: &BigDecimal,
    precision: usize,
    scale: usize,
    size: Option<usize>,
) -> R<Value> {
    let scaled = number.with_scale(i64::try_from(scale).unwrap_or(i64::MAX));
    if &scaled != number {
        return Err(AvroError::new(format!(
            "{number} has more than {scale} digits after the point (decimal({precision}, {scale}))"
        )));
    }
    let (unscaled, _) = scaled.into_bigint_and_exponent();
    let digits = unscaled.magnitude().to_string().len();
    if digits > precision {
        return Err(AvroError::new(format!(
            "{number} has {digits} digits, more than decimal({precision}, {scale}) holds"
        )));
    }
    let mut bytes = unscaled.to_signed_bytes_be();
    // apache-avro's schema resolution refuses a `bytes` decimal whose byte length could not
    // hold `precision` digits, whatever its value: write at least that many bytes.
    if let Some(size) = size.or(Some(bytes_for_digits(precision))) {
        let Some(pad) = size.checked_sub(bytes.len()) else {
            return Err(AvroError::new(format!(
                "{number} needs more than the {size} bytes of its fixed"
            )));
        };
        let sign = if unscaled.sign() == bigdecimal::num_bigint::Sign::Minus {
            0xFF
        } else {
            0
        };
        bytes.splice(0..0, std::iter::repeat_n(sign, pad));
    }
    Ok(Value::Decimal(apache_avro::Decimal::from(bytes)))
}

/// The fewest two's-complement bytes that hold every number of `digits` decimal digits.
fn bytes_for_digits(digits: usize) -> usize {
    let mut bytes = 1_usize;
    // A signed n-byte number holds floor((8n - 1) * log10(2)) full decimal digits.
    let wanted = f64::from(u32::try_from(digits).unwrap_or(u32::MAX));
    while (f64::from(u32::try_from(8 * bytes - 1).unwrap_or(u32::MAX)) * std::f64::consts::LOG10_2)
        .floor()
        < wanted
    {
        bytes += 1;
    }
    bytes
}

fn ends_early() -> AvroError {
    AvroError::new("the Avro data ends early")
}

/// Takes the next `n` bytes of `input`.
fn take<'a>(input: &mut &'a [u8], n: usize) -> R<&'a [u8]> {
    let (head, rest) = input.split_at_checked(n).ok_or_else(ends_early)?;
    *input = rest;
    Ok(head)
}

/// Reads a `long` (zigzag varint, at most 10 bytes).
///
/// # Errors
/// When the data ends early or the number does not fit 64 bits.
pub fn read_long(input: &mut &[u8]) -> R<i64> {
    let mut bits = 0_u64;
    let mut shift = 0_u32;
    loop {
        let (&byte, rest) = input.split_first().ok_or_else(ends_early)?;
        *input = rest;
        // The tenth byte (shift 63) has room for one bit and no continuation: it must be 0
        // or 1, so the loop ends there at the latest.
        if shift == 63 && byte > 1 {
            return Err(AvroError::new("a varint does not fit 64 bits"));
        }
        bits |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    // Zigzag: 0, -1, 1, -2, ... are written as 0, 1, 2, 3, ...
    let magnitude = i64::from_ne_bytes((bits >> 1).to_ne_bytes());
    Ok(if bits & 1 == 0 { magnitude } else { !magnitude })
}

/// Reads an `int`.
///
/// # Errors
/// As [`read_long`], and when the number does not fit 32 bits.
pub fn read_int(input: &mut &[u8]) -> R<i32> {
    let value = read_long(input)?;
    i32::try_from(value).map_err(|_| AvroError::new(format!("{value} does not fit an int")))
}

/// Reads a `boolean` (one byte, 0 or 1).
///
/// # Errors
/// When the data ends early or the byte is neither 0 nor 1.
pub fn read_boolean(input: &mut &[u8]) -> R<bool> {
    match take(input, 1)? {
        [0] => Ok(false),
        [1] => Ok(true),
        other => Err(AvroError::new(format!("{other:?} is not a boolean"))),
    }
}

/// Reads a `float` (4 bytes, little-endian).
///
/// # Errors
/// When the data ends early.
pub fn read_float(input: &mut &[u8]) -> R<f32> {
    read_fixed::<4>(input).map(f32::from_le_bytes)
}

/// Reads a `double` (8 bytes, little-endian).
///
/// # Errors
/// When the data ends early.
pub fn read_double(input: &mut &[u8]) -> R<f64> {
    read_fixed::<8>(input).map(f64::from_le_bytes)
}

/// Reads `N` bytes (a `fixed`).
///
/// # Errors
/// When the data ends early.
pub fn read_fixed<const N: usize>(input: &mut &[u8]) -> R<[u8; N]> {
    let (head, rest) = input.split_first_chunk::<N>().ok_or_else(ends_early)?;
    *input = rest;
    Ok(*head)
}

/// The bytes of a `bytes` or `string`: a length, then that many bytes (checked against the
/// data left before anything is allocated).
pub(crate) fn read_sized<'a>(input: &mut &'a [u8]) -> R<&'a [u8]> {
    let len = read_long(input)?;
    let len = usize::try_from(len).map_err(|_| AvroError::new(format!("negative length {len}")))?;
    take(input, len)
}

/// Reads `bytes`.
///
/// # Errors
/// When the length is negative or beyond the data.
pub fn read_bytes(input: &mut &[u8]) -> R<Vec<u8>> {
    read_sized(input).map(<[u8]>::to_vec)
}

/// Reads a `string`.
///
/// # Errors
/// As [`read_bytes`], and when the bytes are not UTF-8.
pub fn read_string(input: &mut &[u8]) -> R<String> {
    std::str::from_utf8(read_sized(input)?)
        .map(str::to_owned)
        .map_err(|e| AvroError::new(format!("a string is not UTF-8: {e}")))
}

/// Reads a `uuid`: its string form, or (as apache-avro reads it) 16 raw bytes when the length
/// is 16.
///
/// # Errors
/// As [`read_bytes`], and when the bytes are not a UUID.
pub fn read_uuid(input: &mut &[u8]) -> R<Uuid> {
    let bytes = read_sized(input)?;
    let parsed = if bytes.len() == 16 {
        Uuid::from_slice(bytes)
    } else {
        Uuid::try_parse_ascii(bytes)
    };
    parsed.map_err(|e| AvroError::new(format!("not a UUID: {e}")))
}

/// Reads a `big-decimal` (apache-avro's encoding: bytes holding the unscaled number and the
/// scale).
///
/// # Errors
/// When the bytes are not a big-decimal.
pub fn read_big_decimal(input: &mut &[u8]) -> R<BigDecimal> {
    let mut inner = read_sized(input)?;
    let unscaled = read_sized(&mut inner)?;
    let scale = read_long(&mut inner)?;
    if !inner.is_empty() {
        return Err(AvroError::new(format!(
            "{} bytes follow a big-decimal's scale",
            inner.len()
        )));
    }
    Ok(BigDecimal::new(
        BigInt::from_signed_bytes_be(unscaled),
        scale,
    ))
}

/// Reads a `uuid` on `fixed` (16 bytes).
///
/// # Errors
/// When fewer than 16 bytes are left.
pub fn read_uuid_fixed(input: &mut &[u8]) -> R<Uuid> {
    read_fixed::<16>(input).map(Uuid::from_bytes)
}

/// Reads a union's branch index.
///
/// # Errors
/// As [`read_long`], and for a negative index.
pub fn read_branch(input: &mut &[u8]) -> R<u32> {
    let index = read_long(input)?;
    u32::try_from(index).map_err(|_| AvroError::new(format!("no union has branch {index}")))
}

/// Reads an enum's symbol index.
///
/// # Errors
/// As [`read_int`], and for a negative index.
pub fn read_symbol(input: &mut &[u8]) -> R<u32> {
    let index = read_int(input)?;
    u32::try_from(index).map_err(|_| AvroError::new(format!("no enum has symbol {index}")))
}

/// The error for a symbol index the generated enum does not have.
pub fn bad_symbol_index(index: u32, enumeration: &str) -> AvroError {
    AvroError::new(format!("enum {enumeration} has no symbol {index}"))
}

/// How many items a block may announce beyond one per byte left: items of a type written in
/// no bytes (`null`, an empty record) need none, and the count is still bounded.
pub(crate) const ZERO_WIDTH_ITEMS: u64 = 1 << 16;

/// Reads the blocks of an `array` or `map` (a count, then that many items; a negative count
/// is followed by the block's size in bytes; a zero count ends), calling `item` for each item.
///
/// # Errors
/// The first error of `item`; when the data ends early or a count cannot be right.
pub fn read_blocks(input: &mut &[u8], mut item: impl FnMut(&mut &[u8]) -> R<()>) -> R<()> {
    // An array or map nests its items one level deeper (the depth limit's levels).
    let _level = crate::codec::depth::Nesting::enter()?;
    loop {
        let count = read_long(input)?;
        if count == 0 {
            return Ok(());
        }
        if count < 0 {
            read_long(input)?;
        }
        let count = count.unsigned_abs();
        let left = u64::try_from(input.len()).unwrap_or(u64::MAX);
        if count > left.saturating_add(ZERO_WIDTH_ITEMS) {
            return Err(AvroError::new(format!(
                "a block of {count} items in {left} bytes"
            )));
        }
        for _ in 0..count {
            item(input)?;
        }
    }
}

/// A `duration`.
pub fn duration(value: Value) -> R<Duration> {
    match value {
        Value::Duration(d) => Ok(Duration {
            months: d.months().into(),
            days: d.days().into(),
            millis: d.millis().into(),
        }),
        Value::Fixed(12, bytes) => {
            let word =
                |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
            Ok(Duration {
                months: word(0),
                days: word(4),
                millis: word(8),
            })
        }
        other => Err(mismatch("duration", &other)),
    }
}

/// The `duration` of `duration`.
pub fn duration_to(duration: &Duration) -> Value {
    Value::Duration(apache_avro::Duration::new(
        apache_avro::Months::new(duration.months),
        apache_avro::Days::new(duration.days),
        apache_avro::Millis::new(duration.millis),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_round_trip() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert_eq!(
            date_to(&NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()),
            Value::Date(1)
        );
        assert_eq!(super::date(date_to(&date)).unwrap(), date);
        let time = NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).unwrap();
        let millis = time_millis_to(&time).unwrap();
        assert_eq!(millis, Value::TimeMillis(86_398_123));
        assert_eq!(super::time(time_micros_to(&time)).unwrap(), time);
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let value = timestamp_to(&at, 3, false).unwrap();
        assert_eq!(value, Value::TimestampMillis(1_764_000_000_123));
        assert_eq!(timestamp(timestamp_to(&at, 6, false).unwrap()).unwrap(), at);
        assert_eq!(timestamp(timestamp_to(&at, 9, false).unwrap()).unwrap(), at);
        let local = at.naive_utc();
        assert_eq!(
            local_timestamp(local_timestamp_to(&local, 6).unwrap()).unwrap(),
            local
        );
    }

    #[test]
    fn decimals_are_exact_or_refused() {
        let n: BigDecimal = "-12.34".parse().unwrap();
        let value = decimal_to(&n, 6, 2, None).unwrap();
        assert_eq!(decimal(value.clone(), 2).unwrap(), n);
        let fixed = decimal_to(&n, 6, 2, Some(8)).unwrap();
        let Value::Decimal(d) = &value else {
            panic!("{value:?}")
        };
        assert_eq!(
            <Vec<u8>>::try_from(d).unwrap().len(),
            3,
            "6 digits need 3 bytes"
        );
        let Value::Decimal(d) = &fixed else {
            panic!("{fixed:?}")
        };
        assert_eq!(<Vec<u8>>::try_from(d).unwrap().len(), 8);
        assert_eq!(decimal(fixed, 2).unwrap(), n);
        let too_fine: BigDecimal = "1.234".parse().unwrap();
        assert!(decimal_to(&too_fine, 6, 2, None)
            .unwrap_err()
            .problem()
            .contains("more than 2 digits after the point"));
        let too_big: BigDecimal = "123456.7".parse().unwrap();
        assert!(decimal_to(&too_big, 6, 1, None).is_err());
        let wide: BigDecimal = "99999999999".parse().unwrap();
        assert!(decimal_to(&wide, 30, 0, Some(2)).is_err());
    }

    #[test]
    fn errors_name_the_field_path() {
        let err = string(Value::Long(1))
            .unwrap_err()
            .in_field("street")
            .in_field("address");
        assert_eq!(
            err.to_string(),
            "field `address.street`: expected string, found Long"
        );
        let mut fields = record(
            Value::Record(vec![("a".into(), Value::Null)]),
            "com.acme.Thing",
        )
        .unwrap();
        assert!(fields.take("b").is_err());
        assert!(fields.take("a").is_err());
    }

    #[test]
    fn varints_read_as_apache_avro_writes_them() {
        for n in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut bytes = Vec::new();
            encode_long(n, &mut bytes);
            let mut input = &bytes[..];
            assert_eq!(read_long(&mut input).unwrap(), n);
            assert!(input.is_empty());
        }
        assert!(
            read_long(&mut &[0xFF; 11][..]).is_err(),
            "longer than 10 bytes"
        );
        assert!(read_long(&mut &[0xFF; 9][..]).is_err(), "ends early");
        assert!(read_int(&mut &[0x80, 0x80, 0x80, 0x80, 0x10][..]).is_err());
        assert!(read_boolean(&mut &[2][..]).is_err());
        assert!(
            read_string(&mut &[0x04, 0xFF, 0xFE][..]).is_err(),
            "length beyond the data"
        );
        assert!(
            read_string(&mut &[0x04, 0xFF, 0xFE, 0, 0][..]).is_err(),
            "not UTF-8"
        );
        assert!(read_bytes(&mut &[0x01][..]).is_err(), "negative length");
    }

    /// Blocks with a negative count (followed by their size in bytes, as buffering writers send
    /// them) read like apache-avro reads them; an impossible count is refused at once.
    #[test]
    fn array_blocks_with_sizes_and_impossible_counts() {
        // Two blocks: count -2 with a size of 2 bytes (items 1, 2), then count 1 (item 3), end.
        let bytes = [0x03, 0x04, 0x02, 0x04, 0x02, 0x06, 0x00];
        let schema = apache_avro::Schema::parse_str(r#"{"type":"array","items":"long"}"#).unwrap();
        let expected = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .and_then(|reader| reader.read_value(&mut &bytes[..]))
            .unwrap();
        let mut items = Vec::new();
        read_blocks(&mut &bytes[..], |r| {
            items.push(Value::Long(read_long(r)?));
            Ok(())
        })
        .unwrap();
        assert_eq!(Value::Array(items), expected);

        let mut huge = Vec::new();
        encode_long(i64::MAX, &mut huge);
        let mut calls = 0;
        let err = read_blocks(&mut &huge[..], |_| {
            calls += 1;
            Ok(())
        })
        .unwrap_err();
        assert_eq!(calls, 0, "{err}");
    }

    /// `n` as apache-avro writes a `long`.
    fn encode_long(n: i64, out: &mut Vec<u8>) {
        let written =
            apache_avro::writer::datum::GenericDatumWriter::builder(&apache_avro::Schema::Long)
                .build()
                .and_then(|writer| writer.write_value_to_vec(Value::Long(n)))
                .unwrap();
        out.extend(written);
    }

    #[test]
    fn durations_round_trip() {
        let d = Duration {
            months: 1,
            days: 2,
            millis: 3,
        };
        assert_eq!(duration(duration_to(&d)).unwrap(), d);
    }
}
