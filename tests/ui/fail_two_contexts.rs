use kaufmann::{Context, Event};
use kaufmann_examples::CommandUserCreate;

#[kaufmann::given_event("command.user.create")]
async fn create_user(event: Event<CommandUserCreate>, ctx: Context, again: Context) -> kaufmann::Result<()> {
    let _ = (event, ctx, again);
    Ok(())
}

fn main() {}
