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
    let event_check = quote_spanned! {span=>
        const _: () = ::core::assert!(
            ::kaufmann::__private::str_eq(<#payload as ::kaufmann::EventSchema>::EVENT_NAME, #event),
            ::core::concat!(
                "the payload type is not the type generated for event `", #event,
                "`: use the type `schemas!` generates from ", #event, ".avsc"
            ),
        );
    };
    // A wrong return type is reported once, on the user's return type.
    let returns = match &func.sig.output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => func.sig.ident.span(),
    };
    let call = if *takes_context {
        quote_spanned! {returns=> #name(event, ctx).await }
    } else {
        quote_spanned! {returns=> { drop(ctx); #name(event).await } }
    };
    let result = quote_spanned! {returns=>
        let result = ::kaufmann::__private::HandlerReturn::into_result(#call);
    };
    quote! {
        #func

        const _: () = {
            #event_check

            // Not public API.
            fn __kaufmann_entry(
                incoming: ::kaufmann::__private::Incoming,
                ctx: ::kaufmann::Context,
            ) -> ::kaufmann::__private::BoxFuture<'static, ::kaufmann::Result<()>> {
                ::std::boxed::Box::pin(async move {
                    let event = incoming.decode::<#payload>()?;
                    #result
                    result
                })
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
