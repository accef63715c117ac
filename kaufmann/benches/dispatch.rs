//! The per-message path without Kafka: a consumed record's bytes through the wire header, the
//! envelope checks, the decode, the dispatch to a no-op handler and the metrics (the test bus
//! drives the service's own processor), and the same with the event encoded first.
//!
//! `cargo bench -p kaufmann --bench dispatch --features testing` measures time with criterion.
//! `dispatch --instructions <case> <n>` runs one case `n` times and nothing else, for
//! `valgrind --tool=callgrind`, whose instruction counts repeat from run to run where times on a
//! shared machine do not: `bash scripts/bench-instructions` prints them per message. With
//! `DISPATCH_LOGGING` set, that run logs as `run!()` does by default (`init_logging`, `info`).

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::Criterion;
use kaufmann::registry::SchemaRegistry;
use kaufmann::testing::TestBus;
use kaufmann::wire::{confluent, encode_body};
use kaufmann::{Event, EventSchema};

kaufmann::schemas!("../schemas");

/// The handler every case runs: it does nothing (handlers are async by contract).
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

/// One case of the benchmark: a name and one message through it.
struct Case {
    name: &'static str,
    label: &'static str,
}

const CASES: [Case; 2] = [
    Case {
        name: "consumed",
        label: "dispatch: a consumed record (Confluent-framed bytes) through decode, checks, a no-op handler and metrics",
    },
    Case {
        name: "given",
        label: "dispatch: a typed event encoded and enveloped first, then as above (TestBus::given_event)",
    },
];

/// The bus, its runtime and the framed record every `consumed` run gives it.
struct Setup {
    runtime: tokio::runtime::Runtime,
    bus: TestBus,
    framed: Vec<u8>,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let bus = TestBus::new();
    let schema = CommandUserCreate::schema();
    let id = runtime
        .block_on(bus.registry().register("command.user.create-value", schema))
        .expect("register the schema");
    let body = encode_body(CommandUserCreate::EVENT_NAME, schema, &command()).expect("encode");
    let framed = confluent::frame(id, &body);
    Setup {
        runtime,
        bus,
        framed,
    }
}

/// One message through `case`.
fn once(setup: &Setup, case: &str) {
    let Setup {
        runtime,
        bus,
        framed,
    } = setup;
    match case {
        "consumed" => {
            runtime.block_on(bus.given_raw(CommandUserCreate::EVENT_NAME, framed.clone()));
        }
        _ => {
            black_box(runtime.block_on(bus.given_event(command())));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, case, n] = args.as_slice() {
        if flag == "--instructions" {
            let n: u64 = n.parse().expect("a count");
            if std::env::var_os("DISPATCH_LOGGING").is_some() {
                kaufmann::init_logging();
            }
            let setup = setup();
            assert!(CASES.iter().any(|c| c.name == case), "unknown case {case}");
            for _ in 0..n {
                once(&setup, case);
            }
            assert_eq!(
                (setup.bus.stats().handled(), setup.bus.stats().failed()),
                (n, 0)
            );
            return;
        }
    }
    let setup = setup();
    let mut criterion = Criterion::default().configure_from_args();
    for case in &CASES {
        criterion.bench_function(case.label, |b| b.iter(|| once(&setup, case.name)));
    }
    criterion.final_summary();
}
