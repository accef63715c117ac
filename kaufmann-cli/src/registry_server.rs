//! A local registry server for development and tests: an in-memory registry behind the subset
//! of Confluent's Schema Registry REST API that serializers and Kaufmann use.
//!
//! It is a stand-in, not Confluent's registry: Avro only (no schema references, no other schema
//! types), nothing persisted, no deletes, modes or contexts. The requests, answers and error codes
//! follow Confluent's published API reference:
//!
//! | request | answer |
//! |---|---|
//! | `GET /subjects` | `["a-value", ..]` |
//! | `GET /subjects/{subject}/versions` | `[1, 2]` |
//! | `GET /subjects/{subject}/versions/{version\|latest}` | `{subject, id, version, schema}` |
//! | `POST /subjects/{subject}/versions` `{schema}` | `{id}` |
//! | `POST /subjects/{subject}` `{schema}` | `{subject, id, version, schema}` |
//! | `GET /schemas/ids/{id}` | `{schema}` |
//! | `GET /schemas/ids/{id}/versions` | `[{subject, version}]` |
//! | `POST /compatibility/subjects/{subject}/versions` `{schema}` | `{is_compatible, messages}`: the check a registration makes |
//! | `POST /compatibility/subjects/{subject}/versions/{version\|latest}` `{schema}` | `{is_compatible, messages}`: against that version |
//! | `GET /config`, `GET /config/{subject}` | `{compatibilityLevel}` |
//! | `PUT /config`, `PUT /config/{subject}` `{compatibility}` | `{compatibility}` |
//!
//! Errors answer `{error_code, message}` with the HTTP status of the code's first three digits:
//! 40401 subject not found, 40402 version not found, 40403 schema not found, 409 incompatible
//! schema, 42201 invalid schema, 42202 invalid version, 42203 invalid compatibility level.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering as Atomic};
use std::sync::Arc;

use apache_avro::Schema;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use kaufmann::error::RegistryError;
use kaufmann::registry::{
    schema_text, Compatibility, MemoryRegistry, SchemaRegistry, SubjectVersion,
};

/// A running local registry server. It stops when dropped or [`stopped`](Self::stop).
#[derive(Debug)]
pub struct LocalRegistry {
    addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    registry: Arc<MemoryRegistry>,
    requests: AtomicU64,
    /// Requests but `GET /config` (what a service's health probe asks).
    schema_requests: AtomicU64,
}

/// The certificates of a registry served over TLS (PEM files).
#[derive(Debug, Clone, Default)]
pub struct ServerTls {
    /// The server's certificate chain.
    pub certificate: String,
    /// Its private key (unencrypted PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// When set, clients must present a certificate signed by one of these CAs.
    pub client_ca: Option<String>,
}

impl ServerTls {
    /// The TLS acceptor these files describe.
    fn acceptor(&self) -> std::io::Result<tokio_rustls::TlsAcceptor> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let invalid = |what: &str, path: &str, err: &dyn std::fmt::Display| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{what} `{path}`: {err}"),
            )
        };
        let certificates = |path: &str| -> std::io::Result<Vec<CertificateDer<'static>>> {
            CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect)
                .map_err(|e| invalid("certificates", path, &e))
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("TLS versions", "", &e))?;
        let builder = match &self.client_ca {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in certificates(path)? {
                    roots
                        .add(certificate)
                        .map_err(|e| invalid("client CA", path, &e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| invalid("client CA", path, &e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| invalid("private key", &self.key, &e))?;
        let config = builder
            .with_single_cert(certificates(&self.certificate)?, key)
            .map_err(|e| invalid("certificate", &self.certificate, &e))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

impl LocalRegistry {
    /// Serves `registry` on `addr` (`127.0.0.1:0` picks a free port).
    pub async fn start(addr: &str, registry: Arc<MemoryRegistry>) -> std::io::Result<Self> {
        Self::serve(addr, registry, None).await
    }

    /// Serves `registry` over TLS on `addr`, with client certificates when `tls.client_ca` is
    /// set.
    pub async fn start_tls(
        addr: &str,
        registry: Arc<MemoryRegistry>,
        tls: &ServerTls,
    ) -> std::io::Result<Self> {
        Self::serve(addr, registry, Some(tls.acceptor()?)).await
    }

    async fn serve(
        addr: &str,
        registry: Arc<MemoryRegistry>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            registry,
            requests: AtomicU64::new(0),
            schema_requests: AtomicU64::new(0),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(shared.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = match tls {
            None => tokio::spawn(async move {
                let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                    let _ = stopped.await;
                });
                if let Err(err) = serve.await {
                    tracing::error!("local registry server stopped: {err}");
                }
            }),
            Some(acceptor) => tokio::spawn(serve_tls(listener, acceptor, app, stopped)),
        };
        tracing::info!("local schema registry (development stand-in) on {scheme}://{addr}");
        Ok(Self {
            addr,
            scheme,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The URL to give clients: `http://<addr>` (`https://` when served over TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The registry it serves.
    pub fn registry(&self) -> &Arc<MemoryRegistry> {
        &self.shared.registry
    }

    /// How many requests it has answered.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Atomic::Relaxed)
    }

    /// How many requests it has answered but `GET /config`, the global compatibility level a
    /// service's health probe asks for.
    pub fn schema_requests(&self) -> u64 {
        self.shared.schema_requests.load(Atomic::Relaxed)
    }

    /// Stops serving and waits until the server has closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Accepts TLS connections until `stopped`; open connections end with it.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!("local registry server: accept failed: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let (acceptor, app) = (acceptor.clone(), app.clone());
        connections.spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(stream) => stream,
                Err(err) => {
                    tracing::info!(
                        "local registry server: TLS handshake with {peer} failed: {err}"
                    );
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            if let Err(err) = served {
                tracing::debug!("local registry server: connection from {peer}: {err}");
            }
        });
    }
}

type AppState = State<Arc<Shared>>;

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(|| async { answer(&json!({})) }))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_test_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility_test_version),
        )
        .route("/config", get(global_config).put(set_global_config))
        .route(
            "/config/{subject}",
            get(subject_config).put(set_subject_config),
        )
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            count_requests,
        ))
        .with_state(shared)
}

async fn count_requests(
    State(shared): AppState,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    shared.requests.fetch_add(1, Atomic::Relaxed);
    if !(request.method() == axum::http::Method::GET && request.uri().path() == "/config") {
        shared.schema_requests.fetch_add(1, Atomic::Relaxed);
    }
    next.run(request).await
}

/// A JSON answer in Confluent's media type.
fn answer(value: &Value) -> Response {
    with_status(StatusCode::OK, value)
}

fn with_status(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            "application/vnd.schemaregistry.v1+json",
        )],
        value.to_string(),
    )
        .into_response()
}

/// Confluent's error body, with the HTTP status of the code's first three digits.
fn refuse(code: u32, message: &str) -> Response {
    let http = if code >= 1000 { code / 100 } else { code };
    let status = u16::try_from(http)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_status(status, &json!({ "error_code": code, "message": message }))
}

fn refuse_error(err: &RegistryError) -> Response {
    let code = match err {
        RegistryError::SubjectNotFound { .. } => 40401,
        RegistryError::VersionNotFound { .. } => 40402,
        RegistryError::SchemaNotFound { .. } | RegistryError::SchemaNotInSubject { .. } => 40403,
        RegistryError::Incompatible { .. } => 409,
        RegistryError::InvalidSchema { .. } => 42201,
        RegistryError::InvalidCompatibility { .. } => 42203,
        _ => 50001,
    };
    refuse(code, &err.to_string())
}

fn version_json(found: &SubjectVersion) -> Value {
    json!({
        "subject": found.subject,
        "id": found.id,
        "version": found.version,
        "schema": schema_text(&found.schema),
    })
}

/// The schema of a request body `{"schema": "..", "schemaType"?: "AVRO", "references"?: []}`.
fn parse_body(subject: &str, body: &[u8]) -> Result<Schema, RegistryError> {
    let invalid = |reason: String| RegistryError::InvalidSchema {
        subject: subject.to_owned(),
        reason,
    };
    let json: Value = serde_json::from_slice(body)
        .map_err(|err| invalid(format!("the request body is not JSON: {err}")))?;
    if let Some(kind) = json.get("schemaType").and_then(Value::as_str) {
        if !kind.eq_ignore_ascii_case("AVRO") {
            return Err(invalid(format!(
                "schema type {kind} is not served by this development registry (Avro only)"
            )));
        }
    }
    if json
        .get("references")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
    {
        return Err(invalid(
            "schema references are not served by this development registry".to_owned(),
        ));
    }
    let text = json
        .get("schema")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the request body has no `schema` string".to_owned()))?;
    Schema::parse_str(text).map_err(|err| invalid(err.to_string()))
}

fn respond<T>(result: Result<T, RegistryError>, to_json: impl FnOnce(T) -> Value) -> Response {
    match result {
        Ok(value) => answer(&to_json(value)),
        Err(err) => refuse_error(&err),
    }
}

async fn subjects(State(shared): AppState) -> Response {
    respond(shared.registry.subjects().await, |s| json!(s))
}

async fn versions(State(shared): AppState, Path(subject): Path<String>) -> Response {
    respond(shared.registry.versions(&subject).await, |v| json!(v))
}

/// `latest`, `-1` (also latest) or a version number.
fn parse_version(version: &str) -> Result<Option<u32>, String> {
    match version {
        "latest" | "-1" => Ok(None),
        n => n
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("`{n}` is not a version: use a number from 1 or `latest`")),
    }
}

async fn version(
    State(shared): AppState,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    let result = match parse_version(&version) {
        Ok(None) => shared.registry.latest(&subject).await,
        Ok(Some(n)) => shared.registry.subject_version(&subject, n),
        Err(message) => return refuse(42202, &message),
    };
    respond(result, |found| version_json(&found))
}

async fn register(State(shared): AppState, Path(subject): Path<String>, body: Bytes) -> Response {
    match parse_body(&subject, &body) {
        Ok(schema) => respond(
            shared.registry.register(&subject, &schema).await,
            |id| json!({ "id": id }),
        ),
        Err(err) => refuse_error(&err),
    }
}

async fn lookup(State(shared): AppState, Path(subject): Path<String>, body: Bytes) -> Response {
    match parse_body(&subject, &body) {
        Ok(schema) => respond(shared.registry.lookup(&subject, &schema).await, |found| {
            version_json(&found)
        }),
        Err(err) => refuse_error(&err),
    }
}

async fn schema_by_id(State(shared): AppState, Path(id): Path<u32>) -> Response {
    respond(
        shared.registry.schema_by_id(id).await,
        |found| json!({ "schema": schema_text(&found.schema) }),
    )
}

async fn versions_of(State(shared): AppState, Path(id): Path<u32>) -> Response {
    let first = match shared.registry.schema_by_id(id).await {
        Ok(found) => found.subject,
        Err(err) => return refuse_error(&err),
    };
    let mut found = shared.registry.versions_of(id);
    found.sort_by_key(|(subject, _)| *subject != first);
    answer(&json!(found
        .iter()
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect::<Vec<_>>()))
}

/// `POST /compatibility/subjects/{subject}/versions`: the check a registration would make (every
/// earlier version the subject's level asks for).
async fn compatibility_test_all(
    State(shared): AppState,
    Path(subject): Path<String>,
    query: Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Response {
    compatibility_test(shared, subject, None, &query, &body).await
}

/// `POST /compatibility/subjects/{subject}/versions/{version|latest}`: the subject's level checked
/// against that one version.
async fn compatibility_test_version(
    State(shared): AppState,
    Path((subject, version)): Path<(String, String)>,
    query: Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let version = match parse_version(&version) {
        Ok(None) => shared
            .registry
            .latest(&subject)
            .await
            .map(|latest| latest.version),
        Ok(Some(n)) => shared
            .registry
            .subject_version(&subject, n)
            .map(|found| found.version),
        Err(message) => return refuse(42202, &message),
    };
    match version {
        Ok(version) => compatibility_test(shared, subject, Some(version), &query, &body).await,
        Err(err) => refuse_error(&err),
    }
}

async fn compatibility_test(
    shared: Arc<Shared>,
    subject: String,
    version: Option<u32>,
    query: &std::collections::HashMap<String, String>,
    body: &Bytes,
) -> Response {
    let schema = match parse_body(&subject, body) {
        Ok(schema) => schema,
        Err(err) => return refuse_error(&err),
    };
    let verbose = query.get("verbose").is_some_and(|v| v == "true");
    let report = match version {
        Some(version) => shared.registry.report_against(&subject, &schema, version),
        None => shared.registry.test_compatibility(&subject, &schema).await,
    };
    respond(report, |report| {
        if verbose {
            json!({ "is_compatible": report.compatible, "messages": report.messages })
        } else {
            json!({ "is_compatible": report.compatible })
        }
    })
}

async fn global_config(State(shared): AppState) -> Response {
    respond(
        shared.registry.compatibility(None).await,
        |level| json!({ "compatibilityLevel": level.name() }),
    )
}

async fn subject_config(State(shared): AppState, Path(subject): Path<String>) -> Response {
    respond(
        shared.registry.compatibility(Some(&subject)).await,
        |level| json!({ "compatibilityLevel": level.name() }),
    )
}

async fn set_config(shared: &Shared, subject: Option<&str>, body: &[u8]) -> Response {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let name = json
        .get("compatibility")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let level = match name.parse::<Compatibility>() {
        Ok(level) => level,
        Err(err) => return refuse_error(&err.into()),
    };
    respond(
        shared.registry.set_compatibility(subject, level).await,
        |()| json!({ "compatibility": level.name() }),
    )
}

async fn set_global_config(State(shared): AppState, body: Bytes) -> Response {
    set_config(&shared, None, &body).await
}

async fn set_subject_config(
    State(shared): AppState,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    set_config(&shared, Some(&subject), &body).await
}
