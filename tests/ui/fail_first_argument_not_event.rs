use kaufmann::Context;
use kaufmann_examples::CommandUserCreate;

#[kaufmann::given_event("command.user.create")]
async fn create_user(command: CommandUserCreate, ctx: Context) -> kaufmann::Result<()> {
    let _ = (command, ctx);
    Ok(())
}

fn main() {}
