//! The whole path on the Apache Kafka broker: 1,000 `command.user.create` events produced here go
//! through the sample's handler and come back as 1,000 `event.user.created` events, and the group
//! commits exactly the end of the input (the broker's high watermarks); the same through the
//! broker's TLS and TLS + SASL listeners.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kaufmann::config::KafkaSecurity;
use kaufmann::registry::{open_registry, subject_for};
use kaufmann::wire::{confluent, decode_body, encode_body};
use kaufmann::TraceParent;
use kaufmann::{EventSchema, Metadata};
use kaufmann_examples::{CommandUserCreate, EventUserCreated};
use kaufmann_tests::{
    all_committed, broker, create_topics, high_watermarks, unique, wait_for_commits, SecuredBroker,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const COUNT: usize = 1_000;
const PARTITIONS: i32 = 4;
const DEADLINE: Duration = Duration::from_secs(120);

fn command(i: usize) -> CommandUserCreate {
    CommandUserCreate {
        id: i.to_string(),
        name: format!("Name {i}"),
        email: format!("User{i}@Example.ORG"),
    }
}

/// What the test produced: each command's `message_id`, and the end offset of each partition.
struct Produced {
    index_by_message_id: HashMap<String, usize>,
    ends: HashMap<i32, i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_commands_become_thousand_events_and_offsets_reach_the_end() {
    let Some(brokers) = broker() else { return };
    users_end_to_end(&brokers, &brokers.clone(), KafkaSecurity::default()).await;
}

/// The same through the broker's TLS listener, the service trusting the run's own CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_consumes_and_publishes_through_tls() {
    let Some(brokers) = broker() else { return };
    let Some(secured) = SecuredBroker::from_env() else {
        return;
    };
    users_end_to_end(&brokers, &secured.tls, secured.tls_security()).await;
}

/// The same through the broker's TLS + SASL listener, with SASL PLAIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_consumes_and_publishes_through_tls_and_sasl() {
    let Some(brokers) = broker() else { return };
    let Some(secured) = SecuredBroker::from_env() else {
        return;
    };
    users_end_to_end(&brokers, &secured.sasl, secured.sasl_security("PLAIN")).await;
}

/// The same with SCRAM-SHA-256 (the user created with the broker's storage tool).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_consumes_and_publishes_through_tls_and_scram() {
    let Some(brokers) = broker() else { return };
    let Some(secured) = SecuredBroker::from_env() else {
        return;
    };
    users_end_to_end(
        &brokers,
        &secured.sasl,
        secured.sasl_security("SCRAM-SHA-256"),
    )
    .await;
}

/// A wrong SCRAM password: the service refuses to start, saying authentication failed, and
/// shows the password nowhere (error, banner).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_scram_password_is_a_start_up_error_that_shows_no_password() {
    let Some(brokers) = broker() else { return };
    let Some(secured) = SecuredBroker::from_env() else {
        return;
    };
    let input = unique("sasl-in");
    create_topics(&brokers, &[(&input, 1), (&format!("{input}.DLT"), 1)]).await;
    let mut config = kaufmann::Config::new("sasl-users");
    config.brokers = Some(secured.sasl.clone());
    config.security = secured.sasl_security("SCRAM-SHA-256");
    let wrong = format!("wrong-{}", unique("pw"));
    config.security.sasl_password = Some(wrong.clone());
    config.topics = vec![input.clone()];
    config.default_topic.clone_from(&input);
    let shown = format!("{config:?} {}", config.masked());
    let err = kaufmann_tests::start(config).await.unwrap_err().to_string();
    assert!(
        err.to_lowercase().contains("authentication"),
        "the error says authentication failed: {err}"
    );
    for text in [&err, &shown] {
        assert!(!text.contains(&wrong), "the password is shown: {text}");
    }
}

/// 1,000 commands produced on `brokers` (plaintext), handled by a service that connects through
/// `service_brokers` with `security`; the events it publishes are read back on `brokers`.
async fn users_end_to_end(brokers: &str, service_brokers: &str, security: KafkaSecurity) {
    let brokers = brokers.to_owned();
    let (input, output, group) = (unique("e2e-in"), unique("e2e-out"), unique("e2e-group"));
    let dead_letters = format!("{input}.DLT");
    create_topics(
        &brokers,
        &[
            (&input, PARTITIONS),
            (&output, PARTITIONS),
            (&dead_letters, 1),
        ],
    )
    .await;
    let registry_url = format!("mock://{}", unique("e2e"));
    let produced = produce_commands(&brokers, &input, &registry_url).await;

    // Run the sample's handlers as a service on the input topic, publishing to the output topic.
    let mut config = kaufmann::Config::new("e2e-users");
    config.brokers = Some(service_brokers.to_owned());
    config.security = security;
    config.group_id.clone_from(&group);
    config.topics = vec![input.clone()];
    config.default_topic.clone_from(&output);
    config.registry_url.clone_from(&registry_url);
    config.commit_interval = Duration::from_millis(200);
    let demand = config.demand;
    let started = Instant::now();
    let service = kaufmann_tests::start(config).await.unwrap();

    read_and_check_events(&brokers, &output, &registry_url, &produced, started).await;
    let expected = all_committed(PARTITIONS, &produced.ends);
    let left = DEADLINE.saturating_sub(started.elapsed());
    let committed =
        wait_for_commits(&brokers, &group, &input, PARTITIONS, &produced.ends, left).await;
    assert_eq!(
        committed, expected,
        "committed offsets against the end of the input"
    );
    assert_eq!(
        high_watermarks(&brokers, &input, PARTITIONS),
        expected,
        "the broker's high watermarks against the acknowledged offsets"
    );

    let handled = service.stats().handled();
    let max_in_flight = service.stats().max_in_flight();
    service.shutdown().await.unwrap();
    assert_eq!(handled, COUNT as u64);
    assert!(
        max_in_flight <= demand,
        "in flight peaked at {max_in_flight} > demand {demand}"
    );
}

/// Produces the commands: Confluent framing, metadata headers, 16 keys.
async fn produce_commands(brokers: &str, topic: &str, registry_url: &str) -> Produced {
    let registry = open_registry(registry_url).unwrap();
    let subject = subject_for(CommandUserCreate::EVENT_NAME);
    let schema_id = registry
        .register(&subject, CommandUserCreate::schema())
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let mut index_by_message_id = HashMap::new();
    let mut deliveries = Vec::with_capacity(COUNT);
    for i in 0..COUNT {
        let schema = CommandUserCreate::schema();
        let body = encode_body(CommandUserCreate::EVENT_NAME, schema, &command(i)).unwrap();
        let value = confluent::frame(schema_id, &body);
        let meta = Metadata::new(CommandUserCreate::EVENT_NAME, "e2e-test", "e2e-test-1");
        let key = format!("user-{}", i % 16);
        let record = FutureRecord::to(topic)
            .payload(&value)
            .key(&key)
            .headers(meta.to_headers());
        deliveries.push(kaufmann_tests::send(&producer, record).await);
        index_by_message_id.insert(meta.message_id, i);
    }
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for delivery in deliveries {
        let delivery = delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        let end = ends.entry(delivery.partition).or_default();
        *end = (*end).max(delivery.offset + 1);
    }
    Produced {
        index_by_message_id,
        ends,
    }
}

/// Reads `COUNT` events from every partition of `topic` and checks each one against its command.
async fn read_and_check_events(
    brokers: &str,
    topic: &str,
    registry_url: &str,
    produced: &Produced,
    started: Instant,
) {
    let registry = open_registry(registry_url).unwrap();
    let reader = kaufmann_tests::reader(brokers, topic, PARTITIONS, "e2e-reader");
    let mut seen = vec![false; COUNT];
    for n in 0..COUNT {
        let left = DEADLINE.saturating_sub(started.elapsed());
        let message = tokio::time::timeout(left, reader.recv())
            .await
            .unwrap_or_else(|_| panic!("only {n} of {COUNT} events arrived within {DEADLINE:?}"))
            .unwrap();
        let meta = Metadata::from_headers(message.headers());
        assert_eq!(meta.message_name, EventUserCreated::EVENT_NAME);
        assert_eq!(meta.emitter_service, "e2e-users");
        let (id, body) = confluent::split(message.payload().unwrap()).unwrap();
        let writer = registry.schema_by_id(id).await.unwrap();
        let event: EventUserCreated = decode_body(&writer.schema, Some(id), body).unwrap();
        let callback = meta.callback_id.as_deref().expect("callback_id is set");
        let i = produced.index_by_message_id[callback];
        assert_eq!(event.id, format!("user-{i}"));
        assert_eq!(event.name, format!("Name {i}"));
        assert_eq!(event.email, format!("user{i}@example.org"));
        let key = format!("user-{}", i % 16);
        assert_eq!(
            message.key(),
            Some(key.as_bytes()),
            "the command's key is kept"
        );
        assert!(!seen[i], "command {i} was answered twice");
        seen[i] = true;
    }
    assert!(seen.iter().all(|s| *s));
}

/// A `traceparent` on an incoming command continues on the event its handler publishes: same
/// trace id, a new span id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traceparent_follows_an_event_through_the_service() {
    let Some(brokers) = broker() else { return };
    let (input, output) = (unique("trace-in"), unique("trace-out"));
    let dead_letters = format!("{input}.DLT");
    create_topics(&brokers, &[(&input, 1), (&output, 1), (&dead_letters, 1)]).await;
    let registry_url = format!("mock://{}", unique("trace"));
    let registry = open_registry(&registry_url).unwrap();
    let subject = subject_for(CommandUserCreate::EVENT_NAME);
    let schema_id = registry
        .register(&subject, CommandUserCreate::schema())
        .await
        .unwrap();
    let body = encode_body(
        CommandUserCreate::EVENT_NAME,
        CommandUserCreate::schema(),
        &command(7),
    )
    .unwrap();
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let headers = Metadata::new(CommandUserCreate::EVENT_NAME, "trace-test", "t-1")
        .to_headers()
        .insert(rdkafka::message::Header {
            key: "traceparent",
            value: Some(incoming),
        });
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let value = confluent::frame(schema_id, &body);
    let record = FutureRecord::to(&input)
        .payload(&value)
        .key("k")
        .headers(headers);
    producer
        .send(record, Duration::from_secs(30))
        .await
        .unwrap();

    let mut config = kaufmann::Config::new("trace-users");
    config.brokers = Some(brokers.clone());
    config.group_id = unique("trace-group");
    config.topics = vec![input.clone()];
    config.default_topic.clone_from(&output);
    config.registry_url.clone_from(&registry_url);
    let service = kaufmann_tests::start(config).await.unwrap();

    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("trace-reader"))
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&output, 0, Offset::Beginning)
        .unwrap();
    reader.assign(&assignment).unwrap();
    let message = tokio::time::timeout(DEADLINE, reader.recv())
        .await
        .expect("the event arrives")
        .unwrap();
    let outgoing = message
        .headers()
        .and_then(|hs| hs.iter().find(|h| h.key == "traceparent"))
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("the published event has a traceparent");
    service.shutdown().await.unwrap();

    let incoming = TraceParent::parse(incoming).unwrap();
    let outgoing = TraceParent::parse(&outgoing).expect("a valid traceparent");
    assert_eq!(outgoing.trace_id, incoming.trace_id, "same trace");
    assert_ne!(outgoing.span_id, incoming.span_id, "a new span");
}
