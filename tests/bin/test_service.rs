//! A service process for the process-level tests (crash, two members, SIGTERM): the `test.work`
//! handler of `kaufmann_tests`, configured by `KAUFMANN_*` variables like any service.
//!
//! The in-memory registry lives in one process, so this process and the test's producer each
//! register `test.work` first in a fresh `mock://` scope: both get schema id 1.

use kaufmann::registry::{open_registry, subject_for};
use kaufmann::EventSchema;
use kaufmann_tests::TestWork;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    kaufmann::exit_code(run().await)
}

async fn run() -> kaufmann::Result<()> {
    let config = kaufmann::Config::from_env()?;
    kaufmann::init_logging_as(config.log_format);
    let registry = open_registry(&config.registry_url)?;
    registry
        .register(&subject_for(TestWork::EVENT_NAME), TestWork::schema())
        .await?;
    kaufmann_tests::start(config)
        .await?
        .run_until_signal()
        .await
}
