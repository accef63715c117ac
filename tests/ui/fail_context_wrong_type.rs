use kaufmann::Event;
use kaufmann_examples::CommandUserCreate;

#[kaufmann::given_event("command.user.create")]
async fn create_user(event: Event<CommandUserCreate>, ctx: String) -> kaufmann::Result<()> {
    let _ = (event, ctx);
    Ok(())
}

fn main() {}
