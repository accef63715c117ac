//! `schemas.lock`: every published version of each event's schema, oldest first, and the
//! compatibility level each event keeps. It sits beside the schemas folder (`schemas` ->
//! `schemas.lock`), is written by `kaufmann schemas lock`, read by `schemas!` at build time and
//! by `kaufmann schemas check` and `migrate`, and is meant to be committed and reviewed.
//!
//! The file is plain text in a stable order (events sorted by name, versions in order), so that
//! a new version is one added line:
//!
//! ```text
//! event.user.created BACKWARD
//!   1 5f1a0c2e9d3b4a77 {"type":"record","name":"Created",...}
//!   2 c0ffee0123456789 {"type":"record","name":"Created",...}
//!   3 forced 0123456789abcdef {"type":"record","name":"Created",...}
//! ```
//!
//! An event line names the event and its level (`BACKWARD`, `FORWARD`, `FULL`, their
//! `_TRANSITIVE` forms, or `NONE`; edit it to change the level). Each version line holds its
//! number, the schema's Avro fingerprint (CRC-64-AVRO of its Parsing Canonical Form, checked on
//! reading), `forced` when `--force` recorded a deliberate break, and the schema as one line of
//! JSON (apache-avro's full form: defaults, docs and logical types kept, which compatibility
//! needs). A forced version starts the history anew: later versions are checked against it and
//! those after it only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use apache_avro::rabin::Rabin;
use apache_avro::Schema;

use crate::compatibility::{Break, Compatibility};

/// The largest lock file read (a limit on a file that a merge could make huge).
pub const MAX_LOCK_BYTES: u64 = 64 * 1024 * 1024;

/// The lock file of a schemas folder: the folder's path with `.lock` appended.
pub fn path_of(folder: &Path) -> PathBuf {
    let mut path = folder.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

/// The schema as the lock holds it: apache-avro's JSON of it, on one line.
pub fn form(schema: &Schema) -> String {
    serde_json::to_string(schema).unwrap_or_else(|_| schema.canonical_form())
}

/// The schema's Avro fingerprint (CRC-64-AVRO of its Parsing Canonical Form), in hex.
pub fn fingerprint(schema: &Schema) -> String {
    schema.fingerprint::<Rabin>().to_string()
}

/// Every locked event, by name.
#[derive(Debug, Clone, Default)]
pub struct Lock {
    /// The events, sorted by name.
    pub events: BTreeMap<String, LockedEvent>,
}

/// One event's level and versions.
#[derive(Debug, Clone)]
pub struct LockedEvent {
    /// The compatibility each new version must keep.
    pub level: Compatibility,
    /// The versions, oldest first (version `n` at index `n - 1`).
    pub versions: Vec<LockedVersion>,
}

/// One locked version of an event's schema.
#[derive(Debug, Clone)]
pub struct LockedVersion {
    /// The schema.
    pub schema: Schema,
    /// Whether `--force` recorded it as a deliberate break.
    pub forced: bool,
}

/// Where a folder's schema of an event stands against the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The event has no locked version yet.
    Unlocked,
    /// The schema is the latest locked version.
    Locked,
    /// The schema differs from the latest locked version and keeps the event's level: it would
    /// be locked as this version.
    Compatible(u32),
    /// The schema breaks the event's level, in every way listed.
    Breaks(Vec<Break>),
}

impl LockedEvent {
    /// Where `schema` stands against this event's versions.
    pub fn standing(&self, schema: &Schema) -> Standing {
        let Some(last) = self.versions.last() else {
            return Standing::Unlocked;
        };
        if form(&last.schema) == form(schema) {
            return Standing::Locked;
        }
        let breaks = self.level.breaks(schema, &self.history());
        if breaks.is_empty() {
            Standing::Compatible(self.next_version())
        } else {
            Standing::Breaks(breaks)
        }
    }

    /// The versions a new one is checked against: from the last forced one on.
    fn history(&self) -> Vec<(u32, &Schema)> {
        let start = self.versions.iter().rposition(|v| v.forced).unwrap_or(0);
        (1..)
            .zip(&self.versions)
            .skip(start)
            .map(|(number, version)| (number, &version.schema))
            .collect()
    }

    /// The number the next version takes.
    pub fn next_version(&self) -> u32 {
        u32::try_from(self.versions.len()).map_or(u32::MAX, |n| n.saturating_add(1))
    }
}

impl Lock {
    /// Reads the lock at `path` (`shown`: its name in messages); `None` when there is none.
    ///
    /// # Errors
    /// Every problem of the file, one a line, each naming its line.
    pub fn read(path: &Path, shown: &str) -> Result<Option<Self>, Vec<String>> {
        let size = match std::fs::metadata(path) {
            Ok(meta) => meta.len(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(vec![format!("cannot read `{shown}`: {err}")]),
        };
        if size > MAX_LOCK_BYTES {
            return Err(vec![format!(
                "`{shown}` is {size} bytes, over the {MAX_LOCK_BYTES} read"
            )]);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|err| vec![format!("cannot read `{shown}`: {err}")])?;
        Self::parse(&text, shown).map(Some)
    }

    /// Parses a lock's text (`shown`: its name in messages).
    ///
    /// # Errors
    /// Every problem found, each naming its line.
    pub fn parse(text: &str, shown: &str) -> Result<Self, Vec<String>> {
        let mut lock = Self::default();
        let mut errors = Vec::new();
        let mut current: Option<String> = None;
        for (index, line) in text.lines().enumerate() {
            let at = |message: String| format!("{shown} line {}: {message}", index + 1);
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if !line.starts_with(char::is_whitespace) {
                match event_line(trimmed) {
                    Ok((event, level)) => {
                        if lock.events.contains_key(&event) {
                            errors.push(at(format!("`{event}` is locked twice")));
                        }
                        lock.events.insert(
                            event.clone(),
                            LockedEvent {
                                level,
                                versions: Vec::new(),
                            },
                        );
                        current = Some(event);
                    }
                    Err(message) => {
                        errors.push(at(message));
                        current = None;
                    }
                }
                continue;
            }
            let Some(event) = current.as_ref().and_then(|e| lock.events.get_mut(e)) else {
                errors.push(at("a version line before any event line".to_owned()));
                continue;
            };
            match version_line(trimmed, event.next_version()) {
                Ok(version) => event.versions.push(version),
                Err(message) => errors.push(at(message)),
            }
        }
        if errors.is_empty() {
            Ok(lock)
        } else {
            Err(errors)
        }
    }

    /// The lock's text: a heading comment, then the events sorted by name.
    pub fn render(&self) -> String {
        let mut out = String::from(HEADING);
        for (event, locked) in &self.events {
            let _ = writeln!(out, "\n{event} {}", locked.level);
            for (number, version) in (1..).zip(&locked.versions) {
                let forced = if version.forced { "forced " } else { "" };
                let _ = writeln!(
                    out,
                    "  {number} {forced}{} {}",
                    fingerprint(&version.schema),
                    form(&version.schema)
                );
            }
        }
        out
    }

    /// Where the folder's `schema` of `event` stands.
    pub fn standing(&self, event: &str, schema: &Schema) -> Standing {
        self.events
            .get(event)
            .map_or(Standing::Unlocked, |locked| locked.standing(schema))
    }

    /// Appends `schema` as `event`'s next version (`forced`: a deliberate break); returns its
    /// number. A new event keeps BACKWARD.
    pub fn append(&mut self, event: &str, schema: Schema, forced: bool) -> u32 {
        let locked = self
            .events
            .entry(event.to_owned())
            .or_insert_with(|| LockedEvent {
                level: Compatibility::default(),
                versions: Vec::new(),
            });
        let number = locked.next_version();
        locked.versions.push(LockedVersion { schema, forced });
        number
    }
}

const HEADING: &str = "\
# schemas.lock: every published version of each event's schema, oldest first, and the
# compatibility level the event keeps (edit the level on the event's line).
# Written by `kaufmann schemas lock`, which refuses a change that breaks the level;
# `schemas!` refuses one at compile time. Commit this file and review its diffs.
";

/// `<event> <LEVEL>`.
fn event_line(line: &str) -> Result<(String, Compatibility), String> {
    let mut words = line.split_whitespace();
    let (Some(event), Some(level), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!(
            "`{line}` is not `<event> <LEVEL>` (an event line) nor indented (a version line)"
        ));
    };
    let level = level.parse().map_err(|e| format!("{e}"))?;
    Ok((event.to_owned(), level))
}

/// `<number> [forced] <fingerprint> <schema JSON>`, its number `expected`.
fn version_line(line: &str, expected: u32) -> Result<LockedVersion, String> {
    let (number, rest) = line.split_once(' ').unwrap_or((line, ""));
    if number.parse::<u32>().ok() != Some(expected) {
        return Err(format!(
            "expected version {expected} here, found `{number}` (versions count from 1, in order)"
        ));
    }
    let (forced, rest) = match rest.strip_prefix("forced ") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let (written, json) = rest.split_once(' ').unwrap_or((rest, ""));
    let schema = Schema::parse_str(json)
        .map_err(|e| format!("version {expected}: the schema does not parse: {e}"))?;
    let actual = fingerprint(&schema);
    if written != actual {
        return Err(format!(
            "version {expected}: the fingerprint is {written} but the schema's is {actual} (was \
             the line edited by hand? `kaufmann schemas lock` writes it)"
        ));
    }
    Ok(LockedVersion { schema, forced })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"Created","namespace":"event.user","doc":"A user.","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn a_lock_reads_back_what_it_wrote_with_defaults_kept() {
        let mut lock = Lock::default();
        let v1 = record(r#"{"name":"id","type":"string"}"#);
        let v2 = record(
            r#"{"name":"id","type":"string"},{"name":"age","type":"int","default":0,"doc":"years"}"#,
        );
        assert_eq!(lock.append("event.user.created", v1, false), 1);
        assert_eq!(lock.append("event.user.created", v2.clone(), false), 2);
        lock.append("a.first", record(r#"{"name":"x","type":"long"}"#), true);
        let text = lock.render();
        let read = Lock::parse(&text, "schemas.lock").unwrap();
        assert_eq!(read.render(), text);
        assert_eq!(read.standing("event.user.created", &v2), Standing::Locked);
        assert!(text.contains("\"default\":0"), "{text}");
        // Sorted by event: `a.first` comes first, whatever the order of locking.
        let events: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with(['#', ' ']) && !l.is_empty())
            .collect();
        assert_eq!(events, ["a.first BACKWARD", "event.user.created BACKWARD"]);
        assert!(text.contains("  1 forced "), "{text}");
    }

    #[test]
    fn a_change_is_compatible_or_names_what_it_breaks() {
        let mut lock = Lock::default();
        lock.append("e.x", record(r#"{"name":"id","type":"string"}"#), false);
        let added =
            record(r#"{"name":"id","type":"string"},{"name":"age","type":"int","default":1}"#);
        assert_eq!(lock.standing("e.x", &added), Standing::Compatible(2));
        let bad = record(r#"{"name":"id","type":"string"},{"name":"age","type":"int"}"#);
        let Standing::Breaks(breaks) = lock.standing("e.x", &bad) else {
            panic!("not refused")
        };
        assert_eq!(
            breaks[0].to_string(),
            "field 'age' added without a default breaks BACKWARD: the new schema cannot read \
             data written with version 1"
        );
        assert_eq!(lock.standing("e.y", &bad), Standing::Unlocked);
        // After a forced version, the versions before it are not checked.
        lock.append("e.x", record(r#"{"name":"other","type":"string"}"#), true);
        let after =
            record(r#"{"name":"other","type":"string"},{"name":"n","type":"int","default":0}"#);
        lock.events.get_mut("e.x").unwrap().level = Compatibility::FullTransitive;
        assert_eq!(lock.standing("e.x", &after), Standing::Compatible(3));
    }

    #[test]
    fn every_problem_of_a_lock_names_its_line() {
        let good = record(r#"{"name":"id","type":"string"}"#);
        let line = format!("  1 {} {}", fingerprint(&good), form(&good));
        let text = format!(
            "# comment\n  1 x {{}}\ne.x SIDEWAYS\ne.y BACKWARD\n{line}\n  3 {}\n  2 0000 {}\n",
            form(&good),
            form(&good)
        );
        let errors = Lock::parse(&text, "schemas.lock").unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors[0].starts_with("schemas.lock line 2: a version line before"),
            "{errors:#?}"
        );
        assert!(
            errors[1].contains("line 3: unknown compatibility level `SIDEWAYS`"),
            "{errors:#?}"
        );
        assert!(
            errors[2].contains("line 6: expected version 2 here, found `3`"),
            "{errors:#?}"
        );
        assert!(
            errors[3].contains("line 7: version 2: the fingerprint is 0000"),
            "{errors:#?}"
        );
    }

    #[test]
    fn the_lock_of_a_folder_is_beside_it() {
        assert_eq!(path_of(Path::new("a/schemas")), Path::new("a/schemas.lock"));
    }
}
