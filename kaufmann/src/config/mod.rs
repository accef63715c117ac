//! Service configuration: one struct. Sources, each overriding the one before: defaults <
//! `kaufmann.toml` (or the file `KAUFMANN_CONFIG` names) < `KAUFMANN_*` environment variables.
//!
//! Every key, its environment variable and its default is listed in the README; unknown keys and
//! invalid values are errors naming the key and what it accepts.

mod retry;

pub use retry::RetryPolicy;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
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
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            handler_timeout: Duration::from_secs(30),
            dead_letter_topic: Some("{topic}.DLT".to_owned()),
            error_events: true,
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
    /// The most messages in flight (fetched but not finished) at any time.
    pub demand: usize,
    /// The largest record value decoded; a larger one is a decode error (dead-lettered) before
    /// any of it is read.
    pub max_message_bytes: usize,
    /// How deeply a value may nest records, arrays and maps; deeper is a decode error. Applies
    /// to every decoder of the process.
    pub max_nesting_depth: usize,
    /// Which messages may run at the same time.
    pub ordering: Ordering,
    /// How often finished offsets are committed.
    pub commit_interval: Duration,
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

/// The keys of the top level, with their environment variables `KAUFMANN_<KEY in upper case>`.
const KEYS: &[&str] = &[
    "brokers",
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "ssl_ca_location",
    "service_name",
    "group_id",
    "topics",
    "default_topic",
    "demand",
    "max_message_bytes",
    "max_nesting_depth",
    "ordering",
    "commit_interval_ms",
    "shutdown_timeout_ms",
    "handler_timeout_ms",
    "max_retries",
    "retry_backoff_ms",
    "retry_backoff_max_ms",
    "dead_letter_topic",
    "unhandled",
    "group_protocol",
    "registry_url",
    "registry_bearer_token",
    "registry_timeout_ms",
    "registry_ca_location",
    "registry_certificate_location",
    "registry_key_location",
    "subject_strategy",
    "wire_format",
    "error_events",
    "metrics_addr",
    "log_format",
];

/// The keys an `[events."<name>"]` table accepts.
const EVENT_KEYS: &[&str] = &[
    "handler_timeout_ms",
    "max_retries",
    "retry_backoff_ms",
    "retry_backoff_max_ms",
    "dead_letter_topic",
    "error_events",
    "topic",
    "key_field",
];

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
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_nesting_depth: crate::codec::depth::DEFAULT_MAX_DEPTH,
            ordering: Ordering::default(),
            commit_interval: Duration::from_secs(1),
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
        let mut values = Values::default();
        if let Some((path, text)) = file {
            values.read_toml(path, text)?;
        }
        values.read_env(env)?;
        values.build()
    }

    /// The config as a log line: the SASL password, the registry's password and bearer token,
    /// and librdkafka values whose key names a secret are masked ([`crate::secrets`]).
    pub fn masked(&self) -> String {
        let librdkafka: BTreeMap<&str, &str> = self
            .librdkafka
            .iter()
            .map(|(k, v)| (k.as_str(), shown_value(k, v)))
            .collect();
        format!(
            "brokers={:?} security={:?} group_id={} topics={:?} default_topic={} demand={} \
             ordering={:?} commit_interval={:?} shutdown_timeout={:?} errors={:?} \
             event_errors={:?} unhandled={:?} group_protocol={:?} max_message_bytes={} \
             max_nesting_depth={} registry_url={} registry_bearer_token={:?} registry_tls={:?} \
             metrics_addr={:?} librdkafka={librdkafka:?}",
            self.brokers,
            self.security,
            self.group_id,
            self.topics,
            self.default_topic,
            self.demand,
            self.ordering,
            self.commit_interval,
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
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Config {{ {} }}", self.masked())
    }
}

/// A raw value and where it came from (for error messages).
#[derive(Debug, Clone)]
struct Raw {
    value: toml::Value,
    origin: String,
}

#[derive(Debug, Default)]
struct Values {
    top: BTreeMap<String, Raw>,
    events: BTreeMap<String, BTreeMap<String, Raw>>,
    librdkafka: BTreeMap<String, String>,
}

impl Values {
    fn read_toml(&mut self, path: &str, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        for (key, value) in table {
            match (key.as_str(), value) {
                ("librdkafka", toml::Value::Table(props)) => {
                    for (prop, value) in props {
                        let value = match value {
                            toml::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        self.librdkafka.insert(prop, value);
                    }
                }
                ("events", toml::Value::Table(events)) => {
                    for (event, table) in events {
                        let origin = format!("[events.\"{event}\"] in {path}");
                        let toml::Value::Table(table) = table else {
                            return Err(invalid(
                                &origin,
                                &table.to_string(),
                                "a table of error-policy keys",
                            ));
                        };
                        let entry = self.events.entry(event.clone()).or_default();
                        for (key, value) in table {
                            if !EVENT_KEYS.contains(&key.as_str()) {
                                return Err(unknown(&format!("{key}` in `{origin}"), EVENT_KEYS));
                            }
                            entry.insert(
                                key,
                                Raw {
                                    value,
                                    origin: origin.clone(),
                                },
                            );
                        }
                    }
                }
                (key, value) if KEYS.contains(&key) => {
                    let origin = format!("{key}` in `{path}");
                    self.top.insert(key.to_owned(), Raw { value, origin });
                }
                (key, _) => return Err(unknown(&format!("{key}` in `{path}"), KEYS)),
            }
        }
        Ok(())
    }

    fn read_env(&mut self, env: &[(String, String)]) -> Result<(), ConfigError> {
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("KAUFMANN_") else {
                continue;
            };
            if rest == "CONFIG" {
                continue;
            }
            if let Some(prop) = rest.strip_prefix("LIBRDKAFKA_") {
                self.librdkafka
                    .insert(prop.to_lowercase().replace('_', "."), value.clone());
                continue;
            }
            let key = rest.to_lowercase();
            if !KEYS.contains(&key.as_str()) {
                let accepted: Vec<String> = KEYS
                    .iter()
                    .map(|k| format!("KAUFMANN_{}", k.to_uppercase()))
                    .collect();
                let accepted: Vec<&str> = accepted.iter().map(String::as_str).collect();
                return Err(unknown(name, &accepted));
            }
            let raw = Raw {
                value: toml::Value::String(value.trim().to_owned()),
                origin: name.clone(),
            };
            self.top.insert(key, raw);
        }
        Ok(())
    }

    fn build(self) -> Result<Config, ConfigError> {
        let top = &self.top;
        let service_name = match top.get("service_name") {
            Some(raw) => string(raw)?,
            None => executable_name(),
        };
        let mut c = Config::new(service_name);
        if let Some(raw) = top.get("brokers") {
            c.brokers = Some(string(raw)?).filter(|b| !b.is_empty());
        }
        read_security(top, &mut c.security)?;
        if let Some(raw) = top.get("group_id") {
            c.group_id = string(raw)?;
        }
        if let Some(raw) = top.get("topics") {
            c.topics = list(raw)?;
        }
        c.default_topic = match top.get("default_topic") {
            Some(raw) => string(raw)?,
            None => c.topics[0].clone(),
        };
        if let Some(raw) = top.get("demand") {
            c.demand = usize::try_from(number(raw, 1, MAX_DEMAND)?).unwrap_or(usize::MAX);
        }
        if let Some(raw) = top.get("max_message_bytes") {
            c.max_message_bytes = usize::try_from(number(raw, MESSAGE_BYTES.0, MESSAGE_BYTES.1)?)
                .unwrap_or(usize::MAX);
        }
        if let Some(raw) = top.get("max_nesting_depth") {
            let most = u64::try_from(crate::codec::depth::MAX_DEPTH_LIMIT).unwrap_or(u64::MAX);
            c.max_nesting_depth = usize::try_from(number(raw, 1, most)?).unwrap_or(usize::MAX);
        }
        if let Some(raw) = top.get("ordering") {
            c.ordering = Ordering::parse(&string(raw)?)
                .ok_or_else(|| invalid(&raw.origin, &display(raw), Ordering::ACCEPTED))?;
        }
        if let Some(raw) = top.get("commit_interval_ms") {
            c.commit_interval = millis(raw, HOUR_MS)?;
        }
        if let Some(raw) = top.get("shutdown_timeout_ms") {
            c.shutdown_timeout = millis(raw, HOUR_MS)?;
        }
        if let Some(raw) = top.get("unhandled") {
            c.unhandled = match string(raw)?.as_str() {
                "commit" => Unhandled::Commit,
                "dead_letter" => Unhandled::DeadLetter,
                _ => {
                    return Err(invalid(
                        &raw.origin,
                        &display(raw),
                        "`commit` or `dead_letter`",
                    ))
                }
            };
        }
        if let Some(raw) = top.get("group_protocol") {
            c.group_protocol = GroupProtocol::parse(&string(raw)?)
                .ok_or_else(|| invalid(&raw.origin, &display(raw), GroupProtocol::ACCEPTED))?;
        }
        read_contract(top, &mut c)?;
        if let Some(raw) = top.get("metrics_addr") {
            c.metrics_addr = Some(string(raw)?).filter(|a| !a.is_empty());
        }
        if let Some(raw) = top.get("log_format") {
            c.log_format = match string(raw)?.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(invalid(&raw.origin, &display(raw), "`text` or `json`")),
            };
        }
        c.errors = policy(&ErrorPolicy::default(), top)?;
        for (event, keys) in &self.events {
            c.event_errors
                .insert(event.clone(), policy(&c.errors, keys)?);
            let route = EventRoute {
                topic: keys.get("topic").map(string).transpose()?,
                key_field: keys.get("key_field").map(string).transpose()?,
            };
            if route != EventRoute::default() {
                c.event_routes.insert(event.clone(), route);
            }
        }
        c.librdkafka = self.librdkafka;
        Ok(c)
    }
}

/// The keys of the connection to Kafka.
fn read_security(top: &BTreeMap<String, Raw>, s: &mut KafkaSecurity) -> Result<(), ConfigError> {
    let text = |key: &str| -> Result<Option<String>, ConfigError> {
        Ok(top
            .get(key)
            .map(string)
            .transpose()?
            .filter(|v| !v.is_empty()))
    };
    if let Some(raw) = top.get("security_protocol") {
        let protocol = string(raw)?.to_ascii_lowercase();
        s.protocol = Some(one_of(raw, protocol, &KafkaSecurity::PROTOCOLS)?);
    }
    if let Some(raw) = top.get("sasl_mechanism") {
        let mechanism = string(raw)?.to_ascii_uppercase();
        s.sasl_mechanism = Some(one_of(raw, mechanism, &KafkaSecurity::MECHANISMS)?);
    }
    s.sasl_username = text("sasl_username")?;
    s.sasl_password = text("sasl_password")?;
    s.ssl_ca_location = text("ssl_ca_location")?;
    Ok(())
}

/// `value` (read from `raw`) when it is one of `accepted`; the error lists them
/// (`` `a`, `b` or `c` ``).
fn one_of(raw: &Raw, value: String, accepted: &[&str]) -> Result<String, ConfigError> {
    if accepted.contains(&value.as_str()) {
        return Ok(value);
    }
    let quoted: Vec<String> = accepted.iter().map(|a| format!("`{a}`")).collect();
    let listed = match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(invalid(&raw.origin, &display(raw), &listed))
}

/// The keys of the message contract: registry, subjects and wire format.
fn read_contract(top: &BTreeMap<String, Raw>, c: &mut Config) -> Result<(), ConfigError> {
    if let Some(raw) = top.get("registry_url") {
        c.registry_url = string(raw)?;
    }
    if let Some(raw) = top.get("registry_bearer_token") {
        c.registry_bearer_token = Some(string(raw)?).filter(|t| !t.is_empty());
    }
    if let Some(raw) = top.get("registry_timeout_ms") {
        c.registry_timeout = millis(raw, 10 * MINUTE_MS)?;
    }
    let file = |key: &str| -> Result<Option<String>, ConfigError> {
        top.get(key)
            .map(string)
            .transpose()
            .map(|v| v.filter(|v| !v.is_empty()))
    };
    c.registry_tls = RegistryTls {
        ca_location: file("registry_ca_location")?,
        certificate_location: file("registry_certificate_location")?,
        key_location: file("registry_key_location")?,
    };
    if let Some(raw) = top.get("subject_strategy") {
        c.subject_strategy = SubjectStrategy::parse(&string(raw)?).ok_or_else(|| {
            invalid(
                &raw.origin,
                &display(raw),
                "`event`, `topic`, `record` or `topic_record`",
            )
        })?;
    }
    if let Some(raw) = top.get("wire_format") {
        c.wire_format = match string(raw)?.as_str() {
            "confluent" => WireFormat::Confluent,
            "kaufmann_ex" => WireFormat::KaufmannEx,
            _ => {
                return Err(invalid(
                    &raw.origin,
                    &display(raw),
                    "`confluent` or `kaufmann_ex`",
                ))
            }
        };
    }
    Ok(())
}

fn policy(base: &ErrorPolicy, keys: &BTreeMap<String, Raw>) -> Result<ErrorPolicy, ConfigError> {
    let mut p = base.clone();
    if let Some(raw) = keys.get("handler_timeout_ms") {
        p.handler_timeout = millis(raw, DAY_MS)?;
    }
    if let Some(raw) = keys.get("max_retries") {
        p.retry.max_retries = u32::try_from(number(raw, 0, MAX_RETRIES)?).unwrap_or(u32::MAX);
    }
    if let Some(raw) = keys.get("retry_backoff_ms") {
        p.retry.initial_backoff = millis(raw, HOUR_MS)?;
    }
    if let Some(raw) = keys.get("retry_backoff_max_ms") {
        p.retry.max_backoff = millis(raw, HOUR_MS)?;
    }
    if let Some(raw) = keys.get("dead_letter_topic") {
        p.dead_letter_topic = Some(string(raw)?).filter(|t| !t.is_empty());
    }
    if let Some(raw) = keys.get("error_events") {
        p.error_events = boolean(raw)?;
    }
    Ok(p)
}

fn display(raw: &Raw) -> String {
    match &raw.value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn boolean(raw: &Raw) -> Result<bool, ConfigError> {
    match &raw.value {
        toml::Value::Boolean(b) => Ok(*b),
        toml::Value::String(s) if s.trim() == "true" => Ok(true),
        toml::Value::String(s) if s.trim() == "false" => Ok(false),
        _ => Err(invalid(&raw.origin, &display(raw), "`true` or `false`")),
    }
}

fn string(raw: &Raw) -> Result<String, ConfigError> {
    match &raw.value {
        toml::Value::String(s) => Ok(s.trim().to_owned()),
        other => Err(invalid(&raw.origin, &other.to_string(), "a string")),
    }
}

fn list(raw: &Raw) -> Result<Vec<String>, ConfigError> {
    let items: Vec<String> = match &raw.value {
        toml::Value::String(s) => s.split(',').map(|s| s.trim().to_owned()).collect(),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(|s| s.trim().to_owned()))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid(&raw.origin, &display(raw), "a list of topic names"))?,
        _ => Vec::new(),
    };
    let items: Vec<String> = items.into_iter().filter(|s| !s.is_empty()).collect();
    if items.is_empty() {
        return Err(invalid(
            &raw.origin,
            &display(raw),
            "a list of topic names (comma-separated in the environment)",
        ));
    }
    Ok(items)
}

/// The most messages in flight `demand` accepts.
pub const MAX_DEMAND: u64 = 100_000;
/// The most retries `max_retries` accepts.
const MAX_RETRIES: u64 = 1_000;
const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;
/// The range `max_message_bytes` accepts: 1 KiB to 1 GiB.
const MESSAGE_BYTES: (u64, u64) = (1024, 1 << 30);

/// A whole number from `min` to `max`; the error names the key and the range.
fn number(raw: &Raw, min: u64, max: u64) -> Result<u64, ConfigError> {
    let parsed = match &raw.value {
        toml::Value::Integer(n) => u64::try_from(*n).ok(),
        toml::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    parsed.filter(|n| (min..=max).contains(n)).ok_or_else(|| {
        invalid(
            &raw.origin,
            &display(raw),
            &format!("a whole number from {min} to {max}"),
        )
    })
}

/// Milliseconds from 1 to `max`.
fn millis(raw: &Raw, max: u64) -> Result<Duration, ConfigError> {
    number(raw, 1, max).map(Duration::from_millis)
}

fn executable_name() -> String {
    std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::file_stem)
        .map_or_else(
            || "kaufmann-service".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        )
}

fn invalid(key: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: shown_value(key, value).to_owned(),
        expected: expected.to_owned(),
    }
}

fn unknown(key: &str, accepted: &[&str]) -> ConfigError {
    ConfigError::Unknown {
        key: key.to_owned(),
        accepted: accepted.join(", "),
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
                ("KAUFMANN_COMMIT_INTERVAL_MS", "250"),
                ("KAUFMANN_LIBRDKAFKA_SOCKET_KEEPALIVE_ENABLE", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(config.brokers.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(config.topics, ["in", "other"]);
        assert_eq!(config.default_topic, "in");
        assert_eq!(config.demand, 9);
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
                "`confluent` or `kaufmann_ex`",
            ),
            ("KAUFMANN_SUBJECT_STRATEGY", "name", "`event`, `topic`"),
            ("KAUFMANN_ERROR_EVENTS", "yes", "`true` or `false`"),
        ] {
            let err = from(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(accepted), "{err}");
        }
    }

    #[test]
    fn invalid_values_name_the_key_and_the_accepted_values() {
        for (key, value, range) in [
            ("KAUFMANN_DEMAND", "0", "from 1 to 100000"),
            ("KAUFMANN_DEMAND", "4611686018427387904", "from 1 to 100000"),
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
