//! `publish_confirm = "before_commit"` on the Apache Kafka broker: a handler's events are handed
//! to the producer when it returns `Ok` (a failed attempt's are dropped), its message's slot is
//! free at once, and its offset is committed only after the broker acknowledged them; a delivery
//! the broker refuses fails the message (dead letter), and nothing is committed past it before.

#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use std::collections::HashMap;

use kaufmann::{EventRoute, PublishConfirm};
use kaufmann_tests::{
    all_committed, broker, create_topic_with_max_bytes, create_topics, produce_events,
    read_dead_letters, test_config, topic_with_dead_letters, unique, wait_for_commits, TestCopy,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::exactly_once::{self as eos, read_topic};
use crate::process::LIMIT;
use crate::process::{registry_server, wait_until, Setup, ONE_AT_A_TIME};

const PARTITIONS: i32 = 2;

/// Every 97th input fails its first attempt after publishing (retried in place), every 400th
/// fails every attempt (error event and dead letter).
fn fails_of(id: i64) -> i32 {
    if id % 400 == 0 {
        -1
    } else {
        i32::from(id % 97 == 0)
    }
}

/// Produces `count` `test.copy` inputs (keyed by id) of `run`; returns the inputs' end offsets.
async fn inputs(
    brokers: &str,
    topic: &str,
    registry: &str,
    count: i64,
    fails: fn(i64) -> i32,
) -> HashMap<i32, i64> {
    let run = unique("run");
    let events = (0..count).map(|id| {
        let event = TestCopy {
            id,
            run: run.clone(),
            sleep_ms: 0,
            fails: fails(id),
        };
        (id.to_string(), event)
    });
    produce_events(brokers, topic, registry, events).await
}

/// 3,000 inputs at `demand` 4: every input that succeeds has exactly one `test.copied` (the
/// failed first attempts published nothing, though the handler published before failing), every
/// one that always fails one error event and one dead letter, and every offset is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_successful_attempt_publishes_once_and_offsets_follow_the_acks() {
    const COUNT: i64 = 3_000;
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "confirm", PARTITIONS).await;
    let output = unique("confirm-out");
    create_topics(&brokers, &[(&output, PARTITIONS)]).await;
    let registry = format!("mock://{}", unique("confirm"));
    let ends = inputs(&brokers, &topic, &registry, COUNT, fails_of).await;
    let mut config = test_config(&brokers, &topic, &registry);
    config.publish_confirm = PublishConfirm::BeforeCommit;
    config.default_topic.clone_from(&output);
    config.errors.retry.max_retries = 2;
    config.demand = 4;
    let group = config.group_id.clone();
    let service = kaufmann_tests::start(config).await.unwrap();
    let committed = wait_for_commits(&brokers, &group, &topic, PARTITIONS, &ends, LIMIT).await;
    let stats = service.stats().clone();
    service.shutdown().await.unwrap();
    assert_eq!(
        committed,
        all_committed(PARTITIONS, &ends),
        "every input committed"
    );

    let out = tokio::task::spawn_blocking({
        let (brokers, output) = (brokers.clone(), output.clone());
        move || read_topic(&brokers, &output, PARTITIONS, "read_uncommitted")
    })
    .await
    .unwrap();
    let wrong = eos::not_one_output(&out, COUNT, fails_of);
    assert!(
        wrong.is_empty(),
        "{} of {COUNT} inputs have not exactly one output, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(out.records, COUNT as usize, "no record beside them");
    let failing = (0..COUNT).filter(|id| fails_of(*id) < 0).count();
    let dead = read_dead_letters(&brokers, &format!("{topic}.DLT"), failing).await;
    assert_eq!(dead.len(), failing);
    assert!(
        stats.max_in_flight() <= 4 && stats.max_unconfirmed() > 4,
        "the pool holds at most demand messages, those waiting for acknowledgements are out of \
         it: in-flight peak {}, unconfirmed peak {}",
        stats.max_in_flight(),
        stats.max_unconfirmed()
    );
    println!(
        "before_commit: {COUNT} inputs at demand 4, one output each, {failing} dead letters, \
         in-flight peak {}, unconfirmed peak {}",
        stats.max_in_flight(),
        stats.max_unconfirmed()
    );
}

/// `test.copied` goes to a topic whose `max.message.bytes` (64) no record fits: the broker
/// refuses each delivery after the handler returned `Ok`. Each input then goes to the dead-letter
/// topic naming the broker's refusal, and its offset is committed past only after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_the_broker_refuses_sends_its_input_to_the_dead_letter_topic() {
    const COUNT: i64 = 20;
    let Some(brokers) = broker() else { return };
    let topic = topic_with_dead_letters(&brokers, "confirm-refused", 1).await;
    let small = unique("confirm-small");
    create_topic_with_max_bytes(&brokers, &small, 1, 64).await;
    // The error events go to a topic of their own, not back to the input.
    let errors = unique("confirm-errors");
    create_topics(&brokers, &[(&errors, 1)]).await;
    let registry = format!("mock://{}", unique("confirm-refused"));
    let ends = inputs(&brokers, &topic, &registry, COUNT, |_| 0).await;
    let mut config = test_config(&brokers, &topic, &registry);
    config.publish_confirm = PublishConfirm::BeforeCommit;
    config.default_topic.clone_from(&errors);
    let mut route = EventRoute::default();
    route.topic = Some(small.clone());
    config.event_routes.insert("test.copied".to_owned(), route);
    let group = config.group_id.clone();
    let service = kaufmann_tests::start(config).await.unwrap();
    let dead = read_dead_letters(&brokers, &format!("{topic}.DLT"), COUNT as usize).await;
    let committed = wait_for_commits(&brokers, &group, &topic, 1, &ends, LIMIT).await;
    let stats = service.stats().clone();
    service.shutdown().await.unwrap();
    assert_eq!(committed.get(&0).copied(), ends.get(&0).copied());
    for (_, headers) in &dead {
        let error = headers.get("kaufmann.error").cloned().unwrap_or_default();
        assert!(
            error.contains(&small) && error.to_lowercase().contains("too large"),
            "the dead letter names the refused delivery: {error}"
        );
        assert_eq!(
            headers.get("kaufmann.error.kind").map(String::as_str),
            Some("publish")
        );
    }
    assert_eq!(stats.dead_lettered(), COUNT as u64);
    println!(
        "before_commit: {COUNT} deliveries refused by the broker (max.message.bytes 64), {COUNT} \
         dead letters, offsets committed after them; e.g. {}",
        dead[0].1.get("kaufmann.error").cloned().unwrap_or_default()
    );
}

/// What the mock cluster's thread is asked to do to produce requests.
enum Produce {
    /// Answer each with `NotEnoughReplicas` (which the producer retries).
    Refuse,
    /// Answer each as usual again.
    Take,
}

/// On librdkafka's mock cluster (the shared broker cannot be told to hold acknowledgements for
/// one topic), every produce request is answered `NotEnoughReplicas` while the handlers all
/// return `Ok`: nothing is committed, and the messages wait out of the pool. Once produce
/// requests are taken again, the producer's retries go through and every offset is committed,
/// each input with its one output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_committed_until_the_broker_takes_the_events() {
    const COUNT: i64 = 50;
    let topic = unique("confirm-held");
    let output = unique("confirm-held-out");
    let (servers_tx, servers_rx) = std::sync::mpsc::channel();
    let (produce_tx, produce_rx) = std::sync::mpsc::channel::<Produce>();
    let cluster_topics = [topic.clone(), format!("{topic}.DLT"), output.clone()];
    // The mock cluster's handle cannot leave its thread.
    let cluster = std::thread::spawn(move || -> Result<(), String> {
        let cluster = rdkafka::mocking::MockCluster::new(1).map_err(|e| e.to_string())?;
        for topic in &cluster_topics {
            cluster
                .create_topic(topic, 1, 1)
                .map_err(|e| format!("{topic}: {e}"))?;
        }
        servers_tx
            .send(cluster.bootstrap_servers())
            .map_err(|e| e.to_string())?;
        for produce in produce_rx {
            match produce {
                Produce::Refuse => cluster.request_errors(
                    RDKafkaApiKey::Produce,
                    &vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 10_000],
                ),
                Produce::Take => cluster.clear_request_errors(RDKafkaApiKey::Produce),
            }
        }
        Ok(())
    });
    let Ok(servers) = servers_rx.recv() else {
        panic!("no mock cluster: {:?}", cluster.join());
    };
    let registry = format!("mock://{}", unique("confirm-held"));
    let ends = inputs(&servers, &topic, &registry, COUNT, |_| 0).await;
    produce_tx.send(Produce::Refuse).unwrap();
    let mut config = test_config(&servers, &topic, &registry);
    config.publish_confirm = PublishConfirm::BeforeCommit;
    config.default_topic.clone_from(&output);
    let group = config.group_id.clone();
    let service = kaufmann_tests::start(config).await.unwrap();
    let stats = service.stats().clone();
    assert!(
        kaufmann_tests::eventually(LIMIT, || stats.handled() == COUNT as u64).await,
        "every handler ran: {}",
        stats.handled()
    );
    // Several commit intervals (200 ms) with every handler finished and no event taken.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let held = tokio::task::spawn_blocking({
        let (servers, group, topic) = (servers.clone(), group.clone(), topic.clone());
        move || kaufmann_tests::committed(&servers, &group, &topic, 1)
    })
    .await
    .unwrap();
    assert!(
        held.get(&0).copied().unwrap_or(-1) <= 0,
        "nothing committed while no event is acknowledged: {held:?}"
    );
    assert_eq!(
        (stats.in_flight(), stats.unconfirmed()),
        (0, COUNT as usize),
        "all wait for acknowledgements, out of the pool"
    );
    produce_tx.send(Produce::Take).unwrap();
    let committed = wait_for_commits(&servers, &group, &topic, 1, &ends, LIMIT).await;
    service.shutdown().await.unwrap();
    assert_eq!(committed.get(&0).copied(), ends.get(&0).copied());
    let out = tokio::task::spawn_blocking({
        let servers = servers.clone();
        move || read_topic(&servers, &output, 1, "read_uncommitted")
    })
    .await
    .unwrap();
    let missing: Vec<i64> = (0..COUNT)
        .filter(|id| !out.by_key.contains_key(&id.to_string()))
        .collect();
    assert!(missing.is_empty(), "inputs without output: {missing:?}");
    assert_eq!(out.records, COUNT as usize, "no output twice");
    assert_eq!(stats.dead_lettered(), 0);
    drop(produce_tx);
    let ended = cluster
        .join()
        .map_err(|_| "the mock cluster's thread panicked".to_owned());
    assert_eq!(ended.and_then(|ended| ended), Ok(()));
    println!(
        "before_commit: {COUNT} handled, committed {held:?} while produce requests were refused, \
         all {COUNT} committed once they were taken"
    );
}

/// 10,000 inputs (20 ms handlers) through a service process with `publish_confirm =
/// "before_commit"`, killed with SIGKILL twice under load (at 2,000 and 5,000 outputs written)
/// and restarted: every input still has its output (`test.copied`, or the error event of an
/// input that always fails), since no offset was committed before its events were acknowledged.
/// Outputs repeat for what was handled but not committed when the process died (at least once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twice_no_input_loses_its_output() {
    const COUNT: i64 = 10_000;
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(setup) = Setup::new("confirm-kill", eos::PARTITIONS, Vec::new()).await else {
        return;
    };
    let registry = registry_server().await;
    let url = registry.url();
    // Handlers of 20 ms (2,500 a second at demand 50), so that each kill comes mid-stream.
    let (output, ends) = eos::prepare(&setup, &url, COUNT, 20).await;
    let env = [
        ("KAUFMANN_PUBLISH_CONFIRM", "before_commit"),
        ("KAUFMANN_DEFAULT_TOPIC", output.as_str()),
        ("KAUFMANN_REGISTRY_URL", url.as_str()),
        ("KAUFMANN_MAX_RETRIES", "2"),
        ("KAUFMANN_RETRY_BACKOFF_MS", "10"),
    ];
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &setup.brokers)
        .create()
        .unwrap();
    let mut kills = Vec::new();
    // Kill points in output records written, however far a killed process got past the last.
    for (round, target) in [2_000, 5_000].into_iter().enumerate() {
        let service = setup.spawn(&format!("killed-{round}"), &env);
        wait_until("the service wrote up to the kill point", || {
            eos::written(&probe, &output) >= target
        })
        .await;
        let mut service = service;
        service.0.kill().unwrap();
        service.0.wait().unwrap();
        kills.push(eos::written(&probe, &output));
    }
    let last = setup.spawn("last", &env);
    eos::finish(&setup, &ends, vec![last]).await;
    let out = tokio::task::spawn_blocking({
        let (brokers, output) = (setup.brokers.clone(), output.clone());
        move || read_topic(&brokers, &output, eos::PARTITIONS, "read_uncommitted")
    })
    .await
    .unwrap();
    let mut missing = Vec::new();
    let mut repeated = 0;
    for id in 0..COUNT {
        let expected = eos::output_of(eos::fails_of(id));
        let found = out.by_key.get(&id.to_string()).cloned().unwrap_or_default();
        if !found.iter().any(|name| name == expected) {
            missing.push((id, found));
        } else if found.len() > 1 {
            repeated += 1;
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {COUNT} inputs lost their output, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    println!(
        "before_commit kill test: killed at output offsets {kills:?}; {COUNT} inputs, none \
         without its output, {repeated} with it more than once, {} records in all",
        out.records
    );
}
