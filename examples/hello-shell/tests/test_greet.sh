# Tests of lib/greet.sh. tests/run.sh runs every function named test_* in
# shellcheck shell=sh
# its own subshell, with lib/greet.sh and tests/assert.sh sourced.

test_greet_names_the_person() {
    assert_eq "Hello, Ada!" "$(greet Ada)"
}

test_greet_defaults_to_world() {
    assert_eq "Hello, world!" "$(greet)"
}

test_shout_upper_cases() {
    assert_eq "HELLO, SLIPWAY" "$(shout hello, Slipway)"
}

test_join_names_uses_commas_and_and() {
    assert_eq "" "$(join_names)" "no names"
    assert_eq "a" "$(join_names a)" "one name"
    assert_eq "a and b" "$(join_names a b)" "two names"
    assert_eq "a, b and c" "$(join_names a b c)" "three names"
}

test_greet_all_greets_everyone() {
    assert_eq "Hello, Ada, Grace and Linus!" "$(greet_all Ada Grace Linus)"
}

test_library_works_under_bash() {
    command -v bash >/dev/null 2>&1 || skip "bash is not installed"
    assert_eq "Hello, bash!" "$(bash -c '. lib/greet.sh && greet bash')"
}

# Set HELLO_SHELL_FAIL=1 to see a failing build (a <failure> in the report).
test_fails_on_request() {
    assert_eq "" "${HELLO_SHELL_FAIL:-}" "HELLO_SHELL_FAIL is set"
}
