#!/usr/bin/env node
// Self-test of validate.mjs against the real document: known-good responses must
// pass, known-bad ones must fail for the expected reason, every error code of the
// API must be accepted where it belongs, a broken document must be refused, and
// the command line must print the summary and exit 1 on failures.
//   node selftest.mjs [--spec docs/openapi.json]
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { checkDocument, responseChecker } from "./validate.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const specArg = process.argv.indexOf("--spec");
const specPath = specArg > 0 ? process.argv[specArg + 1] : path.join(here, "../../../docs/openapi.json");
const doc = JSON.parse(fs.readFileSync(specPath, "utf8"));
const check = responseChecker(doc);

let failures = 0;
let cases = 0;
function expect(name, record, wanted) {
  cases++;
  const problems = check(record);
  const ok = wanted === null ? problems.length === 0 : problems.some((p) => p.includes(wanted));
  if (!ok) {
    failures++;
    console.log(`FAIL ${name}: expected ${wanted === null ? "no problem" : JSON.stringify(wanted)}, got ${JSON.stringify(problems)}`);
  }
}

const json = { "content-type": "application/json" };
const rec = (method, p, status, body, headers = json) => ({ method, path: p, status, headers, body });
const error = (code, extra = {}) => ({ error: { code, message: "A sentence." }, ...extra });
const user = { id: 1, login: "fdpd6" };
const purchase = { id: 7, product_id: "premium-pass", kind: "channel", unlocks: ["demo-premium"],
  created_at: 1767225600, expires_at: null, active: true };
const token = "q3Zt0pWfYd8n2LkVx7RbC1mJ4sHgA9eUoT5yN6iQwEc";
const queue = { ticket: 17, position: 3, estimated_wait_s: 45, retry_after_s: 10 };
const channel = { id: "demo", title: "Demo", free: true, locked: false, product: null, playlist: "/hls/demo/live/master.m3u8" };
const noStore = { ...json, "Cache-Control": "no-store" };
const bearer401 = { ...json, "WWW-Authenticate": 'Bearer error="invalid_token"' };

// --- known-good responses -------------------------------------------------------
const login = { token, token_type: "Bearer", expires_at: 1767830400, expires_in: 604800, user };
expect("login 200", rec("POST", "/api/v1/auth/login", 200, login, noStore), null);
expect("login 429 with Retry-After", rec("POST", "/api/v1/auth/login", 429, error("too_many_attempts"), { ...json, "retry-after": "12" }), null);
expect("logout 200", rec("POST", "/api/v1/auth/logout", 200, { revoked: true }, noStore), null);
expect("session 200", rec("GET", "/api/v1/auth/session", 200, { valid: true, expires_at: 1767830400, expires_in: 5, user }, noStore), null);
expect("session 401", rec("GET", "/api/v1/auth/session", 401, error("missing_token"), bearer401), null);
expect("channels 200 (absolute playlist URL)", rec("GET", "/api/v1/channels", 200, { channels: [channel,
  { id: "demo-premium", title: "Paid", free: false, locked: true, product: "premium-pass",
    playlist: "https://tv.example.com/hls/demo-premium/live/master.m3u8" }] }), null);
expect("products 200", rec("GET", "/api/v1/products", 200, { products: [
  { id: "premium-pass", title: "Premium", kind: "channel", price: "4.99", currency: "EUR", unlocks: ["demo-premium"], duration_s: 2592000 },
  { id: "hd", title: "HD", kind: "service", price: "2.00", currency: "USD", unlocks: ["hd"], duration_s: null }] }), null);
expect("purchase 201", rec("POST", "/api/v1/purchases", 201, { purchase }), null);
expect("purchase 200 (same key)", rec("POST", "/api/v1/purchases", 200, { purchase: { ...purchase, expires_at: 1769817600 } }), null);
expect("purchases 200 (empty)", rec("GET", "/api/v1/purchases", 200, { purchases: [] }), null);
expect("purchase by id 200", rec("GET", "/api/v1/purchases/7", 200, { purchase }), null);
expect("purchase by id 404", rec("GET", "/api/v1/purchases/8", 404, error("not_found")), null);
expect("purchase by id 400", rec("GET", "/api/v1/purchases/abc", 400, error("invalid_field")), null);
expect("caches 200", rec("GET", "/api/v1/caches", 200, { caches: [{ id: "venue-a", site: "venue", ping_url: "http://10.20.0.11:8081/ping" }] }), null);
expect("access 200 bearer", rec("GET", "/api/v1/access?channel=demo&cache=venue-a", 200,
  { access: "granted", channel: "demo", playlist_url: "/hls/demo/live/master.m3u8?ticket=abc&cache=venue-a", ticket_expires_at: 1767830400 }), null);
expect("access 200 legacy", rec("GET", "/api/v1/access?channel=demo&viewer=x1", 200, { access: "granted", channel: "demo" }), null);
expect("access 503 queued", rec("GET", "/api/v1/access?channel=demo", 503, error("queued", { queue }), { ...json, "Retry-After": "10" }), null);
expect("access 503 busy", rec("GET", "/api/v1/access?channel=demo", 503, error("busy"), { ...json, "Retry-After": "10" }), null);
expect("access 401 legacy without WWW-Authenticate", rec("GET", "/api/v1/access?channel=demo", 401, error("ticket_expired")), null);
expect("content-type with charset", rec("GET", "/api/v1/caches", 200, { caches: [] }, { "Content-Type": "application/json; charset=utf-8" }), null);

// --- every error code of the API where it belongs --------------------------------
const codes = {
  "POST /api/v1/auth/login": { 400: ["malformed_json", "missing_field", "invalid_field"], 401: ["invalid_credentials"],
    413: ["body_too_large"], 429: ["too_many_attempts"], 503: ["busy"], 500: ["storage_error"] },
  "POST /api/v1/auth/logout": { 401: ["missing_token", "invalid_token"] },
  "GET /api/v1/auth/session": { 401: ["missing_token", "invalid_token"] },
  "GET /api/v1/channels": { 401: ["missing_token", "invalid_token"] },
  "POST /api/v1/purchases": { 400: ["malformed_json", "missing_field", "invalid_field"], 401: ["missing_token", "invalid_token"],
    402: ["receipt_rejected"], 404: ["unknown_product"], 409: ["idempotency_conflict"], 413: ["body_too_large"], 500: ["storage_error"] },
  "GET /api/v1/purchases": { 401: ["missing_token", "invalid_token"] },
  "GET /api/v1/purchases/1": { 400: ["invalid_field"], 401: ["missing_token", "invalid_token"], 404: ["not_found"] },
  "GET /api/v1/access?channel=demo": { 400: ["bad_request", "bad_viewer"],
    401: ["missing_token", "invalid_token", "credentials_required", "ticket_required", "ticket_malformed", "ticket_invalid", "ticket_expired"],
    403: ["not_entitled", "ticket_wrong_channel"], 404: ["unknown_channel"], 429: ["too_many_viewers", "too_many_streams"], 503: ["busy"] },
};
const headersFor = { 401: bearer401, 429: { ...json, "Retry-After": "3" }, 503: { ...json, "Retry-After": "1" } };
for (const [operation, byStatus] of Object.entries(codes)) {
  const [method, p] = operation.split(" ");
  for (const [status, list] of Object.entries(byStatus)) {
    for (const code of list) expect(`${operation} ${status} ${code}`, rec(method, p, Number(status), error(code), headersFor[status] || json), null);
    expect(`${operation} ${status} unknown code`, rec(method, p, Number(status), error("no_such_code"), headersFor[status] || json), "/error/code must be");
  }
}

// --- known-bad responses --------------------------------------------------------
expect("unknown path", rec("GET", "/api/v1/nope", 404, error("not_found")), "no path of the document matches");
expect("undocumented method", rec("DELETE", "/api/v1/purchases/7", 200, purchase), "DELETE is not documented");
expect("405 without Allow", rec("DELETE", "/api/v1/purchases/7", 405, error("method_not_allowed")), "405 without an Allow header");
expect("405 whose Allow misses a method", rec("PUT", "/api/v1/purchases", 405, error("method_not_allowed"), { ...json, Allow: "GET" }), "misses the documented POST");
expect("405 with another code", rec("PUT", "/api/v1/purchases", 405, error("not_found"), { ...json, Allow: "GET, POST" }), "not method_not_allowed");
expect("405 for another method, as info.description says", rec("PUT", "/api/v1/purchases", 405, error("method_not_allowed"), { ...json, Allow: "GET, POST" }), null);
expect("undocumented status", rec("GET", "/api/v1/purchases/7", 418, error("teapot")), "status 418 is not documented");
expect("429 without Retry-After", rec("POST", "/api/v1/auth/login", 429, error("too_many_attempts")), "missing required header Retry-After");
expect("503 queued without Retry-After", rec("GET", "/api/v1/access?channel=demo", 503, error("queued", { queue })), "missing required header Retry-After");
expect("Retry-After not a number", rec("GET", "/api/v1/access?channel=demo", 503, error("busy"), { ...json, "Retry-After": "soon" }), "header Retry-After");
expect("401 without WWW-Authenticate", rec("GET", "/api/v1/channels", 401, error("invalid_token")), "missing required header WWW-Authenticate");
expect("login 200 without no-store", rec("POST", "/api/v1/auth/login", 200, login), "missing required header Cache-Control");
expect("token of the wrong length", rec("POST", "/api/v1/auth/login", 200, { ...login, token: "abc" }, noStore), "/token must match pattern");
expect("free channel with a product", rec("GET", "/api/v1/channels", 200, { channels: [{ ...channel, product: "premium-pass" }] }), "/channels/0/product must be null");
expect("purchase without active", rec("GET", "/api/v1/purchases/7", 200, { purchase: { ...purchase, active: undefined } }), "must have required property 'active'");
expect("purchase with an extra member", rec("GET", "/api/v1/purchases/7", 200, { purchase: { ...purchase, price: "4.99" } }), "additional properties: price");
expect("purchase id as string", rec("POST", "/api/v1/purchases", 201, { purchase: { ...purchase, id: "7" } }), "/purchase/id must be integer");
expect("price as number", rec("GET", "/api/v1/products", 200, { products: [{ id: "p", title: "P", kind: "channel", price: 4.99, currency: "EUR", unlocks: [], duration_s: null }] }), "/products/0/price must be string");
expect("price with one decimal place", rec("GET", "/api/v1/products", 200, { products: [{ id: "p", title: "P", kind: "channel", price: "4.9", currency: "EUR", unlocks: ["x"], duration_s: null }] }), "/products/0/price must match pattern");
expect("product without unlocks", rec("GET", "/api/v1/products", 200, { products: [{ id: "p", title: "P", kind: "channel", price: "4.90", currency: "EUR", unlocks: [], duration_s: null }] }), "/products/0/unlocks must NOT have fewer than 1 items");
expect("lower-case currency", rec("GET", "/api/v1/products", 200, { products: [{ id: "p", title: "P", kind: "channel", price: "4.99", currency: "eur", unlocks: [], duration_s: null }] }), "/products/0/currency must match pattern");
expect("ping_url not a URI reference", rec("GET", "/api/v1/caches", 200, { caches: [{ id: "a", site: "s", ping_url: "http://bad host/ping" }] }), "must match format \"uri-reference\"");
expect("playlist_url without ticket_expires_at", rec("GET", "/api/v1/access?channel=demo", 200, { access: "granted", channel: "demo", playlist_url: "/x.m3u8" }), "must have property ticket_expires_at");
expect("queued without queue", rec("GET", "/api/v1/access?channel=demo", 503, error("queued"), { ...json, "Retry-After": "10" }), "must have required property 'queue'");
expect("error without message", rec("GET", "/api/v1/purchases/8", 404, { error: { code: "not_found" } }), "must have required property 'message'");
expect("no body", rec("GET", "/api/v1/caches", 200, null), "no JSON body");
expect("HTML content type", rec("GET", "/api/v1/caches", 200, { caches: [] }, { "content-type": "text/html" }), "content-type \"text/html\" is not documented");
expect("missing status", { method: "GET", path: "/api/v1/caches", body: null }, "needs method");

// --- broken documents are refused -------------------------------------------------
const broken = {
  "no info": (d) => { delete d.info; },
  "an example that does not match its schema": (d) => { d.paths["/api/v1/caches"].get.responses["200"].content["application/json"].example = { caches: "none" }; },
  "a response without example": (d) => { delete d.paths["/api/v1/caches"].get.responses["200"].content["application/json"].example; },
  "a dangling $ref": (d) => { d.components.schemas.ChannelList.properties.channels.items = { $ref: "#/components/schemas/Nope" }; },
  "an invalid schema": (d) => { d.components.schemas.User.properties.id.type = "integr"; },
};
for (const [name, mutate] of Object.entries(broken)) {
  cases++;
  const d = structuredClone(doc);
  mutate(d);
  if ((await checkDocument(d)).length === 0) {
    failures++;
    console.log(`FAIL the document with ${name} was accepted`);
  }
}
cases++;
const own = await checkDocument(doc);
if (own.length > 0) {
  failures++;
  console.log(`FAIL the document itself: ${own.join("; ")}`);
}

// --- the command line: exit codes and summary -------------------------------------
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "openapi-selftest-"));
const run = (lines) => {
  const file = path.join(dir, "responses.jsonl");
  fs.writeFileSync(file, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n");
  return spawnSync(process.execPath, [path.join(here, "validate.mjs"), "--spec", specPath, "--responses", file], { encoding: "utf8" });
};
const good = rec("GET", "/api/v1/purchases/7", 200, { purchase });
const cli = [
  ["all good", [good, rec("GET", "/api/v1/caches", 200, { caches: [] })], 0, "2 responses validated, 0 failed"],
  ["some bad", [good, "", rec("GET", "/api/v1/nope", 404, error("not_found")), "{not json"], 1, "3 responses validated, 2 failed"],
];
for (const [name, lines, status, summary] of cli) {
  cases++;
  const r = run(lines);
  try {
    assert.equal(r.status, status);
    assert.match(r.stdout, new RegExp(`^${summary}$`, "m"));
  } catch (e) {
    failures++;
    console.log(`FAIL command line, ${name}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  }
}
fs.rmSync(dir, { recursive: true, force: true });

console.log(`selftest: ${cases} cases, ${failures} failed`);
process.exitCode = failures > 0 ? 1 : 0;
