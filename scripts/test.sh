#!/usr/bin/env bash
# Set up a fresh machine and run every check: ruff, mypy, the import contract, the tests.
# Usage: bash scripts/test.sh [extra pytest arguments, e.g. -n 0 for a single process]
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/_venv.sh dev

# Gradio 4 (tuple chatbot, no /gradio_api prefix) runs in its own environment, when it
# installs; tests/providers/test_real_gradio.py uses it through LLMRELAY_GRADIO4_PYTHON.
# Installed once; later runs (offline too) only check that it imports.
if [ "${LLMRELAY_SKIP_GRADIO4:-0}" != "1" ]; then
  if .venv-gradio4/bin/python -c 'import gradio' 2>/dev/null; then
    export LLMRELAY_GRADIO4_PYTHON="$PWD/.venv-gradio4/bin/python"
  elif echo "setup: installing gradio 4.44.1 into .venv-gradio4 (for the Gradio 4 tests)" >&2 \
      && { _python_ok .venv-gradio4/bin/python || { rm -rf .venv-gradio4 && "$PYTHON" -m venv .venv-gradio4; }; } \
      && .venv-gradio4/bin/python -m pip install --quiet 'gradio==4.44.1' \
           -c scripts/gradio4-constraints.txt \
      && .venv-gradio4/bin/python -c 'import gradio' 2>/dev/null; then
    export LLMRELAY_GRADIO4_PYTHON="$PWD/.venv-gradio4/bin/python"
  else
    echo "note: gradio 4.44.1 did not install; the gradio4 tests will be skipped" >&2
  fi
fi

echo "== ruff"
.venv/bin/ruff check src tests scripts benchmarks
.venv/bin/ruff format --check src tests scripts benchmarks
echo "== mypy (strict, src/)"
.venv/bin/mypy
echo "== import contracts"
.venv/bin/lint-imports
bash scripts/setup_system.sh
echo "== pytest"
# In parallel (pytest-xdist): four worker processes by default, on two cores too, as most
# of the suite's time is waiting (timeouts, stalls, servers). PYTEST_XDIST_AUTO_NUM_WORKERS=N
# (pytest-xdist's own variable) chooses the number; -n 0 among the arguments runs the tests
# in this one process.
PYTEST_XDIST_AUTO_NUM_WORKERS="${PYTEST_XDIST_AUTO_NUM_WORKERS:-4}" \
  .venv/bin/python -m pytest -n auto "$@"
