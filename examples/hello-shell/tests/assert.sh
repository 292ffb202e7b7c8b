# assert.sh: assertions for tests/run.sh. A failed assertion prints why and
# shellcheck shell=sh
# returns 1, which ends the test (tests run under set -e).

# assert_eq EXPECTED ACTUAL [WHAT]
assert_eq() {
    if [ "$1" != "$2" ]; then
        printf 'assertion failed%s: expected "%s" but got "%s"\n' "${3:+ ($3)}" "$1" "$2"
        return 1
    fi
}

# skip REASON: marks the current test skipped.
skip() {
    printf 'skipped: %s\n' "$*"
    exit 77
}
