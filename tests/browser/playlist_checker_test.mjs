// The playlist checker on planted sequences: each rule it enforces fails on a breach of it, and
// holds on a well-formed switch (a discontinuity after the last segment served, numbers going on).
// Runs under node alone (ctest browser_playlist_checker, label unit).
import assert from 'node:assert/strict';
import { checkPlaylists, parseMedia } from './playlist_checker.mjs';

const media = (first, uris, { disc = 0, tagged = [], skipped = 0 } = {}) =>
  '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:' + first + '\n' +
  (disc ? '#EXT-X-DISCONTINUITY-SEQUENCE:' + disc + '\n' : '') +
  (skipped ? '#EXT-X-SKIP:SKIPPED-SEGMENTS=' + skipped + '\n' : '') +
  uris.map((u, i) => (tagged.includes(first + skipped + i) ? '#EXT-X-DISCONTINUITY\n' : '') + '#EXTINF:2.0,\n' + u + '\n').join('');
const at = (rendition, text) => ({ rendition, url: 'http://node-a/hls/c/' + rendition + '.m3u8', text });

// A switch done right: A's 10, 11, then B's chunks from 12 after a discontinuity, in both
// renditions, from two different cache hosts, and a delta update.
const good = [
  at('hi', media(10, ['http://node-a/o/a/hi/a10.ts', 'http://node-a/o/a/hi/a11.ts'])),
  at('lo', media(10, ['http://node-b/o/a/lo/a10.ts', 'http://node-b/o/a/lo/a11.ts'])),
  at('hi', media(10, ['http://node-b/o/a/hi/a10.ts', 'http://node-b/o/a/hi/a11.ts', 'http://node-b/o/b/hi/b7.ts?brun=5&x=1'], { tagged: [12] })),
  at('lo', media(11, ['/o/a/lo/a11.ts', '/o/b/lo/b7.ts?brun=5'], { tagged: [12] })),
  at('hi', media(10, ['http://node-a/o/b/hi/b7.ts?brun=5&y=2', 'http://node-a/o/b/hi/b8.ts?brun=5'], { skipped: 2 })),
];
assert.deepEqual(checkPlaylists(good), []);
assert.equal(parseMedia('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhi.m3u8\n', 'http://x/'), null);

const problems = (sequence) => checkPlaylists(sequence).join('; ');
// MEDIA-SEQUENCE going back.
assert.match(problems([at('hi', media(11, ['a11.ts'])), at('hi', media(10, ['a10.ts', 'a11.ts']))]), /went back from 11 to 10/);
// A number naming another chunk (another source's, or the same name of another run).
assert.match(problems([at('hi', media(10, ['a10.ts', 'a11.ts'])), at('hi', media(11, ['b7.ts']))]), /number 11 named/);
assert.match(problems([at('hi', media(10, ['a10.ts?brun=1'])), at('hi', media(10, ['a10.ts?brun=2']))]), /number 10 named/);
// Renditions that disagree on a discontinuity number, or one rendition that changes its own.
assert.match(problems([at('hi', media(12, ['b7.ts'], { tagged: [12] })), at('lo', media(12, ['b7.ts']))]), /number 12: discontinuity number 1 in hi, 0 in lo/);
assert.match(problems([at('hi', media(12, ['b7.ts'], { tagged: [12] })), at('hi', media(12, ['b7.ts', 'b8.ts'], { disc: 2 }))]), /number 12: discontinuity number 1 in hi, 2 in hi/);
// A part naming another part: the dead source's part of the segment in progress, then the
// other source's part under the same number and index. Parts that go on, and a segment
// completed with the parts listed before it, hold.
const parts = (first, list, tail = '') => '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:' + first + '\n' +
  list.map((u) => '#EXT-X-PART:DURATION=0.5,URI="' + u + '"\n').join('') + tail;
assert.deepEqual(checkPlaylists([at('hi', parts(5, ['a5.0.m4s'])), at('hi', parts(5, ['a5.0.m4s', 'a5.1.m4s'])),
  at('hi', parts(5, ['a5.0.m4s', 'a5.1.m4s'], '#EXTINF:1.0,\na5.m4s\n#EXT-X-PART:DURATION=0.5,URI="a6.0.m4s"\n'))]), []);
assert.match(problems([at('hi', parts(5, ['a5.0.m4s'])), at('hi', parts(5, ['b9.0.m4s?brun=3', 'b9.1.m4s?brun=3']))]),
  /hi: part 0 of number 5 named \/hls\/c\/a5\.0\.m4s, then \/hls\/c\/b9\.0\.m4s\?brun=3/);
console.log('playlist checker: all checks passed');
