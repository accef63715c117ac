//! What the CLI's test files share.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `kaufmann` command built for the tests in `dir`, with no registry URL or config file
/// from the environment.
pub fn kaufmann(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaufmann"))
        .args(args)
        .current_dir(dir)
        .env_remove("KAUFMANN_REGISTRY_URL")
        .env_remove("KAUFMANN_CONFIG")
        .output()
        .unwrap()
}
