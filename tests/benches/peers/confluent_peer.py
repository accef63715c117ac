"""Peer benchmark: Confluent's Python client (confluent-kafka, librdkafka underneath) with
fastavro, as its docs recommend for throughput: `consume(num_messages=1000)` batches, and each
Confluent-framed payload decoded with `fastavro.schemaless_reader` and nothing else.

Usage: python confluent_peer.py <brokers> <topic> <count> <schema.avsc>
Prints one line, `elapsed_ms <ms>`, from the first message to the count-th.
"""
import io
import json
import os
import sys
import time

import fastavro
from confluent_kafka import Consumer

brokers, topic, count, schema_path = sys.argv[1:5]
count = int(count)
with open(schema_path, encoding="utf-8") as f:
    schema = fastavro.parse_schema(json.load(f))

consumer = Consumer({
    "bootstrap.servers": brokers,
    "group.id": f"confluent-bench-{os.getpid()}-{time.time_ns()}",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
})
consumer.subscribe([topic])
deadline = time.monotonic() + 120
seen = 0
first = None
while seen < count:
    if time.monotonic() > deadline:
        print(f"timed out after {seen} messages", file=sys.stderr)
        sys.exit(2)
    for message in consumer.consume(num_messages=1000, timeout=1.0):
        if message.error():
            continue
        if first is None:
            first = time.perf_counter()
        value = message.value()
        if value[0] != 0:
            raise ValueError("not Confluent framing")
        fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)
        seen += 1
        if seen == count:
            break
print(f"elapsed_ms {(time.perf_counter() - first) * 1000:.3f}")
consumer.close()
