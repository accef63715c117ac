//! `#[given_event("name")]`: parse the arguments and the handler, validate, expand.

mod expand;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// The accepted handler, reduced to what the expansion needs.
pub struct Handler {
    pub event: syn::LitStr,
    /// The events `publishes = [..]` declares the handler publishes.
    pub publishes: Vec<syn::LitStr>,
    pub func: syn::ItemFn,
    /// `T` in the first argument's `Event<T>`.
    pub payload: syn::Type,
    /// The types of the arguments after the event (`Context`, `State<T>`), in order.
    pub arguments: Vec<syn::Type>,
    /// `#[given_events]`: the first argument is `Vec<Event<T>>`.
    pub batch: bool,
}

pub fn expand(args: &TokenStream, item: TokenStream, batch: bool) -> TokenStream {
    let Ok(func) = syn::parse2::<syn::ItemFn>(item.clone()) else {
        let err = syn::Error::new_spanned(
            &item,
            if batch {
                "#[given_events] goes on an `async fn(Vec<Event<T>>, Context) -> kaufmann::Result<()>` \
                 (after the events, any of `ctx: Context` and `State(x): State<T>`)"
            } else {
                "#[given_event] goes on an `async fn(Event<T>, Context) -> kaufmann::Result<()>` (after \
                 the event, any of `ctx: Context` and `State(x): State<T>`)"
            },
        );
        let mut out = err.into_compile_error();
        out.extend(item);
        return out;
    };
    match validate(args, &func, batch) {
        Ok(handler) => expand::expand(&handler),
        Err(err) => {
            // Keep the user's function so that one mistake gives one error.
            let mut out = err.into_compile_error();
            out.extend(func.into_token_stream());
            out
        }
    }
}

// Accepted syntax:
//     #[given_event("event.name")]
//     #[given_event("event.name", publishes = ["event.a", "event.b"])]
fn parse_args(args: &TokenStream) -> syn::Result<(syn::LitStr, Vec<syn::LitStr>)> {
    use syn::parse::Parser;
    const USAGE: &str =
        "expected the event name as one string literal: #[given_event(\"command.user.create\")]";
    if args.is_empty() {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[given_event] needs the event name: #[given_event(\"command.user.create\")]",
        ));
    }
    let parsed = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated
        .parse2(args.clone())
        .map_err(|_| syn::Error::new_spanned(args, USAGE))?;
    let mut parts = parsed.iter();
    let event = match parts.next() {
        Some(syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(event),
            ..
        })) => event.clone(),
        Some(other) => return Err(syn::Error::new_spanned(other, USAGE)),
        None => return Err(syn::Error::new_spanned(args, USAGE)),
    };
    check_name(&event)?;
    let mut publishes = None;
    for extra in parts {
        match extra {
            syn::Expr::Assign(assign) if is_ident(&assign.left, "publishes") => {
                if publishes.is_some() {
                    return Err(syn::Error::new_spanned(
                        &assign.left,
                        "`publishes` is given twice: list every event in one `publishes = [..]`",
                    ));
                }
                publishes = Some(published_events(&assign.right)?);
            }
            other => return Err(unexpected_argument(other, &event)),
        }
    }
    Ok((event, publishes.unwrap_or_default()))
}

/// Whether `expr` is the bare identifier `name`.
fn is_ident(expr: &syn::Expr, name: &str) -> bool {
    matches!(expr, syn::Expr::Path(path) if path.path.is_ident(name))
}

/// The event names of `publishes = ["event.a", ..]`, each checked.
fn published_events(list: &syn::Expr) -> syn::Result<Vec<syn::LitStr>> {
    const USAGE: &str = "`publishes` takes a list of event names: \
                         publishes = [\"event.user.created\", \"event.user.renamed\"]";
    let syn::Expr::Array(array) = list else {
        return Err(syn::Error::new_spanned(list, USAGE));
    };
    let mut events: Vec<syn::LitStr> = Vec::new();
    for element in &array.elems {
        let syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(event),
            ..
        }) = element
        else {
            return Err(syn::Error::new_spanned(element, USAGE));
        };
        check_name(event)?;
        if events.iter().any(|seen| seen.value() == event.value()) {
            return Err(syn::Error::new_spanned(
                event,
                format!("`{}` is listed twice in `publishes`", event.value()),
            ));
        }
        events.push(event.clone());
    }
    Ok(events)
}

/// The error for an argument after the event name that is not `publishes = [..]`.
fn unexpected_argument(extra: &syn::Expr, event: &syn::LitStr) -> syn::Error {
    match extra {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(second),
            ..
        }) => syn::Error::new_spanned(
            second,
            format!(
                "one handler serves one event, and `{}` is a second event name: write a handler for each",
                second.value()
            ),
        ),
        syn::Expr::Assign(assign) => syn::Error::new_spanned(
            &assign.left,
            format!(
                "unknown argument `{}`: #[given_event] takes the event name and `publishes = [..]`; \
                 per-event settings (retries, timeout, dead-letter topic) go in the \
                 `[events.\"{}\"]` section of kaufmann.toml",
                assign.left.to_token_stream(),
                event.value()
            ),
        ),
        other => syn::Error::new_spanned(
            other,
            "unexpected argument: #[given_event] takes the event name and `publishes = [..]`",
        ),
    }
}

/// Refuses a malformed event name, on its literal.
fn check_name(event: &syn::LitStr) -> syn::Result<()> {
    let name = event.value();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..");
    if !valid {
        return Err(syn::Error::new_spanned(
            event,
            "event names are dotted words of letters, digits, `_` and `-`, such as `command.user.create`",
        ));
    }
    Ok(())
}

fn validate(args: &TokenStream, func: &syn::ItemFn, batch: bool) -> syn::Result<Handler> {
    let mut errors: Option<syn::Error> = None;
    let mut push = |err: syn::Error| match &mut errors {
        Some(all) => all.combine(err),
        None => errors = Some(err),
    };
    let (event, publishes) = match parse_args(args).map_err(&mut push) {
        Ok((event, publishes)) => (Some(event), publishes),
        Err(()) => (None, Vec::new()),
    };
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        push(syn::Error::new_spanned(
            sig.fn_token,
            "handlers must be `async fn`",
        ));
    }
    if matches!(sig.output, syn::ReturnType::Default) {
        push(syn::Error::new_spanned(
            &sig.ident,
            "handlers return `kaufmann::Result<()>`: add `-> kaufmann::Result<()>`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        push(syn::Error::new_spanned(
            &sig.generics,
            "handlers cannot be generic: #[given_event] registers one function for one event type; \
             name the type (`event: Event<CommandUserCreate>`) and call a generic helper from the \
             handler if several share code",
        ));
    }
    if let Some(receiver) = sig.receiver() {
        push(syn::Error::new_spanned(
            receiver,
            "a handler is a free function, not a method: move it out of the `impl` block, and give \
             it what it needs through its event and `ctx: Context`",
        ));
    }
    let inputs: Vec<&syn::FnArg> = sig
        .inputs
        .iter()
        .filter(|arg| matches!(arg, syn::FnArg::Typed(_)))
        .collect();
    let mut contexts = 0;
    let mut arguments = Vec::new();
    for arg in inputs.iter().skip(1) {
        if let Some(ty) = later_argument(arg).map_err(&mut push).ok().flatten() {
            if names_context(ty) {
                contexts += 1;
                if contexts == 2 {
                    push(syn::Error::new_spanned(
                        ty,
                        "a handler takes one `Context`: remove this second one",
                    ));
                }
            }
            arguments.push(ty.clone());
        }
    }
    let payload = if let Some(first) = inputs.first() {
        event_payload(first, batch).map_err(&mut push).ok()
    } else {
        push(syn::Error::new_spanned(
            &sig.ident,
            "handlers take `event: Event<T>`, then any of `ctx: Context` and `State(x): State<T>`",
        ));
        None
    };
    match (errors, event, payload) {
        (None, Some(event), Some(payload)) => Ok(Handler {
            event,
            publishes,
            func: func.clone(),
            payload,
            arguments,
            batch,
        }),
        (Some(err), _, _) => Err(err),
        (None, _, _) => Err(syn::Error::new_spanned(&sig.ident, "invalid handler")),
    }
}

/// The type of an argument after the event, taken by value. A reference is refused here, on its
/// `&`; a type that is neither `Context` nor `State<T>` is refused by the expansion's check on the
/// user's type (which sees through aliases).
fn later_argument(arg: &syn::FnArg) -> syn::Result<Option<&syn::Type>> {
    let syn::FnArg::Typed(typed) = arg else {
        return Ok(None);
    };
    if let syn::Type::Reference(reference) = &*typed.ty {
        return Err(syn::Error::new_spanned(
            reference.and_token,
            "take handler arguments by value: `ctx: Context`, `State(x): State<T>` (each message \
             gets its own context; a state is shared behind an `Arc`, so both are cheap to move)",
        ));
    }
    Ok(Some(&typed.ty))
}

/// Whether a type is spelled as a path ending in `Context`.
fn names_context(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Context"))
}

/// `T` from an argument typed `Event<T>` (any path ending in `Event`), or `Vec<Event<T>>` for a
/// batch handler.
fn event_payload(arg: &syn::FnArg, batch: bool) -> syn::Result<syn::Type> {
    let message = if batch {
        "the first argument of a batch handler must be `Vec<Event<T>>`, with `T` the event's \
         generated type (for one event at a time, use #[given_event] and `Event<T>`)"
    } else {
        "the first argument must be `Event<T>`, with `T` the event's generated type"
    };
    let err = |tokens: &dyn ToTokens| syn::Error::new_spanned(tokens, message);
    let syn::FnArg::Typed(typed) = arg else {
        return Err(err(arg));
    };
    let ty = if batch {
        match single_argument(&typed.ty, "Vec") {
            Some(inner) => inner,
            None => return Err(err(&typed.ty)),
        }
    } else {
        if single_argument(&typed.ty, "Vec").is_some() {
            return Err(syn::Error::new_spanned(
                &typed.ty,
                "a handler of `Vec<Event<T>>` is a batch handler: write #[given_events(..)] \
                 instead of #[given_event(..)]",
            ));
        }
        &typed.ty
    };
    single_argument(ty, "Event")
        .cloned()
        .ok_or_else(|| err(&typed.ty))
}

/// `T` in a type spelled as a path ending in `name<T>`.
fn single_argument<'a>(ty: &'a syn::Type, name: &str) -> Option<&'a syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let syn::PathArguments::AngleBracketed(generics) = &last.arguments else {
        return None;
    };
    match generics.args.first() {
        Some(syn::GenericArgument::Type(ty)) if generics.args.len() == 1 => Some(ty),
        _ => None,
    }
}
