//! OpenTelemetry (the `otel` feature) against a real OTLP receiver: the OpenTelemetry Collector
//! (built by `scripts/install-otel-collector` from the Collector's own packages, its debug
//! exporter logging every span it receives). A command goes through two service processes on
//! the broker, each answering with the next event, and every span of the chain reaches the
//! Collector under the command's one trace id, from both services, each service's span the child
//! of the span that sent it its event. The services' metrics reach it too: each counted the one
//! message it handled, and timed it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kaufmann::wire::json;
use kaufmann::{EventSchema, Metadata, TraceParent};
use kaufmann_tests::{
    broker, create_topics, eventually, from_test_stack, service_command, topic_with_dead_letters,
    unique, Running, TestRelay,
};
use rdkafka::message::Header;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The Collector, receiving OTLP over HTTP on `port`, its log (with the spans) in `log`.
fn collector(binary: &str, dir: &Path, port: u16, log: &Path) -> Running {
    let config = dir.join("otelcol.yaml");
    std::fs::write(
        &config,
        format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\n\
             exporters:\n  debug:\n    verbosity: detailed\n\
             service:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n    traces:\n\
             \x20     receivers: [otlp]\n      exporters: [debug]\n    metrics:\n\
             \x20     receivers: [otlp]\n      exporters: [debug]\n"
        ),
    )
    .unwrap();
    let out = std::fs::File::create(log).unwrap();
    Running(
        Command::new(binary)
            .arg("--config")
            .arg(format!("file:{}", config.display()))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    )
}

/// A relay service process named `name`, reading `from` and publishing to `to`.
fn relay(brokers: &str, name: &str, from: &str, to: &str, otlp: &str, log: &Path) -> Running {
    Running(
        service_command(env!("CARGO_BIN_EXE_test-service"), log)
            .env("KAUFMANN_BROKERS", brokers)
            .env("KAUFMANN_TOPICS", from)
            .env("KAUFMANN_DEFAULT_TOPIC", to)
            .env("KAUFMANN_GROUP_ID", unique(name))
            .env("KAUFMANN_SERVICE_NAME", name)
            .env("KAUFMANN_WIRE_FORMAT", "json")
            .env("KAUFMANN_REGISTRY_URL", format!("mock://{name}"))
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The spans of `trace` in the Collector's log: (service name, span id, parent span id).
fn spans_of(log: &str, trace: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut service = String::new();
    let mut current: Option<(String, String)> = None;
    let field = |line: &str| line.split_once(':').map(|(_, v)| v.trim().to_owned());
    for line in log.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("-> service.name: Str(") {
            name.trim_end_matches(')').clone_into(&mut service);
        } else if line.starts_with("Trace ID") {
            current = field(line).map(|id| (id, String::new()));
        } else if line.starts_with("Parent ID") {
            if let Some((_, parent)) = current.as_mut() {
                *parent = field(line).unwrap_or_default();
            }
        } else if line.starts_with("ID ") || line.starts_with("ID:") {
            if let Some((_, parent)) = current.take().filter(|(id, _)| id == trace) {
                found.push((service.clone(), field(line).unwrap_or_default(), parent));
            }
        }
    }
    found
}

/// The largest value of `metric` (a sum's value, a histogram's count) for `event` from `service`
/// in the Collector's log.
fn metric_of(log: &str, service: &str, metric: &str, event: &str) -> Option<u64> {
    let (mut from, mut name, mut label) = (String::new(), String::new(), String::new());
    let mut found = None;
    let value = |line: &str| {
        line.split_once(':')
            .and_then(|(_, v)| v.trim().parse().ok())
    };
    for line in log.lines() {
        let line = line.trim();
        if let Some(found) = line.strip_prefix("-> service.name: Str(") {
            found.trim_end_matches(')').clone_into(&mut from);
        } else if let Some(found) = line.strip_prefix("-> Name: ") {
            found.clone_into(&mut name);
            label.clear();
        } else if let Some(found) = line.strip_prefix("-> event: Str(") {
            found.trim_end_matches(')').clone_into(&mut label);
        } else if line.starts_with("Value:") || line.starts_with("Count:") {
            if from == service && name == metric && label == event {
                found = found.max(value(line));
            }
            label.clear();
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_through_two_services_is_one_trace_in_the_collector() {
    let Some(brokers) = broker() else { return };
    let Some(binary) = from_test_stack("TEST_OTELCOL") else {
        return;
    };
    let dir = std::env::temp_dir().join(unique("kaufmann-otel"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let collector_log = dir.join("collector.log");
    let _collector = collector(&binary, &dir, port, &collector_log);
    let otlp = format!("http://127.0.0.1:{port}");
    let first = topic_with_dead_letters(&brokers, "otel-a", 1).await;
    let second = topic_with_dead_letters(&brokers, "otel-b", 1).await;
    let last = unique("otel-c");
    create_topics(&brokers, &[(&last, 1)]).await;
    let (one, two) = (unique("relay-one"), unique("relay-two"));
    let _one = relay(&brokers, &one, &first, &second, &otlp, &dir.join("one.log"));
    let _two = relay(&brokers, &two, &second, &last, &otlp, &dir.join("two.log"));

    // The command, from outside any service, with a trace of the test's own.
    let trace = TraceParent::new_root();
    let meta = Metadata::new(TestRelay::EVENT_NAME, "otel-test", "otel-test-1");
    let value = json::encode(&meta, &TestRelay { hops: 2 }).unwrap();
    let encoded = trace.encode();
    let headers = meta.to_headers().insert(Header {
        key: "traceparent",
        value: Some(&encoded[..]),
    });
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&first)
                .key(TestRelay::EVENT_NAME)
                .payload(&value)
                .headers(headers),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();

    let trace_id = trace.trace_id_hex();
    let read = || std::fs::read_to_string(&collector_log).unwrap_or_default();
    let both = eventually(Duration::from_secs(120), || {
        let spans = spans_of(&read(), &trace_id);
        [&one, &two]
            .iter()
            .all(|name| spans.iter().any(|(service, _, _)| service == *name))
    })
    .await;
    let spans = spans_of(&read(), &trace_id);
    let logs = || {
        format!(
            "spans of {trace_id}: {spans:?}\none: {}\ntwo: {}",
            std::fs::read_to_string(dir.join("one.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("two.log")).unwrap_or_default()
        )
    };
    assert!(both, "{}", logs());
    // The first service's span is the child of the command's sender; the second's, of the first
    // service's span that published its event.
    let of = |name: &str| {
        spans
            .iter()
            .find(|(service, _, _)| service == name)
            .cloned()
    };
    let (first_span, second_span) = (of(&one).unwrap(), of(&two).unwrap());
    assert_eq!(
        first_span.2,
        format!("{:016x}", trace.span_id),
        "{}",
        logs()
    );
    assert_eq!(second_span.2, first_span.1, "{}", logs());

    // Each service's metrics: its one message counted and timed.
    let expected = |log: &str| {
        [&one, &two].iter().all(|service| {
            metric_of(
                log,
                service,
                "kaufmann_messages_handled",
                TestRelay::EVENT_NAME,
            ) == Some(1)
                && metric_of(
                    log,
                    service,
                    "kaufmann_messages_consumed",
                    TestRelay::EVENT_NAME,
                ) == Some(1)
                && metric_of(
                    log,
                    service,
                    "kaufmann_handler_duration",
                    TestRelay::EVENT_NAME,
                ) == Some(1)
        })
    };
    let counted = eventually(Duration::from_secs(60), || expected(&read())).await;
    assert!(counted, "the metrics did not arrive:\n{}", read());
    let _ = std::fs::remove_dir_all(&dir);
}
