# greet.sh: a tiny POSIX sh library, the thing hello-shell builds and tests.
# shellcheck shell=sh
# Source it (". lib/greet.sh"); every function writes one line to stdout.

# greet [NAME]: "Hello, NAME!" (NAME defaults to "world").
greet() {
    printf 'Hello, %s!\n' "${1:-world}"
}

# shout TEXT...: TEXT in upper case.
shout() {
    printf '%s\n' "$*" | tr '[:lower:]' '[:upper:]'
}

# join_names NAME...: "a", "a and b", "a, b and c"; nothing for no names.
join_names() {
    [ "$#" -eq 0 ] && return 0
    out=$1
    shift
    while [ "$#" -gt 1 ]; do
        out="$out, $1"
        shift
    done
    [ "$#" -eq 1 ] && out="$out and $1"
    printf '%s\n' "$out"
}

# greet_all NAME...: greets everyone on one line.
greet_all() {
    greet "$(join_names "$@")"
}
