// Every accepted form of handler arguments after the event: `Context` and `State<T>` in any order
// and number (one `Context`), with patterns, full paths and plain bindings.
use std::sync::Mutex;

use kaufmann::{Context, Event, State};
use kaufmann_examples::{CommandUserCreate, CommandUserRename, EventUserCreated, Users};

#[derive(Default)]
pub struct Counter(Mutex<u64>);

impl Counter {
    fn add(&self) {
        *self.0.lock().unwrap() += 1;
    }
}

#[kaufmann::given_event("command.user.create")]
async fn state_only(event: Event<CommandUserCreate>, State(counter): State<Counter>) -> kaufmann::Result<()> {
    counter.add();
    let _ = event;
    Ok(())
}

#[kaufmann::given_event("command.user.rename")]
async fn state_before_and_after_the_context(
    event: Event<CommandUserRename>,
    State(users): State<Users>,
    ctx: Context,
    counter: kaufmann::State<Counter>,
) -> kaufmann::Result<()> {
    counter.add();
    let known = users.lock().contains_key(&event.payload.id);
    if known {
        ctx.publish(EventUserCreated { id: event.payload.id, name: event.payload.name, email: String::new() })
            .await?;
    }
    Ok(())
}

fn main() {}
