#!/usr/bin/env bash
# Installs a built vidnode into a temporary prefix and uses it the way an
# application that embeds vidnode would: checks that the installed package
# refers to neither the build nor the source tree, builds examples/embed,
# examples/embed-worker and every installed header against it with only
# CMAKE_PREFIX_PATH, runs the first, and joins the second as a worker node to
# a real head from the build tree, to which vidctl submits a job that must
# run on the embedded worker's device. Every process it starts and the
# prefix are removed at the end, whatever happens.
#
# Usage: test_installed.sh BUILD_DIR SOURCE_DIR GENERATOR CXX_COMPILER
#                          BUILD_TYPE VIDNODE VIDCTL [COMPILER_LAUNCHER]
# (ctest passes them: examples/CMakeLists.txt.)
set -euo pipefail

if [ $# -lt 7 ]; then
  echo "usage: $0 BUILD_DIR SOURCE_DIR GENERATOR CXX_COMPILER BUILD_TYPE VIDNODE VIDCTL [LAUNCHER]" >&2
  exit 2
fi
build="$(cd "$1" && pwd -P)"
source="$(cd "$2" && pwd -P)"
generator="$3"
compiler="$4"
build_type="$5"
vidnode="$6"
vidctl="$7"
launcher="${8:-}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/vidnode-installed.XXXXXX")"
prefix="$tmp/prefix"
# Every background job gets a process group of its own (job control), so
# that cleanup ends a build with its compilers, or a node, by its group.
set -m
pids=()

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

fail() {
  echo "FAILED: $*" >&2
  local log
  for log in "$tmp"/*.out "$tmp"/*.err; do
    [ -s "$log" ] || continue
    echo "--- ${log#"$tmp"/}" >&2
    tail -n 40 "$log" >&2
  done
  exit 1
}

# alive PID: whether PID runs (an exited child stays a zombie until waited).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  case "$(ps -o stat= -p "$1" 2>/dev/null)" in Z* | "") return 1 ;; esac
}

# wait_for FILE PATTERN SECONDS [PID]: polls FILE until a line matches the
# extended regular expression PATTERN; fails after SECONDS, or as soon as
# PID has exited.
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -Eq -- "$2" "$1" 2>/dev/null; do
    if [ -n "${4:-}" ] && ! alive "$4"; then
      fail "$(basename "$1" .out) exited before printing '$2'"
    fi
    [ "$SECONDS" -lt "$deadline" ] || fail "no '$2' in $1 within $3 s"
    sleep 0.1
  done
}

# stop PID NAME SECONDS: SIGTERM, then waits for the exit with a deadline;
# sets exit_status.
stop() {
  local deadline=$((SECONDS + $3))
  kill -TERM "$1" 2>/dev/null || true
  while alive "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$2 did not exit within $3 s of SIGTERM"
    sleep 0.1
  done
  exit_status=0
  wait "$1" || exit_status=$?
}

echo "== install into $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.out" 2>&1 \
  || fail "cmake --install failed"
config="$(find "$prefix" -name vidnodeConfig.cmake -print -quit)"
[ -n "$config" ] || fail "no vidnodeConfig.cmake under $prefix"
config_dir="$(dirname "$config")"
for file in vidnodeConfigVersion.cmake vidnodeTargets.cmake FindCAF.cmake; do
  [ -f "$config_dir/$file" ] || fail "$file is not installed beside vidnodeConfig.cmake"
done
for module in runtime gpu actors net; do
  for header in $(cd "$source/$module/include" && find vidnode -name '*.hpp'); do
    [ -f "$prefix/include/$header" ] || fail "$header is not installed"
  done
  grep -q "vidnode::$module\b" "$config_dir/vidnodeTargets.cmake" \
    || fail "vidnode::$module is not exported"
done
for app in vidnode vidctl; do
  [ -x "$prefix/bin/$app" ] || fail "bin/$app is not installed"
done

echo "== the installed package refers to neither the build nor the source tree"
if grep -rn -e "$build" -e "$source" "$config_dir"; then
  fail "the installed CMake files name the build or source tree (above)"
fi
if grep -rn -E "vidnode_build_flags|vidnode_test" "$config_dir"; then
  fail "internal targets leak into the export (above)"
fi
for binary in "$prefix"/bin/* "$prefix"/lib*/libvidnode_*.so*; do
  [ -L "$binary" ] && continue
  runpath="$(readelf -d "$binary" | grep -E 'RUNPATH|RPATH' || true)"
  # shellcheck disable=SC2016 # the literal $ORIGIN
  case "$runpath" in
    *"$build"* | *"$source"*) fail "$binary's RUNPATH names the build or source tree: $runpath" ;;
    *'$ORIGIN'*) ;;
    *) fail "$binary has no RUNPATH relative to itself: '$runpath'" ;;
  esac
done
env -u LD_LIBRARY_PATH "$prefix/bin/vidctl" --help >"$tmp/vidctl-help.out" 2>&1 \
  || fail "the installed vidctl does not run"

echo "== build the examples and every installed header with CMAKE_PREFIX_PATH only"
mkdir -p "$tmp/headers"
{
  echo "cmake_minimum_required(VERSION 3.20)"
  echo "project(vidnode_installed_headers LANGUAGES CXX)"
  echo "find_package(vidnode 0.2 QUIET)"
  echo "if(vidnode_FOUND)"
  echo "  message(FATAL_ERROR \"find_package(vidnode 0.2) took \${vidnode_VERSION}\")"
  echo "endif()"
  echo "find_package(vidnode 0.1 REQUIRED)"
  echo "add_library(installed_headers OBJECT all_headers.cpp)"
  echo "target_link_libraries(installed_headers PRIVATE vidnode::net)"
} >"$tmp/headers/CMakeLists.txt"
(cd "$prefix/include" && find vidnode -name '*.hpp' | sort | sed 's/.*/#include "&"/') \
  >"$tmp/headers/all_headers.cpp"

# ccache, when given, hits across runs: paths under the temporary directory
# are made relative and the working directory is not hashed.
configure_and_build() {
  local name="$1" dir="$2"
  local -a args=(-G "$generator" -S "$dir" -B "$tmp/$name-build"
    -DCMAKE_CXX_COMPILER="$compiler" -DCMAKE_BUILD_TYPE="$build_type"
    -DCMAKE_PREFIX_PATH="$prefix")
  [ -n "$launcher" ] && args+=(-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher")
  CCACHE_BASEDIR="$tmp" CCACHE_NOHASHDIR=1 cmake "${args[@]}" \
    && CCACHE_BASEDIR="$tmp" CCACHE_NOHASHDIR=1 cmake --build "$tmp/$name-build"
}
configure_and_build embed "$source/examples/embed" >"$tmp/embed-build.out" 2>&1 &
embed_build=$!
configure_and_build worker "$source/examples/embed-worker" >"$tmp/worker-build.out" 2>&1 &
worker_build=$!
pids+=("$embed_build" "$worker_build")
configure_and_build headers "$tmp/headers" >"$tmp/headers-build.out" 2>&1 \
  || fail "the installed headers do not compile together, or the version check failed"
wait "$embed_build" || fail "examples/embed does not build against the installed vidnode"
wait "$worker_build" || fail "examples/embed-worker does not build against the installed vidnode"
pids=()

echo "== examples/embed: a head inside the application, jobs from its own actor"
status=0
(cd "$tmp" && timeout 60 "$tmp/embed-build/embed_example" --example.jobs=3 \
  --example.output-dir="$tmp/embed-output" >"$tmp/embed.out" 2>"$tmp/embed.err") \
  || status=$?
cat "$tmp/embed.out"
[ "$status" -eq 0 ] || fail "embed_example exited with status $status"
grep -q "^3 of 3 jobs succeeded$" "$tmp/embed.out" || fail "embed_example did not report 3 of 3"
[ "$(grep -c '^result job .*: succeeded on sim:' "$tmp/embed.out")" -eq 3 ] \
  || fail "embed_example did not print 3 results on sim devices"
grep -q '^event job .*: running step' "$tmp/embed.out" \
  || fail "embed_example printed no progress event"

echo "== examples/embed-worker: a worker node inside the application joins a real head"
"$vidnode" --devices none --state-dir none --listen 127.0.0.1:0 \
  --cluster-listen 127.0.0.1:0 --output-dir "$tmp/head-output" \
  >"$tmp/head.out" 2>"$tmp/head.err" &
head_pid=$!
pids+=("$head_pid")
wait_for "$tmp/head.out" "^vidnode accepting worker nodes on 127\.0\.0\.1:[0-9]+$" 30 "$head_pid"
client_port="$(sed -nE 's/^vidnode listening on 127\.0\.0\.1:([0-9]+)$/\1/p' "$tmp/head.out")"
cluster_port="$(sed -nE 's/^vidnode accepting worker nodes on 127\.0\.0\.1:([0-9]+)$/\1/p' "$tmp/head.out")"
[ -n "$client_port" ] || fail "the head printed no client port"

(cd "$tmp" && exec "$tmp/worker-build/embed_worker" \
  --worker.head="127.0.0.1:$cluster_port" --worker.name=embed-worker \
  --worker.devices=sim:1 --worker.output-dir="$tmp/worker-output") \
  >"$tmp/worker.out" 2>"$tmp/worker.err" &
worker_pid=$!
pids+=("$worker_pid")
wait_for "$tmp/worker.out" "^embed_worker joined the head named .* as embed-worker$" 30 "$worker_pid"

status=0
timeout 60 "$vidctl" --connect "127.0.0.1:$client_port" submit \
  --prompt "from the installed examples' test" --option step_ms=10 --wait \
  >"$tmp/vidctl.out" 2>"$tmp/vidctl.err" || status=$?
cat "$tmp/vidctl.out"
[ "$status" -eq 0 ] || fail "vidctl submit --wait exited with status $status"
grep -Eq "succeeded" "$tmp/vidctl.out" || fail "the job did not succeed"
grep -Eq "device +sim:0 on embed-worker," "$tmp/vidctl.out" \
  || fail "the job did not run on the embedded worker node's device"

stop "$worker_pid" embed_worker 30
[ "$exit_status" -eq 0 ] || fail "embed_worker exited with status $exit_status after SIGTERM"
grep -q "^embed_worker stopped$" "$tmp/worker.out" || fail "embed_worker did not stop cleanly"
stop "$head_pid" "the head" 40
[ "$exit_status" -eq 0 ] || fail "the head exited with status $exit_status after SIGTERM"
pids=()
echo "PASSED"
