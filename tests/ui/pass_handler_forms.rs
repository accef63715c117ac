// Every accepted handler form, one per function.
use kaufmann_examples::{CommandUserCreate, EventUserCreated};

// Full paths, a pattern for the event, a `Result` spelled out.
#[kaufmann::given_event("command.user.create")]
async fn full_paths(
    kaufmann::Event { payload, .. }: kaufmann::Event<CommandUserCreate>,
    ctx: kaufmann::Context,
) -> Result<(), kaufmann::Error> {
    ctx.publish(EventUserCreated { id: payload.id, name: payload.name, email: payload.email })
        .await
}

// `mut` bindings and an unused context.
#[kaufmann::given_event("event.user.created")]
async fn mutable(mut event: kaufmann::Event<EventUserCreated>, _ctx: kaufmann::Context) -> kaufmann::Result<()> {
    event.payload.name.push('!');
    Ok(())
}

// Public, in a module, with `?` on a Kaufmann error.
pub mod handlers {
    use kaufmann::{Event, Result};
    use kaufmann_examples::EventUserCreated;

    #[kaufmann::given_event("event.user.created")]
    pub async fn in_a_module(event: Event<EventUserCreated>) -> Result<()> {
        let _ = event.meta.message_id;
        Ok(())
    }
}

fn main() {}
