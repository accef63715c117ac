//! `schemas!("dir")`, in five stages: args (`args`), load (every `.avsc` file of the folder, read
//! and parsed by `kaufmann-schema-folder`), model (every name and every refusal, `model`), the
//! check against the folder's `schemas.lock` (`lock`) and expand (tokens only, `codegen`).

mod args;
mod codegen;
mod lock;
mod model;

use kaufmann_schema_folder as folder;

use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream};
use quote::quote;

pub use args::SchemasArgs;
pub use folder::SchemaFile;

/// Every problem of the folder is reported at once: one error each, on the folder's literal,
/// each naming its file. When only the lock refuses, the types are generated still, so that the
/// lock's errors come alone.
pub fn expand(args: &SchemasArgs) -> TokenStream {
    let dir = &args.dir;
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(PathBuf::new, PathBuf::from);
    let (generated, errors) = load_checked(
        &root.join(dir.value()),
        &dir.value(),
        args.strict,
        dir.span(),
    );
    let mut out = generated.unwrap_or_default();
    let mut errors = errors.iter().map(|msg| syn::Error::new_spanned(dir, msg));
    if let Some(mut all) = errors.next() {
        for error in errors {
            all.combine(error);
        }
        out.extend(all.into_compile_error());
    }
    out
}

/// Loads, checks against the lock and generates: the items (when the folder generates) and every
/// problem found.
fn load_checked(
    folder: &Path,
    shown: &str,
    strict: bool,
    span: Span,
) -> (Option<TokenStream>, Vec<String>) {
    let (files, schemas, texts) = match folder::read_all(folder, shown) {
        Ok(parsed) => parsed,
        Err(errors) => return (None, errors),
    };
    let checked = lock::check(folder, shown, &files, &schemas, strict);
    let mut errors = checked.errors;
    match generate_parsed(&files, &schemas, &texts) {
        Err(more) => {
            errors.extend(more);
            (None, errors)
        }
        Ok(mut out) => {
            if let Some(path) = checked.path {
                out.extend(quote! { const _: &[u8] = ::core::include_bytes!(#path); });
            }
            out.extend(lock::warnings(&checked.notes, span));
            (Some(out), errors)
        }
    }
}

/// Loads and generates, with the problems of every file (the lock aside).
#[cfg(test)]
pub fn load_all(folder: &Path, shown: &str) -> Result<TokenStream, Vec<String>> {
    let (files, schemas, texts) = folder::read_all(folder, shown)?;
    generate_parsed(&files, &schemas, &texts)
}

/// The items for a set of schema files: their types, `EventSchema` impls, and an `include_bytes!`
/// of each file so that editing one rebuilds the crate.
#[cfg(test)]
pub fn generate(files: &[SchemaFile]) -> Result<TokenStream, Vec<String>> {
    let (schemas, texts) = folder::parse(files)?;
    generate_parsed(files, &schemas, &texts)
}

fn generate_parsed(
    files: &[SchemaFile],
    schemas: &[apache_avro::Schema],
    texts: &[String],
) -> Result<TokenStream, Vec<String>> {
    let model = model::Model::build(files, schemas)?;
    let mut gen = codegen::Generator::new(files, &model);
    let mut out = TokenStream::new();
    for (index, (file, schema)) in files.iter().zip(schemas).enumerate() {
        let path = file.path.to_string_lossy().into_owned();
        out.extend(quote! { const _: &[u8] = ::core::include_bytes!(#path); });
        gen.event(index, schema, &texts[index]);
    }
    out.extend(gen.finish());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The code generated for each feature's schemas (`snapshots/<feature>/*.avsc`), compared
    /// with its reviewed copy `snapshots/<feature>.rs.txt` (`KAUFMANN_UPDATE_SNAPSHOTS=1` rewrites
    /// them for review). Every feature is checked before the test fails, naming those that differ.
    #[test]
    fn generated_code_matches_the_snapshot_of_each_feature() {
        let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/schemas/snapshots");
        let mut features: Vec<_> = std::fs::read_dir(&snapshots)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_dir())
            .collect();
        features.sort();
        assert!(features.len() >= 8, "{features:?}");
        let mut differ = Vec::new();
        for folder in features {
            let feature = folder.file_name().unwrap().to_string_lossy().into_owned();
            let (files, errors) = super::folder::load_each(&folder, &feature).unwrap();
            assert!(errors.is_empty(), "{feature}: {errors:?}");
            let tokens = super::generate(&files).unwrap();
            let file: syn::File = syn::parse2(tokens).unwrap();
            let prefix = folder.to_string_lossy().into_owned();
            let code = prettyplease::unparse(&file).replace(&prefix, "<snapshots>");
            let snapshot = snapshots.join(format!("{feature}.rs.txt"));
            if std::env::var_os("KAUFMANN_UPDATE_SNAPSHOTS").is_some() {
                std::fs::write(&snapshot, &code).unwrap();
            }
            if std::fs::read_to_string(&snapshot).unwrap_or_default() != code {
                eprintln!("--- {feature}: generated ---\n{code}");
                differ.push(feature);
            }
        }
        assert!(
            differ.is_empty(),
            "the generated code differs from the snapshots of {differ:?}; review the change and \
             run with KAUFMANN_UPDATE_SNAPSHOTS=1 to accept it"
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
        let result = super::load_all(&dir, "schemas");
        std::fs::remove_dir_all(&dir).unwrap();
        result.map_err(|errors| errors.join("\n"))
    }

    fn generate_one(name: &str, schema: &str) -> Result<proc_macro2::TokenStream, String> {
        generate_files(&[(name, schema)])
    }

    #[test]
    fn a_second_use_of_a_logical_fixed_is_refused() {
        let err = generate_one(
            "event.money",
            r#"{"type": "record", "name": "money", "namespace": "event", "fields": [
                {"name": "a", "type": {"type": "fixed", "name": "Money", "size": 8,
                    "logicalType": "decimal", "precision": 10, "scale": 2}},
                {"name": "b", "type": "Money"}]}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "schemas/event.money.avsc: `event.Money` is a `fixed` with a logical type"
            ),
            "{err}"
        );
    }

    #[test]
    fn fields_that_become_the_same_rust_field_are_refused() {
        let err = generate_one(
            "event.twins",
            r#"{"type": "record", "name": "twins", "namespace": "event", "fields": [
                {"name": "userId", "type": "string"}, {"name": "user_id", "type": "string"}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("fields `userId` and `user_id`"), "{err}");
    }

    /// Every Avro name is a Rust name: `_`, the keywords that cannot be raw identifiers and the
    /// ones that can, as fields and as enum symbols.
    #[test]
    fn every_avro_name_becomes_a_rust_name() {
        let fields: Vec<String> = ["_", "self", "super", "crate", "type", "fn", "_x"]
            .iter()
            .map(|name| format!(r#"{{"name": "{name}", "type": "string"}}"#))
            .collect();
        let schema = format!(
            r#"{{"type": "record", "name": "names", "namespace": "event", "fields": [{},
                {{"name": "kind", "type": {{"type": "enum", "name": "Kind",
                    "symbols": ["_", "self", "type", "A_"]}}}}]}}"#,
            fields.join(", ")
        );
        let tokens = generate_one("event.names", &schema).unwrap();
        let file: syn::File = syn::parse2(tokens).unwrap();
        let code = prettyplease::unparse(&file);
        for rust in [
            "pub __: ",
            "pub self_: ",
            "pub super_: ",
            "pub crate_: ",
            "pub r#type: ",
            "pub r#fn: ",
            "Self_,",
        ] {
            assert!(code.contains(rust), "{rust} in\n{code}");
        }
    }

    #[test]
    fn a_record_not_named_for_its_file_is_refused() {
        let err = generate_one(
            "command.a.thing",
            r#"{"type": "record", "name": "other_thing", "namespace": "command.a", "fields": []}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "schemas/command.a.thing.avsc: the file is named for event `command.a.thing` but \
                 defines record `command.a.other_thing`"
            ),
            "{err}"
        );
        assert!(
            err.contains("rename the file to `command.a.other_thing.avsc`"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_of_the_folder_is_reported() {
        let err = generate_files(&[
            (
                "event.one",
                r#"{"type": "record", "name": "x", "fields": []}"#,
            ),
            ("event.two", "{"),
            (
                "event.three",
                r#"{"type": "record", "name": "three", "namespace": "event",
                "fields": [{"name": "a", "type": "nope"}]}"#,
            ),
        ])
        .unwrap_err();
        for file in ["event.one", "event.two", "event.three"] {
            assert!(
                err.contains(&format!("schemas/{file}.avsc: ")),
                "{file} in {err}"
            );
        }
        assert!(
            err.contains("line 1 column 1"),
            "JSON errors say where: {err}"
        );
    }

    #[test]
    fn a_top_level_that_is_not_a_record_is_refused() {
        let err = generate_one("event.plain", r#""string""#).unwrap_err();
        assert!(err.contains("must be a record"), "{err}");
        let err = generate_one(
            "event.bad",
            r#"{"type": "record", "name": "bad", "namespace": "event", "fields": [{"name": "a", "type": "nope"}]}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("schemas/event.bad.avsc: invalid Avro schema"),
            "{err}"
        );
    }

    #[test]
    fn a_type_defined_differently_in_two_files_is_refused() {
        let with = |name: &str, field: &str| {
            format!(
                r#"{{"type": "record", "name": "{name}", "namespace": "event", "fields": [
                    {{"name": "a", "type": {{"type": "record", "name": "Shared", "namespace": "n",
                        "fields": [{{"name": "{field}", "type": "string"}}]}}}}]}}"#
            )
        };
        let result = generate_files(&[
            ("event.one", &with("one", "x")),
            ("event.two", &with("two", "y")),
        ]);
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
        let (files, _) = super::folder::load_each(&folder, "schemas").unwrap();
        let err = super::generate(&files).unwrap_err().join("\n");
        assert!(err.contains("schemas/com.acme.billing.A.avsc"), "{err}");
        assert!(err.contains("schemas/com.acme.shipping.B.avsc"), "{err}");
    }
}
