#!/usr/bin/env bash
# Push-to-build benchmark for hosted repositories (docs/sources.md), each figure beside a peer
# or a goal:
#   1. `git push` to a repository Slipway hosts (smart HTTP through `git http-backend`) until
#      it returns; peer: the same push to a local bare repository over file://
#   2. `git push` starting to the pipeline's first command running (it writes `date +%s%N`),
#      on the embedded local executor; goal: under 100 ms p50 (GitLab's runner polls every 3 s)
# p50 / p99 over N pushes (default 50) of one small commit each, in sequence.
# Usage: benches/push.sh [--quick]          (--quick: 10 pushes)
#   SLIPWAY=target/debug/slipway benches/push.sh    use this binary instead of building
#                                                   `cargo build --release -p slipway`
# Everything lives in a temporary directory; all traffic goes to 127.0.0.1; the one server
# this script starts is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pushes=50 qflag=""
[ "${1:-}" = "--quick" ] && { pushes=10; qflag=" --quick"; }

die() { echo "push.sh: $*" >&2; exit 1; }
for t in git python3 timeout; do command -v $t >/dev/null || die "needs $t"; done

server_pid="" work=""
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
cleanup() {
  set +e
  if [ -n "$server_pid" ]; then
    if alive "$server_pid"; then
      kill -TERM "$server_pid" 2>/dev/null
      for _ in $(seq 200); do alive "$server_pid" || break; sleep 0.1; done
      alive "$server_pid" && kill -KILL "$server_pid" 2>/dev/null
    fi
    wait "$server_pid" 2>/dev/null
  fi
  [ -z "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

work=$(mktemp -d "${TMPDIR:-/tmp}/slipway-push-bench.XXXXXX")
given=${SLIPWAY:-}; [ "$given" = true ] && given=
if [ -n "$given" ]; then
  bin=$(realpath "$given") || die "SLIPWAY=$given: no such file"
else
  cargo build --release -q -p slipway
  bin=$root/target/release/slipway
fi
case "$bin" in */release/*) profile=release ;; */debug/*) profile=debug ;; *) profile="unknown profile" ;; esac
cp "$bin" "$work/slipway"   # a rebuild while this runs cannot swap it
for v in $(compgen -e | grep '^SLIPWAY' || true); do unset "$v"; done
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY='*' no_proxy='*' GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost

log=$work/server.log
"$work/slipway" server --data "$work/data" --listen 127.0.0.1:0 </dev/null >"$log" 2>&1 &
server_pid=$!
url=""
for _ in $(seq 1200); do
  url=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$log" | head -n 1)
  [ -n "$url" ] && break
  alive "$server_pid" || { tail -n 20 "$log" >&2; die "the server exited before listening"; }
  sleep 0.05
done
[ -n "$url" ] || die "the server did not listen within 60 s"
"$work/slipway" project create bench --server "$url" >/dev/null
clone_url=$url/git/bench.git

echo "# Slipway push benchmark. Reproduce with:"
echo "#   ${given:+SLIPWAY=$given }benches/push.sh$qflag"
echo "# binary $bin ($profile), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' +uncommitted changes'),"
echo "# $(nproc) cores, $(uname -sr), git $(git --version | cut -d' ' -f3), $(date -u +%FT%TZ); $pushes pushes"

stamps=$work/stamps
mkdir -p "$stamps"
git clone -q "$clone_url" "$work/w" 2>/dev/null
mkdir -p "$work/w/.slipway"
cat >"$work/w/.slipway/pipeline.yml" <<'YML'
name: bench
stages:
  - name: build
    actions:
      - name: stamp
        type: build
        executor: local
        buildspec: buildspec.yml
YML
cat >"$work/w/buildspec.yml" <<YML
version: 0.2
phases:
  build:
    commands:
      - date +%s%N > "$stamps/\$CODEBUILD_RESOLVED_SOURCE_VERSION"
YML
git -C "$work/w" add -A
git -C "$work/w" commit -q -m pipeline
# The peer: a bare repository on the same disk, pushed to over file://.
git init -q --bare -b main "$work/peer.git"
git -C "$work/w" remote add peer "file://$work/peer.git"

# Waits for the stamp of commit $1 (at most 30 s); prints its ns.
stamp_of() {
  local f=$stamps/$1 i
  for i in $(seq 30000); do [ -s "$f" ] && { cat "$f"; return 0; }; sleep 0.001; done
  return 1
}
now_ns() { echo $(( ${EPOCHREALTIME/./} * 1000 )); }

# Warm-up (not measured): the first push and its execution.
git -C "$work/w" push -q origin main 2>/dev/null
git -C "$work/w" push -q peer main
stamp_of "$(git -C "$work/w" rev-parse HEAD)" >/dev/null || die "the first push started nothing (server log: $log)"

: >"$work/push.slipway"; : >"$work/first.slipway"; : >"$work/push.peer"
missed=0
for i in $(seq "$pushes"); do
  echo "$i" >"$work/w/n.txt"
  git -C "$work/w" add n.txt
  git -C "$work/w" commit -q -m "push $i"
  sha=$(git -C "$work/w" rev-parse HEAD)
  t0=$(now_ns)
  git -C "$work/w" push -q origin main 2>/dev/null
  t1=$(now_ns)
  echo "$(( (t1 - t0) / 1000 ))" >>"$work/push.slipway"
  if s=$(stamp_of "$sha"); then echo "$(( (s - t0) / 1000 ))" >>"$work/first.slipway"; else missed=$((missed + 1)); fi
  t0=$(now_ns)
  git -C "$work/w" push -q peer main
  t1=$(now_ns)
  echo "$(( (t1 - t0) / 1000 ))" >>"$work/push.peer"
done

stats() { python3 - "$1" <<'PY'
import math, sys
xs = sorted(float(l) / 1000 for l in open(sys.argv[1]) if l.strip())
def pct(p):
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)] if xs else float("nan")
print(f"{pct(50):.1f} {pct(99):.1f} {len(xs)}")
PY
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }'; }
read -r p50 p99 pn < <(stats "$work/push.slipway")
read -r e50 e99 en < <(stats "$work/push.peer")
read -r f50 f99 fn < <(stats "$work/first.slipway")
row() { printf '  %-48s %18s   %s\n' "$1" "$2" "${3:-}"; }
echo "== results (ms)"
row "git push to Slipway (HTTP) returns, p50 / p99" "$p50 / $p99" "$pn samples"
row "git push to a bare repo (file://), p50 / p99" "$e50 / $e99" "Slipway/peer: $(ratio "$p50" "$e50") (p50), $(ratio "$p99" "$e99") (p99)"
row "git push -> first command runs, p50 / p99" "$f50 / $f99" "goal < 100 ms p50; GitLab's runner polls every 3000 ms: $(ratio 3000 "$f50") sooner; $fn/$pushes samples"
[ "$missed" = 0 ] || row "pushes whose build never ran (30 s)" "$missed" "server log: $log"
bad=$(grep -Ec 'WARN|ERROR|panicked' "$log" || true)
[ "$bad" = 0 ] || { echo "  the server logged $bad warnings/errors, first ones:"; grep -E 'WARN|ERROR|panicked' "$log" | head -n 3 | cut -c1-300 | sed 's/^/    /'; } >&2
