#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test with ctest.
# Extra arguments go to ctest (e.g. -R admission, or -L integration).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
build="${BUILD_DIR:-$root/build}"
cd "$build"
ctest --output-on-failure --parallel "$(nproc 2>/dev/null || echo 2)" "$@"
