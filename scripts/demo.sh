#!/usr/bin/env bash
# The tour: installs what is missing, builds vidnode and vidctl, starts a node
# on the built-in defaults, submits a few jobs, shows them, stops the node.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
"$root/scripts/build.sh" vidnode vidctl
build="${BUILD_DIR:-$root/build}"
vidnode="$build/apps/vidnode"
vidctl="$build/apps/vidctl"

log="$(mktemp -t vidnode-demo.XXXXXX)"
out="$(mktemp -t vidnode-demo-out.XXXXXX)"
# The audio track's own directory: the one file:// URLs may name
# (vidnode --allow-file-urls; refused by default).
audio_dir="$(mktemp -d -t vidnode-demo-audio.XXXXXX)"
audio="$audio_dir/tone.wav"
node_pid=""
cleanup() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill -TERM "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  rm -f "$log" "$out"
  rm -rf "$audio_dir"
}
trap cleanup EXIT

start_node() {
  "$vidnode" --allow-file-urls "$audio_dir" "$@" >"$out" 2>"$log" &
  node_pid=$!
  for _ in $(seq 1 100); do
    if grep -q "listening on" "$out"; then return 0; fi
    kill -0 "$node_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

out_dir=/tmp/vidnode-output  # vidnode's default --output-dir
echo "== starting vidnode with its defaults, and file URLs allowed in $audio_dir"
# Another vidnode on this machine may hold the default port or the default
# state directory (its journal): then the demo takes a free port or a
# directory of its own.
extra=()
started=0
for _ in 1 2 3; do
  if start_node "${extra[@]}"; then started=1; break; fi
  if grep -q "cannot listen" "$log"; then
    echo "   (the default port is taken; using a free one)"
    extra+=(--listen 127.0.0.1:0)
  elif grep -q "only one vidnode head may use" "$log"; then
    demo_state="$(mktemp -d /tmp/vidnode-demo-state.XXXXXX)"
    echo "   (another vidnode uses the default state directory; using $demo_state)"
    extra+=(--state-dir "$demo_state")
  else
    break
  fi
done
[ "$started" = 1 ] || { cat "$log" >&2; exit 1; }
cat "$out"
address="$(sed -n 's/^vidnode listening on //p' "$out")"
ctl() { echo "\$ vidctl $*"; "$vidctl" --connect "$address" "$@"; }

echo
echo "== submitting four sim jobs (20 steps of 50 ms each, priorities 2, 5, 9, 5)"
for prio in 2 5 9 5; do
  ctl submit --model sim --prompt "a red fox in the snow" --priority "$prio"
done
echo
ctl list
echo
echo "== following job 1 until it ends"
ctl watch 1
echo
echo "== waiting for the rest (the priority 9 job ran before the others)"
for id in 2 3 4; do "$vidctl" --connect "$address" wait "$id" >/dev/null; done
ctl list
echo
echo "== a real video: the built-in tiny-t2v model (libtorch) on the cpu device"
ctl submit --model tiny-t2v --prompt "a red fox running through snow" \
  --width 256 --height 256 --frames 16 --steps 8 --fps 8 --seed 7 --wait
echo
echo "== the same with an audio track: a 3 s tone, fetched from a file URL and"
echo "   muxed as AAC, cut to the video's 2 s"
python3 - "$audio" <<'PY'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 16000))) for i in range(48000)))
PY
ctl submit --model tiny-t2v --prompt "a red fox running through snow" \
  --width 256 --height 256 --frames 16 --steps 8 --fps 8 --seed 7 \
  --audio-url "file://$audio" --wait
ls -l "$out_dir"
echo
echo "== a bad request gets a typed error (exit status 4)"
ctl submit --width 17 || echo "(exit status $?)"
echo
ctl nodes
echo
echo "== stopping vidnode (SIGTERM)"
kill -TERM "$node_pid"
wait "$node_pid"
echo "vidnode exited with status $?"
node_pid=""
