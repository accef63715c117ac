use kaufmann::Event;
use kaufmann_examples::CommandUserCreate;

#[kaufmann::given_event("command.user.creat")]
async fn create_user(event: Event<CommandUserCreate>) -> kaufmann::Result<()> {
    let _ = event;
    Ok(())
}

fn main() {}
