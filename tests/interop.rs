//! Interop with clients no one here wrote: Confluent's own Python client (`confluent-kafka` from
//! `PyPI`: `SchemaRegistryClient`, `AvroSerializer`, `AvroDeserializer`, `Producer`, `Consumer`,
//! installed by `scripts/install-confluent-python`) registers and produces through the local
//! registry server and the Apache Kafka broker, and a Kaufmann service consumes and decodes every
//! message; then Kaufmann publishes and the Python deserializer decodes every message. The same
//! runs through Apicurio Registry, a registry no one here wrote either.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kaufmann::registry::{subject_for, HttpOptions, HttpRegistry, MemoryRegistry, SchemaRegistry};
use kaufmann::EventSchema;
use kaufmann_cli::registry_server::LocalRegistry;
use kaufmann_tests::{
    apicurio, broker, create_topics, eventually, from_test_stack, observed, test_config,
    topic_with_dead_letters, unique, work_items, TestWork,
};

/// The variable `scripts/test` sets to the virtualenv's python with confluent-kafka installed.
const PYTHON_VAR: &str = "TEST_CONFLUENT_PYTHON";

/// The python with confluent-kafka ([`from_test_stack`]).
fn confluent_python() -> Option<PathBuf> {
    from_test_stack(PYTHON_VAR).map(PathBuf::from)
}

async fn peer(python: &Path, args: &[&str]) -> String {
    run_peer(python, "confluent_peer.py", args).await
}

/// Runs `peers/<script>` with `args`; its standard output.
async fn run_peer(python: &Path, script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(script);
    let output = tokio::process::Command::new(python)
        .arg(path)
        .args(args)
        .output()
        .await
        .expect("the confluent peer starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "peer {script:?} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confluent_python_client_and_kaufmann_read_each_other_through_the_local_registry() {
    let Some(brokers) = broker() else { return };
    let Some(python) = confluent_python() else {
        return;
    };
    let registry = Arc::new(MemoryRegistry::new("mock://interop"));
    let server = LocalRegistry::start("127.0.0.1:0", registry).await.unwrap();
    read_each_other(&python, &brokers, &server.url()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confluent_python_client_and_kaufmann_read_each_other_through_apicurio() {
    let Some(brokers) = broker() else { return };
    let Some(python) = confluent_python() else {
        return;
    };
    let Some(url) = apicurio() else { return };
    read_each_other(&python, &brokers, &url).await;
}

/// Python produces and Kaufmann consumes, then Kaufmann publishes and Python consumes, both
/// through the registry at `url`; both sides use one subject and one schema version.
async fn read_each_other(python: &Path, brokers: &str, url: &str) {
    let inbound = topic_with_dead_letters(brokers, "py-in", 2).await;
    let outbound = unique("py-out");
    create_topics(brokers, &[(&outbound, 2)]).await;
    let subject = subject_for(TestWork::EVENT_NAME);
    let service = python_to_kaufmann(python, brokers, url, &inbound, &subject).await;
    kaufmann_to_python(python, brokers, url, &service, &outbound).await;
    let registry = HttpRegistry::new(url, HttpOptions::default()).unwrap();
    assert_eq!(registry.versions(&subject).await.unwrap(), vec![1]);
    service.shutdown().await.unwrap();
}

/// Python produces; a Kaufmann service consumes and decodes every message. Returns the service.
async fn python_to_kaufmann(
    python: &Path,
    brokers: &str,
    url: &str,
    inbound: &str,
    subject: &str,
) -> kaufmann::RunningService {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/test.work.avsc");
    let schema = schema.to_string_lossy();
    let count: i64 = 40;
    let count_text = count.to_string();
    let args = [
        "produce",
        "--brokers",
        brokers,
        "--registry",
        url,
        "--topic",
        inbound,
        "--count",
        &count_text,
        "--first-id",
        "1000",
        "--schema",
        &schema,
        "--subject",
        subject,
    ];
    peer(python, &args).await;
    let service = kaufmann_tests::start(test_config(brokers, inbound, url))
        .await
        .unwrap();
    let expected = usize::try_from(count).unwrap();
    let all_seen = eventually(Duration::from_secs(120), || {
        observed(inbound).len() >= expected
    })
    .await;
    let seen = observed(inbound);
    assert!(all_seen, "Kaufmann decoded {} of {count}", seen.len());
    let ids: BTreeSet<i64> = seen.iter().map(|o| o.id).collect();
    assert_eq!(ids, (1000..1000 + count).collect());
    for o in &seen {
        let i = o.id - 1000;
        assert_eq!((o.lane.clone(), o.seq), (format!("py-{}", i % 4), i / 4));
    }
    assert_eq!(service.stats().failed(), 0);
    service
}

/// Kaufmann publishes; Python decodes every message.
async fn kaufmann_to_python(
    python: &Path,
    brokers: &str,
    url: &str,
    service: &kaufmann::RunningService,
    outbound: &str,
) {
    let items: Vec<TestWork> = work_items(30, 3, 0)
        .into_iter()
        .map(|mut w| {
            w.id += 2000;
            w
        })
        .collect();
    for item in items.clone() {
        let key = item.lane.clone();
        service
            .publisher()
            .publish_to(outbound, Some(key.as_bytes()), item)
            .await
            .unwrap();
    }
    let count = items.len().to_string();
    let group = unique("py-group");
    let args = [
        "consume",
        "--brokers",
        brokers,
        "--registry",
        url,
        "--topic",
        outbound,
        "--count",
        &count,
        "--partitions",
        "2",
        "--group",
        &group,
    ];
    let lines = peer(python, &args).await;
    let mut decoded: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    decoded.sort_by_key(|m| m["value"]["id"].as_i64());
    assert_eq!(decoded.len(), items.len());
    for (message, item) in decoded.iter().zip(&items) {
        let expected = serde_json::json!({
            "id": item.id, "lane": item.lane, "seq": item.seq,
            "sleep_ms": item.sleep_ms, "fail_times": item.fail_times,
        });
        assert_eq!(message["value"], expected);
        assert_eq!(message["key"], item.lane.as_str());
        assert_eq!(message["headers"]["message_name"], "test.work");
        assert_eq!(message["headers"]["emitter_service"], "engine-test");
    }
}

/// A service in the `json` wire format on the broker, with no registry, and Python's own `json`
/// module on the other side: Python writes 1,000 `test.echo` requests in `KaufmannEx`'s JSON
/// shape (`{"meta", "payload"}`, a string, a double, a boolean, an optional, an array, a map, an
/// enum, a timestamp with an offset, a decimal and base64 bytes), the service answers each on the
/// callback topic the request names, and Python reads every answer with `json.loads` and compares
/// it, field by field, with the request (and its `callback_id` with the request's id).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_json_requests_are_answered_by_a_json_service_on_the_broker() {
    const COUNT: usize = 1_000;
    let Some(brokers) = broker() else { return };
    let Some(python) = confluent_python() else {
        return;
    };
    let inbound = topic_with_dead_letters(&brokers, "json-in", 2).await;
    let replies = unique("json-replies");
    create_topics(&brokers, &[(&replies, 2)]).await;
    let count = COUNT.to_string();
    let common = ["--brokers", brokers.as_str(), "--count", count.as_str()];
    let produce = [
        &common[..],
        &["--topic", &inbound, "--reply-topic", &replies],
    ]
    .concat();
    run_peer(
        &python,
        "json_peer.py",
        &[&["produce"][..], &produce].concat(),
    )
    .await;
    // No registry: a registry URL that answers nothing would fail any request made to it.
    let mut config = test_config(&brokers, &inbound, "http://127.0.0.1:9");
    config.wire_format = kaufmann::WireFormat::Json;
    let service = kaufmann_tests::start(config).await.unwrap();
    let group = unique("json-check");
    let check = [
        &common[..],
        &["--topic", &replies, "--partitions", "2", "--group", &group],
    ]
    .concat();
    let report = run_peer(&python, "json_peer.py", &[&["check"][..], &check].concat()).await;
    let (handled, failed) = (service.stats().handled(), service.stats().failed());
    service.shutdown().await.unwrap();
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(report["mismatches"], serde_json::json!([]), "{report}");
    assert_eq!(report["distinct"], COUNT, "{report}");
    assert_eq!(report["seen"], COUNT, "each answered once: {report}");
    assert_eq!((handled, failed), (COUNT as u64, 0), "(handled, failed)");
}

/// Confluent's serializer with each of its subject name strategies (`TopicNameStrategy`,
/// `RecordNameStrategy`, `TopicRecordNameStrategy`), the schema registered only under the subject
/// each names, in two versions (the second adds a field with a default), without Kaufmann's
/// headers: the service routes every message to the `test.work` handler by the writer schema's
/// record name. Messages of a record no handler serves are counted and committed (the default
/// policy) with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_of_every_confluent_subject_strategy_reach_their_handler() {
    const EACH: i64 = 10;
    let Some(brokers) = broker() else { return };
    let Some(python) = confluent_python() else {
        return;
    };
    let registry = Arc::new(MemoryRegistry::new("mock://strategies"));
    let server = LocalRegistry::start("127.0.0.1:0", registry.clone())
        .await
        .unwrap();
    let url = server.url();
    let topic = topic_with_dead_letters(&brokers, "strategies", 2).await;
    let dir = std::env::temp_dir().join(unique("kaufmann-strategies"));
    let [v1, v2, other] = strategy_schemas(&dir);
    let mut first_id = 5000;
    let produce =
        |strategy: &'static str, schema: String, extra: Option<&'static str>, first: i64| {
            let (brokers, url, topic, python) =
                (brokers.clone(), url.clone(), topic.clone(), python.clone());
            async move {
                let (count, first) = (EACH.to_string(), first.to_string());
                let mut args = vec![
                    "produce",
                    "--brokers",
                    &brokers,
                    "--registry",
                    &url,
                    "--topic",
                    &topic,
                    "--count",
                    &count,
                    "--first-id",
                    &first,
                    "--schema",
                    &schema,
                    "--strategy",
                    strategy,
                ];
                if let Some(extra) = extra {
                    args.extend(["--extra", extra]);
                }
                peer(&python, &args).await;
            }
        };
    for strategy in ["topic", "record", "topic_record"] {
        for (schema, extra) in [(&v1, None), (&v2, Some(r#"{"note": "v2"}"#))] {
            produce(strategy, schema.clone(), extra, first_id).await;
            first_id += EACH;
        }
    }
    produce("record", other, None, 9000).await;
    let handled = usize::try_from(first_id - 5000).unwrap();

    let service = kaufmann_tests::start(test_config(&brokers, &topic, &url))
        .await
        .unwrap();
    let done = eventually(Duration::from_secs(120), || {
        observed(&topic).len() >= handled && service.stats().unhandled() >= EACH.unsigned_abs()
    })
    .await;
    let (unhandled, failed) = (service.stats().unhandled(), service.stats().failed());
    service.shutdown().await.unwrap();
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    let ids: BTreeSet<i64> = observed(&topic).iter().map(|o| o.id).collect();
    assert!(
        done,
        "handled {} of {handled}, unhandled {unhandled}",
        ids.len()
    );
    assert_eq!(ids, (5000..first_id).collect());
    assert_eq!(
        (unhandled, failed),
        (EACH.unsigned_abs(), 0),
        "(unhandled, failed)"
    );
    assert_strategy_subjects(&registry, &topic).await;
}

/// Writes the schema files of the strategies test: `test.work`, its second version (a field with
/// a default added) and `other.thing` with the same fields, which no handler serves.
fn strategy_schemas(dir: &Path) -> [String; 3] {
    std::fs::create_dir_all(dir).unwrap();
    let fields = r#"{"name": "id", "type": "long"}, {"name": "lane", "type": "string"},
        {"name": "seq", "type": "long"}, {"name": "sleep_ms", "type": "int"},
        {"name": "fail_times", "type": "int"}"#;
    let write = |file: &str, name: &str, more: &str| {
        let path = dir.join(file);
        let text = format!(r#"{{"type": "record", "name": "{name}", "fields": [{fields}{more}]}}"#);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    [
        write("v1.avsc", "test.work", ""),
        write(
            "v2.avsc",
            "test.work",
            r#", {"name": "note", "type": "string", "default": ""}"#,
        ),
        write("other.avsc", "other.thing", ""),
    ]
}

/// Only the subjects Confluent's strategies name were registered (none named by Kaufmann), each
/// `test.work` subject with both versions.
async fn assert_strategy_subjects(registry: &MemoryRegistry, topic: &str) {
    let mut subjects = registry.subjects().await.unwrap();
    subjects.sort();
    let mut expected = vec![
        format!("{topic}-test.work"),
        format!("{topic}-value"),
        "other.thing".to_owned(),
        "test.work".to_owned(),
    ];
    expected.sort();
    assert_eq!(subjects, expected);
    for subject in expected.iter().filter(|s| *s != "other.thing") {
        assert_eq!(
            registry.versions(subject).await.unwrap(),
            vec![1, 2],
            "{subject}"
        );
    }
}
