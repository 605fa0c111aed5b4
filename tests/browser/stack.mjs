// The real stack for the browser tests, on 127.0.0.1 with ephemeral ports: a live
// HLS source made by ffmpeg (test pattern + tone, two variants, 2 s segments)
// served by test_origin, two cache nodes of site "venue", and the balancer with
// its REST API, demo payments and the web pages; plus the test account. The nodes
// also listen with TLS (HTTP/2 by ALPN) behind a second balancer, HTTPS only, whose
// chunk links lead to those listeners: how phones reach a venue. Every
// child is killed when the test process ends. Waits are on conditions with
// deadlines, never on fixed sleeps.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

// The balancers' cache node polls (see startStack).
const HEALTH_SETS = ['--set', 'health.interval_ms=400', '--set', 'health.timeout_ms=400'];

export const TEST_LOGIN = 'fdpd6';
export const TEST_PASSWORD = '123456';
export const SECOND_LOGIN = 'queue-viewer';
export const OPERATOR_KEY = 'browser-test-operator-key-0001';
// One account per player of the players' page (a viewer is its user: one slot, one listing each).
export const PLAYER_LOGINS = { hlsjs: 'player-hlsjs', shaka: 'player-shaka', videojs: 'player-videojs' };
const SIGNING_KEY = 'browser-test-signing-key-0001';
const TICKET_KEY = 'browser-test-ticket-key-00001';

const children = new Set();
function killAll() {
  for (const child of children) {
    try { process.kill(child.pid, 'SIGKILL'); } catch (e) { /* gone */ }
  }
  children.clear();
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => { killAll(); process.exit(1); });

export async function waitFor(what, predicate, timeoutMs, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out after ' + timeoutMs + ' ms waiting for ' + what);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// Starts a server that prints {"event":"listening","port":N,"tls_port":T}; resolves with
// {child, port, tlsPort, log}.
function startServer(name, argv, logDir) {
  const log = path.join(logDir, name + '.log');
  const err = fs.openSync(log, 'a');
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', err] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(name + ' did not listen within 10 s; see ' + log)), 10000);
    child.stdout.on('data', (data) => {
      buffered += data.toString();
      for (const line of buffered.split('\n')) {
        const m = line.match(/"event":"listening".*"port":(\d+)/);
        if (m) {
          clearTimeout(timer);
          const tls = line.match(/"tls_port":(\d+)/);
          resolve({ child, port: Number(m[1]), tlsPort: tls ? Number(tls[1]) : 0, log });
        }
      }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(name + ' exited with ' + code + '; see ' + log)); });
  });
}

export async function startStack({ build, source, artifacts }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'balancer-browser-'));
  const logs = path.join(artifacts, 'logs');
  fs.mkdirSync(logs, { recursive: true });
  const media = path.join(dir, 'origin');
  fs.mkdirSync(path.join(media, 'live'), { recursive: true });
  // A single-variant channel: a multivariant playlist naming one of ffmpeg's variants.
  fs.writeFileSync(path.join(media, 'live/single.m3u8'), '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180\nv0/index.m3u8\n');

  const ffmpeg = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=15', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-filter_complex', '[0:v]split=2[a][b];[b]scale=160:90[b2]',
    '-map', '[a]', '-map', '1:a', '-map', '[b2]', '-map', '1:a',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30', '-keyint_min', '30',
    '-sc_threshold', '0', '-pix_fmt', 'yuv420p', '-b:v:0', '300k', '-b:v:1', '120k',
    '-c:a', 'aac', '-b:a', '48k', '-ac', '2',
    '-f', 'hls', '-hls_time', '2', '-hls_list_size', '10',
    '-hls_flags', 'delete_segments+independent_segments+temp_file+program_date_time',
    '-master_pl_name', 'master.m3u8', '-var_stream_map', 'v:0,a:0 v:1,a:1',
    '-hls_segment_filename', media + '/live/v%v/seg_%05d.ts', media + '/live/v%v/index.m3u8'],
  { stdio: ['ignore', 'ignore', fs.openSync(path.join(logs, 'ffmpeg.log'), 'a')] });
  children.add(ffmpeg);

  const origin = await startServer('origin', [path.join(build, 'tests/support/test_origin'), '--port', '0', '--root', media], logs);
  // The demo channel's second source: another origin server of the same encoder's output (the
  // packager of an epoch-locked twin: the same names and bytes), which the nodes know as the
  // first one's twin.
  const originB = await startServer('origin-b', [path.join(build, 'tests/support/test_origin'), '--port', '0', '--root', media], logs);
  // The low-latency channel: ll_origin publishing CMAF parts (about 0.27 s) that ffmpeg
  // encodes here once, in two renditions, looping (1 s segments).
  for (const [name, kbps] of [['low', 150], ['high', 400]]) {
    const made = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=15',
      '-t', '6', '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', '15', '-keyint_min', '15',
      '-sc_threshold', '0', '-b:v', kbps + 'k', '-pix_fmt', 'yuv420p', '-f', 'mp4',
      '-movflags', 'cmaf+frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '250000', path.join(dir, name + '.mp4')],
    { encoding: 'utf8' });
    if (made.status !== 0) throw new Error('ffmpeg could not make the low-latency material: ' + made.stderr);
  }
  // PART-HOLD-BACK 1.2 s rather than the least allowed (0.8 s): Shaka Player plays at it, and
  // Chromium decoding three players on two shared cores needs the margin.
  // Its second source: another ll_origin on the same clock (the same media at the same moment),
  // numbering its own way, as a second encoder of the event.
  const llClockMs = String(Date.now());
  const startLlOrigin = async (name, firstMsn) => {
    const server = await startServer(name, [path.join(build, 'tests/support/ll_origin'), '--port', '0', '--segment', '1',
      '--part-hold-back', '1.2', '--clock-start-ms', llClockMs, '--first-msn', String(firstMsn),
      '--rendition', 'low=' + path.join(dir, 'low.mp4'), '--rendition', 'high=' + path.join(dir, 'high.mp4')], logs);
    server.url = 'http://127.0.0.1:' + server.port;
    return server;
  };
  const llOrigin = await startLlOrigin('ll_origin', 0);
  const llOriginB = await startLlOrigin('ll_origin-b', 500);
  // One self-signed ECDSA certificate for every TLS listener (Chromium runs with
  // --ignore-certificate-errors).
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const madeCert = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
  if (madeCert.status !== 0) throw new Error('openssl could not make a certificate: ' + madeCert.stderr);
  const tlsSets = (port) => ['--set', 'listen.tls.enabled=true', '--set', 'listen.tls.port=' + port,
    '--set', 'listen.tls.certificate=' + cert, '--set', 'listen.tls.key=' + key];
  const caches = {};
  // Each node reads its own copy of conf/cache_node.json, which setOverloaded() rewrites.
  const nodeConfig = (id) => path.join(dir, id + '.json');
  const startCache = async (id, port, tlsPort) => {
    if (!fs.existsSync(nodeConfig(id))) fs.copyFileSync(path.join(source, 'conf/cache_node.json'), nodeConfig(id));
    const server = await startServer(id, [path.join(build, 'src/cache_node/cache_node'),
      '--config', nodeConfig(id),
      '--set', 'node_id=' + id, '--set', 'site=venue', '--set', 'listen.port=' + port, '--set', 'threads=1',
      ...tlsSets(tlsPort),
      '--set', 'data_dir=' + path.join(dir, id), '--set', 'origins.demo.url=http://127.0.0.1:' + origin.port,
      '--set', 'origins.demo-b.url=http://127.0.0.1:' + originB.port, '--set', 'origins.demo.twin="demo-b"',
      '--set', 'origins.ll.url=' + llOrigin.url, '--set', 'origins.ll-b.url=' + llOriginB.url,
      '--set', 'signing.keys=["' + SIGNING_KEY + '"]', '--set', 'operator.key=' + OPERATOR_KEY], logs);
    server.url = 'http://127.0.0.1:' + server.port;
    server.tlsUrl = 'https://127.0.0.1:' + server.tlsPort;
    server.config = nodeConfig(id);
    // On the same ports, as a real node comes back.
    server.restart = () => startCache(id, server.port, server.tlsPort);
    return server;
  };
  for (const id of ['venue-a', 'venue-b']) caches[id] = await startCache(id, 0, 0);
  const conf = path.join(dir, 'conf');
  fs.mkdirSync(conf);
  fs.writeFileSync(path.join(conf, 'channels.json'), JSON.stringify({ channels: [
    { id: 'demo', title: 'Demo test pattern', free: true, sources: [{ origin: 'demo', source: '/files/live/master.m3u8' },
      { origin: 'demo-b', source: '/files/live/master.m3u8' }], failover: { failback: 'manual' } },
    { id: 'single', title: 'Single variant', origin: 'demo', source: '/files/live/single.m3u8', free: true },
    // A bare media playlist: the balancer makes its master (one variant) to steer it.
    { id: 'bare', title: 'Bare media playlist', origin: 'demo', source: '/files/live/v0/index.m3u8', free: true },
    { id: 'demo-premium', title: 'Demo test pattern (paid)', origin: 'demo', source: '/files/live/master.m3u8', product: 'premium-pass' },
    { id: 'll', title: 'Low latency', free: true, sources: [{ origin: 'll', source: '/master.m3u8' },
      { origin: 'll-b', source: '/master.m3u8' }], failover: { failback: 'manual' } },
  ] }));
  fs.writeFileSync(path.join(conf, 'caches.json'), JSON.stringify({ caches: Object.entries(caches).map(([id, c]) => ({ id, site: 'venue', url: c.url })) }));
  // The HTTPS balancer's: chunk links to the nodes' TLS listeners, health polled in the clear.
  fs.writeFileSync(path.join(conf, 'caches-tls.json'), JSON.stringify({ caches: Object.entries(caches).map(([id, c]) =>
    ({ id, site: 'venue', url: c.tlsUrl, health_url: c.url + '/health' })) }));
  fs.writeFileSync(path.join(conf, 'channels-tls.json'), JSON.stringify({ channels: [
    { id: 'll', title: 'Low latency', origin: 'll', source: '/master.m3u8', free: true },
  ] }));
  const sets = ['--set', 'listen.port=0', '--set', 'threads=1',
    '--set', 'channels_file=' + path.join(conf, 'channels.json'), '--set', 'caches_file=' + path.join(conf, 'caches.json'),
    '--set', 'origins.demo.url=http://127.0.0.1:' + origin.port, '--set', 'origins.ll.url=' + llOrigin.url,
    '--set', 'origins.demo-b.url=http://127.0.0.1:' + originB.port, '--set', 'origins.ll-b.url=' + llOriginB.url,
    '--set', 'signing.keys=["' + SIGNING_KEY + '"]', '--set', 'playback.ticket_keys=["' + TICKET_KEY + '"]',
    '--set', 'playback.allow_anonymous=false', '--set', 'operator.key=' + OPERATOR_KEY,
    '--set', 'api.data_dir=' + path.join(dir, 'api'), '--set', 'api.demo_payments=true',
    '--set', 'api.kdf_allow_weak_for_tests=true', '--set', 'api.kdf_memory_kib=64', '--set', 'api.kdf_passes=1',
    '--set', 'api.products_file=' + path.join(source, 'conf/products.json'),
    '--set', 'web.dir=' + path.join(source, 'web'),
    '--set', 'queue.retry_after_s=2',
    // Every scenario signs the test account in from a new browser: a new device, whose stream
    // outlives its scenario by limits.idle_timeout_s.
    '--set', 'limits.max_streams_per_account=0',
    // A poll that times out takes a node down at once: 400 ms leaves room for a machine busy
    // with the other tests beside this one (at 200 ms, polls timed out and nodes flapped there,
    // and players left a healthy pathway), and still finds a frozen node within 0.8 s.
    ...HEALTH_SETS,
    // Extra balancer settings, e.g. steering.enabled=false to see a test fail without steering.
    ...(process.env.BROWSER_TEST_BALANCER_SET || '').split(' ').filter(Boolean).flatMap((s) => ['--set', s])];
  const balancerBin = path.join(build, 'src/balancer/balancer');
  for (const login of [TEST_LOGIN, SECOND_LOGIN, ...Object.values(PLAYER_LOGINS)]) {
    const added = spawnSync(balancerBin, ['user', 'add', login, '--config', path.join(source, 'conf/balancer.json'), ...sets],
      { input: TEST_PASSWORD + '\n', encoding: 'utf8' });
    if (added.status !== 0) throw new Error('balancer user add ' + login + ' failed: ' + added.stderr);
  }
  await waitFor("ffmpeg's first segments", () => {
    try { return fs.readFileSync(path.join(media, 'live/v1/index.m3u8'), 'utf8').split('#EXTINF').length > 3; } catch (e) { return false; }
  }, 30000);
  const balancer = await startServer('balancer', [balancerBin, '--config', path.join(source, 'conf/balancer.json'), ...sets], logs);
  balancer.url = 'http://127.0.0.1:' + balancer.port;
  // The HTTPS balancer: anonymous viewers of the LL channel, its plain port for /health only.
  const balancerTls = await startServer('balancer-tls', [balancerBin, '--config', path.join(source, 'conf/balancer.json'),
    '--set', 'listen.port=0', '--set', 'threads=1', ...tlsSets(0),
    '--set', 'channels_file=' + path.join(conf, 'channels-tls.json'), '--set', 'caches_file=' + path.join(conf, 'caches-tls.json'),
    '--set', 'origins.ll.url=' + llOrigin.url, '--set', 'signing.keys=["' + SIGNING_KEY + '"]',
    '--set', 'playback.ticket_keys=["' + TICKET_KEY + '"]', '--set', 'playback.allow_anonymous=true',
    '--set', 'operator.key=' + OPERATOR_KEY, '--set', 'api.data_dir=' + path.join(dir, 'api-tls'),
    '--set', 'api.kdf_allow_weak_for_tests=true', '--set', 'api.kdf_memory_kib=64', '--set', 'api.kdf_passes=1',
    ...HEALTH_SETS], logs);
  balancerTls.url = 'http://127.0.0.1:' + balancerTls.port;
  balancerTls.tlsUrl = 'https://127.0.0.1:' + balancerTls.tlsPort;
  for (const b of [balancer, balancerTls]) {
    await waitFor('both cache nodes usable behind ' + b.url, async () => {
      const r = await fetch(b.url + '/health');
      const h = await r.json();
      return h.caches.filter((c) => c.usable).length === 2;
    }, 10000);
  }
  return { dir, origin, originB, llOrigin, llOriginB, caches, balancer, balancerTls, ffmpeg, logs };
}

// Restarts every cache node that is not running and waits until the balancer sees both usable.
export async function reviveCaches(stack) {
  for (const [id, c] of Object.entries(stack.caches)) {
    if (c.child.exitCode === null && c.child.signalCode === null) continue;
    stack.caches[id] = await c.restart();
  }
  await waitFor('both cache nodes usable again', async () => {
    const h = await (await fetch(stack.balancer.url + '/health')).json();
    return h.caches.filter((c) => c.usable).length === 2;
  }, 10000);
}

// Marks a cache node overloaded (or not) as its operator would: a threshold it is over, taken
// on SIGHUP; waits until the balancer sees the node unusable (usable again).
export async function setOverloaded(stack, id, overloaded) {
  const node = stack.caches[id];
  const config = JSON.parse(fs.readFileSync(node.config, 'utf8'));
  config.overload.max_connections = overloaded ? 1 : 5000;  // its own health request is one
  fs.writeFileSync(node.config, JSON.stringify(config, null, 2));
  process.kill(node.child.pid, 'SIGHUP');
  await waitFor(id + (overloaded ? ' overloaded' : ' usable'), async () => {
    const h = await (await fetch(stack.balancer.url + '/health')).json();
    return h.caches.some((c) => c.id === id && c.usable === !overloaded);
  }, 10000);
}

// The players' page (players/) and the players from npm, served on an origin of their own.
export function startPageServer(source) {
  const files = {
    '/players/index.html': ['tests/browser/players/index.html', 'text/html; charset=utf-8'],
    '/players/players.js': ['tests/browser/players/players.js', 'text/javascript'],
    '/vendor/hls.min.js': ['web/node_modules/hls.js/dist/hls.min.js', 'text/javascript'],
    '/vendor/shaka-player.compiled.js': ['tests/browser/node_modules/shaka-player/dist/shaka-player.compiled.js', 'text/javascript'],
    '/vendor/video.min.js': ['tests/browser/node_modules/video.js/dist/video.min.js', 'text/javascript'],
    '/vendor/video-js.min.css': ['tests/browser/node_modules/video.js/dist/video-js.min.css', 'text/css'],
  };
  const server = http.createServer((req, res) => {
    const file = files[new URL(req.url, 'http://page').pathname];
    if (!file) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      return res.end('not found\n');
    }
    res.writeHead(200, { 'Content-Type': file[1], 'Cache-Control': 'no-cache' });
    fs.createReadStream(path.join(source, file[0])).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () =>
    resolve({ server, url: 'http://127.0.0.1:' + server.address().port })));
}

export function cleanup(stack) {
  killAll();
  if (stack) fs.rmSync(stack.dir, { recursive: true, force: true });
}
