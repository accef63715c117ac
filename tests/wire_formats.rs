//! The wire formats, byte by byte: a `kaufmann_ex` value built by hand from the Avro
//! specification (zig-zag varints, length-prefixed strings, union indexes) decodes into the typed
//! event and its metadata, and Kaufmann's encoding of the same event equals it byte for byte.
//! Decoding arbitrary bytes in either format returns an error, never a panic.

use kaufmann::wire::kaufmann_ex;
use kaufmann::wire::{confluent, decode_body};
use kaufmann::EventSchema;
use kaufmann::{CallbackTopic, Metadata};
use kaufmann_tests::TestWork;
use proptest::prelude::*;

/// An Avro string: zig-zag length, then the UTF-8 bytes.
fn string(out: &mut Vec<u8>, s: &str) {
    assert!(s.len() < 64, "one-byte lengths only in this vector");
    out.push(u8::try_from(s.len() * 2).unwrap());
    out.extend_from_slice(s.as_bytes());
}

/// The value a `KaufmannEx` service writes for `test.work` `{id: 7, lane: "a", seq: 1,
/// sleep_ms: 0, fail_times: -1}`, with a callback topic and no callback id.
fn hand_built_vector() -> Vec<u8> {
    let mut v = vec![0x02]; // union branch 1: the event record (branch 0 is event_metadata)
                            // meta: event_metadata
    string(&mut v, "V1StGXR8_Z5jdHi6B-myT"); // message_id (a 21-character Nanoid)
    string(&mut v, "users"); // emitter_service
    string(&mut v, "users-1"); // emitter_service_id
    v.push(0x00); // callback_id: branch 0, null
    string(&mut v, "test.work"); // message_name
    string(&mut v, "2018-06-01 12:00:00.123000Z"); // timestamp, as Elixir's DateTime.to_string
    v.push(0x02); // callback_topic: branch 1, the record
    v.push(0x02); // topic: branch 1, string
    string(&mut v, "rapids");
    v.push(0x02); // partition: branch 1, int
    v.push(0x06); // 3, zig-zag
                  // payload: test.work
    v.push(0x0e); // id 7
    string(&mut v, "a"); // lane
    v.push(0x02); // seq 1
    v.push(0x00); // sleep_ms 0
    v.push(0x01); // fail_times -1
    v
}

fn expected() -> (Metadata, TestWork) {
    let mut meta = Metadata::new("test.work", "users", "users-1");
    "V1StGXR8_Z5jdHi6B-myT".clone_into(&mut meta.message_id);
    meta.timestamp_ms = 1_527_854_400_123;
    meta.callback_topic = Some(CallbackTopic {
        topic: Some("rapids".to_owned()),
        partition: Some(3),
    });
    let work = TestWork {
        id: 7,
        lane: "a".to_owned(),
        seq: 1,
        sleep_ms: 0,
        fail_times: -1,
    };
    (meta, work)
}

fn schema() -> apache_avro::Schema {
    kaufmann_ex::wire_schema(TestWork::EVENT_NAME, TestWork::SCHEMA_JSON).unwrap()
}

#[test]
fn a_hand_built_kaufmann_ex_value_decodes_into_the_typed_event() {
    let (meta, work) = kaufmann_ex::decode::<TestWork>(&schema(), &hand_built_vector()).unwrap();
    assert_eq!((meta, work), expected());
}

#[test]
fn kaufmann_encodes_the_same_event_byte_for_byte() {
    let (meta, work) = expected();
    let encoded = kaufmann_ex::encode(&schema(), &meta, &work).unwrap();
    assert_eq!(encoded, hand_built_vector());
}

#[test]
fn the_bare_metadata_branch_is_an_error_naming_it() {
    let mut v = vec![0x00]; // union branch 0: event_metadata alone
    v.extend_from_slice(&hand_built_vector()[1..]);
    let err = kaufmann_ex::decode::<TestWork>(&schema(), &v).unwrap_err();
    assert!(err.to_string().contains("bare metadata"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn random_bytes_never_panic_the_kaufmann_ex_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = kaufmann_ex::decode::<TestWork>(&schema(), &bytes);
    }

    #[test]
    fn corrupted_vectors_never_panic_the_kaufmann_ex_decoder(
        flips in proptest::collection::vec((0_usize..80, any::<u8>()), 1..6),
        cut in 0_usize..80,
    ) {
        let mut bytes = hand_built_vector();
        for (at, byte) in flips {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        bytes.truncate(cut.max(1));
        let _ = kaufmann_ex::decode::<TestWork>(&schema(), &bytes);
    }

    #[test]
    fn random_bytes_never_panic_the_confluent_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok((_, body)) = confluent::split(&bytes) {
            let _ = decode_body::<TestWork>(TestWork::schema(), Some(1), body);
        }
        let mut framed = confluent::frame(1, &bytes);
        framed.truncate(framed.len().min(bytes.len() + 5));
        let (_, body) = confluent::split(&framed).unwrap();
        let _ = decode_body::<TestWork>(TestWork::schema(), Some(1), body);
    }
}
