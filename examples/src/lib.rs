//! The sample user service: its schemas and handlers. `user_service.rs` runs it.

use kaufmann::{Context, Event};

kaufmann::schemas!("../schemas");

/// Creates a user from `command.user.create` and announces it as `event.user.created`.
#[kaufmann::given_event("command.user.create")]
pub async fn create_user(event: Event<CommandUserCreate>, ctx: Context) -> kaufmann::Result<()> {
    let command = event.payload;
    tracing::info!(id = %command.id, name = %command.name, "handled command.user.create");
    ctx.publish(EventUserCreated {
        id: format!("user-{}", command.id),
        name: command.name,
        email: command.email.to_lowercase(),
    })
    .await?;
    tracing::info!(id = %command.id, "published event.user.created");
    Ok(())
}

/// Demo commands the sample publishes when it runs on the embedded broker.
pub fn demo_commands() -> Vec<CommandUserCreate> {
    [
        ("1", "Ada Lovelace"),
        ("2", "Alan Turing"),
        ("3", "Grace Hopper"),
    ]
    .into_iter()
    .map(|(id, name)| CommandUserCreate {
        id: id.to_owned(),
        name: name.to_owned(),
        email: format!("{}@Example.org", name.split(' ').next().unwrap_or(name)),
    })
    .collect()
}
