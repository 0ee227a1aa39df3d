#!/usr/bin/env bash
# Run every test in the plain build, then the unit and integration tests in
# the ASan+UBSan build, the integration tests in the TSan build and once more
# under valgrind, the fuzz smoke runs in the libFuzzer build, and end with
# one line "N passed, N failed".
set -uo pipefail
plain=${1:-build}
asan=${2:-build-asan}
tsan=${3:-build-tsan}
fuzz=${4:-build-fuzz}

# Sanitizer builds: leak reports need the plugins still mapped at exit.
export NEBULA_NO_DLCLOSE=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=24
export TSAN_OPTIONS=halt_on_error=0:exitcode=25:second_deadlock_stack=1

# valgrind: a leak (definite or indirect) or a memory error makes nebula
# exit 99, and every integration test asserts that its server exits 0.
valgrind_cmd="valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
--errors-for-leak-kinds=definite,indirect --error-exitcode=99"

for b in "$plain" "$asan" "$tsan" "$fuzz"; do rm -f "$b/meson-logs/run-all.json"; done
rm -f "$plain/meson-logs/run-all-valgrind.json"
status=0
meson test -C "$plain" --logbase run-all --print-errorlogs --num-processes 1 || status=1
meson test -C "$asan" --logbase run-all --print-errorlogs --num-processes 1 --no-suite e2e --no-suite lint || status=1
meson test -C "$tsan" --logbase run-all --print-errorlogs --num-processes 1 --suite integration || status=1
NEBULA_WRAPPER=$valgrind_cmd meson test -C "$plain" --logbase run-all-valgrind --print-errorlogs \
  --num-processes 1 --suite integration || status=1
meson test -C "$fuzz" --logbase run-all --print-errorlogs --num-processes 1 --suite fuzz || status=1

logs=()
for f in "$plain/meson-logs/run-all.json" "$asan/meson-logs/run-all.json" \
  "$tsan/meson-logs/run-all.json" "$plain/meson-logs/run-all-valgrind.json" \
  "$fuzz/meson-logs/run-all.json"; do
  [ -f "$f" ] && logs+=("$f")
done
count() { # results with this status, across every build's log
  [ ${#logs[@]} -eq 0 ] && { echo 0; return; }
  jq -s '[.[] | select(.result == "'"$1"'")] | length' "${logs[@]}"
}
passed=$(count OK)
failed=$(( $(count FAIL) + $(count TIMEOUT) + $(count ERROR) ))
skipped=$(count SKIP)
echo
[ "$skipped" -eq 0 ] || echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
