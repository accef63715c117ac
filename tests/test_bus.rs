//! The test bus beyond the sample: feeding published events back into the handlers (chains),
//! the `kaufmann_ex` wire format, and buses that share nothing while running in parallel.

use kaufmann::testing::TestBus;
use kaufmann::WireFormat;
use kaufmann_tests::{TestPing, TestPong, TestRelay};

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

#[tokio::test]
async fn the_bus_speaks_the_configured_wire_format() {
    let mut config = kaufmann::Config::new("kex");
    config.wire_format = WireFormat::KaufmannEx;
    let bus = TestBus::with_config(config);
    bus.given_request(TestPing { text: "a".into() }).await;
    let reply = bus.then_reply::<TestPong>().await;
    assert_eq!(reply.payload.text, "pong: a");
    assert_eq!(reply.key.as_deref(), Some(&b"test.pong"[..]));
    // An event without a callback topic cannot be answered: error event, then dead letter.
    bus.given_event(TestPing { text: "b".into() }).await;
    let error = bus.then_error_event("test.ping").await;
    assert!(error.error.contains("no callback topic"), "{error:?}");
    bus.then_dead_letter().await;
    bus.then_no_event().await;
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
