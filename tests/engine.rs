//! The runtime engine on the Apache Kafka broker: back-pressure, ordering modes, poison input,
//! compressed input, a registry outage and unknown schema ids.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kaufmann::wire::dead_letter;
use kaufmann::Ordering;
use kaufmann_cli::registry_server::LocalRegistry;
use kaufmann_tests::{
    all_committed, assert_each_key_in_order, broker, high_watermarks, http_get, observed,
    peak_concurrency, produce, produce_with, read_dead_letters, readiness_becomes, test_config,
    topic_with_dead_letters, unique, wait_for_commits, work_items, work_records, Record,
};

const LIMIT: Duration = Duration::from_secs(180);

/// A 20,000-message backlog and a 5 ms handler: the in-flight gauge never passes `demand`, and
/// every message is handled and committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backlog_is_handled_with_never_more_than_demand_in_flight() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "bp", 4).await;
    let registry = format!("mock://{}", unique("bp"));
    let records = work_records(20_000, 400, 5);
    let ends = produce(&brokers, &topic, &registry, records).await;

    let mut config = test_config(&brokers, &topic, &registry);
    config.ordering = Ordering::Unordered;
    let (demand, group) = (config.demand, config.group_id.clone());
    let service = kaufmann_tests::start(config).await.unwrap();
    let mut peak = 0;
    let done = kaufmann_tests::eventually(LIMIT, || {
        peak = peak.max(service.stats().in_flight());
        assert!(peak <= demand, "in flight {peak} > demand {demand}");
        service.stats().handled() >= 20_000
    })
    .await;
    assert!(done, "handled {} of 20000", service.stats().handled());
    let committed = wait_for_commits(&brokers, &group, &topic, 4, &ends, LIMIT).await;
    let stats_peak = service.stats().max_in_flight();
    service.shutdown().await.unwrap();

    let ids: HashSet<i64> = observed(&topic).iter().map(|o| o.id).collect();
    assert_eq!(ids.len(), 20_000);
    assert!(
        stats_peak <= demand,
        "engine gauge peaked at {stats_peak} > {demand}"
    );
    assert!(
        stats_peak > demand / 2,
        "the pool never filled: peak {stats_peak}"
    );
    assert_eq!(committed, all_committed(4, &ends));
}

/// `key` mode: each key's messages run in order, while several keys run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_mode_keeps_each_keys_order_and_runs_keys_in_parallel() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "key", 2).await;
    let registry = format!("mock://{}", unique("key"));
    let records = work_records(2_000, 8, 1);
    produce(&brokers, &topic, &registry, records).await;

    let mut config = test_config(&brokers, &topic, &registry);
    config.ordering = Ordering::Key;
    let service = kaufmann_tests::start(config).await.unwrap();
    let done = kaufmann_tests::eventually(LIMIT, || service.stats().handled() >= 2_000).await;
    service.shutdown().await.unwrap();
    assert!(done, "not every message was handled");

    let peak = assert_each_key_in_order(&topic, 8, 250);
    assert!(
        peak <= 8,
        "two messages of one key ran at once (peak {peak} > 8 keys)"
    );
}

/// `partition` mode: each partition's messages run in offset order, one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partition_mode_keeps_each_partitions_order() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "part", 3).await;
    let registry = format!("mock://{}", unique("part"));
    let records = work_records(1_500, 30, 1);
    produce(&brokers, &topic, &registry, records).await;

    let mut config = test_config(&brokers, &topic, &registry);
    config.ordering = Ordering::Partition;
    let service = kaufmann_tests::start(config).await.unwrap();
    let done = kaufmann_tests::eventually(LIMIT, || service.stats().handled() >= 1_500).await;
    service.shutdown().await.unwrap();
    assert!(done, "not every message was handled");

    let mut by_partition: HashMap<i32, Vec<i64>> = HashMap::new();
    for o in observed(&topic) {
        by_partition.entry(o.partition).or_default().push(o.offset);
    }
    for (partition, offsets) in &by_partition {
        let mut sorted = offsets.clone();
        sorted.sort_unstable();
        assert_eq!(offsets, &sorted, "order of partition {partition}");
    }
    assert_eq!(by_partition.values().map(Vec::len).sum::<usize>(), 1_500);
    assert!(peak_concurrency(&topic) <= 3);
}

/// 1% garbage and a handler that always fails for some ids: every good message is handled, every
/// bad one lands in the dead-letter topic with the error headers, and the service keeps going.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_messages_go_to_the_dead_letter_topic_and_the_rest_is_handled() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "poison", 2).await;
    let dlt = format!("{topic}.DLT");
    let registry = format!("mock://{}", unique("poison"));
    let mut records = Vec::new();
    let mut expected_dead = HashSet::new();
    let mut expected_good = HashSet::new();
    for mut work in work_items(1_000, 10, 0) {
        if work.id % 100 == 50 {
            records.push(Record::Raw(
                work.lane.clone(),
                format!("garbage {}", work.id).into_bytes(),
            ));
            expected_dead.insert(format!("garbage {}", work.id));
        } else if work.id % 97 == 3 {
            work.fail_times = -1;
            expected_dead.insert(format!("work {}", work.id));
            records.push(Record::Work(work));
        } else {
            if work.id % 10 == 7 {
                work.fail_times = 1; // fails once, succeeds on the retry
            }
            expected_good.insert(work.id);
            records.push(Record::Work(work));
        }
    }
    produce(&brokers, &topic, &registry, records).await;

    let mut config = test_config(&brokers, &topic, &registry);
    config.errors.retry.max_retries = 2;
    let service = kaufmann_tests::start(config).await.unwrap();
    let total = (expected_good.len() + expected_dead.len()) as u64;
    let done = kaufmann_tests::eventually(LIMIT, || {
        service.stats().handled() + service.stats().dead_lettered() >= total
    })
    .await;
    let stats = (
        service.stats().handled(),
        service.stats().dead_lettered(),
        service.stats().retried(),
    );
    service.shutdown().await.unwrap();
    assert!(
        done,
        "handled + dead-lettered {stats:?} never reached {total}"
    );

    let handled: HashSet<i64> = observed(&topic).iter().map(|o| o.id).collect();
    assert_eq!(handled, expected_good);
    let dead = read_dead_letters(&brokers, &dlt, expected_dead.len()).await;
    let mut found = HashSet::new();
    for (value, headers) in dead {
        assert_eq!(headers[dead_letter::SOURCE_TOPIC], topic);
        assert!(
            headers.contains_key(dead_letter::SOURCE_PARTITION)
                && headers.contains_key(dead_letter::SOURCE_OFFSET)
        );
        if value.starts_with("garbage") {
            assert_eq!(headers[dead_letter::ERROR_KIND], "decode");
            assert!(
                headers[dead_letter::ERROR].contains("magic byte"),
                "{headers:?}"
            );
            assert_eq!(headers[dead_letter::ATTEMPTS], "1");
            found.insert(value);
        } else {
            assert_eq!(headers[dead_letter::ERROR_KIND], "handler");
            assert_eq!(headers[dead_letter::ATTEMPTS], "3", "1 attempt + 2 retries");
            assert_eq!(headers[dead_letter::EVENT], "test.work");
            assert_eq!(
                headers["message_name"], "test.work",
                "original headers are kept"
            );
            let id = headers[dead_letter::ERROR]
                .split(' ')
                .nth(1)
                .unwrap()
                .to_owned();
            found.insert(format!("work {id}"));
        }
    }
    assert_eq!(found, expected_dead);
    assert!(
        stats.2 >= 100,
        "failed-once messages were retried: {stats:?}"
    );
}

/// Batches compressed with each codec Kafka has (zstd, lz4, snappy, gzip): every message is
/// handled and committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn input_compressed_with_every_codec_is_handled() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "codecs", 2).await;
    let registry = format!("mock://{}", unique("codecs"));
    let mut ends = HashMap::new();
    for (n, codec) in ["zstd", "lz4", "snappy", "gzip"].into_iter().enumerate() {
        let first = i64::try_from(n).unwrap() * 100;
        let records = work_items(100, 5, 0)
            .into_iter()
            .map(|mut w| {
                w.id += first;
                Record::Work(w)
            })
            .collect();
        let produced = produce_with(
            &brokers,
            &topic,
            &registry,
            records,
            &[("compression.type", codec)],
        )
        .await;
        for (partition, end) in produced {
            let known = ends.entry(partition).or_insert(end);
            *known = (*known).max(end);
        }
    }
    let config = test_config(&brokers, &topic, &registry);
    let group = config.group_id.clone();
    let service = kaufmann_tests::start(config).await.unwrap();
    let committed = wait_for_commits(&brokers, &group, &topic, 2, &ends, LIMIT).await;
    let ids: HashSet<i64> = observed(&topic).iter().map(|o| o.id).collect();
    service.shutdown().await.unwrap();
    assert_eq!(
        ids,
        (0..400).collect::<HashSet<_>>(),
        "every codec's messages"
    );
    assert_eq!(committed, ends);
}

/// A 20 s registry outage under load: the messages that need a schema the service has not seen
/// wait for the registry instead of spending their retries; readiness answers 503 with the reason
/// during the outage and 200 after; every message is handled after it and none is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_outage_pauses_messages_instead_of_dead_lettering_them() {
    const COUNT: i64 = 2_000;
    const OUTAGE: Duration = Duration::from_secs(20);
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "outage", 2).await;
    let scope = format!("mock://{}", unique("outage"));
    let memory = kaufmann::registry::memory_scope(&scope).unwrap();
    let server = LocalRegistry::start("127.0.0.1:0", memory.clone())
        .await
        .unwrap();
    let addr = server.addr();
    let mut config = test_config(&brokers, &topic, &server.url());
    config.metrics_addr = Some("127.0.0.1:0".to_owned());
    let service = kaufmann_tests::start(config).await.unwrap();
    let metrics = service.metrics_addr().unwrap();
    readiness_becomes(metrics, 200, LIMIT).await;

    server.stop().await;
    let outage_started = std::time::Instant::now();
    // Registered in the same registry the server serves (not through it): ids the service has
    // never seen, so it must ask the registry for them.
    produce(&brokers, &topic, &scope, work_records(COUNT, 20, 1)).await;
    let body = readiness_becomes(metrics, 503, Duration::from_secs(15)).await;
    assert!(
        body.contains("schema registry unreachable for"),
        "the reason is given: {body}"
    );
    tokio::time::sleep(OUTAGE.saturating_sub(outage_started.elapsed())).await;
    let during = (service.stats().handled(), service.stats().retried());
    assert_eq!(
        during,
        (0, 0),
        "nothing handled nor retried while the registry is down"
    );
    assert_eq!(service.stats().dead_lettered(), 0);
    assert!(http_get(metrics, "/metrics")
        .1
        .contains("kaufmann_registry_up 0"));

    let server = LocalRegistry::start(&addr.to_string(), memory)
        .await
        .unwrap();
    let back = std::time::Instant::now();
    let done =
        kaufmann_tests::eventually(LIMIT, || service.stats().handled() >= COUNT.unsigned_abs())
            .await;
    let handled_after = back.elapsed();
    readiness_becomes(metrics, 200, Duration::from_secs(15)).await;
    let stats = (
        service.stats().handled(),
        service.stats().retried(),
        service.stats().dead_lettered(),
        service.stats().failed(),
    );
    service.shutdown().await.unwrap();
    server.stop().await;
    assert!(done, "handled {} of {COUNT} after the outage", stats.0);
    assert_eq!(
        stats,
        (COUNT.unsigned_abs(), 0, 0, 0),
        "(handled, retried, dead-lettered, failed)"
    );
    let dead = high_watermarks(&brokers, &format!("{topic}.DLT"), 1);
    assert_eq!(
        dead.get(&0).copied().unwrap_or(0),
        0,
        "the dead-letter topic is empty"
    );
    let ids: HashSet<i64> = observed(&topic).iter().map(|o| o.id).collect();
    assert_eq!(ids.len() as u64, COUNT.unsigned_abs());
    println!(
        "registry outage of {OUTAGE:?}: {COUNT} messages handled {handled_after:?} after it ended, \
         none retried or dead-lettered"
    );
}

/// A schema id the registry does not have is asked for once: the messages that carry it are
/// dead-lettered at once (kind `registry`), the next ones answered from the miss cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_schema_id_is_asked_for_once_and_dead_lettered() {
    const GARBAGE: usize = 20;
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "miss", 1).await;
    let scope = format!("mock://{}", unique("miss"));
    let server = LocalRegistry::start(
        "127.0.0.1:0",
        kaufmann::registry::memory_scope(&scope).unwrap(),
    )
    .await
    .unwrap();
    let config = test_config(&brokers, &topic, &server.url());
    let service = kaufmann_tests::start(config).await.unwrap();
    let before = server.schema_requests();
    // One key: the messages run one after the other, so each one after the first finds the miss.
    let records = (0..GARBAGE)
        .map(|_| {
            Record::Raw(
                "one".to_owned(),
                kaufmann::wire::confluent::frame(999_999, b"\x02"),
            )
        })
        .collect();
    produce(&brokers, &topic, &scope, records).await;
    let done =
        kaufmann_tests::eventually(LIMIT, || service.stats().dead_lettered() >= GARBAGE as u64)
            .await;
    let (retried, asked) = (service.stats().retried(), server.schema_requests() - before);
    service.shutdown().await.unwrap();
    server.stop().await;
    assert!(done, "dead-lettered {GARBAGE}");
    // `produce` registered `test.work` through the memory scope, not through the server.
    assert_eq!(asked, 1, "the registry was asked for id 999999 once");
    assert_eq!(retried, 0, "an unknown id is not retried");
    let dead = read_dead_letters(&brokers, &format!("{topic}.DLT"), GARBAGE).await;
    for (_, headers) in &dead {
        assert_eq!(headers[dead_letter::ERROR_KIND], "registry");
        assert!(
            headers[dead_letter::ERROR].contains("999999"),
            "{headers:?}"
        );
    }
}

/// `consumers = 2` with static membership: both consumers join the group (the second with its
/// own `group.instance.id`) and split the partitions; every message is handled and committed,
/// with never more than `demand` in flight for the two together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_consumers_split_the_partitions_and_share_the_demand() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "two", 4).await;
    let registry = format!("mock://{}", unique("two"));
    let mut config = test_config(&brokers, &topic, &registry);
    config.ordering = Ordering::Unordered;
    config.consumers = 2;
    config.demand = 9;
    for (key, value) in [
        ("group.instance.id", unique("member")),
        // The first consumer learns that the second joined within a fraction of a second.
        ("heartbeat.interval.ms", "100".to_owned()),
    ] {
        config.librdkafka.insert(key.to_owned(), value);
    }
    let (demand, group) = (config.demand, config.group_id.clone());
    let service = kaufmann_tests::start(config).await.unwrap();
    let spread =
        kaufmann_tests::eventually(LIMIT, || service.stats().assigned_partitions() == [2, 2]).await;
    assert!(
        spread,
        "partitions held by each consumer: {:?}",
        service.stats().assigned_partitions()
    );

    let ends = produce(&brokers, &topic, &registry, work_records(4_000, 400, 2)).await;
    let mut peak = 0;
    let done = kaufmann_tests::eventually(LIMIT, || {
        peak = peak.max(service.stats().in_flight());
        service.stats().handled() >= 4_000
    })
    .await;
    assert!(done, "handled {} of 4000", service.stats().handled());
    let committed = wait_for_commits(&brokers, &group, &topic, 4, &ends, LIMIT).await;
    let stats_peak = service.stats().max_in_flight();
    service.shutdown().await.unwrap();

    let ids: HashSet<i64> = observed(&topic).iter().map(|o| o.id).collect();
    assert_eq!(ids.len(), 4_000);
    assert!(
        peak <= demand && stats_peak <= demand,
        "in flight {stats_peak} > demand {demand}"
    );
    // Each consumer has 4 or 5 of the 9 slots, and a 2 ms handler fills them.
    assert!(
        stats_peak > 5,
        "one consumer's share at most: peak {stats_peak}"
    );
    assert_eq!(committed, all_committed(4, &ends));
}
