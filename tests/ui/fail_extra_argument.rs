use kaufmann::{Context, Event};
use kaufmann_examples::CommandUserCreate;

#[kaufmann::given_event("command.user.create")]
async fn create_user(event: Event<CommandUserCreate>, ctx: Context, extra: u32) -> kaufmann::Result<()> {
    let _ = (event, ctx, extra);
    Ok(())
}

fn main() {}
