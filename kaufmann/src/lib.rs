//! Kaufmann: Kafka-backed microservices with Avro messages and a Confluent-compatible schema
//! registry, in a few lines of Rust.
//!
//! A service is its schemas, its handlers and one line to run them. This example starts a service
//! on the embedded broker (librdkafka's in-process mock cluster), publishes one command and waits
//! until its handler has answered it:
//!
//! ```
//! use kaufmann::{Context, Event};
//!
//! kaufmann::schemas!("../schemas"); // typed structs from ../schemas/*.avsc
//!
//! #[kaufmann::given_event("command.user.create")]
//! async fn create_user(event: Event<CommandUserCreate>, ctx: Context) -> kaufmann::Result<()> {
//!     let command = event.payload;
//!     ctx.publish(EventUserCreated { id: command.id, name: command.name, email: command.email })
//!         .await
//! }
//!
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> kaufmann::Result<()> {
//! let mut config = kaufmann::Config::new("users");
//! config.group_id = format!("doc-{}", std::process::id());
//! let service = kaufmann::Service::start(config).await?;
//! let command = CommandUserCreate { id: "u1".into(), name: "Ada".into(), email: "ada@example.org".into() };
//! service.publisher().publish(command).await?;
//! while service.stats().handled() < 1 {
//!     tokio::time::sleep(std::time::Duration::from_millis(50)).await;
//! }
//! service.shutdown().await
//! # }
//! ```
//!
//! A binary needs no `main` of its own: `kaufmann::run!();` reads the configuration from
//! `KAUFMANN_*` environment variables, runs every handler of the binary and stops cleanly on
//! Ctrl-C or SIGTERM.

//! The runtime's folders follow the path of a message: [`consume`](crate) (Kafka -> work),
//! `process` (one message: decode, dispatch, attempts, last resort), `publish` (typed value ->
//! Kafka), with `codec` (bytes <-> values), `registry`, `observe` (metrics, health) and `config`
//! beside them, and `service` wiring them together. Only what a service author touches is public.

pub mod asyncapi;
mod codec;
pub mod config;
mod consume;
mod envelope;
pub mod error;
mod fast_map;
mod future;
mod observe;
mod process;
mod publish;
pub mod registry;
mod secrets;
mod service;
#[cfg(feature = "testing")]
pub mod testing;

pub use codec::avro;
pub use codec::avro::AvroValue;
pub use codec::schema::EventSchema;
pub use config::{
    Config, ErrorPolicy, EventRoute, GroupProtocol, LogFormat, Ordering, Processing,
    PublishConfirm, RetryPolicy, Unhandled, WireFormat,
};
pub use consume::embedded::EmbeddedBroker;
pub use envelope::{CallbackTopic, Event, Metadata, Origin};
pub use error::{Error, Result};
pub use observe::health::Health;
pub use observe::stats::Stats;
pub use process::state::{State, States};
pub use publish::context::Context;
pub use publish::publisher::{PublishOptions, Publisher};
pub use publish::trace::TraceParent;
pub use service::{RunningService, Service, ServiceBuilder};

/// What Kaufmann writes on the wire, for services and tools that read it without Kaufmann: the
/// Confluent framing and the Avro body, the `kaufmann_ex` and `json` layouts, the headers of a dead-lettered
/// record and of one sent to a retry topic, and the payload of an error event.
pub mod wire {
    pub use crate::codec::error_event::{
        name as error_event_name, KAUFMANN_EX_SCHEMA as KAUFMANN_EX_ERROR_SCHEMA,
        SCHEMA as ERROR_EVENT_SCHEMA,
    };
    pub use crate::codec::json;
    pub use crate::codec::kaufmann_ex;
    pub use crate::codec::schema::wire as confluent;
    pub use crate::codec::schema::{decode_body, encode_body};
    pub use crate::envelope::header;
    pub use crate::process::dead_letter;
    pub use crate::process::retry_topic;
}

#[cfg(feature = "macros")]
pub use kaufmann_macros::{given_event, given_events, schemas};

/// Logs human-readable lines to standard output, filtered by `RUST_LOG` (default `info`). A
/// service with its own `main` calls it (or [`init_logging_as`]) first. Calling it again does
/// nothing.
pub fn init_logging() {
    init_logging_as(LogFormat::Text);
}

/// Logs in `format` to standard output, filtered by `RUST_LOG` (default `info`). `run!()` calls
/// it with the configured `log_format`.
///
/// With the `otel` feature, and `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, the spans are also exported over OTLP (HTTP,
/// protobuf), configured by the standard `OTEL_*` variables; the service name is
/// `OTEL_SERVICE_NAME`, else `KAUFMANN_SERVICE_NAME`. [`exit_code`] exports what is left.
pub fn init_logging_as(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer();
    let fmt = if format == LogFormat::Json {
        fmt.json().boxed()
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        fmt.with_ansi(ansi).boxed()
    };
    #[cfg(feature = "otel")]
    let export = observe::otel::layer();
    #[cfg(not(feature = "otel"))]
    let export: Option<tracing_subscriber::layer::Identity> = None;
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(export)
        .try_init();
}

/// The exit code for a service's result: success, or the error printed to standard error (and
/// logged) and failure. For a service with its own `main`; `run!()` uses it.
pub fn exit_code(result: Result<()>) -> std::process::ExitCode {
    #[cfg(feature = "otel")]
    observe::otel::shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Expands to a `main` that runs this binary's handlers as a service until Ctrl-C or SIGTERM.
///
/// ```no_run
/// kaufmann::run!();
/// ```
///
/// Started with `--asyncapi`, the binary prints its AsyncAPI document instead
/// ([`asyncapi::document`]) and exits without connecting.
///
/// Handlers that take application state (`State<T>`) get it from `state = <expression>` entries,
/// one per value, each evaluated once at start-up, after the configuration is read and logging is
/// on. An expression may `.await` and use `?` on any error, which stops the service before it
/// connects, naming the expression:
///
/// ```no_run
/// # struct Db; impl Db { async fn connect(_: &str) -> std::io::Result<Db> { Ok(Db) } }
/// # #[derive(Default)] struct Cache;
/// kaufmann::run!(
///     state = Db::connect(&std::env::var("DATABASE_URL")?).await?,
///     state = Cache::default(),
/// );
/// ```
#[macro_export]
macro_rules! run {
    () => {
        $crate::__global_allocator!();
        fn main() -> ::std::process::ExitCode {
            $crate::__private::run_main(::core::env!("CARGO_PKG_VERSION"), || async {
                ::core::result::Result::Ok($crate::States::new())
            })
        }
    };
    ($(state = $state:expr),+ $(,)?) => {
        $crate::__global_allocator!();
        fn main() -> ::std::process::ExitCode {
            $crate::__private::run_main(::core::env!("CARGO_PKG_VERSION"), || async {
                let mut states = $crate::States::new();
                $(
                    states.insert($crate::__private::made_state(
                        ::core::stringify!($state),
                        async {
                            ::core::result::Result::<_, $crate::__private::StateError>::Ok($state)
                        }
                        .await,
                    )?);
                )+
                ::core::result::Result::Ok(states)
            })
        }
    };
    ($($anything:tt)+) => {
        ::core::compile_error!(
            "`run!` takes only `state = <expression>` entries (values the handlers take as \
             `State<T>`): configure the service with KAUFMANN_* environment variables"
        );
        fn main() {}
    };
}

/// Not public API: the global allocator `run!()` installs, mimalloc (feature `mimalloc`, on by
/// default). The service's threads free what others allocated (a delivery's copy of its record is
/// made on librdkafka's thread and dropped on the runtime's), which glibc's allocator serves with
/// a lock per arena: with it, malloc, free and their lock waits took a third of a consume ->
/// publish service's CPU samples.
#[cfg(feature = "mimalloc")]
#[doc(hidden)]
#[macro_export]
macro_rules! __global_allocator {
    () => {
        #[global_allocator]
        static KAUFMANN_GLOBAL_ALLOCATOR: $crate::__private::MiMalloc = $crate::__private::MiMalloc;
    };
}

/// Not public API: without the `mimalloc` feature, `run!()` leaves the allocator alone.
#[cfg(not(feature = "mimalloc"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __global_allocator {
    () => {};
}

/// Not public API: paths used by the code the macros generate.
#[doc(hidden)]
pub mod __private {
    pub use crate::asyncapi::KnownEvent;
    pub use crate::codec::conv;
    pub use crate::codec::schema::{canonical_once, parse_validated};
    pub use crate::future::BoxFuture;
    pub use crate::process::checks::{unknown_event, wrong_payload};
    pub use crate::process::handler::{batch_entry, BatchRun, HandlerRegistration, Incoming};
    pub use apache_avro;
    pub use inventory;
    #[cfg(feature = "mimalloc")]
    pub use mimalloc::MiMalloc;
    pub use std::sync::OnceLock;

    pub use crate::process::state::{HandlerArgument, StateNeed};

    /// What a `state = ..` expression of `run!` may fail with (any error, through `?`).
    pub type StateError = Box<dyn std::error::Error + Send + Sync>;

    /// A `state = ..` value of `run!`, or the start-up error naming its expression.
    pub fn made_state<T>(expression: &str, made: Result<T, StateError>) -> crate::Result<T> {
        made.map_err(|err| {
            crate::Error::Startup(format!("the state `{expression}` could not be made: {err}"))
        })
    }

    /// What a handler returns: `kaufmann::Result<()>`.
    #[diagnostic::on_unimplemented(
        message = "handlers return `kaufmann::Result<()>`, not `{Self}`",
        label = "change this to `kaufmann::Result<()>`"
    )]
    pub trait HandlerReturn {
        /// The handler's result.
        fn into_result(self) -> crate::Result<()>;
    }

    impl HandlerReturn for crate::Result<()> {
        fn into_result(self) -> crate::Result<()> {
            self
        }
    }

    /// The body of the `main` that `run!()` expands to: `states` makes the application state
    /// once the configuration is read and logging is on. Started with `--asyncapi`, it prints
    /// the service's AsyncAPI document (`version`: the binary crate's) and exits instead.
    pub fn run_main<F, Fut>(version: &str, states: F) -> std::process::ExitCode
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = crate::Result<crate::States>>,
    {
        let config = match crate::Config::from_env() {
            Ok(config) => config,
            Err(err) => {
                eprintln!("error: {err}");
                return std::process::ExitCode::FAILURE;
            }
        };
        if let Some(printed) = crate::asyncapi::print_if_asked(&config, version) {
            return crate::exit_code(printed);
        }
        crate::init_logging_as(config.log_format);
        // The revoke callback waits for in-flight work on the polling thread: keep at least one
        // other worker thread for the handlers.
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                eprintln!("error: cannot start the tokio runtime: {err}");
                return std::process::ExitCode::FAILURE;
            }
        };
        crate::exit_code(runtime.block_on(async {
            crate::Service::builder(config)
                .states(states().await?)
                .start()
                .await?
                .run_until_signal()
                .await
        }))
    }
}
