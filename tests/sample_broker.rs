//! The sample user service on the Apache Kafka broker, through the tier-2 helper
//! `kaufmann::testing::BrokerTest`: a command produced to a fresh topic is handled by the
//! service in this process, and its `event.user.created` is read back from the topic.

use kaufmann::testing::BrokerTest;
use kaufmann_examples::{CommandUserCreate, EventUserCreated};
use kaufmann_tests::broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sample_creates_a_user_on_the_broker() {
    let Some(brokers) = broker() else { return };
    let test = BrokerTest::start_with(&brokers, 2, kaufmann_tests::states(), |config| {
        config.service_name = "users".to_owned();
    })
    .await
    .unwrap();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let sent = test
        .produce(CommandUserCreate {
            id: id.clone(),
            name: "Ada Lovelace".into(),
            email: "Ada@Example.org".into(),
        })
        .await
        .unwrap();
    let created = test.next_event::<EventUserCreated>().await;
    assert_eq!(created.payload.id, format!("user-{id}"));
    assert_eq!(created.payload.email, "ada@example.org");
    assert_eq!(created.meta.callback_id.as_deref(), Some(&*sent.message_id));
    assert_eq!(created.meta.emitter_service, "users");
    assert_eq!(created.topic, test.topic());
    test.stop().await.unwrap();
}
