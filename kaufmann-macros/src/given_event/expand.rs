//! The code `#[given_event]` generates: the user's function, type checks on the user's tokens, a
//! decoding entry point and its `inventory` registration.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::Handler;

pub fn expand(handler: &Handler) -> TokenStream {
    let Handler {
        event,
        func,
        payload,
        takes_context,
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
    let call = if *takes_context {
        // The context goes through a trait only `Context` has: another type there is one error,
        // on the user's type, saying what to write.
        let ctx_span = super::context_type(func).map_or(returns, Spanned::span);
        let ctx_arg =
            quote_spanned! {ctx_span=> ::kaufmann::__private::IsContext::from_context(ctx) };
        quote_spanned! {returns=> #handler(event, #ctx_arg).await }
    } else {
        quote_spanned! {returns=> { drop(ctx); #handler(event).await } }
    };
    let result = quote_spanned! {returns=>
        let result = ::kaufmann::__private::HandlerReturn::into_result(#call);
    };
    // Named (`const _` is refused in an `impl`, before the clearer error above).
    let registration = quote::format_ident!("__kaufmann_handler_{}", name);
    quote! {
        #func

        #[allow(non_upper_case_globals, dead_code)]
        const #registration: () = {
            #[allow(unused_imports)]
            mod a_handler_is_a_free_function {
                pub(super) use super::*;
            }

            #event_check
            #payload_check

            // Not public API.
            fn __kaufmann_entry(
                incoming: ::kaufmann::__private::Incoming,
                ctx: ::kaufmann::Context,
            ) -> ::kaufmann::__private::BoxFuture<'static, ::kaufmann::Result<()>> {
                // Decoded before the handler's future is boxed: the box holds the event, not
                // the undecoded message as well.
                match incoming.decode::<#payload>() {
                    ::core::result::Result::Ok(event) => ::std::boxed::Box::pin(async move {
                        #result
                        result
                    }),
                    ::core::result::Result::Err(error) => {
                        ::std::boxed::Box::pin(::core::future::ready(::core::result::Result::Err(error)))
                    }
                }
            }

            ::kaufmann::__private::inventory::submit! {
                ::kaufmann::__private::HandlerRegistration::new(
                    #event, #name_str, ::core::file!(), ::core::line!(), __kaufmann_entry,
                    <#payload as ::kaufmann::EventSchema>::canonical_form,
                )
            }
        };
    }
}
