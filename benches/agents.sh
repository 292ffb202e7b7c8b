#!/usr/bin/env bash
# Benchmarks for agents (`slipway agent run`, docs/agents.md), printed as a table at the end:
#   1. job pickup: from a `runs-on` job queued (its action_started event) to its first command
#      running on an idle agent, p50 and p99 over N jobs (goal: p50 under 100 ms); beside it
#      the embedded runner's figure for the same build without `runs-on`
#   2. lease loss: an agent SIGKILLed mid-job; time until the attempt ends as a fault
#      (lease 2 s here; the default is 15 s; goal: under 30 s)
#   3. log throughput: a job printing 200,000 numbered lines; lines stored per second, and
#      lines stored against printed (goal: all, once, in order)
#   4. agent idle RSS after 5 s (goal: under 30 MiB)
# Usage: benches/agents.sh [--quick]
#   SLIPWAY=target/debug/slipway benches/agents.sh   use this binary instead of building
#                                                    `cargo build --release -p slipway`
# Everything lives in a temporary directory; all traffic goes to 127.0.0.1; every process
# this script starts is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=50 lines=200000
[ "${1:-}" = "--quick" ] && { jobs=10; lines=20000; }
command -v python3 >/dev/null || { echo "agents.sh: python3 is needed" >&2; exit 1; }
if [ -z "${SLIPWAY:-}" ]; then
  cargo build --release -q -p slipway
  SLIPWAY=$PWD/target/release/slipway
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
printf '[agents]\nlease_ttl = "2s"\n[timeouts]\nretry_backoff = "0s"\n' > "$tmp/slipway.toml"
"$SLIPWAY" server --data "$tmp/data" --listen 127.0.0.1:$port --config "$tmp/slipway.toml" 2>"$tmp/server.log" &
pids+=($!)
for _ in $(seq 100); do curl -fsS "$url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
export SLIPWAY_SERVER=$url
token=$("$SLIPWAY" agent token create 2>/dev/null)
start_agent() { # name -> pid
  "$SLIPWAY" agent run --server "$url" --token "$token" --labels bench --executor local \
    --work-dir "$tmp/$1" --name "$1" >/dev/null 2>"$tmp/$1.log" &
  echo $!
}
a=$(start_agent a); pids+=($a)
for _ in $(seq 100); do grep -q "waiting for jobs" "$tmp/a.log" && break; sleep 0.1; done

mkrepo() { # dir pipeline-yaml buildspec-yaml
  mkdir -p "$1/.slipway"; printf '%s' "$2" > "$1/.slipway/pipeline.yml"; printf '%s' "$3" > "$1/buildspec.yml"
  git -C "$1" init -q -b main; git -C "$1" add -A
  git -C "$1" -c user.name=b -c user.email=b@b commit -qm init
}
first='version: 0.2
phases:
  build:
    commands:
      - echo first-command-ns $(date +%s%N)
'
mkrepo "$tmp/pick" 'name: pick
stages:
  - name: s
    actions:
      - name: a
        type: build
        runs-on: [bench]
' "$first"
mkrepo "$tmp/embed" 'name: embed
stages:
  - name: s
    actions:
      - name: a
        type: build
' "$first"
"$SLIPWAY" project create pick --git "$tmp/pick" >/dev/null
"$SLIPWAY" project create embed --git "$tmp/embed" >/dev/null

pickup() { # project -> one latency in ms per line
  for i in $(seq "$jobs"); do
    "$SLIPWAY" pipeline start "$1" --follow >/dev/null 2>&1 || true
    "$SLIPWAY" logs "$1#$i" --json | python3 -c '
import sys, json
ev = [json.loads(l) for l in sys.stdin]
t0 = next(e["time_ms"] for e in ev if e["type"] == "action_started")
ns = next(int(l.split()[1]) for e in ev if e["type"] == "log" for l in e["text"].splitlines() if l.startswith("first-command-ns "))
print(ns / 1e6 - t0)'
  done
}
pct() { python3 -c '
import sys
v = sorted(float(x) for x in sys.stdin.read().split())
q = lambda p: v[min(len(v) - 1, int(round(p * (len(v) - 1))))]
print(f"{q(0.5):.0f} ms p50, {q(0.99):.0f} ms p99 (n={len(v)})")'; }
agent_pick=$(pickup pick | pct)
embed_pick=$(pickup embed | pct)

# 4. idle RSS (before the heavy parts).
sleep 5
rss=$(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/$a/status)

# 3. log throughput.
mkrepo "$tmp/lines" 'name: lines
stages:
  - name: s
    actions:
      - name: a
        type: build
        runs-on: [bench]
' "version: 0.2
phases:
  build:
    commands:
      - seq 1 $lines | sed 's/^/line-/'
"
"$SLIPWAY" project create lines --git "$tmp/lines" >/dev/null
t0=$(date +%s%N)
"$SLIPWAY" pipeline start lines --follow >/dev/null 2>&1 || true
t1=$(date +%s%N)
stored=$("$SLIPWAY" logs lines#1 --json | python3 -c '
import sys, json
n = int(sys.argv[1]); got = []
for l in sys.stdin:
    e = json.loads(l)
    if e["type"] == "log":
        got += [x for x in e["text"].splitlines() if x.startswith("line-")]
ok = got == ["line-%d" % i for i in range(1, n + 1)]
verdict = "in order, once each" if ok else "NOT exactly once in order"
print(f"{len(got)} of {n} stored, {verdict}")' "$lines")
throughput=$(python3 -c "print(f'{$lines / (($t1 - $t0) / 1e9):.0f} lines/s')")

# 2. lease loss.
mkrepo "$tmp/lost" 'name: lost
stages:
  - name: s
    actions:
      - name: a
        type: build
        runs-on: [bench]
' 'version: 0.2
phases:
  build:
    commands:
      - echo go; sleep 30
'
"$SLIPWAY" project create lost --git "$tmp/lost" >/dev/null
"$SLIPWAY" pipeline start lost >/dev/null
for _ in $(seq 200); do "$SLIPWAY" logs lost#1 2>/dev/null | grep -q "^\[a\] go" && break; sleep 0.05; done
kill -9 "$a"; killed=$(date +%s%N)
while ! "$SLIPWAY" execution show lost#1 --json | grep -q '"status": *"fault"\|"status":"fault"'; do sleep 0.02; done
lost=$(python3 -c "print(f'{($(date +%s%N) - $killed) / 1e6:.0f} ms')")

echo
echo "| figure | agents | beside | goal |"
echo "|---|---|---|---|"
echo "| job pickup (queued -> first command) | $agent_pick | embedded runner: $embed_pick | p50 < 100 ms |"
echo "| lease loss after SIGKILL (lease 2 s) | $lost | Buildkite ~4 min, GitLab ~1 h | < 30 s |"
echo "| log throughput, $lines lines | $throughput | | |"
echo "| lines stored | $stored | | all, once |"
echo "| agent idle RSS | $rss | | < 30 MiB |"
