//! Rust items for Avro schemas: records -> structs, enums -> enums, `["null", T]` -> `Option<T>`.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use serde_json::{Map, Value};

use super::SchemaFile;
use crate::naming;

/// Generates items, remembering named types (by full name) across files.
#[derive(Default)]
pub struct Generator {
    named: HashMap<String, String>,
}

/// A field's Rust type and the serde attribute it needs, if any.
struct FieldType {
    ty: TokenStream,
    serde_with: Option<&'static str>,
}

impl Generator {
    /// The items of one schema file plus its `EventSchema` impl.
    pub fn event(&mut self, file: &SchemaFile) -> Result<TokenStream, String> {
        let Value::Object(top) = &file.json else {
            return Err("the top-level schema of an event must be a record".to_owned());
        };
        if top.get("type").and_then(Value::as_str) != Some("record") {
            return Err("the top-level schema of an event must be a record".to_owned());
        }
        let rust_name = naming::type_name(&file.event);
        let mut items = TokenStream::new();
        self.record(top, None, Some(&rust_name), &mut items)?;
        let ident = format_ident!("{}", rust_name);
        let event = &file.event;
        let text = &file.text;
        items.extend(quote! {
            impl ::kaufmann::EventSchema for #ident {
                const EVENT_NAME: &'static str = #event;
                const SCHEMA_JSON: &'static str = #text;
                fn schema() -> &'static ::kaufmann::__private::apache_avro::Schema {
                    static CELL: ::kaufmann::__private::OnceLock<::kaufmann::__private::apache_avro::Schema> =
                        ::kaufmann::__private::OnceLock::new();
                    ::kaufmann::__private::parse_validated(&CELL, Self::EVENT_NAME, Self::SCHEMA_JSON)
                }
                fn canonical_form() -> &'static str {
                    static CELL: ::kaufmann::__private::OnceLock<::std::string::String> =
                        ::kaufmann::__private::OnceLock::new();
                    ::kaufmann::__private::canonical_once(&CELL, Self::schema())
                }
            }
        });
        Ok(items)
    }

    fn record(
        &mut self,
        schema: &Map<String, Value>,
        namespace: Option<&str>,
        rust_name: Option<&str>,
        items: &mut TokenStream,
    ) -> Result<String, String> {
        let (full, ns) = full_name(schema, namespace)?;
        let rust_name = rust_name.map_or_else(|| naming::type_name(simple(&full)), str::to_owned);
        self.named.insert(full.clone(), rust_name.clone());
        let fields = schema
            .get("fields")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("record `{full}` has no `fields` array"))?;
        let mut out_fields = Vec::new();
        for field in fields {
            let name = field
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("a field of record `{full}` has no name"))?;
            let ty = field
                .get("type")
                .ok_or_else(|| format!("field `{name}` of record `{full}` has no type"))?;
            let FieldType { ty, serde_with } = self.field_type(ty, ns.as_deref(), items)?;
            let ident = naming::ident(&naming::field_name(name));
            let doc = doc_attr_or(
                field.as_object().unwrap_or(&Map::new()),
                &format!("The Avro field `{name}`."),
            );
            let with = serde_with.map(|path| quote! { #[serde(with = #path)] });
            out_fields.push(quote! {
                #doc
                #[serde(rename = #name)]
                #with
                pub #ident: #ty
            });
        }
        let ident = format_ident!("{}", rust_name);
        let doc = doc_attr_or(schema, &format!("The Avro record `{full}`."));
        items.extend(quote! {
            #doc
            #[derive(Debug, Clone, PartialEq, ::kaufmann::__private::serde::Serialize, ::kaufmann::__private::serde::Deserialize)]
            #[serde(crate = "::kaufmann::__private::serde")]
            pub struct #ident {
                #(#out_fields,)*
            }
        });
        Ok(rust_name)
    }

    fn enumeration(
        &mut self,
        schema: &Map<String, Value>,
        namespace: Option<&str>,
        items: &mut TokenStream,
    ) -> Result<String, String> {
        let (full, _) = full_name(schema, namespace)?;
        let rust_name = naming::type_name(simple(&full));
        self.named.insert(full.clone(), rust_name.clone());
        let symbols = schema
            .get("symbols")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("enum `{full}` has no `symbols` array"))?;
        let variants = symbols.iter().filter_map(Value::as_str).map(|symbol| {
            let ident = format_ident!("{}", naming::type_name(symbol));
            quote! { #[serde(rename = #symbol)] #ident }
        });
        let ident = format_ident!("{}", rust_name);
        let doc = doc_attr_or(schema, &format!("The Avro enum `{full}`."));
        items.extend(quote! {
            #doc
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::kaufmann::__private::serde::Serialize, ::kaufmann::__private::serde::Deserialize)]
            #[serde(crate = "::kaufmann::__private::serde")]
            pub enum #ident {
                #(#variants,)*
            }
        });
        Ok(rust_name)
    }

    fn field_type(
        &mut self,
        schema: &Value,
        namespace: Option<&str>,
        items: &mut TokenStream,
    ) -> Result<FieldType, String> {
        let plain = |ty: TokenStream| FieldType {
            ty,
            serde_with: None,
        };
        match schema {
            Value::String(name) => self.named_or_primitive(name, namespace),
            Value::Array(branches) => {
                let non_null: Vec<&Value> = branches
                    .iter()
                    .filter(|b| b.as_str() != Some("null"))
                    .collect();
                if branches.len() == 2 && non_null.len() == 1 {
                    let inner = self.field_type(non_null[0], namespace, items)?;
                    let ty = inner.ty;
                    let serde_with = inner
                        .serde_with
                        .map(|_| "::kaufmann::__private::apache_avro::serde_avro_bytes_opt");
                    Ok(FieldType {
                        ty: quote! { ::core::option::Option<#ty> },
                        serde_with,
                    })
                } else {
                    Err(format!(
                        "the union {schema} is not supported yet: only [\"null\", T] unions are"
                    ))
                }
            }
            Value::Object(map) => match map.get("type").and_then(Value::as_str) {
                Some("record") => {
                    let name = self.record(map, namespace, None, items)?;
                    let ident = format_ident!("{}", name);
                    Ok(plain(quote! { #ident }))
                }
                Some("enum") => {
                    let name = self.enumeration(map, namespace, items)?;
                    let ident = format_ident!("{}", name);
                    Ok(plain(quote! { #ident }))
                }
                Some("array") => {
                    let items_schema = map.get("items").ok_or("an array has no `items`")?;
                    let inner = self.field_type(items_schema, namespace, items)?;
                    no_bytes_inside(&inner, "array")?;
                    let ty = inner.ty;
                    Ok(plain(quote! { ::std::vec::Vec<#ty> }))
                }
                Some("map") => {
                    let values = map.get("values").ok_or("a map has no `values`")?;
                    let inner = self.field_type(values, namespace, items)?;
                    no_bytes_inside(&inner, "map")?;
                    let ty = inner.ty;
                    Ok(plain(
                        quote! { ::std::collections::HashMap<::std::string::String, #ty> },
                    ))
                }
                Some("fixed") => Err("`fixed` types are not supported yet".to_owned()),
                Some(other) => self.named_or_primitive(other, namespace),
                None => Err(format!("the schema {schema} has no `type`")),
            },
            _ => Err(format!("{schema} is not an Avro schema")),
        }
    }

    fn named_or_primitive(&self, name: &str, namespace: Option<&str>) -> Result<FieldType, String> {
        let plain = |ty: TokenStream| {
            Ok(FieldType {
                ty,
                serde_with: None,
            })
        };
        match name {
            "null" => plain(quote! { () }),
            "boolean" => plain(quote! { bool }),
            "int" => plain(quote! { i32 }),
            "long" => plain(quote! { i64 }),
            "float" => plain(quote! { f32 }),
            "double" => plain(quote! { f64 }),
            "string" => plain(quote! { ::std::string::String }),
            "bytes" => Ok(FieldType {
                ty: quote! { ::std::vec::Vec<u8> },
                serde_with: Some("::kaufmann::__private::apache_avro::serde_avro_bytes"),
            }),
            reference => {
                let full = if reference.contains('.') {
                    reference.to_owned()
                } else {
                    namespace.map_or_else(|| reference.to_owned(), |ns| format!("{ns}.{reference}"))
                };
                let rust = self
                    .named
                    .get(&full)
                    .or_else(|| self.named.get(reference))
                    .ok_or_else(|| {
                        format!("unknown type `{reference}`: define it before it is used")
                    })?;
                let ident = format_ident!("{}", rust);
                plain(quote! { #ident })
            }
        }
    }
}

fn no_bytes_inside(inner: &FieldType, container: &str) -> Result<(), String> {
    match inner.serde_with {
        None => Ok(()),
        Some(_) => Err(format!(
            "`bytes` inside an {container} is not supported yet"
        )),
    }
}

/// The full name of a named schema and the namespace its children inherit.
fn full_name(
    schema: &Map<String, Value>,
    enclosing: Option<&str>,
) -> Result<(String, Option<String>), String> {
    let name = schema
        .get("name")
        .and_then(Value::as_str)
        .ok_or("a named type has no `name`")?;
    let full = if name.contains('.') {
        name.to_owned()
    } else {
        match schema
            .get("namespace")
            .and_then(Value::as_str)
            .or(enclosing)
        {
            Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
            _ => name.to_owned(),
        }
    };
    let ns = full.rsplit_once('.').map(|(ns, _)| ns.to_owned());
    Ok((full, ns))
}

fn simple(full: &str) -> &str {
    full.rsplit_once('.').map_or(full, |(_, s)| s)
}

fn doc_attr_or(schema: &Map<String, Value>, fallback: &str) -> TokenStream {
    let doc = schema
        .get("doc")
        .and_then(Value::as_str)
        .unwrap_or(fallback);
    quote! { #[doc = #doc] }
}
