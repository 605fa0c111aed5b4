// The operator's dashboard. Every POLL_MS it reads /admin/status (operator key, or
// loopback), the balancer's /metrics and /health (the cache list), and each cache node's
// /health and /playback (CORS), keeps the last HISTORY samples and draws them as SVG plots
// with their scale (the y axis from 0 to a round maximum, in the figure's unit) and time axis.
//
// Every figure names its window, and the same window is computed from the same counters
// wherever it is shown:
// - "now": a gauge read at the sample (viewers, queue, traffic, usable nodes), or the players'
//   latest reports (sessions heard within the nodes' 30 s idle time: buffers, latency);
// - "last 60 s" (WINDOW_S): a counter's change between the newest sample and the one WINDOW_S
//   before it (while the page has been open less long, since the page opened, and said so):
//   hit ratio, origin offload, playlist requests, stalls, newest media age;
// - "since start": the counters' totals (each node's since it started): the health table's
//   hit ratio and offload, beside their last 60 s.
// Hit ratio: the requests a node served without origin (hit, coalesced, negative) of all its
// requests, as the CacheHitRatioLow alert counts them. Origin offload: 1 − the bytes fetched
// from origin / the bytes served. Newest media age: balancer_playlist_newest_age_seconds' sum over
// its count. Viewer latency behind live: p50 and p95 over the players' latest reports (CMCD
// ltc) summed over the nodes, interpolated in the nodes' buckets. A buffer is judged by the
// kind of stream its player plays: low-latency (CMCD st=ll) healthy with one part buffered,
// regular with healthy_buffer_ms (4 s). Stalls add the nodes' and the balancer's (each stall is
// flagged on one request, to one of them).
// The button switches overload emulation (/access_queue_switch?state=on|off).
// window.dashboardState is the page's state for tests: the series, and `figures`, each shown
// figure with its window and the counters it came from.
'use strict';

const POLL_MS = 2000;
const HISTORY = 150;  // 5 minutes at POLL_MS
const WINDOW_S = 60;  // the window of rates and ratios
const FETCH_TIMEOUT_MS = 1500;

// kind: how values are written (formatters below); window: which window the figure covers.
const PANELS = [
  { id: 'viewers', title: 'Live streams (one per device)', kind: 'count', window: 'now' },
  { id: 'queue_length', title: 'Queue length', kind: 'count', window: 'now' },
  { id: 'head_wait', title: 'Queue head wait', kind: 'seconds', window: 'now' },
  { id: 'traffic', title: 'Traffic estimate', kind: 'mbps', limit: 'traffic_limit', limitInText: true, window: 'now' },
  { id: 'caches_up', title: 'Cache nodes usable', kind: 'count', limit: 'caches_total', window: 'now' },
  { id: 'hit_ratio', title: 'Cache hit ratio (served without origin)', kind: 'percent', window: 'rate' },
  { id: 'offload', title: 'Origin offload (bytes not fetched from origin)', kind: 'percent', window: 'rate' },
  { id: 'playlist_rate', title: 'Playlist requests', kind: 'rate', window: 'rate' },
  // How old the newest segment or part was when the balancer served a playlist (by its
  // EXT-X-PROGRAM-DATE-TIME): the edge's share of the viewers' latency behind live.
  { id: 'newest_age', title: 'Newest media age at serve (worst channel)', kind: 'seconds', window: 'rate' },
  // What the players say they are behind live (CMCD ltc): p50, and p95 as a second line.
  { id: 'latency_p50', title: 'Viewer latency behind live (p50, p95)', kind: 'seconds', second: 'latency_p95', window: 'players' },
];
// Playback quality (CMCD), a row of its own.
const QUALITY_PANELS = [
  { id: 'stalls_per_min', title: 'Stalls per minute', kind: 'rate_min', window: 'rate' },
  { id: 'healthy_buffer', title: 'Viewers with a healthy buffer', kind: 'percent', window: 'players' },
  { id: 'reporting', title: 'Players reporting (CMCD)', kind: 'count', window: 'players' },
];
const ALL_PANELS = PANELS.concat(QUALITY_PANELS);

const state = { samples: 0, series: {}, errors: [], emulation: null, last: null, window_s: WINDOW_S, figures: {} };
window.dashboardState = state;
for (const p of ALL_PANELS) state.series[p.id] = [];
state.playback = null;  // the last sample's sums: sessions, buffers by kind, latency, bitrate mix
state.series.traffic_limit = [];
state.series.caches_total = [];
state.series.latency_p95 = [];
state.times = [];  // each sample's time (s, page clock)

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
let operatorKey = sessionStorage.getItem('operatorKey') || '';
const counterHistory = [];  // the counters of each sample: { at, hits, requests, served, origin, playlists, stalls, ages }

// ---- formatting for people ----
const grouped = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
function fixed(v, digits) {
  return new Intl.NumberFormat('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(v);
}
// Significant digits that suit the size: 1.48, 14.8, 148, 1,480.
function sensible(v) {
  const a = Math.abs(v);
  return a === 0 ? '0' : a < 10 ? fixed(v, 2) : a < 100 ? fixed(v, 1) : grouped.format(v);
}
// An axis bound: 0.25, 2.5, 1,000.
function axisNumber(v) { return new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 }).format(v); }
function formatMbps(v) { return sensible(v) + ' Mbit/s'; }
function formatPercent(v) { return (Math.abs(v) < 10 && v !== 0 ? fixed(v, 1) : grouped.format(v)) + ' %'; }
function formatSeconds(s) {
  if (s < 60) return sensible(s) + ' s';
  const whole = Math.round(s);
  if (whole < 3600) return Math.floor(whole / 60) + ' min ' + (whole % 60) + ' s';
  return Math.floor(whole / 3600) + ' h ' + Math.floor((whole % 3600) / 60) + ' min';
}
function formatCount(v) { return grouped.format(v); }
const FORMAT = {
  count: formatCount,
  seconds: formatSeconds,
  mbps: formatMbps,
  percent: formatPercent,
  rate: (v) => sensible(v) + ' /s',
  rate_min: (v) => sensible(v) + ' /min',
};
// The unit an axis is labelled with.
const AXIS_UNIT = { count: '', seconds: ' s', mbps: ' Mbit/s', percent: ' %', rate: ' /s', rate_min: ' /min' };
function formatSpan(s) { return s < 90 ? Math.round(s) + ' s' : Math.round(s / 60) + ' min'; }
function windowText(p) {
  if (p.window === 'now') return 'now';
  if (p.window === 'players') return "now: players' latest reports (last 30 s)";
  const span = state.figures.window_span_s;
  if (span === undefined || span >= WINDOW_S - 1) return 'last ' + WINDOW_S + ' s';
  if (span < 1) return 'last ' + WINDOW_S + ' s (from the second sample on)';
  return 'last ' + Math.round(span) + ' s (since the page opened)';
}

// ---- plots ----
function buildPanels() {
  for (const p of ALL_PANELS) {
    const figure = document.createElement('figure');
    figure.className = 'panel';
    figure.id = 'panel-' + p.id;
    const caption = document.createElement('figcaption');
    const title = document.createElement('span');
    title.textContent = p.title;
    const windowLabel = document.createElement('span');
    windowLabel.className = 'window';
    caption.append(title, windowLabel);
    const value = document.createElement('div');
    value.className = 'value';
    value.textContent = '–';
    const detail = document.createElement('div');
    detail.className = 'detail';
    const plot = document.createElement('div');
    plot.className = 'plot';
    const yAxis = document.createElement('div');
    yAxis.className = 'y-axis';
    const yMax = document.createElement('span');
    yMax.className = 'y-max';
    const yMin = document.createElement('span');
    yMin.className = 'y-min';
    yAxis.append(yMax, yMin);
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 300 70');
    svg.setAttribute('preserveAspectRatio', 'none');
    for (const y of [4, 35, 66]) {
      const grid = document.createElementNS(SVG, 'line');
      grid.setAttribute('class', 'grid');
      grid.setAttribute('x1', '0');
      grid.setAttribute('x2', '300');
      grid.setAttribute('y1', String(y));
      grid.setAttribute('y2', String(y));
      svg.append(grid);
    }
    if (p.limit && !p.limitInText) svg.append(polyline('limit'));
    if (p.second) svg.append(polyline('second'));
    svg.append(polyline('data'));
    plot.append(yAxis, svg);
    const xAxis = document.createElement('div');
    xAxis.className = 'x-axis';
    for (const [cls, text] of [['x-from', ''], ['x-label', 'time'], ['x-to', 'now']]) {
      const span = document.createElement('span');
      span.className = cls;
      span.textContent = text;
      xAxis.append(span);
    }
    figure.append(caption, value, detail, plot, xAxis);
    $(QUALITY_PANELS.includes(p) ? 'quality-panels' : 'panels').append(figure);
  }
}

function polyline(cls) {
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('class', cls);
  return line;
}

function push(name, v) {
  const s = state.series[name];
  s.push(Number.isFinite(v) ? v : null);
  if (s.length > HISTORY) s.shift();
}

// The smallest of 1, 2, 2.5, 5 × 10^k at or above v: the y axis' maximum.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(v)));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= v) return step * power;
  return 10 * power;
}

// Each sample at its time: the right edge is now, the left edge HISTORY samples before it.
function points(values, max) {
  const out = [];
  const spanS = (HISTORY - 1) * POLL_MS / 1000;
  const now = state.times.at(-1);
  values.forEach((v, i) => {
    if (v === null) return;
    const t = state.times[state.times.length - values.length + i];
    const x = 300 - ((now - t) / spanS) * 300;
    const y = 66 - (v / max) * 62;
    out.push(x.toFixed(1) + ',' + y.toFixed(1));
  });
  return out.join(' ');
}

function draw() {
  for (const p of ALL_PANELS) {
    const values = state.series[p.id];
    const limits = p.limit ? state.series[p.limit] : [];
    const seconds = p.second ? state.series[p.second] : [];
    // A limit far above the values (traffic) is said in text, not drawn: the values would be a flat line.
    const drawLimit = p.limit && !p.limitInText;
    const known = values.concat(drawLimit ? limits : [], seconds).filter((v) => v !== null);
    const max = p.kind === 'percent' ? 100 : niceMax(Math.max(0, ...known));
    const figure = $('panel-' + p.id);
    figure.querySelector('polyline.data').setAttribute('points', points(values, max));
    if (drawLimit) figure.querySelector('polyline.limit').setAttribute('points', points(limits, max));
    if (p.second) figure.querySelector('polyline.second').setAttribute('points', points(seconds, max));
    const unit = AXIS_UNIT[p.kind];
    figure.querySelector('.y-max').textContent = axisNumber(max) + unit;
    figure.querySelector('.y-min').textContent = '0' + unit;
    figure.querySelector('.x-from').textContent = formatSpan((HISTORY - 1) * POLL_MS / 1000) + ' ago';
    figure.querySelector('.window').textContent = windowText(p);
    const last = values.length ? values[values.length - 1] : null;
    const limitLast = limits.length ? limits[limits.length - 1] : null;
    const format = FORMAT[p.kind];
    let text = last === null ? '–' : format(last);
    if (last !== null && limitLast !== null && p.limit) text += ' of ' + format(limitLast);
    if (last !== null && p.second && seconds.at(-1) !== null) text = 'p50 ' + text + ' · p95 ' + format(seconds.at(-1));
    figure.querySelector('.value').textContent = text;
    figure.querySelector('.detail').textContent = (state.details && state.details[p.id]) || '';
  }
}

// ---- reading the servers ----
async function getJson(url, headers = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
  try {
    const r = await fetch(url, { headers, cache: 'no-store', signal: controller.signal });
    const body = await r.json();
    if (!r.ok) throw new Error(body && body.error ? body.error.message : 'HTTP ' + r.status);
    return body;
  } finally {
    clearTimeout(timer);
  }
}

async function getText(url) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
  try {
    const r = await fetch(url, { cache: 'no-store', signal: controller.signal });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    return await r.text();
  } finally {
    clearTimeout(timer);
  }
}

function operatorHeaders() { return operatorKey ? { 'X-Operator-Key': operatorKey } : {}; }

// balancer_playlist_newest_age_seconds per channel: { channel: { sum, count } }.
function newestAges(text) {
  const out = {};
  const re = /^balancer_playlist_newest_age_seconds_(sum|count)\{channel="([^"]*)"\} (\S+)$/;
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    out[m[2]] = out[m[2]] || { sum: 0, count: 0 };
    out[m[2]][m[1]] = parseFloat(m[3]);
  }
  return out;
}

// The value of one series line "name{labels} value" in Prometheus text.
function metric(text, series) {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return parseFloat(line.slice(series.length + 1));
  }
  return NaN;
}

function fillTable(id, rows) {
  const body = $(id).querySelector('tbody');
  body.replaceChildren();
  for (const cells of rows) {
    const tr = document.createElement('tr');
    for (const c of cells) {
      const td = document.createElement('td');
      if (c && typeof c === 'object') { td.textContent = c.text; td.className = c.className || ''; } else td.textContent = c;
      tr.append(td);
    }
    body.append(tr);
  }
}

// A node's counters as its /health gives them (the same as its /metrics' cache_requests_total,
// cache_bytes_served_total and cache_origin_bytes_total).
function nodeCounters(h) {
  const r = h.requests;
  return {
    hits: r.hit + r.coalesced + r.negative,
    requests: r.hit + r.coalesced + r.miss + r.stale + r.negative,
    served: h.bytes_served_total,
    origin: h.origin_bytes_total,
  };
}
// null without requests in the window, or when a node restarted in it (its counters went back).
const hitRatio = (c) => (c.requests > 0 && c.hits >= 0 ? (100 * c.hits) / c.requests : null);
const offloadOf = (c) => (c.served > 0 && c.origin >= 0 ? Math.max(0, 100 * (1 - c.origin / c.served)) : null);
function difference(a, b) { return { hits: a.hits - b.hits, requests: a.requests - b.requests, served: a.served - b.served, origin: a.origin - b.origin }; }

// The players' reports summed over the nodes that answered; stalls from the balancer too.
function playbackOf(nodes, balancer) {
  const out = { sessions: 0, with_buffer: 0, healthy: 0, stalls: 0, bitrate_mix: {}, latency_mix: {}, with_latency: 0,
    low_latency: { with_buffer: 0, healthy: 0 }, regular: { with_buffer: 0, healthy: 0 }, healthy_buffer_ms: null };
  for (const n of nodes) {
    const p = n.playback;
    if (!p) continue;
    out.sessions += p.sessions;
    out.with_buffer += p.sessions_with_buffer;
    out.healthy += p.healthy_buffer;
    const llWith = p.low_latency_sessions_with_buffer || 0, llHealthy = p.low_latency_healthy_buffer || 0;
    out.low_latency.with_buffer += llWith;
    out.low_latency.healthy += llHealthy;
    out.regular.with_buffer += p.sessions_with_buffer - llWith;
    out.regular.healthy += p.healthy_buffer - llHealthy;
    out.healthy_buffer_ms = p.healthy_buffer_ms;
    out.stalls += p.stalls_total;
    for (const [kbps, count] of Object.entries(p.bitrate_mix)) out.bitrate_mix[kbps] = (out.bitrate_mix[kbps] || 0) + count;
    for (const [ms, count] of Object.entries(p.latency_mix || {})) out.latency_mix[ms] = (out.latency_mix[ms] || 0) + count;
    out.with_latency += p.sessions_with_latency || 0;
  }
  if (balancer) out.stalls += balancer.stalls_total;
  return out;
}

// The q-quantile (0..1) of sessions counted in buckets { "upper bound in ms" or "over_N": count },
// in seconds, interpolated linearly inside its bucket as Prometheus' histogram_quantile does
// (the first bucket from 0; above the last bound: that bound).
function quantileOf(mix, q) {
  const entries = Object.entries(mix).map(([k, n]) => [k.startsWith('over_') ? Infinity : Number(k), n])
    .sort((a, b) => a[0] - b[0]);
  const total = entries.reduce((t, [, n]) => t + n, 0);
  if (total === 0) return null;
  const bounds = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800,
    1900, 2000, 2100, 2200, 2300, 2400, 2500, 2600, 2700, 2800, 2900, 3000, 4000, 5000, 6000, 8000, 10000, 15000,
    20000, 30000, 45000, 60000];
  const rank = q * total;
  let below = 0;
  for (const [upper, n] of entries) {
    if (below + n >= rank) {
      if (upper === Infinity) return bounds.at(-1) / 1000;
      const i = bounds.indexOf(upper);
      const lower = i > 0 ? bounds[i - 1] : 0;
      return (lower + ((upper - lower) * (rank - below)) / n) / 1000;
    }
    below += n;
  }
  return bounds.at(-1) / 1000;
}

// The bitrate mix: one bar per bitrate bucket (its upper bound in kbps, or "over_N" above the
// last), its share of the players that reported one.
function drawBitrateMix(mix) {
  const body = $('bitrate-mix').querySelector('tbody');
  body.replaceChildren();
  const bound = (key) => (key.startsWith('over_') ? Number(key.slice(5)) + 1 : Number(key));
  const mbps = (kbps) => formatMbps(kbps / 1000);
  const entries = Object.entries(mix).sort((a, b) => bound(b[0]) - bound(a[0]));
  const total = entries.reduce((t, [, n]) => t + n, 0);
  for (const [key, n] of entries) {
    const tr = document.createElement('tr');
    const share = total ? (100 * n) / total : 0;
    const bar = document.createElement('td');
    const fill = document.createElement('span');
    fill.className = 'bar';
    fill.style.width = Math.round(share) + '%';
    bar.append(fill);
    const label = key.startsWith('over_') ? 'over ' + mbps(bound(key) - 1) : 'up to ' + mbps(bound(key));
    for (const text of [label, formatCount(n), formatPercent(share)]) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    tr.append(bar);
    body.append(tr);
  }
}

// The sample WINDOW_S before the newest (or the oldest kept, while the page is younger).
function windowStart(now) {
  let start = counterHistory[0];
  for (const c of counterHistory) if (c.at <= now - WINDOW_S + 0.5) start = c;
  return start;
}

// The windowed figures of one sample: hit ratio, offload, playlist rate, stalls, newest media age.
function windowFigures(current, totals) {
  const start = windowStart(current.at);
  const span = current.at - start.at;
  state.figures.window_span_s = span;
  const change = difference(totals, start);
  const f = state.figures;
  f.hit_ratio = { window_s: span, value: span > 0 ? hitRatio(change) : null, since_start: hitRatio(totals), from: pick(start), to: pick(totals) };
  f.offload = { window_s: span, value: span > 0 ? offloadOf(change) : null, since_start: offloadOf(totals), from: pick(start), to: pick(totals) };
  f.playlist_rate = { window_s: span, value: span > 0 ? (current.playlists - start.playlists) / span : null, from: start.playlists, to: current.playlists };
  f.stalls_per_min = { window_s: span, value: span > 0 ? (60 * Math.max(0, current.stalls - start.stalls)) / span : null, from: start.stalls, to: current.stalls };
  // The mean age per channel over the playlists served in the window; a channel that served none
  // in it has none.
  const ages = {};
  for (const [channel, a] of Object.entries(current.ages)) {
    const b = start.ages[channel] || { sum: 0, count: 0 };
    const count = a.count - b.count;
    if (span > 0 && count > 0) ages[channel] = { value: (a.sum - b.sum) / count, from: b, to: a };
  }
  f.newest_age = { window_s: span, channels: ages };
  state.newestAge = Object.fromEntries(Object.entries(ages).map(([c, a]) => [c, a.value]));
  const worst = Object.values(state.newestAge);
  f.newest_age.value = worst.length ? Math.max(...worst) : null;
}
function pick(c) { return { hits: c.hits, requests: c.requests, served: c.served, origin: c.origin }; }

// The players' figures of one sample: buffers by kind, latency, sessions.
function playerFigures(playback) {
  const f = state.figures;
  const share = (b) => (b.with_buffer > 0 ? (100 * b.healthy) / b.with_buffer : null);
  f.healthy_buffer = { value: share(playback), with_buffer: playback.with_buffer, healthy: playback.healthy,
    low_latency: { ...playback.low_latency, share: share(playback.low_latency) },
    regular: { ...playback.regular, share: share(playback.regular) } };
  f.latency = { p50: quantileOf(playback.latency_mix, 0.5), p95: quantileOf(playback.latency_mix, 0.95),
    sessions: playback.with_latency, mix: playback.latency_mix };
  f.reporting = { value: playback.sessions };
  const kind = (name, b, rule) => (b.with_buffer ? name + ' ' + formatCount(b.healthy) + ' of ' + formatCount(b.with_buffer) + ' (' + rule + ')' : '');
  const regularRule = '≥ ' + axisNumber((playback.healthy_buffer_ms || 4000) / 1000) + ' s';
  state.details.healthy_buffer = [kind('low-latency', playback.low_latency, '≥ one part'),
    kind('regular', playback.regular, regularRule)].filter(Boolean).join(' · ') || 'no player reported a buffer';
  state.details.latency_p50 = (f.latency.sessions ? formatCount(f.latency.sessions) + ' players reporting it (CMCD ltc)'
    : 'no player reports its latency (CMCD ltc)') + '; solid p50, dashed p95';
}

async function readNodes(health) {
  // A node's playback summary is served beside its health (/playback next to /health), apart
  // from the signal the balancers poll, and only to its operator: the nodes take the same
  // operator key as the balancer (or, from loopback, none).
  return Promise.all(health.caches.map((c) => Promise.all([
    getJson(c.health_url),
    getJson(new URL('playback', c.health_url).href, operatorHeaders()).catch(() => null),
  ]).then(([h, p]) => ({ id: c.id, health: h, playback: p })).catch((e) => ({ id: c.id, error: String(e.message || e) }))));
}

async function poll() {
  const now = performance.now() / 1000;
  let status, metrics, health;
  try {
    [status, metrics, health] = await Promise.all([
      getJson('/admin/status', operatorHeaders()), getText('/metrics'), getJson('/health')]);
  } catch (e) {
    state.errors.push(String(e.message || e));
    $('error').textContent = 'Cannot read the balancer: ' + (e.message || e);
    return;
  }
  $('error').textContent = '';
  const nodes = await readNodes(health);

  // Counters summed over the nodes that answered (since each started).
  const totals = { hits: 0, requests: 0, served: 0, origin: 0 };
  for (const n of nodes) {
    if (!n.health || !n.health.requests) continue;
    n.counters = nodeCounters(n.health);
    for (const k of Object.keys(totals)) totals[k] += n.counters[k];
  }
  const playback = playbackOf(nodes, status.playback);
  const current = Object.assign({ at: now, playlists: metric(metrics, 'balancer_requests_total{kind="playlist"}'),
    stalls: playback.stalls, ages: newestAges(metrics),
    nodes: Object.fromEntries(nodes.filter((n) => n.counters).map((n) => [n.id, n.counters])) }, totals);
  counterHistory.push(current);
  while (counterHistory.length > 1 && counterHistory[1].at <= now - WINDOW_S - 5) counterHistory.shift();
  state.details = {};
  windowFigures(current, totals);
  playerFigures(playback);
  const f = state.figures;
  state.details.hit_ratio = f.hit_ratio.since_start === null ? '' : formatPercent(f.hit_ratio.since_start) + ' since the nodes started (health table)';
  state.details.offload = f.offload.since_start === null ? '' : formatPercent(f.offload.since_start) + ' since the nodes started (health table)';

  state.times.push(now);
  if (state.times.length > HISTORY) state.times.shift();
  push('hit_ratio', f.hit_ratio.value);
  push('offload', f.offload.value);
  push('playlist_rate', f.playlist_rate.value);
  push('newest_age', f.newest_age.value);
  push('latency_p50', f.latency.p50);
  push('latency_p95', f.latency.p95);
  push('stalls_per_min', f.stalls_per_min.value);
  push('healthy_buffer', f.healthy_buffer.value);
  push('reporting', playback.sessions);
  state.playback = playback;
  drawBitrateMix(playback.bitrate_mix);

  push('viewers', status.viewers.active);
  push('queue_length', status.queue.length);
  push('head_wait', status.queue.head_wait_s);
  push('traffic', status.traffic.estimate_mbps);
  push('traffic_limit', status.limits.max_traffic_mbps || null);
  push('caches_up', health.caches.filter((c) => c.usable).length);
  push('caches_total', health.caches.length);
  state.samples += 1;
  state.emulation = status.emulation;
  state.last = { status, nodes, health };

  $('emulation').textContent = status.emulation ? 'ON (new viewers queue)' : 'off';
  $('switch-button').textContent = status.emulation ? 'Switch off' : 'Switch on';
  $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  fillTables(status, health, nodes, totals);
  // The tables' windowed columns name the panels' window.
  for (const label of document.querySelectorAll('.window-label')) label.textContent = windowText({ window: 'rate' });
  draw();
}

function fillTables(status, health, nodes, totals) {
  const age = (id) => (state.newestAge[id] === undefined ? '–' : formatSeconds(state.newestAge[id]));
  fillTable('channels-table', status.viewers.channels.map((c) => [c.id, formatCount(c.viewers), sensible(c.declared_mbps), age(c.id)]));
  fillTable('caches-table', status.viewers.caches.map((c) => [c.id || 'origin', formatCount(c.viewers), sensible(c.declared_mbps)])
    .concat([['origin', formatCount(status.viewers.origin), '']]));
  // Channels with several sources: which one each plays from, and whether the others could
  // take over (docs/balancer.md § Sources fail, the channel does not).
  fillTable('sources-table', Object.entries(status.sources || {}).map(([id, c]) => {
    const active = c.sources[c.active] || {};
    const plays = (active.origin || '?') + (c.active > 0 ? ' (backup)' : '') +
      (c.forced === null ? '' : ' (held by the operator)');
    const each = c.sources.map((s, i) => (i === c.active ? '▶ ' : '') + s.origin + ': ' +
      (!s.known ? 'not followed yet' : s.healthy ? 'healthy' : s.fault)).join(' · ');
    const healthy = c.sources.every((s) => s.healthy);
    return [id, { text: plays, className: c.active > 0 ? 'down' : '' },
      { text: each, className: healthy ? '' : 'down' }];
  }));
  // Each node's hit ratio and offload since it started and over the window; a total row that is
  // the panels' figures.
  const percentOrDash = (v) => (v === null ? '–' : formatPercent(v));
  const start = windowStart(counterHistory.at(-1).at);
  state.figures.nodes = {};
  const rows = health.caches.map((c) => {
    const n = nodes.find((x) => x.id === c.id);
    const h = n && n.health;
    const counters = n && n.counters;
    const before = counters && start.nodes && start.nodes[c.id];
    const windowed = before && counterHistory.at(-1).at > start.at ? difference(counters, before) : null;
    if (counters) state.figures.nodes[c.id] = { ...counters, hit_ratio: hitRatio(counters), offload: offloadOf(counters) };
    return [c.id, { text: c.state + (c.usable ? '' : ' (not usable)'), className: c.usable ? '' : 'down' },
      h ? { text: h.status } : { text: 'unreachable', className: 'down' },
      h ? sensible(h.egress_mbps) : '',
      counters ? percentOrDash(windowed && hitRatio(windowed)) : '', counters ? percentOrDash(hitRatio(counters)) : '',
      counters ? percentOrDash(windowed && offloadOf(windowed)) : '', counters ? percentOrDash(offloadOf(counters)) : ''];
  });
  const f = state.figures;
  rows.push([{ text: 'all nodes', className: 'total' }, '', '', '', percentOrDash(f.hit_ratio.value), percentOrDash(f.hit_ratio.since_start),
    percentOrDash(f.offload.value), percentOrDash(f.offload.since_start)]);
  fillTable('health-table', rows);
}

$('switch-button').addEventListener('click', async () => {
  const target = state.emulation ? 'off' : 'on';
  try {
    await getJson('/access_queue_switch?state=' + target, operatorHeaders());
  } catch (e) {
    $('error').textContent = 'Switch failed: ' + (e.message || e);
  }
  await poll();
});

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  operatorKey = $('operator-key').value;
  sessionStorage.setItem('operatorKey', operatorKey);
  poll();
});

buildPanels();
poll();
setInterval(poll, POLL_MS);
