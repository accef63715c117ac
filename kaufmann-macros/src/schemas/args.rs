//! The arguments of `schemas!`.

use syn::parse::{Parse, ParseStream};
use syn::{LitStr, Token};

mod kw {
    syn::custom_keyword!(strict);
}

/// `schemas!`'s arguments: the folder, and whether a schema not yet locked is an error.
pub struct SchemasArgs {
    /// The folder's literal (errors point into it).
    pub dir: LitStr,
    /// `strict`: a schema changed since `schemas.lock`, or not in it, is an error (for CI), not
    /// a warning.
    pub strict: bool,
}

// Accepted syntax:
//     schemas!("dir")
//     schemas!("dir", strict)
impl Parse for SchemasArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let dir: LitStr = input.parse()?;
        let mut strict = false;
        if input.parse::<Option<Token![,]>>()?.is_some() && input.peek(kw::strict) {
            input.parse::<kw::strict>()?;
            strict = true;
            input.parse::<Option<Token![,]>>()?;
        }
        if !input.is_empty() {
            let rest: proc_macro2::TokenStream = input.parse()?;
            return Err(syn::Error::new_spanned(
                rest,
                "unexpected argument: `schemas!` takes the folder and, optionally, `strict` \
                 (`schemas!(\"schemas\", strict)` refuses schemas not in schemas.lock)",
            ));
        }
        Ok(Self { dir, strict })
    }
}
