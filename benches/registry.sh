#!/usr/bin/env bash
# The registry benchmark: Slipway's registry (`slipway server`, /v2/) beside Debian's
# `docker-registry` (the CNCF distribution registry), each on its own loopback port over an
# empty data directory, driven by the same client in the same run:
#   a. push and pull of an image of 50 small layers (4 requests in flight, as docker does)
#   b. push and pull of an image with one 1 GiB layer (one streamed PUT, one GET)
#   c. 8 pushes at once (8 images of 4 x 8 MiB layers)
# plus the physical limits: this disk's write speed with fsync (`dd ... conv=fsync`) and
# single-core SHA-256 (`openssl speed -evp sha256`), and the servers' peak RSS (VmHWM) after
# the 1 GiB push. Every figure is printed as a ratio to the peer.
#
# The client is one Python process per image speaking the distribution API over keep-alive
# connections (POST, PUT ?digest= with the file streamed in 1 MiB blocks, manifest PUT; GETs
# read and dropped): layers are pre-made random (incompressible) files, so the
# client neither compresses nor hashes while timed, and is not the bottleneck.
# Usage: benches/registry.sh [--quick]
#   SLIPWAY=target/debug/slipway benches/registry.sh   use this binary instead of building
#                                                      `cargo build --release -p slipway`
# Everything lives in a temporary directory; all traffic is on 127.0.0.1; both servers are
# started here and stopped by their PIDs on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0; [ "${1:-}" = "--quick" ] && quick=1
big_mib=1024; [ $quick = 1 ] && big_mib=256

die() { echo "registry.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || {
  echo "installing $2" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null; } \
    || die "could not install $2"; }; }
need docker-registry docker-registry
need curl curl
need openssl openssl
need python3 python3
need sha256sum coreutils

pids=()
work=""
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
cleanup() {
  set +e
  for p in "${pids[@]}"; do
    if alive "$p"; then
      kill -TERM "$p" 2>/dev/null
      for _ in $(seq 100); do alive "$p" || break; sleep 0.1; done
      alive "$p" && kill -KILL "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null
  done
  [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${SLIPWAY:-}" ]; then
  echo "building the release binary..." >&2
  cargo build --release -q -p slipway
  SLIPWAY=$PWD/target/release/slipway
fi
SLIPWAY=$(readlink -f "$SLIPWAY")
work=$(mktemp -d /tmp/slipway-registry-bench.XXXXXX)
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
vm() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- physical limits
echo "measuring the disk and SHA-256..." >&2
dd_out=$(dd if=/dev/zero of="$work/dd" bs=1M count=1024 conv=fsync 2>&1 | tail -1)
rm -f "$work/dd"
dd_mbs=$(python3 - "$dd_out" <<'EOF'
import re, sys
m = re.search(r"copied, ([0-9.]+) s", sys.argv[1])
print(round(1073741824 / float(m.group(1)) / 1e6))
EOF
)
sha_mbs=$(openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null | awk '/^sha256/ { v=$NF; sub(/k$/, "", v); printf "%d", v * 1000 / 1e6 }')
[ -n "$sha_mbs" ] || sha_mbs=$(openssl speed -evp sha256 2>/dev/null | awk '/^sha256/ { v=$NF; sub(/k$/, "", v); printf "%d", v * 1000 / 1e6 }')

# ---------------------------------------------------------------- content
echo "making layers (${big_mib} MiB big one)..." >&2
mkdir -p "$work/layers"
mk() { head -c "$2" /dev/urandom > "$work/layers/$1"; }
for i in $(seq 1 50); do mk "small$i" $((64 * 1024 + i)); done
mk big $((big_mib * 1024 * 1024))
for j in $(seq 1 8); do for k in 1 2 3 4; do mk "c$j-$k" $((8 * 1024 * 1024)); done; done
echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$work/layers/config"
python3 - "$work/layers" <<'EOF'
import hashlib, json, os, sys
d = sys.argv[1]; out = {}
for n in os.listdir(d):
    h = hashlib.sha256()
    with open(os.path.join(d, n), "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""): h.update(b)
    out[n] = "sha256:" + h.hexdigest()
json.dump(out, open(os.path.join(d, "..", "digests.json"), "w"))
EOF
manifest() { # name... -> writes $work/m-<tag>.json
  local out=$1; shift
  python3 - "$out" "$work/layers" "$@" <<'EOF'
import json, os, sys
out, d, *layers = sys.argv[1:]
dig = json.load(open(os.path.join(d, "..", "digests.json")))
def desc(n, mt):
    return {"mediaType": mt, "size": os.path.getsize(os.path.join(d, n)), "digest": dig[n]}
m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "config": desc("config", "application/vnd.oci.image.config.v1+json"),
     "layers": [desc(n, "application/vnd.oci.image.layer.v1.tar") for n in layers]}
open(out, "w").write(json.dumps(m))
EOF
}
smalls=(); for i in $(seq 1 50); do smalls+=("small$i"); done
manifest "$work/m-small.json" "${smalls[@]}"
manifest "$work/m-big.json" big
for j in $(seq 1 8); do manifest "$work/m-c$j.json" "c$j-1" "c$j-2" "c$j-3" "c$j-4"; done

# ---------------------------------------------------------------- servers
port_s=$(free_port)
mkdir -p "$work/slipway" "$work/repo"
printf '[registry]\npassword = "bench"\n' > "$work/slipway.toml"
"$SLIPWAY" server --data "$work/slipway" --listen "127.0.0.1:$port_s" --config "$work/slipway.toml" \
  >"$work/slipway.log" 2>&1 &
pids+=($!); spid=$!
port_c=$(free_port)
mkdir -p "$work/cncf"
cat > "$work/cncf.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/cncf
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port_c
EOF
docker-registry serve "$work/cncf.yml" >"$work/cncf.log" 2>&1 &
pids+=($!); cpid=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null -u slipway:bench "http://127.0.0.1:$port_s/v2/" \
    && curl -sf -o /dev/null "http://127.0.0.1:$port_c/v2/" && break
  sleep 0.1
done
curl -sf -o /dev/null -u slipway:bench "http://127.0.0.1:$port_s/v2/" || { cat "$work/slipway.log"; die "slipway did not start"; }
curl -sf -o /dev/null "http://127.0.0.1:$port_c/v2/" || { cat "$work/cncf.log"; die "docker-registry did not start"; }
git -C "$work/repo" init -q
SLIPWAY_SERVER="http://127.0.0.1:$port_s" "$SLIPWAY" project create bench --git "$work/repo" >/dev/null

# ---------------------------------------------------------------- the client
# One Python client for both registries: keep-alive connections (one per worker thread),
# files streamed in 1 MiB blocks, bodies read into a reused buffer and dropped.
cat > "$work/client.py" <<'EOF'
import base64, http.client, json, os, sys, threading, time, urllib.parse
from concurrent.futures import ThreadPoolExecutor
port, auth, action, repo, tag, par = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
layers_dir, manifest, names = sys.argv[7], sys.argv[8], sys.argv[9:]
digests = json.load(open(os.path.join(layers_dir, "..", "digests.json")))
H = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
local = threading.local()
def conn():
    c = getattr(local, "c", None)
    if c is None:
        c = local.c = http.client.HTTPConnection("127.0.0.1", int(port), blocksize=1 << 20)
    return c
def call(method, path, body=None, headers=None, sink=False):
    c = conn(); h = dict(H); h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    if sink:
        buf = bytearray(1 << 20); n = 0
        while True:
            k = r.readinto(buf)
            if not k: break
            n += k
        return r, n
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return r, data
def push_blob(n):
    r, _ = call("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    loc = r.getheader("Location"); u = urllib.parse.urlsplit(loc)
    path = u.path + "?" + (u.query + "&" if u.query else "") + "digest=" + digests[n]
    p = os.path.join(layers_dir, n)
    with open(p, "rb") as f:
        call("PUT", path, body=f, headers={"Content-Length": str(os.path.getsize(p)), "Content-Type": "application/octet-stream"})
def pull_blob(d):
    r, n = call("GET", f"/v2/{repo}/blobs/{d}", sink=True)
    if r.status != 200: raise SystemExit(f"GET blob {d}: {r.status}")
with ThreadPoolExecutor(par) as ex:
    if action == "push":
        list(ex.map(push_blob, ["config"] + names))
        call("PUT", f"/v2/{repo}/manifests/{tag}", body=open(manifest, "rb").read(),
             headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    else:
        _, m = call("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        m = json.loads(m)
        list(ex.map(pull_blob, [m["config"]["digest"]] + [l["digest"] for l in m["layers"]]))
EOF
push_image() { # port auth repo tag manifest parallel layers...
  local port=$1 auth=$2 repo=$3 tag=$4 m=$5 par=$6; shift 6
  python3 "$work/client.py" "$port" "$auth" push "$repo" "$tag" "$par" "$work/layers" "$m" "$@"
}
pull_image() { # port auth repo tag parallel
  python3 "$work/client.py" "$1" "$2" pull "$3" "$4" "$5" "$work/layers" -
}

S=$port_s; SA="slipway:bench"
C=$port_c; CA=""
declare -A T
timed() { # key command... (after a sync, so neither server pays for the other's writeback)
  local key=$1; shift
  sync
  local t0; t0=$(now)
  "$@"
  T[$key]=$(ms "$t0" "$(now)")
}
eight() { # port auth
  local j ps=()
  for j in $(seq 1 8); do
    push_image "$1" "$2" "bench/c$j" v1 "$work/m-c$j.json" 4 "c$j-1" "c$j-2" "c$j-3" "c$j-4" & ps+=($!)
  done
  for j in "${ps[@]}"; do wait "$j" || return 1; done
}

for who in ${ORDER:-s c}; do
  if [ $who = s ]; then base=$S auth=$SA; else base=$C auth=$CA; fi  # port, user:password
  echo "running against $([ $who = s ] && echo slipway || echo docker-registry)..." >&2
  sync
  timed "$who.big.push" push_image "$base" "$auth" bench/big v1 "$work/m-big.json" 1 big
  # Peak RSS so far: the 1 GiB push is the first thing each server does.
  if [ $who = s ]; then s_hwm=$(vm "$spid" VmHWM); else c_hwm=$(vm "$cpid" VmHWM); fi
  timed "$who.big.pull" pull_image "$base" "$auth" bench/big v1 1
  timed "$who.small.push" push_image "$base" "$auth" bench/small v1 "$work/m-small.json" 4 "${smalls[@]}"
  timed "$who.small.pull" pull_image "$base" "$auth" bench/small v1 4
  timed "$who.eight.push" eight "$base" "$auth"
  if [ $who = s ]; then s_hwm_all=$(vm "$spid" VmHWM); else c_hwm_all=$(vm "$cpid" VmHWM); fi
done

# ---------------------------------------------------------------- report
python3 - "$big_mib" "$dd_mbs" "$sha_mbs" "$s_hwm" "$c_hwm" \
  "${T[s.big.push]}" "${T[c.big.push]}" "${T[s.big.pull]}" "${T[c.big.pull]}" \
  "${T[s.small.push]}" "${T[c.small.push]}" "${T[s.small.pull]}" "${T[c.small.pull]}" \
  "${T[s.eight.push]}" "${T[c.eight.push]}" "$s_hwm_all" "$c_hwm_all" <<'EOF'
import sys
a = sys.argv[1:]
big, dd, sha, s_hwm, c_hwm = int(a[0]), int(a[1]), int(a[2]), int(a[3]), int(a[4])
sbp, cbp, sbl, cbl, ssp, csp, ssl, csl, sep, cep, s_all, c_all = map(int, a[5:17])
mb = big * 1048576 / 1e6
rate = lambda ms: mb / (ms / 1000) if ms else float("inf")
limit = min(dd, sha)
goal_big = min(1.2 * rate(cbp), 0.9 * limit)
rows = []
def row(name, s, c, goal, ok):
    rows.append((name, s, c, goal, "ok" if ok else "MISSED"))
row(f"(b) push {big} MiB layer", f"{sbp} ms ({rate(sbp):.0f} MB/s)", f"{cbp} ms ({rate(cbp):.0f} MB/s)",
    f"speed x{rate(sbp)/rate(cbp):.2f}; goal >= {goal_big:.0f} MB/s (min of 1.2x peer, 90% of min(disk {dd}, sha256 {sha}))",
    rate(sbp) >= goal_big)
row(f"(b) pull {big} MiB layer", f"{sbl} ms", f"{cbl} ms", f"speed x{cbl/max(sbl,1):.2f}; goal >= x1.0", sbl <= cbl * 1.05)
row("(a) push 50 small layers", f"{ssp} ms", f"{csp} ms", f"speed x{csp/max(ssp,1):.2f}; goal >= x1.5", csp >= 1.5 * ssp)
row("(a) pull 50 small layers", f"{ssl} ms", f"{csl} ms", f"speed x{csl/max(ssl,1):.2f}; goal >= x1.5", csl >= 1.5 * ssl)
row("(c) 8 pushes at once (8 x 32 MiB)", f"{sep} ms", f"{cep} ms", f"speed x{cep/max(sep,1):.2f}; goal >= x1.5", cep >= 1.5 * sep)
row(f"peak RSS (VmHWM) after the {big} MiB push", f"{s_hwm/1024:.1f} MiB", f"{c_hwm/1024:.1f} MiB", f"x{s_hwm/max(c_hwm,1):.2f} of peer; goal < 100 MiB", s_hwm < 100 * 1024)
row("peak RSS (VmHWM) after everything", f"{s_all/1024:.1f} MiB", f"{c_all/1024:.1f} MiB", f"x{s_all/max(c_all,1):.2f} of peer", True)
print(f"\nphysical limits: disk write with fsync {dd} MB/s, sha256 single core {sha} MB/s; "
      f"the 1 GiB push ran at {rate(sbp)/limit:.2f} of the lower\n")
w = [max(len(r[i]) for r in rows + [("what", "slipway", "docker-registry", "ratio", "")]) for i in range(5)]
hdr = ("what", "slipway", "docker-registry", "ratio (slipway vs peer) and goal", "")
for r in [hdr] + rows:
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
EOF
