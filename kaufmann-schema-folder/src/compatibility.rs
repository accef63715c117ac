//! The compatibility levels, as Confluent's registry names them, and the one piece of code that
//! says what each allows: the registry client, the local registry, `kaufmann schemas lock` and
//! `schemas!` all check with [`Compatibility::breaks`], over apache-avro's `SchemaCompatibility`.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use apache_avro::error::CompatibilityError;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

/// A compatibility level, as Confluent's registry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compatibility {
    /// A new schema reads data written with the latest one (the default).
    #[default]
    Backward,
    /// A new schema reads data written with every earlier one.
    BackwardTransitive,
    /// The latest schema reads data written with a new one.
    Forward,
    /// Every earlier schema reads data written with a new one.
    ForwardTransitive,
    /// Backward and forward against the latest schema.
    Full,
    /// Backward and forward against every earlier schema.
    FullTransitive,
    /// No checks.
    None,
}

/// A level name that is none of [`Compatibility::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown compatibility level `{0}`: use BACKWARD, BACKWARD_TRANSITIVE, FORWARD, \
     FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE or NONE"
)]
pub struct UnknownLevel(pub String);

/// Which way a change fails to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The new schema cannot read data written with the old one.
    Backward,
    /// The old schema cannot read data written with the new one.
    Forward,
}

/// One way a new schema breaks a level, against one earlier version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The level broken.
    pub level: Compatibility,
    /// The earlier version it breaks against.
    pub version: u32,
    /// Which reader fails.
    pub direction: Direction,
    /// What changed, naming the field (`field 'age' added without a default`).
    pub reason: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (version, level, reason) = (self.version, self.level, &self.reason);
        match self.direction {
            Direction::Backward => write!(
                f,
                "{reason} breaks {level}: the new schema cannot read data written with version \
                 {version}"
            ),
            Direction::Forward => write!(
                f,
                "{reason} breaks {level}: readers of version {version} cannot read data written \
                 with the new schema"
            ),
        }
    }
}

impl Compatibility {
    /// The levels by the names Confluent's REST API uses.
    pub const NAMES: [(&'static str, Self); 7] = [
        ("BACKWARD", Self::Backward),
        ("BACKWARD_TRANSITIVE", Self::BackwardTransitive),
        ("FORWARD", Self::Forward),
        ("FORWARD_TRANSITIVE", Self::ForwardTransitive),
        ("FULL", Self::Full),
        ("FULL_TRANSITIVE", Self::FullTransitive),
        ("NONE", Self::None),
    ];

    /// The name Confluent's REST API uses (`BACKWARD`, `FULL_TRANSITIVE`, ...).
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, level)| *level == self)
            .map_or("NONE", |(name, _)| name)
    }

    /// Checks `new` against the subject's earlier schemas (oldest first, numbered from 1) at this
    /// level; returns why it does not fit, empty when it does.
    pub fn check(self, new: &Schema, earlier: &[impl Borrow<Schema>]) -> Vec<String> {
        let numbered: Vec<(u32, &Schema)> = (1..).zip(earlier.iter().map(Borrow::borrow)).collect();
        self.breaks(new, &numbered)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Every way `new` breaks this level against the earlier versions (oldest first, each with
    /// its number): the last alone, or every one under the transitive levels.
    pub fn breaks(self, new: &Schema, earlier: &[(u32, &Schema)]) -> Vec<Break> {
        let (backward, forward, transitive) = match self {
            Self::Backward => (true, false, false),
            Self::BackwardTransitive => (true, false, true),
            Self::Forward => (false, true, false),
            Self::ForwardTransitive => (false, true, true),
            Self::Full => (true, true, false),
            Self::FullTransitive => (true, true, true),
            Self::None => return Vec::new(),
        };
        let first = if transitive {
            0
        } else {
            earlier.len().saturating_sub(1)
        };
        let mut found = Vec::new();
        for &(version, old) in &earlier[first..] {
            let checks = [
                (backward, old, new, Direction::Backward),
                (forward, new, old, Direction::Forward),
            ];
            for (on, writer, reader, direction) in checks {
                if !on {
                    continue;
                }
                if let Err(err) = SchemaCompatibility::can_read(writer, reader) {
                    found.push(Break {
                        level: self,
                        version,
                        direction,
                        reason: reason(&err, direction, ""),
                    });
                }
            }
        }
        found
    }
}

/// What a compatibility error says in the words of a schema change (`path`: the record fields
/// it is inside, each followed by a dot).
fn reason(err: &CompatibilityError, direction: Direction, path: &str) -> String {
    match err {
        CompatibilityError::MissingDefaultValue(field) => match direction {
            Direction::Backward => format!("field '{path}{field}' added without a default"),
            Direction::Forward => {
                format!("field '{path}{field}' removed without a default in the old schema")
            }
        },
        CompatibilityError::FieldTypeMismatch(field, inner) => match inner.as_ref() {
            nested @ (CompatibilityError::MissingDefaultValue(_)
            | CompatibilityError::FieldTypeMismatch(..)) => {
                reason(nested, direction, &format!("{path}{field}."))
            }
            other => format!(
                "field '{path}{field}' changed type ({})",
                plain(&other.to_string())
            ),
        },
        CompatibilityError::MissingSymbols => {
            format!(
                "an enum {}lost every symbol the other side writes",
                at(path)
            )
        }
        other => format!("{}{}", at(path), plain(&other.to_string())),
    }
}

/// ` in 'a.b' ` for a path `a.b.`, empty for none.
fn at(path: &str) -> String {
    let path = path.trim_end_matches('.');
    if path.is_empty() {
        String::new()
    } else {
        format!("in '{path}': ")
    }
}

/// apache-avro's message without its `Incompatible schemata!` opening, lower-cased.
fn plain(message: &str) -> String {
    let rest = message
        .strip_prefix("Incompatible schemata! ")
        .or_else(|| message.strip_prefix("Incompatible schema types! "))
        .unwrap_or(message);
    let mut chars = rest.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compatibility {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, level)| *level)
            .ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"R","namespace":"t","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn levels_check_the_directions_and_versions_they_name() {
        let v1 = record(r#"{"name":"a","type":"int"}"#);
        let v2 = record(r#"{"name":"a","type":"int"},{"name":"b","type":"int","default":0}"#);
        let without_default = record(r#"{"name":"a","type":"int"},{"name":"c","type":"int"}"#);
        let dropped_a = record(r#"{"name":"b","type":"int","default":0}"#);
        let earlier = [v1, v2];
        // A field without a default breaks reading old data: backward refuses, naming it.
        let messages = Compatibility::Backward.check(&without_default, &earlier);
        assert_eq!(
            messages,
            [
                "field 'c' added without a default breaks BACKWARD: the new schema cannot read \
              data written with version 2"
            ]
        );
        assert!(Compatibility::Forward
            .check(&without_default, &earlier)
            .is_empty());
        // Dropping `a` (no default in the old reader) breaks forward, against v2 and v1.
        assert_eq!(
            Compatibility::Forward.check(&dropped_a, &earlier),
            [
                "field 'a' removed without a default in the old schema breaks FORWARD: readers \
                 of version 2 cannot read data written with the new schema"
            ]
        );
        let transitive = Compatibility::ForwardTransitive
            .breaks(&dropped_a, &[(1, &earlier[0]), (2, &earlier[1])]);
        assert_eq!(
            transitive.iter().map(|b| b.version).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(Compatibility::Backward
            .check(&dropped_a, &earlier)
            .is_empty());
        assert_eq!(Compatibility::Full.check(&dropped_a, &earlier).len(), 1);
        assert!(Compatibility::None
            .check(&without_default, &earlier)
            .is_empty());
    }

    #[test]
    fn a_nested_change_names_the_path_and_a_type_change_says_so() {
        let inner = |extra: &str| {
            record(&format!(
                r#"{{"name":"address","type":{{"type":"record","name":"A","fields":[
                    {{"name":"street","type":"string"}}{extra}]}}}}"#
            ))
        };
        let old = inner("");
        let new = inner(r#",{"name":"zip","type":"string"}"#);
        assert_eq!(
            Compatibility::Backward.breaks(&new, &[(3, &old)])[0].reason,
            "field 'address.zip' added without a default"
        );
        let retyped = record(r#"{"name":"a","type":"string"}"#);
        let reason = &Compatibility::Backward
            .breaks(&retyped, &[(1, &record(r#"{"name":"a","type":"int"}"#))])[0]
            .reason;
        assert!(reason.starts_with("field 'a' changed type ("), "{reason}");
    }

    #[test]
    fn levels_parse_from_their_confluent_names() {
        for (name, level) in Compatibility::NAMES {
            assert_eq!(name.parse::<Compatibility>().unwrap(), level);
            assert_eq!(level.to_string(), name);
        }
        assert_eq!(
            "SIDEWAYS".parse::<Compatibility>(),
            Err(UnknownLevel("SIDEWAYS".to_owned()))
        );
    }
}
