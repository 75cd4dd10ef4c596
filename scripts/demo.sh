#!/usr/bin/env bash
# Install llmrelay and run its main job on a machine without internet: start the local
# demo Space (a real Gradio app shaped like Qwen2-72B-Instruct) and stream an answer
# from it with `llmrelay chat`.
# Usage: bash scripts/demo.sh ["your prompt"] [more llmrelay chat options]
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/_venv.sh demo

PORT="${LLMRELAY_DEMO_PORT:-7860}"
.venv/bin/python scripts/demo_space.py --port "$PORT" >/tmp/llmrelay-demo-space.log 2>&1 &
SPACE_PID=$!
trap 'kill "$SPACE_PID" 2>/dev/null || true' EXIT

for _ in $(seq 1 120); do
  if .venv/bin/python -c "import httpx,sys; httpx.get('http://127.0.0.1:$PORT/config').raise_for_status()" 2>/dev/null; then
    break
  fi
  kill -0 "$SPACE_PID" 2>/dev/null || { cat /tmp/llmrelay-demo-space.log >&2; exit 1; }
  sleep 0.5
done

PROMPT="${1:-Write a haiku about streaming tokens.}"
shift || true
echo "\$ llmrelay chat -m hf_spaces:qwen-2-72b -s 'You are a helpful assistant.' '$PROMPT'" >&2
LLMRELAY_HF_SPACES_BASE_URL="http://127.0.0.1:$PORT" \
  .venv/bin/llmrelay chat -m hf_spaces:qwen-2-72b -s "You are a helpful assistant." "$PROMPT" "$@"
