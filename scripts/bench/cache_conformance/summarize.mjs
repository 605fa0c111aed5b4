// Counts one or more result files of the suite's client by kind (required, optimal, check)
// and outcome, the way the suite's own display classifies them (lib/display.mjs), and lists
// each peer's failing required tests.
//   node summarize.mjs <summary.json> <name>=<results.json> ...
import fs from 'node:fs'
import tests from 'http-cache-tests/tests/index.mjs'
import surrogate from 'http-cache-tests/tests/surrogate-control.mjs'
import * as display from 'http-cache-tests/lib/display.mjs'

tests.push(surrogate)
// determineTestResult's outcomes, by the symbol each carries (lib/display.mjs does not export them).
const Outcome = { untested: '-', pass: '✅', yes: 'Y', setup_fail: '🔹', harness_fail: '⁉️', retry: '↻' }
const [summaryPath, ...peers] = process.argv.slice(2)
const byId = new Map()
for (const suite of tests) for (const test of suite.tests) byId.set(test.id, { suite: suite.name, test })

const summary = {}
for (const peer of peers) {
  const [name, file] = peer.split('=')
  const results = JSON.parse(fs.readFileSync(file, 'utf8'))
  const counts = {
    required: { passed: 0, total: 0 },
    optimal: { passed: 0, total: 0 },
    check: { yes: 0, total: 0 },
    harness: { setup_fail: 0, retry: 0, harness_fail: 0, untested: 0 }
  }
  const failingRequired = []
  for (const [id, { suite, test }] of byId) {
    if (test.browser_only) continue
    const kind = test.kind || 'required'
    const outcome = display.determineTestResult(tests, id, results, false)[2]
    if (outcome === Outcome.untested) { counts.harness.untested++; continue }
    if (outcome === Outcome.setup_fail) { counts.harness.setup_fail++; continue }
    if (outcome === Outcome.retry) { counts.harness.retry++; continue }
    if (outcome === Outcome.harness_fail) { counts.harness.harness_fail++; continue }
    counts[kind].total++
    if (kind === 'check') {
      if (outcome === Outcome.yes) counts.check.yes++
    } else if (outcome === Outcome.pass) {
      counts[kind].passed++
    } else if (kind === 'required') {
      const detail = Array.isArray(results[id]) ? results[id][1] : ''
      failingRequired.push({ id, suite, name: test.name, detail: String(detail || '') })
    }
  }
  summary[name] = { counts, failing_required: failingRequired }
}
fs.writeFileSync(summaryPath, JSON.stringify(summary, null, 2) + '\n')
console.log('| cache | required passed | optimal passed | checks "yes" | set-up or harness failures |')
console.log('|---|---|---|---|---|')
for (const [name, { counts }] of Object.entries(summary)) {
  const h = counts.harness
  console.log(`| ${name} | ${counts.required.passed} / ${counts.required.total} | ${counts.optimal.passed} / ${counts.optimal.total} | ${counts.check.yes} / ${counts.check.total} | ${h.setup_fail + h.retry + h.harness_fail + h.untested} |`)
}
