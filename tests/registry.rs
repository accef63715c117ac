//! The schema registries: one behavioural suite run against the in-memory registry directly and
//! against the HTTP client talking to the local registry server; then what only HTTP has
//! (caching, retries, auth, error codes), and a service that, once warmed up, decodes and
//! publishes without asking the registry.
//!
//! The local server follows Confluent's Schema Registry API reference (docs.confluent.io,
//! "Schema Registry API Reference"): request bodies `{"schema": "<text>"}`, answers
//! `{"id": 1}` / `{"subject", "id", "version", "schema"}` / `{"is_compatible", "messages"}` /
//! `{"compatibilityLevel"}`, errors `{"error_code", "message"}` with 40401 (subject not found,
//! HTTP 404), 40402 (version not found), 40403 (schema not found), 409 (incompatible schema),
//! 42201 (invalid schema, HTTP 422), 42203 (invalid compatibility level) and HTTP 401 for bad
//! credentials. It is a development stand-in for that registry, not the registry itself.

use std::sync::Arc;
use std::time::Duration;

use apache_avro::Schema;
use kaufmann::error::RegistryError;
use kaufmann::registry::{
    Compatibility, HttpOptions, HttpRegistry, MemoryRegistry, RegistryTls, SchemaRegistry,
};
use kaufmann::EventSchema;
use kaufmann_cli::registry_server::{LocalRegistry, ServerTls};
use kaufmann_tests::{apicurio, eventually, observed, unique, work_items, TestWork};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn user(extra: &str) -> Schema {
    record("test", extra)
}

/// A `User` record in `namespace` (ids are per schema: tests sharing a registry use their own).
fn record(namespace: &str, extra: &str) -> Schema {
    Schema::parse_str(&format!(
        r#"{{"type":"record","name":"User","namespace":"{namespace}","fields":[
            {{"name":"id","type":"string"}}{extra}]}}"#
    ))
    .unwrap()
}

fn v1() -> Schema {
    user("")
}

fn v2() -> Schema {
    user(r#",{"name":"email","type":"string","default":""}"#)
}

/// Adds a field without a default: BACKWARD refuses it.
fn breaking() -> Schema {
    user(r#",{"name":"age","type":"int"}"#)
}

/// Ids, versions, lookups and their refusals, as every registry has them.
async fn behaves_like_a_registry(registry: &dyn SchemaRegistry) {
    let subject = unique("users");
    let other = unique("other");

    // Ids: one per schema across subjects; registering again changes nothing.
    let id1 = registry.register(&subject, &v1()).await.unwrap();
    assert_eq!(registry.register(&subject, &v1()).await.unwrap(), id1);
    assert_eq!(registry.versions(&subject).await.unwrap(), vec![1]);
    let id2 = registry.register(&subject, &v2()).await.unwrap();
    assert_ne!(id1, id2);
    assert_eq!(registry.register(&other, &v1()).await.unwrap(), id1);
    assert_eq!(registry.versions(&subject).await.unwrap(), vec![1, 2]);
    let subjects = registry.subjects().await.unwrap();
    assert!(subjects.contains(&subject) && subjects.contains(&other));
    assert!(subjects.windows(2).all(|w| w[0] <= w[1]), "sorted");

    // Versions, lookups and schemas by id.
    let latest = registry.latest(&subject).await.unwrap();
    assert_eq!((latest.version, latest.id), (2, id2));
    assert_eq!(latest.schema.canonical_form(), v2().canonical_form());
    let found = registry.lookup(&subject, &v1()).await.unwrap();
    assert_eq!(
        (found.subject.as_str(), found.version, found.id),
        (subject.as_str(), 1, id1)
    );
    let by_id = registry.schema_by_id(id2).await.unwrap();
    assert_eq!(by_id.subject, subject);
    assert_eq!(&*by_id.canonical, v2().canonical_form());

    // Each refusal is its own error.
    assert!(matches!(
        registry.lookup(&subject, &breaking()).await,
        Err(RegistryError::SchemaNotInSubject { .. })
    ));
    assert!(matches!(
        registry.lookup("no-such-subject", &v1()).await,
        Err(RegistryError::SubjectNotFound { .. })
    ));
    assert!(matches!(
        registry.latest("no-such-subject").await,
        Err(RegistryError::SubjectNotFound { .. })
    ));
    assert!(matches!(
        registry.schema_by_id(999_999).await,
        Err(RegistryError::SchemaNotFound { id: 999_999, .. })
    ));
}

/// What a registry says besides a compatibility check's verdict.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Explains {
    /// Why a schema is incompatible (`messages` with `verbose=true`), as Confluent documents.
    Why,
    /// The verdict alone (Apicurio 3.0.9 ignores `verbose=true`; its 409 on a refused
    /// registration still names the field). Such a registry is also Apicurio in how it reads a
    /// subject's NONE (below).
    VerdictOnly,
}

/// Compatibility levels, global and per subject.
async fn checks_compatibility_like_a_registry(registry: &dyn SchemaRegistry, explains: Explains) {
    let subject = unique("users");
    let other = unique("other");
    registry.register(&subject, &v1()).await.unwrap();
    registry.register(&subject, &v2()).await.unwrap();

    // Compatibility: BACKWARD by default; a field without a default is refused, naming it.
    assert_eq!(
        registry.compatibility(Some(&subject)).await.unwrap(),
        Compatibility::Backward
    );
    let report = registry
        .test_compatibility(&subject, &breaking())
        .await
        .unwrap();
    assert!(!report.compatible);
    assert!(
        explains == Explains::VerdictOnly || report.messages.iter().any(|m| m.contains("age")),
        "{report:?}"
    );
    assert!(
        registry
            .test_compatibility(&subject, &v2())
            .await
            .unwrap()
            .compatible
    );
    assert!(
        registry
            .test_compatibility("no-such-subject", &breaking())
            .await
            .unwrap()
            .compatible,
        "a new subject accepts anything"
    );
    match registry.register(&subject, &breaking()).await {
        Err(RegistryError::Incompatible {
            subject: refused,
            level,
            messages,
        }) => {
            assert_eq!(refused, subject);
            assert_eq!(level, "BACKWARD");
            assert!(messages.iter().any(|m| m.contains("age")), "{messages:?}");
        }
        other => panic!("expected Incompatible, got {other:?}"),
    }
    assert_eq!(registry.versions(&subject).await.unwrap(), vec![1, 2]);

    // A subject's own level overrides the global one: FORWARD accepts the new field without a
    // default that BACKWARD refused. (Apicurio 3.0.9 reads a subject's NONE as "no rule of its
    // own", so the global BACKWARD would still apply there; Confluent and ours take NONE as a
    // level.)
    let level = if explains == Explains::Why {
        Compatibility::None
    } else {
        Compatibility::Forward
    };
    registry
        .set_compatibility(Some(&subject), level)
        .await
        .unwrap();
    assert_eq!(registry.compatibility(Some(&subject)).await.unwrap(), level);
    assert_eq!(
        registry.compatibility(Some(&other)).await.unwrap(),
        registry.compatibility(None).await.unwrap()
    );
    registry.register(&subject, &breaking()).await.unwrap();
    assert_eq!(registry.versions(&subject).await.unwrap(), vec![1, 2, 3]);

    // FORWARD_TRANSITIVE: every earlier version must read the new one's data; FORWARD only the
    // latest.
    let strict = unique("strict");
    registry
        .set_compatibility(Some(&strict), Compatibility::ForwardTransitive)
        .await
        .unwrap();
    registry
        .register(&strict, &user(r#",{"name":"email","type":"string"}"#))
        .await
        .unwrap();
    registry.register(&strict, &v2()).await.unwrap();
    let report = registry.test_compatibility(&strict, &v1()).await.unwrap();
    assert!(!report.compatible);
    if explains == Explains::Why {
        assert_eq!(report.messages.len(), 1, "{report:?}");
        assert!(report.messages[0].contains("email"), "{report:?}");
    }
    registry
        .set_compatibility(Some(&strict), Compatibility::Forward)
        .await
        .unwrap();
    // (Apicurio 3.0.9 checks every version on this endpoint whatever the level, though it
    // registers by the level: it refuses here what it would register.)
    assert!(
        explains == Explains::VerdictOnly
            || registry
                .test_compatibility(&strict, &v1())
                .await
                .unwrap()
                .compatible
    );
    registry.ping().await.unwrap();
}

#[tokio::test]
async fn the_memory_registry_behaves_like_a_registry() {
    let registry = MemoryRegistry::new("mock://registry-suite");
    behaves_like_a_registry(&registry).await;
    checks_compatibility_like_a_registry(&registry, Explains::Why).await;
}

#[tokio::test]
async fn the_http_client_behaves_like_a_registry_against_the_local_server() {
    let server = LocalRegistry::start(
        "127.0.0.1:0",
        Arc::new(MemoryRegistry::new("mock://served")),
    )
    .await
    .unwrap();
    let client = HttpRegistry::new(&server.url(), HttpOptions::default()).unwrap();
    behaves_like_a_registry(&client).await;
    checks_compatibility_like_a_registry(&client, Explains::Why).await;
    assert_eq!(
        client.requests(),
        server.requests(),
        "one request each, no retries"
    );
    server.stop().await;
}

/// The same suite against Apicurio Registry's Confluent-compatible API: a registry no one here
/// wrote. (`scripts/with-apicurio` sets its global level to BACKWARD, Confluent's default; Apicurio's
/// own is NONE.)
#[tokio::test]
async fn the_http_client_behaves_like_a_registry_against_apicurio() {
    let Some(url) = apicurio() else { return };
    let client = HttpRegistry::new(&url, HttpOptions::default()).unwrap();
    behaves_like_a_registry(&client).await;
    checks_compatibility_like_a_registry(&client, Explains::VerdictOnly).await;
}

/// A server that answers each request with the next canned `(status, body)` and records the
/// request heads (method, path and headers, lower-cased).
struct Canned {
    url: String,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Canned {
    async fn start(answers: Vec<(u16, &'static str)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            for (status, body) in answers {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0_u8; 4096];
                // The head, then as many body bytes as Content-Length says.
                loop {
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|l| l.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if n == 0 || request.len() >= end + 4 + length {
                            seen.lock().unwrap().push(text[..end].to_owned());
                            break;
                        }
                    } else if n == 0 {
                        break;
                    }
                }
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/vnd.schemaregistry.v1+json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        Self { url, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn quick() -> HttpOptions {
    HttpOptions {
        backoff: Duration::from_millis(1),
        timeout: Duration::from_secs(5),
        ..HttpOptions::default()
    }
}

#[tokio::test]
async fn the_client_retries_connection_errors_and_5xx_then_reports_them() {
    let canned = Canned::start(vec![
        (500, r#"{"error_code":50001,"message":"store error"}"#),
        (503, "unavailable"),
        (200, r#"{"compatibilityLevel":"FULL"}"#),
    ])
    .await;
    let client = HttpRegistry::new(&canned.url, quick()).unwrap();
    assert_eq!(
        client.compatibility(None).await.unwrap(),
        Compatibility::Full
    );
    assert_eq!(client.requests(), 3);

    let always = Canned::start(vec![
        (500, r#"{"error_code":50001,"message":"store error"}"#);
        4
    ])
    .await;
    let client = HttpRegistry::new(&always.url, quick()).unwrap();
    match client.subjects().await {
        Err(RegistryError::Server {
            status: 500,
            code: 50001,
            message,
            ..
        }) => {
            assert_eq!(message, "store error");
        }
        other => panic!("expected Server, got {other:?}"),
    }
    assert_eq!(client.requests(), 4, "the first request and 3 retries");

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let options = HttpOptions {
        retries: 2,
        ..quick()
    };
    let client = HttpRegistry::new(&url, options).unwrap();
    let err = client.ping().await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Unreachable { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("KAUFMANN_REGISTRY_URL"), "{err}");
}

#[tokio::test]
async fn the_client_maps_confluent_error_codes() {
    let canned = Canned::start(vec![
        (
            404,
            r#"{"error_code":40402,"message":"Version not found."}"#,
        ),
        (422, r#"{"error_code":42201,"message":"Invalid schema"}"#),
        (
            422,
            r#"{"error_code":42203,"message":"Invalid compatibility level"}"#,
        ),
        (
            409,
            r#"{"error_code":409,"message":"Schema being registered is incompatible"}"#,
        ),
        (200, r#"{"compatibilityLevel":"FULL_TRANSITIVE"}"#),
        (418, "teapot"),
    ])
    .await;
    let client = HttpRegistry::new(&canned.url, quick()).unwrap();
    assert!(matches!(
        client.latest("s").await,
        Err(RegistryError::VersionNotFound { .. })
    ));
    assert!(matches!(
        client.register("s", &v1()).await,
        Err(RegistryError::InvalidSchema { .. })
    ));
    assert!(matches!(
        client.set_compatibility(None, Compatibility::Full).await,
        Err(RegistryError::InvalidCompatibility { .. })
    ));
    // A 409 names the subject's level, asked for on the way.
    match client.register("s", &v2()).await {
        Err(RegistryError::Incompatible {
            level, messages, ..
        }) => {
            assert_eq!(level, "FULL_TRANSITIVE");
            assert_eq!(messages, ["Schema being registered is incompatible"]);
        }
        other => panic!("expected Incompatible, got {other:?}"),
    }
    assert!(matches!(
        client.subjects().await,
        Err(RegistryError::Server {
            status: 418,
            code: 418,
            ..
        })
    ));
    let heads = canned.heads();
    assert!(
        heads[1].starts_with("post /subjects/s/versions?normalize=true "),
        "{heads:?}"
    );
    assert!(heads[1].contains("content-type: application/vnd.schemaregistry.v1+json"));
    assert!(
        heads[4].starts_with("get /config/s?defaulttoglobal=true "),
        "{heads:?}"
    );
}

#[tokio::test]
async fn the_client_sends_basic_or_bearer_credentials_and_reports_refusals() {
    let canned = Canned::start(vec![(
        401,
        r#"{"error_code":401,"message":"Unauthorized"}"#,
    )])
    .await;
    let with_user = canned.url.replace("http://", "http://user:secret@");
    let client = HttpRegistry::new(&with_user, quick()).unwrap();
    let err = client.subjects().await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(
        !err.to_string().contains("secret"),
        "the password stays out of messages: {err}"
    );
    // base64("user:secret")
    assert!(
        canned.heads()[0].contains("authorization: basic dxnlcjpzzwnyzxq="),
        "{:?}",
        canned.heads()
    );

    let canned = Canned::start(vec![(200, "[]")]).await;
    let options = HttpOptions {
        bearer_token: Some("tok-123".to_owned()),
        ..quick()
    };
    let client = HttpRegistry::new(&canned.url, options).unwrap();
    assert!(client.subjects().await.unwrap().is_empty());
    assert!(canned.heads()[0].contains("authorization: bearer tok-123"));
}

#[tokio::test]
async fn the_local_server_answers_bad_requests_with_confluent_error_codes() {
    let server = LocalRegistry::start("127.0.0.1:0", Arc::new(MemoryRegistry::new("mock://codes")))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: &str| {
        http.request(method, format!("{}{path}", server.url()))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(body.to_owned())
            .send()
    };
    let cases = [
        (
            reqwest::Method::POST,
            "/subjects/a/versions",
            r#"{"schema":"{\"type\":\"nope\"}"}"#,
            422,
            42201,
        ),
        (
            reqwest::Method::POST,
            "/subjects/a/versions",
            "not json",
            422,
            42201,
        ),
        (
            reqwest::Method::PUT,
            "/config",
            r#"{"compatibility":"SIDEWAYS"}"#,
            422,
            42203,
        ),
        (
            reqwest::Method::GET,
            "/subjects/a/versions/abc",
            "",
            422,
            42202,
        ),
        (
            reqwest::Method::GET,
            "/subjects/a/versions/latest",
            "",
            404,
            40401,
        ),
        (reqwest::Method::GET, "/schemas/ids/7", "", 404, 40403),
    ];
    for (method, path, body, status, code) in cases {
        let response = call(method.clone(), path, body).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/vnd.schemaregistry.v1+json"
        );
        let json: serde_json::Value = response.json().await.unwrap();
        assert_eq!(json["error_code"], code, "{method} {path}: {json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let registered = call(
        reqwest::Method::POST,
        "/subjects/a/versions",
        &serde_json::json!({ "schema": serde_json::to_string(&v1()).unwrap() }).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(
        registered.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"id": 1})
    );
    let versions: serde_json::Value = call(reqwest::Method::GET, "/schemas/ids/1/versions", "")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        versions,
        serde_json::json!([{"subject": "a", "version": 1}])
    );
}

#[tokio::test]
async fn the_client_caches_schemas_by_id_and_registrations() {
    let server = LocalRegistry::start("127.0.0.1:0", Arc::new(MemoryRegistry::new("mock://cache")))
        .await
        .unwrap();
    let client = HttpRegistry::new(&server.url(), HttpOptions::default()).unwrap();
    let id = client.register("cached-value", &v1()).await.unwrap();
    client.schema_by_id(id).await.unwrap();
    let warm = client.requests();
    for _ in 0..100 {
        assert_eq!(client.register("cached-value", &v1()).await.unwrap(), id);
        assert_eq!(client.schema_by_id(id).await.unwrap().id, id);
    }
    assert_eq!(client.requests(), warm);
    assert_eq!(server.requests(), warm);
    // Failures are not cached: a missing id is asked for again.
    assert!(client.schema_by_id(42).await.is_err());
    assert!(client.schema_by_id(42).await.is_err());
    assert_eq!(client.requests(), warm + 2);
}

/// A service on the embedded broker with the HTTP registry: after the first events, decoding and
/// publishing make no registry requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warmed_up_service_asks_the_registry_nothing() {
    let server = LocalRegistry::start("127.0.0.1:0", Arc::new(MemoryRegistry::new("mock://warm")))
        .await
        .unwrap();
    let topic = unique("warm");
    let mut config = kaufmann::Config::new("warm");
    config.group_id = unique("warm-group");
    config.topics = vec![topic.clone()];
    config.default_topic.clone_from(&topic);
    config.registry_url = server.url();
    let service = kaufmann_tests::start(config).await.unwrap();
    let items = work_items(40, 4, 0);
    for item in items[..20].iter().cloned() {
        service.publisher().publish(item).await.unwrap();
    }
    assert!(eventually(Duration::from_secs(60), || observed(&topic).len() == 20).await);
    let warm = server.schema_requests();
    assert!(
        warm >= 2,
        "the warm-up registered and fetched the schema ({warm} requests)"
    );
    for item in items[20..].iter().cloned() {
        service.publisher().publish(item).await.unwrap();
    }
    assert!(eventually(Duration::from_secs(60), || observed(&topic).len() == 40).await);
    assert_eq!(
        server.schema_requests(),
        warm,
        "no registry request after the warm-up (the health probe's `GET /config` aside)"
    );
    let subject = kaufmann::registry::subject_for(TestWork::EVENT_NAME);
    assert_eq!(server.registry().versions(&subject).await.unwrap(), vec![1]);
    service.shutdown().await.unwrap();
    server.stop().await;
}

/// Under a transitive level, `POST /compatibility/subjects/{s}/versions` makes the check a
/// registration makes (every version), `.../versions/latest` checks the latest alone: the local
/// server answers as Confluent documents, and as Apicurio does.
async fn version_endpoints_check_what_they_name(base: &str) {
    let http = reqwest::Client::new();
    let subject = unique("endpoints");
    let post = |path: String, schema: &Schema| {
        // The full text: the canonical form would drop the defaults.
        let text = serde_json::to_string(schema).unwrap();
        let body = serde_json::json!({ "schema": text }).to_string();
        let request = http
            .request(reqwest::Method::POST, format!("{base}{path}"))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(body);
        async move {
            let answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
            answer
        }
    };
    let level = serde_json::json!({ "compatibility": "FORWARD_TRANSITIVE" }).to_string();
    http.put(format!("{base}/config/{subject}"))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(level)
        .send()
        .await
        .unwrap();
    let ns = "endpoints";
    let without_email = record(ns, "");
    post(
        format!("/subjects/{subject}/versions"),
        &record(ns, r#",{"name":"email","type":"string"}"#),
    )
    .await;
    post(
        format!("/subjects/{subject}/versions"),
        &record(ns, r#",{"name":"email","type":"string","default":""}"#),
    )
    .await;
    // `without_email` lacks the field: version 1 (email without a default) cannot read its data;
    // version 2 can.
    let all = post(
        format!("/compatibility/subjects/{subject}/versions"),
        &without_email,
    )
    .await;
    let latest = post(
        format!("/compatibility/subjects/{subject}/versions/latest"),
        &without_email,
    )
    .await;
    let first = post(
        format!("/compatibility/subjects/{subject}/versions/1"),
        &without_email,
    )
    .await;
    assert_eq!(all["is_compatible"], false, "{all}");
    assert_eq!(latest["is_compatible"], true, "{latest}");
    assert_eq!(first["is_compatible"], false, "{first}");
}

#[tokio::test]
async fn compatibility_endpoints_check_what_they_name_on_the_local_server_and_apicurio() {
    let server = LocalRegistry::start(
        "127.0.0.1:0",
        Arc::new(MemoryRegistry::new("mock://endpoints")),
    )
    .await
    .unwrap();
    version_endpoints_check_what_they_name(&server.url()).await;
    server.stop().await;
    if let Some(url) = apicurio() {
        version_endpoints_check_what_they_name(&url).await;
    }
}

/// PEM files of a test PKI: a CA, a server certificate for 127.0.0.1 and localhost, and a client
/// certificate, all signed by the CA.
struct TestPki {
    dir: std::path::PathBuf,
}

impl TestPki {
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa};
        let dir = std::env::temp_dir().join(unique("kaufmann-pki"));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "kaufmann test CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let leaves = [
            (
                "server",
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "client",
                vec!["kaufmann-client".to_owned()],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        ];
        for (name, names, usage) in leaves {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.extended_key_usages = vec![usage];
            let certificate = params.signed_by(&key, &ca, &ca_key).unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), certificate.pem()).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        Self { dir }
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn server(&self, client_ca: bool) -> ServerTls {
        ServerTls {
            certificate: self.file("server.pem"),
            key: self.file("server.key"),
            client_ca: client_ca.then(|| self.file("ca.pem")),
        }
    }

    fn client(&self, certificate: bool) -> RegistryTls {
        RegistryTls {
            ca_location: Some(self.file("ca.pem")),
            certificate_location: certificate.then(|| self.file("client.pem")),
            key_location: certificate.then(|| self.file("client.key")),
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_client(url: &str, tls: RegistryTls) -> HttpRegistry {
    HttpRegistry::new(
        url,
        HttpOptions {
            retries: 0,
            tls,
            ..quick()
        },
    )
    .unwrap()
}

/// TLS to the registry: the local server over TLS with a CA of the test's own. A client that
/// trusts only the public CAs is refused; with `registry_ca_location` it registers and reads
/// schemas; a server that requires client certificates refuses a client without one and serves
/// one with `registry_certificate_location` and `registry_key_location`.
#[tokio::test]
async fn the_client_speaks_tls_with_a_custom_ca_and_a_client_certificate() {
    let pki = TestPki::new();
    let memory = Arc::new(MemoryRegistry::new("mock://tls"));
    let server = LocalRegistry::start_tls("127.0.0.1:0", memory.clone(), &pki.server(false))
        .await
        .unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let public_only = tls_client(&server.url(), RegistryTls::default());
    let err = public_only.ping().await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Unreachable { .. }),
        "an unknown CA is refused: {err:?}"
    );
    let trusting = tls_client(&server.url(), pki.client(false));
    let id = trusting.register("tls-value", &v1()).await.unwrap();
    assert_eq!(trusting.schema_by_id(id).await.unwrap().id, id);
    server.stop().await;

    let mutual = LocalRegistry::start_tls("127.0.0.1:0", memory, &pki.server(true))
        .await
        .unwrap();
    let err = tls_client(&mutual.url(), pki.client(false))
        .ping()
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Unreachable { .. }),
        "no client certificate, refused: {err:?}"
    );
    let with_certificate = tls_client(&mutual.url(), pki.client(true));
    assert_eq!(with_certificate.schema_by_id(id).await.unwrap().id, id);
    mutual.stop().await;
}

/// A TLS file that is missing, or a certificate without its key, is an error naming the key.
#[test]
fn unusable_registry_tls_files_are_named() {
    let pki = TestPki::new();
    let missing = RegistryTls {
        ca_location: Some(pki.file("nope.pem")),
        ..RegistryTls::default()
    };
    let no_key = RegistryTls {
        key_location: None,
        ..pki.client(true)
    };
    let not_pem = RegistryTls {
        ca_location: Some(pki.file("server.key")),
        ..RegistryTls::default()
    };
    for (tls, key) in [
        (missing, "registry_ca_location"),
        (no_key, "registry_certificate_location"),
        (not_pem, "registry_ca_location"),
    ] {
        let options = HttpOptions {
            tls,
            ..HttpOptions::default()
        };
        let err = HttpRegistry::new("https://127.0.0.1:1", options).unwrap_err();
        assert!(
            matches!(&err, RegistryError::Tls { key: k, .. } if *k == key),
            "{err:?}"
        );
        assert!(err.to_string().contains(key), "{err}");
    }
}
