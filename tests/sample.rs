//! The sample service, run as its users run it (`cargo run --example user_service`, no
//! configuration): it starts the embedded broker, seeds demo commands, logs each handled and
//! published event, and stops cleanly on SIGINT (no warning or error while it stops).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(std::path::Path::parent).unwrap();
    let path = dir
        .join("examples")
        .join(format!("user_service{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

#[test]
fn sample_handles_and_publishes_its_demo_commands_then_stops_on_sigint() {
    let mut command = Command::new(example_binary());
    for (key, _) in std::env::vars() {
        if key.starts_with("KAUFMANN_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    let count = |lines: &[String], text: &str| lines.iter().filter(|l| l.contains(text)).count();
    while count(&lines, "published event.user.created") < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(line) = rx.recv_timeout(left) {
            lines.push(line);
        } else {
            let _ = child.kill();
            panic!(
                "the sample did not publish 3 events within 60 s; it printed:\n{}",
                lines.join("\n")
            );
        }
    }
    assert!(
        lines[0].contains("embedded in-process mock cluster"),
        "first line: {}",
        lines[0]
    );
    assert_eq!(count(&lines, "handled command.user.create"), 3);

    let status = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "the sample exited with {exit} after SIGINT");
    // From the signal on: a clean stop, and no client complaining that the embedded broker went
    // away before it did.
    let printed: Vec<String> = lines.into_iter().chain(rx.iter()).collect();
    let stopping: Vec<&String> = printed
        .iter()
        .skip_while(|l| !l.contains("shutdown signal received"))
        .collect();
    assert!(
        stopping.iter().any(|l| l.contains("service stopped")),
        "no stop after the signal:\n{}",
        printed.join("\n")
    );
    let complaints: Vec<&&String> = stopping
        .iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(
        complaints.is_empty(),
        "the sample complained while it stopped:\n{}",
        printed.join("\n")
    );
}
