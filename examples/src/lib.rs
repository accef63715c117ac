//! The sample user service: its schemas and handlers. `user_service.rs` runs it.
//!
//! - `command.user.create` -> `event.user.created` (a command that fails for bad input: an email
//!   without `@` is refused, which publishes `event.error.command.user.create` and dead-letters
//!   the command after its retries);
//! - `command.user.rename` -> `event.user.renamed` (fails for an unknown user or an empty name);
//! - `query.req.user.get` -> `query.res.user.get`, answered with `ctx.reply` on the caller's
//!   callback topic.
//!
//! Users are kept in memory, in the service's state ([`Users`], which every handler takes as
//! `State<Users>`): the sample shows the messages, not storage. A real service gives its
//! database pool the same way.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use kaufmann::{Context, Event, State};

kaufmann::schemas!("../schemas");

/// The users created so far, by id: the sample's application state, given to the service when it
/// starts (`Service::builder(config).state(Users::default())`).
#[derive(Debug, Default)]
pub struct Users(Mutex<HashMap<String, EventUserCreated>>);

impl Users {
    /// The users, locked (a handler that panicked while holding them left them whole: each
    /// change is one map operation).
    pub fn lock(&self) -> MutexGuard<'_, HashMap<String, EventUserCreated>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates a user from `command.user.create` and announces it as `event.user.created`.
#[kaufmann::given_event("command.user.create", publishes = ["event.user.created"])]
pub async fn create_user(
    event: Event<CommandUserCreate>,
    State(users): State<Users>,
    ctx: Context,
) -> kaufmann::Result<()> {
    let command = event.payload;
    tracing::info!(id = %command.id, name = %command.name, "handled command.user.create");
    if !command.email.contains('@') {
        return Err(kaufmann::Error::handler(format!(
            "user {}: `{}` is not an email address",
            command.id, command.email
        )));
    }
    let created = EventUserCreated {
        id: format!("user-{}", command.id),
        name: command.name,
        email: command.email.to_lowercase(),
    };
    users.lock().insert(created.id.clone(), created.clone());
    ctx.publish(created).await?;
    tracing::info!(id = %command.id, "published event.user.created");
    Ok(())
}

/// Renames a user from `command.user.rename` and announces it as `event.user.renamed`.
#[kaufmann::given_event("command.user.rename", publishes = ["event.user.renamed"])]
pub async fn rename_user(
    event: Event<CommandUserRename>,
    State(users): State<Users>,
    ctx: Context,
) -> kaufmann::Result<()> {
    let command = event.payload;
    if command.name.trim().is_empty() {
        return Err(kaufmann::Error::handler(format!(
            "user {}: the new name is empty",
            command.id
        )));
    }
    {
        let mut users = users.lock();
        let user = users.get_mut(&command.id).ok_or_else(|| {
            kaufmann::Error::handler(format!("user {} does not exist", command.id))
        })?;
        user.name.clone_from(&command.name);
    }
    ctx.publish(EventUserRenamed {
        id: command.id,
        name: command.name,
    })
    .await
}

/// Answers `query.req.user.get` with `query.res.user.get` on the caller's callback topic.
#[kaufmann::given_event("query.req.user.get", publishes = ["query.res.user.get"])]
pub async fn get_user(
    event: Event<QueryReqUserGet>,
    State(users): State<Users>,
    ctx: Context,
) -> kaufmann::Result<()> {
    let id = event.payload.id;
    let found = users.lock().get(&id).cloned();
    ctx.reply(QueryResUserGet {
        id,
        found: found.is_some(),
        name: found.as_ref().map(|u| u.name.clone()),
        email: found.map(|u| u.email),
    })
    .await
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
