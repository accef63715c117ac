//! The check of a folder against its `schemas.lock` (beside it): a schema that breaks its event's
//! compatibility level with the locked versions is an error naming the file, the field and the
//! rule; one changed compatibly, or not locked yet, is a warning (an error under `strict`).

use apache_avro::Schema;
use kaufmann_schema_folder::lock::{self, Lock, Standing};
use kaufmann_schema_folder::SchemaFile;
use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;

/// What the lock says of the folder.
#[derive(Default)]
pub struct Checked {
    /// Errors: breaks, a bad lock, and (under `strict`) schemas not locked.
    pub errors: Vec<String>,
    /// Notes to warn with: schemas not locked.
    pub notes: Vec<String>,
    /// The lock file, when there is one (it is an input of the build).
    pub path: Option<String>,
}

/// Checks each schema of the folder (`shown`: as the user wrote it) against its lock.
pub fn check(
    folder: &std::path::Path,
    shown: &str,
    files: &[SchemaFile],
    schemas: &[Schema],
    strict: bool,
) -> Checked {
    let path = lock::path_of(folder);
    let shown_lock = format!("{shown}.lock");
    let mut checked = Checked::default();
    let lock = match Lock::read(&path, &shown_lock) {
        Ok(Some(lock)) => lock,
        Ok(None) => return checked,
        Err(errors) => {
            checked.errors = errors;
            checked.path = Some(path.to_string_lossy().into_owned());
            return checked;
        }
    };
    checked.path = Some(path.to_string_lossy().into_owned());
    for (file, schema) in files.iter().zip(schemas) {
        let (event, shown_file) = (&file.event, &file.shown);
        let unlocked = match lock.standing(event, schema) {
            Standing::Locked => continue,
            Standing::Breaks(breaks) => {
                for broken in breaks {
                    checked.errors.push(format!(
                        "{shown_file}: {broken} (as `{shown_lock}` locks it); keep the change \
                         compatible, or record a deliberate break with `kaufmann schemas lock \
                         --force {event}`"
                    ));
                }
                continue;
            }
            Standing::Compatible(version) => format!(
                "{shown_file} changed since `{shown_lock}` (compatibly: it would be version \
                 {version}); run `kaufmann schemas lock` to record it"
            ),
            Standing::Unlocked => format!(
                "{shown_file} is not in `{shown_lock}` yet; run `kaufmann schemas lock` to record \
                 it"
            ),
        };
        if strict {
            checked
                .errors
                .push(format!("{unlocked} (`strict` refuses schemas not locked)"));
        } else {
            checked.notes.push(unlocked);
        }
    }
    checked
}

/// The items that warn with `notes` at `span` (the folder's literal): a use of a deprecated
/// constant each, the one way a macro warns on stable Rust.
pub fn warnings(notes: &[String], span: Span) -> TokenStream {
    notes
        .iter()
        .map(|note| {
            quote_spanned! {span=>
                const _: () = {
                    #[deprecated(note = #note)]
                    const SCHEMA_NOT_LOCKED: () = ();
                    SCHEMA_NOT_LOCKED
                };
            }
        })
        .collect()
}
