// Validates the AsyncAPI document in the file argv[2] with the AsyncAPI project's parser (Avro
// payloads through its Avro schema parser). Prints every diagnostic; exit 1 when any is an error,
// else prints {"channels": n, "operations": n, "messages": n} and exits 0. NODE_PATH names the
// node_modules of scripts/install-asyncapi-parser.
const fs = require('fs');
const { Parser } = require('@asyncapi/parser');
const { AvroSchemaParser } = require('@asyncapi/avro-schema-parser');

const SEVERITY = ['error', 'warning', 'info', 'hint'];

(async () => {
  const parser = new Parser();
  parser.registerSchemaParser(AvroSchemaParser());
  const { document, diagnostics } = await parser.parse(fs.readFileSync(process.argv[2], 'utf8'));
  for (const d of diagnostics) {
    console.error(`${SEVERITY[d.severity]} ${d.code} ${d.path.join('.')}: ${d.message}`);
  }
  if (!document || diagnostics.some((d) => d.severity === 0)) {
    process.exit(1);
  }
  console.log(JSON.stringify({
    channels: document.channels().length,
    operations: document.operations().length,
    messages: document.components().messages().length,
  }));
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
