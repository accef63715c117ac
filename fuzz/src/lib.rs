//! What the fuzz targets run, shared with `tests/fuzz_corpus.rs`, which replays the committed
//! corpus and every input a fuzz run found through the same functions in the normal test suite.
//!
//! Each function takes any bytes and must return: a value or an error, never a panic, an abort,
//! a hang or memory out of proportion to the input.

use std::sync::OnceLock;

use apache_avro::Schema;
use kaufmann::avro::AvroValue;
use kaufmann::wire::{confluent, decode_body};
use kaufmann::CallbackTopic;
use kaufmann::{EventSchema, Metadata};

/// The fixture schemas with every Avro type (records, enums, arrays, maps, unions, fixed,
/// decimals, logical types) and recursion.
pub mod fixture {
    kaufmann::schemas!("../tests/fixtures/avro");
}

use fixture::{ComAcmeFixtureEverything, ComAcmeFixtureTree};

/// What a target runs on one input.
pub type Target = fn(&[u8]);

/// Every target: its name (the folder of its corpus) and what it runs.
pub const TARGETS: [(&str, Target); 5] = [
    ("generated_reader", generated_reader),
    ("confluent_framing", confluent_framing),
    ("kaufmann_ex", kaufmann_ex),
    ("metadata_headers", metadata_headers),
    ("json", json),
];

/// The readers `schemas!` generates, without a schema in between.
pub fn generated_reader(data: &[u8]) {
    let _ = ComAcmeFixtureEverything::read_avro(&mut &data[..]);
    let _ = ComAcmeFixtureTree::read_avro(&mut &data[..]);
}

/// The Confluent frame (magic byte, schema id) and the resolving decoder behind it: the body is
/// read with the writer schema the id picks (one of the fixtures) and resolved to the handler's
/// type, as for data from another producer.
pub fn confluent_framing(data: &[u8]) {
    let Ok((id, body)) = confluent::split(data) else {
        return;
    };
    if id % 2 == 0 {
        let _ = decode_body::<ComAcmeFixtureEverything>(
            ComAcmeFixtureEverything::schema(),
            Some(id),
            body,
        );
    } else {
        let _ = decode_body::<ComAcmeFixtureTree>(ComAcmeFixtureTree::schema(), Some(id), body);
    }
}

fn kaufmann_ex_writer() -> &'static Schema {
    static WRITER: OnceLock<Schema> = OnceLock::new();
    WRITER.get_or_init(|| {
        kaufmann::wire::kaufmann_ex::wire_schema(
            ComAcmeFixtureTree::EVENT_NAME,
            ComAcmeFixtureTree::SCHEMA_JSON,
        )
        .expect("the fixture makes a KaufmannEx schema")
    })
}

/// `KaufmannEx`'s wire format: the union `[event_metadata, event]` around a fixture payload.
pub fn kaufmann_ex(data: &[u8]) {
    let _ = kaufmann::wire::kaufmann_ex::decode::<ComAcmeFixtureTree>(kaufmann_ex_writer(), data);
}

/// The `json` wire format: any of its shapes around a fixture payload, mapped by the fixture's
/// schema (every Avro type, recursion).
pub fn json(data: &[u8]) {
    let _ = kaufmann::wire::json::decode::<ComAcmeFixtureEverything>(data);
    let _ = kaufmann::wire::json::decode::<ComAcmeFixtureTree>(data);
}

/// Header pairs from `data`: `[name length][name][value length][value]`, repeated; a value
/// length of 255 means no value.
fn pairs(mut data: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    while let Some((&name_len, rest)) = data.split_first() {
        let Some((name, rest)) = rest.split_at_checked(usize::from(name_len)) else {
            break;
        };
        let Some((&value_len, rest)) = rest.split_first() else {
            break;
        };
        let (value, rest) = if value_len == u8::MAX {
            (None, rest)
        } else {
            let Some((value, rest)) = rest.split_at_checked(usize::from(value_len)) else {
                break;
            };
            (Some(value.to_vec()), rest)
        };
        out.push((String::from_utf8_lossy(name).into_owned(), value));
        data = rest;
    }
    out
}

/// Kaufmann's metadata headers (any names and values), and any callback topic header text.
pub fn metadata_headers(data: &[u8]) {
    let pairs = pairs(data);
    let meta = Metadata::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_deref())));
    let _ = meta.to_headers();
    let _ = CallbackTopic::from_header(&String::from_utf8_lossy(data));
}
