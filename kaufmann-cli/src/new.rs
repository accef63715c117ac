//! `kaufmann new`: writes a new service crate (a schemas folder with a command and the event its
//! handler publishes, the handler, `run!()`, a test-bus test and a README) that builds and passes
//! its test as written.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The longest crate name `new` accepts.
pub const MAX_NAME: usize = 64;

/// The files of a new service: path in the crate, template. `{{crate}}` is the crate name,
/// `{{lib}}` its library's name in Rust paths, `{{kaufmann}}` the path of the kaufmann crate.
pub const TEMPLATE: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/new/Cargo.toml.in")),
    (".gitignore", include_str!("../templates/new/gitignore.in")),
    ("README.md", include_str!("../templates/new/README.md.in")),
    (
        "schemas/command.greet.avsc",
        include_str!("../templates/new/schemas/command.greet.avsc"),
    ),
    (
        "schemas/event.greeted.avsc",
        include_str!("../templates/new/schemas/event.greeted.avsc"),
    ),
    ("src/lib.rs", include_str!("../templates/new/src/lib.rs")),
    ("src/main.rs", include_str!("../templates/new/src/main.rs")),
    (
        "tests/greet.rs",
        include_str!("../templates/new/tests/greet.rs"),
    ),
];

/// Names a new crate may not take: Rust's keywords and the crates a service links by name.
const RESERVED: &[&str] = &[
    "kaufmann",
    "tokio",
    "std",
    "core",
    "alloc",
    "proc_macro",
    "test",
    "self",
    "super",
    "crate",
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "static",
    "struct",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "gen",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
];

/// Why `new` wrote nothing (or stopped part way, naming the file).
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// The crate name is not one Cargo and Rust accept.
    #[error(
        "`{name}` is not a crate name: use 1 to {MAX_NAME} ASCII letters, digits, `-` or `_`, \
         starting with a letter (pass --name when the folder's name is not one)"
    )]
    BadName {
        /// The refused name.
        name: String,
    },
    /// The crate name is a Rust keyword or a crate the service depends on.
    #[error(
        "`{name}` is reserved (a Rust keyword or a crate the service links); choose another name"
    )]
    Reserved {
        /// The refused name.
        name: String,
    },
    /// The folder exists and is not empty.
    #[error("{} exists and is not empty; `kaufmann new` writes only into a new or empty folder", .dir.display())]
    NotEmpty {
        /// The folder.
        dir: PathBuf,
    },
    /// The kaufmann crate to depend on was not found.
    #[error(
        "{} is not the kaufmann crate (no Cargo.toml naming package `kaufmann`); pass \
         --kaufmann-path with the `kaufmann` folder of your clone of the repository",
        .path.display()
    )]
    NoKaufmann {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The crate name `dir` gives (its last component) unless `name` is given, checked.
pub fn crate_name(dir: &Path, name: Option<&str>) -> Result<String, NewError> {
    let name = match name {
        Some(name) => name.to_owned(),
        None => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let well_formed = name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !well_formed {
        return Err(NewError::BadName { name });
    }
    if RESERVED.contains(&name.replace('-', "_").to_ascii_lowercase().as_str()) {
        return Err(NewError::Reserved { name });
    }
    Ok(name)
}

/// The kaufmann crate at `path` (the crate's folder or a clone of the repository), made absolute.
pub fn kaufmann_crate(path: &Path) -> Result<PathBuf, NewError> {
    let missing = || NewError::NoKaufmann {
        path: path.to_owned(),
    };
    let candidates = [path.to_owned(), path.join("kaufmann")];
    let found = candidates
        .iter()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|manifest| {
                manifest
                    .lines()
                    .any(|line| line.replace(' ', "") == "name=\"kaufmann\"")
            })
        })
        .ok_or_else(missing)?;
    found.canonicalize().map_err(|_| missing())
}

/// Writes the new service `name` into `dir` (created; it must not exist or be empty), depending
/// on the kaufmann crate at `kaufmann` (absolute). Never overwrites a file. The paths written.
pub fn write_service(dir: &Path, name: &str, kaufmann: &Path) -> Result<Vec<PathBuf>, NewError> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| NewError::Write { path, source }
    };
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(NewError::NotEmpty {
                dir: dir.to_owned(),
            });
        }
    }
    let lib = name.replace('-', "_");
    // TOML basic strings: the path's backslashes and quotes escaped.
    let kaufmann = kaufmann
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let mut written = Vec::new();
    for (file, template) in TEMPLATE {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(failed(parent))?;
        }
        let text = template
            .replace("{{crate}}", name)
            .replace("{{lib}}", &lib)
            .replace("{{kaufmann}}", &kaufmann);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut out| out.write_all(text.as_bytes()))
            .map_err(failed(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_cargo_and_rust() {
        let dir = Path::new("services/hello-kaufmann");
        assert_eq!(crate_name(dir, None).unwrap(), "hello-kaufmann");
        assert_eq!(crate_name(dir, Some("billing_v2")).unwrap(), "billing_v2");
        for bad in [
            "",
            "2fast",
            "has space",
            "dots.in",
            "ü",
            &"a".repeat(MAX_NAME + 1),
        ] {
            assert!(
                matches!(crate_name(dir, Some(bad)), Err(NewError::BadName { .. })),
                "{bad}"
            );
        }
        for reserved in ["kaufmann", "tokio", "fn", "Self", "proc-macro"] {
            assert!(
                matches!(
                    crate_name(dir, Some(reserved)),
                    Err(NewError::Reserved { .. })
                ),
                "{reserved}"
            );
        }
    }
}
