//! Stage 2 of `schemas!`: the model. Every decision the generated code depends on is taken here,
//! before any token is written: the Rust name of each named Avro type and of each union enum, the
//! refusal of names that clash (types across files, fields of a record, symbols of an enum), of
//! references apache-avro cannot resolve, and where a recursive record needs a `Box`. The
//! expansion (`codegen`) reads the model and cannot fail.

use std::collections::{HashMap, HashSet};

use apache_avro::schema::{InnerDecimalSchema, Name, RecordSchema};
use apache_avro::Schema;

use super::SchemaFile;
use crate::naming;

/// What a named Avro type becomes.
#[derive(Clone)]
enum Named {
    /// A generated Rust type of this name.
    Type(String),
    /// A `fixed` carrying a logical type (`decimal`): no type of its own, and apache-avro cannot
    /// resolve a reference to it.
    Logical,
}

/// The names and decisions of a set of schema files.
pub struct Model<'a> {
    files: &'a [SchemaFile],
    /// What each named type became, by full name.
    named: HashMap<String, Named>,
    /// Which Avro type (and file) each Rust name was given to, to refuse clashes.
    owners: HashMap<String, (String, usize)>,
    /// For each record, the records its definition is nested in: a reference to one of them (or
    /// to itself) outside an array or map needs a `Box`.
    enclosing: HashMap<String, Vec<String>>,
    /// The file being modelled.
    file: usize,
}

impl<'a> Model<'a> {
    /// Models `schemas` (one per file, in file order). A clash of type names is one error naming
    /// both files; the problems inside the files are one error each, naming its file.
    pub fn build(files: &'a [SchemaFile], schemas: &[Schema]) -> Result<Self, Vec<String>> {
        let mut model = Model {
            files,
            named: HashMap::new(),
            owners: HashMap::new(),
            enclosing: HashMap::new(),
            file: 0,
        };
        model.name_all(schemas).map_err(|e| vec![e])?;
        let mut seen = HashSet::new();
        let mut errors = Vec::new();
        for (index, schema) in schemas.iter().enumerate() {
            model.file = index;
            let checked = match schema {
                Schema::Record(_) => model.walk(schema, "", &mut Vec::new(), &mut seen),
                _ => Err("the top-level schema of an event must be a record".to_owned()),
            };
            if let Err(msg) = checked {
                errors.push(format!("{}: {msg}", files[index].shown));
            }
        }
        if errors.is_empty() {
            Ok(model)
        } else {
            Err(errors)
        }
    }

    /// Names every named type: each file's event record after its event, the others after their
    /// own names.
    fn name_all(&mut self, schemas: &[Schema]) -> Result<(), String> {
        for (index, schema) in schemas.iter().enumerate() {
            self.file = index;
            let top = full_name(schema).unwrap_or_default();
            let event_type = naming::type_name(&self.files[index].event);
            self.claim(&event_type, &top)?;
            self.named.insert(top, Named::Type(event_type));
        }
        for (index, schema) in schemas.iter().enumerate() {
            self.file = index;
            self.collect(schema)?;
        }
        Ok(())
    }

    /// Records the definitions inside `schema` and gives each a Rust name.
    fn collect(&mut self, schema: &Schema) -> Result<(), String> {
        match schema {
            Schema::Record(record) => {
                self.define(&record.name)?;
                for field in &record.fields {
                    self.collect(&field.schema)?;
                }
            }
            Schema::Enum(e) => self.define(&e.name)?,
            Schema::Fixed(f) => self.define(&f.name)?,
            Schema::Decimal(d) => {
                if let InnerDecimalSchema::Fixed(f) = &d.inner {
                    self.named.insert(f.name.fullname(None), Named::Logical);
                }
            }
            Schema::Array(a) => self.collect(&a.items)?,
            Schema::Map(m) => self.collect(&m.types)?,
            Schema::Union(u) => {
                for branch in u.variants() {
                    self.collect(branch)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn define(&mut self, name: &Name) -> Result<(), String> {
        let full = name.fullname(None);
        if !self.named.contains_key(&full) {
            let rust = naming::type_name(name.name());
            self.claim(&rust, &full)?;
            self.named.insert(full, Named::Type(rust));
        }
        Ok(())
    }

    /// Gives `rust` to `what`, or explains which other schema already has it.
    fn claim(&mut self, rust: &str, what: &str) -> Result<(), String> {
        if let Some((other, file)) = self.owners.get(rust) {
            if other != what {
                return Err(format!(
                    "two schemas generate the Rust type `{rust}`: `{other}` in {} and `{what}` in {}; rename one of them",
                    self.files[*file].shown, self.files[self.file].shown
                ));
            }
            return Ok(());
        }
        self.owners
            .insert(rust.to_owned(), (what.to_owned(), self.file));
        Ok(())
    }

    /// Checks `schema` as the expansion will meet it (definitions in order, each once): `hint`
    /// names a union enum should one be needed, `stack` holds the records being defined.
    fn walk(
        &mut self,
        schema: &Schema,
        hint: &str,
        stack: &mut Vec<String>,
        seen: &mut HashSet<String>,
    ) -> Result<(), String> {
        match schema {
            Schema::Record(record) if seen.insert(record.name.fullname(None)) => {
                self.record(record, stack, seen)?;
            }
            Schema::Enum(e) if seen.insert(e.name.fullname(None)) => {
                let full = e.name.fullname(None);
                u32::try_from(e.symbols.len()).map_err(|_| "too many enum symbols")?;
                let mut variants = HashMap::new();
                for symbol in &e.symbols {
                    let variant = naming::type_name(symbol);
                    if let Some(other) = variants.insert(variant.clone(), symbol) {
                        return Err(format!(
                            "symbols `{other}` and `{symbol}` of enum `{full}` both become the variant `{variant}`"
                        ));
                    }
                }
            }
            Schema::Array(array) => self.walk(&array.items, &format!("{hint}Item"), stack, seen)?,
            Schema::Map(map) => self.walk(&map.types, &format!("{hint}Value"), stack, seen)?,
            Schema::Union(union) => {
                let others: Vec<&Schema> = union
                    .variants()
                    .iter()
                    .filter(|b| !matches!(b, Schema::Null))
                    .collect();
                if let [branch] = others.as_slice() {
                    self.walk(branch, hint, stack, seen)?;
                } else if others.len() > 1 {
                    self.claim(hint, &format!("a union named {hint}"))?;
                    for branch in others {
                        let variant = self.variant_name(branch);
                        self.walk(branch, &format!("{hint}{variant}"), stack, seen)?;
                    }
                }
            }
            Schema::Ref { name } => {
                let full = name.fullname(None);
                match self.named.get(&full) {
                    // apache-avro 0.17 does not register these names and panics on the
                    // reference when it validates a value.
                    Some(Named::Logical) => {
                        return Err(format!(
                            "`{full}` is a `fixed` with a logical type, and apache-avro cannot \
                             resolve a second use of it by name; give this field its own type"
                        ))
                    }
                    Some(Named::Type(_)) => {}
                    None => return Err(format!("unknown type `{full}`")),
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A record's fields: no two may become the same Rust field.
    fn record(
        &mut self,
        record: &RecordSchema,
        stack: &mut Vec<String>,
        seen: &mut HashSet<String>,
    ) -> Result<(), String> {
        let full = record.name.fullname(None);
        self.enclosing.insert(full.clone(), stack.clone());
        let rust = self.rust_name(&full);
        stack.push(full.clone());
        let mut idents = HashMap::new();
        for field in &record.fields {
            let name = &field.name;
            let ident = naming::ident(&naming::field_name(name)).to_string();
            if let Some(other) = idents.insert(ident.clone(), name) {
                return Err(format!(
                    "fields `{other}` and `{name}` of record `{full}` both become the Rust field `{ident}`"
                ));
            }
            let hint = format!("{rust}{}", naming::type_name(name));
            self.walk(&field.schema, &hint, stack, seen)?;
        }
        stack.pop();
        Ok(())
    }

    /// The Rust name of the named type `full`.
    pub fn rust_name(&self, full: &str) -> String {
        match self.named.get(full) {
            Some(Named::Type(rust)) => rust.clone(),
            _ => naming::type_name(full),
        }
    }

    /// Whether a reference to `target` from the fields of record `inside` (not under an array or
    /// map) needs a `Box`: `target` is `inside` or a record it is defined in.
    pub fn needs_box(&self, inside: &str, target: &str) -> bool {
        inside == target
            || self
                .enclosing
                .get(inside)
                .is_some_and(|outer| outer.iter().any(|r| r == target))
    }

    /// The variant of a union enum for `branch`.
    pub fn variant_name(&self, branch: &Schema) -> String {
        let named = |name: &Name| self.rust_name(&name.fullname(None));
        match branch {
            Schema::Record(r) => named(&r.name),
            Schema::Enum(e) => named(&e.name),
            Schema::Fixed(f) => named(&f.name),
            Schema::Ref { name } => named(name),
            other => {
                let kind = format!("{:?}", apache_avro::schema::SchemaKind::from(other));
                naming::type_name(&kind)
            }
        }
    }
}

/// The full name of a named schema.
pub fn full_name(schema: &Schema) -> Option<String> {
    schema.name().map(|n| n.fullname(None))
}
