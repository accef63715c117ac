//! Hostile values for the `test.work` handler: bodies written, as their frame says, with a writer
//! schema that differs from the handler's (so the resolving decoder runs) and carries every kind
//! of Avro value after `test.work`'s own fields: a map, an array of `null`, bytes, a string, a
//! fixed, a decimal, a union and a recursive record.
//!
//! [`values`] gives the values the hostile-input issue names (deep recursion, a map block that
//! claims 500 million entries, 8.4 million `null` items) and then generated ones: every truncation,
//! every bit flipped and bytes set to edge values in the part after `test.work`'s fields, counts
//! and lengths near the `i64` limits spliced in at every position, and seeded random mutations,
//! up to the number asked for. Each is either a decode error or a valid `test.work` with its own
//! id (the fields a handler acts on, `sleep_ms` and `fail_times`, stay 0).

/// The writer schema of the hostile values: `test.work` plus fields of every kind.
pub const WRITER_SCHEMA: &str = r#"{
  "type": "record", "name": "work", "namespace": "test",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "lane", "type": "string"},
    {"name": "seq", "type": "long"},
    {"name": "sleep_ms", "type": "int"},
    {"name": "fail_times", "type": "int"},
    {"name": "tags", "type": {"type": "map", "values": "long"}},
    {"name": "nulls", "type": {"type": "array", "items": "null"}},
    {"name": "blob", "type": "bytes"},
    {"name": "note", "type": "string"},
    {"name": "four", "type": {"type": "fixed", "name": "Four", "size": 4}},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 2}},
    {"name": "choice", "type": ["null", "string", "long", {"type": "array", "items": "string"}]},
    {"name": "tree", "type": {"type": "record", "name": "Node", "fields": [
      {"name": "next", "type": ["null", "Node"]},
      {"name": "kids", "type": {"type": "array", "items": "Node"}}
    ]}}
  ]
}"#;

/// The id of hostile value `index` (when it decodes, the handler records this id).
pub fn id(index: usize) -> i64 {
    1_000_000 + i64::try_from(index).unwrap_or(i64::MAX - 1_000_000)
}

/// Avro's zig-zag varint of `n`.
pub fn long(n: i64) -> Vec<u8> {
    let mut z = u64::from_ne_bytes((n.wrapping_shl(1) ^ (n >> 63)).to_ne_bytes());
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = u8::try_from(z & 0x7f).unwrap_or(0);
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend(long(i64::try_from(s.len()).unwrap_or(0)));
    out.extend_from_slice(s);
}

/// `test.work`'s own fields, with `id` and zero `sleep_ms` and `fail_times`.
pub fn prefix(id: i64) -> Vec<u8> {
    let mut out = long(id);
    string(&mut out, b"hostile");
    out.extend(long(0)); // seq
    out.extend(long(0)); // sleep_ms
    out.extend(long(0)); // fail_times
    out
}

/// A recursive `tree` field `depth` levels deep through `next`.
pub fn tree(depth: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(depth * 2 + 2);
    out.extend(std::iter::repeat_n(2_u8, depth)); // `next`: the `Node` branch
    out.push(0); // the innermost `next`: null
    out.extend(std::iter::repeat_n(0_u8, depth + 1)); // every `kids`: empty
    out
}

/// The fields after `test.work`'s: `tags`, `nulls` and the rest as `rest` gives them.
fn suffix_with(tags: &[u8], nulls: &[u8], tree_depth: usize) -> Vec<u8> {
    let mut out = tags.to_vec();
    out.extend_from_slice(nulls);
    string(&mut out, b"\x01\x02\x03"); // blob
    string(&mut out, b"hello"); // note
    out.extend_from_slice(b"four"); // four
    string(&mut out, &[0x01, 0x00]); // amount: 2.56
    out.extend(long(1)); // choice: the string branch
    string(&mut out, b"xy");
    out.extend(tree(tree_depth));
    out
}

/// A valid suffix: two tags, three nulls, a tree two levels deep with one kid.
pub fn valid_suffix() -> Vec<u8> {
    let mut tags = long(2);
    string(&mut tags, b"a");
    tags.extend(long(1));
    string(&mut tags, b"b");
    tags.extend(long(2));
    tags.push(0);
    let mut nulls = long(3);
    nulls.push(0);
    let mut out = suffix_with(&tags, &nulls, 1);
    // One kid in the innermost node's parent: replace the last empty `kids` by one empty node.
    out.pop();
    out.extend(long(1));
    out.extend([0, 0]); // the kid: next null, kids empty
    out.push(0); // end of the kids' blocks
    out
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

/// Counts and lengths that break decoders: near the `i64` and `i32` limits, negative, large.
const EDGES: [i64; 12] = [
    i64::MAX,
    i64::MIN,
    i64::MAX - 1,
    i64::MIN + 1,
    2_147_483_647,
    -2_147_483_648,
    -1,
    -2,
    1 << 62,
    1 << 32,
    500_000_000,
    8_400_000,
];

/// The bodies (without the Confluent frame) of `count` hostile values, deterministic.
pub fn values(count: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(count);
    let push = |out: &mut Vec<Vec<u8>>, suffix: &[u8]| {
        let mut value = prefix(id(out.len()));
        value.extend_from_slice(suffix);
        out.push(value);
    };
    let valid = valid_suffix();
    // The issue's values: recursion 1,000 and 100,000 levels deep (and one past the default
    // limit of 64), a map block claiming 500 million entries, 8.4 million `null` items.
    for depth in [65, 1_000, 100_000] {
        push(&mut out, &suffix_with(&[0], &[0], depth));
    }
    push(&mut out, &long(500_000_000));
    let mut nulls = long(8_400_000);
    nulls.push(0);
    push(&mut out, &suffix_with(&[0], &nulls, 0));
    // Every truncation, also inside `test.work`'s fields.
    let whole: Vec<u8> = prefix(id(out.len()))
        .into_iter()
        .chain(valid.clone())
        .collect();
    for end in 0..whole.len() {
        out.push(whole[..end].to_vec());
    }
    // Every bit flipped and edge bytes, after `test.work`'s fields.
    for at in 0..valid.len() {
        for bit in 0..8 {
            let mut changed = valid.clone();
            changed[at] ^= 1 << bit;
            push(&mut out, &changed);
        }
        for byte in [0x00, 0x7f, 0x80, 0xff] {
            let mut changed = valid.clone();
            changed[at] = byte;
            push(&mut out, &changed);
        }
    }
    // Edge counts and lengths spliced in at every position, and a varint that never ends.
    for at in 0..valid.len() {
        for edge in EDGES {
            let mut changed = valid[..at].to_vec();
            changed.extend(long(edge));
            changed.extend_from_slice(&valid[at + 1..]);
            push(&mut out, &changed);
        }
        let mut endless = valid[..at].to_vec();
        endless.extend([0xff; 11]);
        push(&mut out, &endless);
    }
    // Seeded random mutations up to `count`.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    while out.len() < count {
        let mut changed = valid.clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(changed.len());
            match rng.below(6) {
                0 => changed[at] ^= 1 << rng.below(8),
                1 => {
                    let edge = EDGES[rng.below(EDGES.len())];
                    let edge = edge.wrapping_add(i64::try_from(rng.below(3)).unwrap_or(0) - 1);
                    changed.splice(at..at, long(edge));
                }
                2 => {
                    let end = (at + rng.below(8)).min(changed.len());
                    changed.drain(at..end);
                }
                3 => {
                    let end = (at + rng.below(16)).min(changed.len());
                    let copy = changed[at..end].to_vec();
                    changed.splice(at..at, copy);
                }
                4 => {
                    let depth = 50 + rng.below(5_000);
                    changed.splice(at..at, std::iter::repeat_n(2_u8, depth));
                }
                _ => changed.truncate(at),
            }
            if changed.is_empty() {
                break;
            }
        }
        push(&mut out, &changed);
    }
    out.truncate(count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_valid_value_reads_with_the_writer_schema() {
        let schema = apache_avro::Schema::parse_str(WRITER_SCHEMA).unwrap();
        let mut body = prefix(7);
        body.extend(valid_suffix());
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .and_then(|reader| reader.read_value(&mut &body[..]))
            .unwrap();
        let apache_avro::types::Value::Record(fields) = value else {
            panic!("a record");
        };
        assert_eq!(
            fields[0],
            ("id".to_owned(), apache_avro::types::Value::Long(7))
        );
        assert_eq!(fields.len(), 13);
    }

    #[test]
    fn the_values_are_as_many_as_asked_and_deterministic() {
        let values = values(5_000);
        assert_eq!(values.len(), 5_000);
        assert_eq!(values, super::values(5_000));
        assert!(values.iter().any(|v| v.len() > 200_000), "the deep one");
    }
}
