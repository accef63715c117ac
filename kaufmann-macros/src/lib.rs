//! Procedural macros of Kaufmann. An implementation detail: depend on `kaufmann`, which re-exports
//! them.

mod given_event;
mod naming;
mod schemas;

use proc_macro::TokenStream;

/// Generates one typed Rust item per Avro named type of every `.avsc` file in a folder (relative to
/// the crate's `Cargo.toml`), and a `kaufmann::EventSchema` impl per file (event = file name);
/// checks the folder against its `schemas.lock` when it has one.
#[proc_macro]
pub fn schemas(input: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(input as schemas::SchemasArgs);
    schemas::expand(&args).into()
}

/// Registers an `async fn(Event<T>, Context) -> kaufmann::Result<()>` as the handler of an event.
#[proc_macro_attribute]
pub fn given_event(args: TokenStream, item: TokenStream) -> TokenStream {
    given_event::expand(&args.into(), item.into(), false).into()
}

/// Registers an `async fn(Vec<Event<T>>, ..) -> kaufmann::Result<()>` as the batch handler of an
/// event: it gets up to `batch_max` events of one partition at a time, in order.
#[proc_macro_attribute]
pub fn given_events(args: TokenStream, item: TokenStream) -> TokenStream {
    given_event::expand(&args.into(), item.into(), true).into()
}
