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
