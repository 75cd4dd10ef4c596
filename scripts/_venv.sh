# Sourced by demo.sh and test.sh: make sure .venv holds llmrelay with the extra named in $1
# ("demo" or "dev"). Idempotent and offline once set up: pip runs only when .venv is new or
# pyproject.toml changed since the last install (its hash is stored in .venv). A .venv made
# by a missing or too old Python is rebuilt. PYTHON=/path/to/python3.11+ picks the Python.
EXTRA="$1"
_python_ok() { "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

if [ -z "${PYTHON:-}" ]; then
  for candidate in python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 && _python_ok "$candidate"; then
      PYTHON="$candidate"
      break
    fi
  done
fi
PYTHON="${PYTHON:-python3}"

if [ -e .venv ] && ! _python_ok .venv/bin/python; then
  echo "setup: .venv was made by a Python that no longer works here or is older than 3.11;" \
       "rebuilding it with $PYTHON" >&2
  rm -rf .venv
fi

if [ ! -x .venv/bin/python ]; then
  if ! _python_ok "$PYTHON"; then
    echo "setup: llmrelay needs Python 3.11 or newer; '$PYTHON' is not." \
         "Run again with PYTHON=/path/to/python3.11 (or newer)." >&2
    exit 2
  fi
  echo "setup: creating .venv with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')" >&2
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi

_stamp() { .venv/bin/python -c 'import hashlib, sys; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())'; }
STAMP_FILE=".venv/.llmrelay-installed-$EXTRA"
WANT="$(_stamp)"
if [ "$(cat "$STAMP_FILE" 2>/dev/null)" != "$WANT" ] \
   && ! { [ "$EXTRA" = demo ] && [ "$(cat .venv/.llmrelay-installed-dev 2>/dev/null)" = "$WANT" ]; }; then
  echo "setup: installing llmrelay[$EXTRA] and its dependencies into .venv" \
       "(needs the package index; later runs skip this until pyproject.toml changes)" >&2
  .venv/bin/python -m pip install --quiet -e ".[$EXTRA]"
  echo "$WANT" >"$STAMP_FILE"
fi
