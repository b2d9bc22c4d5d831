#!/usr/bin/env bash
# Configures and builds vidnode in ./build (or $BUILD_DIR). Extra arguments
# are build targets (default: everything).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-} >/dev/null
fi
jobs="$(nproc 2>/dev/null || echo 2)"
if [ $# -gt 0 ]; then
  cmake --build "$build" --parallel "$jobs" --target "$@"
else
  cmake --build "$build" --parallel "$jobs"
fi
