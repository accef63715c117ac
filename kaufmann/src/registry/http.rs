//! The HTTP client for Confluent's Schema Registry REST API.

use std::sync::atomic::{AtomicU64, Ordering as Atomic};
use std::sync::Arc;
use std::time::Duration;

use apache_avro::Schema;
use reqwest::{Method, Url};
use serde_json::{json, Value};

use super::bounded::Bounded;
use super::{
    schema_text, Compatibility, CompatibilityReport, RegisteredSchema, SchemaRegistry,
    SubjectVersion,
};
use crate::error::RegistryError;

/// The media type of Confluent's REST API.
const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// How the HTTP client talks to the registry.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The limit for one request, connection included.
    pub timeout: Duration,
    /// How many times a request is repeated after a connection error or a 5xx answer.
    pub retries: u32,
    /// The wait before the first repeat; it doubles with each one.
    pub backoff: Duration,
    /// A bearer token sent with every request (instead of the URL's basic auth).
    pub bearer_token: Option<String>,
    /// The most schemas (by id) and registrations (by subject and schema) kept in the cache.
    pub cache_capacity: usize,
    /// Certificates for `https://`: a CA to trust, a client certificate to present.
    pub tls: RegistryTls,
}

/// TLS to the registry beyond the public CAs (PEM files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryTls {
    /// CA certificates trusted besides the public ones (`registry_ca_location`).
    pub ca_location: Option<String>,
    /// The client certificate chain shown to a registry that asks for one
    /// (`registry_certificate_location`; needs `key_location`).
    pub certificate_location: Option<String>,
    /// The client certificate's private key, unencrypted PKCS#8, PKCS#1 or SEC1
    /// (`registry_key_location`).
    pub key_location: Option<String>,
}

impl RegistryTls {
    /// Adds the CA and the client certificate to `builder`.
    fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, RegistryError> {
        let read = |key: &'static str, path: &str| {
            std::fs::read(path).map_err(|err| RegistryError::Tls {
                key,
                path: path.to_owned(),
                reason: err.to_string(),
            })
        };
        if let Some(path) = &self.ca_location {
            let pem = read("registry_ca_location", path)?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| RegistryError::Tls {
                    key: "registry_ca_location",
                    path: path.clone(),
                    reason: "no PEM certificate in the file".to_owned(),
                })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        match (&self.certificate_location, &self.key_location) {
            (Some(certificate), Some(key)) => {
                let mut pem = read("registry_certificate_location", certificate)?;
                pem.push(b'\n');
                pem.extend(read("registry_key_location", key)?);
                let identity =
                    reqwest::Identity::from_pem(&pem).map_err(|err| RegistryError::Tls {
                        key: "registry_certificate_location",
                        path: format!("{certificate} with {key}"),
                        reason: format!("not a PEM certificate chain and private key: {err}"),
                    })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            (Some(path), None) | (None, Some(path)) => {
                return Err(RegistryError::Tls {
                    key: if self.key_location.is_some() {
                        "registry_key_location"
                    } else {
                        "registry_certificate_location"
                    },
                    path: path.clone(),
                    reason: "a client certificate needs both registry_certificate_location and \
                             registry_key_location"
                        .to_owned(),
                });
            }
        }
        Ok(builder)
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(100),
            bearer_token: None,
            cache_capacity: 10_000,
            tls: RegistryTls::default(),
        }
    }
}

/// A client for a Confluent-compatible registry over HTTP(S). Schemas by id and the ids of
/// registered schemas are cached (successes only, up to [`HttpOptions::cache_capacity`] each),
/// so a warmed-up service decodes and publishes without asking the registry again.
#[derive(Debug)]
pub struct HttpRegistry {
    base: Url,
    /// The URL without its password, for messages.
    shown: String,
    client: reqwest::Client,
    basic: Option<(String, String)>,
    options: HttpOptions,
    requests: AtomicU64,
    by_id: Bounded<u32, RegisteredSchema>,
    by_schema: Bounded<(String, String), u32>,
}

/// An answer other than success: the HTTP status and Confluent's `error_code` and `message`.
struct Refusal {
    status: u16,
    code: u32,
    message: String,
}

/// What a request was about, to name it in errors.
#[derive(Default)]
struct About<'a> {
    subject: Option<&'a str>,
    id: Option<u32>,
    version: Option<&'a str>,
    level: Option<&'a str>,
}

impl HttpRegistry {
    /// A client for the registry at `url` (`http(s)://[user:password@]host[:port][/path]`).
    pub fn new(url: &str, options: HttpOptions) -> Result<Self, RegistryError> {
        let unsupported = || RegistryError::UnsupportedUrl {
            url: crate::secrets::mask_url(url),
        };
        let mut base = Url::parse(url).map_err(|_| unsupported())?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(unsupported());
        }
        let basic = (!base.username().is_empty()).then(|| {
            (
                base.username().to_owned(),
                base.password().unwrap_or_default().to_owned(),
            )
        });
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let client = options
            .tls
            .apply(reqwest::Client::builder().timeout(options.timeout))?
            .build()
            .map_err(|err| RegistryError::Unreachable {
                registry: base.to_string(),
                attempts: 0,
                reason: err.to_string(),
            })?;
        Ok(Self {
            shown: base.as_str().trim_end_matches('/').to_owned(),
            base,
            client,
            basic,
            by_id: Bounded::new(options.cache_capacity),
            by_schema: Bounded::new(options.cache_capacity),
            options,
            requests: AtomicU64::new(0),
        })
    }

    /// How many HTTP requests this client has sent (each retry counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Atomic::Relaxed)
    }

    fn endpoint(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends one request, repeating it after connection errors and 5xx answers.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Result<Value, Refusal>, RegistryError> {
        let attempts = self.options.retries + 1;
        let mut wait = self.options.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .header(reqwest::header::ACCEPT, MEDIA_TYPE);
            if let Some(body) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, MEDIA_TYPE)
                    .body(body.to_string());
            }
            if let Some(token) = &self.options.bearer_token {
                request = request.bearer_auth(token);
            } else if let Some((user, password)) = &self.basic {
                request = request.basic_auth(user, Some(password));
            }
            self.requests.fetch_add(1, Atomic::Relaxed);
            let last = attempt == attempts;
            let response = match request.send().await {
                Ok(response) => response,
                Err(err) if last => {
                    return Err(RegistryError::Unreachable {
                        registry: self.shown.clone(),
                        attempts,
                        reason: error_chain(&err),
                    })
                }
                Err(err) => {
                    tracing::warn!(registry = %self.shown, attempt, "registry request failed: {}", error_chain(&err));
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    continue;
                }
            };
            let status = response.status();
            if status.is_server_error() && !last {
                tracing::warn!(registry = %self.shown, attempt, "registry answered {status}; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            let json: Option<Value> = serde_json::from_str(&text).ok();
            if status.is_success() {
                return json.map(Ok).ok_or_else(|| RegistryError::Server {
                    registry: self.shown.clone(),
                    status: status.as_u16(),
                    code: u32::from(status.as_u16()),
                    message: format!("the answer is not JSON: {text:?}"),
                });
            }
            let field = |name: &str| json.as_ref().and_then(|j| j.get(name).cloned());
            return Ok(Err(Refusal {
                status: status.as_u16(),
                code: field("error_code")
                    .and_then(|c| c.as_u64())
                    .and_then(|c| u32::try_from(c).ok())
                    .unwrap_or(u32::from(status.as_u16())),
                message: field("message")
                    .and_then(|m| m.as_str().map(str::to_owned))
                    .unwrap_or(text),
            }));
        }
    }

    /// A request whose refusals become errors.
    async fn ask(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        about: &About<'_>,
    ) -> Result<Value, RegistryError> {
        match self.call(method, url, body).await? {
            Ok(value) => Ok(value),
            Err(refusal) => Err(self.refused(refusal, about).await),
        }
    }

    async fn refused(&self, refusal: Refusal, about: &About<'_>) -> RegistryError {
        let registry = self.shown.clone();
        let subject = about.subject.unwrap_or_default().to_owned();
        match (refusal.status, refusal.code) {
            (401 | 403, _) => RegistryError::Unauthorized {
                registry,
                status: refusal.status,
            },
            (_, 40401) => RegistryError::SubjectNotFound { subject, registry },
            (_, 40402) => RegistryError::VersionNotFound {
                subject,
                version: about.version.unwrap_or_default().to_owned(),
                registry,
            },
            (_, 40403) => match about.id {
                Some(id) => RegistryError::SchemaNotFound { id, registry },
                None => RegistryError::SchemaNotInSubject { subject, registry },
            },
            (_, 409) => {
                let level = match about.subject {
                    Some(s) => self.compatibility(Some(s)).await.ok(),
                    None => None,
                };
                RegistryError::Incompatible {
                    subject,
                    level: level.map_or("its", Compatibility::name),
                    messages: vec![refusal.message],
                }
            }
            (_, 42201) => RegistryError::InvalidSchema {
                subject,
                reason: refusal.message,
            },
            (_, 42203) => RegistryError::InvalidCompatibility {
                level: about.level.unwrap_or_default().to_owned(),
            },
            (status, code) => RegistryError::Server {
                registry,
                status,
                code,
                message: refusal.message,
            },
        }
    }

    fn parse_schema(&self, subject: &str, text: &str) -> Result<Arc<Schema>, RegistryError> {
        Schema::parse_str(text)
            .map(Arc::new)
            .map_err(|err| RegistryError::Server {
                registry: self.shown.clone(),
                status: 200,
                code: 42201,
                message: format!("the registry's schema for `{subject}` does not parse: {err}"),
            })
    }

    fn subject_version(&self, value: &Value) -> Result<SubjectVersion, RegistryError> {
        let subject = value["subject"].as_str().unwrap_or_default().to_owned();
        let number = |name: &str| {
            value[name]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or_default()
        };
        let schema = self.parse_schema(&subject, value["schema"].as_str().unwrap_or_default())?;
        Ok(SubjectVersion {
            version: number("version"),
            id: number("id"),
            subject,
            schema,
        })
    }
}

fn schema_body(schema: &Schema) -> (String, Value) {
    let text = schema_text(schema);
    let body = json!({ "schema": text });
    (text, body)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait::async_trait]
impl SchemaRegistry for HttpRegistry {
    fn url(&self) -> &str {
        &self.shown
    }

    async fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let (text, body) = schema_body(schema);
        let key = (subject.to_owned(), text);
        if let Some(id) = self.by_schema.get(&key) {
            return Ok(id);
        }
        let about = About {
            subject: Some(subject),
            ..About::default()
        };
        // `normalize=true`: the same schema written another way (spacing, key order) is the same
        // version (Apicurio otherwise compares the text as it is).
        let url = self.endpoint(&["subjects", subject, "versions"], &[("normalize", "true")]);
        let answer = self.ask(Method::POST, url, Some(&body), &about).await?;
        let id = answer["id"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| RegistryError::Server {
                registry: self.shown.clone(),
                status: 200,
                code: 0,
                message: format!("registering `{subject}` answered without an id: {answer}"),
            })?;
        self.by_schema.insert(key, id);
        Ok(id)
    }

    async fn lookup(
        &self,
        subject: &str,
        schema: &Schema,
    ) -> Result<SubjectVersion, RegistryError> {
        let (_, body) = schema_body(schema);
        let about = About {
            subject: Some(subject),
            ..About::default()
        };
        let url = self.endpoint(&["subjects", subject], &[("normalize", "true")]);
        let answer = self.ask(Method::POST, url, Some(&body), &about).await?;
        self.subject_version(&answer)
    }

    async fn schema_by_id(&self, id: u32) -> Result<RegisteredSchema, RegistryError> {
        if let Some(found) = self.by_id.get(&id) {
            return Ok(found);
        }
        let about = About {
            id: Some(id),
            ..About::default()
        };
        let id_text = id.to_string();
        let url = self.endpoint(&["schemas", "ids", &id_text], &[]);
        let answer = self.ask(Method::GET, url, None, &about).await?;
        // The subject names the event when a message carries no metadata headers.
        let url = self.endpoint(&["schemas", "ids", &id_text, "versions"], &[]);
        let subject = match self.ask(Method::GET, url, None, &about).await {
            Ok(versions) => versions[0]["subject"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            Err(err) => {
                tracing::debug!("no subject for schema id {id}: {err}");
                String::new()
            }
        };
        let schema = self.parse_schema(&subject, answer["schema"].as_str().unwrap_or_default())?;
        let found = RegisteredSchema::new(id, subject, schema);
        self.by_id.insert(id, found.clone());
        Ok(found)
    }

    async fn latest(&self, subject: &str) -> Result<SubjectVersion, RegistryError> {
        let about = About {
            subject: Some(subject),
            version: Some("latest"),
            ..About::default()
        };
        let url = self.endpoint(&["subjects", subject, "versions", "latest"], &[]);
        let answer = self.ask(Method::GET, url, None, &about).await?;
        self.subject_version(&answer)
    }

    async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        let url = self.endpoint(&["subjects"], &[]);
        let answer = self.ask(Method::GET, url, None, &About::default()).await?;
        let mut subjects: Vec<String> = answer
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        subjects.sort();
        Ok(subjects)
    }

    async fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let about = About {
            subject: Some(subject),
            ..About::default()
        };
        let url = self.endpoint(&["subjects", subject, "versions"], &[]);
        let answer = self.ask(Method::GET, url, None, &about).await?;
        Ok(answer
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_u64().and_then(|v| u32::try_from(v).ok()))
            .collect())
    }

    async fn test_compatibility(
        &self,
        subject: &str,
        schema: &Schema,
    ) -> Result<CompatibilityReport, RegistryError> {
        let (_, body) = schema_body(schema);
        let about = About {
            subject: Some(subject),
            ..About::default()
        };
        // Without a version: the check a registration would make (under a transitive level,
        // against every version; `versions/latest` checks the latest alone).
        let url = self.endpoint(
            &["compatibility", "subjects", subject, "versions"],
            &[("verbose", "true")],
        );
        let answer = match self.ask(Method::POST, url, Some(&body), &about).await {
            Err(RegistryError::SubjectNotFound { .. } | RegistryError::VersionNotFound { .. }) => {
                return Ok(CompatibilityReport {
                    compatible: true,
                    messages: Vec::new(),
                })
            }
            other => other?,
        };
        Ok(CompatibilityReport {
            compatible: answer["is_compatible"].as_bool().unwrap_or(false),
            messages: answer["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                .collect(),
        })
    }

    async fn compatibility(&self, subject: Option<&str>) -> Result<Compatibility, RegistryError> {
        let about = About {
            subject,
            ..About::default()
        };
        let url = match subject {
            Some(subject) => self.endpoint(&["config", subject], &[("defaultToGlobal", "true")]),
            None => self.endpoint(&["config"], &[]),
        };
        let answer = match self.ask(Method::GET, url, None, &about).await {
            // A subject no one registered yet has the global level (Confluent answers so;
            // Apicurio answers 40401).
            Err(RegistryError::SubjectNotFound { .. }) if subject.is_some() => {
                return Box::pin(self.compatibility(None)).await;
            }
            other => other?,
        };
        let level = answer["compatibilityLevel"]
            .as_str()
            .or_else(|| answer["compatibility"].as_str())
            .unwrap_or_default();
        Ok(level.parse()?)
    }

    async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Result<(), RegistryError> {
        let about = About {
            subject,
            level: Some(level.name()),
            ..About::default()
        };
        let url = match subject {
            Some(subject) => self.endpoint(&["config", subject], &[]),
            None => self.endpoint(&["config"], &[]),
        };
        let body = json!({ "compatibility": level.name() });
        self.ask(Method::PUT, url, Some(&body), &about)
            .await
            .map(drop)
    }

    async fn ping(&self) -> Result<(), RegistryError> {
        self.compatibility(None).await.map(drop)
    }
}
