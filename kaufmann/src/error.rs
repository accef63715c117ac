//! Errors of the Kaufmann runtime, one enum per concern.

use std::fmt;
use std::time::Duration;

/// The result type of handlers and of the Kaufmann API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error the Kaufmann runtime reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is missing a value or holds an invalid one.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Encoding or decoding a message failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The schema registry could not answer.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The broker could not be reached or refused a request.
    #[error("kafka error while {action}: {source}")]
    Kafka {
        /// What Kaufmann was doing.
        action: String,
        /// The error librdkafka reported.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Two handlers claim the same event.
    #[error(
        "two handlers claim event `{event}`: `{first}` and `{second}`; remove one of them \
         (one event has exactly one handler per service)"
    )]
    DuplicateHandler {
        /// The event name both handlers claim.
        event: String,
        /// The first handler's name and source location.
        first: String,
        /// The second handler's name and source location.
        second: String,
    },
    /// The service could not start.
    #[error("the service could not start: {0}")]
    Startup(String),
    /// A handler failed; the message names the handler's own error. Retried under the error
    /// policy.
    #[error("{0}")]
    Handler(String),
    /// A handler failed in a way retrying cannot help (bad input, a rule broken): no retries, the
    /// error event and the dead-letter topic at once.
    #[error("{0}")]
    Permanent(String),
    /// A batch handler names the events of its batch that failed (by their index in the
    /// `Vec` it was given); the others are done. Each named event goes on to the error policy
    /// with its own error (a permanent one is not retried).
    #[error("{} of the batch failed: {}", .0.len(), describe_failures(.0))]
    BatchFailed(Vec<(usize, Error)>),
    /// A handler's `State<T>` for a type the service was not given (a service checks this before
    /// it starts; this reaches a handler only on a test bus without the value).
    #[error(
        "the handler takes `State<{name}>`, but no `{name}` was given: give it at start-up \
         (`kaufmann::run!(state = ..)`, `Service::builder(config).state(..)`, \
         `TestBus::new().with_state(..)`)"
    )]
    MissingState {
        /// The state type's name.
        name: &'static str,
    },
    /// `ctx.reply` for an event whose emitter named no callback topic.
    #[error(
        "cannot reply to `{event}` (message {message_id}): its metadata names no callback topic; \
         publish with `ctx.publish` or `ctx.publish_to` instead"
    )]
    NoCallbackTopic {
        /// The event being handled.
        event: String,
        /// Its message id.
        message_id: String,
    },
    /// Under `exactly_once`, the transactional producer can commit no more: another producer
    /// with the same transactional id started (a second instance with the same `instance_id`,
    /// or this instance's replacement while it was paused), or librdkafka reported a fatal
    /// error. The service stopped without committing; what it did since its last commit is
    /// aborted and done again by the partitions' next owner.
    #[error(
        "transactional producer `{transactional_id}` was fenced or failed for good: {reason}; \
         the service stopped without committing. Each running instance needs its own \
         `instance_id`"
    )]
    Fenced {
        /// The producer's transactional id.
        transactional_id: String,
        /// What librdkafka said.
        reason: String,
    },
    /// Starting or stopping the service took longer than allowed.
    #[error("{what} did not finish within {limit:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The time allowed.
        limit: Duration,
    },
}

impl Error {
    /// An error a handler returns: any message, for the error policy and the logs. The message
    /// is retried as the error policy says (a permanent error is not: see [`Error::permanent`]).
    pub fn handler(message: impl std::fmt::Display) -> Self {
        Self::Handler(message.to_string())
    }

    /// An error retrying cannot help (the input breaks a rule, the entity is gone): the message
    /// gets no retries and goes straight to the error event and the dead-letter topic, like
    /// Spring's not-retryable exceptions.
    ///
    /// ```
    /// let err = kaufmann::Error::permanent("user 7: `x` is not an email address");
    /// assert!(err.is_permanent());
    /// ```
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self::Permanent(message.to_string())
    }

    /// The events of a batch that failed, each with its error (by its index in the `Vec` the
    /// batch handler was given): only those go on to the error policy, like Spring's
    /// `BatchListenerFailedException`. An index past the batch is ignored.
    ///
    /// ```
    /// let err = kaufmann::Error::failed_events([(2, kaufmann::Error::handler("no stock"))]);
    /// assert_eq!(err.to_string(), "1 of the batch failed: #2: no stock");
    /// ```
    pub fn failed_events(failures: impl IntoIterator<Item = (usize, Error)>) -> Self {
        Self::BatchFailed(failures.into_iter().collect())
    }

    /// Whether retrying cannot help: a permanent handler error, or a message that cannot be
    /// decoded.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Permanent(_) | Self::Codec(_) | Self::MissingState { .. }
        )
    }

    pub(crate) fn kafka(action: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        Self::Kafka {
            action: action.into(),
            source,
        }
    }
}

/// `#i: error` for the first few failures of a batch.
fn describe_failures(failures: &[(usize, Error)]) -> String {
    const SHOWN: usize = 5;
    let mut text: Vec<String> = failures
        .iter()
        .take(SHOWN)
        .map(|(index, error)| format!("#{index}: {error}"))
        .collect();
    if failures.len() > SHOWN {
        text.push(format!("and {} more", failures.len() - SHOWN));
    }
    text.join("; ")
}

/// A configuration value is missing or invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value could not be parsed.
    #[error("config key `{key}` has the invalid value {value:?}: expected {expected}")]
    Invalid {
        /// The key, as the user writes it (for example `KAUFMANN_DEMAND`).
        key: String,
        /// The value found.
        value: String,
        /// What the key accepts.
        expected: String,
    },
    /// A key that Kaufmann does not know (a typo, most often).
    #[error("unknown config key `{key}`; the accepted keys are: {accepted}")]
    Unknown {
        /// The key as found.
        key: String,
        /// Every accepted key.
        accepted: String,
    },
    /// The config file could not be read or parsed.
    #[error("config file `{path}`: {reason}")]
    File {
        /// The file's path.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// A message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value is shorter than the 5-byte Confluent header.
    #[error("message of {len} bytes is too short for the Confluent wire format (5-byte header)")]
    TooShort {
        /// The length of the value.
        len: usize,
    },
    /// The first byte is not the Confluent magic byte 0.
    #[error("message starts with byte {found:#04x}, not the Confluent magic byte 0x00")]
    BadMagic {
        /// The byte found.
        found: u8,
    },
    /// The value is larger than `max_message_bytes`: refused before any of it is read.
    #[error("message of {len} bytes is larger than max_message_bytes ({limit})")]
    TooLarge {
        /// The length of the value.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A `kaufmann_ex` message without the Kafka key that names its event.
    #[error(
        "a kaufmann_ex message carries its event name as the Kafka key, and this one has none"
    )]
    NoEventKey,
    /// A `json` message that names no event.
    #[error(
        "a json message names its event in `meta.message_name`, the `message_name` header or \
         the Kafka key, and this one does in none"
    )]
    Unnamed,
    /// The message has no value at all.
    #[error("message has no value (tombstone); Kaufmann events always carry a payload")]
    NoPayload,
    /// Avro could not encode or decode the payload.
    #[error("avro {action} failed for `{event}` (schema id {schema_id:?}): {source}")]
    Avro {
        /// `encode` or `decode`.
        action: &'static str,
        /// The event name.
        event: String,
        /// The schema id, when known.
        schema_id: Option<u32>,
        /// The Avro error.
        #[source]
        source: Box<apache_avro::Error>,
    },
    /// The value does not have the shape of its schema (see [`crate::codec::avro`]; for `json`,
    /// [`crate::wire::json`]).
    #[error("{action} failed for `{event}` (schema id {schema_id:?}): {source}")]
    Shape {
        /// `encode` or `decode`.
        action: &'static str,
        /// The event name.
        event: String,
        /// The schema id, when known.
        schema_id: Option<u32>,
        /// What does not fit, and where.
        #[source]
        source: AvroError,
    },
}

impl CodecError {
    /// For `map_err`: an Avro error while `action` (`encode`, `decode`) ran for `event`.
    pub(crate) fn avro<'a>(
        action: &'static str,
        event: &'a str,
        schema_id: Option<u32>,
    ) -> impl FnOnce(apache_avro::Error) -> Self + 'a {
        move |source| Self::Avro {
            action,
            event: event.to_owned(),
            schema_id,
            source: Box::new(source),
        }
    }

    /// For `map_err`: a value that does not have its schema's shape.
    pub(crate) fn shape<'a>(
        action: &'static str,
        event: &'a str,
        schema_id: Option<u32>,
    ) -> impl FnOnce(AvroError) -> Self + 'a {
        move |source| Self::Shape {
            action,
            event: event.to_owned(),
            schema_id,
            source,
        }
    }
}

/// The schema registry refused a request or could not be reached. Confluent's error codes map to
/// the variants named after them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No schema has this id (Confluent 40403).
    #[error("schema id {id} is not in registry `{registry}` (Confluent error 40403)")]
    SchemaNotFound {
        /// The id asked for.
        id: u32,
        /// The registry's URL.
        registry: String,
    },
    /// The subject has no versions (Confluent 40401).
    #[error(
        "subject `{subject}` is not in registry `{registry}` (Confluent error 40401); \
         register it with `kaufmann schemas migrate`"
    )]
    SubjectNotFound {
        /// The subject.
        subject: String,
        /// The registry's URL.
        registry: String,
    },
    /// The subject has no such version (Confluent 40402).
    #[error("subject `{subject}` has no version {version} in registry `{registry}` (Confluent error 40402)")]
    VersionNotFound {
        /// The subject.
        subject: String,
        /// The version asked for.
        version: String,
        /// The registry's URL.
        registry: String,
    },
    /// The subject exists but none of its versions is this schema (Confluent 40403 on lookup).
    #[error("subject `{subject}` in registry `{registry}` has no version with this schema (Confluent error 40403)")]
    SchemaNotInSubject {
        /// The subject.
        subject: String,
        /// The registry's URL.
        registry: String,
    },
    /// The subject's compatibility level refuses the schema (Confluent 409).
    #[error(
        "subject `{subject}` refuses the schema under {level} compatibility (Confluent error 409): {}; \
         give new fields defaults, or change the level",
        messages.join("; ")
    )]
    Incompatible {
        /// The subject.
        subject: String,
        /// The compatibility level that refused it.
        level: &'static str,
        /// Why, one line per earlier version that cannot read or be read.
        messages: Vec<String>,
    },
    /// The schema text is not a valid Avro schema (Confluent 42201).
    #[error("subject `{subject}`: invalid Avro schema (Confluent error 42201): {reason}")]
    InvalidSchema {
        /// The subject.
        subject: String,
        /// What is wrong.
        reason: String,
    },
    /// Not a compatibility level (Confluent 42203).
    #[error(
        "`{level}` is not a compatibility level (Confluent error 42203); use BACKWARD, \
         BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE or NONE"
    )]
    InvalidCompatibility {
        /// The level given.
        level: String,
    },
    /// The registry answered with an error of its own (Confluent 500xx, or a code Kaufmann does
    /// not map).
    #[error("registry `{registry}` answered HTTP {status} (error code {code}): {message}")]
    Server {
        /// The registry's URL.
        registry: String,
        /// The HTTP status.
        status: u16,
        /// Confluent's `error_code`, or the HTTP status when the body had none.
        code: u32,
        /// Confluent's `message`, or the body.
        message: String,
    },
    /// The registry refused the credentials (HTTP 401 or 403).
    #[error(
        "registry `{registry}` refused the credentials (HTTP {status}); put `user:password@` in \
         KAUFMANN_REGISTRY_URL or set KAUFMANN_REGISTRY_BEARER_TOKEN"
    )]
    Unauthorized {
        /// The registry's URL (password masked).
        registry: String,
        /// The HTTP status.
        status: u16,
    },
    /// The registry could not be reached (after retrying).
    #[error(
        "registry `{registry}` is unreachable after {attempts} attempts: {reason}; check \
         KAUFMANN_REGISTRY_URL and that the registry is running"
    )]
    Unreachable {
        /// The registry's URL (password masked).
        registry: String,
        /// How many requests were tried.
        attempts: u32,
        /// The last error.
        reason: String,
    },
    /// A TLS file for the registry cannot be used.
    #[error("registry TLS: `{path}` ({key}): {reason}")]
    Tls {
        /// The config key that names the file.
        key: &'static str,
        /// The file.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The registry URL has a scheme this build does not speak.
    #[error(
        "registry URL `{url}` is not supported: use `mock://<scope>` (in-memory registry) or \
         `http(s)://host:port` (a Confluent-compatible registry)"
    )]
    UnsupportedUrl {
        /// The URL (password masked).
        url: String,
    },
}

/// A value that does not fit its Avro schema, with the path of fields that leads to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AvroError {
    problem: String,
    /// Field names, innermost first.
    path: Vec<String>,
}

impl AvroError {
    /// An error with no field path yet.
    pub fn new(problem: impl Into<String>) -> Self {
        Self {
            problem: problem.into(),
            path: Vec::new(),
        }
    }

    /// The same error, one field further out (`field` contains the failing value).
    #[must_use]
    pub fn in_field(mut self, field: &str) -> Self {
        self.path.push(field.to_owned());
        self
    }

    /// The problem, without the field path.
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// The dotted field path to the failing value (empty at the top level).
    pub fn path(&self) -> String {
        let mut names: Vec<&str> = self.path.iter().map(String::as_str).collect();
        names.reverse();
        names.join(".")
    }
}

impl fmt::Display for AvroError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "field `{}`: {}", self.path(), self.problem)
        }
    }
}
