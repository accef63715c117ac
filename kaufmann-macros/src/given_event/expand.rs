//! The code `#[given_event]` generates: the user's function, type checks on the user's tokens, a
//! decoding entry point and its `inventory` registration.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::Handler;

pub fn expand(handler: &Handler) -> TokenStream {
    let Handler {
        event,
        publishes,
        func,
        payload,
        arguments,
        batch,
    } = handler;
    let name = &func.sig.ident;
    let name_str = name.to_string();
    let span = payload.span();
    let schema = quote_spanned! {span=> <#payload as ::kaufmann::EventSchema> };
    let event_check = quote_spanned! {event.span()=>
        const _: () = if let ::core::option::Option::Some(message) =
            &::kaufmann::__private::unknown_event(#event, #schema::SIBLINGS)
        {
            ::core::panic!("{}", message.as_str())
        };
    };
    // Each declared published event must be in the payload's schemas folder; the error is on
    // its name in `publishes`.
    let publishes_checks = publishes.iter().map(|published| {
        quote_spanned! {published.span()=>
            const _: () = if let ::core::option::Option::Some(message) =
                &::kaufmann::__private::unknown_event(#published, #schema::SIBLINGS)
            {
                ::core::panic!("{}", message.as_str())
            };
        }
    });
    let payload_check = quote_spanned! {span=>
        const _: () = if let ::core::option::Option::Some(message) =
            &::kaufmann::__private::wrong_payload(#event, #schema::EVENT_NAME, #schema::SIBLINGS)
        {
            ::core::panic!("{}", message.as_str())
        };
    };
    // A wrong return type is reported once, on the user's return type.
    let returns = match &func.sig.output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => func.sig.ident.span(),
    };
    // The handler is called through a module of the expansion that sees the user's module: a
    // handler written inside an `impl` (an associated function, which the module cannot see) then
    // fails with "cannot find function `<name>` in module `a_handler_is_a_free_function`".
    let handler = quote_spanned! {name.span()=> a_handler_is_a_free_function::#name };
    // Each argument after the event is taken through a trait only `Context` and `State<T>` have:
    // another type there is one error, on the user's type, saying what to write.
    let names: Vec<syn::Ident> = (0..arguments.len())
        .map(|i| quote::format_ident!("__kaufmann_argument_{}", i))
        .collect();
    let takes = arguments.iter().zip(&names).map(|(ty, name)| {
        let take = quote_spanned! {ty.span()=>
            <#ty as ::kaufmann::__private::HandlerArgument>::take(&mut context, states)
        };
        quote! {
            let #name = match #take {
                ::core::result::Result::Ok(argument) => argument,
                ::core::result::Result::Err(error) => return failed(error),
            };
        }
    });
    let takes: Vec<TokenStream> = takes.collect();
    let needs = arguments.iter().map(|ty| {
        quote_spanned! {ty.span()=> <#ty as ::kaufmann::__private::HandlerArgument>::NEEDS }
    });
    // In a block: a wrong return type is then reported on the user's return type, with the
    // handler's call as the tail expression of that type.
    let call = quote_spanned! {returns=> { #handler(event #(, #names)*).await } };
    let result = quote_spanned! {returns=>
        let result = ::kaufmann::__private::HandlerReturn::into_result(#call);
    };
    let entry = entry(*batch, payload, &takes, &result);
    let register = if *batch {
        quote! { ::kaufmann::__private::HandlerRegistration::batch }
    } else {
        quote! { ::kaufmann::__private::HandlerRegistration::new }
    };
    // Named (`const _` is refused in an `impl`, before the clearer error above).
    let registration = quote::format_ident!("__kaufmann_handler_{}", name);
    quote! {
        // A handler must be `async` even when it awaits nothing.
        #[allow(clippy::unused_async)]
        #func

        #[allow(non_upper_case_globals, dead_code)]
        const #registration: () = {
            #[allow(unused_imports)]
            mod a_handler_is_a_free_function {
                pub(super) use super::*;
            }

            #event_check
            #(#publishes_checks)*
            #payload_check

            #entry
            const __KAUFMANN_NEEDS: &[::core::option::Option<::kaufmann::__private::StateNeed>] =
                &[#(#needs),*];

            ::kaufmann::__private::inventory::submit! {
                #register(
                    (#event, #name_str, ::core::file!(), ::core::line!()), __kaufmann_entry,
                    <#payload as ::kaufmann::EventSchema>::canonical_form,
                    __KAUFMANN_NEEDS,
                    &[#(#publishes),*],
                )
            }
        };
    }
}

/// The entry point `inventory` registers: the handler's arguments taken (`takes`), the message
/// (or batch) decoded into `payload`, and `result` (the user's call) run.
fn entry(
    batch: bool,
    payload: &syn::Type,
    takes: &[TokenStream],
    result: &TokenStream,
) -> TokenStream {
    if batch {
        quote! {
            // Not public API. (The braces around the call are there for the error message.)
            #[allow(unused_braces)]
            fn __kaufmann_entry(
                incoming: ::std::vec::Vec<::kaufmann::__private::Incoming>,
                ctx: ::kaufmann::Context,
                states: &::kaufmann::States,
            ) -> ::kaufmann::__private::BatchRun {
                fn failed(error: ::kaufmann::Error) -> ::kaufmann::__private::BatchRun {
                    ::kaufmann::__private::BatchRun::failed(error)
                }
                #[allow(unused_mut)]
                let mut context = ::core::option::Option::Some(ctx);
                #(#takes)*
                drop(context);
                ::kaufmann::__private::batch_entry::<#payload, _, _>(incoming, move |event| async move {
                    #result
                    result
                })
            }
        }
    } else {
        quote! {
            // Not public API. (The braces around the call are there for the error message.)
            #[allow(unused_braces)]
            fn __kaufmann_entry(
                incoming: ::kaufmann::__private::Incoming,
                ctx: ::kaufmann::Context,
                states: &::kaufmann::States,
            ) -> ::kaufmann::__private::BoxFuture<'static, ::kaufmann::Result<()>> {
                fn failed(
                    error: ::kaufmann::Error,
                ) -> ::kaufmann::__private::BoxFuture<'static, ::kaufmann::Result<()>> {
                    ::std::boxed::Box::pin(::core::future::ready(::core::result::Result::Err(error)))
                }
                // Decoded before the handler's future is boxed: the box holds the event, not
                // the undecoded message as well.
                let event = match incoming.decode::<#payload>() {
                    ::core::result::Result::Ok(event) => event,
                    ::core::result::Result::Err(error) => return failed(error),
                };
                #[allow(unused_mut)]
                let mut context = ::core::option::Option::Some(ctx);
                #(#takes)*
                drop(context);
                ::std::boxed::Box::pin(async move {
                    #result
                    result
                })
            }
        }
    }
}
