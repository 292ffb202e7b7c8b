#!/usr/bin/env bash
# Benchmarks for the runner, each measured beside the peer a user would otherwise pick, in the
# same run, reported as ratios:
#   1. `slipway build --executor local` vs `sh -c` running the same commands (per build, per command)
#   2. `slipway build --executor docker` vs `docker run` of the same commands
#   3. a build printing 1 GiB: throughput and peak RSS of `slipway build > file`, vs `sh -c ... > file`
# Usage: benches/run.sh [--quick]   (needs a Docker engine and slipway-busybox: scripts/provision.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0; [ "${1:-}" = "--quick" ] && quick=1
runs=20; [ $quick = 1 ] && runs=5
gib=$((1024 * 1024 * 1024)); [ $quick = 1 ] && gib=$((256 * 1024 * 1024))

need() { command -v "$1" >/dev/null || { echo "installing $2" >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need hyperfine hyperfine
[ -x /usr/bin/time ] || need /usr/bin/time time

cargo build --release -q -p slipway
bin=$PWD/target/release/slipway
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SLIPWAY_DATA=$work/data

mkrepo() { # name, number of commands, command
  mkdir -p "$work/$1"
  { echo "version: 0.2"; echo "phases:"; echo "  build:"; echo "    commands:";
    for _ in $(seq "$2"); do echo "      - $3"; done; } > "$work/$1/buildspec.yml"
}
mkrepo one 1 true
mkrepo hundred 100 true
cmds100=$(for _ in $(seq 100); do printf 'true; '; done)

mean() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["mean"])' "$@"; }

echo "== 1. local executor vs sh -c ($runs runs each)"
hyperfine -N -w 3 -r "$runs" --export-json "$work/local.json" \
  "sh -c true" "$bin build $work/one --executor local" \
  "sh -c '$cmds100'" "$bin build $work/hundred --executor local" >/dev/null
python3 - "$work/local.json" <<'PY'
import json, sys
r = [x["mean"] for x in json.load(open(sys.argv[1]))["results"]]
sh1, sl1, sh100, sl100 = r
print(f"sh -c (1 command):      {sh1*1000:8.2f} ms")
print(f"slipway (1 command):    {sl1*1000:8.2f} ms   added per build: {(sl1-sh1)*1000:.2f} ms (goal < 20 ms)   ratio {sl1/sh1:.1f}x")
per_cmd = ((sl100 - sl1) - (sh100 - sh1)) / 99
print(f"added per command:      {per_cmd*1000:8.3f} ms (goal < 1 ms)")
PY

if docker info >/dev/null 2>&1; then
  echo "== 2. docker executor vs docker run ($runs runs each)"
  hyperfine -N -w 2 -r "$runs" --export-json "$work/docker.json" \
    "docker run --rm slipway-busybox:latest sh -c true" \
    "$bin build $work/one --executor docker --image slipway-busybox:latest" >/dev/null
  python3 - "$work/docker.json" <<'PY'
import json, sys
dr, sl = [x["mean"] for x in json.load(open(sys.argv[1]))["results"]]
print(f"docker run:             {dr*1000:8.1f} ms")
print(f"slipway docker build:   {sl*1000:8.1f} ms   added: {(sl-dr)*1000:.1f} ms (goal < 50 ms)   ratio {sl/dr:.2f}x")
PY
else
  echo "== 2. skipped: no Docker engine answers (run scripts/provision.sh)"
fi

echo "== 3. $((gib / 1024 / 1024)) MiB of build output to a file"
mkdir -p "$work/big"
cat > "$work/big/buildspec.yml" <<YML
version: 0.2
phases:
  build:
    commands:
      - "yes 'slipway benchmark output line 0123456789abcdefghijklmnopqrstuvwxyz' | head -c $gib"
YML
t0=$(date +%s.%N)
sh -c "yes 'slipway benchmark output line 0123456789abcdefghijklmnopqrstuvwxyz' | head -c $gib" > "$work/sh.out"
t1=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/rss" "$bin" build "$work/big" --executor local > "$work/slipway.out"
t2=$(date +%s.%N)
python3 - "$gib" "$t0" "$t1" "$t2" "$(cat "$work/rss")" "$(stat -c %s "$work/slipway.out")" <<'PY'
import sys
n, t0, t1, t2, rss_kb, out = int(sys.argv[1]), *map(float, sys.argv[2:5]), int(sys.argv[5]), int(sys.argv[6])
sh, sl = t1 - t0, t2 - t1
print(f"sh -c > file:           {n/sh/1e6:8.0f} MB/s")
print(f"slipway build > file:   {n/sl/1e6:8.0f} MB/s (goal >= 200 MB/s)   ratio {sl/sh:.2f}x the time of sh   output {out/1e6:.0f} MB (prefixed lines)")
print(f"slipway peak RSS:       {rss_kb/1024:8.1f} MiB (goal < 64 MiB)")
PY
