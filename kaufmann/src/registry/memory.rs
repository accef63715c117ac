//! The in-memory registry: Confluent's rules (one id per schema across subjects, versions per
//! subject, compatibility levels global and per subject) without a server.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use apache_avro::Schema;

use super::{
    schema_text, Compatibility, CompatibilityReport, RegisteredSchema, SchemaRegistry,
    SubjectVersion,
};
use crate::error::RegistryError;

/// An in-memory schema registry: ids are assigned from 1 in registration order, one schema (by
/// its full JSON form) has one id whatever the subject, each subject numbers its versions from 1,
/// and registering checks the subject's compatibility level (BACKWARD unless set), as Confluent's
/// registry does.
#[derive(Debug)]
pub struct MemoryRegistry {
    url: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// By id - 1.
    schemas: Vec<RegisteredSchema>,
    by_text: HashMap<String, u32>,
    /// Each subject's schema ids, by version - 1.
    subjects: BTreeMap<String, Vec<u32>>,
    global: Compatibility,
    levels: HashMap<String, Compatibility>,
}

impl MemoryRegistry {
    /// An empty registry; `url` names it in errors.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Version `version` of `subject` (`GET /subjects/{subject}/versions/{version}`).
    pub fn subject_version(
        &self,
        subject: &str,
        version: u32,
    ) -> Result<SubjectVersion, RegistryError> {
        let state = self.state();
        let count = self.count(&state, subject)?;
        match version as usize {
            n @ 1.. if n <= count => Ok(state.version(subject, n - 1)),
            _ => Err(RegistryError::VersionNotFound {
                subject: subject.to_owned(),
                version: version.to_string(),
                registry: self.url.clone(),
            }),
        }
    }

    /// `schema` checked at `subject`'s level against its version `version` alone
    /// (`POST /compatibility/subjects/{subject}/versions/{version}`).
    pub fn report_against(
        &self,
        subject: &str,
        schema: &Schema,
        version: u32,
    ) -> Result<CompatibilityReport, RegistryError> {
        let against = self.subject_version(subject, version)?;
        let messages = self
            .state()
            .level(subject)
            .breaks(schema, &[(version, &against.schema)])
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        Ok(CompatibilityReport {
            compatible: messages.is_empty(),
            messages,
        })
    }

    /// The subjects and versions that are the schema with this id
    /// (`GET /schemas/ids/{id}/versions`).
    pub fn versions_of(&self, id: u32) -> Vec<(String, u32)> {
        let state = self.state();
        let mut found = Vec::new();
        for (subject, ids) in &state.subjects {
            for (index, known) in ids.iter().enumerate() {
                if *known == id {
                    found.push((
                        subject.clone(),
                        u32::try_from(index + 1).unwrap_or(u32::MAX),
                    ));
                }
            }
        }
        found
    }

    /// How many versions `subject` has; a subject without versions is not found.
    fn count(&self, state: &State, subject: &str) -> Result<usize, RegistryError> {
        state
            .subjects
            .get(subject)
            .map(Vec::len)
            .ok_or_else(|| self.subject_not_found(subject))
    }

    fn subject_not_found(&self, subject: &str) -> RegistryError {
        RegistryError::SubjectNotFound {
            subject: subject.to_owned(),
            registry: self.url.clone(),
        }
    }
}

impl State {
    fn version(&self, subject: &str, index: usize) -> SubjectVersion {
        let id = self.subjects[subject][index];
        SubjectVersion {
            subject: subject.to_owned(),
            version: u32::try_from(index + 1).unwrap_or(u32::MAX),
            id,
            schema: self.schema(id).schema.clone(),
        }
    }

    fn schema(&self, id: u32) -> &RegisteredSchema {
        &self.schemas[id as usize - 1]
    }

    fn level(&self, subject: &str) -> Compatibility {
        self.levels.get(subject).copied().unwrap_or(self.global)
    }

    fn report(&self, subject: &str, schema: &Schema) -> CompatibilityReport {
        let earlier: Vec<Arc<Schema>> = self
            .subjects
            .get(subject)
            .map(|ids| {
                ids.iter()
                    .map(|id| self.schema(*id).schema.clone())
                    .collect()
            })
            .unwrap_or_default();
        let messages = self.level(subject).check(schema, &earlier);
        CompatibilityReport {
            compatible: messages.is_empty(),
            messages,
        }
    }
}

#[async_trait::async_trait]
impl SchemaRegistry for MemoryRegistry {
    fn url(&self) -> &str {
        &self.url
    }

    async fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let text = schema_text(schema);
        let mut state = self.state();
        let known = state.by_text.get(&text).copied();
        if let Some(id) = known {
            if state
                .subjects
                .get(subject)
                .is_some_and(|ids| ids.contains(&id))
            {
                return Ok(id);
            }
        }
        let report = state.report(subject, schema);
        if !report.compatible {
            return Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                level: state.level(subject).name(),
                messages: report.messages,
            });
        }
        let id = if let Some(id) = known {
            id
        } else {
            let id = u32::try_from(state.schemas.len() + 1).unwrap_or(u32::MAX);
            let registered = RegisteredSchema::new(id, subject, Arc::new(schema.clone()));
            state.schemas.push(registered);
            state.by_text.insert(text, id);
            id
        };
        state
            .subjects
            .entry(subject.to_owned())
            .or_default()
            .push(id);
        Ok(id)
    }

    async fn lookup(
        &self,
        subject: &str,
        schema: &Schema,
    ) -> Result<SubjectVersion, RegistryError> {
        let text = schema_text(schema);
        let state = self.state();
        let ids = state
            .subjects
            .get(subject)
            .ok_or_else(|| self.subject_not_found(subject))?;
        let id = state.by_text.get(&text);
        let index = ids
            .iter()
            .position(|known| Some(known) == id)
            .ok_or_else(|| RegistryError::SchemaNotInSubject {
                subject: subject.to_owned(),
                registry: self.url.clone(),
            })?;
        Ok(state.version(subject, index))
    }

    async fn schema_by_id(&self, id: u32) -> Result<RegisteredSchema, RegistryError> {
        let state = self.state();
        match id {
            0 => None,
            id => state.schemas.get(id as usize - 1).cloned(),
        }
        .ok_or_else(|| RegistryError::SchemaNotFound {
            id,
            registry: self.url.clone(),
        })
    }

    async fn latest(&self, subject: &str) -> Result<SubjectVersion, RegistryError> {
        let state = self.state();
        let count = self.count(&state, subject)?;
        Ok(state.version(subject, count - 1))
    }

    async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        Ok(self.state().subjects.keys().cloned().collect())
    }

    async fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let state = self.state();
        let count = self.count(&state, subject)?;
        Ok((1..=u32::try_from(count).unwrap_or(u32::MAX)).collect())
    }

    async fn test_compatibility(
        &self,
        subject: &str,
        schema: &Schema,
    ) -> Result<CompatibilityReport, RegistryError> {
        Ok(self.state().report(subject, schema))
    }

    async fn compatibility(&self, subject: Option<&str>) -> Result<Compatibility, RegistryError> {
        let state = self.state();
        Ok(subject.map_or(state.global, |s| state.level(s)))
    }

    async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Result<(), RegistryError> {
        let mut state = self.state();
        match subject {
            Some(subject) => {
                state.levels.insert(subject.to_owned(), level);
            }
            None => state.global = level,
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), RegistryError> {
        Ok(())
    }
}
