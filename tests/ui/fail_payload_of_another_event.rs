use kaufmann::Event;
use kaufmann_examples::EventUserCreated;

#[kaufmann::given_event("command.user.create")]
async fn create_user(event: Event<EventUserCreated>) -> kaufmann::Result<()> {
    let _ = event;
    Ok(())
}

fn main() {}
