// Every accepted form of batch handler: the events alone, with `Context` and `State<T>` in any
// order, full paths, and one naming the events that failed.
use kaufmann::{Context, Event, State};
use kaufmann_examples::{CommandUserCreate, CommandUserRename, EventUserCreated, QueryReqUserGet, Users};

#[kaufmann::given_events("command.user.create")]
async fn alone(events: Vec<Event<CommandUserCreate>>) -> kaufmann::Result<()> {
    let _ = events.len();
    Ok(())
}

#[kaufmann::given_events("command.user.rename")]
async fn with_state_and_context(
    events: Vec<Event<CommandUserRename>>,
    ctx: Context,
    State(users): State<Users>,
) -> kaufmann::Result<()> {
    let known = users.lock().len();
    for event in events {
        ctx.publish(EventUserCreated { id: event.payload.id, name: event.payload.name, email: known.to_string() })
            .await?;
    }
    Ok(())
}

#[kaufmann::given_events("query.req.user.get")]
async fn naming_failures(
    events: ::std::vec::Vec<kaufmann::Event<QueryReqUserGet>>,
) -> Result<(), kaufmann::Error> {
    let failed = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.payload.id.is_empty())
        .map(|(i, _)| (i, kaufmann::Error::permanent("no id")));
    Err(kaufmann::Error::failed_events(failed))
}

fn main() {}
