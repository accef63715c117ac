"""Python's own `json` module as a peer of a Kaufmann service in the `json` wire format, for the
interop test (Kafka through confluent-kafka's Producer and Consumer; every value made and read
by `json.dumps` / `json.loads`).

produce: writes `--count` `test.echo` requests as KaufmannEx's JSON transcoder shapes them,
         `{"meta": {...}, "payload": {...}}`, keyed `test.echo#<n>`, each asking for its answer on
         `--reply-topic`.
check:   reads the answers from `--topic` and compares each, decoded by `json.loads`, with the
         request it answers (the same payload, `hops` 1, the timestamp in Kaufmann's RFC 3339
         form); prints one JSON line: {"seen": n, "mismatches": [the first few]}.
"""

import argparse
import base64
import datetime
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

EPOCH_MS = 1_700_000_000_000


def payload(i, hops=0):
    at = datetime.datetime.fromtimestamp((EPOCH_MS + i) / 1000, tz=datetime.timezone.utc)
    return {
        "id": i,
        "text": f"é-{i} ☃ \"quoted\"\n",
        "ratio": i / 7,
        "flag": i % 2 == 0,
        "note": None if i % 3 else f"note {i}",
        "tags": [f"t{j}" for j in range(i % 4)],
        "counts": {"a": i, "b": -i},
        "level": "HIGH" if i % 5 == 0 else "LOW",
        # Written with an offset; answered in UTC with a `Z`.
        "at": at.isoformat(timespec="milliseconds") if hops == 0 else
              at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
        "price": f"{i // 100}.{i % 100:02d}",
        "blob": base64.b64encode(bytes([i % 256, 0, 255])).decode(),
        "hops": hops,
    }


def produce(args):
    producer = Producer({"bootstrap.servers": args.brokers})
    for i in range(args.count):
        meta = {
            "message_id": f"py-{i}",
            "emitter_service": "python-json",
            "emitter_service_id": "python-json-1",
            "callback_id": None,
            "message_name": "test.echo",
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "callback_topic": {"topic": args.reply_topic, "partition": None},
        }
        value = json.dumps({"meta": meta, "payload": payload(i)}).encode()
        producer.produce(args.topic, key=f"test.echo#{i}".encode(), value=value)
        producer.poll(0)
    left = producer.flush(30)
    if left:
        sys.exit(f"{left} messages were not delivered")


def check(args):
    consumer = Consumer(
        {"bootstrap.servers": args.brokers, "group.id": args.group, "enable.auto.commit": False}
    )
    consumer.assign(
        [TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(args.partitions)]
    )
    seen, ids, mismatches = 0, set(), []
    deadline = time.time() + args.timeout
    while len(ids) < args.count and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        seen += 1
        answer = json.loads(msg.value())
        got = answer.get("payload", {})
        i = got.get("id")
        meta = answer.get("meta", {})
        problems = []
        if got != payload(i, hops=1):
            problems.append({"payload": got, "expected": payload(i, hops=1)})
        if meta.get("callback_id") != f"py-{i}":
            problems.append({"callback_id": meta.get("callback_id")})
        if meta.get("message_name") != "test.echo" or msg.key() != b"test.echo":
            problems.append({"name": meta.get("message_name"), "key": repr(msg.key())})
        if problems and len(mismatches) < 5:
            mismatches.append(problems)
        ids.add(i)
    consumer.close()
    print(json.dumps({"seen": seen, "distinct": len(ids), "mismatches": mismatches}))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["produce", "check"])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--reply-topic")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--group", default="json-peer")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    produce(args) if args.command == "produce" else check(args)


if __name__ == "__main__":
    main()
