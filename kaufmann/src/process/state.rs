//! Application state: the values a service is given when it is built ([`States`]) and the
//! handler arguments that ask for them ([`State`], and `Context` beside it), checked against each
//! other before the first message.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fast_map::FastMap;
use crate::publish::context::Context;

/// A handler argument holding a value of type `T` the service was given at start-up
/// (`kaufmann::run!(state = ..)`, [`ServiceBuilder::state`](crate::service::ServiceBuilder::state)
/// or [`TestBus::with_state`](crate::testing::TestBus::with_state)).
///
/// Every handler shares the one value, so `T` is behind an [`Arc`] (no `Clone` needed) and
/// anything mutable inside it needs its own lock, as in `State<Mutex<HashMap<..>>>`. A handler that
/// asks for a type the service was not given stops the service from starting.
///
/// ```
/// use std::sync::Mutex;
/// use kaufmann::{Event, State};
///
/// kaufmann::schemas!("../schemas");
///
/// #[derive(Default)]
/// struct Seen(Mutex<Vec<String>>);
///
/// #[kaufmann::given_event("command.user.create")]
/// async fn create_user(event: Event<CommandUserCreate>, State(seen): State<Seen>) -> kaufmann::Result<()> {
///     seen.0.lock().unwrap().push(event.payload.id);
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let bus = kaufmann::testing::TestBus::new().with_state(Seen::default());
/// bus.given_event(CommandUserCreate { id: "u1".into(), name: "Ada".into(), email: "a@b.c".into() }).await;
/// assert_eq!(bus.stats().handled(), 1);
/// # }
/// ```
pub struct State<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> std::ops::Deref for State<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized> Clone for State<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&self.0).finish()
    }
}

/// The application state a service is given: at most one value of each type.
#[derive(Clone, Default)]
pub struct States {
    by_type: FastMap<TypeId, (Arc<dyn Any + Send + Sync>, &'static str)>,
    /// The first mistake made while adding values (a type given twice), reported when the
    /// service starts.
    refused: Option<String>,
}

impl fmt::Debug for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.by_type.values().map(|(_, name)| *name).collect();
        names.sort_unstable();
        f.debug_struct("States")
            .field("types", &names)
            .field("refused", &self.refused)
            .finish()
    }
}

impl States {
    /// No state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value`, which handlers take as `State<T>`. A second value of one type is refused when
    /// the service starts (name a wrapper type for each, such as `struct ReadDb(Pool)`).
    #[must_use]
    pub fn with<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.insert(value);
        self
    }

    /// Adds `value` in place; see [`States::with`].
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        let name = std::any::type_name::<T>();
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value);
        if self
            .by_type
            .insert(TypeId::of::<T>(), (value, name))
            .is_some()
        {
            self.refused.get_or_insert(twice(name));
        }
    }

    /// Adds every value of `other` (a type both hold is refused at start, like any type given
    /// twice).
    pub fn extend(&mut self, other: Self) {
        if let Some(why) = other.refused {
            self.refused.get_or_insert(why);
        }
        for (id, (value, name)) in other.by_type {
            if self.by_type.insert(id, (value, name)).is_some() {
                self.refused.get_or_insert(twice(name));
            }
        }
    }

    /// Why these values cannot be given to a service (a type given twice), if they cannot.
    pub(crate) fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// The value of type `T`, shared.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let (value, _) = self.by_type.get(&TypeId::of::<T>())?;
        Arc::clone(value).downcast::<T>().ok()
    }

    /// Whether a value of the type `need` names was given.
    pub(crate) fn has(&self, need: &StateNeed) -> bool {
        self.by_type.contains_key(&(need.id)())
    }
}

/// Why a type given twice is refused.
fn twice(name: &str) -> String {
    format!(
        "two state values of type `{name}` were given; a handler's `State<{name}>` would not know \
         which one it gets: give one, or wrap each in a type of its own"
    )
}

/// A state type a handler asks for: its id and name (functions: neither `TypeId::of` nor
/// `type_name` is `const`).
#[derive(Debug, Clone, Copy)]
pub struct StateNeed {
    /// The type's id.
    pub id: fn() -> TypeId,
    /// The type's name, for messages.
    pub name: fn() -> &'static str,
}

/// A handler argument after the event: `Context` or `State<T>`.
#[diagnostic::on_unimplemented(
    message = "a handler's arguments after its event are `kaufmann::Context` and `kaufmann::State<T>`, not `{Self}`",
    label = "write `ctx: Context`, or `State(value): State<{Self}>` for a value the service is given at start-up"
)]
pub trait HandlerArgument: Sized {
    /// The state type the argument asks for, if any.
    const NEEDS: Option<StateNeed>;

    /// The argument for one message: the context (taken: a handler gets one) or a state value.
    fn take(context: &mut Option<Context>, states: &States) -> Result<Self>;
}

impl HandlerArgument for Context {
    const NEEDS: Option<StateNeed> = None;

    fn take(context: &mut Option<Context>, _: &States) -> Result<Self> {
        context.take().ok_or_else(|| {
            Error::handler("a handler takes one `Context`: remove the second `Context` argument")
        })
    }
}

impl<T: Send + Sync + 'static> HandlerArgument for State<T> {
    const NEEDS: Option<StateNeed> = Some(StateNeed {
        id: TypeId::of::<T>,
        name: std::any::type_name::<T>,
    });

    fn take(_: &mut Option<Context>, states: &States) -> Result<Self> {
        states
            .get::<T>()
            .map(State)
            .ok_or_else(|| Error::MissingState {
                name: std::any::type_name::<T>(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_found_by_its_type_and_shared() {
        let states = States::new().with(7_u32).with(String::from("db"));
        assert_eq!(states.get::<u32>().as_deref(), Some(&7));
        assert_eq!(
            states.get::<String>().as_deref().map(String::as_str),
            Some("db")
        );
        assert!(states.get::<u64>().is_none());
        let a = states.get::<String>().unwrap();
        let b = states.get::<String>().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one value, shared");
    }

    #[test]
    fn a_type_given_twice_is_refused_at_start() {
        let states = States::new().with(1_u32).with(2_u32);
        let err = states.refused().unwrap_or_default();
        assert!(err.contains("two state values of type `u32`"), "{err}");
    }
}
