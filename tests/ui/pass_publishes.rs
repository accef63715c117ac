// `publishes = [..]` on both handler kinds, with one event, several, none, and a trailing comma.
use kaufmann::{Context, Event};
use kaufmann_examples::{CommandUserCreate, CommandUserRename, EventUserCreated, QueryReqUserGet};

#[kaufmann::given_event("command.user.create", publishes = ["event.user.created"])]
async fn one(event: Event<CommandUserCreate>, ctx: Context) -> kaufmann::Result<()> {
    let c = event.payload;
    ctx.publish(EventUserCreated { id: c.id, name: c.name, email: c.email }).await
}

#[kaufmann::given_events("command.user.rename", publishes = ["event.user.renamed", "event.user.created",])]
async fn several(events: Vec<Event<CommandUserRename>>) -> kaufmann::Result<()> {
    let _ = events.len();
    Ok(())
}

#[kaufmann::given_event("query.req.user.get", publishes = [])]
async fn none(event: Event<QueryReqUserGet>) -> kaufmann::Result<()> {
    let _ = event;
    Ok(())
}

fn main() {}
