//! `schemas.lock` from the command line: `kaufmann schemas lock` records compatible changes and
//! refuses a break (exit 1, naming event, field and rule, the lock untouched) unless forced;
//! `schemas check --against REV` judges the folder against itself at a git revision of a
//! repository made by the test; `schemas migrate` registers the locked history in order, and again
//! changes nothing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use kaufmann::registry::{Compatibility, MemoryRegistry, SchemaRegistry};
use kaufmann_cli::registry_server::LocalRegistry;
use kaufmann_schema_folder::lock::{form, Lock};

mod common;

const EVENT: &str = "event.user.created";

/// A folder of its own for each test, removed at the end when the test passed.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kaufmann-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("schemas")).unwrap();
        Self(dir)
    }

    /// Writes the event's schema with `id` and these extra fields.
    fn schema(&self, extra: &str) {
        let text = format!(
            r#"{{"type":"record","name":"created","namespace":"event.user","fields":[
                {{"name":"id","type":"string"}}{extra}]}}"#
        );
        std::fs::write(self.0.join("schemas").join(format!("{EVENT}.avsc")), text).unwrap();
    }

    fn kaufmann(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let output = common::kaufmann(&self.0, args);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn lock_text(&self) -> String {
        std::fs::read_to_string(self.0.join("schemas.lock")).unwrap_or_default()
    }

    fn git(&self, args: &[&str]) {
        let status = Command::new("git")
            .args([
                "-c",
                "user.name=test",
                "-c",
                "user.email=test@example.invalid",
            ])
            .args(args)
            .current_dir(&self.0)
            .output()
            .unwrap();
        assert!(status.status.success(), "git {args:?}: {status:?}");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

const AGE: &str = r#",{"name":"age","type":"int","default":0}"#;
const EMAIL_WITHOUT_DEFAULT: &str =
    r#",{"name":"age","type":"int","default":0},{"name":"email","type":"string"}"#;

#[test]
fn lock_records_compatible_changes_and_refuses_a_break_unless_forced() {
    let scratch = Scratch::new("lock");
    scratch.schema("");
    let (code, out, err) = scratch.kaufmann(&["schemas", "lock"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("version 1"), "{out}");
    scratch.schema(AGE);
    let (code, out, _) = scratch.kaufmann(&["schemas", "lock"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("version 2"), "{out}");
    let before = scratch.lock_text();
    let lock = Lock::parse(&before, "schemas.lock").unwrap();
    let locked = &lock.events[EVENT];
    assert_eq!(locked.level, Compatibility::Backward);
    assert_eq!(locked.versions.len(), 2);
    assert!(form(&locked.versions[1].schema).contains("\"default\":0"));

    // A field without a default: refused, naming event, field and rule; the lock is unchanged.
    scratch.schema(EMAIL_WITHOUT_DEFAULT);
    let (code, out, err) = scratch.kaufmann(&["schemas", "lock"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("INCOMPATIBLE"), "{out}");
    assert!(
        err.contains(&format!(
            "schemas/{EVENT}.avsc: field 'email' added without a default breaks BACKWARD: the \
             new schema cannot read data written with version 2"
        )),
        "{err}"
    );
    assert!(err.contains("the lock was not written"), "{err}");
    assert_eq!(scratch.lock_text(), before);
    // Unchanged input, same answer.
    assert_eq!(scratch.kaufmann(&["schemas", "lock"]).0, Some(1));

    // Forced: recorded as version 3, visibly.
    let (code, out, err) = scratch.kaufmann(&["schemas", "lock", "--force", EVENT]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("version 3, FORCED: field 'email'"), "{out}");
    let text = scratch.lock_text();
    assert!(text.lines().any(|l| l.starts_with("  3 forced ")), "{text}");
    assert_eq!(
        scratch
            .kaufmann(&["schemas", "lock"])
            .1
            .matches("unchanged")
            .count(),
        1
    );

    // A level set on the command line is kept on the event's line.
    let (code, _, _) = scratch.kaufmann(&["schemas", "lock", "--level", &format!("{EVENT}=FULL")]);
    assert_eq!(code, Some(0));
    assert!(scratch.lock_text().contains(&format!("\n{EVENT} FULL\n")));
    let (code, _, err) = scratch.kaufmann(&["schemas", "lock", "--force", "event.nope"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`event.nope` is not an event"), "{err}");
}

#[test]
fn check_against_a_revision_judges_the_folder_by_git_show() {
    let scratch = Scratch::new("against");
    scratch.git(&["init", "-q"]);
    scratch.schema("");
    assert_eq!(scratch.kaufmann(&["schemas", "lock"]).0, Some(0));
    scratch.git(&["add", "."]);
    scratch.git(&["commit", "-q", "-m", "v1"]);
    scratch.schema(AGE);
    assert_eq!(scratch.kaufmann(&["schemas", "lock"]).0, Some(0));
    scratch.git(&["commit", "-q", "-am", "v2: age with a default"]);

    // HEAD~1 has v1: adding a field with a default does not break.
    let (code, out, err) = scratch.kaufmann(&["schemas", "check", "--against", "HEAD~1"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("compatible"), "{out}");

    // A committed break (the lock not updated): HEAD~1 (v2) against the folder (v3).
    scratch.schema(EMAIL_WITHOUT_DEFAULT);
    scratch.git(&["commit", "-q", "-am", "v3: email without a default"]);
    let (code, out, err) = scratch.kaufmann(&["schemas", "check", "--against", "HEAD~1"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("field 'email' added without a default breaks BACKWARD"),
        "{err}"
    );
    // Against HEAD (the same schema), nothing changed; no checkout happened.
    let (code, out, _) = scratch.kaufmann(&["schemas", "check", "--against", "HEAD"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("unchanged"), "{out}");
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(&scratch.0)
        .output()
        .unwrap();
    assert!(status.stdout.is_empty(), "the work tree is untouched");

    // A break the lock records as forced is reported, not refused.
    let (code, _, err) = scratch.kaufmann(&["schemas", "lock", "--force", EVENT]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = scratch.kaufmann(&["schemas", "check", "--against", "HEAD~1"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("FORCED in the lock"), "{out}");

    // A revision that is not one: exit 2.
    let (code, _, err) = scratch.kaufmann(&["schemas", "check", "--against", "no-such-rev"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no-such-rev"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_registers_the_locked_history_in_order_and_is_idempotent() {
    let scratch = Scratch::new("migrate");
    for (extra, force) in [("", false), (AGE, false), (EMAIL_WITHOUT_DEFAULT, true)] {
        scratch.schema(extra);
        let args: &[&str] = if force {
            &["schemas", "lock", "--force", EVENT]
        } else {
            &["schemas", "lock"]
        };
        assert_eq!(scratch.kaufmann(args).0, Some(0));
    }
    let lock = Lock::parse(&scratch.lock_text(), "schemas.lock").unwrap();
    let registry = Arc::new(MemoryRegistry::new("mock://cli-lock"));
    let server = LocalRegistry::start("127.0.0.1:0", registry.clone())
        .await
        .unwrap();
    let url = server.url();
    let subject = format!("{EVENT}-value");
    let dir = scratch.0.clone();
    let migrate = move || {
        let out = common::kaufmann(&dir, &["schemas", "migrate", "--registry", &url]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = tokio::task::spawn_blocking(migrate.clone()).await.unwrap();
    assert_eq!(first.matches(" new").count(), 3, "{first}");
    let versions = registry.versions(&subject).await.unwrap();
    assert_eq!(versions, [1, 2, 3]);
    for (number, locked) in versions.iter().zip(&lock.events[EVENT].versions) {
        let registered = registry.subject_version(&subject, *number).unwrap();
        assert_eq!(
            form(&registered.schema),
            form(&locked.schema),
            "version {number}"
        );
    }
    // The subject keeps the event's level, whatever the forced version needed.
    assert_eq!(
        registry.compatibility(Some(&subject)).await.unwrap(),
        Compatibility::Backward
    );
    let again = tokio::task::spawn_blocking(migrate).await.unwrap();
    assert_eq!(again.matches("unchanged").count(), 3, "{again}");
    assert_eq!(registry.versions(&subject).await.unwrap(), [1, 2, 3]);
    server.stop().await;
}

/// The sample's `schemas.lock` has the history of its events (two versions of
/// `query.res.user.get`), and every schema of the folder is its latest locked version.
#[test]
fn the_sample_lock_is_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let lock = Lock::read(&root.join("schemas.lock"), "schemas.lock")
        .unwrap()
        .unwrap();
    assert_eq!(lock.events["query.res.user.get"].versions.len(), 2);
    let folder = kaufmann_cli::folder::read_folder(&root.join("schemas")).unwrap();
    assert_eq!(folder.len(), lock.events.len());
    for schema in folder {
        assert_eq!(
            lock.standing(&schema.event, &schema.schema),
            kaufmann_schema_folder::lock::Standing::Locked,
            "{}",
            schema.event
        );
    }
}
