//! The test bus beyond the sample: feeding published events back into the handlers (chains),
//! the `kaufmann_ex` wire format, buses that share nothing while running in parallel, batches
//! given to a batch handler, and `exactly_once` processing (what a failed attempt published is
//! never seen), the warning about events a handler publishes without declaring them, and the
//! per-message span's log level.

use std::sync::{Arc, Mutex, PoisonError};

use kaufmann::testing::TestBus;
use kaufmann::wire::dead_letter;
use kaufmann::{Processing, PublishConfirm, WireFormat};
use kaufmann_tests::{
    batch_record, unique, TestBatch, TestCopied, TestCopy, TestCopyBatch, TestPing, TestPong,
    TestRelay, TestShout,
};

/// A batch given to a batch handler arrives whole; the one event it names as failed is retried
/// alone (three retries by default) and dead-lettered, the others are done once.
#[tokio::test]
async fn a_batch_handler_gets_the_given_batch_and_only_its_failure_is_retried() {
    let bus = TestBus::new();
    let run = unique("bus-batch");
    let values = (0..5)
        .map(|id| TestBatch {
            run: run.clone(),
            id,
            key: "k".into(),
            seq: id,
            fail: id == 3,
        })
        .collect();
    bus.given_batch(values).await;
    let record = batch_record(&run);
    assert_eq!(
        record.sizes,
        [5, 1, 1, 1],
        "the batch, then the failure alone"
    );
    assert_eq!(record.handled.len(), 4);
    assert_eq!(bus.stats().handled(), 4);
    let dead = bus.then_dead_letter().await;
    assert_eq!(dead.header(dead_letter::ATTEMPTS), Some("4"));
    assert_eq!(dead.header(dead_letter::ERROR), Some("batch event 3 fails"));
    let _ = bus.then_error_event("test.batch").await;
    bus.then_no_event().await;

    // A lone event reaches the batch handler as a batch of one.
    let alone = unique("bus-batch-one");
    bus.given_event(TestBatch {
        run: alone.clone(),
        id: 9,
        key: "k".into(),
        seq: 0,
        fail: false,
    })
    .await;
    assert_eq!(batch_record(&alone).sizes, [1]);
}

#[tokio::test]
async fn feeding_back_runs_a_chain_to_its_end() {
    let bus = TestBus::new().feeding_back();
    bus.given_event(TestRelay { hops: 3 }).await;
    for hops in [2, 1, 0] {
        assert_eq!(bus.then_event::<TestRelay>().await.payload.hops, hops);
    }
    bus.then_no_event().await;
    assert_eq!(bus.stats().handled(), 4, "the given event and the 3 links");

    let without = TestBus::new();
    without.given_event(TestRelay { hops: 3 }).await;
    assert_eq!(without.then_event::<TestRelay>().await.payload.hops, 2);
    without.then_no_event().await;
    assert_eq!(without.stats().handled(), 1);
}

/// How often the events of a handler whose first attempt fails after publishing are published,
/// by processing and `publish_confirm`: twice when `ctx.publish` hands them over at once, once
/// when they wait for the attempt to return `Ok`.
const PUBLISHED_PER_EVENT: [(Processing, PublishConfirm, usize); 3] = [
    (Processing::AtLeastOnce, PublishConfirm::InHandler, 2),
    (Processing::AtLeastOnce, PublishConfirm::BeforeCommit, 1),
    (Processing::ExactlyOnce, PublishConfirm::InHandler, 1),
];

/// A test bus with this processing and `publish_confirm`.
fn bus_with(processing: Processing, confirm: PublishConfirm) -> TestBus {
    let mut config = kaufmann::Config::new("copies");
    config.processing = processing;
    config.publish_confirm = confirm;
    TestBus::with_config(config)
}

/// The `test.copy` handler publishes, then fails its first attempt. At least once, the retry
/// publishes again: two events. Exactly once, or with `publish_confirm = "before_commit"`, an
/// attempt's events are published only when it returns `Ok`: one event; one that always fails
/// publishes nothing but its error event.
#[tokio::test]
async fn exactly_once_publishes_only_what_successful_attempts_published() {
    for (processing, confirm, expected) in PUBLISHED_PER_EVENT {
        let bus = bus_with(processing, confirm);
        let run = unique("bus-copy");
        bus.given_event(TestCopy {
            id: 7,
            run: run.clone(),
            sleep_ms: 0,
            fails: 1,
        })
        .await;
        for _ in 0..expected {
            assert_eq!(bus.then_event::<TestCopied>().await.payload.id, 7);
        }
        bus.then_no_event().await;
        assert_eq!(bus.stats().handled(), 1, "{processing:?} {confirm:?}");
    }
    for (processing, confirm) in [
        (Processing::ExactlyOnce, PublishConfirm::InHandler),
        (Processing::AtLeastOnce, PublishConfirm::BeforeCommit),
    ] {
        let bus = bus_with(processing, confirm);
        bus.given_event(TestCopy {
            id: 8,
            run: unique("bus-copy"),
            sleep_ms: 0,
            fails: -1,
        })
        .await;
        let _ = bus.then_error_event("test.copy").await;
        bus.then_dead_letter().await;
        bus.then_no_event().await;
    }
}

/// The `test.copy.batch` batch handler publishes an event for each of its 3, then fails its
/// first attempt. With `in_handler` the retry publishes them again: 6 events. With the default
/// `before_commit` (and exactly once) a batch's events go out when it returns `Ok`: 3.
#[tokio::test]
async fn a_batch_publishes_only_what_its_successful_attempt_published() {
    for (processing, confirm, copies) in PUBLISHED_PER_EVENT {
        let bus = bus_with(processing, confirm);
        let run = unique("bus-copy-batch");
        let inputs = (0..3)
            .map(|id| TestCopyBatch {
                id,
                run: run.clone(),
                fails: 1,
            })
            .collect();
        bus.given_batch(inputs).await;
        let mut ids = Vec::new();
        for _ in 0..3 * copies {
            ids.push(bus.then_event::<TestCopied>().await.payload.id);
        }
        bus.then_no_event().await;
        ids.sort_unstable();
        let expected: Vec<i64> = (0..3).flat_map(|id| vec![id; copies]).collect();
        assert_eq!(ids, expected, "{processing:?} {confirm:?}");
        assert_eq!(bus.stats().handled(), 3, "{processing:?} {confirm:?}");
    }
}

#[tokio::test]
async fn the_bus_speaks_the_configured_wire_format() {
    for format in [WireFormat::KaufmannEx, WireFormat::Json] {
        let mut config = kaufmann::Config::new("kex");
        config.wire_format = format;
        let bus = TestBus::with_config(config);
        bus.given_request(TestPing { text: "a".into() }).await;
        let reply = bus.then_reply::<TestPong>().await;
        assert_eq!(reply.payload.text, "pong: a");
        assert_eq!(reply.key.as_deref(), Some(&b"test.pong"[..]));
        // An event without a callback topic cannot be answered: error event, then dead letter.
        bus.given_event(TestPing { text: "b".into() }).await;
        let error = bus.then_error_event("test.ping").await;
        assert!(
            error.error.contains("no callback topic"),
            "{format:?}: {error:?}"
        );
        bus.then_dead_letter().await;
        bus.then_no_event().await;
    }
}

/// Under `json` every value is JSON text `{"meta", "payload"}`; values that are not, or whose
/// payload does not read as the event's schema, are dead-lettered with the reason, and the
/// service goes on.
#[tokio::test]
async fn json_values_are_json_and_bad_ones_are_dead_lettered() {
    let mut config = kaufmann::Config::new("json");
    config.wire_format = WireFormat::Json;
    let bus = TestBus::with_config(config);
    bus.given_request(TestPing { text: "ä".into() }).await;
    bus.then_reply::<TestPong>().await;
    let record = bus.records().pop().unwrap();
    let json: serde_json::Value = serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
    assert_eq!(json["payload"], serde_json::json!({"text": "pong: ä"}));
    assert_eq!(json["meta"]["message_name"], "test.pong");
    let deep = vec![b'['; 100_000];
    for (bad, says) in [
        (&b"\x00\x00\x00\x00\x01"[..], "not JSON"),
        (b"[1, 2]", "not an object"),
        (br#"{"meta": {}, "payload": {"text": 3}}"#, "text"),
        (br#"{"payload": {}}"#, "missing"),
        (&deep[..], "not JSON"),
    ] {
        bus.given_raw("test.ping", bad.to_vec()).await;
        let dead = bus.then_dead_letter().await;
        let error = dead
            .header(kaufmann::wire::dead_letter::ERROR)
            .unwrap_or_default();
        assert!(error.contains(says), "{says}: {error}");
    }
    bus.given_request(TestPing {
        text: "still here".into(),
    })
    .await;
    assert_eq!(
        bus.then_reply::<TestPong>().await.payload.text,
        "pong: still here"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buses_running_in_parallel_share_nothing() {
    let runs = (0..8).map(|i| {
        tokio::spawn(async move {
            let bus = TestBus::new();
            bus.given_event(TestRelay { hops: i + 1 }).await;
            assert_eq!(bus.then_event::<TestRelay>().await.payload.hops, i);
            bus.then_no_event().await;
            assert_eq!(bus.records().len(), 1);
        })
    });
    for run in runs {
        run.await.unwrap();
    }
}

/// A handler that publishes an event its `publishes = [..]` does not list is named, once, by
/// `undeclared_publishes` (and a warning on standard error); declared events and error events
/// are not.
#[tokio::test]
async fn an_event_published_without_being_declared_is_reported() {
    let bus = TestBus::new();
    bus.given_event(TestShout { id: 1 }).await;
    bus.given_event(TestShout { id: 2 }).await;
    assert_eq!(bus.then_event::<TestCopied>().await.payload.id, 1);
    let undeclared = bus.undeclared_publishes();
    assert_eq!(undeclared.len(), 1, "{undeclared:?}");
    assert!(undeclared[0].0.starts_with("shout ("), "{undeclared:?}");
    assert_eq!(undeclared[0].1, "test.copied");

    let declared = TestBus::new();
    declared
        .given_event(TestCopy {
            run: unique("declared"),
            id: 1,
            sleep_ms: 0,
            fails: -1,
        })
        .await;
    assert!(
        declared.undeclared_publishes().is_empty(),
        "test.copy declares test.copied; its error event is the framework's: {:?}",
        declared.undeclared_publishes()
    );
}

/// Log lines written to memory, for a subscriber's `with_writer`.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Each message's span is at `debug` under the target `kaufmann::message`: with that target
/// enabled, a line logged while a message is handled carries the message's fields; at the
/// default `info` no span is made (it nearly doubled the instructions of a message's path).
#[tokio::test]
async fn the_message_span_is_opt_in_under_its_own_target() {
    for (filter, spanned) in [("info", false), ("info,kaufmann::message=debug", true)] {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        let bus = TestBus::new();
        bus.given_event(TestCopy {
            id: 9,
            run: unique("bus-span"),
            sleep_ms: 0,
            fails: -1,
        })
        .await;
        let _ = bus.then_error_event("test.copy").await;
        drop(guard);
        let text = String::from_utf8_lossy(&lines.0.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned();
        let line = text
            .lines()
            .find(|line| line.contains("error event published"))
            .unwrap_or_else(|| panic!("{filter}: no line of the error event in\n{text}"));
        assert_eq!(
            line.contains("message{event=test.copy"),
            spanned,
            "{filter}: {line}"
        );
    }
}
