//! `schemas!("dir")`: load every `.avsc` file of a folder and generate typed items.

mod codegen;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use apache_avro::Schema;
use proc_macro2::TokenStream;
use quote::quote;
use serde_json::Value;

/// One schema file, read and checked as JSON.
pub struct SchemaFile {
    /// The absolute path (for `include_bytes!`).
    pub path: PathBuf,
    /// The path as the user wrote it: the macro's folder argument joined with the file name.
    pub shown: String,
    /// The event name: the file name without `.avsc`.
    pub event: String,
    /// The file's text.
    pub text: String,
    /// The file parsed as JSON.
    pub json: Value,
}

pub fn expand(dir: &syn::LitStr) -> syn::Result<TokenStream> {
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(PathBuf::new, PathBuf::from);
    load(&root.join(dir.value()), &dir.value())
        .and_then(|files| generate(&files))
        .map_err(|msg| syn::Error::new_spanned(dir, msg))
}

/// The items for a set of schema files: their types, `EventSchema` impls, and an `include_bytes!`
/// of each file so that editing one rebuilds the crate.
pub fn generate(files: &[SchemaFile]) -> Result<TokenStream, String> {
    let (schemas, texts) = parse(files)?;
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

/// Reads the `.avsc` files of `folder`, sorted by name; `shown` is the folder as the user wrote it.
pub fn load(folder: &Path, shown: &str) -> Result<Vec<SchemaFile>, String> {
    let entries = std::fs::read_dir(folder).map_err(|err| {
        format!(
            "cannot read the schemas folder `{shown}` ({}); the path is relative to the folder of Cargo.toml",
            err.kind()
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "avsc"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("the schemas folder `{shown}` has no `.avsc` files"));
    }
    paths.iter().map(|p| read(shown, p)).collect()
}

fn read(dir: &str, path: &Path) -> Result<SchemaFile, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let shown = format!("{}/{name}", dir.trim_end_matches('/'));
    let err = |msg: String| format!("{shown}: {msg}");
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| err(format!("invalid JSON: {e}")))?;
    if json.get("type").and_then(Value::as_str) != Some("record") {
        return Err(err(
            "the top-level schema of an event must be a record (`\"type\": \"record\"`)".to_owned(),
        ));
    }
    let event = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(SchemaFile {
        path: path.to_path_buf(),
        shown,
        event,
        text,
        json,
    })
}

/// Parses each file on its own after writing out, where first used, the named types it takes
/// from other files of the folder; returns the schemas and the texts to register.
fn parse(files: &[SchemaFile]) -> Result<(Vec<Schema>, Vec<String>), String> {
    let mut found = HashMap::new();
    let mut clash = None;
    for (index, file) in files.iter().enumerate() {
        let mut json = file.json.clone();
        let mut collect = Defs::Collect {
            found: &mut found,
            file: index,
            clash: &mut clash,
        };
        walk(&mut json, None, &mut HashSet::new(), &mut collect);
    }
    if let Some((full, first, second)) = clash {
        return Err(format!(
            "`{full}` is defined differently in {} and in {}; define it once and refer to it by name",
            files[first].shown, files[second].shown
        ));
    }
    let defs: HashMap<String, Value> = found.into_iter().map(|(k, (v, _))| (k, v)).collect();
    let mut schemas = Vec::with_capacity(files.len());
    let mut texts = Vec::with_capacity(files.len());
    for file in files {
        let mut json = file.json.clone();
        let mut inlined = false;
        walk(
            &mut json,
            None,
            &mut HashSet::new(),
            &mut Defs::Inline(&defs, &mut inlined),
        );
        let text = if inlined {
            json.to_string()
        } else {
            file.text.clone()
        };
        let schema = Schema::parse_str(&text)
            .map_err(|e| format!("{}: invalid Avro schema: {e}", file.shown))?;
        schemas.push(schema);
        texts.push(text);
    }
    Ok((schemas, texts))
}

/// What [`walk`] does with named types: collect their definitions (by full name, with an explicit
/// namespace), or write them out where a schema first uses one it does not define.
enum Defs<'a> {
    Collect {
        /// Each definition and the file it was first found in.
        found: &'a mut HashMap<String, (Value, usize)>,
        file: usize,
        /// A type defined differently in two files: its name and both files.
        clash: &'a mut Option<(String, usize, usize)>,
    },
    Inline(&'a HashMap<String, Value>, &'a mut bool),
}

const PRIMITIVES: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// Walks a schema's JSON in definition order; `seen` holds the full names defined so far.
fn walk(json: &mut Value, namespace: Option<&str>, seen: &mut HashSet<String>, defs: &mut Defs) {
    match json {
        Value::String(name) if !PRIMITIVES.contains(&name.as_str()) => {
            let Defs::Inline(known, inlined) = defs else {
                return;
            };
            let qualified = qualify(name, namespace);
            let full = if known.contains_key(&qualified) {
                qualified
            } else {
                name.clone()
            };
            if seen.contains(&full) {
                return;
            }
            if let Some(def) = known.get(&full) {
                *json = def.clone();
                **inlined = true;
                walk(json, namespace, seen, defs);
            }
        }
        Value::Array(branches) => {
            for branch in branches {
                walk(branch, namespace, seen, defs);
            }
        }
        Value::Object(map) => {
            let kind = map.get("type").cloned().unwrap_or(Value::Null);
            match kind.as_str() {
                Some(kind @ ("record" | "error" | "enum" | "fixed")) => {
                    let Some(simple) = map.get("name").and_then(Value::as_str).map(str::to_owned)
                    else {
                        return;
                    };
                    let explicit = map.get("namespace").and_then(Value::as_str);
                    let full = qualify(&simple, explicit.or(namespace));
                    let own_ns = full.rsplit_once('.').map(|(ns, _)| ns.to_owned());
                    seen.insert(full.clone());
                    if kind == "record" || kind == "error" {
                        if let Some(Value::Array(fields)) = map.get_mut("fields") {
                            for field in fields {
                                if let Some(ty) = field.get_mut("type") {
                                    walk(ty, own_ns.as_deref(), seen, defs);
                                }
                            }
                        }
                    }
                    if let Defs::Collect { found, file, clash } = defs {
                        let mut def = Value::Object(map.clone());
                        if let Some(ns) = &own_ns {
                            def["name"] = Value::String(
                                full.rsplit_once('.')
                                    .map_or(simple.as_str(), |(_, s)| s)
                                    .to_owned(),
                            );
                            def["namespace"] = Value::String(ns.clone());
                        }
                        match found.get(&full) {
                            Some((first, first_file)) if *first != def && clash.is_none() => {
                                **clash = Some((full, *first_file, *file));
                            }
                            Some(_) => {}
                            None => {
                                found.insert(full, (def, *file));
                            }
                        }
                    }
                }
                Some("array") => {
                    if let Some(items) = map.get_mut("items") {
                        walk(items, namespace, seen, defs);
                    }
                }
                Some("map") => {
                    if let Some(values) = map.get_mut("values") {
                        walk(values, namespace, seen, defs);
                    }
                }
                // `{"type": "string", "logicalType": ..}` or `{"type": "Address"}`.
                _ => {
                    if let Some(ty) = map.get_mut("type") {
                        walk(ty, namespace, seen, defs);
                    }
                }
            }
        }
        _ => {}
    }
}

fn qualify(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
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
