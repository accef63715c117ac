use kaufmann::Event;
use kaufmann_examples::CommandUserCreate;

#[kaufmann::given_events("command.user.create")]
async fn create_users(event: Event<CommandUserCreate>) -> kaufmann::Result<()> {
    let _ = event;
    Ok(())
}

fn main() {}
