#!/usr/bin/env bash
# vidnode's GPU checks, in one run on a GPU machine (see ../shared/GPU.md):
# builds against that machine's libtorch (torch in python3's environment)
# with the Debian packages it lacks taken from .deps/root (made by
# scripts/gpu-deps.sh on a Debian machine, carried with the checkout), runs
# the [gpu] tests and the GPU benchmarks, and prints a summary.
#
# Usage: scripts/gpu-check.sh [OUTDIR]
#   OUTDIR (default: $OUT if set, else build-gpu/check) receives the log of
#   every step and summary.md. Every step runs even if an earlier one
#   failed (except those that need the build); the exit status is 0 only if
#   every step passed. Build parallelism: VIDNODE_GPU_JOBS (default: nproc).
#
# Without a GPU it still builds and runs everything: the [gpu] tests report
# themselves skipped and the GPU benchmarks say why they did nothing.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
build="${root}/build-gpu"
outdir="${1:-${OUT:-${build}/check}}"
mkdir -p "${outdir}"
summary="${outdir}/summary.md"
jobs="${VIDNODE_GPU_JOBS:-$(nproc)}"
started=$(date +%s)
failures=0
: >"${summary}"

note() { echo "$*" | tee -a "${summary}"; }

# step NAME LIMIT_SECONDS COMMAND...: runs COMMAND with a time limit, its
# output to OUTDIR/NAME.log and to the terminal, and records the outcome.
step() {
  local name="$1" limit="$2"
  shift 2
  local t0 rc
  t0=$(date +%s)
  echo "=== ${name}: $*"
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

targets=(vidnode vidctl toy_torchscript cuda_test gpu_test torchscript_test
  bench_tiny_t2v bench_gpu_burst)
step configure 300 cmake -S "${root}" -B "${build}" "${cmake_args[@]}"
step build 600 cmake --build "${build}" --parallel "${jobs}" --target "${targets[@]}"

if [ -x "${build}/tests/cuda_test" ]; then
  grep -E "vidnode: libtorch" "${outdir}/configure.log" | sed 's/^-- /- /' >>"${summary}" || true
  # cuda_test exits 77 when there is no CUDA device: skipped, not failed.
  step gpu_tests 150 bash -c "'${build}/tests/cuda_test' --durations yes; rc=\$?; [ \$rc -eq 77 ] && exit 0; exit \$rc"
  if [ "$(tail -n 5 "${outdir}/gpu_tests.log" | grep -c SKIPPED)" -gt 0 ] \
    || grep -q "^SKIPPED" "${outdir}/gpu_tests.log"; then
    note "| gpu_tests | (skipped: $(grep -m1 '^SKIPPED' "${outdir}/gpu_tests.log")) | |"
  fi
  step bench_gpu_burst 360 "${build}/bench/bench_gpu_burst"
  if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    step baseline_handler 120 python3 "${root}/bench/serverless_handler_baseline.py"
  else
    note "| baseline_handler | (skipped: python3 has no torch with CUDA) | |"
  fi
  step bench_tiny_t2v_cuda 120 "${build}/bench/bench_tiny_t2v" 1 cuda
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
  step unit_tests 120 bash -c "'${build}/tests/gpu_test' && '${build}/tests/torchscript_test'"
fi

note ""
for log in bench_gpu_burst baseline_handler; do
  if [ -f "${outdir}/${log}.log" ]; then
    note "${log}:"
    note '```'
    grep -E '^(vidnode |plain loop|naive|locked|single|NVIDIA|skipped)' "${outdir}/${log}.log" | tee -a "${summary}"
    note '```'
  fi
done
# bench_gpu_burst's tables: vidnode against the plain loop, the phases of
# its jobs, lanes.
if [ -f "${outdir}/bench_gpu_burst.log" ]; then
  grep -E '^(###|\|)' "${outdir}/bench_gpu_burst.log" | tee -a "${summary}" || true
fi
if [ -f "${outdir}/bench_tiny_t2v_cuda.log" ]; then
  grep -E '^(###|\|)' "${outdir}/bench_tiny_t2v_cuda.log" | tee -a "${summary}" || true
fi
if [ -f "${outdir}/gpu_tests.log" ]; then
  grep -E '^\[gpu\]|test cases|assertions' "${outdir}/gpu_tests.log" | tee -a "${summary}" || true
fi
note ""
note "failed steps: ${failures}; total $(($(date +%s) - started)) s"
[ "${failures}" -eq 0 ]
