use kaufmann::Event;

#[kaufmann::given_event("command.user.create")]
async fn create_user(event: Event<String>) -> kaufmann::Result<()> {
    let _ = event;
    Ok(())
}

fn main() {}
