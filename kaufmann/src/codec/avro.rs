//! Typed Avro values: the trait every type `schemas!` generates implements, and the Rust types
//! Avro's logical types map to.
//!
//! | Avro | Rust |
//! |---|---|
//! | `null`, `boolean`, `int`, `long`, `float`, `double` | `()`, `bool`, `i32`, `i64`, `f32`, `f64` |
//! | `bytes`, `string` | `Vec<u8>`, `String` |
//! | `record`, `enum`, `fixed` | a generated `struct`, `enum`, `struct Name(pub [u8; N])` |
//! | `array`, `map` | `Vec<T>`, `HashMap<String, T>` |
//! | `["null", T]` (either order) | `Option<T>` |
//! | any other union | a generated `enum` with one variant per branch (wrapped in `Option` when `null` is a branch) |
//! | a record that contains itself | `Box<T>` at the point of recursion |
//! | `uuid` | [`Uuid`] |
//! | `date` | [`chrono::NaiveDate`] |
//! | `time-millis`, `time-micros` | [`chrono::NaiveTime`] |
//! | `timestamp-millis`, `-micros`, `-nanos` | [`chrono::DateTime<Utc>`](chrono::DateTime) |
//! | `local-timestamp-millis`, `-micros`, `-nanos` | [`chrono::NaiveDateTime`] |
//! | `decimal` (on `bytes` or `fixed`), `big-decimal` | [`BigDecimal`] |
//! | `duration` | [`Duration`] (months, days, milliseconds) |
//!
//! Times and timestamps are truncated to the schema's unit when written (a `timestamp-millis`
//! field drops sub-millisecond digits). A decimal that does not fit its schema's scale or precision
//! is an error, never rounded.

pub use apache_avro::types::Value;
pub use bigdecimal::BigDecimal;
pub use chrono;
pub use uuid::Uuid;

/// A Rust value with a fixed Avro shape: converts to and from an Avro [`Value`] of its schema.
///
/// `schemas!` implements it for every type it generates; the codec uses it to encode and decode.
pub trait AvroValue: Sized {
    /// The Avro value of `self`, shaped for the type's schema.
    ///
    /// # Errors
    /// When the value cannot be written under the schema (a decimal with more digits than its
    /// precision, a date outside Avro's range).
    fn to_avro(&self) -> Result<Value, AvroError>;

    /// The Rust value of an Avro value decoded (and resolved) with the type's schema.
    ///
    /// # Errors
    /// When the value does not have the schema's shape.
    fn from_avro(value: Value) -> Result<Self, AvroError>;

    /// Whether [`AvroValue::read_avro`] reads this type (it does for every type `schemas!`
    /// generates).
    const READS_AVRO: bool = false;

    /// Reads a value straight from the Avro binary encoding of the type's own schema, advancing
    /// `input` past it: no schema resolution and no [`Value`] in between. The consumer reads a
    /// message this way when its writer schema has the parsing canonical form of the handler's.
    ///
    /// # Errors
    /// When the data ends early or does not encode a value of the schema (a string that is not
    /// UTF-8, a union branch or enum symbol the schema does not have), or when the type has no
    /// reader of its own ([`AvroValue::READS_AVRO`] is false).
    fn read_avro(input: &mut &[u8]) -> Result<Self, AvroError> {
        let _ = input;
        Err(AvroError::new("this type has no direct Avro reader"))
    }
}

impl<T: AvroValue> AvroValue for Box<T> {
    fn to_avro(&self) -> Result<Value, AvroError> {
        T::to_avro(self)
    }

    fn from_avro(value: Value) -> Result<Self, AvroError> {
        T::from_avro(value).map(Box::new)
    }

    const READS_AVRO: bool = T::READS_AVRO;

    fn read_avro(input: &mut &[u8]) -> Result<Self, AvroError> {
        // Every recursion of a generated type goes through a `Box`, an array or a map: each is
        // one level of the depth limit (`max_nesting_depth`).
        let _level = crate::codec::depth::Nesting::enter()?;
        T::read_avro(input).map(Box::new)
    }
}

/// Avro's `duration`: months, days and milliseconds, each an unsigned 32-bit count (the three are
/// independent: a month is not a number of days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Duration {
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Milliseconds.
    pub millis: u32,
}

pub use crate::error::AvroError;
