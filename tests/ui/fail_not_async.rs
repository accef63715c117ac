use kaufmann::{Context, Event};
use kaufmann_examples::{CommandUserCreate, EventUserCreated};

#[kaufmann::given_event("command.user.create")]
fn create_user(event: Event<CommandUserCreate>, ctx: Context) -> kaufmann::Result<()> {
    let _ = (event, ctx, EventUserCreated { id: String::new(), name: String::new(), email: String::new() });
    Ok(())
}

fn main() {}
