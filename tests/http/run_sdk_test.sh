#!/usr/bin/env bash
# Runs tests/http/sdk_test.mjs: Runpod's JS SDK (npm runpod-sdk 1.1.2, whose
# licence keeps it out of this repository, so it is installed here into a
# temporary folder) against a real vidnode on 127.0.0.1.
# Usage: run_sdk_test.sh VIDNODE_BIN
# Prints "SKIPPED: reason" and exits 0 when node, npm or the npm registry is
# not there; exits non-zero on any failure.
set -euo pipefail

vidnode_bin=${1:?usage: run_sdk_test.sh VIDNODE_BIN}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sdk_version=1.1.2

for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIPPED: $tool is not installed"
    exit 0
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/vidnode-sdk-test-XXXXXX")
node_pid=
cleanup() {
  if [[ -n $node_pid ]] && kill -0 "$node_pid" 2>/dev/null; then
    kill "$node_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$node_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export npm_config_cache=$work/npm-cache npm_config_update_notifier=false \
  npm_config_fund=false npm_config_audit=false
if ! timeout 30 npm ping --fetch-retries=0 --fetch-timeout=10000 \
  >"$work/npm-ping.log" 2>&1; then
  why=$(grep -m 1 -E 'FetchError|code E' "$work/npm-ping.log" || tail -n 1 "$work/npm-ping.log")
  echo "SKIPPED: the npm registry cannot be reached (npm ping: ${why:-timed out})"
  exit 0
fi
if ! timeout 180 npm install --prefix "$work/sdk" "runpod-sdk@$sdk_version" \
  >"$work/npm-install.log" 2>&1; then
  cat "$work/npm-install.log" >&2
  echo "FAILED: npm install runpod-sdk@$sdk_version" >&2
  exit 1
fi
cp "$here/sdk_test.mjs" "$work/sdk/sdk_test.mjs"

api_key=sdk-test-$RANDOM$RANDOM
printf '%s\n' "$api_key" >"$work/keys"
mkdir "$work/output"
"$vidnode_bin" --devices sim:4 --state-dir none --log-level warn \
  --listen 127.0.0.1:0 --cluster-listen 127.0.0.1:0 \
  --http-listen 127.0.0.1:0 \
  --endpoint sim=sim,width=64,height=64,num_frames=8,num_inference_steps=5,video=1 \
  --api-key-file "$work/keys" --output-dir "$work/output" \
  >"$work/vidnode.out" 2>"$work/vidnode.err" &
node_pid=$!

http_port=
for _ in $(seq 200); do
  http_port=$(sed -n 's|^vidnode HTTP gateway on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' \
    "$work/vidnode.out")
  [[ -n $http_port ]] && break
  if ! kill -0 "$node_pid" 2>/dev/null; then
    cat "$work/vidnode.err" >&2
    echo "FAILED: vidnode exited before serving HTTP" >&2
    exit 1
  fi
  sleep 0.05
done
if [[ -z $http_port ]]; then
  cat "$work/vidnode.out" "$work/vidnode.err" >&2
  echo "FAILED: vidnode printed no HTTP gateway line within 10 s" >&2
  exit 1
fi

status=0
(cd "$work/sdk" && BASE_URL="http://127.0.0.1:$http_port/v2" \
  API_KEY="$api_key" timeout 300 node sdk_test.mjs) || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- vidnode stderr ---" >&2
  tail -n 50 "$work/vidnode.err" >&2
  echo "FAILED: sdk_test.mjs exited $status" >&2
fi
if ! kill -0 "$node_pid" 2>/dev/null; then
  echo "FAILED: vidnode is no longer running" >&2
  status=1
fi
exit "$status"
