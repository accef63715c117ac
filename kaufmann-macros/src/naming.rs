//! Rust names for Avro names: `UpperCamel` types, `snake_case` fields, `r#` for keywords.

use proc_macro2::{Ident, Span};

/// `command.user.create` -> `CommandUserCreate`; `user_id` -> `UserId`; `ACTIVE` -> `Active`;
/// `MD5_HASH` -> `Md5Hash`; `userId` -> `UserId`.
pub fn type_name(avro: &str) -> String {
    let mut out = String::with_capacity(avro.len());
    for word in avro.split(|c: char| !c.is_ascii_alphanumeric()) {
        let shouting = !word.chars().any(|c| c.is_ascii_lowercase());
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            if shouting {
                out.extend(chars.map(|c| c.to_ascii_lowercase()));
            } else {
                out.extend(chars);
            }
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, 'T');
    }
    // The one keyword in `UpperCamel`, and it cannot be a raw identifier.
    if out == "Self" {
        out.push('_');
    }
    out
}

/// `userId` -> `user_id`; `Name` -> `name`.
pub fn field_name(avro: &str) -> String {
    let mut out = String::with_capacity(avro.len() + 4);
    let mut prev_lower = false;
    for c in avro.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            out.push('_');
            prev_lower = false;
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

/// An identifier for `name`, raw (`r#type`) when it is a keyword. The names that cannot be raw
/// identifiers take a `_` suffix: `self_`, `super_`, `crate_`, `Self_`, and `_` becomes `__`.
pub fn ident(name: &str) -> Ident {
    const STRICT: &[&str] = &["crate", "self", "super", "Self", "_"];
    if STRICT.contains(&name) {
        return Ident::new(&format!("{name}_"), Span::call_site());
    }
    if syn::parse_str::<Ident>(name).is_ok() {
        Ident::new(name, Span::call_site())
    } else {
        Ident::new_raw(name, Span::call_site())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(type_name("command.user.create"), "CommandUserCreate");
        assert_eq!(type_name("user_status"), "UserStatus");
        assert_eq!(type_name("ACTIVE"), "Active");
        assert_eq!(type_name("MD5_HASH"), "Md5Hash");
        assert_eq!(type_name("userId"), "UserId");
        assert_eq!(type_name("3d"), "T3d");
        assert_eq!(field_name("userId"), "user_id");
        assert_eq!(field_name("created_at"), "created_at");
        assert_eq!(ident("type").to_string(), "r#type");
        assert_eq!(ident("self").to_string(), "self_");
        assert_eq!(ident("name").to_string(), "name");
        for (avro, rust) in [
            ("_", "__"),
            ("self", "self_"),
            ("super", "super_"),
            ("crate", "crate_"),
            ("Self", "Self_"),
            ("fn", "r#fn"),
            ("_x", "_x"),
        ] {
            assert_eq!(ident(avro).to_string(), rust, "{avro}");
        }
        assert_eq!(ident(&field_name("_")).to_string(), "__");
        assert_eq!(ident(&field_name("Self")).to_string(), "self_");
        assert_eq!(type_name("_"), "T");
        assert_eq!(type_name("__"), "T");
        assert_eq!(type_name("self"), "Self_");
        assert_eq!(type_name("Self"), "Self_");
    }
}
