#!/usr/bin/env bash
# Makes the low-latency channel's material in DIR: 8 s of a test pattern as CMAF fMP4 in two
# renditions, low.mp4 (400 kb/s) and high.mp4 (1200 kb/s), a keyframe a second and fragments
# (parts) of about 0.25 s, for ll_origin to publish part by part in a loop. A rendition whose
# file is already there is kept. Used by scripts/demo.sh and the benchmarks.
# LL_MATERIAL=light: 320x180 at 15 fps (150/400 kb/s), cheap to decode for benchmarks that
# run browsers beside the servers.
#   scripts/ll_material.sh DIR
set -euo pipefail
dir=${1:?usage: scripts/ll_material.sh DIR}
mkdir -p "$dir"
size=640x360 rate=30 renditions="low:400 high:1200"
if [[ ${LL_MATERIAL:-} == light ]]; then size=320x180 rate=15 renditions="low:150 high:400"; fi
for rendition in $renditions; do
  name=${rendition%%:*} kbps=${rendition##*:}
  [[ -s "$dir/$name.mp4" ]] && continue
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=$size:rate=$rate" -t 8 \
    -c:v libx264 -preset veryfast -tune zerolatency -g "$rate" -keyint_min "$rate" -sc_threshold 0 -b:v "${kbps}k" \
    -pix_fmt yuv420p -f mp4 -movflags cmaf+frag_keyframe+empty_moov+default_base_moof -frag_duration 250000 \
    "$dir/$name.mp4"
done
