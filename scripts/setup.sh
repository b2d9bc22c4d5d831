#!/usr/bin/env bash
# Installs every Debian package vidnode's build, tests and demo need.
# Idempotent: prints nothing and changes nothing when all is installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libcaf-dev libssl-dev
  libspdlog-dev nlohmann-json3-dev libcli11-dev libcereal-dev
  libsqlite3-dev
  catch2
  libtorch-dev libgloo-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libcurl4-openssl-dev
  libsystemd-dev
  prometheus-cpp-dev prometheus
  libcpp-httplib-dev
  openssl
  python3
  tmux
  wrk
  chromium
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js and npm run the HTTP gateway's tests with Runpod's own SDK and
# the console's browser test; a machine may have them from elsewhere
# (nodesource), where Debian's npm package would conflict.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
