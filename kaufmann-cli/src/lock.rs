//! `kaufmann schemas lock` and `kaufmann schemas check --against REV`: the folder's schemas judged
//! against its `schemas.lock`, or against the same folder at a git revision (read with
//! `git show`, no checkout), by the rules `schemas!` applies at build time
//! ([`kaufmann_schema_folder::lock`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use kaufmann_schema_folder::compatibility::Break;
use kaufmann_schema_folder::lock::{form, path_of, Lock, LockedEvent, Standing};
use kaufmann_schema_folder::Compatibility;

use crate::folder::{read_folder, FolderSchema};

/// What `lock` or `check --against` found: a row per event (event, level, version, status) and
/// the refusals (each `<file>: <what breaks>`).
#[derive(Debug, Default)]
pub struct Judged {
    /// One row per event of the folder.
    pub rows: Vec<[String; 4]>,
    /// Why the change is refused, one line each.
    pub refused: Vec<String>,
}

/// A change to make to the lock: `--force EVENT` and `--level EVENT=LEVEL`.
#[derive(Debug, Default)]
pub struct LockOptions {
    /// Events whose break is recorded on purpose.
    pub force: Vec<String>,
    /// Levels to set.
    pub levels: Vec<(String, Compatibility)>,
}

/// Parses `EVENT=LEVEL`.
///
/// # Errors
/// When it is not of that form or names no level.
pub fn level_arg(arg: &str) -> Result<(String, Compatibility), String> {
    let (event, level) = arg
        .split_once('=')
        .ok_or_else(|| format!("--level `{arg}`: expected EVENT=LEVEL"))?;
    let level = level.parse().map_err(|e| format!("--level `{arg}`: {e}"))?;
    Ok((event.to_owned(), level))
}

/// Locks the folder's schemas: appends each changed schema as its event's next version when it
/// keeps the event's level (or is forced), and writes the lock when nothing is refused.
///
/// # Errors
/// When the folder, the lock or an option is bad (exit 2); refusals are in [`Judged`] (exit 1).
pub fn lock(dir: &Path, options: &LockOptions) -> Result<Judged, String> {
    let schemas = read_folder(dir)?;
    let path = path_of(dir);
    let shown = path.display().to_string();
    let mut lock = Lock::read(&path, &shown)
        .map_err(|e| e.join("\n"))?
        .unwrap_or_default();
    let known = |event: &str| schemas.iter().any(|s| s.event == event);
    for event in options
        .force
        .iter()
        .chain(options.levels.iter().map(|(e, _)| e))
    {
        if !known(event) {
            return Err(format!(
                "`{event}` is not an event of {} (its file would be {}/{event}.avsc)",
                dir.display(),
                dir.display()
            ));
        }
    }
    let mut judged = Judged::default();
    let mut changed = false;
    for schema in &schemas {
        let event = &schema.event;
        if let Some((_, level)) = options.levels.iter().rev().find(|(e, _)| e == event) {
            let locked = lock
                .events
                .entry(event.clone())
                .or_insert_with(|| LockedEvent {
                    level: *level,
                    versions: Vec::new(),
                });
            changed |= locked.level != *level;
            locked.level = *level;
        }
        let forced = options.force.contains(event);
        let status = match lock.standing(event, &schema.schema) {
            Standing::Locked => "unchanged".to_owned(),
            Standing::Unlocked | Standing::Compatible(_) => {
                let version = lock.append(event, schema.schema.clone(), false);
                changed = true;
                let note = if forced { " (--force not needed)" } else { "" };
                format!("version {version}{note}")
            }
            Standing::Breaks(breaks) if forced => {
                let version = lock.append(event, schema.schema.clone(), true);
                changed = true;
                let first = breaks.first().map(ToString::to_string).unwrap_or_default();
                format!("version {version}, FORCED: {first}")
            }
            Standing::Breaks(breaks) => {
                judged.refused.extend(refusals(schema, &breaks));
                "INCOMPATIBLE".to_owned()
            }
        };
        judged.rows.push(row(&lock, schema, status));
    }
    if judged.refused.is_empty() && changed {
        std::fs::write(&path, lock.render()).map_err(|e| format!("cannot write {shown}: {e}"))?;
    }
    Ok(judged)
}

fn row(lock: &Lock, schema: &FolderSchema, status: String) -> [String; 4] {
    let locked = lock.events.get(&schema.event);
    [
        schema.event.clone(),
        locked.map_or_else(
            || Compatibility::default().to_string(),
            |l| l.level.to_string(),
        ),
        locked.map_or_else(|| "-".to_owned(), |l| l.versions.len().to_string()),
        status,
    ]
}

fn refusals(schema: &FolderSchema, breaks: &[Break]) -> Vec<String> {
    breaks
        .iter()
        .map(|broken| format!("{}: {broken}", schema.file))
        .collect()
}

/// Checks the folder against the same folder at the git revision `rev`: each event's history is
/// the lock at `rev` (when there was one) and its schema there; its level is the one the lock
/// has now. A break the lock records as forced is reported, not refused.
///
/// # Errors
/// When git cannot read the revision, or a folder or lock does not read (exit 2).
pub fn check_against(dir: &Path, rev: &str) -> Result<Judged, String> {
    let current = read_folder(dir)?;
    let lock_path = path_of(dir);
    let now = Lock::read(&lock_path, &lock_path.display().to_string())
        .map_err(|e| e.join("\n"))?
        .unwrap_or_default();
    let mut base = at_revision(dir, rev)?;
    for (event, locked) in &now.events {
        if let Some(then) = base.events.get_mut(event) {
            then.level = locked.level;
        }
    }
    let mut judged = Judged::default();
    for schema in &current {
        let event = &schema.event;
        let status = match base.standing(event, &schema.schema) {
            Standing::Locked => "unchanged".to_owned(),
            Standing::Unlocked => "new".to_owned(),
            Standing::Compatible(_) => "compatible".to_owned(),
            Standing::Breaks(breaks) => {
                let forced = now.events.get(event).is_some_and(|locked| {
                    locked
                        .versions
                        .iter()
                        .any(|v| v.forced && form(&v.schema) == form(&schema.schema))
                });
                if forced {
                    "FORCED in the lock (a deliberate break)".to_owned()
                } else {
                    judged.refused.extend(refusals(schema, &breaks));
                    "INCOMPATIBLE".to_owned()
                }
            }
        };
        let level = now
            .events
            .get(event)
            .or_else(|| base.events.get(event))
            .map_or_else(
                || Compatibility::default().to_string(),
                |l| l.level.to_string(),
            );
        let versions = base
            .events
            .get(event)
            .map_or_else(|| "-".to_owned(), |l| l.versions.len().to_string());
        judged.rows.push([event.clone(), level, versions, status]);
    }
    Ok(judged)
}

/// The history at `rev`: its lock (when there was one), and each schema of its folder appended
/// when the lock did not have it as the latest version. Empty when the folder did not exist.
fn at_revision(dir: &Path, rev: &str) -> Result<Lock, String> {
    let prefix = git(dir, &["rev-parse", "--show-prefix"])?;
    let prefix = String::from_utf8_lossy(&prefix)
        .trim()
        .trim_end_matches('/')
        .to_owned();
    // Paths from here on are the repository's (git lists a tree relative to where it runs).
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let top = PathBuf::from(String::from_utf8_lossy(&top).trim());
    let dir = top.as_path();
    let mut lock = if prefix.is_empty() {
        Lock::default()
    } else {
        match git(dir, &["show", &format!("{rev}:{prefix}.lock")]) {
            Ok(text) => Lock::parse(
                &String::from_utf8_lossy(&text),
                &format!("{rev}:{prefix}.lock"),
            )
            .map_err(|e| e.join("\n"))?,
            Err(_) => Lock::default(),
        }
    };
    // The revision must exist, whether or not the folder did.
    git(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| {
        format!(
            "`{rev}` is not a revision of the git repository at {}",
            dir.display()
        )
    })?;
    let Ok(names) = git(dir, &["ls-tree", "--name-only", &format!("{rev}:{prefix}")]) else {
        return Ok(lock);
    };
    let copy = TempDir::new()?;
    let mut any = false;
    for name in String::from_utf8_lossy(&names).lines() {
        if Path::new(name).extension().is_none_or(|x| x != "avsc") {
            continue;
        }
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let text = git(dir, &["show", &format!("{rev}:{path}")])?;
        std::fs::write(copy.0.join(name), text).map_err(|e| e.to_string())?;
        any = true;
    }
    if !any {
        return Ok(lock);
    }
    for schema in read_folder(&copy.0).map_err(|e| format!("the folder at {rev}: {e}"))? {
        if lock.standing(&schema.event, &schema.schema) != Standing::Locked {
            lock.append(&schema.event, schema.schema, false);
        }
    }
    Ok(lock)
}

/// A git command's standard output, run in `dir`.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("kaufmann-schemas-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
