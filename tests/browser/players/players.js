// Plays ?src= with ?player=hlsjs|shaka|videojs (?ll=1: in its low-latency mode; ?hold=1: once
// window.startPlayer() is called) and records,
// for the browser tests: latency behind live every half second (wall clock minus the
// EXT-X-PROGRAM-DATE-TIME of the frame at the playhead, where the player tells it),
// stalls (a `waiting` event after playback began, not during a seek, and how long until
// `playing`), fatal
// errors (the player gave up), the other errors it reported, and the current time.
// Where chunks came from is read by the test from the network, the same for every player.
'use strict';
(function () {
  const params = new URLSearchParams(location.search);
  const video = document.getElementById('video');
  const state = {
    player: params.get('player'),
    version: null,
    phase: 'loading',
    began: false,
    stalls: 0,
    stallSeconds: 0,
    stallLog: [],
    fatalErrors: 0,
    errors: [],
    latency: [],  // seconds behind live, sampled every 0.5 s while playing
    latencyAt: [],  // when each was sampled (ms since the epoch)
    targetLatency: null,  // the latency the player aims at, where it tells (hls.js)
    // Frames the browser dropped and presented so far, and each change of playback rate (a
    // player catching up or slowing down): what a drift behind live with no stall comes from.
    frames: { dropped: 0, total: 0 },
    rateLog: [],  // [{ at, rate }]
  };
  // When the player appended an initialization section (data beginning with an ftyp or moov
  // box). Chromium takes one as a new configuration and drops every frame up to the next
  // keyframe, so a player appending it before each low-latency part keeps only the parts that
  // start a segment (see browser_test.mjs, INIT_PER_PART_MIN).
  state.initAppends = [];
  const appendBuffer = SourceBuffer.prototype.appendBuffer;
  SourceBuffer.prototype.appendBuffer = function (data) {
    const view = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, Math.min(8, data.byteLength))
      : new Uint8Array(data, 0, Math.min(8, data.byteLength));
    const box = view.length === 8 ? String.fromCharCode(view[4], view[5], view[6], view[7]) : '';
    if (box === 'ftyp' || box === 'moov') {
      state.initAppends.push(Date.now());
      if (state.initAppends.length > 400) state.initAppends.shift();
    }
    return appendBuffer.call(this, data);
  };
  window.playerState = state;
  window.playerVideo = video;  // video.js moves it into a wrapper and renames it
  let stallStarted = null;
  const now = () => performance.now() / 1000;
  video.muted = true;
  video.addEventListener('playing', () => {
    state.phase = 'playing';
    state.began = true;
    if (stallStarted !== null) {
      state.stallSeconds += now() - stallStarted;
      state.stallLog[state.stallLog.length - 1].seconds = +(now() - stallStarted).toFixed(3);
    }
    stallStarted = null;
  });
  video.addEventListener('waiting', () => {
    // A wait during a seek (a player moving to the live edge at start) is not a stall.
    if (!state.began || stallStarted !== null || video.seeking) return;
    state.stalls += 1;
    stallStarted = now();
    const b = video.buffered;
    const ranges = [];
    for (let i = 0; i < b.length; i += 1) ranges.push([+b.start(i).toFixed(3), +b.end(i).toFixed(3)]);
    state.stallLog.push({ at: Date.now(), currentTime: +video.currentTime.toFixed(3),
      bufferedEnd: b.length ? +b.end(b.length - 1).toFixed(2) : null, buffered: ranges });
  });
  const error = (fatal, detail) => {
    if (fatal) state.fatalErrors += 1;
    state.errors.push(Object.assign({ fatal, at: Date.now() }, detail));
    if (state.errors.length > 200) state.errors.shift();
    if (fatal) state.phase = 'error';
  };
  const play = () => video.play().catch(() => {});
  const src = params.get('src');
  const lowLatency = params.get('ll') === '1';
  // `dateAtPlayhead()` gives the program date of the frame on screen (a Date), or null.
  const sampleLatency = (dateAtPlayhead) => setInterval(() => {
    const quality = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    if (quality) state.frames = { dropped: quality.droppedVideoFrames, total: quality.totalVideoFrames };
    if (state.rateLog.length === 0 || state.rateLog.at(-1).rate !== video.playbackRate) {
      state.rateLog.push({ at: Date.now(), rate: video.playbackRate });
      if (state.rateLog.length > 200) state.rateLog.shift();
    }
    const d = dateAtPlayhead();
    if (!d || !state.began || video.paused || stallStarted !== null) return;
    const at = Date.now();
    state.latency.push(+((at - d.getTime()) / 1000).toFixed(3));
    state.latencyAt.push(at);
    if (state.latency.length > 1200) {
      state.latency.shift();
      state.latencyAt.shift();
    }
  }, 500);

  const players = {
    hlsjs() {
      state.version = Hls.version;
      // In its low-latency mode it catches up to its target latency after a stall (playback up
      // to 1.5x), as the web player does; liveMaxLatencyDurationCount is left out (with it
      // hls.js 1.7.4 never started the demo channel).
      const hls = new Hls(lowLatency ? { lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 } : { lowLatencyMode: false });
      sampleLatency(() => {
        state.targetLatency = hls.targetLatency;
        return hls.playingDate;
      });
      hls.on(Hls.Events.ERROR, (event, data) => error(data.fatal, {
        type: data.type, details: data.details, status: data.response ? data.response.code : undefined,
        url: data.url || (data.frag && data.frag.url) || (data.context && data.context.url) }));
      hls.on(Hls.Events.MANIFEST_PARSED, play);
      hls.loadSource(src);
      hls.attachMedia(video);
    },
    async shaka() {
      state.version = shaka.Player.version;
      shaka.polyfill.installAll();
      const player = new shaka.Player();
      await player.attach(video);
      if (lowLatency) player.configure({ streaming: { lowLatencyMode: true } });
      sampleLatency(() => player.getPlayheadTimeAsDate());
      // Severity 2 (CRITICAL) stops playback; 1 (RECOVERABLE) is retried or worked around. A
      // live stream's network error is announced CRITICAL and then made RECOVERABLE by the
      // default streaming.failureCallback, which retries: read the severity once that ran.
      player.addEventListener('error', (event) => setTimeout(() => {
        const e = event.detail;
        error(e.severity === 2, { severity: e.severity, code: e.code, category: e.category,
          url: e.data && typeof e.data[0] === 'string' ? e.data[0].replace(/\?.*/, '') + '?' + (e.data[0].match(/pathway=[^&]*/) || [''])[0] : undefined,
          status: e.data && typeof e.data[1] === 'number' ? e.data[1] : undefined });
      }, 0));
      try {
        await player.load(src);
        play();
      } catch (e) {
        error(true, { code: e.code, category: e.category, message: String(e.message || e) });
      }
    },
    videojs() {
      state.version = videojs.VERSION;
      const warnings = [];
      videojs.log.history.disable();
      if (params.get('debug') === '1') videojs.log.level('debug');
      const warn = videojs.log.warn;
      videojs.log.warn = (...args) => { warnings.push(args.join(' ')); error(false, { warning: args.join(' ').replace(/ticket=[^&\s]*&?/g, '').slice(0, 600) }); warn(...args); };
      const player = videojs(video, { autoplay: 'muted', muted: true, html5: { vhs: { overrideNative: true } } });
      player.on('error', () => { const e = player.error(); error(true, { code: e && e.code, message: e && e.message }); });
      // The program date of the frame on screen: from the segment holding the playhead, by its
      // timing once transmuxed (VHS's own convertToProgramTime counts live segments from zero
      // and is a minute off here). Any rendition's: after a switch, the playhead is still in
      // segments of the one before.
      sampleLatency(() => {
        try {
          const vhs = player.tech({ IWillNotUseThisInPlugins: true }).vhs;
          const main = vhs && (vhs.playlists.main || vhs.playlists.master);
          const t = player.currentTime();
          for (const seg of ((main && main.playlists) || []).flatMap((p) => p.segments || [])) {
            const v = seg.videoTimingInfo;
            if (!seg.dateTimeObject) continue;
            // fMP4 is not transmuxed: then the segment's own place on the timeline.
            const start = v ? v.transmuxedPresentationStart + (v.transmuxerPrependedSeconds || 0) : seg.start;
            const end = v ? v.transmuxedPresentationEnd : seg.end;
            if (typeof start !== 'number' || typeof end !== 'number') continue;
            if (t >= start && t < end) return new Date(seg.dateTimeObject.getTime() + (t - start) * 1000);
          }
        } catch (e) { /* not mapped yet */ }
        return null;
      });
      player.src({ src, type: 'application/x-mpegURL' });
      player.ready(play);
    },
  };
  const start = players[state.player];
  if (!start) {
    error(true, { message: 'unknown player ' + state.player });
    return;
  }
  const begin = () => Promise.resolve().then(start).catch((e) => error(true, { message: String(e && e.message || e) }));
  // ?hold=1: not before window.startPlayer() (a test starting two pages at the same moment).
  if (params.get('hold') === '1') window.startPlayer = begin;
  else begin();
})();
