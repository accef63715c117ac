use {{lib}}::{CommandGreet, EventGreeted};
use kaufmann::testing::TestBus;

#[tokio::test]
async fn greets_by_name() {
    let bus = TestBus::new();
    bus.given_event(CommandGreet { name: "Ada".into() }).await;
    let greeted = bus.then_event::<EventGreeted>().await;
    assert_eq!(greeted.payload.greeting, "Hello, Ada!");
    bus.then_no_event().await;
}
