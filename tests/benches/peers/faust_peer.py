"""Peer benchmark: faust-streaming + fastavro, a minimal agent that decodes every Confluent-framed
Avro payload and does nothing else.

Usage: python faust_peer.py <brokers> <topic> <count> <schema.avsc>
Prints one line, `elapsed_ms <ms>`, from the first message to the count-th.
"""
import io
import json
import os
import sys
import threading
import time

import fastavro
import faust

brokers, topic, count, schema_path = sys.argv[1:5]
count = int(count)
with open(schema_path, encoding="utf-8") as f:
    schema = fastavro.parse_schema(json.load(f))

app = faust.App(
    f"faust-bench-{os.getpid()}-{int(time.time())}",
    broker=f"kafka://{brokers}",
    store="memory://",
    web_enabled=False,
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(topic, value_type=bytes, value_serializer="raw", key_serializer="raw")
state = {"seen": 0, "first": 0.0}


def give_up():
    print(f"timed out after {state['seen']} messages", file=sys.stderr, flush=True)
    os._exit(2)


# A run that does not finish within four minutes reports nothing (and the runner says so).
timer = threading.Timer(240, give_up)
timer.daemon = True
timer.start()


@app.agent(source)
async def consume(stream):
    async for value in stream:
        if state["seen"] == 0:
            state["first"] = time.perf_counter()
        if value[0] != 0:
            raise ValueError("not Confluent framing")
        fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)
        state["seen"] += 1
        if state["seen"] == count:
            elapsed = (time.perf_counter() - state["first"]) * 1000
            # Faust sends print() to its log; write the result to stdout itself.
            os.write(1, f"elapsed_ms {elapsed}\n".encode())
            os._exit(0)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "error"]
    app.main()
