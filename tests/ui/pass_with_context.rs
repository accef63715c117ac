use kaufmann::{Context, Event};
use kaufmann_examples::{CommandUserCreate, EventUserCreated};

#[kaufmann::given_event("command.user.create")]
async fn create_user(event: Event<CommandUserCreate>, ctx: Context) -> kaufmann::Result<()> {
    let c = event.payload;
    ctx.publish(EventUserCreated { id: c.id, name: c.name, email: c.email }).await
}

fn main() {}
