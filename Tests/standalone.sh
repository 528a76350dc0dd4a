#!/usr/bin/env bash
# The self-contained binary, built and proven: it is at most 20 MiB, `ldd` lists nothing from the
# Swift toolchain, and demo, diff, merge and check run with `env -i` (no PATH, no library path)
# from a copy outside the repository. CI runs this; run it yourself with `bash Tests/standalone.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
swift build -c release --product av --static-swift-stdlib -Xlinker -s --scratch-path .build-static
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp .build-static/release/av "$work/av"
size=$(stat -c %s "$work/av")
echo "standalone: av is $size bytes ($((size / 1024 / 1024)) MiB)"
if [ "$size" -gt $((20 * 1024 * 1024)) ]; then
  echo "standalone: the binary is larger than 20 MiB" >&2
  exit 1
fi
toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")
libs=$(env -i ldd "$work/av")
echo "$libs"
if echo "$libs" | grep -E -i "not found|swift|foundation|dispatch|icu|$toolchain"; then
  echo "standalone: the binary needs a library from the Swift toolchain (above)" >&2
  exit 1
fi
c=$repo/Checkpoints
cd "$work"
cat > release.json <<JSON
{
  "base": "$c/base",
  "mix": {"medical": 1.0},
  "vectors_dir": "$work",
  "output": "$work/merged",
  "checks": [
    {"name": "medical answers expert", "type": "levels", "file": "$c/eval/medical_levels.jsonl",
     "level": "expert", "largest": true},
    {"type": "finite"},
    {"type": "loads"}
  ]
}
JSON
env -i ./av --version
env -i ./av demo --checkpoints "$c" > demo.txt
tail -n 1 demo.txt
env -i ./av diff "$c/base" "$c/medical-aligned" -o medical.av --quiet
env -i ./av merge --base "$c/base" --vectors . --medical 0.5 -o half --quiet
env -i ./av check --recipe release.json --report report.json
grep -q '"passed" *: *true' report.json
echo "standalone: demo, diff, merge and check ran under env -i"
