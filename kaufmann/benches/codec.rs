//! Micro-benchmarks of the per-message work: wire header + Avro decode of a typical event, encode,
//! a registry lookup that hits, and one event through the whole per-message path without Kafka
//! (the test bus: encode and envelope, metadata, decode, dispatch to a no-op handler, metrics).
//! `cargo bench -p kaufmann --bench codec`.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kaufmann::registry::{MemoryRegistry, SchemaRegistry};
use kaufmann::testing::TestBus;
use kaufmann::wire::{confluent, decode_body, encode_body};
use kaufmann::{Event, EventSchema};

kaufmann::schemas!("../schemas");

/// The handler the dispatch benchmark runs: it does nothing (handlers are async by contract).
#[allow(clippy::unused_async)]
#[kaufmann::given_event("command.user.create")]
async fn noop(event: Event<CommandUserCreate>) -> kaufmann::Result<()> {
    black_box(event);
    Ok(())
}

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
    c.bench_function(
        "dispatch: one event through the test bus (encode, envelope, decode, no-op handler)",
        |b| {
            let bus = TestBus::new();
            b.iter(|| black_box(runtime.block_on(bus.given_event(command()))));
        },
    );
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
