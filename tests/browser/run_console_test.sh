#!/usr/bin/env bash
# The web console end to end: starts a real vidnode with its HTTP gateway
# (two sim devices, an API key file) and runs console_test.mjs in headless
# Chromium with playwright-core, which npm installs into a temporary folder
# (nothing is installed globally or kept). Prints "SKIPPED: reason" and
# exits 0 where Chromium, Node.js or npm's registry is not available.
#
#   tests/browser/run_console_test.sh build/apps/vidnode
#
# CONSOLE_SCREENSHOT=FILE saves a screenshot of the console with a few jobs;
# CHROMIUM=PATH picks the browser (default /usr/bin/chromium).
set -euo pipefail

vidnode=${1:?usage: run_console_test.sh PATH/TO/vidnode}
here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}

skip() {
  echo "SKIPPED: $*"
  exit 0
}

[[ -x $vidnode ]] || { echo "no vidnode at $vidnode" >&2; exit 1; }
[[ -x $chromium ]] || skip "no Chromium at $chromium (Debian: apt-get install chromium)"
command -v node >/dev/null || skip "no node (Debian: apt-get install nodejs)"
command -v npm >/dev/null || skip "no npm (Debian: apt-get install npm)"

work=$(mktemp -d "${TMPDIR:-/tmp}/vidnode-console.XXXXXX")
node_pid=
cleanup() {
  if [[ -n $node_pid ]] && kill -0 "$node_pid" 2>/dev/null; then
    kill -TERM "$node_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$node_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! timeout 180 npm install --prefix "$work/npm" --no-audit --no-fund \
     --prefer-offline --fetch-retries=1 --fetch-retry-maxtimeout=5000 \
     --loglevel=error playwright-core >"$work/npm.log" 2>&1; then
  tail -5 "$work/npm.log" >&2
  skip "npm could not install playwright-core (is the npm registry reachable?)"
fi

key=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '# the console test\n%s\n' "$key" >"$work/keys"
mkdir "$work/out"

"$vidnode" --listen 127.0.0.1:0 --cluster-listen 127.0.0.1:0 \
  --devices sim:2 --state-dir none --output-dir "$work/out" \
  --http-listen 127.0.0.1:0 --endpoint sim=sim \
  --api-key-file "$work/keys" --log-level warn \
  >"$work/vidnode.out" 2>"$work/vidnode.err" &
node_pid=$!

url=
for _ in $(seq 200); do
  url=$(sed -n 's|^vidnode HTTP gateway on \(http://[^ ]*\).*$|\1|p' \
        "$work/vidnode.out" | head -1)
  [[ -n $url ]] && break
  if ! kill -0 "$node_pid" 2>/dev/null; then
    echo "vidnode exited before its gateway listened:" >&2
    cat "$work/vidnode.out" "$work/vidnode.err" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z $url ]]; then
  echo "vidnode printed no gateway address within 20 s:" >&2
  cat "$work/vidnode.out" "$work/vidnode.err" >&2
  exit 1
fi
echo "vidnode's gateway: $url"

status=0
CONSOLE_URL=$url CONSOLE_KEY=$key CHROMIUM=$chromium \
  PLAYWRIGHT_CORE="$work/npm/node_modules/playwright-core" \
  timeout 300 node "$here/console_test.mjs" || status=$?
if [[ $status -ne 0 ]]; then
  echo "console test failed ($status); vidnode's log:" >&2
  tail -40 "$work/vidnode.err" >&2
fi
exit "$status"
