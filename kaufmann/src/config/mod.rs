//! Service configuration: one struct. Sources, each overriding the one before: defaults <
//! `kaufmann.toml` (or the file `KAUFMANN_CONFIG` names) < `KAUFMANN_*` environment variables.
//!
//! Every key, its environment variable and its default is listed in the README; unknown keys and
//! invalid values are errors naming the key and what it accepts.

mod keys;
mod retry;

pub use keys::{MAX_CONSUMERS, MAX_DEMAND};
pub use retry::RetryPolicy;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub use crate::codec::format::WireFormat;
use crate::error::{ConfigError, RegistryError};
use crate::registry::{
    open_registry_with, HttpOptions, RegistryTls, SchemaRegistry, SubjectStrategy,
};
use crate::secrets::{mask_url, shown_value, MASK};

/// How messages are ordered (the `ordering` config key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ordering {
    /// One at a time per message key; different keys in parallel even within one partition. A
    /// message without a key is ordered within its partition.
    #[default]
    Key,
    /// One at a time per partition; partitions in parallel.
    Partition,
    /// No ordering: any message may run beside any other.
    Unordered,
}

impl Ordering {
    /// The config spellings, for errors.
    pub const ACCEPTED: &'static str = "`key`, `partition` or `unordered`";

    /// Parses a config value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "key" => Some(Self::Key),
            "partition" => Some(Self::Partition),
            "unordered" => Some(Self::Unordered),
            _ => None,
        }
    }
}

/// How consumed messages, what their handlers publish and the consumed offsets relate (the
/// `processing` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Processing {
    /// Offsets are committed after their messages finished: a crash repeats what finished since
    /// the last commit (at most `commit_interval` of work), nothing is lost.
    #[default]
    AtLeastOnce,
    /// Kafka transactions (KIP-98, KIP-447): what handlers publish (error events, retry-topic and
    /// dead-letter records included) and the consumed offsets are committed together, every
    /// `transaction_interval` or `transaction_max_messages`; readers with `read_committed` see
    /// each output once, and never an aborted attempt's. Side effects outside Kafka are not
    /// rolled back.
    ExactlyOnce,
}

impl Processing {
    /// What the key accepts, for error messages.
    pub(crate) const ACCEPTED: &'static str = "`at_least_once` or `exactly_once`";

    /// Reads the key's value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "at_least_once" => Some(Self::AtLeastOnce),
            "exactly_once" => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}

/// When what a handler publishes is confirmed by the broker (the `publish_confirm` key), at
/// least once. Under `exactly_once` the transaction confirms it, and this key is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PublishConfirm {
    /// `ctx.publish(..).await` returns once the broker acknowledged the event: the handler sees a
    /// failed delivery as its own error. A message holds its `demand` slot for one produce round
    /// trip per event it publishes.
    InHandler,
    /// The default. `ctx.publish(..).await` returns once the event is encoded; the handler's
    /// events are handed to the producer when it returns `Ok` (an attempt that fails leaves
    /// nothing behind) and the message's slot is free at once. Its offset is committed only
    /// after every one of them is acknowledged; a delivery that fails for good fails the message
    /// (error event, dead letter). A batch handler's events go when it returns, and the batch
    /// finishes when they are acknowledged.
    #[default]
    BeforeCommit,
}

impl PublishConfirm {
    /// What the key accepts, for error messages.
    pub(crate) const ACCEPTED: &'static str = "`in_handler` or `before_commit`";

    /// Reads the key's value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "in_handler" => Some(Self::InHandler),
            "before_commit" => Some(Self::BeforeCommit),
            _ => None,
        }
    }
}

/// What happens to a message whose event has no handler in this service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Unhandled {
    /// Logged at debug level and committed (`KaufmannEx`'s behaviour).
    #[default]
    Commit,
    /// Sent to the dead-letter topic, then committed.
    DeadLetter,
}

/// How logs are written (the `log_format` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Which consumer group protocol the service's consumer speaks (the `group_protocol` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GroupProtocol {
    /// The classic protocol (join, sync, heartbeats), with the `cooperative-sticky` assignor:
    /// a rebalance moves only the partitions that change owner, the rest keep running.
    #[default]
    Classic,
    /// KIP-848's consumer protocol (`group.protocol=consumer`, Kafka 4 and later): the broker
    /// assigns partitions incrementally; session and heartbeat timeouts are the broker's
    /// `group.consumer.*` settings.
    Consumer,
}

impl GroupProtocol {
    /// What the key accepts, for error messages.
    pub(crate) const ACCEPTED: &'static str = "`classic` or `consumer`";

    /// Reads the key's value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "classic" => Some(Self::Classic),
            "consumer" => Some(Self::Consumer),
            _ => None,
        }
    }
}

/// The error policy for one event (or the service's default).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorPolicy {
    /// Retries in place.
    pub retry: RetryPolicy,
    /// How long one handler attempt may run.
    pub handler_timeout: Duration,
    /// The dead-letter topic; `{topic}` is replaced by the source topic. `None`: failures are
    /// logged and committed past, not sent anywhere.
    pub dead_letter_topic: Option<String>,
    /// Whether a failure also publishes `event.error.<event name>` to the default topic and to
    /// the event's callback topic (as `KaufmannEx` does).
    pub error_events: bool,
    /// Non-blocking delayed retries: a message that still fails after its retries in place goes
    /// to `<topic>.retry.<delay>` for each delay in turn (consumed by the same service, handled
    /// when due without holding up other messages), then to the dead-letter topic. Empty: none.
    pub retry_topics: Vec<Duration>,
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            handler_timeout: Duration::from_secs(30),
            dead_letter_topic: Some("{topic}.DLT".to_owned()),
            error_events: true,
            retry_topics: Vec::new(),
        }
    }
}

impl ErrorPolicy {
    /// The dead-letter topic for a message from `topic`.
    pub fn dead_letter_for(&self, topic: &str) -> Option<String> {
        self.dead_letter_topic
            .as_ref()
            .map(|t| t.replace("{topic}", topic))
    }

    /// The retry topic of stage `stage` (0 for the first delay) for messages of `topic`, and its
    /// delay; `None` past the last.
    pub fn retry_topic_for(&self, topic: &str, stage: usize) -> Option<(String, Duration)> {
        let delay = *self.retry_topics.get(stage)?;
        Some((format!("{topic}.retry.{}", delay_label(delay)), delay))
    }
}

/// A delay as a retry topic's name shows it: the largest unit that divides it (`1500ms`, `30s`,
/// `5m`, `2h`).
pub fn delay_label(delay: Duration) -> String {
    let ms = delay.as_millis();
    match ms {
        0 => "0ms".to_owned(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// Where one event is published (an `[events."<name>"]` table's `topic` and `key_field`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventRoute {
    /// The topic, instead of `default_topic`.
    pub topic: Option<String>,
    /// A top-level field of the payload (string, int or long) whose value is the Kafka key.
    pub key_field: Option<String>,
}

/// How the service connects to Kafka: `security_protocol`, `sasl_mechanism`, `sasl_username`,
/// `sasl_password`, `ssl_ca_location` (librdkafka's `security.protocol`, `sasl.mechanisms`,
/// `sasl.username`, `sasl.password`, `ssl.ca.location`; a `[librdkafka]` entry overrides them).
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaSecurity {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`; `None`: librdkafka's default
    /// (plaintext).
    pub protocol: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<String>,
    /// The SASL user.
    pub sasl_username: Option<String>,
    /// The SASL password (never shown: `***`).
    pub sasl_password: Option<String>,
    /// A PEM file of CA certificates that sign the brokers' certificates (else the system's).
    pub ssl_ca_location: Option<String>,
}

impl KafkaSecurity {
    /// The protocols `security_protocol` accepts.
    const PROTOCOLS: [&'static str; 4] = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
    /// The mechanisms `sasl_mechanism` accepts.
    const MECHANISMS: [&'static str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

    /// The librdkafka properties these settings stand for.
    pub fn properties(&self) -> Vec<(&'static str, &str)> {
        [
            ("security.protocol", &self.protocol),
            ("sasl.mechanisms", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value.as_deref()?)))
        .collect()
    }
}

impl std::fmt::Debug for KafkaSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSecurity")
            .field("protocol", &self.protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password.as_ref().map(|_| MASK))
            .field("ssl_ca_location", &self.ssl_ca_location)
            .finish()
    }
}

/// Everything a Kaufmann service is configured with. Its `Debug` is [`Config::masked`]: no
/// secret is shown.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Kafka bootstrap servers (`host:port,...`); `None` starts the embedded mock cluster.
    pub brokers: Option<String>,
    /// How the service connects to the brokers (TLS, SASL).
    pub security: KafkaSecurity,
    /// The name this service gives itself in published metadata.
    pub service_name: String,
    /// The consumer group id.
    pub group_id: String,
    /// The topics to consume.
    pub topics: Vec<String>,
    /// The topic events are published to.
    pub default_topic: String,
    /// The most messages in flight (fetched but not finished) at any time, all consumers
    /// together.
    pub demand: usize,
    /// How many consumers (members of the group, each with its own poll loop) the service runs:
    /// 1 to [`MAX_CONSUMERS`], at most `demand`. One poll loop takes about a core at a few
    /// hundred thousand messages a second; a second one lets a service with cheap handlers use
    /// another core. Each consumer gets an equal share of `demand` and its own partitions (a
    /// consumer without partitions idles).
    pub consumers: usize,
    /// The most messages one batch of a batch handler (`#[given_events]`) holds (1 to 10,000).
    pub batch_max: usize,
    /// How long a batch waits for more messages after its first arrived, before it runs anyway.
    pub batch_linger: Duration,
    /// The largest record value decoded; a larger one is a decode error (dead-lettered) before
    /// any of it is read.
    pub max_message_bytes: usize,
    /// How deeply a value may nest records, arrays and maps; deeper is a decode error. Applies
    /// to every decoder of the process.
    pub max_nesting_depth: usize,
    /// Which messages may run at the same time.
    pub ordering: Ordering,
    /// How often finished offsets are committed (at least once).
    pub commit_interval: Duration,
    /// At-least-once commits, or exactly-once transactions.
    pub processing: Processing,
    /// When what handlers publish is confirmed, at least once: in the handler, or before the
    /// consumed offset is committed.
    pub publish_confirm: PublishConfirm,
    /// How often the open transaction is committed (exactly once).
    pub transaction_interval: Duration,
    /// After how many admitted messages the open transaction is committed (exactly once).
    pub transaction_max_messages: usize,
    /// This instance's name among the service's instances: part of its `transactional.id`
    /// (`kaufmann-<group_id>-<instance_id>`), so it must be stable across restarts and unique
    /// among running instances. Default: the host name.
    pub instance_id: String,
    /// How long shutdown (and a partition revoke) waits for in-flight messages.
    pub shutdown_timeout: Duration,
    /// The service's error policy.
    pub errors: ErrorPolicy,
    /// Error policies of single events, overriding `errors` key by key.
    pub event_errors: HashMap<String, ErrorPolicy>,
    /// Where single events are published, overriding `default_topic` and the default key.
    pub event_routes: HashMap<String, EventRoute>,
    /// What happens to events without a handler.
    pub unhandled: Unhandled,
    /// The consumer group protocol.
    pub group_protocol: GroupProtocol,
    /// The schema registry: `mock://<scope>` for the in-memory registry, or
    /// `http(s)://[user:password@]host:port` for a Confluent-compatible one.
    pub registry_url: String,
    /// A bearer token for the registry (instead of basic auth in the URL).
    pub registry_bearer_token: Option<String>,
    /// The limit for one registry request.
    pub registry_timeout: Duration,
    /// TLS to the registry: a CA file and a client certificate (`registry_ca_location`,
    /// `registry_certificate_location`, `registry_key_location`).
    pub registry_tls: RegistryTls,
    /// How registry subjects are named.
    pub subject_strategy: SubjectStrategy,
    /// How events are laid out on the wire.
    pub wire_format: WireFormat,
    /// librdkafka properties passed through to the consumer and producer as they are.
    pub librdkafka: BTreeMap<String, String>,
    /// Where `/metrics`, `/health/live` and `/health/ready` are served (`host:port`); `None`: off.
    pub metrics_addr: Option<String>,
    /// How logs are written.
    pub log_format: LogFormat,
}

/// The default of `max_message_bytes`: 8 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 << 20;

impl Config {
    /// The defaults, for a service called `service_name`.
    pub fn new(service_name: impl Into<String>) -> Self {
        let service_name = service_name.into();
        Self {
            brokers: None,
            security: KafkaSecurity::default(),
            group_id: service_name.clone(),
            service_name,
            topics: vec!["rapids".to_owned()],
            default_topic: "rapids".to_owned(),
            demand: 50,
            consumers: 1,
            batch_max: 100,
            batch_linger: Duration::from_millis(10),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_nesting_depth: crate::codec::depth::DEFAULT_MAX_DEPTH,
            ordering: Ordering::default(),
            commit_interval: Duration::from_secs(1),
            processing: Processing::default(),
            publish_confirm: PublishConfirm::default(),
            transaction_interval: Duration::from_millis(100),
            // Kafka Streams commits every 100 ms under exactly once, with no count: each commit
            // holds the pool until everything is acknowledged, and at 1,000 a fast service
            // committed four times as often as the interval says, at half the rate.
            transaction_max_messages: 10_000,
            instance_id: host_name(),
            shutdown_timeout: Duration::from_secs(30),
            errors: ErrorPolicy::default(),
            event_errors: HashMap::new(),
            event_routes: HashMap::new(),
            unhandled: Unhandled::default(),
            group_protocol: GroupProtocol::default(),
            registry_url: "mock://kaufmann".to_owned(),
            registry_bearer_token: None,
            registry_timeout: Duration::from_secs(10),
            registry_tls: RegistryTls::default(),
            subject_strategy: SubjectStrategy::default(),
            wire_format: WireFormat::default(),
            librdkafka: BTreeMap::new(),
            metrics_addr: None,
            log_format: LogFormat::Text,
        }
    }

    /// Defaults < `kaufmann.toml` in the working directory (or the file `KAUFMANN_CONFIG`
    /// names) < `KAUFMANN_*` environment variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        let (path, required) = match std::env::var("KAUFMANN_CONFIG") {
            Ok(path) if !path.is_empty() => (path, true),
            _ => ("kaufmann.toml".to_owned(), false),
        };
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => Some((path, text)),
            Err(err) if required || err.kind() != std::io::ErrorKind::NotFound => {
                return Err(ConfigError::File {
                    path,
                    reason: err.to_string(),
                })
            }
            Err(_) => None,
        };
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::from_sources(file.as_ref().map(|(p, t)| (p.as_str(), t.as_str())), &env)
    }

    /// Builds a config from a TOML file's text (`(path, text)`) and `KAUFMANN_*` variables.
    pub fn from_sources(
        file: Option<(&str, &str)>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut values = keys::Values::default();
        if let Some((path, text)) = file {
            values.read_toml(path, text)?;
        }
        values.read_env(env)?;
        values.build()
    }

    /// The config as a log line: the SASL password, the registry's password and bearer token,
    /// and librdkafka values whose key names a secret are masked (one masking function serves every banner, `Debug` and error).
    pub fn masked(&self) -> String {
        let librdkafka: BTreeMap<&str, &str> = self
            .librdkafka
            .iter()
            .map(|(k, v)| (k.as_str(), shown_value(k, v)))
            .collect();
        format!(
            "brokers={:?} security={:?} group_id={} topics={:?} default_topic={} demand={} \
             consumers={} ordering={:?} commit_interval={:?} processing={:?} publish_confirm={:?} \
             transaction_interval={:?} \
             transaction_max_messages={} instance_id={} shutdown_timeout={:?} errors={:?} \
             event_errors={:?} unhandled={:?} group_protocol={:?} max_message_bytes={} \
             max_nesting_depth={} registry_url={} registry_bearer_token={:?} registry_tls={:?} \
             metrics_addr={:?} librdkafka={librdkafka:?}",
            self.brokers,
            self.security,
            self.group_id,
            self.topics,
            self.default_topic,
            self.demand,
            self.consumers,
            self.ordering,
            self.commit_interval,
            self.processing,
            self.publish_confirm,
            self.transaction_interval,
            self.transaction_max_messages,
            self.instance_id,
            self.shutdown_timeout,
            self.errors,
            self.event_errors,
            self.unhandled,
            self.group_protocol,
            self.max_message_bytes,
            self.max_nesting_depth,
            mask_url(&self.registry_url),
            self.registry_bearer_token.as_ref().map(|_| MASK),
            self.registry_tls,
            self.metrics_addr,
        )
    }

    /// Opens the configured schema registry.
    pub fn open_registry(&self) -> Result<Arc<dyn SchemaRegistry>, RegistryError> {
        let options = HttpOptions {
            timeout: self.registry_timeout,
            bearer_token: self.registry_bearer_token.clone(),
            tls: self.registry_tls.clone(),
            ..HttpOptions::default()
        };
        open_registry_with(&self.registry_url, options)
    }

    /// The error policy of an event: its own overrides, else the service's.
    pub fn error_policy(&self, event: &str) -> &ErrorPolicy {
        self.event_errors.get(event).unwrap_or(&self.errors)
    }

    /// The transactional id of the producer of this instance's `consumer` (from 0) under
    /// `exactly_once`: `kaufmann-<group_id>-<instance_id>` for the first,
    /// `kaufmann-<group_id>-<instance_id>:<consumer>` for the others (an instance id has no `:`).
    /// Stable across restarts, a restarted instance fences its killed predecessor's open
    /// transactions at once (aborted, their records never visible).
    pub fn transactional_id(&self, consumer: usize) -> String {
        match consumer {
            0 => format!("kaufmann-{}-{}", self.group_id, self.instance_id),
            _ => format!("kaufmann-{}-{}:{consumer}", self.group_id, self.instance_id),
        }
    }

    /// Every retry topic of the consumed topics, under the service's policy and every event's:
    /// the service consumes them too.
    pub fn retry_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = std::iter::once(&self.errors)
            .chain(self.event_errors.values())
            .flat_map(|policy| {
                self.topics.iter().flat_map(move |topic| {
                    (0..policy.retry_topics.len())
                        .filter_map(move |stage| policy.retry_topic_for(topic, stage))
                        .map(|(name, _)| name)
                })
            })
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }
}

/// The host name (`$HOSTNAME`, else the kernel's), the default instance id; `instance` when
/// neither is known.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "instance".to_owned())
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Config {{ {} }}", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_sources(None, &env(pairs))
    }

    #[test]
    fn defaults_apply_without_variables() {
        let config = from(&[("KAUFMANN_SERVICE_NAME", "users"), ("PATH", "/bin")]).unwrap();
        assert_eq!(config, Config::new("users"));
        assert_eq!(config.demand, 50);
        assert_eq!(config.ordering, Ordering::Key);
        assert_eq!(config.errors.retry.max_retries, 3);
        assert_eq!(
            config.errors.dead_letter_for("in"),
            Some("in.DLT".to_owned())
        );
    }

    #[test]
    fn variables_override_the_file_which_overrides_defaults() {
        let file = r#"
            service_name = "users"
            topics = ["in", "other"]
            demand = 7
            ordering = "partition"
            max_retries = 1
            [librdkafka]
            "fetch.wait.max.ms" = 50
            [events."command.user.create"]
            max_retries = 0
            dead_letter_topic = ""
        "#;
        let config = Config::from_sources(
            Some(("kaufmann.toml", file)),
            &env(&[
                ("KAUFMANN_BROKERS", "127.0.0.1:9092"),
                ("KAUFMANN_DEMAND", "9"),
                ("KAUFMANN_CONSUMERS", "2"),
                ("KAUFMANN_COMMIT_INTERVAL_MS", "250"),
                ("KAUFMANN_LIBRDKAFKA_SOCKET_KEEPALIVE_ENABLE", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(config.brokers.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(config.topics, ["in", "other"]);
        assert_eq!(config.default_topic, "in");
        assert_eq!(config.demand, 9);
        assert_eq!(config.consumers, 2);
        assert_eq!(config.ordering, Ordering::Partition);
        assert_eq!(config.group_protocol, GroupProtocol::Classic);
        assert_eq!(config.commit_interval, Duration::from_millis(250));
        assert_eq!(config.librdkafka["fetch.wait.max.ms"], "50");
        assert_eq!(config.librdkafka["socket.keepalive.enable"], "true");
        assert_eq!(config.errors.retry.max_retries, 1);
        let create = config.error_policy("command.user.create");
        assert_eq!(create.retry.max_retries, 0);
        assert_eq!(create.dead_letter_topic, None);
        assert_eq!(config.error_policy("other").retry.max_retries, 1);
    }

    #[test]
    fn retry_topics_are_delays_named_in_the_topics_they_make() {
        let file = r#"
            topics = ["orders", "payments"]
            retry_topics = ["1s", "30s", "5m", "1500ms"]
            [events."command.pay"]
            retry_topics = []
            [events."command.ship"]
            retry_topics = ["2h"]
        "#;
        let config = Config::from_sources(Some(("kaufmann.toml", file)), &[]).unwrap();
        assert_eq!(
            config.errors.retry_topics,
            [1_000, 30_000, 300_000, 1_500].map(Duration::from_millis)
        );
        assert_eq!(
            config.errors.retry_topic_for("orders", 2),
            Some(("orders.retry.5m".to_owned(), Duration::from_secs(300)))
        );
        assert_eq!(config.errors.retry_topic_for("orders", 4), None);
        assert!(config.error_policy("command.pay").retry_topics.is_empty());
        let topics = config.retry_topics();
        assert_eq!(topics.len(), 10, "{topics:?}");
        assert!(topics.contains(&"payments.retry.1500ms".to_owned()));
        assert!(topics.contains(&"orders.retry.2h".to_owned()));

        let env = from(&[("KAUFMANN_RETRY_TOPICS", "1s, 10ms")]).unwrap();
        assert_eq!(env.errors.retry_topics.len(), 2);
        for bad in [
            "5x",
            "1",
            "5ms",
            "25h",
            "1s,2s,3s,4s,5s,6s,7s,8s,9s,10s,11s",
            "-1s",
        ] {
            let err = from(&[("KAUFMANN_RETRY_TOPICS", bad)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("RETRY_TOPICS") && err.contains("10ms to 24h"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn contract_keys_parse_and_refuse_what_they_do_not_know() {
        let config = from(&[
            ("KAUFMANN_WIRE_FORMAT", "kaufmann_ex"),
            ("KAUFMANN_SUBJECT_STRATEGY", "topic_record"),
            ("KAUFMANN_ERROR_EVENTS", "false"),
            ("KAUFMANN_REGISTRY_TIMEOUT_MS", "250"),
            ("KAUFMANN_REGISTRY_BEARER_TOKEN", "t"),
            ("KAUFMANN_REGISTRY_CA_LOCATION", "/etc/ca.pem"),
            ("KAUFMANN_REGISTRY_CERTIFICATE_LOCATION", "/etc/client.pem"),
            ("KAUFMANN_REGISTRY_KEY_LOCATION", "/etc/client.key"),
        ])
        .unwrap();
        assert_eq!(
            config.registry_tls,
            RegistryTls {
                ca_location: Some("/etc/ca.pem".into()),
                certificate_location: Some("/etc/client.pem".into()),
                key_location: Some("/etc/client.key".into()),
            }
        );
        assert_eq!(config.wire_format, WireFormat::KaufmannEx);
        assert_eq!(config.subject_strategy, SubjectStrategy::TopicRecord);
        assert!(!config.errors.error_events);
        assert_eq!(config.registry_timeout, Duration::from_millis(250));
        assert_eq!(config.registry_bearer_token.as_deref(), Some("t"));
        for (key, value, accepted) in [
            (
                "KAUFMANN_WIRE_FORMAT",
                "avro",
                "`confluent`, `kaufmann_ex` or `json`",
            ),
            ("KAUFMANN_SUBJECT_STRATEGY", "name", "`event`, `topic`"),
            ("KAUFMANN_ERROR_EVENTS", "yes", "`true` or `false`"),
        ] {
            let err = from(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(accepted), "{err}");
        }
    }

    /// `processing = "exactly_once"` with its transaction keys; the transactional id names the
    /// group and the instance; wrong values name the key and what it takes.
    #[test]
    fn exactly_once_keys_parse_and_name_the_transactional_id() {
        let config = from(&[]).unwrap();
        assert_eq!(config.processing, Processing::AtLeastOnce);
        assert!(!config.instance_id.is_empty());
        let config = Config::from_sources(
            Some((
                "k.toml",
                "processing = \"exactly_once\"\ntransaction_interval_ms = 250\n\
                 transaction_max_messages = 500\ngroup_id = \"billing\"\ninstance_id = \"pod-3\"",
            )),
            &[],
        )
        .unwrap();
        assert_eq!(config.processing, Processing::ExactlyOnce);
        assert_eq!(config.transaction_interval, Duration::from_millis(250));
        assert_eq!(config.transaction_max_messages, 500);
        assert_eq!(config.transactional_id(0), "kaufmann-billing-pod-3");
        assert_eq!(config.transactional_id(2), "kaufmann-billing-pod-3:2");
        for (key, value, says) in [
            (
                "KAUFMANN_PROCESSING",
                "twice",
                "`at_least_once` or `exactly_once`",
            ),
            ("KAUFMANN_TRANSACTION_MAX_MESSAGES", "0", "from 1 to 100000"),
            (
                "KAUFMANN_TRANSACTION_INTERVAL_MS",
                "60001",
                "from 1 to 60000",
            ),
            ("KAUFMANN_INSTANCE_ID", "a b", "letters, digits"),
        ] {
            let err = from(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{err}");
        }
    }

    /// `publish_confirm`: `before_commit` by default, `in_handler` from a file or the
    /// environment; another value names the key and what it takes.
    #[test]
    fn publish_confirm_parses_and_names_what_it_takes() {
        assert_eq!(
            from(&[]).unwrap().publish_confirm,
            PublishConfirm::BeforeCommit
        );
        let config =
            Config::from_sources(Some(("k.toml", "publish_confirm = \"in_handler\"")), &[])
                .unwrap();
        assert_eq!(config.publish_confirm, PublishConfirm::InHandler);
        let config = from(&[("KAUFMANN_PUBLISH_CONFIRM", "before_commit")]).unwrap();
        assert_eq!(config.publish_confirm, PublishConfirm::BeforeCommit);
        let err = from(&[("KAUFMANN_PUBLISH_CONFIRM", "later")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("KAUFMANN_PUBLISH_CONFIRM")
                && err.contains("`in_handler` or `before_commit`"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_name_the_key_and_the_accepted_values() {
        for (key, value, range) in [
            ("KAUFMANN_DEMAND", "0", "from 1 to 100000"),
            ("KAUFMANN_DEMAND", "4611686018427387904", "from 1 to 100000"),
            ("KAUFMANN_CONSUMERS", "0", "from 1 to 64"),
            ("KAUFMANN_CONSUMERS", "65", "from 1 to 64"),
            ("KAUFMANN_MAX_RETRIES", "1001", "from 0 to 1000"),
            ("KAUFMANN_HANDLER_TIMEOUT_MS", "0", "from 1 to 86400000"),
            (
                "KAUFMANN_COMMIT_INTERVAL_MS",
                "99999999999",
                "from 1 to 3600000",
            ),
            ("KAUFMANN_REGISTRY_TIMEOUT_MS", "600001", "from 1 to 600000"),
            (
                "KAUFMANN_MAX_MESSAGE_BYTES",
                "10",
                "from 1024 to 1073741824",
            ),
            ("KAUFMANN_MAX_NESTING_DEPTH", "257", "from 1 to 256"),
        ] {
            let err = from(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(range), "{err}");
        }
        let err = from(&[("KAUFMANN_DEMAND", "3"), ("KAUFMANN_CONSUMERS", "4")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("KAUFMANN_CONSUMERS") && err.contains("at most `demand` (3)"),
            "{err}"
        );
        let config = from(&[
            ("KAUFMANN_MAX_MESSAGE_BYTES", "2048"),
            ("KAUFMANN_MAX_NESTING_DEPTH", "12"),
        ])
        .unwrap();
        assert_eq!(
            (config.max_message_bytes, config.max_nesting_depth),
            (2048, 12)
        );
        let err = from(&[("KAUFMANN_TOPICS", " , ")]).unwrap_err().to_string();
        assert!(err.contains("KAUFMANN_TOPICS"), "{err}");
        let err = from(&[("KAUFMANN_ORDERING", "fifo")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("KAUFMANN_ORDERING") && err.contains("`partition`"),
            "{err}"
        );
        let config = from(&[("KAUFMANN_GROUP_PROTOCOL", "consumer")]).unwrap();
        assert_eq!(config.group_protocol, GroupProtocol::Consumer);
        let err = from(&[("KAUFMANN_GROUP_PROTOCOL", "eager")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("KAUFMANN_GROUP_PROTOCOL") && err.contains("`classic` or `consumer`"),
            "{err}"
        );
        let err = Config::from_sources(Some(("k.toml", "demand = \"many\"")), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`demand` in `k.toml`"), "{err}");
    }

    #[test]
    fn security_keys_parse_and_refuse_what_they_do_not_know() {
        let config = from(&[
            ("KAUFMANN_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAUFMANN_SASL_MECHANISM", "scram-sha-256"),
            ("KAUFMANN_SASL_USERNAME", "ada"),
            ("KAUFMANN_SASL_PASSWORD", "s3cret"),
            ("KAUFMANN_SSL_CA_LOCATION", "/etc/ca.pem"),
        ])
        .unwrap();
        assert_eq!(
            config.security.properties(),
            [
                ("security.protocol", "sasl_ssl"),
                ("sasl.mechanisms", "SCRAM-SHA-256"),
                ("sasl.username", "ada"),
                ("sasl.password", "s3cret"),
                ("ssl.ca.location", "/etc/ca.pem"),
            ]
        );
        for (key, value, accepted) in [
            (
                "KAUFMANN_SECURITY_PROTOCOL",
                "tls",
                "`plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`",
            ),
            (
                "KAUFMANN_SASL_MECHANISM",
                "GSSAPI",
                "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`",
            ),
        ] {
            let err = from(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(accepted), "{err}");
        }
    }

    #[test]
    fn masked_config_hides_secrets() {
        let mut config = Config::new("s");
        config
            .librdkafka
            .insert("sasl.password".into(), "hunter2".into());
        config
            .librdkafka
            .insert("fetch.wait.max.ms".into(), "50".into());
        config.registry_url = "http://user:p@ss:w0rd@registry:8081".into();
        config.registry_bearer_token = Some("tok-secret".into());
        config.security.sasl_password = Some("sasl-secret".into());
        config.security.sasl_username = Some("ada".into());
        let line = config.masked();
        for secret in ["p@ss", "w0rd", "tok-secret", "sasl-secret"] {
            assert!(!line.contains(secret), "{secret} in {line}");
            assert!(!format!("{config:?}").contains(secret), "{secret} in Debug");
        }
        assert!(line.contains("ada"), "{line}");
        assert!(
            !line.contains("hunter2") && !line.contains(":pw@"),
            "{line}"
        );
        assert!(
            line.contains("\"sasl.password\": \"***\"") && line.contains("user:***@registry"),
            "{line}"
        );
        assert!(line.contains("\"fetch.wait.max.ms\": \"50\""), "{line}");
    }

    #[test]
    fn unknown_keys_are_errors_listing_the_accepted_ones() {
        let err = from(&[("KAUFMANN_DEMANDS", "3")]).unwrap_err().to_string();
        assert!(
            err.contains("KAUFMANN_DEMANDS") && err.contains("KAUFMANN_DEMAND,"),
            "{err}"
        );
        let err = Config::from_sources(Some(("k.toml", "topic = \"x\"")), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`topic` in `k.toml`") && err.contains("topics"),
            "{err}"
        );
        let file = "[events.\"e\"]\ndemand = 3";
        let err = Config::from_sources(Some(("k.toml", file)), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("demand") && err.contains("max_retries"),
            "{err}"
        );
        let err = Config::from_sources(Some(("k.toml", "demand = ")), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("k.toml"), "{err}");
    }
}
