//! The sample user service. With no configuration it runs on the embedded broker, seeds a few
//! `command.user.create` events and logs each handled and published event until Ctrl-C:
//!
//! ```text
//! cargo run --example user_service
//! ```
//!
//! With `KAUFMANN_BROKERS` set it joins that Kafka cluster and seeds nothing. With `--asyncapi` it
//! prints its AsyncAPI document and exits. A service with
//! nothing to seed needs only `kaufmann::run!(state = Users::default());` as its `main`.

// The handlers live in the sample's library; this links them into the binary.
use kaufmann_examples::{demo_commands, Users};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    kaufmann::exit_code(run().await)
}

async fn run() -> kaufmann::Result<()> {
    let config = kaufmann::Config::from_env()?;
    // `--asyncapi` prints the service's AsyncAPI document (`run!()` does this by itself).
    if let Some(printed) = kaufmann::asyncapi::print_if_asked(&config, env!("CARGO_PKG_VERSION")) {
        return printed;
    }
    kaufmann::init_logging_as(config.log_format);
    let service = kaufmann::Service::builder(config)
        .state(Users::default())
        .start()
        .await?;
    if service.embedded_brokers().is_some() {
        for command in demo_commands() {
            let meta = service.publisher().publish(command).await?;
            tracing::info!(message_id = %meta.message_id, "seeded demo command.user.create");
        }
    }
    service.run_until_signal().await
}
