//! Helpers for the workspace tests: the test broker's address, unique names, topic creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// The environment variable `scripts/test` sets to the tansu broker's address.
pub const BROKERS_VAR: &str = "KAUFMANN_TEST_BROKERS";

/// The test broker's bootstrap address. Without one, the test is skipped with a note, except under
/// CI (`CI` set), where a missing broker fails the test.
pub fn broker() -> Option<String> {
    match std::env::var(BROKERS_VAR) {
        Ok(brokers) if !brokers.is_empty() => Some(brokers),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{BROKERS_VAR} is not set under CI: run the suite with `bash scripts/test`"
            );
            eprintln!(
                "skipped: {BROKERS_VAR} is not set (run `bash scripts/test` to start a broker)"
            );
            None
        }
    }
}

/// A name unique to this test run: `<prefix>-<random>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates topics with the admin API (tansu does not create them on first use).
pub async fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new, &options)
        .await
        .expect("create topics");
    for result in results {
        if let Err((topic, err)) = result {
            panic!("creating topic {topic} failed: {err}");
        }
    }
}
