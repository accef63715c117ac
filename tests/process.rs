//! Service processes on the Apache Kafka broker: killed with SIGKILL and restarted, two members of
//! one group, a member joining under load (cooperative rebalancing, with the classic protocol and
//! with KIP-848's consumer protocol), and SIGTERM under load.

#![allow(clippy::cast_possible_truncation, clippy::items_after_statements)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use kaufmann_cli::registry_server::LocalRegistry;
use kaufmann_tests::{
    broker, committed, from_test_stack, high_watermarks, hostile, produce, read_dead_letters,
    service_command, topic_with_dead_letters, unique, work_items, work_records, Record,
    SecuredBroker,
};

pub(crate) const LIMIT: Duration = Duration::from_secs(120);

/// The process tests run one at a time: each starts service processes on a 2-core machine.
pub(crate) static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A service process that is killed if the test ends without stopping it.
pub(crate) use kaufmann_tests::Running as Service;

/// One line of a handled file: id, partition, offset.
type Handled = (i64, i32, i64);

thread_local! {
    /// The last panic on this thread, with its location.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Keeps each panic's message for [`Setup`]'s drop (once per process; the default hook still
/// prints it, with the backtrace).
fn remember_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(info.to_string()));
            default(info);
        }));
    });
}

pub(crate) struct Setup {
    pub(crate) brokers: String,
    pub(crate) topic: String,
    pub(crate) group: String,
    dir: PathBuf,
}

impl Setup {
    pub(crate) async fn new(name: &str, partitions: i32, records: Vec<Record>) -> Option<Self> {
        let brokers = broker()?;
        let topic = topic_with_dead_letters(&brokers, name, partitions).await;
        // The producer's scope gets `test.work` as id 1, as each service process's own scope does.
        produce(
            &brokers,
            &topic,
            &format!("mock://{}", unique("p")),
            records,
        )
        .await;
        remember_panics();
        let dir = std::env::temp_dir().join(unique("kaufmann-process"));
        std::fs::create_dir_all(&dir).unwrap();
        Some(Self {
            brokers,
            group: unique("group"),
            topic,
            dir,
        })
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Starts the test service; `extra` adds or overrides `KAUFMANN_*` variables. Its output
    /// (JSON log lines, warnings and the engine's rebalance lines; errors on stderr) goes to
    /// `<handled_file>.log`.
    pub(crate) fn spawn(&self, handled_file: &str, extra: &[(&str, &str)]) -> Service {
        self.spawn_binary(env!("CARGO_BIN_EXE_test-service"), handled_file, extra)
    }

    /// [`spawn`](Self::spawn) with another build of the test service.
    fn spawn_binary(&self, binary: &str, handled_file: &str, extra: &[(&str, &str)]) -> Service {
        let log = self.file(&format!("{handled_file}.log"));
        let mut command = service_command(binary, &log);
        command
            .env("KAUFMANN_BROKERS", &self.brokers)
            .env("KAUFMANN_TOPICS", &self.topic)
            .env("KAUFMANN_GROUP_ID", &self.group)
            .env("KAUFMANN_SERVICE_NAME", "process-test")
            .env("KAUFMANN_REGISTRY_URL", "mock://process")
            .env("KAUFMANN_COMMIT_INTERVAL_MS", "20")
            .env("KAUFMANN_SHUTDOWN_TIMEOUT_MS", "20000")
            .env("KAUFMANN_LOG_FORMAT", "json")
            .env("TEST_HANDLED_FILE", self.file(handled_file))
            .env(
                "RUST_LOG",
                std::env::var("TEST_SERVICE_LOG")
                    .unwrap_or_else(|_| "warn,kaufmann::consume=info".to_owned()),
            );
        // KIP-848's protocol takes session and heartbeat timeouts from the broker only.
        if !extra.contains(&("KAUFMANN_GROUP_PROTOCOL", "consumer")) {
            command
                .env("KAUFMANN_LIBRDKAFKA_SESSION_TIMEOUT_MS", "6000")
                .env("KAUFMANN_LIBRDKAFKA_HEARTBEAT_INTERVAL_MS", "500");
        }
        for (key, value) in extra {
            command.env(key, value);
        }
        Service(command.spawn().unwrap())
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Repeated after the backtrace, where a shortened log of the run still shows it.
            let why = LAST_PANIC.with(|last| last.borrow_mut().take());
            eprintln!(
                "the handled files are kept in {}; the test failed: {}",
                self.dir.display(),
                why.as_deref().unwrap_or("(see above)")
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn read_handled(path: &Path) -> Vec<Handled> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split(' ').map(str::parse::<i64>);
            match (parts.next(), parts.next(), parts.next()) {
                (Some(Ok(id)), Some(Ok(p)), Some(Ok(o))) => Some((id, i32::try_from(p).ok()?, o)),
                _ => None,
            }
        })
        .collect()
}

pub(crate) async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < LIMIT, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn signal(service: &Service, signal: &str) {
    let pid = service.0.id().to_string();
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid)
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

pub(crate) async fn wait_exit(service: &mut Service, limit: Duration) -> ExitStatus {
    let child = &mut service.0;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the service did not exit within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGKILL mid-stream, then a restart in the same group: every message is handled at least once,
/// and no more than `demand` messages are handled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_loses_nothing_and_repeats_at_most_demand_messages() {
    let _serial = ONE_AT_A_TIME.lock().await;
    const COUNT: i64 = 2_000;
    let records = work_records(COUNT, 40, 100);
    let Some(setup) = Setup::new("crash", 4, records).await else {
        return;
    };
    let mut first = setup.spawn("first.txt", &[]);
    wait_until("the first process handled 300", || {
        read_handled(&setup.file("first.txt")).len() >= 300
    })
    .await;
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let before = read_handled(&setup.file("first.txt"));

    let mut second = setup.spawn("second.txt", &[]);
    wait_until("every message was handled", || {
        let after = read_handled(&setup.file("second.txt"));
        before
            .iter()
            .chain(&after)
            .map(|h| h.0)
            .collect::<HashSet<_>>()
            .len()
            == COUNT as usize
    })
    .await;
    signal(&second, "TERM");
    assert!(wait_exit(&mut second, Duration::from_secs(30))
        .await
        .success());

    let after = read_handled(&setup.file("second.txt"));
    let mut times: HashMap<i64, usize> = HashMap::new();
    for (id, _, _) in before.iter().chain(&after) {
        *times.entry(*id).or_default() += 1;
    }
    let duplicates = times.values().filter(|n| **n > 1).count();
    assert_eq!(
        times.len(),
        COUNT as usize,
        "every message handled at least once"
    );
    assert!(
        duplicates <= 50,
        "{duplicates} messages handled twice, more than demand (50)"
    );
    println!(
        "crash test: {} handled before SIGKILL, {} after, {duplicates} twice",
        before.len(),
        after.len()
    );
}

/// Two processes in one group share a 4-partition topic; when one stops under load, the other
/// takes its partitions and handles the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_share_partitions_and_one_takes_over_when_the_other_stops() {
    let _serial = ONE_AT_A_TIME.lock().await;
    const COUNT: i64 = 4_000;
    let records = work_records(COUNT, 40, 50);
    let Some(setup) = Setup::new("pair", 4, records).await else {
        return;
    };
    let demand = [("KAUFMANN_DEMAND", "10")];
    let mut a = setup.spawn("a.txt", &demand);
    let mut b = setup.spawn("b.txt", &demand);
    wait_until("both members handle messages", || {
        !read_handled(&setup.file("a.txt")).is_empty()
            && !read_handled(&setup.file("b.txt")).is_empty()
    })
    .await;
    let partitions = |file: &str| {
        read_handled(&setup.file(file))
            .iter()
            .map(|h| h.1)
            .collect::<HashSet<_>>()
    };
    // A partition may move from the member that joined first to the other one, but the two
    // never handle one partition at the same time: on each partition they both handled, one
    // member's last message comes before the other's first.
    let (a_times, b_times) = (
        handled_times(&setup.file("a.txt")),
        handled_times(&setup.file("b.txt")),
    );
    let span = |times: &[(i32, i64, i64)], partition: i32| {
        let on: Vec<i64> = times
            .iter()
            .filter(|h| h.0 == partition)
            .map(|h| h.2)
            .collect();
        Some((*on.iter().min()?, *on.iter().max()?))
    };
    for partition in 0..4 {
        if let (Some(a_span), Some(b_span)) = (span(&a_times, partition), span(&b_times, partition))
        {
            assert!(
                a_span.1 < b_span.0 || b_span.1 < a_span.0,
                "a {a_span:?} and b {b_span:?} handled partition {partition} at the same time"
            );
        }
    }
    let a_parts = partitions("a.txt");

    signal(&a, "TERM");
    assert!(
        wait_exit(&mut a, Duration::from_secs(30)).await.success(),
        "a exits 0 on SIGTERM"
    );
    let a_final = read_handled(&setup.file("a.txt"));
    wait_until("b handled the rest", || {
        let b_now = read_handled(&setup.file("b.txt"));
        a_final
            .iter()
            .chain(&b_now)
            .map(|h| h.0)
            .collect::<HashSet<_>>()
            .len()
            == COUNT as usize
    })
    .await;
    let b_parts_after = partitions("b.txt");
    assert!(
        a_parts.is_subset(&b_parts_after),
        "b took over a's partitions {a_parts:?}: {b_parts_after:?}"
    );
    signal(&b, "TERM");
    assert!(wait_exit(&mut b, Duration::from_secs(30)).await.success());
}

/// SIGTERM under load: the process exits 0 within the shutdown timeout, and the committed offsets
/// cover every message it handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_work_and_commits_it() {
    let _serial = ONE_AT_A_TIME.lock().await;
    const COUNT: i64 = 3_000;
    let records = work_records(COUNT, 60, 100);
    let Some(setup) = Setup::new("term", 3, records).await else {
        return;
    };
    let mut service = setup.spawn("handled.txt", &[]);
    wait_until("300 handled", || {
        read_handled(&setup.file("handled.txt")).len() >= 300
    })
    .await;
    let asked = Instant::now();
    signal(&service, "TERM");
    let status = wait_exit(&mut service, Duration::from_secs(25)).await;
    assert!(status.success(), "exit status {status}");
    println!(
        "sigterm test: exited {:?} after the signal",
        asked.elapsed()
    );

    let handled = read_handled(&setup.file("handled.txt"));
    assert!(
        handled.len() < COUNT as usize,
        "the load was over before the signal"
    );
    let committed = committed(&setup.brokers, &setup.group, &setup.topic, 3);
    for (id, partition, offset) in &handled {
        assert!(
            *offset < committed[partition],
            "work {id} at {partition}@{offset} was handled but the commit is {}",
            committed[partition]
        );
    }
}

fn unix_micros() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_micros()).unwrap()
}

/// When each message was handled: (partition, id, microseconds since the Unix epoch).
fn handled_times(path: &Path) -> Vec<(i32, i64, i64)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let parts: Vec<i64> = line.split(' ').filter_map(|p| p.parse().ok()).collect();
            match parts[..] {
                [id, partition, _, micros] => Some((i32::try_from(partition).ok()?, id, micros)),
                _ => None,
            }
        })
        .collect()
}

/// A rebalance step in a service's log: when, whether partitions were revoked (else assigned),
/// and which partitions of `topic`.
#[derive(Debug)]
struct RebalanceStep {
    micros: i64,
    revoked: bool,
    partitions: HashSet<i32>,
}

/// The engine's "partitions revoked" and "partitions assigned" lines of a JSON log.
fn rebalance_steps(log: &Path, topic: &str) -> Vec<RebalanceStep> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|entry| {
            let message = entry["fields"]["message"].as_str()?;
            let revoked = if message.starts_with("partitions revoked") {
                true
            } else if message.starts_with("partitions assigned") {
                false
            } else {
                return None;
            };
            let micros =
                kaufmann::avro::chrono::DateTime::parse_from_rfc3339(entry["timestamp"].as_str()?)
                    .ok()?
                    .timestamp_micros();
            // `[("<topic>", 1), ..]` for a revoke, `["<topic>[1]", ..]` for an assignment.
            let listed = entry["fields"]["partitions"].as_str()?;
            let partitions = listed
                .split(topic)
                .skip(1)
                .filter_map(|rest| {
                    let digits: String = rest
                        .trim_start_matches(|c: char| !c.is_ascii_digit())
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    digits.parse().ok()
                })
                .collect();
            Some(RebalanceStep {
                micros,
                revoked,
                partitions,
            })
        })
        .collect()
}

/// A second member joins a group under load. The partitions that stay with the first member are
/// never revoked and keep being handled while the rebalance runs (between the first member's
/// revoke of the moving partitions and the second member's assignment); nothing is lost, and no
/// message of a staying partition is handled twice.
async fn a_joining_member_moves_only_the_partitions_it_takes(name: &str, protocol: &str) {
    let _serial = ONE_AT_A_TIME.lock().await;
    const COUNT: i64 = 3_000;
    const PARTITIONS: i32 = 4;
    let records = work_records(COUNT, 40, 20);
    let Some(setup) = Setup::new(name, PARTITIONS, records).await else {
        return;
    };
    let env = [
        ("KAUFMANN_DEMAND", "10"),
        ("KAUFMANN_GROUP_PROTOCOL", protocol),
    ];
    let mut a = setup.spawn("a.txt", &env);
    wait_until("the first member handled 200", || {
        read_handled(&setup.file("a.txt")).len() >= 200
    })
    .await;
    let mut b = setup.spawn("b.txt", &env);
    wait_until("every message was handled", || {
        read_handled(&setup.file("a.txt"))
            .iter()
            .chain(&read_handled(&setup.file("b.txt")))
            .map(|h| h.0)
            .collect::<HashSet<_>>()
            .len()
            == COUNT as usize
    })
    .await;
    let stopping = unix_micros();
    for service in [&a, &b] {
        signal(service, "TERM");
    }
    for service in [&mut a, &mut b] {
        assert!(wait_exit(service, Duration::from_secs(30)).await.success());
    }

    let (a_times, b_times) = (
        handled_times(&setup.file("a.txt")),
        handled_times(&setup.file("b.txt")),
    );
    let b_parts: HashSet<i32> = b_times.iter().map(|h| h.0).collect();
    let staying: HashSet<i32> = (0..PARTITIONS).filter(|p| !b_parts.contains(p)).collect();
    assert!(
        !b_parts.is_empty() && !staying.is_empty(),
        "the second member took {b_parts:?} of {PARTITIONS} partitions"
    );
    let a_steps = rebalance_steps(&setup.file("a.txt.log"), &setup.topic);
    let b_steps = rebalance_steps(&setup.file("b.txt.log"), &setup.topic);
    let revokes: Vec<&RebalanceStep> = a_steps.iter().filter(|s| s.revoked).collect();
    let first_revoke = revokes
        .first()
        .unwrap_or_else(|| panic!("the first member revoked nothing: {a_steps:?}"));
    // (The shutdown's own revoke, after `stopping`, gives up everything.)
    for step in revokes.iter().filter(|s| s.micros < stopping) {
        assert!(
            step.partitions.is_disjoint(&staying),
            "a staying partition was revoked: {step:?}, staying {staying:?}"
        );
    }
    let b_assigned = b_steps
        .iter()
        .find(|s| !s.revoked && !s.partitions.is_empty())
        .unwrap_or_else(|| panic!("the second member was assigned nothing: {b_steps:?}"));
    let during: Vec<&(i32, i64, i64)> = a_times
        .iter()
        .filter(|(p, _, t)| {
            staying.contains(p) && *t >= first_revoke.micros && *t <= b_assigned.micros
        })
        .collect();
    assert!(
        !during.is_empty(),
        "no message of the staying partitions {staying:?} was handled between the revoke ({}) \
         and the second member's assignment ({})",
        first_revoke.micros,
        b_assigned.micros
    );

    let mut times: HashMap<i64, usize> = HashMap::new();
    for (_, id, _) in a_times
        .iter()
        .chain(&b_times)
        .filter(|h| staying.contains(&h.0))
    {
        *times.entry(*id).or_default() += 1;
    }
    let twice: Vec<i64> = times
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        twice.is_empty(),
        "handled twice on staying partitions: {twice:?}"
    );
    println!(
        "{protocol} rebalance: b took {b_parts:?}, {} messages of staying partitions handled during \
         the {} ms rebalance",
        during.len(),
        (b_assigned.micros - first_revoke.micros) / 1000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_member_moves_only_the_partitions_it_takes_cooperative_sticky() {
    a_joining_member_moves_only_the_partitions_it_takes("coop", "classic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_member_moves_only_the_partitions_it_takes_kip_848() {
    a_joining_member_moves_only_the_partitions_it_takes("kip848", "consumer").await;
}

/// Every secret a service is given stays out of everything it prints, at debug level, in a
/// start-up and shutdown through the TLS + SCRAM listener and in failed starts (a wrong SASL
/// password, a registry URL with a scheme typo, a bad port, an unreachable registry): the SASL
/// password, the registry URL's password (with an `@` in it), the registry bearer token and a
/// librdkafka secret property.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_printed_at_start_up_on_failure_or_at_shutdown() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(secured) = SecuredBroker::from_env() else {
        return;
    };
    let Some(setup) = Setup::new("secrets", 1, work_records(10, 2, 0)).await else {
        return;
    };
    let server = registry_server().await;
    let registry_password = format!("reg@pw-{}", unique("r"));
    let token = unique("token");
    let key_password = unique("key-password");
    let wrong_password = unique("wrong-password");
    let with_password =
        |base: &str| base.replacen("://", &format!("://svc:{registry_password}@"), 1);
    let good_url = with_password(&server.url());
    let secrets = [
        secured.password.clone(),
        wrong_password.clone(),
        registry_password.clone(),
        registry_password.replace('@', "%40"),
        token.clone(),
        key_password.clone(),
    ];
    let common = [
        ("KAUFMANN_SECURITY_PROTOCOL", "sasl_ssl"),
        ("KAUFMANN_SASL_MECHANISM", "SCRAM-SHA-512"),
        ("KAUFMANN_SASL_USERNAME", secured.user.as_str()),
        ("KAUFMANN_SSL_CA_LOCATION", secured.ca.as_str()),
        ("KAUFMANN_BROKERS", secured.sasl.as_str()),
        ("KAUFMANN_REGISTRY_BEARER_TOKEN", token.as_str()),
        (
            "KAUFMANN_LIBRDKAFKA_SSL_KEY_PASSWORD",
            key_password.as_str(),
        ),
        ("RUST_LOG", "debug"),
    ];
    let run = |name: &str, password: &str, url: &str| {
        let mut env: Vec<(&str, &str)> = common.to_vec();
        env.extend([
            ("KAUFMANN_SASL_PASSWORD", password),
            ("KAUFMANN_REGISTRY_URL", url),
        ]);
        setup.spawn(name, &env)
    };

    let sasl = secured.password.as_str();
    let mut good = run("good.txt", sasl, &good_url);
    wait_until("the service handled the 10 messages", || {
        read_handled(&setup.file("good.txt")).len() >= 10
    })
    .await;
    signal(&good, "TERM");
    assert!(wait_exit(&mut good, Duration::from_secs(30))
        .await
        .success());

    let wrong = wrong_password.as_str();
    let failures = [
        (
            "wrong-password.txt",
            wrong,
            good_url.clone(),
            "SASL authentication",
        ),
        (
            "typo.txt",
            sasl,
            with_password("htps://127.0.0.1:1"),
            "is not supported",
        ),
        (
            "port.txt",
            sasl,
            with_password("http://127.0.0.1:99999"),
            "is not supported",
        ),
        (
            "down.txt",
            sasl,
            with_password("http://127.0.0.1:1"),
            "is unreachable",
        ),
    ];
    for (name, password, url, says) in failures {
        assert_failed_start(&setup, run(name, password, &url), name, says).await;
    }
    server.stop().await;
    let printed = assert_no_secret(
        &setup,
        &[
            "good.txt",
            "wrong-password.txt",
            "typo.txt",
            "port.txt",
            "down.txt",
        ],
        &secrets,
    );
    println!("secrets test: {printed} bytes of output, no secret in them");
}

/// The local registry server, serving a fresh in-memory registry.
pub(crate) async fn registry_server() -> LocalRegistry {
    let scope = format!("mock://{}", unique("registry"));
    let memory = kaufmann::registry::memory_scope(&scope).unwrap();
    LocalRegistry::start("127.0.0.1:0", memory).await.unwrap()
}

/// Waits for a service that must fail to start: it exits non-zero and its output says `says`.
async fn assert_failed_start(setup: &Setup, mut service: Service, name: &str, says: &str) {
    let status = wait_exit(&mut service, Duration::from_secs(60)).await;
    let output = std::fs::read_to_string(setup.file(&format!("{name}.log"))).unwrap();
    assert!(!status.success(), "{name}: a failed start exits non-zero");
    assert!(
        output.contains(says),
        "{name}: the error says `{says}`:\n{output}"
    );
}

/// Asserts that no output of the services `names` holds any of `secrets`, and that the first two
/// (the ones that printed the banner: the others fail before it, when the test service registers
/// its schema) show masks; returns how many bytes were read.
fn assert_no_secret(setup: &Setup, names: &[&str], secrets: &[String]) -> usize {
    let mut printed = 0;
    for (index, name) in names.iter().enumerate() {
        let output = std::fs::read_to_string(setup.file(&format!("{name}.log"))).unwrap();
        printed += output.len();
        for secret in secrets {
            assert!(
                !output.contains(secret.as_str()),
                "{name}: the output shows the secret {secret:?}:\n{output}"
            );
        }
        if index < 2 {
            assert!(
                output.contains("***"),
                "{name}: the banner masks:\n{output}"
            );
        }
    }
    printed
}

/// The peak resident memory of a process, in bytes (`VmHWM`).
fn peak_rss(service: &Service) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", service.0.id())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// The release build of the test service (`scripts/test` builds it and sets
/// `TEST_SERVICE_RELEASE`), against 100,000 hostile values on the broker: the issue's values
/// (recursion 1,000 and 100,000 levels deep, a map block claiming 500 million entries, 8.4 million
/// `null` items) and generated ones (see `kaufmann_tests::hostile`). The service stays up, each
/// value is either handled (a mutation that is still valid) or in the dead-letter topic with a
/// decode error, the good message after them is handled, and the peak RSS stays under 100 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_dead_lettered_and_the_release_service_stays_up() {
    const COUNT: usize = 100_000;
    const RSS_LIMIT: u64 = 100 << 20;
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(binary) = from_test_stack("TEST_SERVICE_RELEASE") else {
        return;
    };
    let Some(setup) = Setup::new("hostile", 2, Vec::new()).await else {
        return;
    };
    let server = registry_server().await;
    let writer = apache_avro::Schema::parse_str(hostile::WRITER_SCHEMA).unwrap();
    let writer_id = kaufmann::registry::SchemaRegistry::register(
        &**server.registry(),
        "test.hostile-value",
        &writer,
    )
    .await
    .unwrap();
    let values = hostile::values(COUNT);
    let bytes: usize = values.iter().map(Vec::len).sum();
    let records = values
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let value = kaufmann::wire::confluent::frame(writer_id, &body);
            Record::Headed(format!("h{}", i % 64), value)
        })
        .collect();
    let url = server.url();
    let mut service = setup.spawn_binary(
        &binary,
        "hostile.txt",
        &[
            ("KAUFMANN_REGISTRY_URL", url.as_str()),
            ("KAUFMANN_ERROR_EVENTS", "false"),
            // One error line per dead letter would be 100,000 lines.
            ("RUST_LOG", "warn,kaufmann::process::processor=off"),
        ],
    );
    let started = Instant::now();
    produce(&setup.brokers, &setup.topic, &url, records).await;
    let mut good = work_items(1, 1, 0).remove(0);
    good.id = 42;
    produce(&setup.brokers, &setup.topic, &url, vec![Record::Work(good)]).await;

    let dlt = format!("{}.DLT", setup.topic);
    let mut progress = (0, 0);
    let limit = Duration::from_secs(600);
    while progress.0 + progress.1 < COUNT
        || !read_handled(&setup.file("hostile.txt"))
            .iter()
            .any(|h| h.0 == 42)
    {
        assert!(
            started.elapsed() < limit,
            "after {limit:?}: (dead-lettered, handled) {progress:?} of {COUNT}"
        );
        assert!(
            matches!(service.0.try_wait(), Ok(None)),
            "the service stopped: {:?}",
            std::fs::read_to_string(setup.file("hostile.txt.log"))
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let dead = high_watermarks(&setup.brokers, &dlt, 1)
            .get(&0)
            .copied()
            .unwrap_or(0);
        let handled = read_handled(&setup.file("hostile.txt"))
            .iter()
            .filter(|h| h.0 >= hostile::id(0))
            .count();
        progress = (usize::try_from(dead).unwrap_or(0), handled);
    }
    let took = started.elapsed();
    let rss = peak_rss(&service);
    signal(&service, "TERM");
    assert!(wait_exit(&mut service, Duration::from_secs(30))
        .await
        .success());

    let dead = read_dead_letters(&setup.brokers, &dlt, progress.0).await;
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for (_, headers) in &dead {
        *kinds
            .entry(headers[kaufmann::wire::dead_letter::ERROR_KIND].clone())
            .or_default() += 1;
    }
    assert_eq!(
        kinds.keys().collect::<Vec<_>>(),
        ["decode"],
        "every dead letter is a decode error: {kinds:?}"
    );
    assert_eq!(progress.0 + progress.1, COUNT, "each value once");
    assert!(rss < RSS_LIMIT, "peak RSS {} MiB", rss >> 20);
    println!(
        "hostile values: {COUNT} ({} MiB) in {took:.1?}: {} dead-lettered (decode), {} still valid and handled; \
         peak RSS {} MiB (limit {} MiB)",
        bytes >> 20,
        progress.0,
        progress.1,
        rss >> 20,
        RSS_LIMIT >> 20
    );
}
