// The viewer's web player: the app's flow through the REST API (docs/api.md), then
// hls.js. Sign in -> channels (paid ones locked, with their product to buy) -> pick
// one -> ping every cache node from /api/v1/caches, keep the fastest that answers ->
// access check (play, or wait in the queue showing position and a countdown, asking
// again when Retry-After is over) -> play the playlist with its ticket. Shows where
// chunks come from (cache id or origin) and the bitrate. window.playerState is the
// page's state for tests and curious people.
'use strict';

const API = '/api/v1';
const PING_TIMEOUT_MS = 2000;
const MAX_FRAGMENTS_KEPT = 500;

const state = {
  phase: 'login', // login | channels | pinging | queued | loading | playing | error
  token: null,
  user: null,
  channel: null,
  cache: null,          // fastest cache id, or null (origin)
  pings: [],            // {id, ms} or {id, error}
  caches: [],           // {id, site, ping_url, base}
  queue: null,          // {position, estimated_wait_s, retry_in_s}
  fragments: [],        // {sn, level, source, host, at}
  errors: [],           // {type, details, fatal, reason}
  fatalErrors: 0,
  stalls: 0,
  stallSeconds: 0,
  bitrate: 0,
  playlistUrl: null,
  pathway: null,        // content steering pathway of the last fragment
  latency: null,        // seconds behind live (hls.js's estimate), once a second
  targetLatency: null,  // the latency hls.js aims at (PART-HOLD-BACK in low-latency mode)
  latencyReported: null,  // seconds behind live by the program date on screen, sent as CMCD ltc
  liveSeeks: 0,         // jumps back to the live edge after falling far behind (catchUpToLive)
};
window.playerState = state;

const $ = (id) => document.getElementById(id);
let hls = null;
let queueTimer = null;
let latencyTimer = null;
let stallStarted = null;
let playing = false;
let lastLiveSeek = 0;

function show(view) {  // the channel list stays beside the player
  $('login-view').hidden = view !== 'login-view';
  $('channels-view').hidden = view === 'login-view';
  $('player-view').hidden = view !== 'player-view';
}

function setError(text) { $('error').textContent = text || ''; }
function setMessage(text) { $('message').textContent = text || ''; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(API + path, {
    method: options.method || 'GET',
    headers,
    body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
    cache: 'no-store',
  });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  return { status: response.status, body, headers: response.headers };
}

function errorText(r) {
  return r.body && r.body.error ? r.body.error.message + ' (' + r.body.error.code + ')' : 'HTTP ' + r.status;
}

// ---- sign in ----

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  setError('');
  const r = await api('/auth/login', { method: 'POST', body: { login: $('login').value, password: $('password').value } });
  if (r.status !== 200) return setError('Sign-in failed: ' + errorText(r));
  state.token = r.body.token;
  state.user = r.body.user;
  $('user').textContent = r.body.user.login;
  await showChannels();
});

// ---- channels and purchases ----

async function showChannels() {
  const [channels, products] = await Promise.all([api('/channels'), api('/products')]);
  if (channels.status !== 200) return setError('Cannot list channels: ' + errorText(channels));
  const byId = new Map(((products.body && products.body.products) || []).map((p) => [p.id, p]));
  const list = $('channels');
  list.replaceChildren();
  for (const c of channels.body.channels) {
    const li = document.createElement('li');
    li.dataset.channel = c.id;
    li.dataset.locked = String(c.locked);
    li.append(c.title || c.id);
    if (c.locked) {
      const badge = document.createElement('span');
      badge.className = 'locked';
      badge.textContent = 'locked';
      li.append(badge);
      const product = byId.get(c.product);
      if (product) {
        const buy = document.createElement('button');
        buy.className = 'buy';
        buy.textContent = 'Buy ' + product.title + ' (' + product.price + ' ' + product.currency + ')';
        buy.addEventListener('click', () => buyProduct(product.id));
        li.append(buy);
      }
    } else {
      const play = document.createElement('button');
      play.className = 'play';
      play.textContent = 'Play';
      play.addEventListener('click', () => playChannel(c.id, c.title || c.id));
      li.append(play);
    }
    list.append(li);
  }
  state.phase = state.phase === 'login' ? 'channels' : state.phase;
  show(state.channel ? 'player-view' : 'channels-view');
}

function idempotencyKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function buyProduct(productId) {
  setError('');
  // No payment provider here: the balancer's demo payments accept any receipt.
  const r = await api('/purchases', { method: 'POST', body: { product_id: productId, idempotency_key: idempotencyKey(), receipt: 'web-player-demo-receipt' } });
  if (r.status !== 200 && r.status !== 201) return setError('Purchase failed: ' + errorText(r));
  await showChannels();
}

// ---- cache choice ----

async function pingOne(cache) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), PING_TIMEOUT_MS);
  const started = performance.now();
  try {
    const response = await fetch(cache.ping_url, { cache: 'no-store', signal: controller.signal });
    await response.text();
    if (!response.ok) return { id: cache.id, error: 'HTTP ' + response.status };
    return { id: cache.id, ms: performance.now() - started };
  } catch (e) {
    return { id: cache.id, error: String(e && e.name || e) };
  } finally {
    clearTimeout(timer);
  }
}

async function fastestCache() {
  const r = await api('/caches');
  state.caches = r.status === 200 ? r.body.caches.map((c) => Object.assign({ base: new URL(c.ping_url).origin }, c)) : [];
  state.pings = await Promise.all(state.caches.map(pingOne));
  const answered = state.pings.filter((p) => p.ms !== undefined).sort((a, b) => a.ms - b.ms);
  const best = answered.length ? answered[0] : null;
  $('cache').textContent = best ? best.id + ' (' + best.ms.toFixed(1) + ' ms)' : 'none answered: origin';
  return best ? best.id : null;
}

// Where a chunk came from: the cache node's id ('origin' for none of them) and the host.
function sourceOf(url) {
  let parsed;
  try { parsed = new URL(url, location.href); } catch (e) { return { source: 'unknown', host: '' }; }
  const cache = state.caches.find((c) => c.base === parsed.origin);
  return { source: cache ? cache.id : 'origin', host: parsed.host };
}

// ---- access and the queue ----

async function playChannel(id, title) {
  stopPlayback();
  setError('');
  state.channel = id;
  state.queue = null;
  $('now-playing').textContent = title;
  show('player-view');
  state.phase = 'pinging';
  setMessage('Finding the nearest cache node…');
  state.cache = await fastestCache();
  await askAccess(id);
}

async function askAccess(id) {
  if (state.channel !== id) return;
  const query = '?channel=' + encodeURIComponent(id) + (state.cache ? '&cache=' + encodeURIComponent(state.cache) : '');
  const r = await api('/access' + query);
  if (state.channel !== id) return;
  if (r.status === 200 && r.body.playlist_url) {
    state.queue = null;
    return startPlayback(new URL(r.body.playlist_url, location.href).href);
  }
  if (r.status === 503 && r.body && r.body.error && r.body.error.code === 'queued') {
    const retry = Math.max(1, parseInt(r.headers.get('Retry-After') || r.body.queue.retry_after_s || '10', 10));
    return waitInQueue(id, r.body.queue, retry);
  }
  state.phase = 'error';
  setMessage('');
  setError('Cannot play: ' + errorText(r));
}

function waitInQueue(id, queue, retry) {
  state.phase = 'queued';
  let left = retry;
  const render = () => {
    state.queue = { position: queue.position, estimated_wait_s: queue.estimated_wait_s, retry_in_s: left };
    setMessage('The stream is full right now. You are number ' + queue.position + ' in the queue' +
      (queue.estimated_wait_s ? ' (about ' + queue.estimated_wait_s + ' s)' : '') +
      '. Trying again in ' + left + ' s.');
  };
  render();
  clearInterval(queueTimer);
  queueTimer = setInterval(() => {
    left -= 1;
    if (left > 0) return render();
    clearInterval(queueTimer);
    queueTimer = null;
    askAccess(id);
  }, 1000);
}

// ---- playback ----

function stopPlayback() {
  clearInterval(queueTimer);
  clearInterval(latencyTimer);
  queueTimer = null;
  if (hls) { hls.destroy(); hls = null; }
  playing = false;
  stallStarted = null;
}

function startPlayback(url) {
  state.phase = 'loading';
  state.playlistUrl = url;
  setMessage('Starting…');
  const video = $('video');
  video.muted = true;
  if (!window.Hls || !Hls.isSupported()) {
    state.phase = 'error';
    return setError('This browser cannot play HLS with Media Source Extensions.');
  }
  // CMCD (CTA-5004): the player reports its buffer, bitrate, throughput and stalls on every
  // request, for the operator's playback quality panel. As the query argument, not headers:
  // headers would make every new chunk URL on a cache node cost the browser a CORS preflight.
  // Live sync: in low-latency mode the target latency is the playlist's PART-HOLD-BACK (the
  // channel's target latency, set by the operator, docs/balancer.md); after a stall the
  // player plays up to 1.5x until it is back at the target (maxLiveSyncPlaybackRate) instead
  // of staying behind for good (further back, catchUpToLive jumps). (With liveMaxLatencyDurationCount set as well, hls.js 1.7.4
  // never started playing the demo channel.)
  // Chunk loads: a node that freezes (a hung host, a path that drops everything) keeps the
  // request open and silent, and hls.js's default 10 s to the first byte stalled it 9 s while
  // the balancer already listed the sibling (0.5 s after the freeze). A healthy node's first
  // byte comes within a part (a hinted part is held until it exists), a cold one's within an
  // origin round trip: 2 s is far above both; the retry takes the playlist's new link. (hls.js
  // takes a policy whole, not merged with its defaults: the retries are its defaults, restated.)
  hls = new Hls({
    enableWorker: true,
    lowLatencyMode: true,
    maxLiveSyncPlaybackRate: 1.5,
    // hls.js plays a second further from live after each stall (up to a target duration) and
    // stays there; a fan in the stand should see what the stadium sees: the operator's target
    // latency stays the player's after a stall, which the catch-up above brings it back to.
    liveSyncOnStallIncrease: 0,
    fragLoadPolicy: {
      default: {
        maxTimeToFirstByteMs: 2000,
        maxLoadTimeMs: 20000,
        timeoutRetry: { maxNumRetry: 4, retryDelayMs: 0, maxRetryDelayMs: 0 },
        errorRetry: { maxNumRetry: 6, retryDelayMs: 1000, maxRetryDelayMs: 8000 },
      },
    },
    // CMCD version 2: its `ltc` (latency behind live) and `st=ll` judge the viewer's buffer and
    // latency on the dashboard (reportLatency below).
    cmcd: { version: 2, contentId: state.channel || undefined, useHeaders: false },
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => { video.play().catch(() => {}); });
  hls.on(Hls.Events.FRAG_LOADED, (event, data) => {
    const frag = data.frag;
    // A low-latency part is loaded before its segment is listed whole: the segment has no URL
    // yet, the part has its own.
    const url = (data.part && data.part.url) || frag.url;
    const { source, host } = sourceOf(url);
    const level = hls.levels[frag.level];
    // The content steering pathway (the master lists one: the cache node's; the steering manifest
    // may move the player to one of its clones).
    state.pathway = level ? level.pathwayId : null;
    state.fragments.push({ sn: frag.sn, level: frag.level, pathway: state.pathway, source, host, at: Date.now() });
    if (state.fragments.length > MAX_FRAGMENTS_KEPT) state.fragments.shift();
    $('source').textContent = source === 'origin' ? 'origin' : 'cache node ' + source;
    $('fragments').textContent = String(state.fragments.length);
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (event, data) => {
    const level = hls.levels[data.level];
    state.bitrate = level ? level.bitrate : 0;
    $('bitrate').textContent = level ? (level.bitrate / 1e6).toFixed(2) + ' Mbit/s' + (level.height ? ' (' + level.height + 'p)' : '') : '–';
  });
  hls.on(Hls.Events.ERROR, (event, data) => {
    state.errors.push({ type: data.type, details: data.details, fatal: !!data.fatal, reason: data.reason || (data.error && data.error.message) || '' });
    if (!data.fatal) return;
    state.fatalErrors += 1;
    // What a player app does: try to recover, and say so.
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR) { setMessage('Network trouble, retrying…'); hls.startLoad(); }
    else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) { hls.recoverMediaError(); }
    else { state.phase = 'error'; setError('Playback failed: ' + data.details); }
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  showLatency();
}

// How far behind live the player is (hls.js's estimate: the live edge minus the playhead) and
// the latency it aims at, once a second while a stream plays.
function showLatency() {
  clearInterval(latencyTimer);
  latencyTimer = setInterval(() => {
    if (!hls) return clearInterval(latencyTimer);
    const latency = hls.latency, target = hls.targetLatency;
    state.latency = Number.isFinite(latency) && latency > 0 ? latency : null;
    state.targetLatency = Number.isFinite(target) ? target : null;
    $('latency').textContent = state.latency === null ? '–'
      : state.latency.toFixed(2) + ' s' + (state.targetLatency ? ' (target ' + state.targetLatency.toFixed(2) + ' s)' : '');
    reportLatency();
    catchUpToLive();
  }, 1000);
}

// The latency behind live as CMCD's `ltc` (ms) on the next requests: the wall clock minus the
// EXT-X-PROGRAM-DATE-TIME of the frame on screen (hls.js's playingDate), or hls.js's estimate on
// a stream without dates. hls.js 1.7.4 lists `ltc` among its CMCD keys but never fills it, and
// its public hook (cmcd.reporterCallback) takes custom keys only: the page updates the
// reporter hls.js made for this stream (reset at each manifest load).
function reportLatency() {
  const date = hls.playingDate;
  const behind = date ? (Date.now() - date.getTime()) / 1000 : state.latency;
  state.latencyReported = Number.isFinite(behind) && behind >= 0 ? behind : null;
  const reporter = hls.cmcdController && hls.cmcdController.reporter;
  if (reporter && state.latencyReported !== null && !$('video').paused) {
    reporter.update({ ltc: Math.round(state.latencyReported * 1000) });
  }
}

// hls.js plays faster (maxLiveSyncPlaybackRate) to get back to its target latency only while it
// is within a target duration of it: further back, after a long stall (a frozen node, a source
// switch), it takes the distance for a viewer's own seek back in time and plays on at 1.0 for
// good (seen: 12 s behind live for 50 s). A live player has no such seek: it jumps to hls.js's
// live sync position instead, at most once every 5 s.
function catchUpToLive() {
  const video = $('video');
  const details = hls.latestLevelDetails;
  if (state.latency === null || state.targetLatency === null || !details || !details.live) return;
  if (video.paused || !playing || !Number.isFinite(hls.liveSyncPosition)) return;
  if (state.latency - state.targetLatency <= state.targetLatency + details.targetduration) return;
  if (Date.now() - lastLiveSeek < 5000) return;
  lastLiveSeek = Date.now();
  state.liveSeeks += 1;
  video.currentTime = hls.liveSyncPosition;
}

$('video').addEventListener('playing', () => {
  if (stallStarted !== null) { state.stallSeconds += (performance.now() - stallStarted) / 1000; stallStarted = null; }
  playing = true;
  state.phase = 'playing';
  setMessage('');
});
$('video').addEventListener('waiting', () => {
  if (!playing || stallStarted !== null) return;
  state.stalls += 1;
  stallStarted = performance.now();
  $('stalls').textContent = String(state.stalls);
});
