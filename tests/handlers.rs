//! Handlers for real services on the Apache Kafka broker: application state given at start-up
//! (and refused start-up without it), permanent errors, non-blocking retry topics and batch
//! handlers.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kaufmann::wire::{dead_letter, retry_topic};
use kaufmann_examples::Users;
use kaufmann_tests::{
    attempts_of, batch_record, broker, create_topics, produce_events, read_dead_letters,
    test_config, topic_with_dead_letters, unique, wait_for_commits, Tally, TestBatch, TestFlaky,
    TestTally,
};

const LIMIT: Duration = Duration::from_secs(180);

/// A service given a `Tally` handles 10,000 events with that very value: the test's clone sees
/// every id, once, and every offset is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_handles_events_with_the_state_it_was_given() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "state", 4).await;
    let registry = format!("mock://{}", unique("state"));
    let events = (0..10_000).map(|id| {
        let key = format!("key-{}", id % 50);
        (key.clone(), TestTally { id, key })
    });
    let ends = produce_events(&brokers, &topic, &registry, events).await;

    let config = test_config(&brokers, &topic, &registry);
    let group = config.group_id.clone();
    let tally = Tally::default();
    let service = kaufmann::Service::builder(config)
        .state(Users::default())
        .state(tally.clone())
        .start()
        .await
        .unwrap();
    let committed = wait_for_commits(&brokers, &group, &topic, 4, &ends, LIMIT).await;
    let handled = service.stats().handled();
    service.shutdown().await.unwrap();
    assert_eq!(committed, ends, "every offset committed");
    assert_eq!(handled, 10_000);
    let seen = tally.of(&topic);
    assert_eq!(seen.len(), 10_000, "every event reached the state given");
    let distinct: HashSet<i64> = seen.into_iter().collect();
    assert_eq!(distinct, (0..10_000).collect::<HashSet<i64>>());
}

/// A service whose handler takes `State<Tally>` but was given no `Tally` refuses to start, naming
/// the handler with its source location and the type, and saying how to give it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_missing_a_state_refuses_to_start() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "nostate", 1).await;
    let config = test_config(&brokers, &topic, &format!("mock://{}", unique("nostate")));
    let err = kaufmann::Service::builder(config)
        .state(Users::default())
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("handler tally (tests/support/lib.rs:")
            && err.contains("takes `State<kaufmann_tests::Tally>`, but the service was given no `kaufmann_tests::Tally`")
            && err.contains("kaufmann::run!(state = <value>)"),
        "{err}"
    );
    assert!(
        !err.contains("Users"),
        "the state given is not named: {err}"
    );

    let twice = kaufmann::Service::builder(test_config(&brokers, &topic, "mock://twice"))
        .states(kaufmann_tests::states())
        .state(Tally::default())
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        twice.contains("two state values of type `kaufmann_tests::Tally`"),
        "{twice}"
    );
}

fn flaky(run: &str, id: i64, fails: i32, permanent: bool) -> (String, TestFlaky) {
    let event = TestFlaky {
        run: run.to_owned(),
        id,
        fails,
        permanent,
    };
    ("one-key".to_owned(), event)
}

/// A permanent error skips the retries in place and the retry topics: the message reaches the
/// dead-letter topic after its one attempt, with the kind `permanent`; transient ones around it
/// are retried and handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permanent_error_is_dead_lettered_after_one_attempt() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "permanent", 2).await;
    create_topics(&brokers, &[(&format!("{topic}.retry.1s"), 1)]).await;
    let registry = format!("mock://{}", unique("permanent"));
    let events = (0..20).map(|id| flaky(&topic, id, i32::from(id % 2 == 1), id % 4 == 0));
    produce_events(&brokers, &topic, &registry, events).await;

    let mut config = test_config(&brokers, &topic, &registry);
    config.errors.retry.max_retries = 3;
    config.errors.retry_topics = vec![Duration::from_secs(1)];
    let service = kaufmann_tests::start(config).await.unwrap();
    let dead = read_dead_letters(&brokers, &format!("{topic}.DLT"), 5).await;
    let done = kaufmann_tests::eventually(LIMIT, || service.stats().handled() >= 15).await;
    let (handled, dead_lettered) = (service.stats().handled(), service.stats().dead_lettered());
    service.shutdown().await.unwrap();
    assert!(done, "handled {handled} of 15");
    assert_eq!(dead_lettered, 5);
    let mut ids = HashSet::new();
    for (_, headers) in dead {
        assert_eq!(headers[dead_letter::ERROR_KIND], "permanent", "{headers:?}");
        assert_eq!(headers[dead_letter::ATTEMPTS], "1", "{headers:?}");
        assert_eq!(headers[dead_letter::SOURCE_TOPIC], topic);
        let id: i64 = headers[dead_letter::ERROR]
            .split(' ')
            .nth(1)
            .and_then(|id| id.parse().ok())
            .unwrap();
        ids.insert(id);
    }
    assert_eq!(
        ids,
        (0..20).filter(|id| id % 4 == 0).collect::<HashSet<i64>>()
    );
    for id in 0..20 {
        let expected = if id % 4 == 0 {
            1
        } else {
            1 + usize::from(id % 2 == 1)
        };
        assert_eq!(attempts_of(&topic, id).len(), expected, "attempts of {id}");
    }
}

/// With `retry_topics = ["1s", "2s"]` and no retries in place: a message that fails twice goes
/// through both retry topics and is handled on its third attempt, at least 3 s after its first,
/// while the 1,000 messages behind it on its partition (and key) are handled meanwhile; one that
/// always fails reaches the dead-letter topic after three attempts, naming the topic it was
/// produced to.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_topics_delay_a_failed_message_without_blocking_its_partition() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "retrytopics", 1).await;
    let first_retry = format!("{topic}.retry.1s");
    create_topics(
        &brokers,
        &[(&first_retry, 1), (&format!("{topic}.retry.2s"), 2)],
    )
    .await;
    let registry = format!("mock://{}", unique("retrytopics"));
    let mut events = vec![flaky(&topic, 0, 2, false)];
    events.extend((1..=1_000).map(|id| flaky(&topic, id, 0, false)));
    events.push(flaky(&topic, 5_000, -1, false));
    produce_events(&brokers, &topic, &registry, events).await;

    let mut config = test_config(&brokers, &topic, &registry);
    config.errors.retry.max_retries = 0;
    config.errors.retry_topics = vec![Duration::from_secs(1), Duration::from_secs(2)];
    let service = kaufmann_tests::start(config).await.unwrap();
    let done = kaufmann_tests::eventually(LIMIT, || {
        service.stats().handled() >= 1_001 && service.stats().dead_lettered() >= 1
    })
    .await;
    let stats = (service.stats().handled(), service.stats().dead_lettered());
    service.shutdown().await.unwrap();
    assert!(done, "handled, dead-lettered: {stats:?}");

    let attempts = attempts_of(&topic, 0);
    assert_eq!(attempts.len(), 3, "two failures, then handled");
    let waited = attempts[2] - attempts[0];
    assert!(
        waited >= Duration::from_secs(3),
        "third attempt after {waited:?}"
    );
    assert!(attempts[1] - attempts[0] >= Duration::from_secs(1));
    let last_other = (1..=1_000)
        .map(|id| {
            let attempts = attempts_of(&topic, id);
            assert_eq!(attempts.len(), 1, "attempts of {id}");
            attempts[0]
        })
        .max()
        .unwrap();
    assert!(
        last_other < attempts[1],
        "the partition's other messages were handled before the first retry: not blocked"
    );

    let dead = read_dead_letters(&brokers, &format!("{topic}.DLT"), 1).await;
    let (_, headers) = &dead[0];
    assert_eq!(headers[dead_letter::ATTEMPTS], "3", "{headers:?}");
    assert_eq!(headers[dead_letter::SOURCE_TOPIC], topic);
    assert_eq!(headers[dead_letter::SOURCE_OFFSET], "1001");
    assert_eq!(
        headers[retry_topic::STAGE],
        "2",
        "it went through both retry topics"
    );

    let retried: HashMap<String, String> = read_dead_letters(&brokers, &first_retry, 2)
        .await
        .into_iter()
        .map(|(_, headers)| headers)
        .find(|h| h[retry_topic::ORIGINAL_OFFSET] == "0")
        .expect("the record of message 0 in the first retry topic");
    assert_eq!(retried[retry_topic::STAGE], "1");
    assert_eq!(retried[retry_topic::ATTEMPTS], "1");
    assert_eq!(retried[retry_topic::ORIGINAL_TOPIC], topic);
    assert_eq!(retried[retry_topic::ORIGINAL_PARTITION], "0");
    assert!(retried[retry_topic::ERROR].contains("flaky 0 fails on attempt 1"));
    let due: u64 = retried[retry_topic::DUE].parse().unwrap();
    let failed: u64 = retried[retry_topic::FIRST_FAILURE].parse().unwrap();
    assert!(
        (1_000..1_500).contains(&(due - failed)),
        "due {due}, first failure {failed}"
    );
}

/// A batch handler over 50,000 events of 100 keys on 4 partitions, `key` ordering, `batch_max`
/// 200: every key's order holds across batches, batch sizes are between 1 and 200 (and batches
/// do form), every offset is committed, and the 3 events the handler names as failed (retried
/// once as a batch of their own) are exactly the 3 dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_handler_keeps_key_order_and_dead_letters_only_what_it_names() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "batch", 4).await;
    let registry = format!("mock://{}", unique("batch"));
    let failing: HashSet<i64> = [7, 25_000, 49_998].into();
    let events = (0..50_000).map(|id| {
        let key = format!("key-{}", id % 100);
        let event = TestBatch {
            run: topic.clone(),
            id,
            key: key.clone(),
            seq: id / 100,
            fail: failing.contains(&id),
        };
        (key, event)
    });
    let ends = produce_events(&brokers, &topic, &registry, events).await;

    let mut config = test_config(&brokers, &topic, &registry);
    config.ordering = kaufmann::Ordering::Key;
    config.batch_max = 200;
    config.batch_linger = Duration::from_millis(20);
    config.demand = 1_000;
    config.errors.retry.max_retries = 1;
    // (Error events would go to the consumed topic, past the ends produced.)
    config.errors.error_events = false;
    let group = config.group_id.clone();
    let service = kaufmann_tests::start(config).await.unwrap();
    let committed = wait_for_commits(&brokers, &group, &topic, 4, &ends, LIMIT).await;
    let stats = (service.stats().handled(), service.stats().dead_lettered());
    service.shutdown().await.unwrap();
    assert_eq!(committed, ends, "every offset committed");
    assert_eq!(stats, (49_997, 3));

    let record = batch_record(&topic);
    assert_eq!(record.handled.len(), 49_997);
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (key, seq) in &record.handled {
        if let Some(before) = last.insert(key, *seq) {
            assert!(*seq > before, "key {key}: seq {seq} after {before}");
        }
    }
    let (smallest, largest) = (
        record.sizes.iter().min().copied().unwrap(),
        record.sizes.iter().max().copied().unwrap(),
    );
    assert!(
        smallest >= 1 && largest <= 200,
        "sizes {smallest}..{largest}"
    );
    assert!(largest > 1, "batches formed: the largest held {largest}");
    println!(
        "batches: {}, sizes {smallest}..{largest}, mean {}",
        record.sizes.len(),
        50_000 / record.sizes.len()
    );
    assert_eq!(
        record.failed,
        failing
            .iter()
            .map(|id| (*id, 2))
            .collect::<HashMap<i64, usize>>(),
        "each failing event: its batch, then one retry"
    );

    let dead = read_dead_letters(&brokers, &format!("{topic}.DLT"), 3).await;
    let ids: HashSet<i64> = dead
        .iter()
        .map(|(_, headers)| {
            assert_eq!(headers[dead_letter::ATTEMPTS], "2", "{headers:?}");
            assert_eq!(headers[dead_letter::ERROR_KIND], "handler");
            headers[dead_letter::ERROR]
                .split(' ')
                .nth(2)
                .and_then(|id| id.parse().ok())
                .unwrap()
        })
        .collect();
    assert_eq!(ids, failing);
}
