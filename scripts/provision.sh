#!/usr/bin/env bash
# Makes this machine ready for Slipway's test suite, idempotently:
#   - git, the docker CLI and engine (Debian docker.io), a static /bin/busybox;
#   - a Docker engine that answers (starts dockerd itself when none does);
#   - the base image slipway-busybox:latest (busybox rootfs, users root and builder);
#   - PostgreSQL (Debian's postgresql package) and a throwaway cluster of our own in
#     $SLIPWAY_CI_STATE/pg, listening on 127.0.0.1 on a free port, user `slipway` (superuser,
#     trust auth); its URL is written to $SLIPWAY_CI_STATE/pg.url for the tests
#     (SLIPWAY_TEST_POSTGRES_URL). The cluster runs with fsync off: it holds test data only.
#     (Installing the package also gives Debian's own `main` cluster, which we neither use
#     nor touch.)
#
# Usage:
#   scripts/provision.sh                   provision; quiet when nothing had to change
#   scripts/provision.sh --stop            stop what this script started: the dockerd (by its
#                                          PID) and the PostgreSQL cluster, if running
#   scripts/provision.sh --stop-docker     stop only the dockerd this script started
#   scripts/provision.sh --stop-postgres   stop only the PostgreSQL cluster this script started
#
# Environment (all optional):
#   SLIPWAY_CI_STATE       state dir for the dockerd log and pidfile and the PostgreSQL cluster
#                          (default /tmp/slipway-ci)
#   DOCKER_HOST            unix:///path: the engine to check, and the socket a started dockerd
#                          listens on (default: the docker CLI's default)
#   SLIPWAY_DOCKERD_ARGS   extra dockerd arguments, split on whitespace (e.g. a scratch
#                          --data-root/--exec-root/--pidfile to run beside another engine;
#                          there, never pass --bridge none: dockerd then DELETES docker0,
#                          breaking the other engine's default network)
#   SLIPWAY_DOCKERD_TIMEOUT  seconds to wait for a started dockerd to answer (default 60)
#
# Prints one line per thing it did, and nothing when nothing changed. On failure it
# says what failed on stderr and exits non-zero.
set -euo pipefail

readonly BASE_IMAGE="slipway-busybox:latest"
# Bump when the rootfs below changes: images with another (or no) label are rebuilt.
readonly BASE_VERSION="2"
readonly BASE_LABEL="io.slipway.base-version"

STATE_DIR="${SLIPWAY_CI_STATE:-/tmp/slipway-ci}"
PIDFILE="$STATE_DIR/dockerd.pid"
DOCKERD_LOG="$STATE_DIR/dockerd.log"
PG_DIR="$STATE_DIR/pg"
PG_LOG="$STATE_DIR/pg.log"
PG_URL_FILE="$STATE_DIR/pg.url"

say() { printf 'provision: %s\n' "$*"; }
die() { printf 'provision: ERROR: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, else through passwordless sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "need root (or passwordless sudo) to run: $*"
    fi
}

# ---------------------------------------------------------------- packages

# True when /bin/busybox exists and has no dynamic loader (it is copied into a FROM-scratch image).
busybox_is_static() {
    [ -x /bin/busybox ] || return 1
    if command -v ldd >/dev/null 2>&1; then
        if ldd /bin/busybox >/dev/null 2>&1; then return 1; fi
    else
        dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'
    fi
}

dockerd_path() {
    command -v dockerd 2>/dev/null && return 0
    local p
    for p in /usr/sbin/dockerd /usr/bin/dockerd; do
        [ -x "$p" ] && { echo "$p"; return 0; }
    done
    return 1
}

ensure_packages() {
    local missing=()
    command -v git >/dev/null 2>&1 || missing+=(git)
    command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
    if ! command -v docker >/dev/null 2>&1 || ! dockerd_path >/dev/null; then
        missing+=(docker.io)
    fi
    busybox_is_static || missing+=(busybox-static)
    pg_bindir >/dev/null || missing+=(postgresql)
    [ "${#missing[@]}" -eq 0 ] && return 0

    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    mkdir -p "$STATE_DIR"
    local log="$STATE_DIR/apt.log"
    : >"$log"
    if ! as_root apt-get update >>"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "apt-get update failed (full log: $log)"
    fi
    if [[ " ${missing[*]} " == *" postgresql "* ]] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        # Debian's package would create and start a cluster of its own on port 5432, a server
        # this script did not ask for and would not stop: tell it not to.
        as_root mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    if ! as_root env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 \
        apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confold \
        "${missing[@]}" </dev/null >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "apt-get install ${missing[*]} failed (full log: $log)"
    fi
    hash -r
    command -v git >/dev/null 2>&1 || die "git still missing after installing it"
    command -v skopeo >/dev/null 2>&1 || die "skopeo still missing after installing it"
    command -v docker >/dev/null 2>&1 || die "docker CLI still missing after installing docker.io"
    dockerd_path >/dev/null || die "dockerd still missing after installing docker.io"
    busybox_is_static || die "/bin/busybox is still not a static binary after installing busybox-static"
    pg_bindir >/dev/null || die "initdb still missing after installing postgresql"
    say "installed ${missing[*]}"
}

# ---------------------------------------------------------------- engine

engine_answers() { docker info >/dev/null 2>&1; }

# Prints the PID recorded in our pidfile if that process is still a live dockerd.
our_dockerd_pid() {
    [ -f "$PIDFILE" ] || return 1
    local pid
    pid="$(head -n 1 "$PIDFILE")"
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    # The comm check guards against a recycled PID now owned by something else.
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "dockerd" ] || return 1
    echo "$pid"
}

ensure_engine() {
    engine_answers && return 0

    local dockerd host_args=() extra_args=()
    dockerd="$(dockerd_path)" || die "no dockerd binary found"
    [ "$(id -u)" -eq 0 ] || die "no Docker engine answers and dockerd must be started as root"
    if [ -n "${DOCKER_HOST:-}" ]; then
        case "$DOCKER_HOST" in
            unix://*) host_args=(-H "$DOCKER_HOST") ;;
            *) die "no Docker engine answers at DOCKER_HOST=$DOCKER_HOST (only unix:// hosts are started here)" ;;
        esac
    fi
    # shellcheck disable=SC2206 # word splitting of the extra arguments is intended
    [ -n "${SLIPWAY_DOCKERD_ARGS:-}" ] && extra_args=(${SLIPWAY_DOCKERD_ARGS})

    if our_dockerd_pid >/dev/null; then
        # Ours, alive, yet not answering: perhaps still starting; wait for it below.
        :
    else
        mkdir -p "$STATE_DIR"
        : >"$DOCKERD_LOG"
        "$dockerd" "${host_args[@]}" "${extra_args[@]}" </dev/null >>"$DOCKERD_LOG" 2>&1 &
        echo "$!" >"$PIDFILE"
    fi

    local pid waited=0 timeout="${SLIPWAY_DOCKERD_TIMEOUT:-60}"
    pid="$(head -n 1 "$PIDFILE")"
    while ! engine_answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            tail -n 30 "$DOCKERD_LOG" >&2
            die "dockerd (pid $pid) exited before answering; log: $DOCKERD_LOG"
        fi
        if [ "$waited" -ge $((timeout * 2)) ]; then
            tail -n 30 "$DOCKERD_LOG" >&2
            die "dockerd (pid $pid) did not answer within ${timeout}s; it is left running, stop it with: $0 --stop; log: $DOCKERD_LOG"
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    say "started dockerd (pid $pid, log $DOCKERD_LOG)"
}

stop_engine() {
    local pid
    if ! pid="$(our_dockerd_pid)"; then
        rm -f "$PIDFILE"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    # dockerd gives running containers up to 15 s to stop before it exits.
    local waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 60 ]; do
        sleep 0.5
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        say "killed dockerd (pid $pid) after 30 s"
    else
        say "stopped dockerd (pid $pid)"
    fi
    rm -f "$PIDFILE"
}

# ---------------------------------------------------------------- base image

base_image_version() {
    docker image inspect --format "{{ index .Config.Labels \"$BASE_LABEL\" }}" "$BASE_IMAGE" 2>/dev/null
}

# Writes the base image's root filesystem into directory $1.
make_rootfs() {
    local root="$1" applet
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,home/builder,tmp,var/tmp,proc,sys,dev}
    cp /bin/busybox "$root/bin/busybox"
    chmod 0755 "$root/bin/busybox"
    # --list-full gives each applet's usual path (bin/sh, usr/bin/env, ...), so
    # shebangs such as #!/usr/bin/env sh work too.
    while IFS= read -r applet; do
        case "$applet" in '' | bin/busybox | linuxrc) continue ;; esac
        [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
    done < <(/bin/busybox --list-full)
    [ -L "$root/bin/sh" ] || ln -s /bin/busybox "$root/bin/sh"
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 0700 "$root/root"

    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
builder:x:1000:1000:builder:/home/builder:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
builder:x:1000:
nogroup:x:65534:
EOF
    cat >"$root/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
builder:!:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
    chmod 0640 "$root/etc/shadow"
    printf 'slipway-busybox base image, version %s\n' "$BASE_VERSION" >"$root/etc/slipway-base"
    if [ "$(id -u)" -eq 0 ]; then
        chown 1000:1000 "$root/home/builder"
    else
        # Without root the tarball cannot hold uid 1000; let builder write anyway.
        chmod 0777 "$root/home/builder"
    fi
}

ensure_base_image() {
    local have
    have="$(base_image_version || true)"
    [ "$have" = "$BASE_VERSION" ] && return 0
    local replacing=""
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        replacing=", replacing an image with ${have:+version $have}${have:-no version label}"
    fi

    local work
    work="$(mktemp -d "${TMPDIR:-/tmp}/slipway-rootfs.XXXXXX")"
    CLEANUP_DIR="$work"
    make_rootfs "$work/rootfs"
    local tar_args=(--numeric-owner -C "$work/rootfs" -cf - .)
    [ "$(id -u)" -eq 0 ] || tar_args=(--owner=0 --group=0 "${tar_args[@]}")
    if ! tar "${tar_args[@]}" | docker import \
        --change 'CMD ["/bin/sh"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "LABEL $BASE_LABEL=$BASE_VERSION" \
        - "$BASE_IMAGE" >"$work/import.log" 2>&1; then
        cat "$work/import.log" >&2
        die "docker import of $BASE_IMAGE failed"
    fi
    [ "$(base_image_version || true)" = "$BASE_VERSION" ] \
        || die "$BASE_IMAGE was imported but lacks label $BASE_LABEL=$BASE_VERSION"
    say "built $BASE_IMAGE ($BASE_LABEL=$BASE_VERSION${replacing})"
}

# ---------------------------------------------------------------- postgresql

# Prints the directory of the newest installed PostgreSQL's server binaries (Debian keeps
# them off PATH, in /usr/lib/postgresql/<major>/bin).
pg_bindir() {
    local initdb="" candidate
    for candidate in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$candidate" ] || continue
        # Keep the newest major version.
        if [ -z "$initdb" ] || [ "$(printf '%s\n%s\n' "$initdb" "$candidate" | sort -V | tail -n 1)" = "$candidate" ]; then
            initdb="$candidate"
        fi
    done
    [ -n "$initdb" ] || initdb="$(command -v initdb 2>/dev/null)" || return 1
    [ -x "$initdb" ] || return 1
    dirname "$initdb"
}

# Runs a PostgreSQL command as the cluster's owner: `postgres` when we are root (the server
# refuses to run as root), else ourselves. From / so that no unreadable cwd gets in the way.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# True when our cluster's postmaster is running.
pg_running() {
    local bin
    bin="$(pg_bindir)" || return 1
    [ -f "$PG_DIR/postmaster.pid" ] || return 1
    as_pg "$bin/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1
}

# Prints the port our running cluster listens on (line 4 of postmaster.pid).
pg_port() {
    sed -n 4p "$PG_DIR/postmaster.pid" 2>/dev/null
}

# Prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
    local port tries=0
    while [ "$tries" -lt 100 ]; do
        port=$((20000 + RANDOM % 40000))
        # A refused connection means the port is free (bash's /dev/tcp needs no extra tool).
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
        tries=$((tries + 1))
    done
    return 1
}

ensure_postgres() {
    local bin
    bin="$(pg_bindir)" || die "no PostgreSQL server binaries found (initdb)"
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        die "running as root, but there is no postgres user to run PostgreSQL as"
    fi
    mkdir -p "$STATE_DIR"

    if pg_running; then
        # Started by an earlier call: only make sure the URL file names it.
        write_pg_url "$(pg_port)"
        return 0
    fi

    # A cluster from another PostgreSQL major version (or a half-made one) is thrown away:
    # it only ever holds test databases.
    local major
    major="$("$bin/postgres" --version | grep -oE '[0-9]+' | head -n 1)"
    if [ -d "$PG_DIR" ] && [ "$(cat "$PG_DIR/PG_VERSION" 2>/dev/null)" != "$major" ]; then
        rm -rf "$PG_DIR"
    fi
    if [ ! -d "$PG_DIR" ]; then
        mkdir -m 0700 "$PG_DIR"
        if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$PG_DIR"; fi
        if ! as_pg "$bin/initdb" -D "$PG_DIR" -U slipway --auth=trust --encoding=UTF8 \
            --locale=C --no-sync --no-instructions >"$STATE_DIR/initdb.log" 2>&1; then
            cat "$STATE_DIR/initdb.log" >&2
            rm -rf "$PG_DIR"
            die "initdb of $PG_DIR failed"
        fi
        say "created a PostgreSQL $major cluster in $PG_DIR"
    fi

    : >"$PG_LOG"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$PG_LOG"; fi
    local port _
    for _ in 1 2 3; do
        port="$(free_port)" || die "found no free TCP port for PostgreSQL"
        # Throwaway test data: no fsync. The socket lives in the cluster's own directory.
        if as_pg "$bin/pg_ctl" -D "$PG_DIR" -l "$PG_LOG" -w -t 60 start -o \
            "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            >/dev/null 2>&1; then
            write_pg_url "$port"
            say "started PostgreSQL (pid $(head -n 1 "$PG_DIR/postmaster.pid"), port $port, log $PG_LOG)"
            return 0
        fi
        # Lost a race for the port, most likely; try another.
        if pg_running; then
            as_pg "$bin/pg_ctl" -D "$PG_DIR" -m fast -w stop >/dev/null 2>&1 || true
        fi
    done
    tail -n 30 "$PG_LOG" >&2
    die "PostgreSQL did not start; log: $PG_LOG"
}

write_pg_url() {
    local url="postgres://slipway@127.0.0.1:$1/postgres"
    [ "$(cat "$PG_URL_FILE" 2>/dev/null)" = "$url" ] || echo "$url" >"$PG_URL_FILE"
}

stop_postgres() {
    local bin pid
    if pg_running; then
        bin="$(pg_bindir)"
        pid="$(head -n 1 "$PG_DIR/postmaster.pid")"
        as_pg "$bin/pg_ctl" -D "$PG_DIR" -m fast -w -t 60 stop >/dev/null \
            || die "could not stop PostgreSQL (pid $pid); log: $PG_LOG"
        say "stopped PostgreSQL (pid $pid)"
    fi
    rm -f "$PG_URL_FILE"
}

# ---------------------------------------------------------------- main

CLEANUP_DIR=""
cleanup() { [ -z "$CLEANUP_DIR" ] || rm -rf "$CLEANUP_DIR"; }
trap cleanup EXIT

main() {
    case "${1:-}" in
        "") ;;
        --stop) stop_engine; stop_postgres; return 0 ;;
        --stop-docker) stop_engine; return 0 ;;
        --stop-postgres) stop_postgres; return 0 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; return 0 ;;
        *) die "unknown argument: $1 (usage: $0 [--stop | --stop-docker | --stop-postgres])" ;;
    esac
    ensure_packages
    ensure_engine
    ensure_base_image
    ensure_postgres
}

main "$@"
