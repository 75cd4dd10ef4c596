#!/usr/bin/env bash
# Install llmrelay and run its main job on a machine without internet: start the local
# demo Space (a real Gradio app shaped like Qwen2-72B-Instruct) and stream an answer
# from it with `llmrelay chat`.
# Usage: bash scripts/demo.sh ["your prompt"] [more llmrelay chat options]
# Environment: PYTHON (the Python to set up .venv with), LLMRELAY_DEMO_PORT (the demo
# Space's port; default 7860, or a free port when 7860 is taken).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/_venv.sh demo

_port_free() { .venv/bin/python -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"; }

if [ -n "${LLMRELAY_DEMO_PORT:-}" ]; then
  PORT="$LLMRELAY_DEMO_PORT"
  if ! _port_free "$PORT"; then
    echo "demo: port $PORT (LLMRELAY_DEMO_PORT) is in use; choose another or unset it" >&2
    exit 2
  fi
else
  PORT=7860
  if ! _port_free "$PORT"; then
    PORT="$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    echo "demo: port 7860 is in use; the demo Space runs on port $PORT (set LLMRELAY_DEMO_PORT to choose)" >&2
  fi
fi

LOG="$(mktemp -t llmrelay-demo-space.XXXXXX.log)"
.venv/bin/python scripts/demo_space.py --port "$PORT" >"$LOG" 2>&1 &
SPACE_PID=$!
trap 'kill "$SPACE_PID" 2>/dev/null || true; rm -f "$LOG"' EXIT

for _ in $(seq 1 240); do
  if .venv/bin/python -c "import httpx; httpx.get('http://127.0.0.1:$PORT/config').raise_for_status()" 2>/dev/null; then
    break
  fi
  kill -0 "$SPACE_PID" 2>/dev/null || { echo "demo: the demo Space did not start:" >&2; cat "$LOG" >&2; exit 1; }
  sleep 0.25
done

PROMPT="${1:-Write a haiku about streaming tokens.}"
shift || true
echo "\$ llmrelay chat -m hf_spaces:qwen-2-72b -s 'You are a helpful assistant.' '$PROMPT'" >&2
LLMRELAY_HF_SPACES_BASE_URL="http://127.0.0.1:$PORT" \
  .venv/bin/llmrelay chat -m hf_spaces:qwen-2-72b -s "You are a helpful assistant." "$PROMPT" "$@"
