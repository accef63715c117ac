use kaufmann::Event;
use kaufmann_examples::CommandUserCreate;

#[kaufmann::given_event]
async fn create_user(event: Event<CommandUserCreate>) -> kaufmann::Result<()> {
    let _ = event;
    Ok(())
}

fn main() {}
