#!/usr/bin/env bash
# Benchmarks for the server (`slipway server`), each figure beside a peer or a goal, printed as
# a table at the end:
#   1. start latency: `slipway pipeline start` to the first command of the build running, on
#      the embedded local executor; peers: `slipway run` (no server) and `sh -c` (spawn cost)
#   2. throughput: 1000 no-op executions queued at once; executions finished per second and
#      the server's peak RSS
#   3. store scale: 100,000 executions in the store (SQLite, then PostgreSQL): p50/p99 of
#      listing a project's executions and of opening one
#   4. idle RSS: the server on an empty data directory after 5 s
# Usage: benches/server.sh [--quick]
#   SLIPWAY=target/debug/slipway benches/server.sh    use this binary instead of building
#                                                     `cargo build --release -p slipway`
# PostgreSQL: $SLIPWAY_CI_STATE/pg.url (default /tmp/slipway-ci/pg.url) names the cluster;
# without it, scripts/provision.sh starts one (and this script stops what that started).
# Everything else lives in a temporary directory; all traffic goes to 127.0.0.1; every
# process this script starts is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
quick=0 qflag=""; [ "${1:-}" = "--quick" ] && { quick=1; qflag=" --quick"; }
starts=50 execs=1000 parallel=8 scale=100000 gets=200
[ $quick = 1 ] && { starts=10; execs=200; scale=10000; gets=50; }
state=${SLIPWAY_CI_STATE:-/tmp/slipway-ci}   # where scripts/provision.sh keeps pg.url

die() { echo "server.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || {
  echo "installing $2" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; } \
    || die "could not install $2"; }; }
need sqlite3 sqlite3
need git git
need python3 python3
need timeout coreutils

pids=()          # servers this script started
pg_admin=""      # PostgreSQL URL of the cluster's `postgres` database, when part 3 uses it
pg_db=""         # the benchmark's database in it, dropped on exit
pg_stop=()       # what scripts/provision.sh started for us: --stop-postgres / --stop-docker
work=""          # the temporary directory

# A child of ours that has not exited (an exited one stays a zombie until `wait`).
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
stop_pid() { # pid of a server we started: SIGTERM, up to 20 s, then SIGKILL; then reaped
  local p=$1 i keep=()
  if alive "$p"; then
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 200); do alive "$p" || break; sleep 0.1; done
    alive "$p" && { echo "server pid $p did not stop in 20 s; killing it" >&2; kill -KILL "$p" 2>/dev/null || true; }
  fi
  wait "$p" 2>/dev/null || true
  # Reaped: the PID may be reused by anything now, so it is forgotten.
  for i in "${pids[@]}"; do [ "$i" = "$p" ] || keep+=("$i"); done
  pids=("${keep[@]}")
}
cleanup() {
  set +e
  for p in "${pids[@]}"; do stop_pid "$p"; done
  if [ -n "$pg_db" ]; then
    psql -X -q "$pg_admin" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 \
      || echo "could not drop database $pg_db at $pg_admin" >&2
  fi
  for s in "${pg_stop[@]}"; do SLIPWAY_CI_STATE=$state bash "$root/scripts/provision.sh" "$s" >&2; done
  [ -z "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

work=$(mktemp -d "${TMPDIR:-/tmp}/slipway-server-bench.XXXXXX")
# The binary: $SLIPWAY (but not the `SLIPWAY=true` a Slipway build sets), else a release build.
given=${SLIPWAY:-}; [ "$given" = true ] && given=
if [ -n "$given" ]; then
  bin=$(realpath "$given") || die "SLIPWAY=$given: no such file"
else
  cargo build --release -q -p slipway
  bin=$root/target/release/slipway
fi
case "$bin" in */release/*) profile=release ;; */debug/*) profile=debug ;; *) profile="unknown profile" ;; esac
"$bin" server --help >/dev/null 2>&1 || die "$bin has no \`server\` command"
# A copy, so that a rebuild while this runs cannot swap the binary under it.
bin_given=$bin
cp "$bin" "$work/slipway"
bin=$work/slipway
# Nothing from the caller's environment configures the servers or clients started here.
for v in $(compgen -e | grep '^SLIPWAY' || true); do unset "$v"; done
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY='*' no_proxy='*'

# Starts a server in the background: name, data dir, extra flags. Sets $server_pid, $url.
start_server() {
  local name=$1 data=$2 i; shift 2
  local log=$work/$name.log
  server_log=$log server_name=$name
  local t0=${EPOCHREALTIME/./}
  "$bin" server --data "$data" --listen 127.0.0.1:0 "$@" </dev/null >"$log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  url=""
  for i in $(seq 1200); do
    url=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$url" ] && break
    alive "$server_pid" || { tail -n 20 "$log" >&2; die "server $name exited before listening (log above)"; }
    sleep 0.05
  done
  [ -n "$url" ] || { tail -n 20 "$log" >&2; die "server $name did not listen within 60 s"; }
  server_start_ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
}
stop_server() { # and says what the server logged at WARN or above (or a panic)
  stop_pid "$server_pid"
  local bad
  bad=$(grep -Ec 'WARN|ERROR|panicked' "$server_log" || true)
  [ "$bad" = 0 ] || { echo "  server $server_name logged $bad warnings/errors, first ones:"; grep -E 'WARN|ERROR|panicked' "$server_log" | head -n 3 | cut -c1-300 | sed 's/^/    /'; } >&2
}
vm() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; } # pid, VmRSS|VmHWM -> kB
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

results=$work/results.tsv   # figure <TAB> value <TAB> beside
result() { printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >>"$results"; printf '  %-50s %16s   %s\n' "$1" "$2" "${3:-}"; }
git_init() { # dir: a repository of the files already there
  git -C "$1" init -q -b main
  git -C "$1" add -A
  git -C "$1" -c user.name=bench -c user.email=bench@localhost commit -q -m bench
}

# ------------------------------------------------------------------ the HTTP helper
cat >"$work/loadgen.py" <<'PY'
"""HTTP load and measurement against one Slipway server (127.0.0.1 only), standard library only."""
import http.client, json, math, random, sys, threading, time
from urllib.parse import urlsplit

TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "skipped", "fault", "superseded"}

def conn(base):
    u = urlsplit(base)
    assert u.hostname == "127.0.0.1", base
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)

def request(c, method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    return r.status, r.read()

def pct(xs, p):
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)] if s else float("nan")

def submit(base, project, n, parallel):
    """POSTs n executions from `parallel` threads on keep-alive connections."""
    lat, errors, lock = [], [], threading.Lock()
    todo = iter(range(n))
    path = f"/api/v1/projects/{project}/executions"
    def worker():
        c = conn(base)
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            t = time.perf_counter()
            try:
                status, body = request(c, "POST", path, b"{}")
            except Exception as e:  # a dropped connection: note it, reconnect
                status, body, c = 0, str(e).encode(), conn(base)
            with lock:
                lat.append((time.perf_counter() - t) * 1000)
                if status != 201:
                    errors.append(f"{status} {body[:200]!r}")
    t0 = time.time()
    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps({"t0": t0, "t1": time.time(), "p50": pct(lat, 50), "p99": pct(lat, 99),
                      "errors": len(errors), "first_errors": errors[:3]}))

def wait(base, project, n, timeout):
    """Pages through the project's executions until n exist and all are terminal."""
    c, deadline = conn(base), time.time() + timeout
    while True:
        rows, before = [], None
        while True:
            q = f"/api/v1/projects/{project}/executions?limit=500" + (f"&before={before}" if before else "")
            status, body = request(c, "GET", q)
            if status != 200:
                sys.exit(f"GET {q}: {status} {body[:300]!r}")
            page = json.loads(body)
            rows += page["items"]
            before = page.get("next")
            if not before or not page["items"]:
                break
        done = [r for r in rows if r["status"] in TERMINAL]
        if (len(rows) >= n and len(done) == len(rows)) or time.time() > deadline:
            counts = {}
            for r in rows:
                counts[r["status"]] = counts.get(r["status"], 0) + 1
            reasons = sorted({r.get("reason") or "" for r in rows if r["status"] != "succeeded"})
            print(json.dumps({"rows": len(rows), "terminal": len(done), "counts": counts,
                              "first_created_ms": min((r["created_ms"] for r in rows), default=0),
                              "last_finished_ms": max((r.get("finished_ms") or 0 for r in done), default=0),
                              "timed_out": len(done) < n, "reasons": reasons[:3]}))
            return
        time.sleep(0.25)

def gets(base, template, n, top, seed):
    """n sequential GETs (after 10 unmeasured), {N} in the path a random 1..top."""
    rnd, c, lat, errors, size = random.Random(seed), conn(base), [], [], 0
    for i in range(n + 10):
        path = template.replace("{N}", str(rnd.randint(1, top)))
        t = time.perf_counter()
        status, body = request(c, "GET", path)
        ms = (time.perf_counter() - t) * 1000
        if i >= 10:
            lat.append(ms)
            size += len(body)
            if status != 200:
                errors.append(f"{path}: {status} {body[:200]!r}")
    print(json.dumps({"p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat),
                      "bytes": size // max(1, n), "errors": len(errors), "first_errors": errors[:3]}))

def post_json(base, path, body):
    status, out = request(conn(base), "POST", path, json.dumps(json.loads(body)).encode())
    if status not in (200, 201):
        sys.exit(f"POST {path}: {status} {out[:300]!r}")
    print(out.decode())

def get_json(base, path):
    status, out = request(conn(base), "GET", path)
    if status != 200:
        sys.exit(f"GET {path}: {status} {out[:300]!r}")
    print(out.decode())

def stats(path):
    xs = [float(l) for l in open(path) if l.strip()]
    print(f"{pct(xs, 50):.2f} {pct(xs, 99):.2f} {len(xs)}")

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"submit": lambda: submit(args[0], args[1], int(args[2]), int(args[3])),
     "wait": lambda: wait(args[0], args[1], int(args[2]), float(args[3])),
     "gets": lambda: gets(args[0], args[1], int(args[2]), int(args[3]), int(args[4])),
     "post": lambda: post_json(args[0], args[1], args[2]),
     "get": lambda: get_json(args[0], args[1]),
     "stats": lambda: stats(args[0])}[cmd]()
PY
http() { python3 "$work/loadgen.py" "$@"; }
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, d))' "$1"; }

echo "# Slipway server benchmark. Reproduce with:"
echo "#   ${given:+SLIPWAY=$given }benches/server.sh$qflag"
echo "# binary $bin_given ($profile), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' +uncommitted changes'),"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%FT%TZ); $starts starts, $execs executions, $scale stored, $gets GETs"

# ------------------------------------------------------------------ 1. start latency
echo "== 1. start latency: \`pipeline start\` to the build's first command ($starts sequential starts)"
stamps=$work/stamps
mkdir -p "$stamps" "$work/latrepo"
cat >"$work/latrepo/buildspec.yml" <<YML
version: 0.2
phases:
  build:
    commands:
      - date +%s%N > "$stamps/\$CODEBUILD_BUILD_NUMBER"
YML
git_init "$work/latrepo"
start_server latency "$work/data-latency"
"$bin" project create lat --git "$work/latrepo" --server "$url" >/dev/null

# One sample: the command's arguments; the wall clock just before it, the stamp its build wrote.
sample() { # out-file, command...
  local out=$1; shift
  rm -f "$stamps"/*
  local t0=${EPOCHREALTIME/./}
  local rc=0
  timeout 60 "$@" >>"$work/sample.log" 2>&1 || rc=$?
  if [ $rc != 0 ]; then
    echo "  a sample failed: $* (exit $rc); last output:" >&2; tail -n 5 "$work/sample.log" >&2
    return 0
  fi
  local f; f=$(find "$stamps" -type f | head -n 1)
  [ -n "$f" ] || { echo "  no stamp written by: $*" >&2; return 0; }
  awk -v s="$(cat "$f")" -v t="$t0" 'BEGIN { printf "%.3f\n", (s / 1000 - t) / 1000 }' >>"$out"
}
for _ in $(seq "$starts"); do sample "$work/lat.server" "$bin" pipeline start lat --server "$url" --follow; done
stop_server
for _ in $(seq "$starts"); do sample "$work/lat.run" "$bin" run "$work/latrepo" --executor local --data "$work/data-run"; done
for _ in $(seq "$starts"); do sample "$work/lat.sh" sh -c "date +%s%N > $stamps/1"; done
touch "$work/lat.server" "$work/lat.run" "$work/lat.sh"
read -r s50 s99 sn < <(http stats "$work/lat.server")
read -r r50 r99 rn < <(http stats "$work/lat.run")
read -r h50 h99 hn < <(http stats "$work/lat.sh")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }'; }
result "pipeline start -> first command, p50" "$s50 ms" "goal < 50 ms; $sn/$starts samples"
result "pipeline start -> first command, p99" "$s99 ms" "(p99 of $starts = the slowest)"
result "slipway run -> first command, p50" "$r50 ms" "server/run: $(ratio "$s50" "$r50"); $rn/$starts samples"
result "slipway run -> first command, p99" "$r99 ms"
result "sh -c -> first command, p50" "$h50 ms" "server/sh: $(ratio "$s50" "$h50"); run/sh: $(ratio "$r50" "$h50"); $hn/$starts samples"
result "sh -c -> first command, p99" "$h99 ms"

# ------------------------------------------------------------------ 2. throughput
echo "== 2. throughput: $execs no-op executions queued at once ($parallel parallel POSTs, default limits)"
mkdir -p "$work/nooprepo"
printf 'version: 0.2\nphases:\n  build:\n    commands:\n      - "true"\n' >"$work/nooprepo/buildspec.yml"
git_init "$work/nooprepo"
start_server throughput "$work/data-throughput"
http post "$url" /api/v1/projects "{\"name\": \"noop\", \"git\": \"$work/nooprepo\"}" >/dev/null
sub=$(http submit "$url" noop "$execs" "$parallel")
[ "$(field errors <<<"$sub")" = 0 ] || echo "  POST errors: $(field errors <<<"$sub"), e.g. $(field first_errors <<<"$sub")" >&2
done_json=$(http wait "$url" noop "$execs" 600)
hwm=$(vm "$server_pid" VmHWM); rss=$(vm "$server_pid" VmRSS)
stop_server
secs=$(python3 -c 'import json,sys; s,d=json.loads(sys.argv[1]),json.loads(sys.argv[2]); print("%.2f" % (d["last_finished_ms"]/1000 - s["t0"]))' "$sub" "$done_json")
result "executions finished per second" "$(awk -v n="$(field terminal <<<"$done_json")" -v s="$secs" 'BEGIN { printf "%.1f /s", n / s }')" \
  "$(field terminal <<<"$done_json")/$execs terminal in $secs s, the last $(python3 -c 'import json,sys; s,d=json.loads(sys.argv[1]),json.loads(sys.argv[2]); print("%.0f" % (d["last_finished_ms"] - s["t1"] * 1000))' "$sub" "$done_json") ms after the last POST returned; statuses $(field counts <<<"$done_json")"
result "POST /executions while queueing, p50 / p99" "$(printf '%.1f / %.1f ms' "$(field p50 <<<"$sub")" "$(field p99 <<<"$sub")")" \
  "all $execs accepted in $(printf '%.2f' "$(field 't1 - t0' <<<"$sub")") s; errors $(field errors <<<"$sub")"
result "server peak RSS (VmHWM) under that load" "$(mib "$hwm") MiB" "VmRSS after: $(mib "$rss") MiB"
[ "$(field 'len(reasons)' <<<"$done_json")" = 0 ] || echo "  not succeeded, e.g.: $(field reasons <<<"$done_json")" >&2

# ------------------------------------------------------------------ 3. store scale
# A template execution run for real (2 stages of one build action, ~30 events), then
# copied in SQL to numbers 2..$scale with its actions, events and blob references, spread
# one minute apart back in time; last_number is set so new executions follow on.
mkdir -p "$work/bigrepo/.slipway"
cat >"$work/bigrepo/.slipway/pipeline.yml" <<'YML'
name: big
stages:
  - name: build
    actions:
      - { name: test, type: build, buildspec: buildspec.yml }
  - name: package
    actions:
      - { name: package, type: build, buildspec: buildspec.yml }
YML
printf 'version: 0.2\nphases:\n  build:\n    commands:\n      - echo compiling\n' >"$work/bigrepo/buildspec.yml"
git_init "$work/bigrepo"

# seed-sql N TEMPLATE_ID PROJECT_ID NUMBERS-FROM-CLAUSE: the INSERTs, for either database
seed_sql() {
  local n=$1 tid=$2 pid=$3 numbers=$4 back="($1 - e.number) * 60000"
  cat <<SQL
INSERT INTO executions (project_id, number, pipeline, revision, source_ref, "trigger", variables,
    status, reason, created_ms, started_ms, finished_ms, rerun_of, last_seq)
  SELECT t.project_id, g.x, t.pipeline, t.revision, t.source_ref, t."trigger", t.variables,
    t.status, t.reason, t.created_ms - ($n - g.x) * 60000, t.started_ms - ($n - g.x) * 60000,
    t.finished_ms - ($n - g.x) * 60000, NULL, t.last_seq
  FROM executions t, $numbers WHERE t.id = $tid ORDER BY g.x;
INSERT INTO events (execution_id, seq, time_ms, type, body)
  SELECT e.id, v.seq, v.time_ms - $back, v.type,
    replace(v.body, '"execution":"big#1"', '"execution":"big#' || e.number || '"')
  FROM executions e JOIN events v ON v.execution_id = $tid
  WHERE e.project_id = $pid AND e.id <> $tid ORDER BY e.id, v.seq;
INSERT INTO actions (execution_id, stage, action, kind, status, attempt, executor, started_ms,
    finished_ms, reason, log_digest, outputs, artifacts, reports)
  SELECT e.id, a.stage, a.action, a.kind, a.status, a.attempt, a.executor, a.started_ms - $back,
    a.finished_ms - $back, a.reason, a.log_digest, a.outputs, a.artifacts, a.reports
  FROM executions e JOIN actions a ON a.execution_id = $tid
  WHERE e.project_id = $pid AND e.id <> $tid ORDER BY e.id, a.id;
INSERT INTO blob_refs (execution_id, digest)
  SELECT e.id, b.digest FROM executions e JOIN blob_refs b ON b.execution_id = $tid
  WHERE e.project_id = $pid AND e.id <> $tid;
UPDATE projects SET last_number = $n WHERE id = $pid;
SQL
}

# scale-bench NAME DATA-DIR SQL-RUNNER [server flags...]: template, seed, measure
scale_bench() {
  local name=$1 data=$2 runsql=$3; shift 3
  start_server "scale-$name" "$data" "$@"
  http post "$url" /api/v1/projects "{\"name\": \"big\", \"git\": \"$work/bigrepo\"}" >/dev/null
  http post "$url" /api/v1/projects/big/executions '{}' >/dev/null
  http wait "$url" big 1 120 >"$work/template-$name.json"
  [ "$(field terminal <<<"$(cat "$work/template-$name.json")")" = 1 ] || die "$name: the template execution did not finish"
  stop_server
  local tid pid nev nact t0 t1
  tid=$($runsql "SELECT e.id FROM executions e JOIN projects p ON p.id = e.project_id WHERE p.name = 'big' AND e.number = 1")
  pid=$($runsql "SELECT id FROM projects WHERE name = 'big'")
  nev=$($runsql "SELECT COUNT(*) FROM events WHERE execution_id = $tid")
  nact=$($runsql "SELECT COUNT(*) FROM actions WHERE execution_id = $tid")
  t0=${EPOCHREALTIME/./}
  "seed_$name" "$scale" "$tid" "$pid"
  t1=${EPOCHREALTIME/./}
  [ "$($runsql "SELECT COUNT(*) FROM executions WHERE project_id = $pid")" = "$scale" ] || die "$name: seeding did not make $scale executions"
  echo "  seeded $scale executions ($nact actions and $nev events each, $($runsql "SELECT COUNT(*) FROM events") events) in $(( (t1 - t0) / 1000000 )) s"
  start_server "scale-$name-2" "$data" "$@"
  result "$name: server start on $scale executions" "$server_start_ms ms" "to 'listening on'"
  measure_gets "$name: list ?limit=50" "/api/v1/projects/big/executions?limit=50" 1
  measure_gets "$name: list ?limit=50&before=random" "/api/v1/projects/big/executions?limit=50&before={N}" 2
  measure_gets "$name: show random N" "/api/v1/projects/big/executions/{N}" 3
  stop_server
}
measure_gets() { # label, path ({N}: a random number), seed
  local j
  j=$(http gets "$url" "$2" "$gets" "$scale" "$3")
  result "$1, p50 / p99" "$(printf '%.2f / %.2f ms' "$(field p50 <<<"$j")" "$(field p99 <<<"$j")")" \
    "max $(printf '%.1f' "$(field max <<<"$j")") ms, $(field bytes <<<"$j") B each, errors $(field errors <<<"$j")"
  [ "$(field errors <<<"$j")" = 0 ] || echo "  $1: errors, e.g. $(field first_errors <<<"$j")" >&2
}

echo "== 3. store scale: $scale executions, $gets sequential GETs each"
echo "  -- SQLite"
sqlite_db=$work/data-scale-sqlite/slipway.db
sqlite_q() { sqlite3 "$sqlite_db" "$1"; }
seed_sqlite() {
  { echo ".timeout 5000"; echo "BEGIN;"
    seed_sql "$1" "$2" "$3" "(WITH RECURSIVE s(x) AS (SELECT 2 UNION ALL SELECT x + 1 FROM s WHERE x < $1) SELECT x FROM s) g"
    echo "COMMIT;"; } | sqlite3 -bail "$sqlite_db"
}
scale_bench sqlite "$work/data-scale-sqlite" sqlite_q

echo "  -- PostgreSQL"
pg_ok=1
if [ ! -s "$state/pg.url" ]; then
  echo "  no $state/pg.url: starting a cluster with scripts/provision.sh"
  prov_rc=0
  prov=$(SLIPWAY_CI_STATE=$state bash scripts/provision.sh 2>&1) || prov_rc=$?
  [ -z "$prov" ] || echo "  ${prov//$'\n'/$'\n'  }"
  # Stopped on exit: exactly what this call started (even when it failed later on).
  if grep -q '^provision: started PostgreSQL' <<<"$prov"; then pg_stop+=(--stop-postgres); fi
  if grep -q '^provision: started dockerd' <<<"$prov"; then pg_stop+=(--stop-docker); fi
  [ $prov_rc = 0 ] || { echo "  scripts/provision.sh failed (exit $prov_rc)" >&2; pg_ok=0; }
fi
if [ $pg_ok = 1 ] && [ -s "$state/pg.url" ] && command -v psql >/dev/null; then
  pg_admin=$(cat "$state/pg.url")
  if psql -X -q "$pg_admin" -c 'SELECT 1' >/dev/null 2>&1; then
    pg_db=slipway_bench_$$
    psql -X -q "$pg_admin" -c "CREATE DATABASE $pg_db" >/dev/null
    pg_url=${pg_admin%/*}/$pg_db
    pg_q() { psql -X -qAt "$pg_url" -c "$1"; }
    seed_postgres() {
      { echo "\\set ON_ERROR_STOP on"; echo "BEGIN;"
        seed_sql "$1" "$2" "$3" "generate_series(2::bigint, $1::bigint) AS g(x)"
        echo "COMMIT;"
        # What autovacuum would do within a minute of such an insert.
        echo "ANALYZE;"; } | psql -X -q "$pg_url" >/dev/null
    }
    scale_bench postgres "$work/data-scale-postgres" pg_q --database "$pg_url"
  else
    echo "  skipped: PostgreSQL at $pg_admin does not answer (stale $state/pg.url?)"
  fi
else
  echo "  skipped: no PostgreSQL (scripts/provision.sh makes one)"
fi

# ------------------------------------------------------------------ 4. idle RSS
echo "== 4. idle RSS: an empty data directory, 5 s after listening"
start_server idle "$work/data-idle"
sleep 5
rss=$(vm "$server_pid" VmRSS); hwm=$(vm "$server_pid" VmHWM)
stop_server
result "server idle RSS (VmRSS)" "$(mib "$rss") MiB" "goal < 40 MiB (Woodpecker's server documents 200 MB); VmHWM $(mib "$hwm") MiB"

echo "== summary ($profile binary)"
awk -F'\t' '{ printf "  %-50s %16s   %s\n", $1, $2, $3 }' "$results"
