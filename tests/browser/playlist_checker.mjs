// The playlist checker of issue #56's targets, over the media playlists a player received, in the
// order it received them: per rendition, numbers never go back and a number always names the same
// chunk, and a part (a number and an index) always names the same part, in the segment in
// progress too; across renditions, a number has one discontinuity number. A chunk is named by
// its path and its run (the balancer's brun parameter), not its host: the same chunk comes from
// whichever cache node the viewer's pathway names.
// Pure: no browser, no I/O (playlist_checker_test.mjs runs it on planted sequences).

// One media playlist's segments: [{ msn, uri, discontinuity (null in a delta update) }], its
// parts: [{ msn, index, uri }] (those after the last segment are the next number's), and its
// MEDIA-SEQUENCE; null for a master playlist or a body that is no playlist.
export function parseMedia(text, baseUrl) {
  if (typeof text !== 'string' || !text.startsWith('#EXTM3U') || text.includes('#EXT-X-STREAM-INF')) return null;
  let msn = 0, number = 0, pendingDiscontinuity = false, inSegment = false, partIndex = 0;
  const segments = [];
  const parts = [];
  let first = null, delta = false;
  for (const raw of text.split(/\r?\n|\r/)) {
    const line = raw.trim();
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) msn = first = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-DISCONTINUITY-SEQUENCE:')) number = Number(line.slice(30));
    else if (line.startsWith('#EXT-X-SKIP:')) {
      msn += Number((/SKIPPED-SEGMENTS=(\d+)/.exec(line) || [0, 0])[1]);
      delta = true;
    }
    else if (line === '#EXT-X-DISCONTINUITY') pendingDiscontinuity = true;
    else if (line.startsWith('#EXT-X-PART:')) {
      const uri = /URI="([^"]*)"/.exec(line);
      if (uri) parts.push({ msn, index: partIndex, uri: chunkName(uri[1], baseUrl) });
      partIndex += 1;
    }
    else if (line.startsWith('#EXTINF:')) inSegment = true;
    else if (line && !line.startsWith('#') && inSegment) {
      if (pendingDiscontinuity) number += 1;
      // A delta update's skipped segments may hold discontinuities: its numbers are not known.
      segments.push({ msn, uri: chunkName(line, baseUrl), discontinuity: delta ? null : number });
      msn += 1;
      partIndex = 0;
      pendingDiscontinuity = inSegment = false;
    }
  }
  return { mediaSequence: first ?? 0, segments, parts };
}

// A chunk's name for the checks: its path and run, without host or other parameters.
export function chunkName(uri, baseUrl) {
  const url = new URL(uri, baseUrl || 'http://x/');
  const run = url.searchParams.get('brun');
  return url.pathname + (run ? '?brun=' + run : '');
}

// `received`: [{ rendition, url, text }] in arrival order (rendition: any key naming one media
// playlist of the channel). Returns the problems found (empty when all hold), at most `limit`.
export function checkPlaylists(received, limit = 20) {
  const problems = [];
  const lastSequence = new Map();  // rendition -> MEDIA-SEQUENCE
  const uris = new Map();          // rendition -> Map(msn -> chunk)
  const partUris = new Map();      // rendition -> Map('msn.index' -> part)
  const numbers = new Map();       // msn -> { number, rendition }
  const add = (p) => { if (problems.length < limit) problems.push(p); };
  for (const { rendition, url, text } of received) {
    const media = parseMedia(text, url);
    if (!media) continue;
    const before = lastSequence.get(rendition);
    if (before !== undefined && media.mediaSequence < before) {
      add(rendition + ': MEDIA-SEQUENCE went back from ' + before + ' to ' + media.mediaSequence);
    }
    lastSequence.set(rendition, Math.max(before ?? 0, media.mediaSequence));
    if (!uris.has(rendition)) uris.set(rendition, new Map());
    if (!partUris.has(rendition)) partUris.set(rendition, new Map());
    const named = uris.get(rendition);
    const partsNamed = partUris.get(rendition);
    for (const p of media.parts) {
      const key = p.msn + '.' + p.index;
      const was = partsNamed.get(key);
      if (was === undefined) partsNamed.set(key, p.uri);
      else if (was !== p.uri) {
        add(rendition + ': part ' + p.index + ' of number ' + p.msn + ' named ' + was + ', then ' + p.uri);
        partsNamed.set(key, p.uri);  // once per change
      }
    }
    for (const s of media.segments) {
      const was = named.get(s.msn);
      if (was === undefined) named.set(s.msn, s.uri);
      else if (was !== s.uri) add(rendition + ': number ' + s.msn + ' named ' + was + ', then ' + s.uri);
      if (s.discontinuity === null) continue;
      const seen = numbers.get(s.msn);
      if (seen === undefined) numbers.set(s.msn, { number: s.discontinuity, rendition });
      else if (seen.number !== s.discontinuity) {
        add('number ' + s.msn + ': discontinuity number ' + seen.number + ' in ' + seen.rendition + ', ' + s.discontinuity + ' in ' + rendition);
      }
    }
  }
  return problems;
}
