//! Stage 3 of `schemas!`: the expansion. Rust items for the modelled schemas, tokens only: one
//! type per named Avro type, one `enum` per union that is not `["null", T]`, and an `AvroValue`
//! impl for each (see `kaufmann::avro` for the mapping). Every name and every refusal comes from
//! the model; nothing here fails.

use std::collections::HashSet;

use apache_avro::schema::{InnerDecimalSchema, RecordField, RecordSchema, UuidSchema};
use apache_avro::Schema;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::model::Model;
use super::SchemaFile;
use crate::naming;

/// A schema's Rust type and the expressions converting it: `to` reads `x: &T` and yields a
/// `Value` (it may use `?`); `from` reads `v: Value` and yields a `T` (it may use `?`); `read`
/// reads the Avro binary encoding from `r: &mut &[u8]` and yields a `T` (it may use `?`).
struct Mapped {
    ty: TokenStream,
    to: TokenStream,
    from: TokenStream,
    read: TokenStream,
}

/// Generates the items of a set of schema files from their model.
pub struct Generator<'a> {
    files: &'a [SchemaFile],
    model: &'a Model<'a>,
    generated: HashSet<String>,
    /// Full names of the records being generated; the last is the one whose fields are written.
    inside: Vec<String>,
    items: TokenStream,
}

impl<'a> Generator<'a> {
    /// A generator for `files`, as `model` names them.
    pub fn new(files: &'a [SchemaFile], model: &'a Model<'a>) -> Self {
        Generator {
            files,
            model,
            generated: HashSet::new(),
            inside: Vec::new(),
            items: TokenStream::new(),
        }
    }

    /// The items of file `index`: its types and the `EventSchema` impl of its top-level record.
    pub fn event(&mut self, index: usize, schema: &Schema, json: &str) {
        // The model refused any other top-level schema.
        let Schema::Record(record) = schema else {
            return;
        };
        self.record(record);
        let ident = format_ident!("{}", naming::type_name(&self.files[index].event));
        let event = &self.files[index].event;
        let siblings = self.files.iter().map(|f| {
            let (event, ty) = (&f.event, naming::type_name(&f.event));
            quote! { (#event, #ty) }
        });
        self.items.extend(quote! {
            impl ::kaufmann::EventSchema for #ident {
                const EVENT_NAME: &'static str = #event;
                const SCHEMA_JSON: &'static str = #json;
                const SIBLINGS: &'static [(&'static str, &'static str)] = &[#(#siblings),*];
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
            ::kaufmann::__private::inventory::submit! {
                ::kaufmann::__private::KnownEvent::new(
                    #event,
                    <#ident as ::kaufmann::EventSchema>::SCHEMA_JSON,
                )
            }
        });
    }

    /// Everything generated so far.
    pub fn finish(self) -> TokenStream {
        self.items
    }

    fn rust_name(&self, full: &str) -> String {
        self.model.rust_name(full)
    }

    fn record(&mut self, record: &RecordSchema) {
        let full = record.name.fullname(None);
        if !self.generated.insert(full.clone()) {
            return;
        }
        let rust = self.rust_name(&full);
        self.inside.push(full.clone());
        let mut fields = Vec::new();
        let mut to = Vec::new();
        let mut from = Vec::new();
        let mut read = Vec::new();
        for field in &record.fields {
            let name = &field.name;
            let ident = naming::ident(&naming::field_name(name));
            let hint = format!("{rust}{}", naming::type_name(name));
            let Mapped {
                ty,
                to: to_expr,
                from: from_expr,
                read: read_expr,
            } = self.map(&field.schema, &hint, false);
            let doc = field_doc(field);
            fields.push(quote! { #(#[doc = #doc])* pub #ident: #ty });
            to.push(quote! {
                (#name.to_owned(), {
                    let x = &self.#ident;
                    ::kaufmann::__private::conv::in_field(#name, || ::core::result::Result::Ok(#to_expr))?
                })
            });
            from.push(quote! {
                #ident: {
                    let v = fields.take(#name)?;
                    ::kaufmann::__private::conv::in_field(#name, move || ::core::result::Result::Ok(#from_expr))?
                }
            });
            read.push(quote! {
                #ident: ::kaufmann::__private::conv::in_field(#name, || ::core::result::Result::Ok(#read_expr))?
            });
        }
        self.inside.pop();
        let ident = format_ident!("{}", rust);
        let doc = type_doc(
            record.doc.as_deref(),
            "record",
            &full,
            record.aliases.as_ref(),
        );
        self.items.extend(quote! {
            #(#[doc = #doc])*
            #[derive(Debug, Clone, PartialEq)]
            pub struct #ident {
                #(#fields,)*
            }

        });
        self.avro_value_impl(
            &ident,
            &quote! { ::kaufmann::avro::Value::Record(::std::vec![#(#to),*]) },
            &quote! {
                #[allow(unused_mut)]
                let mut fields = ::kaufmann::__private::conv::record(value, #full)?;
                ::core::result::Result::Ok(Self { #(#from,)* })
            },
            // Fields are read in the order written, which is the schema's.
            &quote! { ::core::result::Result::Ok(Self { #(#read,)* }) },
        );
    }

    fn enumeration(&mut self, e: &apache_avro::schema::EnumSchema) {
        let full = e.name.fullname(None);
        if !self.generated.insert(full.clone()) {
            return;
        }
        let ident = format_ident!("{}", self.rust_name(&full));
        let mut variants = Vec::new();
        let mut to = Vec::new();
        let mut from = Vec::new();
        let mut read = Vec::new();
        for (index, symbol) in e.symbols.iter().enumerate() {
            let variant = format_ident!("{}", naming::type_name(symbol));
            // The model refused more symbols than a `u32` counts.
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let doc = format!("The symbol `{symbol}`.");
            variants.push(quote! { #[doc = #doc] #variant });
            to.push(quote! { Self::#variant => ::kaufmann::avro::Value::Enum(#index, #symbol.to_owned()) });
            from.push(quote! { #symbol => ::core::result::Result::Ok(Self::#variant) });
            read.push(quote! { #index => ::core::result::Result::Ok(Self::#variant) });
        }
        let default = e.default.as_ref().map(|symbol| {
            let variant = format_ident!("{}", naming::type_name(symbol));
            quote! {
                /// The schema's default symbol, used for symbols this version does not know.
                impl ::core::default::Default for #ident {
                    fn default() -> Self {
                        Self::#variant
                    }
                }
            }
        });
        let doc = type_doc(e.doc.as_deref(), "enum", &full, e.aliases.as_ref());
        self.items.extend(quote! {
            #(#[doc = #doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum #ident {
                #(#variants,)*
            }

            #default
        });
        self.avro_value_impl(
            &ident,
            &quote! { match self { #(#to,)* } },
            &quote! {
                let (_, symbol) = ::kaufmann::__private::conv::symbol(value)?;
                match symbol.as_str() {
                    #(#from,)*
                    other => ::core::result::Result::Err(::kaufmann::__private::conv::bad_symbol(other, #full)),
                }
            },
            &quote! {
                match ::kaufmann::__private::conv::read_symbol(r)? {
                    #(#read,)*
                    other => ::core::result::Result::Err(::kaufmann::__private::conv::bad_symbol_index(other, #full)),
                }
            },
        );
    }

    fn fixed(&mut self, f: &apache_avro::schema::FixedSchema) {
        let full = f.name.fullname(None);
        if !self.generated.insert(full.clone()) {
            return;
        }
        let ident = format_ident!("{}", self.rust_name(&full));
        let size = proc_macro2::Literal::usize_unsuffixed(f.size);
        let doc = type_doc(f.doc.as_deref(), "fixed", &full, f.aliases.as_ref());
        self.items.extend(quote! {
            #(#[doc = #doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub struct #ident(pub [u8; #size]);
        });
        self.avro_value_impl(
            &ident,
            &quote! { ::kaufmann::avro::Value::Fixed(#size, self.0.to_vec()) },
            &quote! { ::kaufmann::__private::conv::fixed::<#size>(value).map(Self) },
            &quote! { ::kaufmann::__private::conv::read_fixed::<#size>(r).map(Self) },
        );
    }

    /// A reference to the generated type `full`, boxed when it is a record being generated and
    /// nothing (`Vec`, `HashMap`) already stands between.
    fn reference(&self, full: &str, indirect: bool) -> Mapped {
        let ident = format_ident!("{}", self.rust_name(full));
        let inside = self.inside.last().map_or("", String::as_str);
        if !indirect && self.model.needs_box(inside, full) {
            through_trait(quote! { ::std::boxed::Box<#ident> })
        } else {
            through_trait(quote! { #ident })
        }
    }

    /// Maps `schema`; `hint` names a union enum should one be needed; `indirect` is true under an
    /// array or map (no `Box` needed for recursion).
    #[allow(clippy::too_many_lines)]
    fn map(&mut self, schema: &Schema, hint: &str, indirect: bool) -> Mapped {
        let m = |ty: TokenStream, to: TokenStream, from: TokenStream, read: TokenStream| Mapped {
            ty,
            to,
            from,
            read,
        };
        let conv = quote! { ::kaufmann::__private::conv };
        let value = quote! { ::kaufmann::avro::Value };
        match schema {
            Schema::Null => m(
                quote! { () },
                quote! { #value::Null },
                quote! { #conv::null(v)? },
                quote! { () },
            ),
            Schema::Boolean => m(
                quote! { bool },
                quote! { #value::Boolean(*x) },
                quote! { #conv::boolean(v)? },
                quote! { #conv::read_boolean(r)? },
            ),
            Schema::Int => m(
                quote! { i32 },
                quote! { #value::Int(*x) },
                quote! { #conv::int(v)? },
                quote! { #conv::read_int(r)? },
            ),
            Schema::Long => m(
                quote! { i64 },
                quote! { #value::Long(*x) },
                quote! { #conv::long(v)? },
                quote! { #conv::read_long(r)? },
            ),
            Schema::Float => m(
                quote! { f32 },
                quote! { #value::Float(*x) },
                quote! { #conv::float(v)? },
                quote! { #conv::read_float(r)? },
            ),
            Schema::Double => m(
                quote! { f64 },
                quote! { #value::Double(*x) },
                quote! { #conv::double(v)? },
                quote! { #conv::read_double(r)? },
            ),
            Schema::Bytes => m(
                quote! { ::std::vec::Vec<u8> },
                quote! { #value::Bytes(x.clone()) },
                quote! { #conv::bytes(v)? },
                quote! { #conv::read_bytes(r)? },
            ),
            Schema::String => m(
                quote! { ::std::string::String },
                quote! { #value::String(x.clone()) },
                quote! { #conv::string(v)? },
                quote! { #conv::read_string(r)? },
            ),
            Schema::Uuid(inner) => m(
                quote! { ::kaufmann::avro::Uuid },
                quote! { #value::Uuid(*x) },
                quote! { #conv::uuid(v)? },
                match inner {
                    UuidSchema::String => quote! { #conv::read_uuid(r)? },
                    UuidSchema::Fixed(_) | UuidSchema::Bytes => {
                        quote! { #conv::read_uuid_fixed(r)? }
                    }
                },
            ),
            Schema::Date => m(
                quote! { ::kaufmann::avro::chrono::NaiveDate },
                quote! { #conv::date_to(x) },
                quote! { #conv::date(v)? },
                quote! { #conv::date(#value::Date(#conv::read_int(r)?))? },
            ),
            Schema::TimeMillis | Schema::TimeMicros => {
                let (to, read) = if matches!(schema, Schema::TimeMillis) {
                    (
                        quote! { #conv::time_millis_to(x)? },
                        quote! { #value::TimeMillis(#conv::read_int(r)?) },
                    )
                } else {
                    (
                        quote! { #conv::time_micros_to(x) },
                        quote! { #value::TimeMicros(#conv::read_long(r)?) },
                    )
                };
                m(
                    quote! { ::kaufmann::avro::chrono::NaiveTime },
                    to,
                    quote! { #conv::time(v)? },
                    quote! { #conv::time(#read)? },
                )
            }
            Schema::TimestampMillis | Schema::TimestampMicros | Schema::TimestampNanos => {
                let unit = unit_of(schema);
                let variant = format_ident!("{schema:?}");
                m(
                    quote! { ::kaufmann::avro::chrono::DateTime<::kaufmann::avro::chrono::Utc> },
                    quote! { #conv::timestamp_to(x, #unit, false)? },
                    quote! { #conv::timestamp(v)? },
                    quote! { #conv::timestamp(#value::#variant(#conv::read_long(r)?))? },
                )
            }
            Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => {
                let unit = unit_of(schema);
                let variant = format_ident!("{schema:?}");
                m(
                    quote! { ::kaufmann::avro::chrono::NaiveDateTime },
                    quote! { #conv::local_timestamp_to(x, #unit)? },
                    quote! { #conv::local_timestamp(v)? },
                    quote! { #conv::local_timestamp(#value::#variant(#conv::read_long(r)?))? },
                )
            }
            Schema::Decimal(d) => {
                let precision = proc_macro2::Literal::usize_unsuffixed(d.precision);
                let scale = proc_macro2::Literal::usize_unsuffixed(d.scale);
                let (size, raw) = if let InnerDecimalSchema::Fixed(f) = &d.inner {
                    let size = proc_macro2::Literal::usize_unsuffixed(f.size);
                    (
                        quote! { ::core::option::Option::Some(#size) },
                        quote! { #value::Fixed(#size, #conv::read_fixed::<#size>(r)?.to_vec()) },
                    )
                } else {
                    (
                        quote! { ::core::option::Option::None },
                        quote! { #value::Bytes(#conv::read_bytes(r)?) },
                    )
                };
                m(
                    quote! { ::kaufmann::avro::BigDecimal },
                    quote! { #conv::decimal_to(x, #precision, #scale, #size)? },
                    quote! { #conv::decimal(v, #scale)? },
                    quote! { #conv::decimal(#raw, #scale)? },
                )
            }
            Schema::BigDecimal => m(
                quote! { ::kaufmann::avro::BigDecimal },
                quote! { #value::BigDecimal(x.clone()) },
                quote! { #conv::big_decimal(v)? },
                quote! { #conv::read_big_decimal(r)? },
            ),
            Schema::Duration(_) => m(
                quote! { ::kaufmann::avro::Duration },
                quote! { #conv::duration_to(x) },
                quote! { #conv::duration(v)? },
                quote! { #conv::duration(#value::Fixed(12, #conv::read_fixed::<12>(r)?.to_vec()))? },
            ),
            Schema::Array(array) => {
                let Mapped { ty, to, from, read } =
                    self.map(&array.items, &format!("{hint}Item"), true);
                m(
                    quote! { ::std::vec::Vec<#ty> },
                    quote! {
                        #value::Array(x.iter().map(|x| -> ::core::result::Result<#value, ::kaufmann::avro::AvroError> {
                            ::core::result::Result::Ok(#to)
                        }).collect::<::core::result::Result<_, _>>()?)
                    },
                    quote! {
                        #conv::array(v)?.into_iter().map(|v| -> ::core::result::Result<#ty, ::kaufmann::avro::AvroError> {
                            ::core::result::Result::Ok(#from)
                        }).collect::<::core::result::Result<_, _>>()?
                    },
                    quote! {{
                        let mut items: ::std::vec::Vec<#ty> = ::std::vec::Vec::new();
                        #conv::read_blocks(r, |r| {
                            items.push(#read);
                            ::core::result::Result::Ok(())
                        })?;
                        items
                    }},
                )
            }
            Schema::Map(map) => {
                let Mapped { ty, to, from, read } =
                    self.map(&map.types, &format!("{hint}Value"), true);
                m(
                    quote! { ::std::collections::HashMap<::std::string::String, #ty> },
                    quote! {
                        #value::Map(x.iter().map(|(k, x)| -> ::core::result::Result<(::std::string::String, #value), ::kaufmann::avro::AvroError> {
                            ::core::result::Result::Ok((k.clone(), #to))
                        }).collect::<::core::result::Result<_, _>>()?)
                    },
                    quote! {
                        #conv::map(v)?.into_iter().map(|(k, v)| -> ::core::result::Result<(::std::string::String, #ty), ::kaufmann::avro::AvroError> {
                            ::core::result::Result::Ok((k, #from))
                        }).collect::<::core::result::Result<_, _>>()?
                    },
                    quote! {{
                        let mut entries: ::std::collections::HashMap<::std::string::String, #ty> =
                            ::std::collections::HashMap::new();
                        #conv::read_blocks(r, |r| {
                            let key = #conv::read_string(r)?;
                            entries.insert(key, #read);
                            ::core::result::Result::Ok(())
                        })?;
                        entries
                    }},
                )
            }
            Schema::Union(union) => self.union(union.variants(), hint, indirect),
            Schema::Record(record) => {
                self.record(record);
                self.reference(&record.name.fullname(None), indirect)
            }
            Schema::Enum(e) => {
                self.enumeration(e);
                self.reference(&e.name.fullname(None), indirect)
            }
            Schema::Fixed(f) => {
                self.fixed(f);
                self.reference(&f.name.fullname(None), indirect)
            }
            // The model refused references to anything but a generated type.
            Schema::Ref { name } => self.reference(&name.fullname(None), indirect),
        }
    }

    /// A union: `Option<T>` for `["null", T]`, otherwise a generated enum (in an `Option` when
    /// `null` is a branch).
    fn union(&mut self, branches: &[Schema], hint: &str, indirect: bool) -> Mapped {
        let conv = quote! { ::kaufmann::__private::conv };
        let value = quote! { ::kaufmann::avro::Value };
        let null = branches
            .iter()
            .position(|b| matches!(b, Schema::Null))
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX));
        let others: Vec<(u32, &Schema)> = branches
            .iter()
            .enumerate()
            .filter(|(_, b)| !matches!(b, Schema::Null))
            .map(|(i, b)| (u32::try_from(i).unwrap_or(u32::MAX), b))
            .collect();
        let bad = quote! { i => return ::core::result::Result::Err(#conv::bad_branch(i, #hint)) };
        // The null branch, when there is one, in a `match` on the branch index read.
        let null_arm = null.map(|n| quote! { #n => ::core::option::Option::None, });
        // The non-null branches: one is converted in place, several become an enum. `read_some`
        // reads the non-null value once the branch index `i` is read.
        let (inner, read_some) = match others.as_slice() {
            [] => {
                let n = null.unwrap_or(0);
                return Mapped {
                    ty: quote! { () },
                    to: quote! { #value::Union(#n, ::std::boxed::Box::new(#value::Null)) },
                    from: quote! { { #conv::union(v)?; } },
                    read: quote! {
                        match #conv::read_branch(r)? {
                            #n => (),
                            #bad,
                        }
                    },
                };
            }
            [(index, branch)] => {
                let Mapped { ty, to, from, read } = self.map(branch, hint, indirect);
                let inner = Mapped {
                    ty,
                    to: quote! { #value::Union(#index, ::std::boxed::Box::new(#to)) },
                    from: quote! {
                        match #conv::union(v)? {
                            (#index, v) => #from,
                            (i, _) => return ::core::result::Result::Err(#conv::bad_branch(i, #hint)),
                        }
                    },
                    read: quote! {
                        match #conv::read_branch(r)? {
                            #index => #read,
                            #bad,
                        }
                    },
                };
                (inner, quote! { match i { #index => #read, #bad, } })
            }
            _ => {
                let (inner, ident) = self.union_enum(&others, hint);
                (inner, quote! { #ident::__read_avro_branch(i, r)? })
            }
        };
        let Some(n) = null else {
            return inner;
        };
        let Mapped {
            ty,
            to: inner_to,
            from: inner_from,
            read: _,
        } = inner;
        Mapped {
            read: quote! {
                match #conv::read_branch(r)? {
                    #null_arm
                    i => ::core::option::Option::Some(#read_some),
                }
            },
            ty: quote! { ::core::option::Option<#ty> },
            to: quote! {
                match x {
                    ::core::option::Option::None => #value::Union(#n, ::std::boxed::Box::new(#value::Null)),
                    ::core::option::Option::Some(x) => #inner_to,
                }
            },
            from: quote! {
                if #conv::is_branch(&v, #n) { ::core::option::Option::None } else { ::core::option::Option::Some(#inner_from) }
            },
        }
    }

    /// An enum named `name` for the non-null branches of a union, and its name.
    fn union_enum(
        &mut self,
        branches: &[(u32, &Schema)],
        name: &str,
    ) -> (Mapped, proc_macro2::Ident) {
        let ident = format_ident!("{}", name);
        let mut variants = Vec::new();
        let mut to = Vec::new();
        let mut from = Vec::new();
        let mut read = Vec::new();
        for (index, branch) in branches {
            let variant_name = self.model.variant_name(branch);
            let variant = format_ident!("{}", variant_name);
            let mapped = self.map(branch, &format!("{name}{variant_name}"), false);
            let (ty, to_expr, from_expr, read_expr) =
                (mapped.ty, mapped.to, mapped.from, mapped.read);
            let doc = format!("Branch {index} of the union.");
            variants.push(quote! { #[doc = #doc] #variant(#ty) });
            to.push(quote! {
                Self::#variant(x) => ::kaufmann::avro::Value::Union(#index, ::std::boxed::Box::new(#to_expr))
            });
            from.push(
                quote! { (#index, v) => ::core::result::Result::Ok(Self::#variant(#from_expr)) },
            );
            read.push(quote! { #index => ::core::result::Result::Ok(Self::#variant(#read_expr)) });
        }
        let doc = format!("An Avro union with {} branches.", branches.len());
        self.items.extend(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, PartialEq)]
            pub enum #ident {
                #(#variants,)*
            }

            impl #ident {
                /// Reads branch `index` of the union (its index already read). Not public API.
                #[doc(hidden)]
                #[allow(clippy::all, clippy::pedantic)]
                pub fn __read_avro_branch(
                    index: u32,
                    r: &mut &[u8],
                ) -> ::core::result::Result<Self, ::kaufmann::avro::AvroError> {
                    match index {
                        #(#read,)*
                        i => ::core::result::Result::Err(::kaufmann::__private::conv::bad_branch(i, #name)),
                    }
                }
            }
        });
        self.avro_value_impl(
            &ident,
            &quote! { match self { #(#to,)* } },
            &quote! {
                match ::kaufmann::__private::conv::union(value)? {
                    #(#from,)*
                    (i, _) => ::core::result::Result::Err(::kaufmann::__private::conv::bad_branch(i, #name)),
                }
            },
            &quote! { Self::__read_avro_branch(::kaufmann::__private::conv::read_branch(r)?, r) },
        );
        (through_trait(quote! { #ident }), ident)
    }

    /// The `AvroValue` impl of a generated type: `to` is its `Value` (it may use `?`), `from` its
    /// whole `from_avro` body, reading `value`, `read` its whole `read_avro` body, reading `r`.
    fn avro_value_impl(
        &mut self,
        ident: &proc_macro2::Ident,
        to: &TokenStream,
        from: &TokenStream,
        read: &TokenStream,
    ) {
        self.items.extend(quote! {
            #[allow(clippy::all, clippy::pedantic)]
            impl ::kaufmann::avro::AvroValue for #ident {
                fn to_avro(&self) -> ::core::result::Result<::kaufmann::avro::Value, ::kaufmann::avro::AvroError> {
                    ::core::result::Result::Ok(#to)
                }
                fn from_avro(value: ::kaufmann::avro::Value) -> ::core::result::Result<Self, ::kaufmann::avro::AvroError> {
                    #from
                }
                const READS_AVRO: bool = true;
                #[allow(unused_variables)]
                fn read_avro(r: &mut &[u8]) -> ::core::result::Result<Self, ::kaufmann::avro::AvroError> {
                    #read
                }
            }
        });
    }
}

/// A type converted by its own `AvroValue` impl.
fn through_trait(ty: TokenStream) -> Mapped {
    Mapped {
        to: quote! { ::kaufmann::avro::AvroValue::to_avro(x)? },
        from: quote! { <#ty as ::kaufmann::avro::AvroValue>::from_avro(v)? },
        read: quote! { <#ty as ::kaufmann::avro::AvroValue>::read_avro(r)? },
        ty,
    }
}

fn unit_of(schema: &Schema) -> u8 {
    match schema {
        Schema::TimestampMillis | Schema::LocalTimestampMillis => 3,
        Schema::TimestampMicros | Schema::LocalTimestampMicros => 6,
        _ => 9,
    }
}

fn type_doc(
    doc: Option<&str>,
    kind: &str,
    full: &str,
    aliases: Option<&Vec<apache_avro::schema::Alias>>,
) -> Vec<String> {
    let mut lines = vec![doc.map_or_else(|| format!("The Avro {kind} `{full}`."), str::to_owned)];
    if doc.is_some() {
        lines.push(String::new());
        lines.push(format!("Avro {kind} `{full}`."));
    }
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        let names: Vec<String> = aliases
            .iter()
            .map(|a| format!("`{}`", a.fullname(None)))
            .collect();
        lines.push(format!("Also known as {}.", names.join(", ")));
    }
    lines
}

fn field_doc(field: &RecordField) -> Vec<String> {
    let name = &field.name;
    let mut lines = vec![field
        .doc
        .clone()
        .unwrap_or_else(|| format!("The Avro field `{name}`."))];
    if field.doc.is_some() {
        lines.push(String::new());
        lines.push(format!("Avro field `{name}`."));
    }
    if let Some(default) = &field.default {
        lines.push(format!(
            "Default `{default}` (when the writer's schema has no such field)."
        ));
    }
    if !field.aliases.is_empty() {
        lines.push(format!("Also known as `{}`.", field.aliases.join("`, `")));
    }
    lines
}
