use kaufmann::{Context, Event};

kaufmann::schemas!("schemas"); // CommandGreet and EventGreeted, generated at build time

#[kaufmann::given_event("command.greet", publishes = ["event.greeted"])]
pub async fn greet(event: Event<CommandGreet>, ctx: Context) -> kaufmann::Result<()> {
    let greeting = format!("Hello, {}!", event.payload.name);
    ctx.publish(EventGreeted { greeting }).await
}
