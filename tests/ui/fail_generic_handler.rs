use kaufmann::{Event, EventSchema};

#[kaufmann::given_event("command.user.create")]
async fn create_user<T: EventSchema>(event: Event<T>) -> kaufmann::Result<()> {
    let _ = event;
    Ok(())
}

fn main() {}
