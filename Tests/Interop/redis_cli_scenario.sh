#!/usr/bin/env bash
# Drives a running Coffer with redis-cli. Usage: redis_cli_scenario.sh SOCKET ADMIN_SECRET
# Prints one line per check and a closing 'N passed, N failed' line; exits non-zero on failure.
set -uo pipefail
SOCK="$1" ADMIN="$2"
passed=0 failed=0
check() { # name expected actual
    if [ "$2" == "$3" ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); printf 'FAIL %s\n  expected: %q\n  actual:   %q\n' "$1" "$2" "$3"; fi
}
cli() { redis-cli --no-auth-warning -s "$SOCK" "$@"; }

check "PING before AUTH" "PONG" "$(cli PING)"
check "NOAUTH before AUTH" "NOAUTH Authentication required." "$(cli GET a name)"
SUPPORT=$(cli --user admin --pass "$ADMIN" CLIENT.ADD cli-support support)
check "CLIENT.ADD prints a 64-hex secret" "64" "${#SUPPORT}"
S=(--user cli-support --pass "$SUPPORT")
check "PUT" "2" "$(cli "${S[@]}" PUT cli:1 name "Jane Q. Doe" phone "+44 20 7946 0958")"
check "GET" $'Jane Q. Doe\n+442079460958' "$(cli "${S[@]}" GET cli:1 name phone)"
check "inline-quoted value" "1" "$(printf 'AUTH cli-support %s\nPUT cli:2 name "Ann \\"Nan\\" Lee"\n' "$SUPPORT" | cli | tail -n 1)"
check "quoted value read back" 'Ann "Nan" Lee' "$(cli "${S[@]}" GET cli:2 name)"

# Binary values: -x takes the last argument from stdin, byte for byte.
BIN="$(mktemp)"
head -c 3000 /dev/urandom > "$BIN"
check "binary PUT via -x" "1" "$(cli "${S[@]}" -x PUT cli:bin postal_address < "$BIN")"
check "binary GET is byte-identical" "$(sha256sum < "$BIN")" "$(cli "${S[@]}" --raw GET cli:bin postal_address | head -c 3000 | sha256sum)"

check "error reply keeps the connection" $'ERR unknown command \'nope\', with args beginning with: \nPONG' "$(printf 'AUTH cli-support %s\nNOPE\nPING\n' "$SUPPORT" | cli 2>&1 | grep -v '^$' | tail -n 2)"
check "NOPERM names the field" "NOPERM role 'support' may not write field 'card.pan'" "$(cli "${S[@]}" PUT cli:1 card.pan 4111111111111111)"
check "INVALID names the field" "INVALID phone: must be in E.164 form: + then 8 to 15 digits" "$(cli "${S[@]}" PUT cli:1 phone 12345)"

# Pipelining: 1000 commands in one write with --pipe (which ends with an ECHO it waits for).
{
    printf 'AUTH cli-support %s\r\n' "$SUPPORT"
    for i in $(seq 1 1000); do printf 'PUT cli:p%d name "Person %d"\r\n' "$i" "$i"; done
} > "${BIN}.pipe"
PIPE_OUT=$(cli --pipe < "${BIN}.pipe" 2>&1)
check "--pipe: 1001 replies, no errors" "errors: 0, replies: 1001" "$(echo "$PIPE_OUT" | grep -o 'errors: [0-9]*, replies: [0-9]*')"
check "pipelined write landed" "Person 777" "$(cli "${S[@]}" GET cli:p777 name)"

# redis-cli prints a RESP3 map as "key value" lines, a RESP2 array as one element per line.
check "RESP3 EXPORT is a map" $'name Jane Q. Doe\nphone +442079460958' "$(cli -3 "${S[@]}" EXPORT cli:1)"
check "RESP2 EXPORT is a flat array" $'name\nJane Q. Doe\nphone\n+442079460958' "$(cli "${S[@]}" EXPORT cli:1)"
check "FIND phone" "cli:1" "$(cli "${S[@]}" FIND phone "+442079460958")"
check "SHRED as admin" "1" "$(cli --user admin --pass "$ADMIN" SHRED cli:1)"
check "shredded reads as nil" "" "$(cli "${S[@]}" GET cli:1 name)"
rm -f "$BIN" "${BIN}.pipe"

echo "redis-cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
