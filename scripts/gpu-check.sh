#!/usr/bin/env bash
# vidnode's GPU checks, in one run on a GPU machine (see ../shared/GPU.md):
# builds against that machine's libtorch (torch in python3's environment)
# with the Debian packages it lacks taken from .deps/root (made by
# scripts/gpu-deps.sh on a Debian machine, carried with the checkout), runs
# the [gpu] tests and the GPU benchmarks, and prints a summary:
#
#   - the [gpu] tests, with what the step path's host synchronisations and
#     memory measurements cost, whether a step synchronises, and two lanes
#     on one device ("[gpu] ..." lines);
#   - bench_tiny_t2v on cuda: vidnode against the plain loop (the pipeline
#     API with no actors), the phase breakdown, the idle gap between jobs;
#   - bench_gpu_burst: vidnode against the plain loop and (from the Python
#     handler's run just after) the locked handler, phases, lanes 4 vs 1
#     with the kernel-time share;
#   - bench_cold_start, where this checkout has it: load() against cat;
#   - the end-to-end path (vidnode + vidctl) and the CPU test executables.
#
# Usage: scripts/gpu-check.sh [OUTDIR]
#   OUTDIR (default: $OUT if set, else build-gpu/check) receives the log of
#   every step and summary.md. Every step runs even if an earlier one
#   failed (a step whose binary did not build says so and is counted as
#   failed); the exit status is 0 only if every step passed. The whole run
#   keeps within VIDNODE_GPU_CHECK_BUDGET seconds (default 560): each step's
#   time limit is cut to what is left, and steps that no longer fit are
#   skipped, saying so. Build parallelism: VIDNODE_GPU_JOBS (default: nproc).
#
# Without a GPU it still builds and runs everything: the [gpu] tests report
# themselves skipped and the GPU benchmarks say why they did nothing.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}" || exit 1
build="${root}/build-gpu"
outdir="${1:-${OUT:-${build}/check}}"
mkdir -p "${outdir}" || exit 1
summary="${outdir}/summary.md"
jobs="${VIDNODE_GPU_JOBS:-$(nproc)}"
budget="${VIDNODE_GPU_CHECK_BUDGET:-560}"
started=$(date +%s)
failures=0
skipped=0
: >"${summary}"
# The benchmarks' summary rows (bench/measurement.hpp: record_summary).
export VIDNODE_BENCH_SUMMARY="${outdir}/bench-summary.md"
: >"${VIDNODE_BENCH_SUMMARY}"

note() { echo "$*" | tee -a "${summary}"; }

left() { echo $((budget - ($(date +%s) - started))); }

# step NAME LIMIT_SECONDS COMMAND...: runs COMMAND with a time limit (cut to
# the budget left), its output to OUTDIR/NAME.log and to the terminal, and
# records the outcome. A step with under 20 s of budget left is skipped.
step() {
  local name="$1" limit="$2"
  shift 2
  local t0 rc remaining
  remaining=$(($(left) - 10))
  if [ "${remaining}" -lt 20 ]; then
    note "| ${name} | **skipped: the budget of ${budget} s is spent** | |"
    skipped=$((skipped + 1))
    return 0
  fi
  [ "${limit}" -gt "${remaining}" ] && limit="${remaining}"
  t0=$(date +%s)
  echo "=== ${name} (limit ${limit} s): $*"
  timeout --kill-after=10 "${limit}" "$@" 2>&1 | tee "${outdir}/${name}.log"
  rc=${PIPESTATUS[0]}
  local took=$(($(date +%s) - t0))
  if [ "${rc}" -eq 0 ]; then
    note "| ${name} | ok | ${took} s |"
  else
    [ "${rc}" -eq 124 ] && rc="${rc} (timed out after ${limit} s)"
    note "| ${name} | **failed: exit ${rc}** | ${took} s |"
    failures=$((failures + 1))
  fi
}

# built NAME PATH: whether PATH was built; if not, records step NAME as
# failed for that reason.
built() {
  if [ -x "$2" ]; then
    return 0
  fi
  note "| $1 | **failed: $(basename "$2") was not built (see build.log)** | |"
  failures=$((failures + 1))
  return 1
}

# excerpt TITLE LOG PATTERN: the lines of LOG matching PATTERN (extended
# regex) into the summary under TITLE, or why there are none.
excerpt() {
  local title="$1" log="${outdir}/$2.log" pattern="$3"
  note ""
  note "### ${title}"
  note ""
  if [ ! -f "${log}" ]; then
    note "(not run)"
    return 0
  fi
  if ! grep -E "${pattern}" "${log}" >/dev/null; then
    note "(nothing matched; the log's last lines:)"
    note '```'
    tail -n 8 "${log}" | tee -a "${summary}"
    note '```'
    return 0
  fi
  grep -E "${pattern}" "${log}" | tee -a "${summary}"
}

note "# vidnode GPU check"
note ""
note "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
note "- host: $(uname -srm), $(nproc) CPUs"
if command -v nvidia-smi >/dev/null 2>&1; then
  note "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
else
  note "- GPU: none (nvidia-smi not found)"
fi
torch_prefix="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)"
note "- torch: $(python3 -c 'import torch;print(torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null || echo 'not in python3; the system libtorch if any')"
note "- budget: ${budget} s"
note ""
note "| step | result | time |"
note "| --- | --- | --- |"

cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DVIDNODE_WERROR=OFF
  -DVIDNODE_BUILD_TESTS=ON -DVIDNODE_BUILD_BENCH=ON
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5)
if [ -d "${root}/.deps/root/usr" ]; then
  deps="${root}/.deps/root/usr"
  cmake_args+=("-DCAF_ROOT=${deps}" "-DCMAKE_PREFIX_PATH=${deps}${torch_prefix:+;${torch_prefix}}")
  export LD_LIBRARY_PATH="${deps}/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
elif [ -n "${torch_prefix}" ]; then
  cmake_args+=("-DCMAKE_PREFIX_PATH=${torch_prefix}")
fi

step configure 240 cmake -S "${root}" -B "${build}" "${cmake_args[@]}"
targets=(vidnode vidctl toy_torchscript cuda_test gpu_test torchscript_test
  bench_tiny_t2v bench_gpu_burst)
# bench_cold_start comes with the cold-start work; built only where the
# checkout defines it.
if command -v ninja >/dev/null 2>&1 \
  && ninja -C "${build}" -t targets all 2>/dev/null | grep -q '^bench_cold_start:'; then
  targets+=(bench_cold_start)
fi
# -k 0: a target that fails to build leaves the others to be built and run.
step build 420 cmake --build "${build}" --parallel "${jobs}" --target "${targets[@]}" -- -k 0
grep -E "vidnode: libtorch" "${outdir}/configure.log" 2>/dev/null | sed 's/^-- /- /' >>"${summary}" || true

bin="${build}/tests"
if built gpu_tests "${bin}/cuda_test"; then
  # cuda_test exits 77 when there is no CUDA device: skipped, not failed.
  step gpu_tests 200 bash -c "'${bin}/cuda_test' --durations yes; rc=\$?; [ \$rc -eq 77 ] && exit 0; exit \$rc"
  if grep -q "^SKIPPED" "${outdir}/gpu_tests.log" 2>/dev/null; then
    note "| gpu_tests | (skipped: $(grep -m1 '^SKIPPED' "${outdir}/gpu_tests.log")) | |"
  fi
fi
if built bench_tiny_t2v_cuda "${build}/bench/bench_tiny_t2v"; then
  step bench_tiny_t2v_cuda 150 "${build}/bench/bench_tiny_t2v" 1 cuda
fi
if built bench_gpu_burst "${build}/bench/bench_gpu_burst"; then
  step bench_gpu_burst 240 "${build}/bench/bench_gpu_burst"
fi
# The locked handler's makespan, on the same machine, right after the burst.
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  step baseline_handler 120 python3 "${root}/bench/serverless_handler_baseline.py"
else
  note "| baseline_handler | (skipped: python3 has no torch with CUDA) | |"
fi
if [ -x "${build}/bench/bench_cold_start" ]; then
  step bench_cold_start 120 "${build}/bench/bench_cold_start" 1
else
  note "| bench_cold_start | (skipped: this checkout has no bench_cold_start) | |"
fi
if built vidnode_vidctl "${build}/apps/vidnode" && built vidnode_vidctl "${build}/apps/vidctl"; then
  # The end-to-end path a user takes: vidnode on `auto`, vidctl submits.
  step vidnode_vidctl 90 bash -c "
    set -euo pipefail
    log=\$(mktemp); outdir=\$(mktemp -d)
    '${build}/apps/vidnode' --listen 127.0.0.1:0 --devices auto --output-dir \"\${outdir}\" >\"\${log}\" 2>&1 &
    pid=\$!
    trap 'kill \${pid} 2>/dev/null; wait \${pid} 2>/dev/null; rm -rf \"\${log}\" \"\${outdir}\"' EXIT
    for _ in \$(seq 300); do grep -q 'listening on' \"\${log}\" && break; sleep 0.1; done
    cat \"\${log}\"
    port=\$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' \"\${log}\")
    '${build}/apps/vidctl' --connect 127.0.0.1:\${port} --json submit --model tiny-t2v --prompt 'a kite' --width 256 --height 256 --frames 16 --steps 8 --wait
    '${build}/apps/vidctl' --connect 127.0.0.1:\${port} nodes
    ls -la \"\${outdir}\""
fi
if built unit_tests "${bin}/gpu_test" && built unit_tests "${bin}/torchscript_test"; then
  step unit_tests 150 bash -c "'${bin}/gpu_test' && '${bin}/torchscript_test'"
fi

note ""
note "## Figures"
excerpt "[gpu] tests: host costs, step synchronisations, lanes" gpu_tests \
  '^\[gpu\]|test cases|assertions|SKIPPED'
excerpt "bench_tiny_t2v on cuda: vidnode vs the plain loop, phases" \
  bench_tiny_t2v_cuda '^(#|\||skipped)'
excerpt "bench_gpu_burst: vidnode vs the plain loop, phases, lanes 4 vs 1" \
  bench_gpu_burst '^(#|\||vidnode |plain|lanes|skipped)'
excerpt "the locked handler (same machine, same model size)" baseline_handler \
  '^(naive|locked|single|NVIDIA|H100|H200|err )'
excerpt "bench_cold_start: load() against cat" bench_cold_start \
  '^(#|\||skipped)'
if [ -s "${VIDNODE_BENCH_SUMMARY}" ]; then
  note ""
  note "### The benchmarks' summary rows"
  note ""
  note "| benchmark | measured | baseline | ratio | target | met? |"
  note "| --- | --- | --- | --- | --- | --- |"
  tee -a "${summary}" <"${VIDNODE_BENCH_SUMMARY}"
fi
note ""
note "failed steps: ${failures}; skipped for time: ${skipped}; total $(($(date +%s) - started)) s (budget ${budget} s); logs in ${outdir}"
[ "${failures}" -eq 0 ] && [ "${skipped}" -eq 0 ]
