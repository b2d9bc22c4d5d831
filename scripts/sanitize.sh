#!/usr/bin/env bash
# Builds and runs the tests under sanitizers, each in its own build folder:
#   scripts/sanitize.sh address   ASan + UBSan, every test      (build-asan)
#   scripts/sanitize.sh thread    TSan, actor and integration   (build-tsan)
#   scripts/sanitize.sh           both
# Extra arguments go to ctest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
mode="${1:-all}"
[ $# -gt 0 ] && shift

run() {
  local name="$1" sanitizers="$2"; shift 2
  local build="$root/build-$name"
  echo "== $name: -fsanitize=$sanitizers ($build)"
  BUILD_DIR="$build" CMAKE_ARGS="-DVIDNODE_SANITIZE=$sanitizers -DVIDNODE_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug" \
    "$root/scripts/build.sh"
  (cd "$build" && ctest --output-on-failure --parallel "$(nproc 2>/dev/null || echo 2)" "$@")
}

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# CAF itself is not instrumented: its own synchronisation is invisible to
# TSan, so races reported inside libcaf_core are suppressed (see the file).
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/scripts/tsan.supp"

case "$mode" in
  address) run asan "address,undefined" "$@" ;;
  thread)  run tsan "thread" -R "actors_test|integration_test" "$@" ;;
  all)     run asan "address,undefined" "$@"; run tsan "thread" -R "actors_test|integration_test" "$@" ;;
  *) echo "usage: scripts/sanitize.sh [address|thread|all] [ctest args]" >&2; exit 2 ;;
esac
