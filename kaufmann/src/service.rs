//! The service: consumer group -> bounded worker pool -> handlers -> publisher, with offsets
//! committed only for finished messages.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, GroupProtocol, Processing};
use crate::consume::context::{EngineConsumer, EngineContext, Shared};
use crate::consume::embedded::EmbeddedBroker;
use crate::consume::engine::Engine;
use crate::consume::transactions::Transactions;
use crate::error::{Error, Result};
use crate::observe::client_logs::{KafkaProducer, ProducerLogging};
use crate::observe::metrics::Metrics;
use crate::observe::stats::Stats;
use crate::process::handler::HandlerTable;
use crate::process::state::States;
use crate::publish::publisher::Publisher;

/// How long startup waits for the broker to answer a metadata request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much librdkafka prefetches for the consumer, in kB, all partitions together (its
/// `queued.max.messages.kbytes`; a `[librdkafka]` entry overrides it). 4 MB is about 20,000
/// events of 200 bytes, more than a fetch round trip's worth at the rates measured.
const PREFETCH_KBYTES: &str = "4096";

/// With the `mimalloc` feature on Linux (glibc), mimalloc is the process's `malloc`, librdkafka's
/// included. Its memory came back in 2 MiB transparent huge pages (it asks for them), which stay
/// resident while any part of them is in use: librdkafka's fetch buffers, freed on another
/// thread, kept a service at 99 MiB peak RSS where glibc's `malloc` needed 29 MiB (the
/// hostile-input test). With huge pages off for the process it peaks at 47 to 51 MiB, at the same
/// CPU per message. An operator's `MIMALLOC_ALLOW_THP` (read by mimalloc itself) is left to
/// decide.
#[cfg(all(feature = "mimalloc", target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory_unresident() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    if let Err(err) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!("transparent huge pages stay on: {err}");
    }
}

/// Only mimalloc as the process's `malloc` (Linux, glibc) asks for huge pages.
#[cfg(not(all(feature = "mimalloc", target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory_unresident() {}

/// Entry point: start a service from a [`Config`].
#[derive(Debug)]
pub struct Service;

impl Service {
    /// Connects to the brokers (or starts the embedded mock cluster), joins the consumer group and
    /// starts handling messages with every handler registered in this binary. For handlers that
    /// take application state, use [`Service::builder`].
    pub async fn start(config: Config) -> Result<RunningService> {
        Self::builder(config).start().await
    }

    /// A service to be given its application state before it starts:
    ///
    /// ```no_run
    /// # async fn run(pool: std::sync::Arc<()>) -> kaufmann::Result<()> {
    /// let config = kaufmann::Config::from_env()?;
    /// let service = kaufmann::Service::builder(config).state(pool).start().await?;
    /// service.run_until_signal().await
    /// # }
    /// ```
    pub fn builder(config: Config) -> ServiceBuilder {
        ServiceBuilder {
            config,
            states: States::new(),
        }
    }
}

/// A service being put together: its configuration and the values its handlers take as
/// [`State<T>`](crate::State).
#[derive(Debug)]
pub struct ServiceBuilder {
    config: Config,
    states: States,
}

impl ServiceBuilder {
    /// Gives the handlers `value`, which they take as `State<T>`: one value per type (a second
    /// of one type is refused at start).
    #[must_use]
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    /// Gives the handlers every value of `states`.
    #[must_use]
    pub fn states(mut self, states: States) -> Self {
        self.states.extend(states);
        self
    }

    /// Starts the service (see [`Service::start`]). A handler that takes a `State<T>` this
    /// builder was not given stops it here, before it connects, with the handler's source
    /// location and the type. With the `mimalloc` feature on Linux (glibc), where mimalloc is the
    /// process's `malloc`, it first turns transparent huge pages off for the process (unless
    /// `MIMALLOC_ALLOW_THP` is set): see the README's "A first handler".
    pub async fn start(self) -> Result<RunningService> {
        let Self { mut config, states } = self;
        keep_freed_memory_unresident();
        let handlers = HandlerTable::collect()?;
        handlers.check_states(&states)?;
        let demands = demand_shares(config.demand, config.consumers)?;
        let dead_letter_topics = dead_letter_topics(&config);
        let retry_topics = config.retry_topics();
        // Every topic the service reads or writes, for the embedded broker to create.
        let mut all = config.topics.clone();
        all.push(config.default_topic.clone());
        all.extend(dead_letter_topics.iter().chain(&retry_topics).cloned());
        let embedded = start_embedded(&mut config, all)?;
        let brokers = config.brokers.clone().unwrap_or_default();
        log_startup(&config, &handlers);

        let registry = config.open_registry()?;
        // Idempotent by default (no duplicates or reordering from producer retries); a
        // `[librdkafka]` entry overrides it.
        let mut producer_config = ClientConfig::new();
        producer_config.set("enable.idempotence", "true");
        shared_settings(&mut producer_config, &config, &brokers);
        let producer: KafkaProducer = producer_config
            .set("message.timeout.ms", "30000")
            .create_with_context(ProducerLogging)
            .map_err(|e| Error::kafka("creating the producer", e))?;
        let metrics = Arc::new(Metrics::default());
        #[cfg(feature = "otel")]
        crate::observe::otel::export_metrics(&metrics);
        let stats = Stats::new(metrics.clone());
        let mut consumers = Vec::with_capacity(demands.len());
        for consumer in 0..demands.len() {
            let id = config.transactional_id(consumer);
            let transactional = transactional_producer(&config, &brokers, &id)?;
            let transactions = transactional
                .clone()
                .map(|producer| Transactions::new(producer, id, &config, metrics.clone()));
            let shared = Shared::new(
                metrics.clone(),
                consumer,
                config.shutdown_timeout,
                transactions,
            );
            let client = group_consumer(&config, &brokers, shared.clone())?;
            consumers.push((client, shared, transactional));
        }
        let mut required = config.topics.clone();
        required.extend(dead_letter_topics);
        required.extend(retry_topics.iter().cloned());
        if let Some((first, shared, _)) = consumers.first() {
            check_topics(first, shared, &brokers, &required).await?;
        }
        metrics.health.broker.set_up();
        for (client, ..) in &consumers {
            subscribe(client, &config.topics, &retry_topics)?;
        }
        if config.wire_format.codec().registers() {
            registry.ping().await?;
        }
        metrics.health.registry.set_up();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let metrics_addr = match &config.metrics_addr {
            Some(addr) => Some(serve_metrics(addr, &metrics, shutdown_rx.clone()).await?),
            None => None,
        };
        let publisher = Publisher::new(producer, registry.clone(), metrics.clone(), &config);
        let engines = consumers
            .into_iter()
            .zip(demands)
            .map(|((client, shared, transactional), demand)| {
                let handlers_publisher = match transactional {
                    Some(producer) => {
                        Publisher::new(producer, registry.clone(), metrics.clone(), &config)
                    }
                    None => publisher.clone(),
                };
                let mut config = config.clone();
                config.demand = demand;
                Engine::new(
                    client,
                    shared,
                    handlers.clone(),
                    registry.clone(),
                    handlers_publisher,
                    config,
                    states.clone(),
                )
            })
            .collect();
        let task = tokio::spawn(run_engines(engines, shutdown_rx, metrics));
        Ok(RunningService {
            publisher,
            stats,
            metrics_addr,
            shutdown: shutdown_tx,
            task,
            embedded,
        })
    }
}

/// The share of `demand` of each of `consumers` consumers (they differ by one at most); an
/// error when there are none, or more than slots.
fn demand_shares(demand: usize, consumers: usize) -> Result<Vec<usize>> {
    if consumers == 0 || consumers > demand {
        return Err(Error::Startup(format!(
            "`consumers` is {consumers} with `demand` {demand}: each consumer needs at least one \
             of the pool's slots; set `consumers` from 1 to `demand`"
        )));
    }
    Ok((0..consumers)
        .map(|consumer| demand / consumers + usize::from(consumer < demand % consumers))
        .collect())
}

/// Runs the consumers' engines until shutdown. The first to stop (shutdown, a fenced producer,
/// an error at start) stops the others; the service ends with the first error.
async fn run_engines(
    engines: Vec<Engine>,
    mut shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> Result<()> {
    let (stop, stopped) = watch::channel(false);
    let mut running = tokio::task::JoinSet::new();
    for engine in engines {
        running.spawn(engine.run(stopped.clone()));
    }
    let mut ended = Ok(());
    let mut asked = false;
    loop {
        tokio::select! {
            // A dropped `RunningService` (an error here) stops the service too.
            _ = shutdown.changed(), if !asked => {
                asked = true;
                let _ = stop.send(true);
            }
            joined = running.join_next() => {
                let Some(joined) = joined else { break };
                let _ = stop.send(true);
                let result = joined
                    .map_err(|e| Error::Startup(format!("a consumer's task failed: {e}")))
                    .and_then(|result| result);
                if let (Err(err), Ok(())) = (result, &ended) {
                    ended = Err(err);
                }
            }
        }
    }
    let stats = Stats::new(metrics);
    tracing::info!(
        handled = stats.handled(),
        failed = stats.failed(),
        dead_lettered = stats.dead_lettered(),
        "service stopped"
    );
    ended
}

/// The consumer of the group with the service's settings; its client context holds `shared`.
/// With `group.instance.id` in `[librdkafka]` (static membership), each consumer but the first
/// adds `-<consumer>` to it (a member's id is unique in its group).
fn group_consumer(
    config: &Config,
    brokers: &str,
    shared: Arc<Shared>,
) -> Result<Arc<EngineConsumer>> {
    // librdkafka prefetches while its consumer queue holds fewer than `queued.min.messages`
    // messages and fewer than `queued.max.messages.kbytes` (64 MB by default). A group
    // consumer forwards every assigned partition to that one queue, so both bounds count all
    // partitions together. The byte bound keeps memory independent of the backlog:
    // PREFETCH_KBYTES, plus what one fetch brings past it. A count bound near the pool's size
    // starved the poll loop instead (1,000 messages: the queue ran dry within a fetch round
    // trip, ~170k msg/s in the broker benchmark against ~250-350k without it). Past a bound
    // librdkafka waits `fetch.queue.backoff.ms` (1 s by default) before it looks again,
    // which would stall every resume after a pause.
    let mut consumer_config = ClientConfig::new();
    match config.group_protocol {
        // A rebalance revokes only the partitions that move; the others keep running.
        GroupProtocol::Classic => {
            consumer_config.set("partition.assignment.strategy", "cooperative-sticky");
        }
        GroupProtocol::Consumer => {
            consumer_config.set("group.protocol", "consumer");
        }
    }
    consumer_config.set("queued.max.messages.kbytes", PREFETCH_KBYTES);
    consumer_config.set("fetch.queue.backoff.ms", "10");
    // Records of aborted transactions are never handed out (librdkafka's default, said
    // here: exactly-once processing depends on it).
    consumer_config.set("isolation.level", "read_committed");
    if config.metrics_addr.is_some() {
        // The consumer lag gauge comes from librdkafka's statistics.
        consumer_config.set("statistics.interval.ms", "5000");
    }
    shared_settings(&mut consumer_config, config, brokers);
    if let (Some(id), consumer @ 1..) =
        (config.librdkafka.get("group.instance.id"), shared.consumer)
    {
        consumer_config.set("group.instance.id", format!("{id}-{consumer}"));
    }
    let consumer: EngineConsumer = consumer_config
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create_with_context(EngineContext { shared })
        .map_err(|e| Error::kafka("creating the consumer", e))?;
    Ok(Arc::new(consumer))
}

/// Under `exactly_once`, the producer a consumer's handlers publish through, with the
/// consumer's transactional `id` (the service's publisher, for events from outside handlers,
/// stays outside transactions).
fn transactional_producer(
    config: &Config,
    brokers: &str,
    id: &str,
) -> Result<Option<KafkaProducer>> {
    if config.processing != Processing::ExactlyOnce {
        return Ok(None);
    }
    let mut client = ClientConfig::new();
    shared_settings(&mut client, config, brokers);
    client
        .set("transactional.id", id)
        .set("enable.idempotence", "true")
        .create_with_context(ProducerLogging)
        .map(Some)
        .map_err(|e| Error::kafka("creating the transactional producer", e))
}

/// Starts the embedded mock cluster with `topics` when no broker is configured, and points
/// `config` at it.
/// Subscribes the consumer to the service's topics and their retry topics.
fn subscribe(consumer: &EngineConsumer, topics: &[String], retry_topics: &[String]) -> Result<()> {
    let topics: Vec<&str> = topics
        .iter()
        .chain(retry_topics)
        .map(String::as_str)
        .collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| Error::kafka(format!("subscribing to {topics:?}"), e))
}

fn start_embedded(config: &mut Config, mut topics: Vec<String>) -> Result<Option<EmbeddedBroker>> {
    if config.brokers.is_some() {
        return Ok(None);
    }
    topics.sort();
    topics.dedup();
    let broker = EmbeddedBroker::start(&topics)?;
    tracing::info!(
        "no broker configured (KAUFMANN_BROKERS is unset): using the embedded in-process \
         mock cluster at {} and the schema registry {}; set KAUFMANN_BROKERS to use Kafka",
        broker.bootstrap_servers(),
        config.registry_url,
    );
    config.brokers = Some(broker.bootstrap_servers().to_owned());
    Ok(Some(broker))
}

/// Sets what every client of the service shares on `client`: brokers, security, then the
/// pass-through table. The consumer's group, commit and offset-reset settings are set after it:
/// Kaufmann's at-least-once guarantee depends on them. (Set directly: rdkafka's `config_map`
/// hides secret values behind a placeholder, so copying one config into another would send the
/// placeholder as the password.)
fn shared_settings(client: &mut ClientConfig, config: &Config, brokers: &str) {
    client.set("bootstrap.servers", brokers);
    for (key, value) in config.security.properties() {
        client.set(key, value);
    }
    for (key, value) in &config.librdkafka {
        client.set(key, value);
    }
}

/// Every dead-letter topic the configuration can send to, for the consumed topics.
fn dead_letter_topics(config: &Config) -> Vec<String> {
    let mut topics: Vec<String> = std::iter::once(&config.errors)
        .chain(config.event_errors.values())
        .flat_map(|policy| {
            config
                .topics
                .iter()
                .filter_map(|t| policy.dead_letter_for(t))
        })
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

/// Binds the metrics and health endpoints and serves them until shutdown.
async fn serve_metrics(
    addr: &str,
    metrics: &Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::Startup(format!(
            "cannot serve metrics on `{addr}` (metrics_addr): {e}"
        ))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Startup(format!("metrics listener on `{addr}`: {e}")))?;
    tracing::info!("metrics on http://{bound}/metrics, health on /health/live and /health/ready");
    tokio::spawn(crate::observe::server::serve(
        listener,
        metrics.clone(),
        shutdown,
    ));
    Ok(bound)
}

fn log_startup(config: &Config, handlers: &HandlerTable) {
    tracing::info!(service = %config.service_name, "starting kaufmann service: {}", config.masked());
    if handlers.is_empty() {
        tracing::warn!("no handlers are registered: add `#[kaufmann::given_event(\"<event>\")]` to an async fn");
    }
    for h in handlers.iter() {
        tracing::info!("handler: {} -> {}", h.event, h.describe());
    }
}

async fn check_topics(
    consumer: &Arc<EngineConsumer>,
    shared: &Shared,
    brokers: &str,
    topics: &[String],
) -> Result<()> {
    let probe = consumer.clone();
    let fetch = tokio::task::spawn_blocking(move || probe.fetch_metadata(None, CONNECT_TIMEOUT));
    // Meanwhile the consumer is polled (nothing is subscribed yet, so no message is taken): that
    // is what delivers librdkafka's client errors (authentication, TLS) to the context.
    let errors = async {
        loop {
            let _ = consumer.recv().await;
        }
    };
    let fetched = tokio::select! {
        fetched = fetch => fetched,
        () = errors => unreachable!("the error loop never ends"),
    };
    let metadata = fetched
        .map_err(|e| Error::Startup(format!("metadata request task failed: {e}")))?
        .map_err(|e| {
            let why = shared
                .last_client_error()
                .map(|last| format!("; the last client error: {last}"))
                .unwrap_or_default();
            Error::kafka(
                format!(
                    "connecting to the brokers at `{brokers}` (no answer within {CONNECT_TIMEOUT:?}{why}; \
                     check KAUFMANN_BROKERS and the security settings, or unset KAUFMANN_BROKERS to \
                     use the embedded broker)"
                ),
                e,
            )
        })?;
    for topic in topics {
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            return Err(Error::Startup(format!(
                "topic `{topic}` does not exist on `{brokers}`: create it first (Kaufmann creates \
                 no topics on a real broker; dead-letter topics are `dead_letter_topic`, default \
                 `{{topic}}.DLT`, and `dead_letter_topic = \"\"` turns them off; retry topics are \
                 `{{topic}}.retry.<delay>` for each delay of `retry_topics`)"
            )));
        }
    }
    Ok(())
}

/// A service that is running. Dropping it without [`RunningService::shutdown`] aborts it.
#[derive(Debug)]
pub struct RunningService {
    publisher: Publisher,
    stats: Stats,
    metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
    embedded: Option<EmbeddedBroker>,
}

impl RunningService {
    /// The service's publisher (for events not caused by a consumed one, such as seeds).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The service's counters and gauges.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Where `/metrics` and the health endpoints are served, when `metrics_addr` is set (with the
    /// port the system chose, for `127.0.0.1:0`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The embedded broker's bootstrap servers, when the service started one.
    pub fn embedded_brokers(&self) -> Option<&str> {
        self.embedded
            .as_ref()
            .map(EmbeddedBroker::bootstrap_servers)
    }

    /// Stops fetching, waits for in-flight messages, commits their offsets and leaves the group.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.shutdown.send(true);
        let ended = (&mut self.task).await;
        self.finish(ended)
    }

    /// Flushes the producer, then stops the embedded broker (after every client is gone).
    fn finish(self, ended: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
        let Self {
            publisher,
            embedded,
            ..
        } = self;
        publisher.flush();
        drop(publisher);
        drop(embedded);
        ended.map_err(|e| Error::Startup(format!("the service task failed: {e}")))?
    }

    /// Runs until Ctrl-C (SIGINT) or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(mut self) -> Result<()> {
        tokio::select! {
            () = shutdown_signal() => {
                tracing::info!("shutdown signal received: finishing in-flight messages (a second signal exits at once)");
                tokio::spawn(async {
                    shutdown_signal().await;
                    tracing::warn!("second signal: exiting without finishing in-flight messages");
                    std::process::exit(130);
                });
                self.shutdown().await
            }
            ended = &mut self.task => self.finish(ended),
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::demand_shares;

    #[test]
    fn consumers_share_the_demand_equally_and_each_needs_a_slot() {
        assert_eq!(demand_shares(50, 1).unwrap(), [50]);
        assert_eq!(demand_shares(9, 2).unwrap(), [5, 4]);
        assert_eq!(demand_shares(10, 4).unwrap(), [3, 3, 2, 2]);
        assert_eq!(demand_shares(3, 3).unwrap(), [1, 1, 1]);
        for (demand, consumers) in [(3, 4), (5, 0)] {
            let err = demand_shares(demand, consumers).unwrap_err().to_string();
            assert!(
                err.contains("`consumers` is") && err.contains("from 1 to `demand`"),
                "{err}"
            );
        }
    }

    /// With mimalloc as the process's `malloc`, a starting service turns transparent huge pages
    /// off for the process (the kernel shows it in `/proc/self/status`), unless the operator set
    /// `MIMALLOC_ALLOW_THP`.
    #[cfg(all(feature = "mimalloc", target_os = "linux", target_env = "gnu"))]
    #[test]
    fn huge_pages_are_off_under_mimalloc_as_malloc() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            return;
        }
        super::keep_freed_memory_unresident();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with("THP_enabled:"));
        // (Kernels before 5.0 do not show the line.)
        if let Some(line) = line {
            assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
        }
    }
}
