"""Confluent's own Python client as a peer of Kaufmann, for the interop tests.

produce: registers the schema through SchemaRegistryClient + AvroSerializer (under `--subject`,
         or named by one of Confluent's subject name strategies, `--strategy topic|record|
         topic_record`) and produces `test.work` events with Producer; `--extra` adds fields
         (as JSON) to each value, for an evolved schema version.
consume: reads every partition of a topic from the beginning with Consumer and decodes each value
         with AvroDeserializer; prints one JSON line per message (key, headers, value).
"""

import argparse
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import (
    SchemaRegistryClient,
    record_subject_name_strategy,
    topic_record_subject_name_strategy,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def produce(args):
    registry = SchemaRegistryClient({"url": args.registry})
    with open(args.schema, encoding="utf-8") as f:
        schema = f.read()
    strategies = {
        "topic": topic_subject_name_strategy,
        "record": record_subject_name_strategy,
        "topic_record": topic_record_subject_name_strategy,
    }
    if args.strategy:
        strategy = strategies[args.strategy]
    else:
        strategy = lambda ctx, record_name: args.subject  # noqa: E731
    serializer = AvroSerializer(
        registry,
        schema,
        conf={"auto.register.schemas": True, "subject.name.strategy": strategy},
    )
    extra = json.loads(args.extra) if args.extra else {}
    producer = Producer({"bootstrap.servers": args.brokers})
    for i in range(args.count):
        work = {
            "id": args.first_id + i,
            "lane": f"py-{i % 4}",
            "seq": i // 4,
            "sleep_ms": 0,
            "fail_times": 0,
            **extra,
        }
        value = serializer(work, SerializationContext(args.topic, MessageField.VALUE))
        producer.produce(args.topic, key=work["lane"].encode(), value=value)
        producer.poll(0)
    left = producer.flush(30)
    if left:
        sys.exit(f"{left} messages were not delivered")


def consume(args):
    registry = SchemaRegistryClient({"url": args.registry})
    deserializer = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": args.group,
            "enable.auto.commit": False,
        }
    )
    consumer.assign(
        [TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(args.partitions)]
    )
    seen = 0
    deadline = time.time() + args.timeout
    while seen < args.count and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            print(f"consumer error: {msg.error()}", file=sys.stderr)
            continue
        value = deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
        headers = {k: v.decode() for k, v in (msg.headers() or []) if v is not None}
        key = msg.key().decode() if msg.key() is not None else None
        print(json.dumps({"key": key, "headers": headers, "value": value}), flush=True)
        seen += 1
    consumer.close()
    if seen < args.count:
        sys.exit(f"consumed {seen} of {args.count} messages within {args.timeout} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["produce", "consume"])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--schema")
    parser.add_argument("--subject")
    parser.add_argument("--strategy", choices=["topic", "record", "topic_record"])
    parser.add_argument("--extra")
    parser.add_argument("--first-id", type=int, default=0)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--group", default="confluent-peer")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    produce(args) if args.command == "produce" else consume(args)


if __name__ == "__main__":
    main()
