//! Micro-benchmarks of the codec: wire header + Avro decode of a typical event, encode, and a
//! registry lookup that hits. `cargo bench -p kaufmann --bench codec --features testing`; the
//! whole per-message path is the `dispatch` benchmark.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kaufmann::registry::{MemoryRegistry, SchemaRegistry};
use kaufmann::wire::{confluent, decode_body, encode_body};
use kaufmann::EventSchema;

kaufmann::schemas!("../schemas");

fn command() -> CommandUserCreate {
    CommandUserCreate {
        id: "0f8fad5b-d9cb-469f-a165-70867728950e".to_owned(),
        name: "Ada Lovelace".to_owned(),
        email: "ada.lovelace@example.org".to_owned(),
    }
}

fn benches(c: &mut Criterion) {
    let schema = CommandUserCreate::schema();
    let body = encode_body(CommandUserCreate::EVENT_NAME, schema, &command()).unwrap();
    let framed = confluent::frame(7, &body);

    c.bench_function("decode: wire header + avro into the typed struct", |b| {
        b.iter(|| {
            let (id, body) = confluent::split(black_box(&framed)).unwrap();
            let value: CommandUserCreate = decode_body(schema, Some(id), body).unwrap();
            black_box(value)
        });
    });
    c.bench_function(
        "decode without schema resolution (writer schema only)",
        |b| {
            let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema)
                .build()
                .unwrap();
            b.iter(|| {
                let (_, mut body) = confluent::split(black_box(&framed)).unwrap();
                let value = reader.read_value(&mut body).unwrap();
                black_box(<CommandUserCreate as kaufmann::AvroValue>::from_avro(value).unwrap())
            });
        },
    );
    c.bench_function(
        "decode by the generated reader (writer schema = the type's, no Value)",
        |b| {
            b.iter(|| {
                let (_, mut body) = confluent::split(black_box(&framed)).unwrap();
                black_box(<CommandUserCreate as kaufmann::AvroValue>::read_avro(&mut body).unwrap())
            });
        },
    );
    c.bench_function("encode: typed struct -> avro + wire header", |b| {
        let value = command();
        b.iter(|| {
            let body =
                encode_body(CommandUserCreate::EVENT_NAME, schema, black_box(&value)).unwrap();
            black_box(confluent::frame(7, &body))
        });
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = MemoryRegistry::new("mock://bench");
    let id = runtime
        .block_on(registry.register("command.user.create-value", schema))
        .unwrap();
    c.bench_function("registry: schema by id (in-memory hit)", |b| {
        b.iter(|| {
            black_box(
                runtime
                    .block_on(registry.schema_by_id(black_box(id)))
                    .unwrap(),
            )
        });
    });
}

criterion_group!(codec, benches);
criterion_main!(codec);
