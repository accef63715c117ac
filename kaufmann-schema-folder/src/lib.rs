//! Reading a folder of `.avsc` files: one schema per event, named types shared across files; the
//! compatibility levels ([`compatibility`]) and the folder's `schemas.lock` ([`lock`]).
//!
//! Shared by `kaufmann` (the levels, for its registries), `kaufmann-macros` (for `schemas!`, at
//! build time) and `kaufmann-cli` (for the `kaufmann schemas` commands, at run time), so that all
//! read a folder and judge a change by the same rules. It uses only `std`, `serde_json`,
//! `thiserror` and `apache_avro`.

pub mod compatibility;
pub mod lock;

pub use compatibility::Compatibility;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use apache_avro::Schema;
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

/// Reads the `.avsc` files of `folder`, sorted by name (`shown`: the folder as the user wrote
/// it): the files that read well, and the problems of the others, each naming its file (so that
/// the later checks of the good files can be reported with them); an error when the folder itself
/// cannot be read.
pub fn load_each(folder: &Path, shown: &str) -> Result<(Vec<SchemaFile>, Vec<String>), String> {
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
    let mut files = Vec::with_capacity(paths.len());
    let mut errors = Vec::new();
    for path in &paths {
        match read(shown, path) {
            Ok(file) => files.push(file),
            Err(error) => errors.push(error),
        }
    }
    Ok((files, errors))
}

/// The full name of a record's JSON: `namespace.name`, or `name` when it has dots or no namespace.
fn full_name(json: &Value) -> Option<String> {
    let name = json.get("name").and_then(Value::as_str)?;
    Some(qualify(name, json.get("namespace").and_then(Value::as_str)))
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
    // One name everywhere: the file, the event, the generated type and the registered schema.
    match full_name(&json) {
        Some(full) if full == event => {}
        Some(full) => {
            let (namespace, name) = event.rsplit_once('.').unwrap_or(("", &event));
            return Err(err(format!(
                "the file is named for event `{event}` but defines record `{full}`; an event's \
                 record has the event's name: rename the file to `{full}.avsc`, or the record to \
                 `\"name\": \"{name}\", \"namespace\": \"{namespace}\"`"
            )));
        }
        None => return Err(err("the record has no `\"name\"`".to_owned())),
    }
    Ok(SchemaFile {
        path: path.to_path_buf(),
        shown,
        event,
        text,
        json,
    })
}

/// The files of a folder, parsed: [`load_each`] and [`parse`], with the problems of both (sorted
/// by file).
pub type Parsed = (Vec<SchemaFile>, Vec<Schema>, Vec<String>);

/// Reads and parses every `.avsc` file of `folder`; the error lists every problem found.
pub fn read_all(folder: &Path, shown: &str) -> Result<Parsed, Vec<String>> {
    let (files, mut errors) = load_each(folder, shown).map_err(|e| vec![e])?;
    match parse(&files) {
        Ok((schemas, texts)) if errors.is_empty() => Ok((files, schemas, texts)),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            errors.sort();
            Err(errors)
        }
    }
}

/// Parses each file on its own after writing out, where first used, the named types it takes
/// from other files of the folder; returns the schemas and the texts to register, or every
/// problem found (one per file at most).
pub fn parse(files: &[SchemaFile]) -> Result<(Vec<Schema>, Vec<String>), Vec<String>> {
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
        return Err(vec![format!(
            "`{full}` is defined differently in {} and in {}; define it once and refer to it by name",
            files[first].shown, files[second].shown
        )]);
    }
    let defs: HashMap<String, Value> = found.into_iter().map(|(k, (v, _))| (k, v)).collect();
    let mut schemas = Vec::with_capacity(files.len());
    let mut texts = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
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
        match Schema::parse_str(&text) {
            Ok(schema) => {
                schemas.push(schema);
                texts.push(text);
            }
            Err(e) => errors.push(format!("{}: invalid Avro schema: {e}", file.shown)),
        }
    }
    if errors.is_empty() {
        Ok((schemas, texts))
    } else {
        Err(errors)
    }
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
