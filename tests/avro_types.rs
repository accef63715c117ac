//! The types `schemas!` generates for every Avro type (fixture schemas in `fixtures/avro`):
//! random values of each schema convert to the generated type and back unchanged, encode and
//! decode with apache-avro under the schema, and data written with an older version of a schema
//! decodes into the newer type through schema resolution.

use std::collections::HashMap;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{NamesRef, ResolvedSchema};
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use kaufmann::avro::{chrono, BigDecimal};
use kaufmann::wire::{decode_body, encode_body, json};
use kaufmann::EventSchema;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

mod fixture {
    kaufmann::schemas!("fixtures/avro");
}

use fixture::{
    ComAcmeFixtureEverything, ComAcmeFixtureTree, ComAcmeFixtureUsesShared,
    ComAcmeFixtureVersioned, Kind, Status,
};

/// Random Avro values of `schema`, shaped as apache-avro decodes them. Past `depth` 3, unions
/// take their `null` branch and arrays and maps are empty, so recursive schemas end.
#[allow(clippy::too_many_lines)]
fn values(schema: &Schema, defs: &NamesRef<'_>, depth: u32) -> BoxedStrategy<Value> {
    let deep = depth > 3;
    match schema {
        Schema::Array(_) if deep => Just(Value::Array(Vec::new())).boxed(),
        Schema::Map(_) if deep => Just(Value::Map(HashMap::new())).boxed(),
        Schema::Null => Just(Value::Null).boxed(),
        Schema::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        Schema::Int => any::<i32>().prop_map(Value::Int).boxed(),
        Schema::Long => any::<i64>().prop_map(Value::Long).boxed(),
        Schema::Float => any::<f32>()
            .prop_filter("NaN is not equal to itself", |x| !x.is_nan())
            .prop_map(Value::Float)
            .boxed(),
        Schema::Double => any::<f64>()
            .prop_filter("NaN is not equal to itself", |x| !x.is_nan())
            .prop_map(Value::Double)
            .boxed(),
        Schema::Bytes => prop::collection::vec(any::<u8>(), 0..12)
            .prop_map(Value::Bytes)
            .boxed(),
        Schema::String => ".{0,10}".prop_map(Value::String).boxed(),
        Schema::Uuid(_) => any::<[u8; 16]>()
            .prop_map(|b| Value::Uuid(uuid::Uuid::from_bytes(b)))
            .boxed(),
        Schema::Date => (-1_000_000..1_000_000).prop_map(Value::Date).boxed(),
        Schema::TimeMillis => (0..86_400_000).prop_map(Value::TimeMillis).boxed(),
        Schema::TimeMicros => (0..86_400_000_000_i64).prop_map(Value::TimeMicros).boxed(),
        Schema::TimestampMillis => (-10_i64.pow(14)..10_i64.pow(14))
            .prop_map(Value::TimestampMillis)
            .boxed(),
        Schema::TimestampMicros => (-10_i64.pow(17)..10_i64.pow(17))
            .prop_map(Value::TimestampMicros)
            .boxed(),
        Schema::TimestampNanos => (-10_i64.pow(18)..10_i64.pow(18))
            .prop_map(Value::TimestampNanos)
            .boxed(),
        Schema::LocalTimestampNanos => (-10_i64.pow(18)..10_i64.pow(18))
            .prop_map(Value::LocalTimestampNanos)
            .boxed(),
        Schema::LocalTimestampMillis => (-10_i64.pow(14)..10_i64.pow(14))
            .prop_map(Value::LocalTimestampMillis)
            .boxed(),
        Schema::LocalTimestampMicros => (-10_i64.pow(17)..10_i64.pow(17))
            .prop_map(Value::LocalTimestampMicros)
            .boxed(),
        Schema::Duration(_) => any::<(u32, u32, u32)>()
            .prop_map(|(m, d, ms)| {
                Value::Duration(apache_avro::Duration::new(
                    apache_avro::Months::new(m),
                    apache_avro::Days::new(d),
                    apache_avro::Millis::new(ms),
                ))
            })
            .boxed(),
        Schema::Decimal(d) => {
            let digits = u32::try_from(d.precision.min(18)).unwrap();
            let max = 10_i64.pow(digits) - 1;
            (-max..=max)
                .prop_map(|unscaled| {
                    let bytes = bigdecimal::num_bigint::BigInt::from(unscaled).to_signed_bytes_be();
                    Value::Decimal(apache_avro::Decimal::from(bytes))
                })
                .boxed()
        }
        Schema::BigDecimal => (any::<i64>(), 0_i64..6)
            .prop_map(|(n, scale)| Value::BigDecimal(BigDecimal::new(n.into(), scale)))
            .boxed(),
        Schema::Array(a) => prop::collection::vec(values(&a.items, defs, depth + 1), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        Schema::Map(m) => {
            prop::collection::hash_map("[a-z]{0,6}", values(&m.types, defs, depth + 1), 0..4)
                .prop_map(Value::Map)
                .boxed()
        }
        Schema::Union(u) => {
            let branches: Vec<(u32, &Schema)> = u
                .variants()
                .iter()
                .enumerate()
                .map(|(i, b)| (u32::try_from(i).unwrap(), b))
                .filter(|(_, b)| !deep || matches!(b, Schema::Null) || !u.is_nullable())
                .collect();
            let options: Vec<BoxedStrategy<Value>> = branches
                .into_iter()
                .map(|(i, b)| {
                    values(b, defs, depth + 1)
                        .prop_map(move |v| Value::Union(i, Box::new(v)))
                        .boxed()
                })
                .collect();
            proptest::strategy::Union::new(options).boxed()
        }
        Schema::Record(r) => {
            let names: Vec<String> = r.fields.iter().map(|f| f.name.clone()).collect();
            let fields: Vec<BoxedStrategy<Value>> = r
                .fields
                .iter()
                .map(|f| values(&f.schema, defs, depth + 1))
                .collect();
            fields
                .prop_map(move |vs| Value::Record(names.iter().cloned().zip(vs).collect()))
                .boxed()
        }
        Schema::Enum(e) => {
            let symbols = e.symbols.clone();
            (0..symbols.len())
                .prop_map(move |i| Value::Enum(u32::try_from(i).unwrap(), symbols[i].clone()))
                .boxed()
        }
        Schema::Fixed(f) => prop::collection::vec(any::<u8>(), f.size)
            .prop_map({
                let size = f.size;
                move |b| Value::Fixed(size, b)
            })
            .boxed(),
        Schema::Ref { name } => values(defs[name], defs, depth + 1),
    }
}

/// For random values of `T`'s schema: Avro value -> `T` -> the same Avro value; encoded with
/// apache-avro and decoded (with and without resolution, and by `T`'s own reader) -> the same
/// `T`.
fn round_trips<T: EventSchema + PartialEq + std::fmt::Debug>() {
    let schema = T::schema();
    let resolved = ResolvedSchema::try_from(schema).unwrap();
    let defs = resolved.get_names();
    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&values(schema, defs, 0), |value| {
            let typed =
                T::from_avro(value.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = typed
                .to_avro()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back, &value);
            let body = encode_body(T::EVENT_NAME, schema, &typed)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let decoded: T =
                decode_body(schema, None, &body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&decoded, &typed);
            let plain = GenericDatumReader::builder(schema)
                .build()
                .and_then(|reader| reader.read_value(&mut &body[..]))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                &T::from_avro(plain).map_err(|e| TestCaseError::fail(e.to_string()))?,
                &typed
            );
            // The generated reader reads the same value straight from the bytes, all of them,
            // and refuses every shorter prefix (never a panic, never a value from half the data).
            let mut rest = &body[..];
            let direct = T::read_avro(&mut rest).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&direct, &typed);
            prop_assert!(rest.is_empty(), "{} bytes left unread", rest.len());
            for end in 0..body.len() {
                prop_assert!(
                    T::read_avro(&mut &body[..end]).is_err(),
                    "a prefix of {end} bytes was read"
                );
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn every_avro_type_round_trips() {
    round_trips::<ComAcmeFixtureEverything>();
}

/// For random values of `T`'s schema: `T` -> the `json` format's JSON text -> `T` again (the
/// mapping of `kaufmann::wire::json`, every Avro type and logical type, non-finite floats
/// included).
fn json_round_trips<T: EventSchema + PartialEq + std::fmt::Debug>() {
    let schema = T::schema();
    let resolved = ResolvedSchema::try_from(schema).unwrap();
    let defs = resolved.get_names();
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let fail = |e: &dyn std::fmt::Display| TestCaseError::fail(e.to_string());
    runner
        .run(&values(schema, defs, 0), |value| {
            let typed = T::from_avro(value).map_err(|e| fail(&e))?;
            let json = json::to_json(schema, &typed.to_avro().map_err(|e| fail(&e))?)
                .map_err(|e| fail(&e))?;
            let text = json.to_string();
            let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(&e))?;
            let read =
                json::read_value(schema, &parsed).map_err(|e| fail(&format!("{e}: {text}")))?;
            let back = T::from_avro(read).map_err(|e| fail(&e))?;
            prop_assert_eq!(&back, &typed, "{}", text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn every_avro_type_round_trips_through_json() {
    json_round_trips::<ComAcmeFixtureEverything>();
    json_round_trips::<ComAcmeFixtureTree>();
    json_round_trips::<ComAcmeFixtureUsesShared>();
    json_round_trips::<ComAcmeFixtureVersioned>();
}

#[test]
fn recursive_records_round_trip() {
    round_trips::<ComAcmeFixtureTree>();
}

#[test]
fn types_from_other_files_round_trip() {
    round_trips::<ComAcmeFixtureUsesShared>();
    // The registered schema is self-contained: the shared types are written out in it.
    let schema: serde_json::Value =
        serde_json::from_str(ComAcmeFixtureUsesShared::SCHEMA_JSON).unwrap();
    assert_eq!(schema["fields"][0]["type"]["name"], "Address");
}

#[test]
fn versioned_round_trips() {
    round_trips::<ComAcmeFixtureVersioned>();
}

const VERSIONED_V1: &str = r#"{
  "type": "record", "name": "Versioned", "namespace": "com.acme.fixture",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "name", "type": "string"},
    {"name": "count", "type": "int"}
  ]
}"#;

#[test]
fn data_written_with_an_older_version_decodes_into_the_newer_type() {
    let v1 = Schema::parse_str(VERSIONED_V1).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(any::<i64>(), ".{0,10}", any::<i32>()),
            |(id, name, count)| {
                let old = Value::Record(vec![
                    ("id".into(), Value::Long(id)),
                    ("name".into(), Value::String(name.clone())),
                    ("count".into(), Value::Int(count)),
                ]);
                let body = GenericDatumWriter::builder(&v1)
                    .build()
                    .and_then(|writer| writer.write_value_to_vec(old))
                    .unwrap();
                let new: ComAcmeFixtureVersioned = decode_body(&v1, Some(1), &body).unwrap();
                prop_assert_eq!(
                    new,
                    ComAcmeFixtureVersioned {
                        id,
                        name,
                        nickname: String::new(),
                        level: 1,
                        kind: Kind::Basic,
                        note: None,
                        scores: Vec::new(),
                        count: i64::from(count),
                    }
                );
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn generated_types_are_plain_rust() {
    use fixture::{Address, ComAcmeFixtureEverythingChoice, Geo};
    let home = Address {
        street: "Main St 1".into(),
        zip: None,
        geo: Geo {
            lat: 52.5,
            lon: 13.4,
        },
    };
    let choice = ComAcmeFixtureEverythingChoice::Address(home.clone());
    assert!(matches!(choice, ComAcmeFixtureEverythingChoice::Address(_)));
    assert_eq!(Status::default(), Status::Active);
    let tree = ComAcmeFixtureTree {
        value: 1,
        left: Some(Box::new(ComAcmeFixtureTree {
            value: 2,
            left: None,
            right: None,
            children: Vec::new(),
            link: None,
            either: None,
        })),
        right: None,
        children: Vec::new(),
        link: None,
        either: None,
    };
    let body = encode_body(
        ComAcmeFixtureTree::EVENT_NAME,
        ComAcmeFixtureTree::schema(),
        &tree,
    )
    .unwrap();
    let back: ComAcmeFixtureTree = decode_body(ComAcmeFixtureTree::schema(), None, &body).unwrap();
    assert_eq!(back, tree);
    let _: chrono::NaiveDate = chrono::NaiveDate::MIN;
}

#[test]
fn a_value_that_does_not_fit_names_the_field() {
    let shared = ComAcmeFixtureUsesShared {
        home: fixture::Address {
            street: String::new(),
            zip: None,
            geo: fixture::Geo { lat: 0.0, lon: 0.0 },
        },
        work: None,
        status: Status::Active,
        position: fixture::Geo { lat: 0.0, lon: 0.0 },
        amount: "0.00001".parse().unwrap(),
    };
    let err = encode_body(
        ComAcmeFixtureUsesShared::EVENT_NAME,
        ComAcmeFixtureUsesShared::schema(),
        &shared,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("field `amount`"), "{err}");
    assert!(err.contains("more than 4 digits after the point"), "{err}");
}

/// A `Tree` nested 100,000 levels deep through `left` (300 KB), and as deep through `children`:
/// every decoder refuses it at the depth limit (64 by default) with an error, no stack overflow;
/// 50 levels through `left` (50 deep) and 31 through `children` (62 deep: the array is a level)
/// read.
#[test]
fn deep_nesting_is_an_error_in_every_decoder() {
    // value 0, left = branch 1 (a Tree) ...; the innermost: value 0, left null, right null,
    // no children, no link, no either.
    let leaf = [0_u8, 0, 0, 0, 0, 0];
    let through_left = |levels: usize| {
        let mut body = Vec::new();
        for _ in 0..levels {
            body.extend_from_slice(&[0, 2]);
        }
        body.extend_from_slice(&leaf);
        for _ in 0..levels {
            body.extend_from_slice(&[0, 0, 0, 0]); // the outer levels' right, children, link, either
        }
        body
    };
    let through_children = |levels: usize| {
        let mut body = Vec::new();
        for _ in 0..levels {
            body.extend_from_slice(&[0, 0, 0, 2]); // value, left, right, one child follows
        }
        body.extend_from_slice(&leaf);
        for _ in 0..levels {
            body.extend_from_slice(&[0, 0, 0]); // end of children, link, either
        }
        body
    };
    let schema = ComAcmeFixtureTree::schema();
    for body in [through_left(100_000), through_children(100_000)] {
        let mut input = &body[..];
        let direct =
            <ComAcmeFixtureTree as kaufmann::AvroValue>::read_avro(&mut input).unwrap_err();
        assert!(
            direct.to_string().contains("nesting deeper than 64"),
            "{direct}"
        );
        let resolved = decode_body::<ComAcmeFixtureTree>(schema, None, &body).unwrap_err();
        assert!(
            resolved.to_string().contains("nesting deeper than 64"),
            "{resolved}"
        );
    }
    for body in [through_left(50), through_children(31)] {
        let mut input = &body[..];
        <ComAcmeFixtureTree as kaufmann::AvroValue>::read_avro(&mut input).unwrap();
        assert!(input.is_empty());
        decode_body::<ComAcmeFixtureTree>(schema, None, &body).unwrap();
    }
}

/// Schema resolution applies a reader field's aliases (apache-avro's own resolution does not):
/// data written with `user` decodes into `userId`, whose schema names `user` as an alias.
#[test]
fn a_writer_field_named_by_an_alias_decodes_into_the_field() {
    let reader = ComAcmeFixtureEverything::schema();
    let writer_json = ComAcmeFixtureEverything::SCHEMA_JSON.replacen(
        r#"{"name": "userId", "type": "string", "aliases": ["user"]}"#,
        r#"{"name": "user", "type": "string"}"#,
        1,
    );
    assert_ne!(
        writer_json,
        ComAcmeFixtureEverything::SCHEMA_JSON,
        "the field was renamed"
    );
    let writer = Schema::parse_str(&writer_json).unwrap();
    let resolved = ResolvedSchema::try_from(reader).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&values(reader, resolved.get_names(), 0), |value| {
            let typed = <ComAcmeFixtureEverything as kaufmann::AvroValue>::from_avro(value.clone())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let Value::Record(mut fields) = value else {
                return Err(TestCaseError::fail("not a record"));
            };
            for (name, _) in &mut fields {
                if name == "userId" {
                    "user".clone_into(name);
                }
            }
            let body = GenericDatumWriter::builder(&writer)
                .build()
                .and_then(|w| w.write_value_to_vec(Value::Record(fields)))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let decoded: ComAcmeFixtureEverything = decode_body(&writer, None, &body)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(decoded, typed);
            Ok(())
        })
        .unwrap();
}

/// Resolution takes time linear in the nesting: a `Tree` 60 levels deep through `left` resolves
/// at once (apache-avro's own resolution doubled its time with each level: 57 ms at 12).
#[test]
fn resolution_is_linear_in_the_nesting() {
    let mut body = Vec::new();
    for _ in 0..60 {
        body.extend_from_slice(&[0, 2]);
    }
    body.extend_from_slice(&[0_u8, 0, 0, 0, 0, 0]);
    for _ in 0..60 {
        body.extend_from_slice(&[0, 0, 0, 0]);
    }
    let mut tree =
        decode_body::<ComAcmeFixtureTree>(ComAcmeFixtureTree::schema(), None, &body).unwrap();
    let mut levels = 0;
    while let Some(left) = tree.left {
        tree = *left;
        levels += 1;
    }
    assert_eq!(levels, 60);
}
