//! The `kaufmann` command: registers a schemas folder in a registry, checks compatibility before a
//! deploy, lists what is registered, serves a local development registry and writes new services.

// The doc comments of the argument types are the `--help` text, where backticks would show.
#![allow(clippy::doc_markdown)]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use apache_avro::Schema;
use clap::{Args, Parser, Subcommand};
use kaufmann::error::RegistryError;
use kaufmann::registry::{
    memory_scope, Compatibility, SchemaRegistry, SubjectStrategy, SubjectVersion,
};
use kaufmann::Config;
use kaufmann::EmbeddedBroker;
use kaufmann_cli::folder::{read_folder, FolderSchema};
use kaufmann_cli::registry_server::{LocalRegistry, ServerTls};
use kaufmann_cli::{lock, new};
use kaufmann_schema_folder::lock::{path_of, Lock, Standing};

/// Kaufmann's command line: schemas and the local registry.
#[derive(Parser)]
#[command(name = "kaufmann", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register, check and list the schemas of a folder.
    #[command(subcommand)]
    Schemas(SchemasCommand),
    /// The local development registry.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Write a new service crate into DIR: a command schema and the event its handler publishes,
    /// the handler, `run!()`, a test on the test bus and a README. It builds and passes its test
    /// as written.
    New {
        /// The folder to create (it may exist if empty); its name is the crate's.
        dir: PathBuf,
        /// The crate name, when the folder's name is not the one wanted.
        #[arg(long)]
        name: Option<String>,
        /// The kaufmann crate to depend on by path: its folder or your clone of the repository
        /// (default: the one this command was built from).
        #[arg(long)]
        kaufmann_path: Option<PathBuf>,
    },
    /// Run the local development stack until Ctrl-C: the embedded broker (librdkafka's mock
    /// cluster) and the local registry on 127.0.0.1, with the schemas folder registered.
    Dev {
        /// The folder of `.avsc` files to register (skipped when it does not exist).
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
        /// The registry's address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        registry_addr: String,
        /// Topics to create (default: the config's topics, default topic and their `.DLT`).
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SchemasCommand {
    /// Register every schema of the folder (idempotent) and print subject, version, id and
    /// whether it is new. With a schemas.lock, each event's locked versions are registered first,
    /// in order, at the event's level, so that a fresh registry gets the same version history.
    Migrate(SchemasArgs),
    /// Test each schema against the registry's latest version of its subject; exit 1 naming every
    /// incompatible subject and why (for CI, before a deploy). With --against REV, test the
    /// folder against the same folder at a git revision instead (no registry).
    Check(CheckArgs),
    /// Record each changed schema of the folder in its schemas.lock (beside the folder) as its
    /// event's next version, when it keeps the event's compatibility level; exit 1 naming the
    /// event, field and rule of every break, writing nothing.
    Lock(LockArgs),
    /// List the folder's schemas with their subjects and what the registry has for them.
    List(SchemasArgs),
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Serve an in-memory registry over the Confluent REST API subset until Ctrl-C (a development
    /// stand-in: nothing is persisted).
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        addr: String,
        /// Serve HTTPS with this PEM certificate chain (needs `--tls-key`).
        #[arg(long, requires = "tls_key")]
        tls_certificate: Option<String>,
        /// The PEM private key of `--tls-certificate`.
        #[arg(long, requires = "tls_certificate")]
        tls_key: Option<String>,
        /// Require client certificates signed by the CAs of this PEM file.
        #[arg(long, requires = "tls_certificate")]
        tls_client_ca: Option<String>,
    },
}

#[derive(Args)]
struct SchemasArgs {
    /// The registry (default: KAUFMANN_REGISTRY_URL or `registry_url` in kaufmann.toml).
    #[arg(long)]
    registry: Option<String>,
    /// The folder of `.avsc` files, one per event.
    #[arg(long, default_value = "schemas")]
    dir: PathBuf,
    /// How subjects are named: event, topic, record or topic_record (default: the config's
    /// `subject_strategy`, else `event`).
    #[arg(long)]
    strategy: Option<String>,
    /// The topic for the topic strategies (default: the config's `default_topic`).
    #[arg(long)]
    topic: Option<String>,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    schemas: SchemasArgs,
    /// Compare with the folder (and its schemas.lock) at this git revision, read with `git
    /// show`, instead of a registry: for CI on pull requests (`--against origin/main`).
    #[arg(long)]
    against: Option<String>,
}

#[derive(Args)]
struct LockArgs {
    /// The folder of `.avsc` files; its lock is `<folder>.lock`.
    #[arg(long, default_value = "schemas")]
    dir: PathBuf,
    /// Record this event's breaking change on purpose (a forced version: later versions are
    /// checked against it, not the ones before). Repeat for several events.
    #[arg(long, value_name = "EVENT")]
    force: Vec<String>,
    /// Set an event's compatibility level (BACKWARD, FORWARD, FULL, their _TRANSITIVE forms or
    /// NONE; new events keep BACKWARD). Repeat for several events.
    #[arg(long, value_name = "EVENT=LEVEL", value_parser = lock::level_arg)]
    level: Vec<(String, Compatibility)>,
}

/// What a command reports when it cannot do its work (exit code 2).
type Failure = String;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schemas(command) => schemas(command).await,
        Command::Registry(RegistryCommand::Serve {
            addr,
            tls_certificate,
            tls_key,
            tls_client_ca,
        }) => {
            let tls = tls_certificate
                .zip(tls_key)
                .map(|(certificate, key)| ServerTls {
                    certificate,
                    key,
                    client_ca: tls_client_ca,
                });
            serve(&addr, tls.as_ref()).await
        }
        Command::Dev {
            dir,
            registry_addr,
            topics,
        } => dev(&dir, &registry_addr, topics).await,
        Command::New {
            dir,
            name,
            kaufmann_path,
        } => new_service(&dir, name.as_deref(), kaufmann_path),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// The folder's schemas, each with its subject, the registry to compare them with, and the
/// folder's lock (empty when it has none).
struct Plan {
    registry: Arc<dyn SchemaRegistry>,
    schemas: Vec<(String, FolderSchema)>,
    lock: Lock,
}

fn plan(args: &SchemasArgs) -> Result<Plan, Failure> {
    let mut config = Config::from_env().map_err(|e| e.to_string())?;
    if let Some(url) = &args.registry {
        config.registry_url.clone_from(url);
    }
    if config.registry_url.starts_with("mock://") {
        return Err(format!(
            "the registry `{}` lives inside one process; pass --registry http://host:port or set \
             KAUFMANN_REGISTRY_URL (`kaufmann registry serve` runs a local one)",
            config.registry_url
        ));
    }
    let strategy = match &args.strategy {
        Some(name) => SubjectStrategy::parse(name).ok_or_else(|| {
            format!("--strategy `{name}`: expected event, topic, record or topic_record")
        })?,
        None => config.subject_strategy,
    };
    let topic = args.topic.clone().unwrap_or(config.default_topic.clone());
    let registry = config.open_registry().map_err(|e| e.to_string())?;
    let schemas = read_folder(&args.dir)?
        .into_iter()
        .map(|s| (strategy.subject(&s.event, &topic, &s.schema), s))
        .collect();
    let lock_path = path_of(&args.dir);
    let lock = Lock::read(&lock_path, &lock_path.display().to_string())
        .map_err(|e| e.join("\n"))?
        .unwrap_or_default();
    Ok(Plan {
        registry,
        schemas,
        lock,
    })
}

/// One progress line, rewritten in place, when standard error is a terminal.
fn progress(index: usize, total: usize, subject: &str) {
    let mut err = std::io::stderr();
    if !err.is_terminal() {
        return;
    }
    let _ = write!(err, "\r[{}/{total}] {subject}\x1b[K", index + 1);
    if index + 1 == total {
        let _ = writeln!(err);
    }
}

fn table(header: [&str; 4], rows: &[[String; 4]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; 4]| {
        let out: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", out.join("  ").trim_end());
    };
    line(header);
    for row in rows {
        line([&row[0], &row[1], &row[2], &row[3]]);
    }
}

async fn schemas(command: SchemasCommand) -> Result<ExitCode, Failure> {
    match command {
        SchemasCommand::Migrate(args) => migrate(&plan(&args)?).await,
        SchemasCommand::Check(CheckArgs {
            schemas,
            against: Some(rev),
        }) => Ok(judged(&lock::check_against(&schemas.dir, &rev)?, "check")),
        SchemasCommand::Check(CheckArgs { schemas, .. }) => check(&plan(&schemas)?).await,
        SchemasCommand::Lock(args) => {
            let options = lock::LockOptions {
                force: args.force,
                levels: args.level,
            };
            Ok(judged(&lock::lock(&args.dir, &options)?, "lock"))
        }
        SchemasCommand::List(args) => list(&plan(&args)?).await,
    }
}

/// The table of a `lock` or `check --against`, and its refusals; exit 1 when there are any.
fn judged(judged: &lock::Judged, command: &str) -> ExitCode {
    table(
        ["event", "compatibility", "versions", "result"],
        &judged.rows,
    );
    if judged.refused.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!();
    for refusal in &judged.refused {
        eprintln!("  - {refusal}");
    }
    let written = if command == "lock" {
        "; the lock was not written"
    } else {
        ""
    };
    eprintln!(
        "\n{} breaking change(s){written}: give new fields defaults, keep removed ones' defaults, \
         or record a deliberate break with `kaufmann schemas lock --force EVENT`",
        judged.refused.len()
    );
    ExitCode::from(1)
}

async fn migrate(plan: &Plan) -> Result<ExitCode, Failure> {
    let mut rows = Vec::new();
    for (index, (subject, file)) in plan.schemas.iter().enumerate() {
        progress(index, plan.schemas.len(), subject);
        let failed = |e: RegistryError| format!("{}: {e}", file.file);
        // The locked history first, in order, at the event's level; a forced version under NONE.
        if let Some(locked) = plan.lock.events.get(&file.event) {
            let set = |level| plan.registry.set_compatibility(Some(subject), level);
            if plan.registry.compatibility(Some(subject)).await.ok() != Some(locked.level) {
                set(locked.level).await.map_err(failed)?;
            }
            for version in &locked.versions {
                let registered = if version.forced {
                    registered(plan, subject, &version.schema).await
                } else {
                    None
                };
                let row = match registered {
                    Some(row) => row,
                    None if version.forced => {
                        set(Compatibility::None).await.map_err(failed)?;
                        let row = register_once(plan, subject, &version.schema).await;
                        set(locked.level).await.map_err(failed)?;
                        row.map_err(failed)?
                    }
                    None => register_once(plan, subject, &version.schema)
                        .await
                        .map_err(failed)?,
                };
                rows.push(row);
            }
            if locked.standing(&file.schema) == Standing::Locked {
                continue;
            }
        }
        rows.push(
            register_once(plan, subject, &file.schema)
                .await
                .map_err(failed)?,
        );
    }
    table(["subject", "version", "id", "status"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// The row of `schema` when `subject` has it already.
async fn registered(plan: &Plan, subject: &str, schema: &Schema) -> Option<[String; 4]> {
    let found = plan.registry.lookup(subject, schema).await.ok()?;
    Some(version_row(&found, "unchanged"))
}

/// Registers `schema` under `subject` unless it is there already (then it is `unchanged`), and
/// returns its row (subject, version, id, status).
async fn register_once(
    plan: &Plan,
    subject: &str,
    schema: &Schema,
) -> Result<[String; 4], RegistryError> {
    match plan.registry.lookup(subject, schema).await {
        Ok(found) => return Ok(version_row(&found, "unchanged")),
        Err(RegistryError::SubjectNotFound { .. } | RegistryError::SchemaNotInSubject { .. }) => {}
        Err(err) => return Err(err),
    }
    plan.registry.register(subject, schema).await?;
    let found = plan.registry.lookup(subject, schema).await?;
    Ok(version_row(&found, "new"))
}

/// A row of `migrate`'s table.
fn version_row(found: &SubjectVersion, status: &str) -> [String; 4] {
    [
        found.subject.clone(),
        found.version.to_string(),
        found.id.to_string(),
        status.to_owned(),
    ]
}

async fn check(plan: &Plan) -> Result<ExitCode, Failure> {
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    for (index, (subject, file)) in plan.schemas.iter().enumerate() {
        progress(index, plan.schemas.len(), subject);
        let level = plan
            .registry
            .compatibility(Some(subject))
            .await
            .map_err(|e| e.to_string())?;
        let (latest, result) = match plan.registry.latest(subject).await {
            Err(RegistryError::SubjectNotFound { .. }) => {
                ("-".to_owned(), "new subject".to_owned())
            }
            Err(err) => return Err(err.to_string()),
            Ok(latest) => {
                let report = plan
                    .registry
                    .test_compatibility(subject, &file.schema)
                    .await
                    .map_err(|e| e.to_string())?;
                let result = if report.compatible {
                    "compatible".to_owned()
                } else {
                    refused.push((subject.clone(), file.file.clone(), report.messages));
                    "INCOMPATIBLE".to_owned()
                };
                (latest.version.to_string(), result)
            }
        };
        rows.push([subject.clone(), level.to_string(), latest, result]);
    }
    table(["subject", "compatibility", "latest", "result"], &rows);
    if refused.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for (subject, file, messages) in &refused {
        eprintln!("\n{subject} ({file}) is incompatible with the registry:");
        for message in messages {
            eprintln!("  - {message}");
        }
        if messages.is_empty() {
            eprintln!("  (the registry gave no reason; Apicurio answers with the verdict alone)");
        }
    }
    eprintln!(
        "\n{} of {} schemas would be refused; give new fields defaults, or change the subject's \
         compatibility level on purpose",
        refused.len(),
        plan.schemas.len()
    );
    Ok(ExitCode::from(1))
}

async fn list(plan: &Plan) -> Result<ExitCode, Failure> {
    let mut rows = Vec::new();
    for (subject, file) in &plan.schemas {
        let (version, id) = match plan.registry.lookup(subject, &file.schema).await {
            Ok(found) => (found.version.to_string(), found.id.to_string()),
            Err(_) => match plan.registry.latest(subject).await {
                Ok(latest) => (
                    format!("{} (local differs)", latest.version),
                    "-".to_owned(),
                ),
                Err(_) => ("not registered".to_owned(), "-".to_owned()),
            },
        };
        rows.push([file.event.clone(), subject.clone(), version, id]);
    }
    table(["event", "subject", "version", "id"], &rows);
    Ok(ExitCode::SUCCESS)
}

async fn serve(addr: &str, tls: Option<&ServerTls>) -> Result<ExitCode, Failure> {
    let registry = memory_scope("mock://kaufmann-dev").map_err(|e| e.to_string())?;
    let server = match tls {
        Some(tls) => LocalRegistry::start_tls(addr, registry, tls).await,
        None => LocalRegistry::start(addr, registry).await,
    }
    .map_err(|e| format!("cannot serve on {addr}: {e}"))?;
    println!(
        "local schema registry (development stand-in, in memory) on {}\n\
         export KAUFMANN_REGISTRY_URL={}\nCtrl-C stops it",
        server.url(),
        server.url()
    );
    wait_for_signal().await?;
    server.stop().await;
    Ok(ExitCode::SUCCESS)
}

async fn dev(dir: &Path, registry_addr: &str, topics: Vec<String>) -> Result<ExitCode, Failure> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let mut topics = if topics.is_empty() {
        let mut all = config.topics.clone();
        all.push(config.default_topic.clone());
        let dead: Vec<String> = all.iter().map(|t| format!("{t}.DLT")).collect();
        all.extend(dead);
        all
    } else {
        topics
    };
    topics.sort();
    topics.dedup();
    let broker = EmbeddedBroker::start(&topics).map_err(|e| e.to_string())?;
    let registry = memory_scope("mock://kaufmann-dev").map_err(|e| e.to_string())?;
    let server = LocalRegistry::start(registry_addr, registry.clone())
        .await
        .map_err(|e| format!("cannot listen on {registry_addr}: {e}"))?;
    let mut rows = Vec::new();
    if dir.is_dir() {
        for schema in read_folder(dir)? {
            let subject = config.subject_strategy.subject(
                &schema.event,
                &config.default_topic,
                &schema.schema,
            );
            let id = registry
                .register(&subject, &schema.schema)
                .await
                .map_err(|e| format!("{}: {e}", schema.file))?;
            rows.push([schema.event, subject, id.to_string(), String::new()]);
        }
    }
    println!(
        "kaufmann dev stack (development only: in memory, gone at exit)\n\
         broker:   {} (librdkafka mock cluster; topics: {})\n\
         registry: {} (local stand-in for a Confluent schema registry)\n\n\
         export KAUFMANN_BROKERS={}\n\
         export KAUFMANN_REGISTRY_URL={}\n",
        broker.bootstrap_servers(),
        topics.join(", "),
        server.url(),
        broker.bootstrap_servers(),
        server.url()
    );
    if rows.is_empty() {
        println!(
            "no schemas registered ({} has no .avsc files)",
            dir.display()
        );
    } else {
        table(["event", "subject", "id", ""], &rows);
    }
    println!("Ctrl-C stops it");
    wait_for_signal().await?;
    server.stop().await;
    drop(broker);
    Ok(ExitCode::SUCCESS)
}

fn new_service(
    dir: &Path,
    name: Option<&str>,
    kaufmann_path: Option<PathBuf>,
) -> Result<ExitCode, Failure> {
    let name = new::crate_name(dir, name).map_err(|e| e.to_string())?;
    let kaufmann =
        kaufmann_path.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../kaufmann"));
    let kaufmann = new::kaufmann_crate(&kaufmann).map_err(|e| e.to_string())?;
    let written = new::write_service(dir, &name, &kaufmann).map_err(|e| e.to_string())?;
    println!(
        "created the service `{name}` in {} (kaufmann from {}):",
        dir.display(),
        kaufmann.display()
    );
    for path in &written {
        println!("  {}", path.display());
    }
    println!(
        "\nnext:\n  cd {}\n  cargo test   # the handler on the test bus\n  cargo run    # the \
         service on the embedded broker; Ctrl-C stops it",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_signal() -> Result<(), Failure> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map_err(|e| e.to_string()),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
    }
}
