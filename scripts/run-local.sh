#!/usr/bin/env bash
# Start EchoForge on this machine with embedded defaults: ef_tts (Piper, offline voice from PyPI)
# on 127.0.0.1:5002 and the backend (API + web UI) on http://127.0.0.1:8000. Ctrl-C stops both.
# Any EF_* variable (or a .env file) overrides the defaults; see the README's settings table.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
export EF_TTS_ENGINE="${EF_TTS_ENGINE:-piper}"
export EF_TTS_HOST="${EF_TTS_HOST:-127.0.0.1}"
export EF_TTS_PORT="${EF_TTS_PORT:-5002}"
export EF_TTS_URL="${EF_TTS_URL:-http://${EF_TTS_HOST}:${EF_TTS_PORT}}"
export EF_DATA_DIR="${EF_DATA_DIR:-./data}"
mkdir -p "$EF_DATA_DIR"

"$VENV/bin/python" -m ef_tts &
tts_pid=$!
trap 'kill "$tts_pid" 2>/dev/null || true; wait "$tts_pid" 2>/dev/null || true' EXIT INT TERM

echo "waiting for ef_tts at $EF_TTS_URL ..." >&2
for _ in $(seq 1 120); do
  if "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$EF_TTS_URL/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$tts_pid" 2>/dev/null; then echo "ef_tts exited; see its log above" >&2; exit 1; fi
  sleep 0.5
done

"$VENV/bin/ef" migrate
echo "EchoForge: http://${EF_HOST:-127.0.0.1}:${EF_PORT:-8000}  (API docs at /docs)" >&2
echo "Wyoming (Home Assistant): ${EF_WYOMING_HOST:-127.0.0.1}:${EF_WYOMING_PORT:-10200}" >&2
"$VENV/bin/ef" serve
