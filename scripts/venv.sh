#!/usr/bin/env bash
# Create the virtualenv (installing Debian's venv package if the interpreter lacks it) and install
# the given requirements file. Re-runs only when the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
VENV="${VENV:-.venv}"
REQ="$1"
STAMP="$VENV/.installed-$(basename "$REQ" .txt)"

"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || echo "!! Ledgerline is built for Python 3.11; $PYTHON is $("$PYTHON" --version 2>&1)." >&2
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    ver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt_install "python${ver}-venv" || apt_install python3-venv
    "$PYTHON" -m venv "$VENV"
  fi
fi
if [ ! -f "$STAMP" ] || [ "$REQ" -nt "$STAMP" ] || [ requirements.txt -nt "$STAMP" ]; then
  echo "-- installing Python packages from $REQ"
  quiet() { "$@" 2>&1 | sed '/is ignored: it is neither a file nor a directory/d'; }
  quiet "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  quiet "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
  touch "$STAMP"
fi
