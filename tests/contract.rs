//! The message contract on the Apache Kafka broker: `ctx.reply` answers on the caller's callback
//! topic and partition; a handler that fails for good publishes `event.error.<event>` to the
//! default topic and to the callback topic, carrying the error and the original bytes; and a
//! service in the `kaufmann_ex` wire format reads and writes what `KaufmannEx` services do.

use std::time::Duration;

use apache_avro::types::Value;
use futures::StreamExt;
use kaufmann::registry::{memory_scope, SchemaRegistry};
use kaufmann::wire::confluent;
use kaufmann::wire::kaufmann_ex;
use kaufmann::{CallbackTopic, Metadata};
use kaufmann::{EventSchema, WireFormat};
use kaufmann_tests::{
    broker, create_topics, eventually, observed, reader, send, test_config,
    topic_with_dead_letters, unique, work_items, TestPing, TestPong, TestWork,
};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

const LIMIT: Duration = Duration::from_secs(60);

/// The value of a header of `message`.
fn header(message: &BorrowedMessage<'_>, key: &str) -> Option<String> {
    message.headers().and_then(|hs| {
        hs.iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

/// Reads `topic` (every partition) until `want` holds for a message; returns (partition, key,
/// value, `message_name`, `callback_id`) of it.
async fn find(
    brokers: &str,
    topic: &str,
    partitions: i32,
    want: impl Fn(&str) -> bool,
) -> (i32, Option<Vec<u8>>, Vec<u8>, String) {
    let consumer = reader(brokers, topic, partitions, "contract");
    let mut stream = consumer.stream();
    let found = tokio::time::timeout(LIMIT, async {
        while let Some(Ok(message)) = stream.next().await {
            let name = header(&message, "message_name").unwrap_or_default();
            if want(&name) {
                let callback = header(&message, "callback_id").unwrap_or_default();
                return Some((
                    message.partition(),
                    message.key().map(<[u8]>::to_vec),
                    message.payload().unwrap_or_default().to_vec(),
                    callback,
                ));
            }
        }
        None
    })
    .await;
    found
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no message on {topic} within {LIMIT:?}"))
}

fn record_field<'a>(value: &'a Value, name: &str) -> &'a Value {
    let Value::Record(fields) = value else {
        panic!("not a record: {value:?}")
    };
    &fields.iter().find(|(n, _)| n == name).unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replies_and_error_events_go_where_the_caller_asked() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "contract", 2).await;
    let replies = unique("replies");
    create_topics(&brokers, &[(&replies, 2)]).await;
    let registry_url = format!("mock://{}", unique("contract"));
    let mut config = test_config(&brokers, &topic, &registry_url);
    config.errors.retry.max_retries = 1;
    let service = kaufmann_tests::start(config).await.unwrap();
    let callback = CallbackTopic {
        topic: Some(replies.clone()),
        partition: Some(1),
    };

    // ctx.reply: to the callback topic and partition, correlated by callback_id.
    let asked = service
        .publisher()
        .publish_with_callback(TestPing { text: "hi".into() }, callback.clone())
        .await
        .unwrap();
    let (partition, _, value, callback_id) =
        find(&brokers, &replies, 2, |name| name == "test.pong").await;
    assert_eq!(partition, 1);
    assert_eq!(callback_id, asked.message_id);
    let registry = memory_scope(&registry_url).unwrap();
    let (id, body) = confluent::split(&value).unwrap();
    let writer = registry.schema_by_id(id).await.unwrap();
    let answer: TestPong = kaufmann::wire::decode_body(&writer.schema, Some(id), body).unwrap();
    assert_eq!(answer.text, "pong: hi");

    // A handler that always fails: after its retry, event.error.test.work goes to the default
    // topic and to the callback topic, with the error, the attempts and the original bytes.
    let mut work = work_items(1, 1, 0).remove(0);
    work.fail_times = -1;
    let failing = service
        .publisher()
        .publish_with_callback(work, callback)
        .await
        .unwrap();
    for (on, partitions) in [(&topic, 2), (&replies, 2)] {
        let (_, key, value, callback_id) = find(&brokers, on, partitions, |name| {
            name == "event.error.test.work"
        })
        .await;
        assert_eq!(callback_id, failing.message_id, "on {on}");
        assert_eq!(key, None, "keyed like the failed record");
        let (id, body) = confluent::split(&value).unwrap();
        let writer = registry.schema_by_id(id).await.unwrap();
        let error = apache_avro::reader::datum::GenericDatumReader::builder(&writer.schema)
            .build()
            .and_then(|reader| reader.read_value(&mut &body[..]))
            .unwrap();
        assert_eq!(
            record_field(&error, "event"),
            &Value::String("test.work".into())
        );
        assert_eq!(
            record_field(&error, "kind"),
            &Value::String("handler".into())
        );
        assert_eq!(record_field(&error, "attempts"), &Value::Int(2));
        let Value::String(message) = record_field(&error, "error") else {
            panic!()
        };
        assert!(message.contains("fails on attempt 2"), "{message}");
        assert!(matches!(
            record_field(&error, "original"),
            Value::Union(1, _)
        ));
    }
    service.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kaufmann_ex_service_reads_and_writes_the_kaufmann_ex_layout() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "kex", 2).await;
    let registry_url = format!("mock://{}", unique("kex"));
    let registry = memory_scope(&registry_url).unwrap();
    // What a KaufmannEx service registers for test.work: the union, under the event's name.
    let schema = kaufmann_ex::wire_schema(TestWork::EVENT_NAME, TestWork::SCHEMA_JSON).unwrap();
    registry.register("test.work", &schema).await.unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let works = work_items(10, 2, 0);
    for (i, work) in works.iter().enumerate() {
        let meta = Metadata::new("test.work", "elixir-service", "elixir-1");
        let value = kaufmann_ex::encode(&schema, &meta, work).unwrap();
        let key = format!("test.work#{i}");
        let record = FutureRecord::to(&topic).key(&key).payload(&value);
        send(&producer, record).await.await.unwrap().unwrap();
    }
    let mut config = test_config(&brokers, &topic, &registry_url);
    config.wire_format = WireFormat::KaufmannEx;
    let service = kaufmann_tests::start(config).await.unwrap();
    assert!(eventually(LIMIT, || observed(&topic).len() == works.len()).await);

    // Publishing: the key is the event name, the value the union, the subject the event name.
    let out = unique("kex-out");
    create_topics(&brokers, &[(&out, 1)]).await;
    let sent = service
        .publisher()
        .publish_to(&out, None, TestPong { text: "x".into() })
        .await
        .unwrap();
    let consumer = reader(&brokers, &out, 1, "kex");
    let message = tokio::time::timeout(LIMIT, consumer.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.key(), Some(&b"test.pong"[..]));
    let value = message.payload().unwrap();
    assert_eq!(value[0], 0x02, "union branch 1, no Confluent framing");
    let latest = registry.latest("test.pong").await.unwrap();
    let (meta, pong) = kaufmann_ex::decode::<TestPong>(&latest.schema, value).unwrap();
    assert_eq!(pong.text, "x");
    assert_eq!(meta.message_id, sent.message_id);
    assert_eq!(meta.emitter_service, "engine-test");
    service.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_go_to_their_configured_topic_keyed_by_their_configured_field() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "routes", 1).await;
    let pongs = unique("pongs");
    create_topics(&brokers, &[(&pongs, 1)]).await;
    let mut config = test_config(&brokers, &topic, &format!("mock://{}", unique("routes")));
    let mut route = kaufmann::EventRoute::default();
    route.topic = Some(pongs.clone());
    route.key_field = Some("text".to_owned());
    config.event_routes.insert("test.pong".to_owned(), route);
    let service = kaufmann_tests::start(config).await.unwrap();
    let publisher = service.publisher();
    publisher
        .publish(TestPong { text: "k1".into() })
        .await
        .unwrap();
    let options = kaufmann::PublishOptions::new()
        .key("explicit")
        .header("tenant", "acme");
    publisher
        .publish_with(TestPong { text: "k2".into() }, options)
        .await
        .unwrap();
    let consumer = reader(&brokers, &pongs, 1, "routes");
    let mut stream = consumer.stream();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = tokio::time::timeout(LIMIT, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push((
            message.key().map(<[u8]>::to_vec),
            header(&message, "tenant"),
        ));
    }
    assert_eq!(seen[0], (Some(b"k1".to_vec()), None), "keyed by the field");
    assert_eq!(
        seen[1],
        (Some(b"explicit".to_vec()), Some("acme".to_owned())),
        "an explicit key wins; extra headers travel"
    );
    service.shutdown().await.unwrap();
}
