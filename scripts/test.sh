#!/usr/bin/env bash
# Runs Slipway's whole test suite, as the README says and CI does (.ci/run):
# provisions the machine (scripts/provision.sh: git, Docker engine, base image, a
# PostgreSQL cluster), runs every test in the workspace with cargo-nextest, then stops the
# dockerd and PostgreSQL that this run's provisioning started. Docker and PostgreSQL tests
# are never skipped here.
#
# Usage: scripts/test.sh [extra nextest/cargo-test arguments, e.g. -p slipway-spec]
# With CI=true it uses the nextest profile `ci` (.config/nextest.toml).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# This suite must run the Docker and PostgreSQL tests; an inherited opt-out would hide them.
unset SLIPWAY_SKIP_DOCKER_TESTS SLIPWAY_SKIP_POSTGRES_TESTS

# Stop only what provisioning started during THIS run (a dockerd an earlier
# `scripts/provision.sh` left running stays up); keep the tests' status.
state="${SLIPWAY_CI_STATE:-/tmp/slipway-ci}"
pidfile="$state/dockerd.pid"
had_dockerd=0
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    had_dockerd=1
fi
pg_pidfile="$state/pg/postmaster.pid"
had_postgres=0
if [ -f "$pg_pidfile" ] && kill -0 "$(head -n 1 "$pg_pidfile")" 2>/dev/null; then
    had_postgres=1
fi
stop_provisioned() {
    local status=$?
    if [ "$had_dockerd" = 0 ]; then
        scripts/provision.sh --stop-docker || echo "test.sh: warning: stopping the provisioned dockerd failed" >&2
    fi
    if [ "$had_postgres" = 0 ]; then
        scripts/provision.sh --stop-postgres || echo "test.sh: warning: stopping the provisioned PostgreSQL failed" >&2
    fi
    exit "$status"
}
trap stop_provisioned EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/provision.sh
SLIPWAY_TEST_POSTGRES_URL="$(cat "$state/pg.url")"
export SLIPWAY_TEST_POSTGRES_URL

if [ "${CI:-}" = "true" ]; then
    # Incremental artifacts only cost time and disk in a fresh clone.
    export CARGO_INCREMENTAL=0
    export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
fi

if cargo nextest --version >/dev/null 2>&1; then
    profile=()
    if [ "${CI:-}" = "true" ] && [ -f .config/nextest.toml ]; then
        profile=(--profile ci)
    fi
    cargo nextest run --workspace --no-fail-fast "${profile[@]}" "$@"
else
    echo "test.sh: cargo-nextest not found; falling back to cargo test" >&2
    cargo test --workspace --no-fail-fast "$@"
fi
