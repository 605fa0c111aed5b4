// A player (hls.js, Shaka Player or video.js/VHS; in its low-latency mode with --ll 1) in
// Debian's chromium, playing two streams side by side: one through the server under test, one
// straight from an origin. Both pages load first and start at the same moment (a player's
// distance from live is set as it starts). After the warm-up, for --seconds, it samples each
// player's latency behind live every half second (wall clock minus the
// EXT-X-PROGRAM-DATE-TIME of the frame on screen, as the player maps it) and counts its
// stalls, then prints one JSON line:
//   {"through":{"latency_s":{"p50":..,"p95":..,"max":..},"stalls":N,"stalled_s":S,"fatal":N,
//    "stall_log":[{"at_s":..,"seconds":..,"current_time":..}],"chunks":N,"failed":N},
//    "direct":{...},"added_s":through p50 - direct p50}
// Used by latency_bench.sh; the players' page and the pinned players are the browser tests'
// (tests/browser/players/, web/node_modules/hls.js, tests/browser/node_modules).
//   node scripts/bench/players_latency.mjs --through URL --direct URL [--player hlsjs|shaka|videojs]
//        [--ll 1|0] [--seconds 60] [--warmup 10] [--chromium /usr/bin/chromium]
// (The page keeps its last 1,200 samples, 600 s: hence at most 500 s measured.)
// Exit codes: 0 measured, 1 a player did not start or failed, 77 chromium missing.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from '../../tests/browser/node_modules/playwright-core/index.mjs';
import { startPageServer, waitFor } from '../../tests/browser/stack.mjs';

const source = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) =>
  (a.startsWith('--') ? pairs.concat([[a.slice(2), all[i + 1]]]) : pairs), []));
const seconds = Number(args.seconds || 60);
const warmup = Number(args.warmup || 10);
const player = args.player || 'hlsjs';
const lowLatency = (args.ll || '1') === '1';
const chromiumPath = args.chromium || process.env.CHROMIUM || '/usr/bin/chromium';
if (!args.through || !args.direct || !(seconds > 0 && seconds <= 500) || !(warmup >= 0 && warmup <= 60) ||
  !['hlsjs', 'shaka', 'videojs'].includes(player)) {
  console.error('usage: players_latency.mjs --through URL --direct URL [--player hlsjs|shaka|videojs] [--ll 1|0] ' +
    '[--seconds 1..500] [--warmup 0..60]');
  process.exit(2);
}
if (!fs.existsSync(chromiumPath)) {
  console.error('skipped: ' + chromiumPath + ' is not installed');
  process.exit(77);
}

const quantile = (xs, q) => {
  if (!xs.length) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};

async function open(browser, pages, src) {
  const page = await browser.newPage();
  const net = { chunks: [], failed: [] };
  page.on('response', (r) => {
    if (/\.(m4s|ts)$/.test(new URL(r.url()).pathname)) net.chunks.push({ at: Date.now(), status: r.status() });
  });
  page.on('requestfailed', () => net.failed.push(Date.now()));
  await page.goto(pages.url + '/players/index.html?player=' + player + (lowLatency ? '&ll=1' : '') + '&hold=1&src=' +
    encodeURIComponent(src));
  await page.waitForFunction(() => typeof window.startPlayer === 'function', null, { timeout: 30000 });
  return { page, net, src };
}

const state = (p) => p.page.evaluate(() => Object.assign({ currentTime: window.playerVideo.currentTime }, window.playerState));

function figures(s, net, from, samplesBefore) {
  const latency = s.latency.slice(samplesBefore);
  const stalls = s.stallLog.filter((x) => x.at >= from);
  return {
    latency_s: { p50: quantile(latency, 0.5), p95: quantile(latency, 0.95), max: latency.length ? Math.max(...latency) : null,
      samples: latency.length },
    stalls: stalls.length, stalls_since_start: s.stalls, stalled_s: +s.stallSeconds.toFixed(2), fatal: s.fatalErrors,
    // Each stall in the measured window: when (s from its start), how long, where in the media.
    stall_log: stalls.map((x) => ({ at_s: +((x.at - from) / 1000).toFixed(2), seconds: x.seconds ?? null,
      current_time: x.currentTime })),
    chunks: net.chunks.filter((x) => x.at >= from).length,
    failed: net.failed.filter((at) => at >= from).length + net.chunks.filter((x) => x.at >= from && x.status >= 400).length,
    last_errors: s.errors.slice(-3),
  };
}

const pages = await startPageServer(source);
const browser = await chromium.launch({
  executablePath: chromiumPath, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});
let code = 0;
try {
  const players = [await open(browser, pages, args.through), await open(browser, pages, args.direct)];
  await Promise.all(players.map((p) => p.page.evaluate(() => { window.startPlayer(); })));
  for (const p of players) {
    await waitFor(player + ' playing ' + p.src, async () => (await state(p)).currentTime > 0, 30000, 200).catch(async (e) => {
      const s = await state(p);
      throw new Error(e.message + ': ' + JSON.stringify({ phase: s.phase, errors: s.errors.slice(-3), failed: p.net.failed.length }));
    });
  }
  const warm = Date.now() + warmup * 1000;
  await waitFor('the warm-up', async () => Date.now() >= warm, warmup * 1000 + 5000, 250);
  const from = Date.now();
  const before = await Promise.all(players.map(async (p) => (await state(p)).latency.length));
  const end = from + seconds * 1000;
  await waitFor('the measured ' + seconds + ' s', async () => Date.now() >= end, seconds * 1000 + 5000, 500);
  const [through, direct] = await Promise.all(players.map(async (p, i) => figures(await state(p), p.net, from, before[i])));
  const added = through.latency_s.p50 !== null && direct.latency_s.p50 !== null ? +(through.latency_s.p50 - direct.latency_s.p50).toFixed(3) : null;
  const version = await players[0].page.evaluate(() => window.playerState.version);
  console.log(JSON.stringify({ player: player + ' ' + version, low_latency: lowLatency, seconds,
    through, direct, added_s: added }));
  if (through.fatal || direct.fatal) code = 1;
} catch (e) {
  console.error('players_latency: ' + (e.stack || e));
  code = 1;
} finally {
  await browser.close();
  pages.server.close();
}
process.exit(code);
