//! `#[given_event("name")]`: parse the arguments and the handler, validate, expand.

mod expand;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// The accepted handler, reduced to what the expansion needs.
pub struct Handler {
    pub event: syn::LitStr,
    pub func: syn::ItemFn,
    /// `T` in the first argument's `Event<T>`.
    pub payload: syn::Type,
    /// Whether the handler takes a `Context` second argument.
    pub takes_context: bool,
}

pub fn expand(args: &TokenStream, item: TokenStream) -> TokenStream {
    let Ok(func) = syn::parse2::<syn::ItemFn>(item.clone()) else {
        let err = syn::Error::new_spanned(
            &item,
            "#[given_event] goes on an `async fn(Event<T>, Context) -> kaufmann::Result<()>`",
        );
        let mut out = err.into_compile_error();
        out.extend(item);
        return out;
    };
    match validate(args, &func) {
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
fn parse_args(args: &TokenStream) -> syn::Result<syn::LitStr> {
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
    if let Some(extra) = parts.next() {
        let err = match extra {
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
                    "unknown argument `{}`: #[given_event] takes only the event name; per-event settings \
                     (retries, timeout, dead-letter topic) go in the `[events.\"{}\"]` section of kaufmann.toml",
                    assign.left.to_token_stream(),
                    event.value()
                ),
            ),
            other => syn::Error::new_spanned(
                other,
                "unexpected argument: #[given_event] takes only the event name",
            ),
        };
        return Err(err);
    }
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
            &event,
            "event names are dotted words of letters, digits, `_` and `-`, such as `command.user.create`",
        ));
    }
    Ok(event)
}

fn validate(args: &TokenStream, func: &syn::ItemFn) -> syn::Result<Handler> {
    let mut errors: Option<syn::Error> = None;
    let mut push = |err: syn::Error| match &mut errors {
        Some(all) => all.combine(err),
        None => errors = Some(err),
    };
    let event = parse_args(args).map_err(&mut push).ok();
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
    if let Some(second) = inputs.get(1) {
        context_argument(second).map_err(&mut push).ok();
    }
    let payload = if let Some(first) = inputs.first() {
        event_payload(first).map_err(&mut push).ok()
    } else {
        push(syn::Error::new_spanned(
            &sig.ident,
            "handlers take `event: Event<T>` and optionally `ctx: Context`",
        ));
        None
    };
    if inputs.len() > 2 {
        push(syn::Error::new_spanned(
            inputs[2],
            "handlers take at most two arguments: `event: Event<T>` and `ctx: Context`",
        ));
    }
    match (errors, event, payload) {
        (None, Some(event), Some(payload)) => Ok(Handler {
            event,
            func: func.clone(),
            payload,
            takes_context: inputs.len() == 2,
        }),
        (Some(err), _, _) => Err(err),
        (None, _, _) => Err(syn::Error::new_spanned(&sig.ident, "invalid handler")),
    }
}

/// The second argument: `Context` by value. A reference is refused here, on its `&`; any other
/// type is refused by the expansion's check on the user's type (which sees through aliases).
fn context_argument(arg: &syn::FnArg) -> syn::Result<()> {
    let syn::FnArg::Typed(typed) = arg else {
        return Ok(());
    };
    if let syn::Type::Reference(reference) = &*typed.ty {
        return Err(syn::Error::new_spanned(
            reference.and_token,
            "take `Context` by value: `ctx: Context` (each message gets its own; it is cheap to \
             move and to clone)",
        ));
    }
    Ok(())
}

/// The type of the second argument, when the handler takes one.
pub fn context_type(func: &syn::ItemFn) -> Option<&syn::Type> {
    match func.sig.inputs.iter().nth(1)? {
        syn::FnArg::Typed(typed) => Some(&typed.ty),
        syn::FnArg::Receiver(_) => None,
    }
}

/// `T` from an argument typed `Event<T>` (any path ending in `Event`).
fn event_payload(arg: &syn::FnArg) -> syn::Result<syn::Type> {
    let err = |tokens: &dyn ToTokens| {
        syn::Error::new_spanned(
            tokens,
            "the first argument must be `Event<T>`, with `T` the event's generated type",
        )
    };
    let syn::FnArg::Typed(typed) = arg else {
        return Err(err(arg));
    };
    let syn::Type::Path(path) = &*typed.ty else {
        return Err(err(&typed.ty));
    };
    let Some(last) = path.path.segments.last() else {
        return Err(err(&typed.ty));
    };
    if last.ident != "Event" {
        return Err(err(&typed.ty));
    }
    let syn::PathArguments::AngleBracketed(generics) = &last.arguments else {
        return Err(err(&typed.ty));
    };
    match generics.args.first() {
        Some(syn::GenericArgument::Type(ty)) if generics.args.len() == 1 => Ok(ty.clone()),
        _ => Err(err(&typed.ty)),
    }
}
