//! Schema registries: the [`SchemaRegistry`] trait (a subset of Confluent's REST API), the
//! in-memory registry, the HTTP client and subject naming.
//!
//! `mock://<scope>` opens an in-memory registry shared by everything in the process that names the
//! same scope (as Confluent's serializers name theirs); `http://` and `https://` open the
//! [`HttpRegistry`] client. The local registry server (a development stand-in, not Confluent's
//! registry) is in the `kaufmann-cli` crate.

pub(crate) mod bounded;
mod http;
mod memory;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use apache_avro::Schema;

use crate::error::RegistryError;

pub use http::{HttpOptions, HttpRegistry, RegistryTls};
pub use memory::MemoryRegistry;

use crate::codec::schema::PlainDecoder;

/// A schema the registry knows, found by its id.
#[derive(Debug, Clone)]
pub struct RegisteredSchema {
    /// The registry's id for the schema.
    pub id: u32,
    /// A subject it is registered under (the first one), or empty when the registry did not say.
    pub subject: String,
    /// The parsed schema.
    pub schema: Arc<Schema>,
    /// Its parsing canonical form (to see, once per schema, whether it equals a reader's).
    pub canonical: Arc<str>,
    /// The schema prepared for decoding without resolution, made at the first such decode.
    plain: OnceLock<Option<Arc<PlainDecoder>>>,
}

impl RegisteredSchema {
    /// A registered schema with its canonical form computed.
    pub fn new(id: u32, subject: impl Into<String>, schema: Arc<Schema>) -> Self {
        let canonical = Arc::from(schema.canonical_form().as_str());
        Self {
            id,
            subject: subject.into(),
            schema,
            canonical,
            plain: OnceLock::new(),
        }
    }

    /// The schema prepared for decoding data written with it, without resolution (names
    /// resolved once instead of for every message); `None` when apache-avro cannot prepare it.
    pub(crate) fn plain_decoder(&self) -> Option<&Arc<PlainDecoder>> {
        self.plain
            .get_or_init(|| PlainDecoder::new(&self.schema).map(Arc::new))
            .as_ref()
    }
}

/// One version of a subject.
#[derive(Debug, Clone)]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The version within the subject, from 1.
    pub version: u32,
    /// The schema's registry-wide id.
    pub id: u32,
    /// The schema.
    pub schema: Arc<Schema>,
}

/// The answer to a compatibility test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityReport {
    /// Whether the schema may be registered under the subject.
    pub compatible: bool,
    /// Why not (empty when compatible).
    pub messages: Vec<String>,
}

/// A compatibility level, as Confluent's registry names them (the rules of each are those of
/// `kaufmann schemas lock` and `schemas!` too).
pub use kaufmann_schema_folder::compatibility::{Compatibility, UnknownLevel};

impl From<UnknownLevel> for RegistryError {
    fn from(unknown: UnknownLevel) -> Self {
        Self::InvalidCompatibility { level: unknown.0 }
    }
}

/// How an event's registry subject is named (Confluent's subject name strategies, plus the
/// event-name default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectStrategy {
    /// `<event name>-value` (the default: one subject per event, whatever the topic).
    #[default]
    Event,
    /// `<topic>-value` (Confluent's `TopicNameStrategy`: one schema per topic).
    Topic,
    /// `<record full name>` (Confluent's `RecordNameStrategy`).
    Record,
    /// `<topic>-<record full name>` (Confluent's `TopicRecordNameStrategy`).
    TopicRecord,
}

impl SubjectStrategy {
    /// The accepted config values.
    pub const NAMES: [(&'static str, Self); 4] = [
        ("event", Self::Event),
        ("topic", Self::Topic),
        ("record", Self::Record),
        ("topic_record", Self::TopicRecord),
    ];

    /// The strategy a config value names (`event`, `topic`, `record`, `topic_record`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, strategy)| *strategy)
    }

    /// The subject for `event` (whose schema is `schema`) published to `topic`.
    pub fn subject(self, event: &str, topic: &str, schema: &Schema) -> String {
        let record = || match schema {
            Schema::Record(record) => record.name.fullname(None),
            other => format!("{other:?}"),
        };
        match self {
            Self::Event => subject_for(event),
            Self::Topic => format!("{topic}-value"),
            Self::Record => record(),
            Self::TopicRecord => format!("{topic}-{}", record()),
        }
    }

    /// Whether the subject depends on the topic.
    pub fn uses_topic(self) -> bool {
        matches!(self, Self::Topic | Self::TopicRecord)
    }
}

/// A schema as JSON text with everything it says (defaults, logical types, docs), as registries
/// store it; its parsing canonical form would drop those.
pub fn schema_text(schema: &Schema) -> String {
    serde_json::to_string(schema).unwrap_or_else(|_| schema.canonical_form())
}

/// The registry subject for an event under the default strategy: `<event>-value`.
pub fn subject_for(event: &str) -> String {
    format!("{event}-value")
}

/// A Confluent-compatible schema registry. Every method answers as the REST endpoint it names
/// does, with Confluent's error codes mapped to [`RegistryError`] variants.
#[async_trait::async_trait]
pub trait SchemaRegistry: Send + Sync + fmt::Debug {
    /// Where the registry is (for messages).
    fn url(&self) -> &str;

    /// `POST /subjects/{subject}/versions`: registers `schema` under `subject` (or finds it, when
    /// the subject has it already) and returns its id; a schema the subject's compatibility level
    /// refuses is [`RegistryError::Incompatible`].
    async fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError>;

    /// `POST /subjects/{subject}`: the version of `subject` that is `schema`.
    async fn lookup(&self, subject: &str, schema: &Schema)
        -> Result<SubjectVersion, RegistryError>;

    /// `GET /schemas/ids/{id}`: the schema with this id.
    async fn schema_by_id(&self, id: u32) -> Result<RegisteredSchema, RegistryError>;

    /// `GET /subjects/{subject}/versions/latest`.
    async fn latest(&self, subject: &str) -> Result<SubjectVersion, RegistryError>;

    /// `GET /subjects`, sorted.
    async fn subjects(&self) -> Result<Vec<String>, RegistryError>;

    /// `GET /subjects/{subject}/versions`.
    async fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError>;

    /// `POST /compatibility/subjects/{subject}/versions?verbose=true`: whether `schema`
    /// could be registered under `subject` now (a subject without versions accepts anything).
    async fn test_compatibility(
        &self,
        subject: &str,
        schema: &Schema,
    ) -> Result<CompatibilityReport, RegistryError>;

    /// `GET /config` (`None`) or `GET /config/{subject}?defaultToGlobal=true`.
    async fn compatibility(&self, subject: Option<&str>) -> Result<Compatibility, RegistryError>;

    /// `PUT /config` (`None`) or `PUT /config/{subject}`.
    async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Result<(), RegistryError>;

    /// Checks that the registry answers (the readiness probe waits for it).
    async fn ping(&self) -> Result<(), RegistryError> {
        self.subjects().await.map(drop)
    }
}

/// Opens the registry a URL names: `mock://<scope>` (in-memory, shared by everything in this
/// process that names the same scope), or `http(s)://[user:password@]host[:port]` (the HTTP
/// client, with basic auth from the URL's user info).
pub fn open_registry(url: &str) -> Result<Arc<dyn SchemaRegistry>, RegistryError> {
    open_registry_with(url, HttpOptions::default())
}

/// [`open_registry`] with options for the HTTP client (ignored by `mock://`).
pub fn open_registry_with(
    url: &str,
    options: HttpOptions,
) -> Result<Arc<dyn SchemaRegistry>, RegistryError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Arc::new(HttpRegistry::new(url, options)?));
    }
    Ok(memory_scope(url)?)
}

/// The in-memory registry of a `mock://<scope>` URL, shared by everything in this process that
/// names the same scope.
pub fn memory_scope(url: &str) -> Result<Arc<MemoryRegistry>, RegistryError> {
    static SCOPES: OnceLock<Mutex<HashMap<String, Arc<MemoryRegistry>>>> = OnceLock::new();
    let Some(scope) = url.strip_prefix("mock://") else {
        return Err(RegistryError::UnsupportedUrl {
            url: crate::secrets::mask_url(url),
        });
    };
    let mut scopes = SCOPES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let registry = scopes
        .entry(scope.to_owned())
        .or_insert_with(|| Arc::new(MemoryRegistry::new(url)))
        .clone();
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"R","namespace":"t","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn an_unknown_level_is_an_invalid_compatibility() {
        assert!(matches!(
            "SIDEWAYS".parse::<Compatibility>().map_err(RegistryError::from),
            Err(RegistryError::InvalidCompatibility { level }) if level == "SIDEWAYS"
        ));
    }

    #[test]
    fn strategies_name_subjects_as_confluent_does() {
        let schema = record(r#"{"name":"a","type":"int"}"#);
        let subject = |s: SubjectStrategy| s.subject("event.x", "rapids", &schema);
        assert_eq!(subject(SubjectStrategy::Event), "event.x-value");
        assert_eq!(subject(SubjectStrategy::Topic), "rapids-value");
        assert_eq!(subject(SubjectStrategy::Record), "t.R");
        assert_eq!(subject(SubjectStrategy::TopicRecord), "rapids-t.R");
    }

    #[test]
    fn mock_urls_share_a_scope_and_other_urls_are_refused() {
        let one = open_registry("mock://shared-scope").unwrap();
        let two = open_registry("mock://shared-scope").unwrap();
        assert!(std::ptr::addr_eq(Arc::as_ptr(&one), Arc::as_ptr(&two)));
        assert!(matches!(
            open_registry("ftp://x"),
            Err(RegistryError::UnsupportedUrl { .. })
        ));
    }
}
