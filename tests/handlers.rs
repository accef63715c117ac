//! Handlers for real services on the Apache Kafka broker: application state given at start-up
//! (and refused start-up without it), permanent errors, non-blocking retry topics and batch
//! handlers.

use std::collections::HashSet;
use std::time::Duration;

use kaufmann_examples::Users;
use kaufmann_tests::{
    broker, produce_events, test_config, topic_with_dead_letters, unique, wait_for_commits, Tally,
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
