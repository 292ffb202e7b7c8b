#!/bin/sh
# shellcheck disable=SC1091 # sources files relative to the project root
# run.sh: runs every test_* function in tests/test_*.sh, each in its own
# subshell from the project root, and writes a JUnit XML report.
# POSIX sh only (busybox ash, dash, bash --posix).
#
# Usage: sh tests/run.sh [REPORT]   (default REPORT: reports/junit.xml)
# Exits 1 when a test failed, 0 otherwise (skipped tests are not failures).

root=$(cd "$(dirname "$0")/.." && pwd) || exit 2
cd "$root" || exit 2
report=${1:-reports/junit.xml}
mkdir -p "$(dirname "$report")" || exit 2

work=$(mktemp -d "${TMPDIR:-/tmp}/hello-tests.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
: >"$work/cases.xml"

# XML-escapes stdin; drops control characters XML 1.0 cannot hold.
xml_escape() {
    tr -d '\000-\010\013\014\016-\037' |
        sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'
}

# Milliseconds since the epoch; whole seconds where date lacks %N (busybox).
now_ms() {
    t=$(date +%s%N)
    case "$t" in
        *[!0-9]*) echo $(($(date +%s) * 1000)) ;;
        *) echo $((t / 1000000)) ;;
    esac
}

# Milliseconds since $1 (from now_ms) as JUnit seconds, e.g. 0.042.
seconds_since() {
    ms=$(($(now_ms) - $1))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

tests=0 failures=0 skipped=0
suite_start=$(now_ms)
for file in tests/test_*.sh; do
    [ -f "$file" ] || continue
    class=$(basename "$file" .sh)
    class=${class#test_}
    # Test names are single words, so splitting on whitespace is right.
    # shellcheck disable=SC2013
    for name in $(sed -n 's/^\(test_[A-Za-z0-9_]*\)[[:space:]]*()[[:space:]]*{.*$/\1/p' "$file"); do
        tests=$((tests + 1))
        start=$(now_ms)
        (
            set -e
            . ./lib/greet.sh
            . ./tests/assert.sh
            # shellcheck source=/dev/null
            . "./$file"
            "$name"
        ) >"$work/out" 2>&1
        status=$?
        elapsed=$(seconds_since "$start")
        printf '    <testcase classname="%s" name="%s" time="%s"' "$class" "$name" "$elapsed" >>"$work/cases.xml"
        if [ "$status" -eq 0 ]; then
            echo "PASS $class.$name"
            echo '/>' >>"$work/cases.xml"
        elif [ "$status" -eq 77 ]; then
            skipped=$((skipped + 1))
            echo "SKIP $class.$name: $(sed -n 's/^skipped: //p' "$work/out" | head -n 1)"
            printf '>\n      <skipped message="%s"/>\n    </testcase>\n' \
                "$(sed -n 's/^skipped: //p' "$work/out" | head -n 1 | xml_escape)" >>"$work/cases.xml"
        else
            failures=$((failures + 1))
            echo "FAIL $class.$name (exit $status)"
            sed 's/^/    /' "$work/out"
            message=$(grep -m 1 . "$work/out" || echo "exit status $status")
            {
                printf '>\n      <failure message="%s" type="exit-%s">' \
                    "$(printf '%s' "$message" | xml_escape)" "$status"
                xml_escape <"$work/out"
                printf '</failure>\n    </testcase>\n'
            } >>"$work/cases.xml"
        fi
    done
done
suite_time=$(seconds_since "$suite_start")

{
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    printf '<testsuites name="hello-shell" tests="%s" failures="%s" errors="0" skipped="%s" time="%s">\n' \
        "$tests" "$failures" "$skipped" "$suite_time"
    printf '  <testsuite name="hello-shell" tests="%s" failures="%s" errors="0" skipped="%s" time="%s" timestamp="%s" hostname="%s">\n' \
        "$tests" "$failures" "$skipped" "$suite_time" \
        "$(date -u +%Y-%m-%dT%H:%M:%S)" "$(uname -n | xml_escape)"
    cat "$work/cases.xml"
    echo '  </testsuite>'
    echo '</testsuites>'
} >"$report"

echo "$tests tests, $failures failed, $skipped skipped; report: $report"
[ "$failures" -eq 0 ]
