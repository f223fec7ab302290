// Generates src/generated.ts from Backchannel's AsyncAPI document, the one schema source.
//
//   node scripts/generate-types.mjs [--input asyncapi.json] [--check]
//
// Without --input the document is built by the server's own code
// (`python -c ...build_asyncapi`, with $PYTHON or ../../.venv/bin/python). --check exits 1 when
// the committed file differs from what the document gives (the test that catches stale types).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, "..", "src", "generated.ts");
const args = process.argv.slice(2);
const inputAt = args.indexOf("--input");

function loadDocument() {
  if (inputAt >= 0) return JSON.parse(readFileSync(args[inputAt + 1], "utf8"));
  const python = process.env.PYTHON || join(here, "..", "..", "..", ".venv", "bin", "python");
  const code =
    "import json,sys\n" +
    "from backchannel.handlers.asyncapi import build_asyncapi\n" +
    "from backchannel.handlers.registry import NAMESPACE_CLASSES\n" +
    "json.dump(build_asyncapi(NAMESPACE_CLASSES), sys.stdout)";
  return JSON.parse(execFileSync(python, ["-c", code], { encoding: "utf8" }));
}

const REF = "#/components/schemas/";
const ident = (name) => name.replace(/[^A-Za-z0-9_]/g, "_");
const quote = (key) => (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? key : JSON.stringify(key));

function doc(text, indent) {
  if (!text) return "";
  const lines = String(text).trim().split("\n");
  return `${indent}/** ${lines.join(`\n${indent} * `)} */\n`;
}

function typeOf(schema, indent = "") {
  if (schema === true || schema === undefined || schema === null) return "unknown";
  if (schema.$ref) return ident(schema.$ref.slice(REF.length));
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  for (const key of ["anyOf", "oneOf"]) {
    if (schema[key]) return union(schema[key].map((s) => typeOf(s, indent)));
  }
  if (schema.allOf && schema.allOf.length === 1) return typeOf(schema.allOf[0], indent);
  const type = schema.type;
  if (Array.isArray(type)) return union(type.map((t) => typeOf({ ...schema, type: t }, indent)));
  switch (type) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array":
      if (schema.prefixItems) return `[${schema.prefixItems.map((s) => typeOf(s, indent)).join(", ")}]`;
      return `${wrap(typeOf(schema.items, indent))}[]`;
    case "object":
    case undefined:
      if (schema.properties) return objectType(schema, indent);
      if (type === undefined) return "unknown";
      if (schema.additionalProperties && schema.additionalProperties !== true)
        return `Record<string, ${typeOf(schema.additionalProperties, indent)}>`;
      return "Record<string, unknown>";
    default:
      return "unknown";
  }
}

const union = (types) => [...new Set(types)].join(" | ");
const wrap = (t) => (/[|&]/.test(t) ? `(${t})` : t);

function objectType(schema, indent) {
  const required = new Set(schema.required || []);
  const inner = `${indent}  `;
  const fields = Object.entries(schema.properties).map(
    ([name, property]) =>
      `${doc(property.description, inner)}${inner}${quote(name)}${required.has(name) ? "" : "?"}: ${typeOf(property, inner)};`,
  );
  return `{\n${fields.join("\n")}\n${indent}}`;
}

function resolve(document, ref) {
  const node = ref
    .slice(2)
    .split("/")
    .reduce((at, part) => at[part], document);
  return node.$ref ? resolve(document, node.$ref) : node;
}

function payloadType(schema) {
  return schema.type === "object" && !schema.properties ? "Record<string, never>" : typeOf(schema);
}

export function generate(document) {
  const out = [
    "// Generated from Backchannel's AsyncAPI document by scripts/generate-types.mjs: do not edit.",
    "// Regenerate with `npm run generate` (tests fail while this file is stale).",
    "/* eslint-disable */",
    "",
  ];
  for (const [name, schema] of Object.entries(document.components.schemas).sort()) {
    out.push(doc(schema.description, "").trimEnd());
    const type = typeOf(schema);
    out.push(
      schema.properties ? `export interface ${ident(name)} ${type}` : `export type ${ident(name)} = ${type};`,
      "",
    );
  }
  const client = {};
  const server = {};
  for (const operation of Object.values(document.operations)) {
    const address = resolve(document, operation.channel.$ref).address;
    const message = resolve(document, operation.messages[0].$ref);
    if (operation.action === "receive") {
      const reply = resolve(document, operation.reply.messages[0].$ref);
      const data = reply.payload.oneOf[0].properties.data;
      (client[address] ||= []).push(
        `    ${JSON.stringify(message.name)}: { payload: ${payloadType(message.payload)}; ack: ${typeOf(data)} };`,
      );
    } else {
      (server[address] ||= []).push(`    ${JSON.stringify(message.name)}: ${typeOf(message.payload)};`);
    }
  }
  const map = (entries) =>
    Object.keys(entries)
      .sort()
      .map((ns) => `  ${JSON.stringify(ns)}: {\n${entries[ns].sort().join("\n")}\n  };`)
      .join("\n");
  out.push(
    "/** Client → server events per namespace: the payload, and the `data` of a successful ack. */",
    `export interface ClientEvents {\n${map(client)}\n}`,
    "",
    "/** Server → client events per namespace and their payloads. */",
    `export interface ServerEvents {\n${map(server)}\n}`,
    "",
    "/** The namespaces one client opens on its one connection. */",
    `export const NAMESPACES = ${JSON.stringify(Object.keys(client).sort())} as const;`,
    "",
    `/** The AsyncAPI document's version of the server these types were generated from. */`,
    `export const PROTOCOL_VERSION = ${JSON.stringify(document.info.version)};`,
    "",
  );
  return out.filter((line, i, all) => !(line === "" && all[i - 1] === "")).join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const generated = generate(loadDocument());
  if (args.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(target, "utf8");
    } catch {}
    if (current !== generated) {
      console.error("src/generated.ts is stale: run `npm run generate` in clients/js");
      process.exit(1);
    }
    console.log("src/generated.ts is up to date");
  } else {
    writeFileSync(target, generated);
    console.log(`wrote ${target}`);
  }
}
