# Sourced by demo.sh and test.sh: make .venv (if missing) and install llmrelay with the
# extra named in $1 ("demo" or "dev").
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[$1]"
