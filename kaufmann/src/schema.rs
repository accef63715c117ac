//! Schemas: the trait generated types implement, the Confluent wire format and the registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use apache_avro::Schema;

use crate::error::{CodecError, RegistryError};

/// A type generated from a `.avsc` file by [`schemas!`](crate::schemas): it knows its event name and
/// its Avro schema.
pub trait EventSchema: serde::Serialize + serde::de::DeserializeOwned + Send + 'static {
    /// The event name, the schema file's name without `.avsc` (for example `command.user.create`).
    const EVENT_NAME: &'static str;
    /// The schema text exactly as the `.avsc` file holds it.
    const SCHEMA_JSON: &'static str;

    /// The parsed schema (parsed once, on first use).
    fn schema() -> &'static Schema;

    /// The schema's parsing canonical form (computed once, on first use).
    fn canonical_form() -> &'static str;
}

/// Parses a schema text that `schemas!` already validated at compile time.
///
/// Not public API.
#[doc(hidden)]
pub fn parse_validated(
    cell: &'static OnceLock<Schema>,
    event: &str,
    json: &str,
) -> &'static Schema {
    cell.get_or_init(|| match Schema::parse_str(json) {
        Ok(schema) => schema,
        // `schemas!` parsed this same text with the same apache-avro at compile time.
        Err(err) => panic!("schema of `{event}` was valid at compile time but not now: {err}"),
    })
}

/// The canonical form of a schema, computed once into `cell`.
///
/// Not public API.
#[doc(hidden)]
pub fn canonical_once(cell: &'static OnceLock<String>, schema: &Schema) -> &'static str {
    cell.get_or_init(|| schema.canonical_form())
}

/// The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the Avro body.
pub mod wire {
    use super::CodecError;

    /// The magic byte that opens every Confluent-framed value.
    pub const MAGIC: u8 = 0;
    /// The length of the header (magic byte and schema id).
    pub const HEADER_LEN: usize = 5;

    /// Splits a framed value into its schema id and Avro body.
    pub fn split(value: &[u8]) -> Result<(u32, &[u8]), CodecError> {
        if value.len() < HEADER_LEN {
            return Err(CodecError::TooShort { len: value.len() });
        }
        if value[0] != MAGIC {
            return Err(CodecError::BadMagic { found: value[0] });
        }
        let id = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
        Ok((id, &value[HEADER_LEN..]))
    }

    /// Frames an Avro body with the header for `schema_id`.
    pub fn frame(schema_id: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.push(MAGIC);
        out.extend_from_slice(&schema_id.to_be_bytes());
        out.extend_from_slice(body);
        out
    }
}

/// The registry subject for an event under the default (topic-name style) strategy: `<event>-value`.
pub fn subject_for(event: &str) -> String {
    format!("{event}-value")
}

/// A schema the registry knows, with the subject it was first registered under.
#[derive(Debug, Clone)]
pub struct RegisteredSchema {
    /// The registry's id for the schema.
    pub id: u32,
    /// The subject it was first registered under.
    pub subject: String,
    /// The parsed schema.
    pub schema: Arc<Schema>,
    /// Its parsing canonical form (to see, once per schema, whether it equals a reader's).
    pub canonical: Arc<str>,
}

/// A Confluent-compatible schema registry.
#[async_trait::async_trait]
pub trait SchemaRegistry: Send + Sync + std::fmt::Debug {
    /// Registers `schema` under `subject` (or finds it, when it is already there) and returns its id.
    async fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError>;
    /// Fetches the schema with this id.
    async fn schema_by_id(&self, id: u32) -> Result<RegisteredSchema, RegistryError>;
    /// Checks that the registry answers (the readiness probe waits for it).
    async fn ping(&self) -> Result<(), RegistryError> {
        Ok(())
    }
}

/// Opens the registry a URL names. `mock://<scope>` is an in-memory registry shared by everything in
/// this process that names the same scope (as Confluent's serializers name their mock registry).
pub fn open_registry(url: &str) -> Result<Arc<dyn SchemaRegistry>, RegistryError> {
    static SCOPES: OnceLock<Mutex<HashMap<String, Arc<MemoryRegistry>>>> = OnceLock::new();
    let Some(scope) = url.strip_prefix("mock://") else {
        return Err(RegistryError::UnsupportedUrl {
            url: url.to_owned(),
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

/// An in-memory schema registry: ids are assigned from 1 in registration order, and one schema
/// (by canonical form) has one id whatever the subject, as in Confluent's registry.
#[derive(Debug)]
pub struct MemoryRegistry {
    url: String,
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    by_canonical: HashMap<String, u32>,
    by_id: HashMap<u32, RegisteredSchema>,
    subjects: HashMap<String, Vec<u32>>,
}

impl MemoryRegistry {
    /// An empty registry; `url` names it in errors.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl SchemaRegistry for MemoryRegistry {
    async fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let canonical = schema.canonical_form();
        let shared: Arc<str> = Arc::from(canonical.as_str());
        let mut state = self.state();
        let next = u32::try_from(state.by_id.len() + 1).unwrap_or(u32::MAX);
        let id = *state.by_canonical.entry(canonical).or_insert(next);
        if id == next {
            state.by_id.insert(
                id,
                RegisteredSchema {
                    id,
                    subject: subject.to_owned(),
                    schema: Arc::new(schema.clone()),
                    canonical: shared,
                },
            );
        }
        let versions = state.subjects.entry(subject.to_owned()).or_default();
        if !versions.contains(&id) {
            versions.push(id);
        }
        Ok(id)
    }

    async fn schema_by_id(&self, id: u32) -> Result<RegisteredSchema, RegistryError> {
        self.state()
            .by_id
            .get(&id)
            .cloned()
            .ok_or_else(|| RegistryError::SchemaNotFound {
                id,
                registry: self.url.clone(),
            })
    }
}

/// Encodes a value as the Avro body for `schema` (no framing).
pub fn encode_body<T: serde::Serialize>(
    event: &str,
    schema: &Schema,
    value: &T,
) -> Result<Vec<u8>, CodecError> {
    let avro = |source: apache_avro::Error| CodecError::Avro {
        action: "encode",
        event: event.to_owned(),
        schema_id: None,
        source: Box::new(source),
    };
    let value = apache_avro::to_value(value).map_err(avro)?;
    let value = value.resolve(schema).map_err(avro)?;
    apache_avro::to_avro_datum(schema, value).map_err(avro)
}

/// Decodes an Avro body written with `writer` into `T`, resolving it to `T`'s own schema.
pub fn decode_body<T: EventSchema>(
    writer: &Schema,
    schema_id: Option<u32>,
    body: &[u8],
) -> Result<T, CodecError> {
    decode_resolved::<T>(writer, true, schema_id, body)
}

/// Decodes an Avro body written with `writer` into `T`; `resolve: false` skips Avro schema
/// resolution, for a writer schema known to equal `T`'s (about twice as fast).
pub(crate) fn decode_resolved<T: EventSchema>(
    writer: &Schema,
    resolve: bool,
    schema_id: Option<u32>,
    mut body: &[u8],
) -> Result<T, CodecError> {
    let avro = |source: apache_avro::Error| CodecError::Avro {
        action: "decode",
        event: T::EVENT_NAME.to_owned(),
        schema_id,
        source: Box::new(source),
    };
    let reader = resolve.then(T::schema);
    let value = apache_avro::from_avro_datum(writer, &mut body, reader).map_err(avro)?;
    apache_avro::from_value(&value).map_err(avro)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_and_split_round_trip() {
        let framed = wire::frame(0x0102_0304, b"body");
        assert_eq!(framed[..5], [0, 1, 2, 3, 4]);
        assert_eq!(wire::split(&framed).unwrap(), (0x0102_0304, &b"body"[..]));
    }

    #[test]
    fn split_rejects_bad_frames() {
        assert!(matches!(
            wire::split(&[0, 1]),
            Err(CodecError::TooShort { len: 2 })
        ));
        assert!(matches!(
            wire::split(&[7, 0, 0, 0, 1, 2]),
            Err(CodecError::BadMagic { found: 7 })
        ));
    }

    #[tokio::test]
    async fn memory_registry_gives_one_id_per_schema() {
        let registry = MemoryRegistry::new("mock://unit");
        let a = Schema::parse_str(
            r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#,
        )
        .unwrap();
        let b = Schema::parse_str(
            r#"{"type":"record","name":"B","fields":[{"name":"y","type":"long"}]}"#,
        )
        .unwrap();
        let id_a = registry.register("a-value", &a).await.unwrap();
        let id_b = registry.register("b-value", &b).await.unwrap();
        assert_ne!(id_a, id_b);
        assert_eq!(registry.register("other-value", &a).await.unwrap(), id_a);
        let found = registry.schema_by_id(id_b).await.unwrap();
        assert_eq!(found.subject, "b-value");
        assert_eq!(found.schema.canonical_form(), b.canonical_form());
        assert!(matches!(
            registry.schema_by_id(99).await,
            Err(RegistryError::SchemaNotFound { id: 99, .. })
        ));
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
