use kaufmann::Event;

#[kaufmann::given_event("event.user.created")]
pub async fn log_user(event: Event<kaufmann_examples::EventUserCreated>) -> kaufmann::Result<()> {
    println!("{}", event.payload.name);
    Ok(())
}

fn main() {}
