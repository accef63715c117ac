use kaufmann::{Context, Event};
use kaufmann_examples::CommandUserCreate;

#[kaufmann::given_event("command.user.create", publishes = ["event.user.created", "event.user.created"])]
async fn create_user(event: Event<CommandUserCreate>, ctx: Context) -> kaufmann::Result<()> {
    let _ = (event, ctx);
    Ok(())
}

fn main() {}
