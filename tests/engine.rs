//! The runtime engine on the Apache Kafka broker: back-pressure, ordering modes, poison input,
//! compressed input.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kaufmann::engine::dead_letter;
use kaufmann::Ordering;
use kaufmann_tests::{
    broker, observed, peak_concurrency, produce, produce_with, test_config,
    topic_with_dead_letters, unique, wait_for_commits, work_items, work_records, Record,
};
use rdkafka::message::{Headers, Message};

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
    let service = kaufmann::Service::start(config).await.unwrap();
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
    let expected: HashMap<i32, i64> = (0..4)
        .map(|p| (p, ends.get(&p).copied().unwrap_or(0)))
        .collect();
    assert_eq!(committed, expected);
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
    let service = kaufmann::Service::start(config).await.unwrap();
    let done = kaufmann_tests::eventually(LIMIT, || service.stats().handled() >= 2_000).await;
    service.shutdown().await.unwrap();
    assert!(done, "not every message was handled");

    let mut by_lane: HashMap<String, Vec<i64>> = HashMap::new();
    for o in observed(&topic) {
        by_lane.entry(o.lane).or_default().push(o.seq);
    }
    assert_eq!(by_lane.len(), 8);
    for (lane, seqs) in &by_lane {
        assert_eq!(seqs, &(0..250).collect::<Vec<_>>(), "order of {lane}");
    }
    let peak = peak_concurrency(&topic);
    assert!(peak > 1, "keys never ran in parallel (peak {peak})");
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
    let service = kaufmann::Service::start(config).await.unwrap();
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
    let service = kaufmann::Service::start(config).await.unwrap();
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

/// Reads `count` records from a dead-letter topic: value (lossy text) and headers.
async fn read_dead_letters(
    brokers: &str,
    topic: &str,
    count: usize,
) -> Vec<(String, HashMap<String, String>)> {
    let reader = kaufmann_tests::reader(brokers, topic, 1, "dlt-reader");
    let mut out = Vec::new();
    while out.len() < count {
        let message = tokio::time::timeout(LIMIT, reader.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} dead letters arrived", out.len()))
            .unwrap();
        let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        let headers = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push((value, headers));
    }
    out
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
    let service = kaufmann::Service::start(config).await.unwrap();
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
