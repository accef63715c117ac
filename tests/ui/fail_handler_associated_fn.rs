use kaufmann::{Context, Event};
use kaufmann_examples::CommandUserCreate;

struct Users;

impl Users {
    #[kaufmann::given_event("command.user.create")]
    async fn create_user(event: Event<CommandUserCreate>, ctx: Context) -> kaufmann::Result<()> {
        let _ = (event, ctx);
        Ok(())
    }
}

fn main() {}
