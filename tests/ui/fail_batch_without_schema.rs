use kaufmann::Event;
use kaufmann_examples::CommandUserCreate;

#[kaufmann::given_events("command.user.delete")]
async fn delete_users(events: Vec<Event<CommandUserCreate>>) -> kaufmann::Result<()> {
    let _ = events;
    Ok(())
}

fn main() {}
