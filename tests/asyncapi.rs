//! AsyncAPI documents, checked by the AsyncAPI project's own parser (`@asyncapi/parser` with its
//! Avro schema parser, installed by `scripts/install-asyncapi-parser`), not by our reading of the
//! specification: the sample's, printed by `user_service --asyncapi` and kept as a snapshot
//! (`examples/asyncapi.json`; `KAUFMANN_UPDATE_SNAPSHOTS=1` rewrites it), with every handler,
//! schema and topic in it; and this binary's, on two consumed topics and a routed event.

use std::path::Path;
use std::process::Command;

use kaufmann::config::{ErrorPolicy, EventRoute};
use kaufmann::Config;
use kaufmann_tests::from_test_stack;
use serde_json::Value;

/// The variable `scripts/test` sets to the `node_modules` holding the AsyncAPI parser.
const PARSER_VAR: &str = "TEST_ASYNCAPI_NODE_PATH";

/// Validates `document` with the AsyncAPI parser: its summary (`{"channels": n, ..}`).
fn validate(document: &str, name: &str) -> Option<Value> {
    let node_path = from_test_stack(PARSER_VAR)?;
    let file = std::env::temp_dir().join(format!("{name}-{}.json", std::process::id()));
    std::fs::write(&file, document).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("asyncapi/validate.js");
    let output = Command::new("node")
        .arg(script)
        .arg(&file)
        .env("NODE_PATH", node_path)
        .output()
        .expect("node runs");
    let _ = std::fs::remove_file(&file);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "the AsyncAPI parser refused the document:\n{stderr}"
    );
    Some(serde_json::from_str(&stdout).unwrap())
}

/// The `(name, namespace)` pair an event's record has in the document.
fn full_name(schema: &Value) -> String {
    format!(
        "{}.{}",
        schema["namespace"].as_str().unwrap_or_default(),
        schema["name"].as_str().unwrap_or_default()
    )
}

#[test]
fn the_samples_document_lists_every_handler_schema_and_topic_and_passes_the_parser() {
    let mut command = Command::new(crate::sample::example_binary());
    for (key, _) in std::env::vars() {
        if key.starts_with("KAUFMANN_") {
            command.env_remove(key);
        }
    }
    let output = command.arg("--asyncapi").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/asyncapi.json");
    if std::env::var_os("KAUFMANN_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &text).unwrap();
    }
    let kept = std::fs::read_to_string(&snapshot).unwrap_or_default();
    assert!(
        kept == text,
        "examples/asyncapi.json differs from what the sample prints: review the change and \
         rewrite it with KAUFMANN_UPDATE_SNAPSHOTS=1"
    );

    let document: Value = serde_json::from_str(&text).unwrap();
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let mut events: Vec<String> = std::fs::read_dir(&schemas)
        .unwrap()
        .map(|entry| {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            name.trim_end_matches(".avsc").to_owned()
        })
        .collect();
    events.sort();
    assert_eq!(events.len(), 6);
    for event in &events {
        let message = &document["components"]["messages"][event];
        let file: Value = serde_json::from_str(
            &std::fs::read_to_string(schemas.join(format!("{event}.avsc"))).unwrap(),
        )
        .unwrap();
        let payload = &message["payload"]["schema"];
        assert_eq!(&full_name(payload), event, "{event}");
        assert_eq!(
            payload["fields"], file["fields"],
            "{event}: the schema's fields"
        );
        assert!(
            document["channels"]["rapids"]["messages"][event].is_object(),
            "{event} on the topic"
        );
    }
    for (operation, handler) in [
        ("receive.command.user.create", "create_user"),
        ("receive.command.user.rename", "rename_user"),
        ("receive.query.req.user.get", "get_user"),
    ] {
        let summary = document["operations"][operation]["summary"]
            .as_str()
            .unwrap();
        assert!(summary.contains(handler), "{operation}: {summary}");
        assert_eq!(document["operations"][operation]["action"], "receive");
    }
    for sent in [
        "event.user.created",
        "event.user.renamed",
        "query.res.user.get",
    ] {
        assert_eq!(
            document["operations"][format!("send.{sent}")]["action"],
            "send"
        );
    }
    assert_eq!(document["channels"]["rapids"]["address"], "rapids");

    let Some(summary) = validate(&text, "sample-asyncapi") else {
        return;
    };
    assert_eq!(
        summary,
        serde_json::json!({"channels": 2, "operations": 12, "messages": 9})
    );
}

/// This binary's handlers (the test support's and the sample's) on two consumed topics, with
/// `test.copied` routed to a topic of its own and `test.copy` sending no error event and no dead
/// letter: a receive operation per handler and topic, the routed event's send operation on its
/// topic, failures as configured, and a document the parser accepts.
#[test]
fn a_document_of_two_topics_and_a_route_passes_the_parser() {
    let mut config = Config::new("asyncapi-test");
    config.topics = vec!["commands".to_owned(), "queries".to_owned()];
    let mut route = EventRoute::default();
    route.topic = Some("copies".to_owned());
    config.event_routes.insert("test.copied".to_owned(), route);
    let mut quiet = ErrorPolicy::default();
    quiet.error_events = false;
    quiet.dead_letter_topic = None;
    config.event_errors.insert("test.copy".to_owned(), quiet);
    let text = kaufmann::asyncapi::document(&config, "1.2.3").unwrap();
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["info"]["version"], "1.2.3");
    assert_eq!(document["info"]["title"], "asyncapi-test");
    let operations = document["operations"].as_object().unwrap();
    for topic in ["commands", "queries"] {
        let receive = &operations[&format!("receive.test.copy.from.{topic}")];
        assert_eq!(receive["channel"]["$ref"], format!("#/channels/{topic}"));
        assert_eq!(
            receive["bindings"]["kafka"]["groupId"]["enum"][0],
            "asyncapi-test"
        );
    }
    let send = &operations["send.test.copied"];
    assert_eq!(send["channel"]["$ref"], "#/channels/copies");
    assert!(send["summary"].as_str().unwrap().contains("copy ("));
    assert!(
        !operations.contains_key("send.test.shout"),
        "only declared events are sent"
    );
    assert!(!operations.contains_key("send.event.error.test.copy"));
    assert!(!operations
        .keys()
        .any(|id| id.starts_with("dead-letter.test.copy.from.")));
    let dead = &operations["dead-letter.test.work.from.queries"];
    assert_eq!(dead["channel"]["$ref"], "#/channels/queries.DLT");
    assert!(operations.contains_key("send.event.error.test.work"));
    let Some(summary) = validate(&text, "routed-asyncapi") else {
        return;
    };
    // The two consumed topics and their dead-letter topics, `copies`, and the default topic the
    // other declared events and the error events go to.
    assert_eq!(summary["channels"], 6, "{summary}");
    assert!(document["channels"]["rapids"]["messages"]["test.pong"].is_object());
}
