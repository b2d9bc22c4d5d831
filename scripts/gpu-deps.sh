#!/usr/bin/env bash
# Bundles the Debian packages the GPU machine lacks (CAF, spdlog + fmt,
# nlohmann-json, CLI11, SQLite, cereal, Catch2 v2) into the git-ignored
# .deps/ of the checkout, so that they travel with it (carry: .deps/root,
# about 20 MiB unpacked).
# Run it on a Debian 12 machine with apt; it downloads into .deps/debs/ and
# unpacks each package with dpkg -x into .deps/root/. Idempotent: packages
# already downloaded are neither fetched nor unpacked again.
#
# On the GPU machine, configure from the repository root with:
#   cmake -S . -B build-gpu -G Ninja -DVIDNODE_WITH_FFMPEG=OFF \
#     -DCAF_ROOT=$PWD/.deps/root/usr \
#     "-DCMAKE_PREFIX_PATH=$PWD/.deps/root/usr;$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')"
# and run what it builds with
#   LD_LIBRARY_PATH=$PWD/.deps/root/usr/lib/x86_64-linux-gnu
# (The bundle's CMake package files are relocatable; nothing else is needed.)
#
#   scripts/gpu-deps.sh               download + unpack, then print the args
#   scripts/gpu-deps.sh --cmake-args  only print the cmake args (no apt; usable
#                                     on the GPU machine: eval "cmake ... $(...)")
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$repo/.deps"
prefix="$deps/root/usr"

# The same, unexpanded, for a command run from the repository root.
args_template='-DCAF_ROOT=$PWD/.deps/root/usr "-DCMAKE_PREFIX_PATH=$PWD/.deps/root/usr;$(python3 -c '"'"'import torch;print(torch.utils.cmake_prefix_path)'"'"')"'

cmake_args() {
  local torch_prefix=""
  torch_prefix="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)"
  printf '%s' "-DCAF_ROOT=$prefix '-DCMAKE_PREFIX_PATH=$prefix${torch_prefix:+;$torch_prefix}'"
}

if [ "${1:-}" = "--cmake-args" ]; then
  cmake_args
  echo
  exit 0
fi

# Exactly what vidnode's CMake files use (find_package CAF/spdlog/nlohmann_json/
# CLI11/SQLite3/cereal/Catch2/prometheus-cpp; spdlog's config needs fmt,
# prometheus-cpp's civetweb, its push library zlib and libcurl). The runtime
# libraries come along (libsqlite3-dev's libsqlite3.so points into
# libsqlite3-0). libcaf-openssl0.17: libcaf-dev's libcaf_openssl.so points at
# it (64 KB). Not bundled: libcurl/libssl (the GPU machine has them),
# libtorch, FFmpeg.
packages=(
  libcaf-dev libcaf-core0.17 libcaf-io0.17 libcaf-openssl0.17
  libspdlog-dev libspdlog1.10
  libfmt-dev libfmt9
  nlohmann-json3-dev
  libcli11-dev
  libsqlite3-dev libsqlite3-0
  libcereal-dev
  catch2
  prometheus-cpp-dev libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0
  libprometheus-cpp-push1.0 libcivetweb-dev libcivetweb1
)

mkdir -p "$deps/debs" "$deps/root"
cd "$deps/debs"
apt_opts=(-q)
# As root, apt's _apt user cannot write here: download as root, quietly.
[ "$(id -u)" -eq 0 ] && apt_opts+=(-o APT::Sandbox::User=root)
for p in "${packages[@]}"; do
  if compgen -G "${p}_*.deb" >/dev/null; then
    continue
  fi
  if ! apt-cache show "$p" >/dev/null 2>&1; then
    echo "gpu-deps: apt knows no $p: run 'apt-get update' (Debian 12 has it)" >&2
    exit 1
  fi
  echo "gpu-deps: downloading $p"
  apt-get download "${apt_opts[@]}" "$p"
done
# Unpack each .deb once (a stamp in root/ records it; delete root/ to redo).
for f in *.deb; do
  stamp="$deps/root/.unpacked-${f%.deb}"
  [ -e "$stamp" ] && continue
  dpkg -x "$f" "$deps/root"
  touch "$stamp"
done

echo "gpu-deps: $(du -sh "$deps/debs" | cut -f1) of .debs, $(du -sh "$deps/root" | cut -f1) unpacked in .deps/root (carry: .deps/root)"
# From the repository root; scripts/gpu-deps.sh --cmake-args expands them.
echo "cmake args: $args_template"
echo "run with:   LD_LIBRARY_PATH=\$PWD/.deps/root/usr/lib/x86_64-linux-gnu"
