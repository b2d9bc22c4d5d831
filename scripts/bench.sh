#!/usr/bin/env bash
# Builds vidnode's benchmarks (Release, in build-bench/) and runs them all.
# Prints one markdown table per benchmark, then a summary table for the
# README. Every ratio compares figures measured in the same run.
#
# Usage: scripts/bench.sh [SCALE]
#   SCALE multiplies every benchmark's iteration counts (default 1; also
#   VIDNODE_BENCH_SCALE). Build parallelism: VIDNODE_BENCH_JOBS (default 2).
#   VIDNODE_BENCH_ONLY="cluster remote" builds and runs only those.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${root}/build-bench"
scale="${1:-${VIDNODE_BENCH_SCALE:-1}}"
jobs="${VIDNODE_BENCH_JOBS:-2}"
benchmarks=(dispatch placement saturation remote tls memory tiny_t2v
  journal_store journal cluster http_gateway cold_start)
if [ -n "${VIDNODE_BENCH_ONLY:-}" ]; then
  read -r -a benchmarks <<< "${VIDNODE_BENCH_ONLY}"
fi

generator=()
if command -v ninja >/dev/null 2>&1; then
  generator=(-G Ninja)
fi
cmake -S "${root}" -B "${build}" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DVIDNODE_BUILD_TESTS=OFF \
  -DVIDNODE_BUILD_BENCH=ON >&2
targets=()
for name in "${benchmarks[@]}"; do
  targets+=("bench_${name}")
done
cmake --build "${build}" --parallel "${jobs}" --target "${targets[@]}" >&2

summary="$(mktemp)"
trap 'rm -f "${summary}"' EXIT
export VIDNODE_BENCH_SUMMARY="${summary}"

echo "# vidnode benchmarks"
echo
echo "Host: $(uname -srm), $(nproc) hardware threads; CAF 0.17.6; scale ${scale}."
echo
for name in "${benchmarks[@]}"; do
  "${build}/bench/bench_${name}" "${scale}"
done

echo "## Summary"
echo
echo "| benchmark | measured | baseline | ratio | target | met? |"
echo "| --- | --- | --- | --- | --- | --- |"
cat "${summary}"
