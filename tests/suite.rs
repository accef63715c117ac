//! The workspace's integration tests as one binary (librdkafka and the rest are linked once, not
//! once per file): one module per concern, each saying what it shows. `cargo test -p
//! kaufmann-tests --test suite -- <module>::` runs one of them.

mod asyncapi;
mod avro_types;
mod contract;
mod end_to_end;
mod engine;
mod exactly_once;
mod fuzz_corpus;
mod handlers;
mod interop;
mod observability;
mod process;
mod publish_confirm;
mod registry;
mod sample;
mod sample_broker;
mod sample_bus;
mod structure;
mod telemetry;
mod test_bus;
mod ui;
mod wire_formats;
