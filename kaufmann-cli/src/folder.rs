//! Reading a schemas folder at run time (for the `kaufmann schemas` CLI), by the same rules as
//! `schemas!`: one event per `.avsc` file, named after the file; named types defined in one file
//! may be used by the others, and each event's schema has them written out where first used.

use std::path::Path;

use apache_avro::Schema;

use kaufmann_schema_folder as shared;

/// One event's schema, as the folder defines it.
#[derive(Debug, Clone)]
pub struct FolderSchema {
    /// The event name (the file name without `.avsc`).
    pub event: String,
    /// The file, as `<folder>/<name>.avsc`.
    pub file: String,
    /// The schema, self-contained.
    pub schema: Schema,
}

/// Reads every `.avsc` file of `folder`, sorted by name; the error lists every problem, one a line,
/// each naming its file.
pub fn read_folder(folder: &Path) -> Result<Vec<FolderSchema>, String> {
    let shown = folder.display().to_string();
    let (files, schemas, _) = shared::read_all(folder, &shown).map_err(|e| e.join("\n"))?;
    Ok(files
        .into_iter()
        .zip(schemas)
        .map(|(file, schema)| FolderSchema {
            event: file.event,
            file: file.shown,
            schema,
        })
        .collect())
}
