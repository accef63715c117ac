//! `schemas!("dir")`: load every `.avsc` file of a folder and generate typed items.

mod codegen;

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::quote;

/// One schema file, read and parsed.
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
    pub json: serde_json::Value,
}

pub fn expand(dir: &syn::LitStr) -> syn::Result<TokenStream> {
    let files = load(dir)?;
    let mut out = TokenStream::new();
    let mut gen = codegen::Generator::default();
    for file in &files {
        let path = file.path.to_string_lossy().into_owned();
        out.extend(quote! { const _: &[u8] = ::core::include_bytes!(#path); });
        out.extend(
            gen.event(file)
                .map_err(|msg| syn::Error::new_spanned(dir, format!("{}: {msg}", file.shown)))?,
        );
    }
    Ok(out)
}

/// Finds the folder from `CARGO_MANIFEST_DIR` and reads its `.avsc` files, sorted by name.
pub fn load(dir: &syn::LitStr) -> syn::Result<Vec<SchemaFile>> {
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(PathBuf::new, PathBuf::from);
    let folder = root.join(dir.value());
    let entries = std::fs::read_dir(&folder).map_err(|err| {
        syn::Error::new_spanned(
            dir,
            format!(
                "cannot read the schemas folder `{}` ({}); the path is relative to the folder of Cargo.toml",
                dir.value(),
                err.kind()
            ),
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "avsc"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(syn::Error::new_spanned(
            dir,
            format!("the schemas folder `{}` has no `.avsc` files", dir.value()),
        ));
    }
    paths.iter().map(|p| read(dir, p)).collect()
}

fn read(dir: &syn::LitStr, path: &Path) -> syn::Result<SchemaFile> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let shown = format!("{}/{name}", dir.value().trim_end_matches('/'));
    let err = |msg: String| syn::Error::new_spanned(dir, format!("{shown}: {msg}"));
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("invalid JSON: {e}")))?;
    apache_avro::Schema::parse_str(&text).map_err(|e| err(format!("invalid Avro schema: {e}")))?;
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
