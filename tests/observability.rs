//! Observability on the Apache Kafka broker: the metrics endpoint's counters match the messages
//! sent, readiness turns true only after the group join, and the consumer-lag gauge equals the
//! group's real lag; readiness follows a broker cut.

use std::time::Duration;

use kaufmann_tests::{
    broker, committed, eventually, high_watermarks, http_get as get, produce, readiness_becomes,
    sample, test_config, topic_with_dead_letters, unique, wait_for_commits, work_items,
    work_records, Record,
};

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_follows_the_group_join_and_metrics_count_every_message() {
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "obs", 2).await;
    let registry = format!("mock://{}", unique("obs"));

    let mut config = test_config(&brokers, &topic, &registry);
    config.metrics_addr = Some("127.0.1:0".to_owned());
    config.errors.retry.max_retries = 2;
    let service = kaufmann_tests::start(config).await.unwrap();
    let addr = service.metrics_addr().expect("metrics are served");
    assert_eq!(get(addr, "/health/live").0, 200);
    assert_eq!(
        get(addr, "/health/ready").0,
        503,
        "ready before the group join"
    );
    let ready = eventually(LIMIT, || get(addr, "/health/ready").0 == 200).await;
    assert!(ready, "never ready");

    // 200 messages: 5 always fail (dead-lettered after 1 + 2 attempts), 10 fail once.
    let mut records = Vec::new();
    for mut work in work_items(200, 10, 0) {
        if work.id % 40 == 1 {
            work.fail_times = -1;
        } else if work.id % 20 == 2 {
            work.fail_times = 1;
        }
        records.push(Record::Work(work));
    }
    produce(&brokers, &topic, &registry, records).await;
    let done = eventually(LIMIT, || {
        service.stats().handled() + service.stats().dead_lettered() >= 200
            && service.stats().in_flight() == 0
    })
    .await;
    assert!(done, "not every message was finished");

    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    let event = "{event=\"test.work\"}";
    let value = |name: &str| {
        sample(&body, &format!("{name}{event}")).unwrap_or_else(|| panic!("no {name} in\n{body}"))
    };
    assert_eq!(value("kaufmann_messages_consumed_total"), 200);
    assert_eq!(value("kaufmann_messages_handled_total"), 195);
    assert_eq!(value("kaufmann_messages_failed_total"), 5);
    assert_eq!(value("kaufmann_messages_dead_lettered_total"), 5);
    assert_eq!(
        value("kaufmann_messages_retried_total"),
        20,
        "10 retries of fail-once, 2 of each of 5"
    );
    assert_eq!(value("kaufmann_handler_duration_seconds_count"), 195);
    assert_eq!(sample(&body, "kaufmann_in_flight"), Some(0));
    assert!(sample(&body, "kaufmann_commits_total").unwrap_or(0) >= 1);
    assert!(sample(&body, "kaufmann_rebalances_total").unwrap_or(0) >= 1);
    assert!(body.contains("# TYPE kaufmann_handler_duration_seconds histogram"));
    service.shutdown().await.unwrap();
}

/// The lag gauge of a restarted group: 100 messages handled and committed by a first run, 37 more
/// produced while the group is stopped and held in flight by a second run (their handler sleeps
/// a minute): `kaufmann_consumer_lag` shows, per partition, the broker's high watermark minus the
/// group's committed offset, 37 in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lag_gauge_equals_the_real_lag_of_a_restarted_group() {
    const PARTITIONS: i32 = 2;
    const UNCONSUMED: i64 = 37;
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "lag", PARTITIONS).await;
    let registry = format!("mock://{}", unique("lag"));
    let mut config = test_config(&brokers, &topic, &registry);
    config.metrics_addr = Some("127.0.0.1:0".to_owned());
    config.shutdown_timeout = Duration::from_millis(500);
    let group = config.group_id.clone();

    let ends = produce(&brokers, &topic, &registry, work_records(100, 10, 0)).await;
    let first = kaufmann_tests::start(config.clone()).await.unwrap();
    let reached = wait_for_commits(&brokers, &group, &topic, PARTITIONS, &ends, LIMIT).await;
    assert_eq!(first.stats().handled(), 100);
    first.shutdown().await.unwrap();
    let reached_sum: i64 = reached.values().sum();
    assert_eq!(reached_sum, 100, "the first run committed its 100 messages");

    // Produced while the group is stopped; the second run holds every one of them in flight.
    let mut slow = work_items(UNCONSUMED, 10, 60_000);
    for work in &mut slow {
        work.id += 100;
    }
    produce(
        &brokers,
        &topic,
        &registry,
        slow.into_iter().map(Record::Work).collect(),
    )
    .await;
    let high = high_watermarks(&brokers, &topic, PARTITIONS);
    let committed = committed(&brokers, &group, &topic, PARTITIONS);
    let real: Vec<i64> = (0..PARTITIONS)
        .map(|p| high[&p] - committed[&p].max(0))
        .collect();
    assert_eq!(
        real.iter().sum::<i64>(),
        UNCONSUMED,
        "high {high:?}, committed {committed:?}"
    );

    let second = kaufmann_tests::start(config).await.unwrap();
    let addr = second.metrics_addr().expect("metrics are served");
    let gauges = |body: &str| -> Vec<Option<u64>> {
        (0..PARTITIONS)
            .map(|p| {
                sample(
                    body,
                    &format!("kaufmann_consumer_lag{{topic=\"{topic}\",partition=\"{p}\"}}"),
                )
            })
            .collect()
    };
    let mut last = Vec::new();
    let shown = eventually(LIMIT, || {
        last = gauges(&get(addr, "/metrics").1);
        last.iter()
            .zip(&real)
            .all(|(shown, real)| *shown == u64::try_from(*real).ok())
    })
    .await;
    assert!(
        shown,
        "lag gauges {last:?}, real lag per partition {real:?}"
    );
    assert_eq!(
        second.stats().handled(),
        0,
        "the slow messages are still in flight"
    );
    second.shutdown().await.unwrap();
}

/// What the test tells the mock cluster's thread.
#[derive(Clone, Copy, Debug)]
enum Cut {
    Down,
    Up,
}

/// Asks the mock cluster's thread for `cut` and waits for its answer, asking again (five times,
/// 200 ms apart) while librdkafka refuses it, so that one refused command names its error instead
/// of ending the thread.
fn ask(
    cuts: &std::sync::mpsc::Sender<Cut>,
    answers: &std::sync::mpsc::Receiver<Result<(), String>>,
    cut: Cut,
) {
    let mut refusals = Vec::new();
    for _ in 0..5 {
        cuts.send(cut)
            .expect("the mock cluster's thread is running");
        match answers.recv().expect("the mock cluster's thread answers") {
            Ok(()) => return,
            Err(refused) => refusals.push(refused),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the mock cluster refused {cut:?} five times: {refusals:?}");
}

/// A broker cut (librdkafka's mock cluster: the shared broker stays up for the other tests):
/// readiness answers 503 naming the broker while it is down and 200 once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_follows_a_broker_cut() {
    let topic = unique("cut");
    let (servers_tx, servers_rx) = std::sync::mpsc::channel();
    let (cut_tx, cut_rx) = std::sync::mpsc::channel::<Cut>();
    let (answer_tx, answer_rx) = std::sync::mpsc::channel();
    let cluster_topic = topic.clone();
    // The mock cluster's handle cannot leave its thread.
    let cluster = std::thread::spawn(move || -> Result<(), String> {
        let cluster = rdkafka::mocking::MockCluster::new(1).map_err(|e| e.to_string())?;
        for topic in [cluster_topic.clone(), format!("{cluster_topic}.DLT")] {
            cluster
                .create_topic(&topic, 1, 1)
                .map_err(|e| format!("{topic}: {e}"))?;
        }
        servers_tx
            .send(cluster.bootstrap_servers())
            .map_err(|e| e.to_string())?;
        for cut in cut_rx {
            let done = match cut {
                Cut::Down => cluster.broker_down(1),
                Cut::Up => cluster.broker_up(1),
            };
            let answer = done.map_err(|e| format!("{cut:?}: {e}"));
            if answer_tx.send(answer).is_err() {
                break;
            }
        }
        Ok(())
    });
    let Ok(servers) = servers_rx.recv() else {
        panic!("no mock cluster: {:?}", cluster.join());
    };
    let mut config = test_config(&servers, &topic, &format!("mock://{}", unique("cut")));
    config.metrics_addr = Some("127.0.0.1:0".to_owned());
    let service = kaufmann_tests::start(config).await.unwrap();
    let metrics = service.metrics_addr().unwrap();
    readiness_becomes(metrics, 200, LIMIT).await;

    ask(&cut_tx, &answer_rx, Cut::Down);
    // The consumer's transport error may make readiness 503 first; the broker probe (every
    // second) then names the broker.
    let mut body = String::new();
    let named = eventually(Duration::from_secs(30), || {
        let (status, text) = get(metrics, "/health/ready");
        body = text;
        status == 503 && body.contains("kafka broker unreachable")
    })
    .await;
    assert!(named, "readiness never named the broker: {body}");
    assert!(get(metrics, "/metrics").1.contains("kaufmann_broker_up 0"));
    ask(&cut_tx, &answer_rx, Cut::Up);
    readiness_becomes(metrics, 200, LIMIT).await;
    assert!(get(metrics, "/metrics").1.contains("kaufmann_broker_up 1"));
    service.shutdown().await.unwrap();
    drop(cut_tx);
    let ended = cluster
        .join()
        .map_err(|_| "the mock cluster's thread panicked".to_owned());
    assert_eq!(ended.and_then(|ended| ended), Ok(()));
}
