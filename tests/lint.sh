#!/usr/bin/env bash
# Static checks over the project's C sources: clang-format (no diff),
# cppcheck and clang-tidy (no warnings).
# Usage: tests/lint.sh BUILD_DIR [FUZZ_BUILD_DIR (default build-fuzz)]
#        tests/lint.sh --list   (the files checked; `make format` uses it)
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
fuzz_build=${2:-build-fuzz}
fail=0
# The same list with or without git (a tarball, a fresh machine): every C
# file under the project's source folders, except the frozen ABI fixtures.
list_files() {
  find core plugins include tests examples tools -name '*.[ch]' \
    -not -path 'tests/fixtures/abi-*' -not -path '*/node_modules/*' | sort
}
if [ "$build" = --list ]; then
  list_files
  exit 0
fi
mapfile -t files < <(list_files)
csrc=()
for f in "${files[@]}"; do [[ $f == *.c ]] && csrc+=("$f"); done

echo "== clang-format (${#files[@]} files)"
if ! clang-format --dry-run --Werror "${files[@]}"; then
  echo "clang-format: run 'make format'"; fail=1
fi

echo "== cppcheck"
if ! cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,performance,portability \
    --inline-suppr --suppress=missingIncludeSystem -D__GNUC__ -DNEBULA_VERSION='"0"' \
    -DNEBULA_PLUGIN_INSTALL_DIR='"/"' -Iinclude -Icore "${csrc[@]}"; then
  fail=1
fi

echo "== clang-tidy"
checks='-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-bugprone-assignment-in-if-condition,-bugprone-macro-parentheses,clang-analyzer-*,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,-clang-analyzer-security.insecureAPI.strcpy,performance-*,portability-*'
# Production code only: the analyzer cannot see that CUnit's *_FATAL
# assertions end a test, and reports every pointer checked that way.
tidy_src=()
for f in "${csrc[@]}"; do
  [[ $f == tests/* ]] && continue
  # only files the build knows (compile_commands.json), so flags are right
  grep -q "\"$(pwd)/$f\"\|\"../$f\"\|\"$f\"" "$build/compile_commands.json" 2>/dev/null && tidy_src+=("$f")
done
# One file per call: clang-tidy 14 carries state across files of one call
# (false "uninitialized va_list" reports after the first vsnprintf).
tidy() { # BUILD_DIR FILE...
  local db=$1
  shift
  [ $# -gt 0 ] || return 0
  local out rc
  out=$(printf '%s\n' "$@" | xargs -P "$(nproc)" -I{} \
    clang-tidy -p "$db" --quiet --checks="$checks" --warnings-as-errors='*' {} 2>&1)
  rc=$?
  if [ $rc -ne 0 ] || grep -q 'warning:\|error:' <<<"$out"; then
    echo "$out" | grep -v '^[0-9]* warnings generated'
    fail=1
  fi
}
tidy "$build" "${tidy_src[@]}"
# The fuzz targets use no CUnit, so they are checked too, but they exist
# only in the clang build configured with -Dfuzz=true (docs/FUZZING.md):
# with its flags, when that build is there.
fuzz_src=()
for f in "${csrc[@]}"; do [[ $f == tests/fuzz/* ]] && fuzz_src+=("$f"); done
if [ -f "$fuzz_build/compile_commands.json" ]; then
  tidy "$fuzz_build" "${fuzz_src[@]}"
elif [ ${#fuzz_src[@]} -gt 0 ]; then
  echo "clang-tidy: no $fuzz_build/compile_commands.json, tests/fuzz/ not checked (make build-fuzz)"
fi
[ $fail -eq 0 ] && echo "lint: clean"
exit $fail
