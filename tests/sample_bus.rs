//! The sample user service on the test bus (no broker): its three handlers, the error event and
//! dead letter of bad input, and assertions that fail when they should, with a message listing
//! what was published. Written against the public API only.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use kaufmann::testing::TestBus;
use kaufmann_examples::{
    CommandUserCreate, CommandUserRename, EventUserCreated, EventUserRenamed, QueryReqUserGet,
    QueryResUserGet, Users,
};

/// A command with an id of its own.
fn create(email: &str) -> CommandUserCreate {
    CommandUserCreate {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name: "Ada Lovelace".into(),
        email: email.into(),
    }
}

/// The panic message of a future that should panic.
async fn failure_of(future: impl std::future::Future<Output = ()>) -> String {
    let Err(panic) = AssertUnwindSafe(future).catch_unwind().await else {
        panic!("the assertion passed but should have failed");
    };
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[tokio::test]
async fn create_publishes_the_created_user() {
    let bus = TestBus::new().with_state(Users::default());
    let command = create("Ada@Example.org");
    let given = bus.given_event(command.clone()).await;
    let created = bus.then_event::<EventUserCreated>().await;
    assert_eq!(
        created.payload,
        EventUserCreated {
            id: format!("user-{}", command.id),
            name: "Ada Lovelace".into(),
            email: "ada@example.org".into(),
        }
    );
    assert_eq!(
        created.meta.callback_id.as_deref(),
        Some(&*given.message_id)
    );
    assert_eq!(created.meta.emitter_service, "test");
    assert_eq!(created.topic, "rapids");
    bus.then_no_event().await;
}

#[tokio::test]
async fn a_query_is_answered_on_the_callers_callback_topic() {
    let bus = TestBus::new().with_state(Users::default());
    let command = create("grace@example.org");
    bus.given_event(command.clone()).await;
    let id = format!("user-{}", command.id);
    bus.then_event_eq(&EventUserCreated {
        id: id.clone(),
        name: "Ada Lovelace".into(),
        email: "grace@example.org".into(),
    })
    .await;
    let asked = bus.given_request(QueryReqUserGet { id: id.clone() }).await;
    let answer = bus.then_reply::<QueryResUserGet>().await;
    assert!(answer.payload.found);
    assert_eq!(answer.payload.email.as_deref(), Some("grace@example.org"));
    assert_eq!(answer.meta.callback_id.as_deref(), Some(&*asked.message_id));

    bus.given_request(QueryReqUserGet {
        id: "nobody".into(),
    })
    .await;
    let answer = bus.then_reply::<QueryResUserGet>().await;
    assert!(!answer.payload.found && answer.payload.name.is_none());
    bus.then_no_event().await;
}

#[tokio::test]
async fn bad_input_publishes_an_error_event_and_dead_letters_the_command() {
    let bus = TestBus::new().with_state(Users::default());
    let given = bus.given_event(create("not-an-email")).await;
    let error = bus.then_error_event("command.user.create").await;
    assert!(error.error.contains("is not an email address"), "{error:?}");
    assert_eq!(error.kind, "handler");
    assert_eq!(error.attempts, 4, "the first attempt and 3 retries");
    assert_eq!(error.meta.callback_id.as_deref(), Some(&*given.message_id));
    let dead = bus.then_dead_letter().await;
    assert_eq!(dead.topic, "rapids.DLT");
    assert_eq!(dead.header("kaufmann.error.kind"), Some("handler"));
    assert_eq!(bus.stats().failed(), 1);
    bus.then_no_event().await;
}

#[tokio::test]
async fn rename_checks_its_input() {
    let bus = TestBus::new().with_state(Users::default());
    let command = create("alan@example.org");
    bus.given_event(command.clone()).await;
    bus.then_event::<EventUserCreated>().await;
    let id = format!("user-{}", command.id);
    bus.given_event(CommandUserRename {
        id: id.clone(),
        name: "Alan Turing".into(),
    })
    .await;
    let renamed = bus.then_event::<EventUserRenamed>().await;
    assert_eq!(renamed.payload.name, "Alan Turing");
    bus.given_event(CommandUserRename {
        id,
        name: "  ".into(),
    })
    .await;
    assert!(bus
        .then_error_event("command.user.rename")
        .await
        .error
        .contains("the new name is empty"));
    bus.then_dead_letter().await;
    bus.then_no_event().await;
}

#[tokio::test]
async fn then_event_fails_on_the_wrong_event_and_lists_what_was_published() {
    let bus = TestBus::new().with_state(Users::default()).with_timeouts(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_millis(10),
    );
    bus.given_event(create("ada@example.org")).await;
    let message = failure_of(async {
        bus.then_event::<EventUserRenamed>().await;
    })
    .await;
    assert!(
        message.contains("expected an event `event.user.renamed`"),
        "{message}"
    );
    assert!(
        message.contains("published 1:\n  - `event.user.created` to topic `rapids`"),
        "{message}"
    );
}

#[tokio::test]
async fn then_no_event_fails_when_an_event_was_published() {
    let bus = TestBus::new().with_state(Users::default());
    bus.given_event(create("ada@example.org")).await;
    let message = failure_of(bus.then_no_event()).await;
    assert!(message.contains("expected no more events"), "{message}");
    assert!(message.contains("`event.user.created`"), "{message}");
    // Once asserted, the same event no longer counts.
    bus.then_event::<EventUserCreated>().await;
    bus.then_no_event().await;
}

#[tokio::test]
async fn then_event_eq_fails_on_a_different_payload() {
    let bus = TestBus::new().with_state(Users::default()).with_timeouts(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_millis(10),
    );
    let command = create("ada@example.org");
    bus.given_event(command.clone()).await;
    let message = failure_of(async {
        bus.then_event_eq(&EventUserCreated {
            id: format!("user-{}", command.id),
            name: "Someone Else".into(),
            email: "ada@example.org".into(),
        })
        .await;
    })
    .await;
    assert!(message.contains("passes the check"), "{message}");
}

#[tokio::test]
async fn a_broken_record_is_dead_lettered_with_a_decode_error() {
    let bus = TestBus::new().with_state(Users::default());
    bus.given_raw("command.user.create", vec![0, 0, 0, 0, 1, 0xff])
        .await;
    let dead = bus.then_dead_letter().await;
    assert_eq!(dead.header("kaufmann.error.kind"), Some("registry"));
    let error = bus.then_error_event("command.user.create").await;
    assert!(error.error.contains("schema id 1"), "{error:?}");
    bus.then_no_event().await;
}

/// A bus not given the `Users` the sample's handlers take panics at the given event, naming the
/// handler, its source location and the type, as a service refuses to start without it.
#[tokio::test]
async fn a_bus_without_the_state_a_handler_takes_says_which() {
    let bus = TestBus::new();
    let message = failure_of(async {
        bus.given_event(create("ada@example.org")).await;
    })
    .await;
    assert!(
        message.contains("handler create_user (examples/src/lib.rs:")
            && message.contains("takes `State<kaufmann_examples::Users>`")
            && message.contains("TestBus::new().with_state(..)"),
        "{message}"
    );
    assert_eq!(bus.stats().handled(), 0);
}

/// The state a bus is given is the one its handlers see: a user created on one bus is known to
/// a query on it, and not on another bus.
#[tokio::test]
async fn each_bus_has_the_state_it_was_given() {
    let bus = TestBus::new().with_state(Users::default());
    let command = create("ada@example.org");
    bus.given_event(command.clone()).await;
    bus.then_event::<EventUserCreated>().await;
    let other = TestBus::new().with_state(Users::default());
    other
        .given_request(QueryReqUserGet {
            id: format!("user-{}", command.id),
        })
        .await;
    let answer = other.then_reply::<QueryResUserGet>().await;
    assert!(!answer.payload.found, "another bus has users of its own");
}
