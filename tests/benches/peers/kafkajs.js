// Peer benchmark: kafkajs + avsc, a minimal consumer that decodes every Confluent-framed Avro
// payload and does nothing else, with `eachBatch` (its fastest form) or `eachMessage`.
// Usage: node kafkajs.js <brokers> <topic> <count> <schema.avsc> [batch|message]
// Prints one line: `elapsed_ms <ms>` from the first message to the count-th.
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');
const avro = require('avsc');

const [brokers, topic, countText, schemaPath, mode = 'batch'] = process.argv.slice(2);
const count = Number(countText);
const type = avro.Type.forSchema(JSON.parse(fs.readFileSync(schemaPath, 'utf8')));
const kafka = new Kafka({ brokers: brokers.split(','), logLevel: logLevel.NOTHING });
const consumer = kafka.consumer({ groupId: `kafkajs-bench-${process.pid}-${Date.now()}` });

// A run that does not finish within two minutes reports nothing (and the runner says so).
setTimeout(() => { console.error(`timed out after ${seen} messages`); process.exit(2); }, 120000).unref();

let seen = 0;
let first = 0n;
async function main() {
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const one = async (message) => {
    if (seen === 0) first = process.hrtime.bigint();
    const value = message.value;
    if (value[0] !== 0) throw new Error('not Confluent framing');
    type.fromBuffer(value.subarray(5));
    seen += 1;
    if (seen === count) {
      const ms = Number(process.hrtime.bigint() - first) / 1e6;
      console.log(`elapsed_ms ${ms}`);
      await consumer.disconnect();
      process.exit(0);
    }
  };
  if (mode === 'message') {
    await consumer.run({ autoCommit: false, eachMessage: async ({ message }) => one(message) });
  } else {
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        for (const message of batch.messages) await one(message);
      },
    });
  }
}
main().catch((err) => { console.error(err); process.exit(1); });
