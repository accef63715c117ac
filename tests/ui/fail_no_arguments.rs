#[kaufmann::given_event("command.user.create")]
async fn create_user() -> kaufmann::Result<()> {
    Ok(())
}

fn main() {}
