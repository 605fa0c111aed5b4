#!/usr/bin/env node
// Checks the REST API's OpenAPI 3.1 document, and recorded responses against it.
//
//   node validate.mjs --spec docs/openapi.json
//   node validate.mjs --spec docs/openapi.json --responses recorded.jsonl
//
// The document must pass the OpenAPI 3.1 schema, every schema in it must compile
// (JSON Schema 2020-12, all $refs resolvable), and every request body and response
// must carry examples that match their schemas.
//
// Each line of the responses file is one recorded response:
//   {"method":"GET","path":"/api/v1/purchases/7","status":200,
//    "headers":{"content-type":"application/json"},"body":{...} or null}
// It must match a documented path template, method and status (exact, then "4XX"
// style ranges, then "default"); the body must match the response's JSON schema and
// every header the document marks as required must be present (and match its schema).
// One line per failure, then "N responses validated, M failed"; exit 1 on any failure.
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { Validator } from "@seriousme/openapi-schema-validator";

const SPEC_ID = "https://balancer.invalid/openapi.json";
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

const escapeToken = (s) => String(s).replace(/~/g, "~0").replace(/\//g, "~1");
const pointer = (...parts) => parts.map((p) => "/" + escapeToken(p)).join("");

function lookup(doc, ptr) {
  let node = doc;
  for (const raw of ptr.split("/").slice(1)) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (node === null || typeof node !== "object" || !(key in node)) return undefined;
    node = node[key];
  }
  return node;
}

// Follows local $refs of an OpenAPI object (response, header, parameter):
// returns the object and the JSON pointer where it really lives.
function deref(doc, obj, ptr) {
  const seen = new Set();
  while (obj && typeof obj.$ref === "string") {
    if (!obj.$ref.startsWith("#/") || seen.has(obj.$ref)) throw new Error(`${ptr}: cannot resolve $ref ${obj.$ref}`);
    seen.add(obj.$ref);
    ptr = obj.$ref.slice(1);
    obj = lookup(doc, ptr);
    if (obj === undefined) throw new Error(`${ptr}: dangling $ref`);
  }
  return { obj, ptr };
}

function makeAjv(doc) {
  const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
  addFormats(ajv);
  // OpenAPI's own schema keywords, and the document's top-level fields (the document is the root schema).
  ajv.addVocabulary(["discriminator", "xml", "externalDocs", "example"]);
  ajv.addVocabulary(["openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components", "security", "tags"]);
  ajv.addSchema(doc, SPEC_ID);
  const compiled = new Map();
  // The validator of the schema at `ptr` inside the document ($refs resolve within it).
  return (ptr) => {
    if (!compiled.has(ptr)) compiled.set(ptr, ajv.compile({ $ref: `${SPEC_ID}#${ptr}` }));
    return compiled.get(ptr);
  };
}

function formatErrors(errors) {
  return (errors || []).slice(0, 6).map((e) => {
    let extra = "";
    if (e.params?.additionalProperty) extra = `: ${e.params.additionalProperty}`;
    else if (e.params?.allowedValues) extra = `: ${e.params.allowedValues.join(", ")}`;
    else if (e.params?.allowedValue !== undefined) extra = `: ${JSON.stringify(e.params.allowedValue)}`;
    return `${e.instancePath || "/"} ${e.message}${extra}`;
  }).join("; ");
}

function* operations(doc) {
  for (const [template, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      if (item[method]) yield { template, method, op: item[method], ptr: pointer("paths", template, method) };
    }
  }
}

// Problems of the document (empty: it is good).
export async function checkDocument(doc) {
  const problems = [];
  const oas = new Validator();
  const result = await oas.validate(structuredClone(doc));
  if (!result.valid) {
    for (const e of [].concat(result.errors)) {
      problems.push(typeof e === "string" ? e : `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params ?? {})}`);
    }
    return problems;
  }
  if (!String(doc.openapi).startsWith("3.1.")) return [`openapi is ${doc.openapi}, expected 3.1.x`];

  let schemaAt;
  try {
    schemaAt = makeAjv(doc);
  } catch (e) {
    return [`the document cannot be loaded as JSON Schema: ${e.message}`];
  }
  const compile = (ptr) => {
    try {
      return schemaAt(ptr);
    } catch (e) {
      problems.push(`${ptr}: ${e.message}`);
      return null;
    }
  };
  for (const name of Object.keys(doc.components?.schemas || {})) compile(pointer("components", "schemas", name));

  // Every media type: its schema compiles, it has examples, and they match it.
  const checkMedia = (ptr, content, what) => {
    for (const [type, media] of Object.entries(content || {})) {
      const mediaPtr = ptr + pointer("content", type);
      const validate = media.schema ? compile(mediaPtr + "/schema") : null;
      const examples = [];
      if ("example" in media) examples.push(["example", media.example]);
      for (const [name, ex] of Object.entries(media.examples || {})) {
        try {
          examples.push([`examples/${name}`, deref(doc, ex, `${mediaPtr}/examples/${name}`).obj.value]);
        } catch (e) {
          problems.push(e.message);
        }
      }
      if (examples.length === 0) problems.push(`${mediaPtr}: ${what} has no example`);
      if (!validate) continue;
      for (const [name, value] of examples) {
        if (!validate(value)) problems.push(`${mediaPtr}/${name}: does not match its schema: ${formatErrors(validate.errors)}`);
      }
    }
  };
  for (const { template, op, ptr } of operations(doc)) {
    const declared = [...(doc.paths[template].parameters || []), ...(op.parameters || [])]
      .map((p, i) => { try { return deref(doc, p, `${ptr}/parameters/${i}`).obj; } catch (e) { problems.push(e.message); return {}; } })
      .filter((p) => p.in === "path").map((p) => p.name);
    for (const [, name] of template.matchAll(/\{([^}]+)\}/g)) {
      if (!declared.includes(name)) problems.push(`${ptr}: path parameter '${name}' is not declared`);
    }
    if (op.requestBody) {
      try {
        const body = deref(doc, op.requestBody, ptr + "/requestBody");
        checkMedia(body.ptr, body.obj.content, "the request body");
      } catch (e) {
        problems.push(e.message);
      }
    }
    for (const [status, response] of Object.entries(op.responses || {})) {
      try {
        const r = deref(doc, response, ptr + pointer("responses", status));
        if (!r.obj.content) problems.push(`${r.ptr}: response ${status} has no content`);
        checkMedia(r.ptr, r.obj.content, `response ${status}`);
        for (const [name, header] of Object.entries(r.obj.headers || {})) {
          const h = deref(doc, header, r.ptr + pointer("headers", name));
          if (h.obj.schema) compile(h.ptr + "/schema");
        }
      } catch (e) {
        problems.push(e.message);
      }
    }
  }
  return problems;
}

function methodNotAllowedProblems(record, known, schemaAt) {
  const problems = [];
  const headers = Object.fromEntries(Object.entries(record.headers || {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
  const allow = (headers.allow || "").split(",").map((m) => m.trim()).filter(Boolean);
  if (allow.length === 0) problems.push("405 without an Allow header");
  for (const m of known) {
    if (!allow.includes(m)) problems.push(`Allow ${JSON.stringify(headers.allow ?? "")} misses the documented ${m}`);
  }
  const validate = schemaAt("/components/schemas/Error");
  if (!validate(record.body)) problems.push(`body: ${formatErrors(validate.errors)}`);
  else if (record.body.error.code !== "method_not_allowed") problems.push(`error code ${record.body.error.code}, not method_not_allowed`);
  return problems;
}

// A function that checks one recorded response and returns its problems.
export function responseChecker(doc) {
  const schemaAt = makeAjv(doc);
  const routes = Object.keys(doc.paths || {})
    .map((template) => {
      const parts = template.split(/(\{[^}]+\})/);
      const source = parts.map((p) => (p.startsWith("{") ? "([^/]+)" : p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("");
      return { template, re: new RegExp(`^${source}$`), params: parts.filter((p) => p.startsWith("{")).length };
    })
    .sort((a, b) => a.params - b.params); // a literal path wins over a template

  return (record) => {
    if (record === null || typeof record !== "object") return ["not a JSON object"];
    const { method, path, status } = record;
    if (typeof method !== "string" || typeof path !== "string" || !Number.isInteger(status)) {
      return ["needs method (string), path (string) and status (integer)"];
    }
    const bare = path.split(/[?#]/)[0];
    const route = routes.find((r) => r.re.test(bare));
    if (!route) return [`no path of the document matches ${bare}`];
    const item = doc.paths[route.template];
    const op = item[method.toLowerCase()];
    if (!op) {
      const known = METHODS.filter((m) => item[m]).map((m) => m.toUpperCase());
      // The generic rule of info.description: another method on a documented path is a
      // 405 method_not_allowed Error whose Allow header lists the documented methods.
      if (status === 405) return methodNotAllowedProblems(record, known, schemaAt);
      return [`${method} is not documented for ${route.template} (documented: ${known.join(", ")})`];
    }
    const opPtr = pointer("paths", route.template, method.toLowerCase());
    const key = [String(status), `${String(status)[0]}XX`, "default"].find((k) => op.responses?.[k]);
    if (!key) return [`status ${status} is not documented for ${method} ${route.template} (documented: ${Object.keys(op.responses || {}).join(", ")})`];
    const { obj: response, ptr } = deref(doc, op.responses[key], opPtr + pointer("responses", key));

    const problems = [];
    const headers = Object.fromEntries(Object.entries(record.headers || {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
    for (const [name, header] of Object.entries(response.headers || {})) {
      if (name.toLowerCase() === "content-type") continue; // ignored by OpenAPI
      const h = deref(doc, header, ptr + pointer("headers", name));
      const value = headers[name.toLowerCase()];
      if (value === undefined) {
        if (h.obj.required) problems.push(`missing required header ${name}`);
        continue;
      }
      if (!h.obj.schema) continue;
      const validate = schemaAt(h.ptr + "/schema");
      const numeric = /^-?\d+(\.\d+)?$/.test(value);
      if (!validate(value) && !(numeric && validate(Number(value)))) {
        problems.push(`header ${name}: ${JSON.stringify(value)} ${formatErrors(validate.errors)}`);
      }
    }

    const body = record.body === undefined ? null : record.body;
    const content = response.content || {};
    if (Object.keys(content).length === 0) {
      if (body !== null) problems.push("the document gives this response no body, but one was recorded");
      return problems;
    }
    if (body === null) return [...problems, "no JSON body, but the document gives one"];
    const contentType = (headers["content-type"] || "").split(";")[0].trim().toLowerCase();
    const mediaKey = Object.keys(content).find((k) => k.toLowerCase() === contentType);
    if (!mediaKey) {
      return [...problems, `content-type ${JSON.stringify(headers["content-type"] ?? "(none)")} is not documented (documented: ${Object.keys(content).join(", ")})`];
    }
    if (content[mediaKey].schema) {
      const validate = schemaAt(ptr + pointer("content", mediaKey, "schema"));
      if (!validate(body)) problems.push(`body: ${formatErrors(validate.errors)}`);
    }
    return problems;
  };
}

async function main(argv) {
  const args = { spec: null, responses: null };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, "");
    if (!(name in args) || !argv[i].startsWith("--") || i + 1 >= argv.length) {
      console.error("usage: node validate.mjs --spec docs/openapi.json [--responses FILE.jsonl]");
      return 2;
    }
    args[name] = argv[++i];
  }
  if (!args.spec) {
    console.error("usage: node validate.mjs --spec docs/openapi.json [--responses FILE.jsonl]");
    return 2;
  }

  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(args.spec, "utf8"));
  } catch (e) {
    console.log(`${args.spec}: cannot read: ${e.message}`);
    return 1;
  }
  const problems = await checkDocument(doc);
  for (const p of problems) console.log(`${args.spec}: ${p}`);
  if (problems.length > 0) {
    console.log(`${args.spec}: not a valid OpenAPI 3.1 document (${problems.length} problem(s))`);
    return 1;
  }
  console.log(`${args.spec}: valid OpenAPI ${doc.openapi} document`);
  if (!args.responses) return 0;

  let text;
  try {
    text = fs.readFileSync(args.responses, "utf8");
  } catch (e) {
    console.log(`${args.responses}: cannot read: ${e.message}`);
    return 1;
  }
  const check = responseChecker(doc);
  let total = 0;
  let failed = 0;
  text.split("\n").forEach((line, index) => {
    if (line.trim() === "") return;
    total++;
    let record;
    let found;
    try {
      record = JSON.parse(line);
      found = check(record);
    } catch (e) {
      found = [e instanceof SyntaxError ? `not JSON: ${e.message}` : e.message];
    }
    if (found.length > 0) {
      failed++;
      const what = record && typeof record === "object" ? `${record.method} ${record.path} ${record.status}: ` : "";
      console.log(`${args.responses}:${index + 1}: ${what}${found.join("; ")}`);
    }
  });
  console.log(`${total} responses validated, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  process.exitCode = await main(process.argv.slice(2));
}
