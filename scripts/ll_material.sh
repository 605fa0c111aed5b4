#!/usr/bin/env bash
# Makes the low-latency channel's material in DIR: 8 s of a test pattern as CMAF fMP4 in two
# renditions, low.mp4 (400 kb/s) and high.mp4 (1200 kb/s), a keyframe a second and fragments
# (parts) of about 0.25 s, for ll_origin to publish part by part in a loop. A rendition whose
# file is already there is kept. Used by scripts/demo.sh and scripts/bench/audience_bench.sh.
#   scripts/ll_material.sh DIR
set -euo pipefail
dir=${1:?usage: scripts/ll_material.sh DIR}
mkdir -p "$dir"
for rendition in low:400 high:1200; do
  name=${rendition%%:*} kbps=${rendition##*:}
  [[ -s "$dir/$name.mp4" ]] && continue
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=30" -t 8 \
    -c:v libx264 -preset veryfast -tune zerolatency -g 30 -keyint_min 30 -sc_threshold 0 -b:v "${kbps}k" \
    -pix_fmt yuv420p -f mp4 -movflags cmaf+frag_keyframe+empty_moov+default_base_moof -frag_duration 250000 \
    "$dir/$name.mp4"
done
