#!/usr/bin/env bash
# Builds and runs the tests under sanitizers, each in its own build folder:
#   scripts/sanitize.sh address   ASan + UBSan, every test      (build-asan)
#   scripts/sanitize.sh thread    TSan, actor, integration and example tests,
#                                 against a TSan build of CAF (build-tsan)
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
  BUILD_DIR="$build" CMAKE_ARGS="-DVIDNODE_SANITIZE=$sanitizers -DVIDNODE_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug ${EXTRA_CMAKE:-}" \
    "$root/scripts/build.sh"
  (cd "$build" && ctest --output-on-failure --parallel "$(nproc 2>/dev/null || echo 2)" "$@")
}

# TSan only sees the synchronisation of code it instrumented, and Debian's
# libcaf is not: every handoff between CAF's threads would look like a race.
# So the thread build runs against CAF 0.17.6 built here with -fsanitize=thread
# from Debian's own source package (once; kept in build-tsan-caf).
tsan_caf() {
  local work="$root/build-tsan-caf"
  local prefix="$work/install"
  if [ -f "$prefix/lib/libcaf_io.so" ]; then echo "$prefix"; return; fi
  mkdir -p "$work/src"
  (
    cd "$work/src"
    if ! ls actor-framework_*.orig.tar.gz >/dev/null 2>&1; then
      if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "sanitize: enabling Debian source packages (deb-src)" >&2
        sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
        printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
          | $sudo_cmd tee /etc/apt/sources.list.d/vidnode-deb-src.sources >/dev/null
        $sudo_cmd apt-get update -qq
      fi
      # Only the upstream tarball is needed; Debian's patch tarball may fail.
      apt-get source --download-only -qq actor-framework >&2 || true
    fi
    tarball="$(ls actor-framework_*.orig.tar.gz 2>/dev/null | head -1)"
    [ -n "$tarball" ] || { echo "sanitize: cannot fetch Debian's actor-framework source" >&2; exit 1; }
    rm -rf caf build && mkdir caf && tar xzf "$tarball" -C caf --strip-components=1 || exit 1
    echo "sanitize: building CAF with -fsanitize=thread (once, several minutes)" >&2
    # (errexit does not apply inside "( ... ) || exit", hence the || exit 1s.)
    # Upstream 0.17.6 misses an #include <limits> that GCC 12 needs (Debian
    # patches it; its patch tarball is not needed for that).
    cmake -S caf -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS="-fsanitize=thread -include limits" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
      -DCAF_NO_EXAMPLES=ON -DCAF_NO_UNIT_TESTS=ON -DCAF_NO_TOOLS=ON -DCAF_NO_PYTHON=ON \
      -DCAF_NO_OPENCL=ON -DCAF_NO_OPENSSL=ON -DCAF_NO_SUMMARY=ON \
      -DCMAKE_INSTALL_PREFIX="$prefix" >&2 || exit 1
    cmake --build build --parallel "$(nproc 2>/dev/null || echo 2)" >&2 || exit 1
    cmake --install build >&2 || exit 1
  ) || exit 1
  echo "$prefix"
}

# A refused allocation is an error vidnode handles (out_of_memory), and the
# tests make some: malloc and posix_memalign return nothing instead of
# ASan aborting. (A throwing operator new still aborts under ASan.)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$root/scripts/ubsan.supp"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"

run_tsan() {
  local prefix
  prefix="$(tsan_caf)"
  export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  CAF_ROOT="$prefix" EXTRA_CMAKE="-DCAF_ROOT=$prefix" run tsan "thread" -R "actors_test|integration_test|examples" "$@"
}

case "$mode" in
  address) run asan "address,undefined" "$@" ;;
  thread)  run_tsan "$@" ;;
  all)     run asan "address,undefined" "$@"; run_tsan "$@" ;;
  *) echo "usage: scripts/sanitize.sh [address|thread|all] [ctest args]" >&2; exit 2 ;;
esac
