//! `schemas!("dir")`: load every `.avsc` file of a folder and generate typed items.

mod codegen;
pub mod folder;

use std::path::PathBuf;

use proc_macro2::TokenStream;
use quote::quote;

pub use folder::{load, SchemaFile};

pub fn expand(dir: &syn::LitStr) -> syn::Result<TokenStream> {
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(PathBuf::new, PathBuf::from);
    load(&root.join(dir.value()), &dir.value())
        .and_then(|files| generate(&files))
        .map_err(|msg| syn::Error::new_spanned(dir, msg))
}

/// The items for a set of schema files: their types, `EventSchema` impls, and an `include_bytes!`
/// of each file so that editing one rebuilds the crate.
pub fn generate(files: &[SchemaFile]) -> Result<TokenStream, String> {
    let (schemas, texts) = folder::parse(files)?;
    let mut gen = codegen::Generator::new(files, &schemas)?;
    let mut out = TokenStream::new();
    for (index, (file, schema)) in files.iter().zip(&schemas).enumerate() {
        let path = file.path.to_string_lossy().into_owned();
        out.extend(quote! { const _: &[u8] = ::core::include_bytes!(#path); });
        gen.event(index, schema, &texts[index])
            .map_err(|msg| format!("{}: {msg}", file.shown))?;
    }
    out.extend(gen.finish());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The code generated for the fixture schemas of `tests/fixtures/avro`, compared with the
    /// reviewed copy in `snapshots/` (`KAUFMANN_UPDATE_SNAPSHOTS=1` rewrites it for review).
    #[test]
    fn generated_code_matches_the_snapshot() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let folder = root.join("../tests/fixtures/avro");
        let files = super::load(&folder, "fixtures/avro").unwrap();
        let tokens = super::generate(&files).unwrap();
        let file: syn::File = syn::parse2(tokens).unwrap();
        let code = prettyplease::unparse(&file);
        let prefix = folder.to_string_lossy().into_owned();
        let code = code.replace(&prefix, "<fixtures>");
        let snapshot = root.join("src/schemas/snapshots/fixture_avro.rs.txt");
        if std::env::var_os("KAUFMANN_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&snapshot, &code).unwrap();
        }
        let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
        assert!(
            code == expected,
            "the generated code differs from {}; review the change and run with \
             KAUFMANN_UPDATE_SNAPSHOTS=1 to accept it.\n--- generated ---\n{code}",
            snapshot.display()
        );
    }

    /// Generates from a temporary folder holding `files` (event name, schema text).
    fn generate_files(files: &[(&str, &str)]) -> Result<proc_macro2::TokenStream, String> {
        let first = files.first().map_or("none", |(name, _)| name);
        let dir =
            std::env::temp_dir().join(format!("kaufmann-macros-{first}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, schema) in files {
            std::fs::write(dir.join(format!("{name}.avsc")), schema).unwrap();
        }
        let result = super::load(&dir, "schemas").and_then(|files| super::generate(&files));
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    fn generate_one(name: &str, schema: &str) -> Result<proc_macro2::TokenStream, String> {
        generate_files(&[(name, schema)])
    }

    #[test]
    fn a_second_use_of_a_logical_fixed_is_refused() {
        let err = generate_one(
            "event.money",
            r#"{"type": "record", "name": "M", "fields": [
                {"name": "a", "type": {"type": "fixed", "name": "Money", "size": 8,
                    "logicalType": "decimal", "precision": 10, "scale": 2}},
                {"name": "b", "type": "Money"}]}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("schemas/event.money.avsc: `Money` is a `fixed` with a logical type"),
            "{err}"
        );
    }

    #[test]
    fn fields_that_become_the_same_rust_field_are_refused() {
        let err = generate_one(
            "event.twins",
            r#"{"type": "record", "name": "T", "fields": [
                {"name": "userId", "type": "string"}, {"name": "user_id", "type": "string"}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("fields `userId` and `user_id`"), "{err}");
    }

    #[test]
    fn a_top_level_that_is_not_a_record_is_refused() {
        let err = generate_one("event.plain", r#""string""#).unwrap_err();
        assert!(err.contains("must be a record"), "{err}");
        let err = generate_one(
            "event.bad",
            r#"{"type": "record", "name": "B", "fields": [{"name": "a", "type": "nope"}]}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("schemas/event.bad.avsc: invalid Avro schema"),
            "{err}"
        );
    }

    #[test]
    fn a_type_defined_differently_in_two_files_is_refused() {
        let with = |field: &str| {
            format!(
                r#"{{"type": "record", "name": "R{field}", "namespace": "n", "fields": [
                    {{"name": "a", "type": {{"type": "record", "name": "Shared",
                        "fields": [{{"name": "{field}", "type": "string"}}]}}}}]}}"#
            )
        };
        let result = generate_files(&[("event.one", &with("x")), ("event.two", &with("y"))]);
        let err = result.unwrap_err();
        assert!(
            err.contains("`n.Shared` is defined differently in schemas/event.one.avsc and in schemas/event.two.avsc"),
            "{err}"
        );
    }

    #[test]
    fn a_rust_name_clash_names_both_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let folder = root.join("../tests/ui/schemas-name-clash");
        let files = super::load(&folder, "schemas").unwrap();
        let err = super::generate(&files).unwrap_err();
        assert!(err.contains("schemas/event.a.avsc"), "{err}");
        assert!(err.contains("schemas/event.b.avsc"), "{err}");
    }
}
