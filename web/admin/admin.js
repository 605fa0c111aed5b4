// The operator's dashboard. Every POLL_MS it reads /admin/status (operator key, or
// loopback), the balancer's /metrics and /health (the cache list), and each cache
// node's /health (CORS), keeps the last HISTORY samples of each series and draws
// them as SVG polylines. The newest media age per channel (balancer_playlist_newest_age_seconds)
// is the mean over the playlists served between two samples. The playback quality panel adds up what the players report
// (CMCD): the nodes' sessions (segment requests carry the richest reports), the stalls
// of the nodes and the balancer (each stall is flagged on one request, to one of them). The button switches overload emulation on and off
// (/access_queue_switch?state=on|off). window.dashboardState is the page's state
// for tests.
'use strict';

const POLL_MS = 2000;
const HISTORY = 150;  // 5 minutes at POLL_MS
const FETCH_TIMEOUT_MS = 1500;

const PANELS = [
  { id: 'viewers', title: 'Live streams (one per device)', unit: '' },
  { id: 'queue_length', title: 'Queue length', unit: '' },
  { id: 'head_wait', title: 'Queue head wait', unit: ' s' },
  { id: 'traffic', title: 'Traffic estimate', unit: ' Mbit/s', limit: 'traffic_limit', limitInText: true },
  { id: 'caches_up', title: 'Cache nodes usable', unit: '', limit: 'caches_total' },
  { id: 'hit_ratio', title: 'Cache hit ratio', unit: ' %' },
  { id: 'offload', title: 'Origin offload', unit: ' %' },
  { id: 'playlist_rate', title: 'Playlist requests', unit: ' /s' },
  // How old the newest segment or part was when the balancer served a playlist (by its
  // EXT-X-PROGRAM-DATE-TIME): the edge's share of the viewers' latency behind live.
  { id: 'newest_age', title: 'Newest media age at serve (worst channel)', unit: ' s' },
];
// Playback quality (CMCD), a row of its own.
const QUALITY_PANELS = [
  { id: 'stalls_per_min', title: 'Stalls per minute', unit: '' },
  { id: 'healthy_buffer', title: 'Viewers with a healthy buffer', unit: ' %' },
  { id: 'reporting', title: 'Players reporting (CMCD)', unit: '' },
];

const state = { samples: 0, series: {}, errors: [], emulation: null, last: null };
window.dashboardState = state;
for (const p of PANELS.concat(QUALITY_PANELS)) state.series[p.id] = [];
state.playback = null;  // the last sample's sums: sessions, healthy, stalls, bitrate mix
state.series.traffic_limit = [];
state.series.caches_total = [];

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
let operatorKey = sessionStorage.getItem('operatorKey') || '';
let previous = null;  // counters of the previous sample, for rates and ratios

function buildPanels() {
  for (const p of PANELS.concat(QUALITY_PANELS)) {
    const figure = document.createElement('figure');
    figure.className = 'panel';
    figure.id = 'panel-' + p.id;
    const caption = document.createElement('figcaption');
    caption.textContent = p.title;
    const value = document.createElement('div');
    value.className = 'value';
    value.textContent = '–';
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 300 70');
    svg.setAttribute('preserveAspectRatio', 'none');
    if (p.limit && !p.limitInText) {
      const limit = document.createElementNS(SVG, 'polyline');
      limit.setAttribute('class', 'limit');
      svg.append(limit);
    }
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('class', 'data');
    svg.append(line);
    figure.append(caption, value, svg);
    $(QUALITY_PANELS.includes(p) ? 'quality-panels' : 'panels').append(figure);
  }
}

function push(name, v) {
  const s = state.series[name];
  s.push(Number.isFinite(v) ? v : null);
  if (s.length > HISTORY) s.shift();
}

// The newest sample at the right edge; the x scale grows with the history up to HISTORY samples.
function points(values, max) {
  const out = [];
  const slots = Math.max(values.length, 30);
  values.forEach((v, i) => {
    if (v === null) return;
    const x = ((i + slots - values.length) * 300) / (slots - 1);
    const y = 66 - (max > 0 ? (v / max) * 62 : 0);
    out.push(x.toFixed(1) + ',' + y.toFixed(1));
  });
  return out.join(' ');
}

function draw() {
  for (const p of PANELS.concat(QUALITY_PANELS)) {
    const values = state.series[p.id];
    const limits = p.limit ? state.series[p.limit] : [];
    // A limit far above the values (traffic) is said in text, not drawn: the values would be a flat line.
    const drawLimit = p.limit && !p.limitInText;
    const known = values.concat(drawLimit ? limits : []).filter((v) => v !== null);
    const max = Math.max(1, ...known) * 1.1;
    const figure = $('panel-' + p.id);
    figure.querySelector('polyline.data').setAttribute('points', points(values, max));
    if (drawLimit) figure.querySelector('polyline.limit').setAttribute('points', points(limits, max));
    const last = values.length ? values[values.length - 1] : null;
    const limitLast = limits.length ? limits[limits.length - 1] : null;
    figure.querySelector('.value').textContent = last === null ? '–' :
      (Math.round(last * 10) / 10) + p.unit + (limitLast !== null && p.limit ? ' of ' + limitLast + p.unit : '');
  }
}

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

// The mean age per channel over the playlists served since the last sample (all of them at the
// first); a channel that served none keeps its last figure.
function meanAges(ages, before) {
  const out = {};
  for (const [channel, a] of Object.entries(ages)) {
    const b = before && before[channel];
    const count = a.count - (b ? b.count : 0);
    if (count > 0) out[channel] = (a.sum - (b ? b.sum : 0)) / count;
    else if (state.newestAge && state.newestAge[channel] !== undefined) out[channel] = state.newestAge[channel];
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

// The players' reports summed over the nodes that answered; stalls from the balancer too.
function playbackOf(nodes, balancer) {
  const out = { sessions: 0, with_buffer: 0, healthy: 0, stalls: 0, bitrate_mix: {} };
  for (const n of nodes) {
    const p = n.playback;
    if (!p) continue;
    out.sessions += p.sessions;
    out.with_buffer += p.sessions_with_buffer;
    out.healthy += p.healthy_buffer;
    out.stalls += p.stalls_total;
    for (const [kbps, count] of Object.entries(p.bitrate_mix)) out.bitrate_mix[kbps] = (out.bitrate_mix[kbps] || 0) + count;
  }
  if (balancer) out.stalls += balancer.stalls_total;
  return out;
}

// The bitrate mix: one bar per bitrate bucket (its upper bound in kbps, or "over_N" above the
// last), its share of the players that reported one.
function drawBitrateMix(mix) {
  const body = $('bitrate-mix').querySelector('tbody');
  body.replaceChildren();
  const bound = (key) => (key.startsWith('over_') ? Number(key.slice(5)) + 1 : Number(key));
  const mbps = (kbps) => (kbps / 1000).toFixed(kbps < 1000 ? 2 : 1) + ' Mbit/s';
  const entries = Object.entries(mix).map(([key, n]) => [key, n]).sort((a, b) => bound(b[0]) - bound(a[0]));
  const total = entries.reduce((t, [, n]) => t + n, 0);
  for (const [key, n] of entries) {
    const tr = document.createElement('tr');
    const share = total ? Math.round((100 * n) / total) : 0;
    const bar = document.createElement('td');
    const fill = document.createElement('span');
    fill.className = 'bar';
    fill.style.width = share + '%';
    bar.append(fill);
    const label = key.startsWith('over_') ? 'over ' + mbps(bound(key) - 1) : 'up to ' + mbps(bound(key));
    for (const text of [label, String(n), share + ' %']) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    tr.append(bar);
    body.append(tr);
  }
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
  // A node's playback summary is served beside its health (/playback next to /health), apart
  // from the signal the balancers poll, and only to its operator: the nodes take the same
  // operator key as the balancer (or, from loopback, none).
  const nodes = await Promise.all(health.caches.map((c) => Promise.all([
    getJson(c.health_url),
    getJson(new URL('playback', c.health_url).href, operatorHeaders()).catch(() => null),
  ]).then(([h, p]) => ({ id: c.id, health: h, playback: p })).catch((e) => ({ id: c.id, error: String(e.message || e) }))));

  // Counters summed over the nodes that answered, for ratios of what happened since the last sample.
  const sum = { hits: 0, requests: 0, served: 0, origin: 0 };
  for (const n of nodes) {
    if (!n.health || !n.health.requests) continue;
    const r = n.health.requests;
    sum.hits += r.hit + r.coalesced;
    sum.requests += r.hit + r.coalesced + r.miss + r.stale + r.negative;
    sum.served += n.health.bytes_served_total;
    sum.origin += n.health.origin_bytes_total;
  }
  const playlists = metric(metrics, 'balancer_requests_total{kind="playlist"}');
  const ratio = (a, b) => (b > 0 ? (100 * a) / b : null);
  if (previous) {
    const dt = Math.max(0.001, now - previous.at);
    push('hit_ratio', ratio(sum.hits - previous.hits, sum.requests - previous.requests) ?? state.series.hit_ratio.at(-1) ?? null);
    const served = sum.served - previous.served;
    push('offload', served > 0 ? Math.max(0, 100 * (1 - (sum.origin - previous.origin) / served)) : state.series.offload.at(-1) ?? null);
    push('playlist_rate', (playlists - previous.playlists) / dt);
  } else {
    push('hit_ratio', ratio(sum.hits, sum.requests));
    push('offload', sum.served > 0 ? Math.max(0, 100 * (1 - sum.origin / sum.served)) : null);
    push('playlist_rate', null);
  }
  const ages = newestAges(metrics);
  state.newestAge = meanAges(ages, previous && previous.ages);
  const worstAge = Object.values(state.newestAge);
  push('newest_age', worstAge.length ? Math.max(...worstAge) : null);
  const playback = playbackOf(nodes, status.playback);
  if (previous && previous.stalls !== undefined) {
    const minutes = Math.max(0.001, now - previous.at) / 60;
    push('stalls_per_min', Math.max(0, playback.stalls - previous.stalls) / minutes);
  } else {
    push('stalls_per_min', null);
  }
  push('healthy_buffer', playback.with_buffer > 0 ? (100 * playback.healthy) / playback.with_buffer : null);
  push('reporting', playback.sessions);
  state.playback = playback;
  drawBitrateMix(playback.bitrate_mix);
  previous = Object.assign({ at: now, playlists, stalls: playback.stalls, ages }, sum);

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
  const age = (id) => (state.newestAge[id] === undefined ? '' : state.newestAge[id].toFixed(2));
  fillTable('channels-table', status.viewers.channels.map((c) => [c.id, c.viewers, c.declared_mbps, age(c.id)]));
  fillTable('caches-table', status.viewers.caches.map((c) => [c.id || 'origin', c.viewers, c.declared_mbps])
    .concat([['origin', status.viewers.origin, '']]));
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
  fillTable('health-table', health.caches.map((c) => {
    const n = nodes.find((x) => x.id === c.id);
    const h = n && n.health;
    const r = h && h.requests;
    const total = r ? r.hit + r.coalesced + r.miss + r.stale + r.negative : 0;
    return [c.id, { text: c.state + (c.usable ? '' : ' (not usable)'), className: c.usable ? '' : 'down' },
      h ? { text: h.status } : { text: 'unreachable', className: 'down' },
      h ? h.egress_mbps.toFixed(2) : '', total ? Math.round((100 * (r.hit + r.coalesced)) / total) + ' %' : ''];
  }));
  draw();
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
