use kaufmann::Event;
use kaufmann_examples::CommandUserCreate;

#[kaufmann::given_event("command.user.create")]
async fn create_users(events: Vec<Event<CommandUserCreate>>) -> kaufmann::Result<()> {
    let _ = events;
    Ok(())
}

fn main() {}
