//! Writer schemas through one bounded cache: by the id a message carries (ids the registry does
//! not have remembered for a while), or the latest of a subject; a registry that fails is an
//! outage or a permanent failure of the message.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, RegistryError};
use crate::fast_map::QuickState;
use crate::observe::metrics::Metrics;
use crate::process::failure::{outage_of, permanent, Failure};
use crate::registry::bounded::Bounded;
use crate::registry::{RegisteredSchema, SchemaRegistry};

/// Finds writer schemas by id, asking the registry once per id. Entries are shared, so a hit
/// costs one reference count, not a copy of the subject and schema handles.
pub(crate) struct Decoder {
    registry: Arc<dyn SchemaRegistry>,
    /// Where the registry's reachability is reported.
    metrics: Arc<Metrics>,
    cache: Bounded<u32, Arc<RegisteredSchema>, QuickState>,
    /// Ids the registry does not have (kept for [`MISS_TTL`]).
    misses: Bounded<u32, ()>,
    /// `kaufmann_ex`: the latest schema of each subject (kept for [`LATEST_TTL`]).
    latest: Bounded<String, Arc<RegisteredSchema>>,
}

/// The most schemas kept by id (a service sees a few; the bound is for the worst case).
const MAX_SCHEMAS: usize = 10_000;

/// How long the latest schema of a subject is trusted (`kaufmann_ex` messages name no schema
/// id, so a new version is seen when this passes).
const LATEST_TTL: Duration = Duration::from_secs(30);

/// How long a schema id the registry does not have is answered from memory: messages with that id
/// fail at once (dead letter, kind `registry`) without asking the registry again.
pub const MISS_TTL: Duration = Duration::from_secs(30);

/// The most unknown ids remembered (garbage ids cannot grow memory without bound).
const MAX_MISSES: usize = 10_000;

impl Decoder {
    /// A decoder asking `registry`, reporting its health to `metrics`.
    pub(crate) fn new(registry: Arc<dyn SchemaRegistry>, metrics: Arc<Metrics>) -> Self {
        Self {
            registry,
            metrics,
            cache: Bounded::new(MAX_SCHEMAS),
            misses: Bounded::with_ttl(MAX_MISSES, MISS_TTL),
            latest: Bounded::with_ttl(MAX_SCHEMAS, LATEST_TTL),
        }
    }

    /// The registry it asks.
    pub(crate) fn registry(&self) -> &dyn SchemaRegistry {
        &*self.registry
    }

    /// The writer schema `id`, if it was fetched already.
    pub(crate) fn cached(&self, id: u32) -> Option<Arc<RegisteredSchema>> {
        self.cache.get(&id)
    }

    pub(crate) async fn writer(&self, id: u32) -> Result<Arc<RegisteredSchema>, Failure> {
        if let Some(found) = self.cached(id) {
            return Ok(found);
        }
        if let Some(((), age)) = self.misses.get_with_age(&id) {
            return Err(permanent(
                "registry",
                &format_args!(
                    "schema id {id} is not in the registry (it said so {age:.0?} ago; asked again \
                     after {MISS_TTL:?})"
                ),
            ));
        }
        let found = match self.registry.schema_by_id(id).await {
            Ok(found) => Arc::new(found),
            Err(err) => {
                if matches!(err, RegistryError::SchemaNotFound { .. }) {
                    self.misses.insert(id, ());
                }
                return Err(self.registry_failure(&err.into()));
            }
        };
        self.metrics.health.registry.set_up();
        self.cache.insert(id, found.clone());
        Ok(found)
    }

    /// The latest schema of `subject` (for `kaufmann_ex` messages), asked for again after
    /// [`LATEST_TTL`].
    pub(crate) async fn latest(&self, subject: &str) -> Result<Arc<RegisteredSchema>, Failure> {
        if let Some(found) = self.latest.get(subject) {
            return Ok(found);
        }
        let latest = self
            .registry
            .latest(subject)
            .await
            .map_err(|e| self.registry_failure(&e.into()))?;
        self.metrics.health.registry.set_up();
        let found = Arc::new(RegisteredSchema::new(latest.id, subject, latest.schema));
        self.latest.insert(subject.to_owned(), found.clone());
        Ok(found)
    }

    /// A registry error as a failure: an outage (the registry is down, overloaded or refuses
    /// the credentials: the message waits) or permanent (it answered, and retrying cannot help).
    pub(crate) fn registry_failure(&self, error: &Error) -> Failure {
        if let Some(of) = outage_of(error, &self.metrics) {
            return Failure::outage(of, error, &self.metrics);
        }
        permanent("registry", error)
    }
}
