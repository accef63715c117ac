use kaufmann::Event;
use kaufmann_examples::{CommandUserCreate, Users};

#[kaufmann::given_event("command.user.create")]
async fn create_user(event: Event<CommandUserCreate>, users: Users) -> kaufmann::Result<()> {
    let _ = (event, users);
    Ok(())
}

fn main() {}
